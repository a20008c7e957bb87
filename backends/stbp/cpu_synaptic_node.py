"""The synthetic task's network as one node on the CPU (see :mod:`backends.stbp.synaptic`).

Spikes -> linear -> synapse -> soft-reset neuron -> linear readout -> synapse,
every tensor [T, layer, B] so that the neuron and the synapses run vectorised
over samples.  The neuron's arithmetic is :func:`~backends.stbp.cpu_neuron._step`'s
(and :func:`~backends.stbp.cpu_neuron._surrogate`'s and
:func:`~backends.stbp.cpu_neuron._back_step`'s), written out along samples.
"""

import numpy as np
from numba import prange

from .cpu_cache import one_thread, variants
from .cpu_spike_linear import _list_bytes, _list_spikes


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


_syn_input_parallel, _syn_input_serial = variants(_synaptic_input)
_syn_forward_parallel, _syn_forward_serial = variants(_synaptic_forward)
_syn_backward_parallel, _syn_backward_serial = variants(_synaptic_backward)
_syn_input_wgrad = one_thread(_synaptic_input_wgrad)
