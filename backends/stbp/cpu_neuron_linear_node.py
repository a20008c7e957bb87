"""A neuron layer, the linear layer it feeds and the neuron layer fed that, as one node on the CPU
(see :mod:`backends.stbp.neuron_linear`).

Each task owns whole samples and walks time; a step's spikes of a sample become
its row of the linear layer's output while they are in cache, four samples at a
time so that a load of a row of W serves four (:func:`_dot4x4`).
"""

import numpy as np
from numba import prange

from .cpu_cache import helper, reassociating, variants
from .cpu_neuron import _back_step, _fired, _step, _surrogate


@reassociating
def _dot4(a, b0, b1, b2, b3, zero):
    """(sum a * b0, ..., sum a * b3) in one pass over ``a``: a load of ``a`` serves
    four multiply-adds (each sum in any order, so that LLVM vectorises it)."""
    s0 = s1 = s2 = s3 = zero
    for j in range(a.shape[0]):
        v = a[j]
        s0 += v * b0[j]
        s1 += v * b1[j]
        s2 += v * b2[j]
        s3 += v * b3[j]
    return s0, s1, s2, s3


@reassociating
def _dot4x4(a0, a1, a2, a3, b0, b1, b2, b3, zero):
    """The 16 sums ``a_i . b_k`` (index ``4 i + k``) in one pass: a load serves four
    multiply-adds (sixteen sums in registers; each in any order, so that LLVM vectorises it)."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
    for j in range(a0.shape[0]):
        u0, u1, u2, u3 = a0[j], a1[j], a2[j], a3[j]
        v0, v1, v2, v3 = b0[j], b1[j], b2[j], b3[j]
        s00 += u0 * v0
        s01 += u0 * v1
        s02 += u0 * v2
        s03 += u0 * v3
        s10 += u1 * v0
        s11 += u1 * v1
        s12 += u1 * v2
        s13 += u1 * v3
        s20 += u2 * v0
        s21 += u2 * v1
        s22 += u2 * v2
        s23 += u2 * v3
        s30 += u3 * v0
        s31 += u3 * v1
        s32 += u3 * v2
        s33 += u3 * v3
    return (s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)


@helper
def _axpy4(y, c0, c1, c2, c3, x0, x1, x2, x3):
    """y += c0 x0 + c1 x1 + c2 x2 + c3 x3: one load and store of ``y`` for four
    multiply-adds (four passes of ``y += c x`` store ``y`` four times)."""
    for j in range(y.shape[0]):
        y[j] += c0 * x0[j] + c1 * x1[j] + c2 * x2[j] + c3 * x3[j]


def _neuron_linear_forward(kind, x, x_step, T, B, N, q, w, bias, has_bias, y, s8, m, keep_m,
                           out_kind, q_out, s_out, m_out, rows):
    """A neuron layer [T, B, N], the linear layer it feeds, y = s W^T + b [T*B, K], and
    the neuron layer ``out_kind`` fed ``y``, in one pass: each task owns ``rows`` whole
    samples (so no two write the same row of ``y``), walks time, and turns every
    step's spikes of a sample into its row of ``y`` while they are in cache -- four
    samples at a time, so that a load of a row of W serves four samples
    (:func:`_dot4x4`) -- and that row into the output neurons' step.  Writes the
    one-byte spikes ``s8``, with ``keep_m`` the membranes ``m`` [T, B, N], and the
    output layer's spikes ``s_out`` and membranes ``m_out`` [T, B, K]."""
    K = w.shape[0]
    nblocks = (B + rows - 1) // rows
    for blk in prange(nblocks):
        b0 = blk * rows
        nb = min(rows, B - b0)
        zero = q[4]
        state_out = np.zeros(nb * K, dtype=m.dtype)
        spk_out = np.zeros(nb * K, dtype=m.dtype)
        state = np.zeros(nb * N, dtype=m.dtype)
        # three rows past the block's samples stay 0: the empty places of a last
        # group of fewer than four (0 spikes add nothing)
        spk = np.zeros((nb + 3) * N, dtype=m.dtype)
        unused = np.zeros(0 if keep_m else N, dtype=m.dtype)
        for t in range(T):
            for g0 in range(0, nb, 4):
                ng = min(4, nb - g0)
                for i in range(g0, g0 + ng):
                    b = b0 + i
                    off = (t * B + b) * N
                    xo = t * x_step + b * N
                    sp = spk[i * N:(i + 1) * N]
                    mt = m[off:off + N] if keep_m else unused
                    _step(kind, x[xo:xo + N], state[i * N:(i + 1) * N], sp, mt, keep_m, q)
                    s8t = s8[off:off + N]
                    for j in range(N):
                        s8t[j] = np.uint8(1) if sp[j] != zero else np.uint8(0)
                sp0 = spk[g0 * N:(g0 + 1) * N]
                sp1 = spk[(g0 + 1) * N:(g0 + 2) * N]
                sp2 = spk[(g0 + 2) * N:(g0 + 3) * N]
                sp3 = spk[(g0 + 3) * N:(g0 + 4) * N]
                r0 = t * B + b0 + g0
                for k in range(0, K - K % 4, 4):
                    sums = _dot4x4(sp0, sp1, sp2, sp3, w[k], w[k + 1], w[k + 2], w[k + 3], zero)
                    for e in range(ng):
                        for c in range(4):
                            y[r0 + e, k + c] = (bias[k + c] if has_bias else zero) + sums[4 * e + c]
                for k in range(K - K % 4, K):  # the last K % 4 rows one at a time
                    sums4 = _dot4(w[k], sp0, sp1, sp2, sp3, zero)
                    for e in range(ng):
                        y[r0 + e, k] = (bias[k] if has_bias else zero) + sums4[e]
                for e in range(ng):
                    i, r = g0 + e, r0 + e
                    so = spk_out[i * K:(i + 1) * K]
                    _step(out_kind, y[r], state_out[i * K:(i + 1) * K], so, m_out[r * K:(r + 1) * K], True, q_out)
                    st = s_out[r * K:(r + 1) * K]
                    for k in range(K):
                        st[k] = so[k]


def _neuron_linear_backward(kind, q, qf, m, x, x_step, recompute, T, B, N, w, g, grads, gx, static, dw, out, tasks,
                            fast_exp):
    """The backward pass of :func:`_neuron_linear_forward`.  Each task walks its samples
    ``chunk`` at a time (all of them at once where the membranes are read from ``m``: each
    step's reads are then one contiguous run).  With ``recompute`` the chunk's membranes
    come first, forward from its input ``x`` (the forward's arithmetic and constants
    ``qf``: the same values), into a scratch that stays in cache, instead of from ``m``.
    Then in reverse time, each sample's output neurons' reverse step (from their membranes
    ``m_out`` and the gradients of their spikes and membranes), which writes ``g``, the
    gradient of ``y`` [T*B, K]; the spike gradient g W (K multiply-adds per neuron,
    four rows of W per pass), the neuron's reverse step, and the spikes (recomputed from
    the membrane) times g added to this task's part of W's gradient ``dw[task]`` [K, N].
    The spikes of four samples are added at once (one pass over ``dw[task]`` for four);
    a group cut short at the end of a step carries zeros in its empty places (0 times a
    spike is 0).

    Grouped (each a tuple): ``grads`` = (gs, gs_step, has_gs, gm, has_gm), the gradients
    of the hidden spikes (step stride ``gs_step``) and membranes, each read only where its
    flag says it is given; ``out`` = (out_kind, q_out, m_out, gs_out, gs_out_step, gm_out,
    gm_out_step, has_gm_out), the output neuron layer: its kind, backward constants,
    membranes and the gradients of its spikes and membranes; ``tasks`` = (rows, chunk),
    the samples of a task and of a chunk."""
    gs, gs_step, has_gs, gm, has_gm = grads
    out_kind, q_out, m_out, gs_out, gs_out_step, gm_out, gm_out_step, has_gm_out = out
    rows, chunk = tasks
    K = w.shape[0]
    nblocks = (B + rows - 1) // rows
    for blk in prange(nblocks):
        b0 = blk * rows
        nb = min(rows, B - b0)
        p1, one, zero = q[1], q[6], q[7]
        nc = min(chunk, nb)
        carry_out = np.zeros(nc * K, dtype=gx.dtype)
        hs_out = np.zeros(K, dtype=gx.dtype)
        two_k_out = np.zeros(K if fast_exp else 0, dtype=np.int32)
        two_k_out_f = two_k_out.view(np.float32)
        unused_out = np.zeros(0, dtype=gx.dtype)
        carry = np.zeros(nc * N, dtype=gx.dtype)
        total = np.zeros(nc * N if static else 0, dtype=gx.dtype)
        unused = np.zeros(N if static else 0, dtype=gx.dtype)
        hs = np.zeros(N, dtype=gx.dtype)
        gsr = np.zeros(N, dtype=gx.dtype)
        ms = np.zeros(nc * T * N if recompute else 0, dtype=gx.dtype)  # the chunk's membranes, [sample, t, N]
        state = np.zeros(N if recompute else 0, dtype=gx.dtype)
        spk = np.zeros(N if recompute else 0, dtype=gx.dtype)
        fired = np.zeros((4, N), dtype=gx.dtype)  # the spikes of a group of four samples
        g_fired = np.zeros((4, K), dtype=gx.dtype)  # and their rows of g (0: an empty place)
        two_k = np.zeros(N if fast_exp else 0, dtype=np.int32)
        two_k_f = two_k.view(np.float32)
        d = dw[blk]
        d[:] = 0
        for c0 in range(0, nb, nc):
            nci = min(nc, nb - c0)
            if recompute:
                for i in range(nci):
                    b = b0 + c0 + i
                    for j in range(N):
                        state[j] = zero
                        spk[j] = zero
                    for t in range(T):
                        xo = t * x_step + b * N
                        mo = (i * T + t) * N
                        _step(kind, x[xo:xo + N], state, spk, ms[mo:mo + N], True, qf)
            for j in range(nci * N):
                carry[j] = zero
                if static:
                    total[j] = zero
            for j in range(nci * K):
                carry_out[j] = zero
            for t in range(T - 1, -1, -1):
                for i in range(nci):
                    b = b0 + c0 + i
                    off = (t * B + b) * N
                    r = t * B + b
                    m_out_r = m_out[r * K:(r + 1) * K]
                    gs_out_r = gs_out[t * gs_out_step + b * K:t * gs_out_step + (b + 1) * K]
                    gm_out_r = (gm_out[t * gm_out_step + b * K:t * gm_out_step + (b + 1) * K] if has_gm_out
                                else gs_out_r)
                    _surrogate(out_kind, m_out_r, hs_out, two_k_out, two_k_out_f, q_out, fast_exp)
                    _back_step(out_kind, m_out_r, gs_out_r, gm_out_r, has_gm_out, hs_out, carry_out[i * K:(i + 1) * K],
                               g[r], unused_out, False, q_out)
                    mo = (i * T + t) * N
                    mt = ms[mo:mo + N] if recompute else m[off:off + N]
                    for j in range(N):
                        gsr[j] = zero
                    if has_gs:
                        go = t * gs_step + b * N
                        gst = gs[go:go + N]
                        for j in range(N):
                            gsr[j] = gst[j]
                    for k in range(0, K - K % 4, 4):
                        _axpy4(gsr, g[r, k], g[r, k + 1], g[r, k + 2], g[r, k + 3], w[k], w[k + 1], w[k + 2], w[k + 3])
                    if K % 4:  # the last K % 4 rows in one pass more (0 times the last row in the spare places)
                        k = K - K % 4
                        _axpy4(gsr, g[r, k], g[r, k + 1] if K % 4 > 1 else zero, g[r, k + 2] if K % 4 > 2 else zero,
                               zero, w[k], w[min(k + 1, K - 1)], w[min(k + 2, K - 1)], w[K - 1])
                    _surrogate(kind, mt, hs, two_k, two_k_f, q, fast_exp)
                    gmt = gm[off:off + N] if has_gm else gsr
                    carry_i = carry[i * N:(i + 1) * N]
                    if static:
                        _back_step(kind, mt, gsr, gmt, has_gm, hs, carry_i, unused, total[i * N:(i + 1) * N], True, q)
                    else:
                        _back_step(kind, mt, gsr, gmt, has_gm, hs, carry_i, gx[off:off + N], unused, False, q)
                    place = i % 4
                    f = fired[place]
                    _fired(kind, mt, f, p1, one, zero)
                    for k in range(K):
                        g_fired[place, k] = g[r, k]
                    if place == 3 or i == nci - 1:
                        for e in range(place + 1, 4):
                            for k in range(K):
                                g_fired[e, k] = zero
                        for k in range(K):
                            _axpy4(d[k], g_fired[0, k], g_fired[1, k], g_fired[2, k], g_fired[3, k],
                                   fired[0], fired[1], fired[2], fired[3])
            if static:
                for i in range(nci):
                    gxs = gx[(b0 + c0 + i) * N:(b0 + c0 + i + 1) * N]
                    ti = total[i * N:(i + 1) * N]
                    for j in range(N):
                        gxs[j] = ti[j]


_nl_forward_parallel, _nl_forward_serial = variants(_neuron_linear_forward)
_nl_backward_parallel, _nl_backward_serial = variants(_neuron_linear_backward)
