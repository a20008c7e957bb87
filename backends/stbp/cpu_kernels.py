"""Numba kernels of the fused multi-step neurons on the CPU (see :mod:`backends.stbp.multistep`).

The CPU counterpart of :mod:`backends.stbp.kernels`: one call covers all T
steps of a layer.  The neurons of one step are cut into blocks of
:data:`BLOCK`; each block is one task of a ``prange`` loop (the cores share
the blocks), keeps its state in a small local array (in the L1 cache) and
walks time, forward or in reverse.  Inside a step the block's neurons are a
plain loop over contiguous memory, which LLVM vectorises (AVX-512 where the
CPU has it).  No Python runs per time step.

The arithmetic is the PyTorch engine's (``torch_forward`` /
``torch_backward``), operation for operation, in the tensors' own dtype
(float32 or float64), with every constant rounded to that dtype the way
PyTorch rounds a Python scalar: the forward's spikes and membranes are
bit-identical to it, and so are the gradients except for the sigmoid
surrogate, whose ``exp`` is the C library's here and SLEEF's in PyTorch (a
rounding apart).

The forward writes the spikes (in the input's dtype) and, when asked, the
membrane the backward pass reads -- the one tensor a layer keeps -- and a
one-byte copy of the spikes (``spikes8``): what a layer fed by these spikes
keeps for its own backward pass instead of the float copy (see
:mod:`backends.stbp.multistep`).  The backward reads the membrane and the
gradients of the spikes (and of the membrane, where it is used) and writes
the input gradient, summed over time in the same pass for a static input.

Tensors go in and out as NumPy views of the torch tensors' memory (no
copy); they must be contiguous with step ``t`` at ``t * M``.  A tensor whose
every step is the same (a static input, or a gradient broadcast over time)
is passed as one step with a step stride of 0.

Compiled code is cached on disk (``cache=True``): the first use on a machine
compiles (a few seconds per kernel and dtype), later processes load it.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import types

import numba
import numpy as np
import torch  # before numba's OpenMP layer loads: see THREADING_LAYER_PRIORITY below
from numba import njit, prange

KIND_CODES = {"soft": 0, "subtractive": 1, "hard": 2, "stbp": 3}

# numba's OpenMP layer first, unless the user chose a layer.  Loaded after
# PyTorch (imported above), its OpenMP calls bind to PyTorch's own libgomp:
# PyTorch puts it in the process's global symbol scope, which a library's
# lookups search first.  So the neuron kernels and PyTorch's operations
# (oneDNN's products) run on one pool of threads.  numba's own pool
# ("workqueue") beside PyTorch's cost 0.5-1.5 ms at every hand-over between
# the two on a quiet machine (docs/performance.md, "Threads"); where the
# OpenMP layer cannot load, numba falls back to the next in this list.
if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

# Neurons per task, at most: the block's state (a few arrays of this size)
# stays in the core's L2 cache, and each step of a block is a contiguous run
# long enough for the prefetchers.  A layer is cut into about one block per
# thread (no fewer than MIN_BLOCK neurons each).
MAX_BLOCK = 16384
MIN_BLOCK = 1024
# Below this many neuron-steps a layer runs on one thread: handing it to the
# thread pool costs more than it saves.  On PyTorch's OpenMP threads (warm from
# the step's other operations) threads win from about 20 000-40 000 neuron-steps
# (a neuron's forward and backward, tdBN's node; docs/performance.md, "Threads");
# 2^19, chosen when numba ran its own pool, kept small tdBN layers on one thread.
PARALLEL_MIN = 1 << 15


# exp in float32 for the sigmoid surrogate, as a loop LLVM vectorises (the C
# library's expf is a call per element): Cephes' expf -- z = k ln2 + r with
# |r| <= ln2/2 (ln2 split in two for an exact k ln2), e^r by a degree-7
# polynomial, 2^k built in the exponent bits.  At most 1 ulp from exp in
# [-87.33, 88]; z is clamped to that range (the sigmoid is then 0 or 1 to
# float32 precision either way).  PyTorch's sigmoid uses SLEEF's expf (1 ulp).
_F = np.float32
LOG2E, HALF = _F(1.44269504088896341), _F(0.5)
LN2_HI, LN2_LO = _F(0.693359375), _F(-2.12194440e-4)
EXP_LO, EXP_HI = _F(-87.33), _F(88.0)
EXP_P0, EXP_P1, EXP_P2 = _F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3)
EXP_P3, EXP_P4, EXP_P5 = _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1)



def _helper(fn):
    return njit(cache=True, nogil=True, error_model="numpy", inline="always")(fn)


@_helper
def _step(kind, xt, state, spk, mt, keep_m, q):
    """One forward step of ``n = len(state)`` neurons: ``state`` and ``spk`` (the
    spikes, in and out) updated in place, the membrane written to ``mt``."""
    n = state.shape[0]
    p0, p1, c, one, zero = q[0], q[1], q[2], q[3], q[4]
    if kind == 0:  # soft: v = a (v - v_th s) + (1 - a) x; s = H((v - v_th) / v_th)
        for j in range(n):
            v = p0 * (state[j] - p1 * spk[j]) + c * xt[j]
            state[j] = v
            spk[j] = one if (v - p1) / p1 > zero else zero
    elif kind == 1:  # subtractive: u = beta u + x - v_th H(u_prev - v_th)
        for j in range(n):
            u = state[j]
            u = p0 * u + xt[j] - p1 * (one if u > p1 else zero)
            state[j] = u
            spk[j] = one if u - p1 > zero else zero
    elif kind == 2:  # hard: h = v + (x - v) / tau; s = H(h - v_th); v = h (1 - s)
        for j in range(n):
            v = state[j]
            h = v + (xt[j] - v) / p0
            f = one if h - p1 > zero else zero
            if keep_m:
                mt[j] = h
            state[j] = h * (one - f)
            spk[j] = f
    else:  # stbp: u = tau u (1 - s) + x; s = H(u - v_th)
        for j in range(n):
            u = p0 * state[j] * (one - spk[j]) + xt[j]
            state[j] = u
            spk[j] = one if u - p1 > zero else zero
    if keep_m and kind != 2:  # the membrane is the state (hard: written above)
        for j in range(n):
            mt[j] = state[j]


@_helper
def _surrogate(kind, mt, hs, two_k, two_k_f, q, fast_exp):
    """h(m) of ``n = len(hs)`` membranes into ``hs`` (multistep.surrogate)."""
    n = hs.shape[0]
    p1, p2, p3, c0, c1, one, zero = q[1], q[2], q[3], q[4], q[5], q[6], q[7]
    if kind == 0:  # triangle: alpha max(0, width - |(m - v_th) / v_th|) / v_th
        for j in range(n):
            w = p3 - abs((mt[j] - p1) / p1)
            hs[j] = p2 * (w if w > zero else zero) / p1
    elif kind == 1:  # arctangent: (alpha / 2) / (1 + (pi alpha (m - v_th) / 2)^2)
        for j in range(n):
            w = c0 * (mt[j] - p1) * c1  # c1 = 1/2: exactly the division by 2, without a divide
            hs[j] = (one / (one + w * w)) * p3
    elif kind == 2:  # sigmoid: alpha sig (1 - sig), sig = sigmoid(alpha (m - v_th))
        if fast_exp:  # float32: exp(z) = 2^k e^r, vectorised (see above)
            for j in range(n):
                z = min(max(-(p2 * (mt[j] - p1)), EXP_LO), EXP_HI)
                k = np.floor(z * LOG2E + HALF)
                r = z - k * LN2_HI - k * LN2_LO
                e = EXP_P0
                e = e * r + EXP_P1
                e = e * r + EXP_P2
                e = e * r + EXP_P3
                e = e * r + EXP_P4
                e = e * r + EXP_P5
                hs[j] = e * (r * r) + r + one
                two_k[j] = (np.int32(k) + np.int32(127)) << np.int32(23)  # the bits of 2^k
            for j in range(n):
                sig = one / (one + hs[j] * two_k_f[j])
                hs[j] = p2 * sig * (one - sig)
        else:
            for j in range(n):
                sig = one / (one + np.exp(-(p2 * (mt[j] - p1))))
                hs[j] = p2 * sig * (one - sig)
    else:  # rectangle: 1/(2a) on |m - v_th - center| < a
        for j in range(n):
            hs[j] = (one if abs(mt[j] - p1 - p3) < p2 else zero) / c0


@_helper
def _back_step(kind, mt, gst, gmt, has_gm, hs, carry, gxt, total, static, q):
    """One reverse step (``torch_backward``'s arithmetic): ``carry`` updated in
    place; the input gradient written to ``gxt``, or added to ``total``."""
    n = carry.shape[0]
    p0, p1, c0, c1, one, zero = q[0], q[1], q[4], q[5], q[6], q[7]
    if kind == 0:
        for j in range(n):
            cj = carry[j]
            g = (gst[j] - cj * p0 * p1) * hs[j] + cj * p0
            if has_gm:
                g = g + gmt[j]
            carry[j] = g
            if static:
                total[j] = total[j] + c1 * g
            else:
                gxt[j] = c1 * g
    elif kind == 1:
        for j in range(n):
            g = gst[j] * hs[j] + carry[j] * p0
            if has_gm:
                g = g + gmt[j]
            carry[j] = g
            if static:
                total[j] = total[j] + g
            else:
                gxt[j] = g
    elif kind == 2:
        for j in range(n):
            cj = carry[j]
            mj = mt[j]
            f = one if mj - p1 > zero else zero
            g = cj * (one - f) + (gst[j] - cj * mj) * hs[j]
            if has_gm:
                g = g + gmt[j]
            carry[j] = g * c0
            if static:
                total[j] = total[j] + g / p0
            else:
                gxt[j] = g / p0
    else:
        for j in range(n):
            cj = carry[j]
            mj = mt[j]
            f = one if mj - p1 > zero else zero
            g = (gst[j] - cj * p0 * mj) * hs[j] + cj * p0 * (one - f)
            if has_gm:
                g = g + gmt[j]
            carry[j] = g
            if static:
                total[j] = total[j] + g
            else:
                gxt[j] = g


def _forward(kind, x, x_step, s, s8, m, T, M, q, keep_m, keep_s8, block):
    """Spikes ``s`` (and ``m``, ``s8``) of all T steps; ``q`` the constants of :func:`constants`.

    Every step of a block is read and written through slices indexed from 0:
    numba then knows no index is negative (no wrap-around test) and LLVM
    vectorises the loops.
    """
    nblocks = (M + block - 1) // block
    for b in prange(nblocks):
        lo = b * block
        n = min(block, M - lo)
        zero = q[4]
        state = np.zeros(n, dtype=s.dtype)
        spk = np.zeros(n, dtype=s.dtype)
        unused = np.zeros(0 if keep_m else n, dtype=s.dtype)  # (not aliasing spk: see _backward)
        for t in range(T):
            xt = x[t * x_step + lo:t * x_step + lo + n]
            mt = m[t * M + lo:t * M + lo + n] if keep_m else unused
            _step(kind, xt, state, spk, mt, keep_m, q)
            st = s[t * M + lo:t * M + lo + n]
            for j in range(n):
                st[j] = spk[j]
            if keep_s8:
                s8t = s8[t * M + lo:t * M + lo + n]
                for j in range(n):
                    s8t[j] = np.uint8(1) if spk[j] != zero else np.uint8(0)


def _backward(kind, m, gs, gs_step, gm, gm_step, has_gm, gx, static, T, M, q, block, fast_exp):
    """d loss / d input from the saved membrane, in reverse time (``torch_backward``'s arithmetic)."""
    nblocks = (M + block - 1) // block
    for b in prange(nblocks):
        lo = b * block
        n = min(block, M - lo)
        carry = np.zeros(n, dtype=m.dtype)
        total = np.zeros(n, dtype=m.dtype)
        hs = np.zeros(n, dtype=m.dtype)
        two_k = np.zeros(n if fast_exp else 0, dtype=np.int32)
        two_k_f = two_k.view(np.float32)
        # not written for a static input; a separate array, or LLVM sees it may
        # alias ``total`` and gives up vectorising
        unused = np.zeros(n if static else 0, dtype=m.dtype)
        for t in range(T - 1, -1, -1):
            mt = m[t * M + lo:t * M + lo + n]
            gst = gs[t * gs_step + lo:t * gs_step + lo + n]
            gmt = gm[t * gm_step + lo:t * gm_step + lo + n] if has_gm else gst
            gxt = unused if static else gx[t * M + lo:t * M + lo + n]
            _surrogate(kind, mt, hs, two_k, two_k_f, q, fast_exp)
            _back_step(kind, mt, gst, gmt, has_gm, hs, carry, gxt, total, static, q)
        if static:
            gxs = gx[lo:lo + n]
            for j in range(n):
                gxs[j] = total[j]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
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


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
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


@_helper
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


def _neuron_linear_backward(kind, m, x, x_step, recompute, qf, T, B, N, q, w, g, gs, has_gs, gs_step, gm, has_gm, gx,
                            static, dw, out_kind, q_out, m_out, gs_out, gs_out_step, gm_out, gm_out_step, has_gm_out,
                            rows, chunk, fast_exp):
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
    spike is 0)."""
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
                    if kind == 0:
                        for j in range(N):
                            f[j] = one if (mt[j] - p1) / p1 > zero else zero
                    else:
                        for j in range(N):
                            f[j] = one if mt[j] - p1 > zero else zero
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


@_helper
def _nonzero(v):
    """How many entries of ``v`` are not 0 (a vectorised count)."""
    n = 0
    for u in range(v.shape[0]):
        n += v[u] != 0
    return n


@_helper
def _list_spikes(xr, ix, pos):
    """The columns of the non-zero entries of row ``xr`` listed in ``ix`` from
    ``pos`` on; returns the new end.  The row is read in windows of 64, a
    window without a spike costing one vectorised test; a window with one is
    read again in four of 16, and only those with a spike are listed
    (branch-free: every column is written, the end moves past the spikes)."""
    for w in range((xr.shape[0] + 63) // 64):
        xw = xr[w * 64:w * 64 + 64]
        if _nonzero(xw):
            for v in range((xw.shape[0] + 15) // 16):
                xv = xw[v * 16:v * 16 + 16]
                if _nonzero(xv):
                    for u in range(xv.shape[0]):
                        ix[pos] = w * 64 + v * 16 + u
                        pos += xv[u] != 0
    return pos


@_helper
def _list_loose_bytes(x, lo, hi, J, ix, ir, pos):
    """:func:`_list_bytes` for the few bytes ``x[lo:hi]`` outside whole words, one at a time."""
    for o in range(lo, hi):
        ix[pos] = o % J
        ir[pos] = o // J
        pos += x[o] != 0
    return pos


@_helper
def _list_bytes(x, words, lo, hi, J, ix, ir, pos):
    """The non-zero bytes of ``x[lo:hi]`` (one-byte spikes, rows of ``J``) listed
    from ``pos`` on, column in ``ix`` and row in ``ir``; returns the new end.
    ``words`` is ``x`` read as 8-byte words (little-endian): a word without a
    spike costs one test, and the bytes of a word with one are listed
    branch-free (one division per such word finds its row; its 8 bytes span
    at most two rows when J >= 8, and each byte's row is found by steps
    otherwise).  (Testing a window of words first, as :func:`_list_spikes`
    does for floats, was slower: 0.85 against 0.44 ms for the synthetic
    task's input on one core.)"""
    zero = np.uint64(0)
    wlo = min((lo + 7) // 8, hi // 8)
    whi = max(hi // 8, wlo)
    pos = _list_loose_bytes(x, lo, wlo * 8, J, ix, ir, pos)  # before the first whole word
    for wi in range(wlo, whi):
        word = words[wi]
        if word != zero:
            r = (wi * 8) // J
            c = wi * 8 - r * J
            for k in range(8):
                while c >= J:
                    c -= J
                    r += 1
                ix[pos] = c
                ir[pos] = r
                pos += ((word >> np.uint64(8 * k)) & np.uint64(255)) != zero
                c += 1
    return _list_loose_bytes(x, max(whi * 8, lo), hi, J, ix, ir, pos)  # after the last whole word


def _synaptic_input(x, words, in_bytes, T, B, J, w1t, b1, y1, idx, rows, chunk_len, chunk_bad, chunk):
    """The synthetic network's input layer by accumulation: y1[t, :, b] = b1 + the
    rows of W1^T at the spikes of x[t, b] (``x`` flat [T*B*J]), each task
    taking ``chunk`` whole steps.  The spikes are listed (column ``idx``, row
    ``rows`` = t B + b, from ``c * chunk * B * J`` on for chunk c), then their
    weight rows added in that order (by column within a row, as a dense
    product's terms).  Float spikes are found row by row (:func:`_list_spikes`);
    one-byte spikes (``in_bytes``; ``words``: ``x`` as 8-byte words) over the
    chunk's whole memory at once (:func:`_list_bytes`), 8 inputs per test."""
    H = w1t.shape[1]
    nch = (T + chunk - 1) // chunk
    for c in prange(nch):
        t0 = c * chunk
        t1 = min(T, t0 + chunk)
        ix = idx[t0 * B * J:t1 * B * J]
        ir = rows[t0 * B * J:t1 * B * J]
        pos = 0
        bad = 0
        if in_bytes:
            pos = _list_bytes(x, words, t0 * B * J, t1 * B * J, J, ix, ir, pos)
        else:
            for r in range(t0 * B, t1 * B):
                start = pos
                pos = _list_spikes(x[r * J:(r + 1) * J], ix, pos)
                for e in range(start, pos):
                    ir[e] = r
        for t in range(t0, t1):
            for h in range(H):
                y1[(t * H + h) * B:(t * H + h + 1) * B] = b1[h]
        t = t0
        for e in range(pos):
            r = ir[e]
            while r >= (t + 1) * B:
                t += 1
            b = r - t * B
            j = ix[e]
            bad += x[r * J + j] != 1
            for h in range(H):
                y1[(t * H + h) * B + b] += w1t[j, h]
        chunk_len[c] = pos
        chunk_bad[c] = bad


def _synaptic_forward(y1, T, B, w2, b2, decay, q, m, s, o, rows):
    """The rest of the synthetic network, vectorised over samples (``rows`` per
    task; every tensor [T, layer, B]): I = decay I + y1, the soft-reset neuron
    (:func:`_step`'s arithmetic; membranes ``m``, spikes ``s``), the readout
    W2 s + b2 and its synapse (``o``)."""
    C, H = w2.shape
    nblocks = (B + rows - 1) // rows
    for blk in prange(nblocks):
        lo = blk * rows
        n = min(rows, B - lo)
        a, v_th, c_in, one, zero = q[0], q[1], q[2], q[3], q[4]
        syn = np.zeros((H, n), dtype=m.dtype)
        state = np.zeros((H, n), dtype=m.dtype)
        spk = np.zeros((H, n), dtype=m.dtype)
        out = np.zeros((C, n), dtype=m.dtype)
        acc = np.zeros(n, dtype=m.dtype)
        for t in range(T):
            for h in range(H):
                sy, st, sp = syn[h], state[h], spk[h]
                o_ = (t * H + h) * B + lo
                yt, mt, stt = y1[o_:o_ + n], m[o_:o_ + n], s[o_:o_ + n]
                for i in range(n):
                    sy[i] = decay * sy[i] + yt[i]  # the input synapse
                    v = a * (st[i] - v_th * sp[i]) + c_in * sy[i]  # the soft-reset neuron
                    st[i] = v
                    sp[i] = one if (v - v_th) / v_th > zero else zero
                    mt[i] = v
                    stt[i] = sp[i]
            for c in range(C):  # the readout and its synapse
                for i in range(n):
                    acc[i] = b2[c]
                for h in range(H):
                    wch = w2[c, h]
                    sp = spk[h]
                    for i in range(n):
                        acc[i] += wch * sp[i]
                oc = out[c]
                o_ = (t * C + c) * B + lo
                ot = o[o_:o_ + n]
                for i in range(n):
                    oc[i] = decay * oc[i] + acc[i]
                    ot[i] = oc[i]


def _synaptic_backward(m, T, B, w2, go, go_step, decay, q, gi, dw2, db2, db1, rows):
    """The backward pass of :func:`_synaptic_forward`, in reverse time, vectorised
    over samples: the readout synapse and readout, the soft neuron's reverse
    step (:func:`_surrogate` and :func:`_back_step`'s arithmetic), the input
    synapse; writes the input layer's output gradient ``gi`` [T, H, B] and adds
    per-sample parts of the other gradients to ``dw2`` [C, H, B] etc."""
    C, H = w2.shape
    nblocks = (B + rows - 1) // rows
    for blk in prange(nblocks):
        lo = blk * rows
        n = min(rows, B - lo)
        a, v_th, alpha, width, c_in, zero = q[0], q[1], q[2], q[3], q[5], q[7]
        carry_o = np.zeros((C, n), dtype=m.dtype)
        carry_v = np.zeros((H, n), dtype=m.dtype)
        carry_i = np.zeros((H, n), dtype=m.dtype)
        gs = np.zeros((H, n), dtype=m.dtype)
        fired = np.zeros((H, n), dtype=m.dtype)
        for t in range(T - 1, -1, -1):
            for h in range(H):
                o_ = (t * H + h) * B + lo
                mt, fh = m[o_:o_ + n], fired[h]
                for i in range(n):
                    fh[i] = 1 if (mt[i] - v_th) / v_th > zero else 0
                gs[h, :] = zero
            for c in range(C):  # readout synapse, reversed; the readout's gradients
                o_ = (t * go_step + c) * B + lo
                gt, co, d2 = go[o_:o_ + n], carry_o[c], db2[c, lo:lo + n]
                for i in range(n):
                    co[i] = gt[i] + decay * co[i]
                    d2[i] += co[i]
                for h in range(H):
                    wch = w2[c, h]
                    gsh, fh, d = gs[h], fired[h], dw2[c, h, lo:lo + n]
                    for i in range(n):
                        gsh[i] += co[i] * wch
                        d[i] += co[i] * fh[i]
            for h in range(H):
                o_ = (t * H + h) * B + lo
                mt, gsh, cv, ci = m[o_:o_ + n], gs[h], carry_v[h], carry_i[h]
                git, d1 = gi[o_:o_ + n], db1[h, lo:lo + n]
                for i in range(n):
                    w = width - abs((mt[i] - v_th) / v_th)
                    hh = alpha * (w if w > zero else zero) / v_th
                    cj = cv[i]
                    gv = (gsh[i] - cj * a * v_th) * hh + cj * a
                    cv[i] = gv
                    g = c_in * gv + decay * ci[i]  # input synapse, reversed
                    ci[i] = g
                    git[i] = g
                    d1[i] += g


def _synaptic_input_wgrad(gi, T, B, idx, rows, dw1):
    """W1's gradient [H, J] from the input spikes: dw1[:, j] += gi[t, :, b]."""
    H = dw1.shape[0]
    dw1[:] = 0
    for e in range(idx.shape[0]):
        r = rows[e]
        t = r // B
        b = r - t * B
        j = idx[e]
        for h in range(H):
            dw1[h, j] += gi[(t * H + h) * B + b]


def _spike_bytes(x, out, chunk):
    """``out`` = the inputs ``x`` as one byte each (1 where non-zero) in one pass,
    ``chunk`` inputs per task; returns how many are neither 0 nor 1 (then the
    bytes do not say what ``x`` does)."""
    n = x.shape[0]
    bad = 0
    for c in prange((n + chunk - 1) // chunk):
        lo = c * chunk
        xc = x[lo:min(n, lo + chunk)]
        oc = out[lo:min(n, lo + chunk)]
        for i in range(xc.shape[0]):
            v = xc[i]
            oc[i] = np.uint8(1) if v != 0 else np.uint8(0)
            bad += (v != 0) & (v != 1)
    return bad


def _filter(x, y, T, M, decay, reverse, block):
    """y[t] = decay y[t -/+ 1] + x[t] (forward: the synapse; reversed: its gradient)."""
    nblocks = (M + block - 1) // block
    for b in prange(nblocks):
        lo = b * block
        n = min(block, M - lo)
        acc = np.zeros(n, dtype=y.dtype)
        for k in range(T):
            t = T - 1 - k if reverse else k
            xt = x[t * M + lo:t * M + lo + n]
            yt = y[t * M + lo:t * M + lo + n]
            if reverse:
                for j in range(n):
                    a = xt[j] + decay * acc[j]
                    acc[j] = a
                    yt[j] = a
            else:
                for j in range(n):
                    a = decay * acc[j] + xt[j]
                    acc[j] = a
                    yt[j] = a


def _spike_linear(x, wt, bias, has_bias, y, idx, rows, chunk_len, chunk_bad, chunk):
    """y = x W^T + b for binary ``x`` [R, J], as accumulation: row r of y is the bias
    plus the rows of ``wt`` = W^T [J, K] at the spikes of row r of x.

    Each chunk of ``chunk`` rows lists its spikes, column in ``idx`` and row in
    ``rows``, from ``c * chunk * J`` on (``chunk_len`` of them): what the
    weight gradient needs.  Sparse rows are read by :func:`_list_spikes`;
    after a row with more than one spike in 16 the next row is listed without
    its tests (branch-free).  ``chunk_bad`` counts the inputs that are neither 0 nor 1
    (the caller then computes a dense product instead).
    """
    R, J = x.shape
    K = wt.shape[1]
    nch = (R + chunk - 1) // chunk
    for c in prange(nch):
        r0 = c * chunk
        r1 = min(R, r0 + chunk)
        ix = idx[r0 * J:r1 * J]
        ir = rows[r0 * J:r1 * J]
        acc = np.empty(K, dtype=y.dtype)
        pos = 0
        bad = 0
        dense = False
        for r in range(r0, r1):
            xr = x[r]
            start = pos
            if dense:
                for j in range(J):
                    ix[pos] = j
                    pos += xr[j] != 0
            else:
                pos = _list_spikes(xr, ix, pos)
            n = pos - start
            dense = n * 16 > J
            for e in range(start, pos):
                bad += xr[ix[e]] != 1
                ir[e] = r
            for k in range(K):
                acc[k] = bias[k] if has_bias else 0
            e = start
            while e + 4 <= pos:  # four weight rows per pass over the accumulator
                w0, w1, w2, w3 = wt[ix[e]], wt[ix[e + 1]], wt[ix[e + 2]], wt[ix[e + 3]]
                for k in range(K):
                    acc[k] += (w0[k] + w1[k]) + (w2[k] + w3[k])
                e += 4
            while e < pos:
                w0 = wt[ix[e]]
                for k in range(K):
                    acc[k] += w0[k]
                e += 1
            yr = y[r]
            for k in range(K):
                yr[k] = acc[k]
        chunk_len[c] = pos
        chunk_bad[c] = bad


def _spike_linear_wgrad(g, idx, rows, acc, per):
    """W^T's gradient, ``acc`` [parts, J, K] (one per part of ``per`` spikes, summed
    by the caller): row j gets the output gradient of every row with a spike at j."""
    K = g.shape[1]
    n = idx.shape[0]
    parts = acc.shape[0]
    for c in prange(parts):
        a = acc[c]
        a[:] = 0
        for e in range(c * per, min(n, (c + 1) * per)):
            j = idx[e]
            r = rows[e]
            for k in range(K):
                a[j, k] += g[r, k]


def _compile(fn, parallel):
    """``fn`` compiled, threaded or not.  Each variant is a copy of ``fn`` under its
    own name: numba's disk cache tells functions apart by name and bytecode,
    not by compile options, so two variants of one function would load each
    other's code."""
    name = f"{fn.__name__}_{'parallel' if parallel else 'serial'}"
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = fn.__doc__
    return njit(parallel=parallel, cache=True, nogil=True, error_model="numpy")(copy)


_forward_parallel, _forward_serial = _compile(_forward, True), _compile(_forward, False)
_backward_parallel, _backward_serial = _compile(_backward, True), _compile(_backward, False)
_filter_parallel, _filter_serial = _compile(_filter, True), _compile(_filter, False)
_spike_linear_parallel, _spike_linear_serial = _compile(_spike_linear, True), _compile(_spike_linear, False)
_wgrad_parallel, _wgrad_serial = _compile(_spike_linear_wgrad, True), _compile(_spike_linear_wgrad, False)
_nl_forward_parallel, _nl_forward_serial = _compile(_neuron_linear_forward, True), _compile(_neuron_linear_forward, False)
_nl_backward_parallel, _nl_backward_serial = (_compile(_neuron_linear_backward, True),
                                              _compile(_neuron_linear_backward, False))
_syn_input_parallel, _syn_input_serial = _compile(_synaptic_input, True), _compile(_synaptic_input, False)
_syn_forward_parallel, _syn_forward_serial = _compile(_synaptic_forward, True), _compile(_synaptic_forward, False)
_syn_backward_parallel, _syn_backward_serial = _compile(_synaptic_backward, True), _compile(_synaptic_backward, False)
_syn_input_wgrad = _compile(_synaptic_input_wgrad, False)
_spike_bytes_parallel, _spike_bytes_serial = _compile(_spike_bytes, True), _compile(_spike_bytes, False)


# ------------------------------------------------------------------ threads
def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(n: int | None = None) -> int:
    """Numba's thread count: ``n``, or the cores available (at most what numba started with)."""
    n = cpu_count() if n is None else int(n)
    n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def torch_openmp_library() -> str | None:
    """The OpenMP runtime PyTorch loaded (the libgomp inside its wheel), if any."""
    folder = os.path.join(os.path.dirname(torch.__file__), "lib")
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith("libgomp") and ".so" in n)
    except OSError:
        return None
    return os.path.join(folder, names[0]) if names else None


def openmp_shared_with_torch() -> bool:
    """Whether an OpenMP call from numba's OpenMP layer lands in PyTorch's libgomp:
    the process's global symbol scope (searched first by every library's
    lookups) resolves ``GOMP_parallel`` to PyTorch's copy.  Then the two share
    one pool of threads."""
    import ctypes

    path = torch_openmp_library()
    if path is None:
        return False
    try:
        first = ctypes.cast(ctypes.CDLL(None).GOMP_parallel, ctypes.c_void_p).value
        torchs = ctypes.cast(ctypes.CDLL(path).GOMP_parallel, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return False
    return first == torchs


def thread_info() -> dict:
    """What the device record says about the CPU engine's threads."""
    sync_threads()
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = numba.config.THREADING_LAYER
    return {"numba": numba.__version__, "numba_threads": numba.get_num_threads(), "numba_threading_layer": layer,
            "numba_shares_torch_threads": layer == "omp" and openmp_shared_with_torch(),
            "numba_parallel_min_neuron_steps": PARALLEL_MIN}


set_threads()


# ------------------------------------------------------------------ constants
def constants(kind: str, p, dtype: np.dtype, backward: bool) -> np.ndarray:
    """The kernels' constants in ``dtype``, each rounded once from the Python float
    PyTorch would use as a scalar operand (``1 - a`` is computed in double, then rounded).
    One array per argument set, shared by every call: the kernels only read it."""
    return _constants(kind, tuple(float(v) for v in p), np.dtype(dtype), backward)


@functools.lru_cache(maxsize=None)
def _absent(dtype: torch.dtype) -> np.ndarray:
    """The one-value array a kernel is given for an argument it does not read (made once per dtype:
    no kernel writes it)."""
    return torch.zeros(1, dtype=dtype).numpy()


@functools.lru_cache(maxsize=256)
def _constants(kind: str, p: tuple[float, ...], dtype: np.dtype, backward: bool) -> np.ndarray:
    q = list(p) + [0.0] * (4 - len(p))
    if not backward:
        extra = 1.0 - q[0] if kind == "soft" else 0.0
        return np.array([q[0], q[1], extra, 1.0, 0.0], dtype=dtype)
    c0 = c1 = 0.0
    if kind == "soft":
        c1 = 1.0 - q[0]
    elif kind == "subtractive":  # (pi alpha (m - v_th)) / 2 as a product by 1/2; (alpha / 2) in q[3]
        c0, c1 = math.pi * q[2], 0.5
        q[3] = q[2] / 2.0
    elif kind == "hard":
        c0 = 1.0 - 1.0 / q[0]
    else:  # stbp: the rectangle's height 1 / (2a)
        c0 = 2.0 * q[2]
    return np.array(q[:4] + [c0, c1, 1.0, 0.0], dtype=dtype)


def _plan(T: int, M: int):
    """(kernel variant, block size): one thread for small layers, else about one block per thread."""
    threads = numba.get_num_threads()
    if T * M < PARALLEL_MIN or threads == 1:
        return False, min(M, MAX_BLOCK)
    block = -(-M // threads)
    return True, max(MIN_BLOCK, min(MAX_BLOCK, block))


# ------------------------------------------------------------------ entry points (NumPy arrays)
def neuron_forward(kind: str, x: np.ndarray, x_step: int, T: int, M: int, p, s: np.ndarray,
                   m: np.ndarray | None, s8: np.ndarray | None) -> None:
    """Fill ``s`` (and ``m``, ``s8``): flat arrays of ``T * M``; ``x`` flat, step ``t`` at ``t * x_step``."""
    q = constants(kind, p, s.dtype, backward=False)
    parallel, block = _plan(T, M)
    fn = _forward_parallel if parallel else _forward_serial
    fn(KIND_CODES[kind], x, x_step, s, s8 if s8 is not None else np.empty(0, np.uint8), s if m is None else m,
       T, M, q, m is not None, s8 is not None, block)


def neuron_backward(kind: str, m: np.ndarray, T: int, M: int, p, gs: np.ndarray, gs_step: int,
                    gm: np.ndarray | None, gm_step: int, gx: np.ndarray, static: bool) -> None:
    """Fill ``gx`` (``T * M``, or ``M`` summed over time when ``static``)."""
    q = constants(kind, p, m.dtype, backward=True)
    parallel, block = _plan(T, M)
    fn = _backward_parallel if parallel else _backward_serial
    fn(KIND_CODES[kind], m, gs, gs_step, gs if gm is None else gm, gm_step, gm is not None, gx, static, T, M, q,
       block, m.dtype == np.float32)


def synapse(x: np.ndarray, y: np.ndarray, T: int, M: int, decay: float, reverse: bool) -> None:
    parallel, block = _plan(T, M)
    fn = _filter_parallel if parallel else _filter_serial
    fn(x, y, T, M, y.dtype.type(decay), reverse, block)


# ------------------------------------------------------------------ entry points (torch tensors)
_threads_set = [0]


def sync_threads() -> int:
    """Numba's thread count follows PyTorch's (``torch.set_num_threads``, by default
    the cores available): one setting for the whole step."""
    n = torch.get_num_threads()
    if n != _threads_set[0]:
        _threads_set[0] = set_threads(n)
    return _threads_set[0]


def _flat(t):
    """A flat NumPy view of the memory of a dense CPU tensor (no copy): its values in memory order."""
    # called some 500 times a training step of dsrn_tdbn: NumPy's ravel in memory
    # order is a view of a dense array in any layout (channels-last included), in
    # a third of the time of an as_strided view; of anything else, a copy
    flat = t.detach().numpy().ravel(order="K")
    if flat.base is None:
        raise ValueError(f"a kernel reads and writes dense tensors; got shape {tuple(t.shape)}, strides {t.stride()}")
    return flat


def _over_steps(g, reference):
    """``(flat array, step stride)`` of a ``[T, ...]`` tensor in ``reference``'s layout;
    a tensor broadcast over time (stride 0, e.g. the gradient of a mean over time)
    is read as one step."""
    from .layout import like

    T, M = reference.shape[0], reference[0].numel()
    if T > 1 and g.stride(0) == 0 and g[0].stride() == reference[0].stride():
        return _flat(g[0]), 0
    return _flat(like(reference, g)), M


def torch_neuron_forward(kind: str, x, p, steps: int | None, keep_membrane: bool, spikes8: bool = False):
    """Spikes ``[T, ...]`` in ``x``'s dtype and, with ``keep_membrane``, membranes (the same
    dtype); with ``spikes8``, ``(spikes, membranes, one-byte spikes)``.  Every output
    has ``x``'s layout (any dense time-major one: channels-last stays channels-last)."""
    from . import layout

    sync_threads()
    if steps is None:
        x = layout.time_major(x)
        T, M, x_step = x.shape[0], x[0].numel(), x[0].numel()
        s = layout.empty_like_layout(x)
    else:
        x = layout.static(x)
        T, M, x_step = steps, x.numel(), 0
        s = layout.over_time(x, steps, x.dtype)
    m = layout.empty_like_layout(s) if keep_membrane else None
    s8 = layout.empty_like_layout(s, layout.torch.uint8) if spikes8 else None
    if T > 0 and M > 0:
        neuron_forward(kind, _flat(x), x_step, T, M, p, _flat(s), None if m is None else _flat(m),
                       None if s8 is None else _flat(s8))
    return (s, m, s8) if spikes8 else (s, m)


def torch_neuron_backward(kind: str, m, p, grad_s, grad_m, static: bool):
    """d loss / d input: ``[T, ...]``, or ``[...]`` summed over time for a static input
    (in the membrane's layout)."""
    from . import layout

    sync_threads()
    m = layout.time_major(m)
    T, M = m.shape[0], m[0].numel()
    if grad_s is None:
        grad_s = torch.zeros((), dtype=m.dtype).expand(m.shape)
    gs, gs_step = _over_steps(grad_s.to(m.dtype), m)
    gm, gm_step = (None, 0) if grad_m is None else _over_steps(grad_m.to(m.dtype), m)
    gx = layout.empty_like_layout(m[0] if static else m)
    if T > 0 and M > 0:
        neuron_backward(kind, _flat(m), T, M, p, gs, gs_step, gm, gm_step, _flat(gx), static)
    elif static:
        gx.zero_()
    return gx


def torch_synapse(x, decay: float, reverse: bool):
    """The exponential synapse over ``[T, ...]`` (``reverse``: its gradient), in ``x``'s layout."""
    from . import layout

    sync_threads()
    x = layout.time_major(x)
    y = layout.empty_like_layout(x)
    T = x.shape[0]
    M = x[0].numel() if T else 0
    if T > 0 and M > 0:
        synapse(_flat(x), _flat(y), T, M, decay, reverse)
    return y


def _row_chunks(R: int, work: int):
    """(kernel variant index, rows per chunk): about four chunks per thread for
    load balance, one chunk when the work is small."""
    threads = numba.get_num_threads()
    if work < PARALLEL_MIN or threads == 1:
        return False, max(R, 1)
    return True, max(1, -(-R // (4 * threads)))


def torch_spike_linear(x, weight, bias):
    """``(x W^T + b, (rows, cols))`` for spikes ``x`` [R, J] (contiguous): the spikes'
    positions (int32); ``(x W^T + b, None)``, a dense product, when an input is neither 0 nor 1."""
    from .dense_linear import matmul_nt

    sync_threads()
    R, J = x.shape
    K = weight.shape[0]
    parallel, chunk = _row_chunks(R, R * J)
    wt = weight.detach().t().contiguous()
    y = torch.empty((R, K), dtype=x.dtype)
    # room for every input to be a spike; only the pages written are ever touched
    cols = torch.empty(R * J, dtype=torch.int32)
    rows = torch.empty(R * J, dtype=torch.int32)
    nch = -(-R // chunk)
    chunk_len = torch.empty(nch, dtype=torch.int64)
    chunk_bad = torch.empty(nch, dtype=torch.int64)
    b = _flat(bias) if bias is not None else _absent(y.dtype)
    fn = _spike_linear_parallel if parallel else _spike_linear_serial
    fn(x.numpy(), wt.numpy(), b, bias is not None, y.numpy(), _flat(cols), _flat(rows),
       _flat(chunk_len), _flat(chunk_bad), chunk)
    if int(chunk_bad.sum()):
        return matmul_nt(x, weight, bias), None
    lengths = chunk_len.tolist()
    if nch == 1:
        return y, (rows[:lengths[0]].clone(), cols[:lengths[0]].clone())
    parts = [(c * chunk * J, n) for c, n in enumerate(lengths)]
    return y, tuple(torch.cat([t[o:o + n] for o, n in parts]) for t in (rows, cols))


def torch_spike_linear_wgrad(g, rows, cols, J: int):
    """The weight gradient [K, J] of a spike linear layer from its output gradient ``g`` [R, K]."""
    sync_threads()
    K = g.shape[1]
    n = cols.numel()
    threads = numba.get_num_threads()
    parallel = n * K >= PARALLEL_MIN and threads > 1
    parts = threads if parallel else 1
    acc = torch.empty((parts, J, K), dtype=g.dtype)
    fn = _wgrad_parallel if parallel else _wgrad_serial
    fn(g.numpy(), _flat(cols), _flat(rows), acc.numpy(), max(1, -(-n // parts)))
    total = acc[0] if parts == 1 else acc.sum(0)
    return total.t().contiguous()


def _sample_blocks(B: int, work: int):
    """(threaded, samples per task) for the neuron + linear kernels."""
    threads = numba.get_num_threads()
    if work < PARALLEL_MIN or threads == 1 or B == 1:
        return False, max(B, 1)
    return True, -(-B // threads)


def torch_neuron_linear_forward(kind: str, x, p, steps: int | None, weight, bias, keep_membrane: bool,
                                out_kind: str, out_p):
    """``(spikes8 [T, B, N] uint8, membranes [T, B, N] or None, output spikes [T, B, K],
    output membranes [T, B, K])`` of a neuron layer fed ``x`` ([T, B, N], or static
    [B, N] with ``steps``), the linear layer it feeds and the output neuron layer
    (``out_kind``, ``out_p``) fed that; the membranes written only with ``keep_membrane``."""
    sync_threads()
    x = x.contiguous()
    if steps is None:
        T, B, N = x.shape
        x_step = B * N
    else:
        (B, N), T = x.shape, steps
        x_step = 0
    K = weight.shape[0]
    m = torch.empty((T, B, N) if keep_membrane else (0,), dtype=x.dtype)
    s8 = torch.empty((T, B, N), dtype=torch.uint8)
    y = torch.empty((T * B, K), dtype=x.dtype)
    s_out, m_out = torch.empty((T, B, K), dtype=x.dtype), torch.empty((T, B, K), dtype=x.dtype)
    w = weight.detach().contiguous()
    b = _flat(bias) if bias is not None else _absent(y.dtype)
    dtype = m.numpy().dtype
    parallel, rows = _sample_blocks(B, T * B * N)
    fn = _nl_forward_parallel if parallel else _nl_forward_serial
    fn(KIND_CODES[kind], _flat(x), x_step, T, B, N, constants(kind, p, dtype, backward=False), w.numpy(), b,
       bias is not None, y.numpy(), _flat(s8), _flat(m), keep_membrane, KIND_CODES[out_kind],
       constants(out_kind, out_p, dtype, backward=False), _flat(s_out), _flat(m_out), rows)
    return s8, (m if keep_membrane else None), s_out, m_out


def torch_neuron_linear_backward(kind: str, saved, p, weight, m_out, out_kind: str, out_p, grad_s_out, grad_m_out,
                                 static: bool, steps: int | None = None, grad_m=None):
    """``(d loss / d x, d loss / d weight, d loss / d bias)`` of
    :func:`torch_neuron_linear_forward`, from the gradients of the output layer's spikes
    and membranes and of the hidden membranes (``grad_m``; any may be None).  ``saved``
    is the hidden membranes [T, B, N], or -- with ``steps`` -- the layer's input ([B, N]
    static, or [T, B, N]), from which each sample's membranes are computed again."""
    sync_threads()
    recompute = steps is not None
    if recompute:
        x = saved.contiguous()
        T = steps
        B, N = x.shape[-2:]
        x_step = 0 if x.dim() == 2 else B * N
        m, dtype = _absent(x.dtype), x.dtype
    else:
        T, B, N = saved.shape
        x, x_step, m, dtype = _absent(saved.dtype), 0, _flat(saved), saved.dtype
    K = weight.shape[0]
    none = _absent(dtype)
    if grad_s_out is None:  # zeros, read as one step
        gs_out, gs_out_step = np.zeros(B * K, dtype=none.dtype), 0
    else:
        gs_out, gs_out_step = _over_steps(grad_s_out.to(dtype), m_out)
    gm_out, gm_out_step = (None, 0) if grad_m_out is None else _over_steps(grad_m_out.to(dtype), m_out)
    g = torch.empty((T * B, K), dtype=dtype)  # the gradient of the linear layer's output, written by the kernel
    gx = torch.empty((B, N) if static else (T, B, N), dtype=dtype)
    parallel, rows = _sample_blocks(B, T * B * N)
    nblocks = -(-B // rows)
    dw = torch.empty((nblocks, K, N), dtype=dtype)
    npdtype = gx.numpy().dtype
    # recomputing: four samples' membranes at a time (a group for W's gradient; [4, T, N]
    # stays in the core's L2 for T * N up to some 100 000); else all of a task's samples
    chunk = 4 if recompute else rows
    gm = none if grad_m is None else _flat(grad_m.to(dtype).contiguous())
    fn = _nl_backward_parallel if parallel else _nl_backward_serial
    fn(KIND_CODES[kind], m, _flat(x) if recompute else x, x_step, recompute,
       constants(kind, p, npdtype, backward=False), T, B, N, constants(kind, p, npdtype, backward=True),
       weight.detach().contiguous().numpy(), g.numpy(),
       none, False, 0, gm, grad_m is not None, _flat(gx), static, dw.numpy(), KIND_CODES[out_kind],
       constants(out_kind, out_p, npdtype, backward=True), _flat(m_out), gs_out, gs_out_step,
       none if gm_out is None else gm_out, gm_out_step, grad_m_out is not None, rows, chunk, dtype == torch.float32)
    for task in range(1, nblocks):  # the tasks' parts of W's gradient (a handful of adds: cheaper than a sum)
        dw[0].add_(dw[task])
    return gx, dw[0], g.sum(0)


def torch_spike_bytes(x):
    """``x`` (a float CPU tensor) as one byte per input, or ``None`` when some input
    is neither 0 nor 1: one pass, instead of PyTorch's test of every input and
    a conversion (about 5 ms for synthetic's 5.12 M inputs, at every step the
    training loop stages)."""
    sync_threads()
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.uint8)
    parallel, chunk = _row_chunks(x.numel(), x.numel())
    fn = _spike_bytes_parallel if parallel else _spike_bytes_serial
    return None if fn(_flat(x), _flat(out), chunk) else out


def _synaptic_blocks(T: int, B: int, H: int):
    """(threaded, samples per task) for the synthetic network's kernels, which
    cost about a neuron-step per hidden neuron and step: at the task's size
    (204 800) one thread takes 0.06 ms forward and 0.15 ms backward, two
    0.16 and 0.25 ms (waking numba's pool costs about 0.1 ms)."""
    return _sample_blocks(B, T * B * H)


def torch_synaptic_forward(x, w1, b1, w2, b2, decay: float, p):
    """``(spikes [T, B, H], membranes [T, H, B], O [T, B, C], (rows, idx))`` of the
    synthetic network on spikes ``x`` [T, B, J] (spikes and O are views of
    [T, layer, B] memory); ``None`` when an input is neither 0 nor 1 (the
    caller runs the layers apart)."""
    sync_threads()
    x = x.contiguous()
    T, B, J = x.shape
    H, C = w1.shape[0], w2.shape[0]
    dt = w1.dtype
    npdt = w1.detach().numpy().dtype
    R = T * B
    flat = _flat(x)
    in_bytes = x.dtype == torch.uint8 and sys.byteorder == "little"
    words = flat[:flat.size - flat.size % 8].view(np.uint64) if in_bytes else np.zeros(0, np.uint64)
    y1 = torch.empty((T, H, B), dtype=dt)
    cols = torch.empty(R * J, dtype=torch.int32)  # room for every input; only what is written is touched
    rows = torch.empty(R * J, dtype=torch.int32)
    parallel, chunk = _row_chunks(T, R * J)  # chunks of whole steps
    nch = -(-T // chunk)
    chunk_len = torch.empty(nch, dtype=torch.int64)
    chunk_bad = torch.empty(nch, dtype=torch.int64)
    fn = _syn_input_parallel if parallel else _syn_input_serial
    fn(flat, words, in_bytes, T, B, J, w1.detach().t().contiguous().numpy(), _flat(b1.detach()), _flat(y1),
       _flat(cols), _flat(rows), _flat(chunk_len), _flat(chunk_bad), chunk)
    if int(chunk_bad.sum()):
        return None
    lengths = chunk_len.tolist()
    parts = [(c * chunk * B * J, n) for c, n in enumerate(lengths)]
    rows, cols = (torch.cat([t[o:o + n] for o, n in parts]) if nch > 1 else t[:lengths[0]].clone()
                  for t in (rows, cols))
    m = torch.empty((T, H, B), dtype=dt)
    s = torch.empty((T, H, B), dtype=dt)
    o = torch.empty((T, C, B), dtype=dt)
    q = constants("soft", p, npdt, backward=False)
    parallel, block = _synaptic_blocks(T, B, H)
    fn = _syn_forward_parallel if parallel else _syn_forward_serial
    fn(_flat(y1), T, B, w2.detach().contiguous().numpy(), _flat(b2.detach()), npdt.type(decay), q,
       _flat(m), _flat(s), _flat(o), block)
    # O [T, B, C] contiguous: the loss's mean and the scores' max over time read it
    return s.transpose(1, 2), m, o.transpose(1, 2).contiguous(), (rows, cols)


def torch_synaptic_backward(m, w2, grad_o, decay: float, p, rows, cols, J: int):
    """``(dW1, db1, dW2, db2)`` of :func:`torch_synaptic_forward` from the gradient of O [T, B, C]."""
    sync_threads()
    T, H, B = m.shape
    C = w2.shape[0]
    dt = m.dtype
    npdt = m.numpy().dtype
    g = grad_o.to(dt)
    if T > 1 and g.stride(0) == 0:  # the gradient of a mean over time: one step, read T times
        go, go_step = g[0].t().contiguous(), 0
    else:
        go, go_step = g.transpose(1, 2).contiguous(), C
    gi = torch.empty((T, H, B), dtype=dt)
    dw2 = torch.zeros((C, H, B), dtype=dt)
    db2 = torch.zeros((C, B), dtype=dt)
    db1 = torch.zeros((H, B), dtype=dt)
    q = constants("soft", p, npdt, backward=True)
    parallel, block = _synaptic_blocks(T, B, H)
    fn = _syn_backward_parallel if parallel else _syn_backward_serial
    fn(_flat(m), T, B, w2.detach().contiguous().numpy(), _flat(go), go_step, npdt.type(decay), q, _flat(gi),
       dw2.numpy(), db2.numpy(), db1.numpy(), block)
    dw1 = torch.empty((H, J), dtype=dt)
    _syn_input_wgrad(_flat(gi), T, B, _flat(cols), _flat(rows), dw1.numpy())
    return dw1, db1.sum(1), dw2.sum(2), db2.sum(1)
