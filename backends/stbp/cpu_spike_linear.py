"""Linear layers of binary inputs on the CPU, as accumulation of weight rows at the spikes
(see :mod:`backends.stbp.spike_linear`).

Also the listing of spikes (float rows, or one-byte spikes eight at a time) the
synthetic network's input layer shares, and the one-pass conversion of float
spikes to one byte each.
"""

import numpy as np
from numba import prange

from .cpu_cache import helper, variants


@helper
def _nonzero(v):
    """How many entries of ``v`` are not 0 (a vectorised count)."""
    n = 0
    for u in range(v.shape[0]):
        n += v[u] != 0
    return n


@helper
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


@helper
def _list_loose_bytes(x, lo, hi, J, ix, ir, pos):
    """:func:`_list_bytes` for the few bytes ``x[lo:hi]`` outside whole words, one at a time."""
    for o in range(lo, hi):
        ix[pos] = o % J
        ir[pos] = o // J
        pos += x[o] != 0
    return pos


@helper
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


_spike_linear_parallel, _spike_linear_serial = variants(_spike_linear)
_wgrad_parallel, _wgrad_serial = variants(_spike_linear_wgrad)
_spike_bytes_parallel, _spike_bytes_serial = variants(_spike_bytes)
