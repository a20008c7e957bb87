"""The fused neuron layer on the CPU: one call covers all T steps, forward or in reverse (and the synapse's filter).

The neurons of one step are cut into blocks; each block is one task of a
``prange`` loop (the cores share the blocks), keeps its state in a small local
array (in the L1 cache) and walks time.  No Python runs per time step.

The forward writes the spikes (in the input's dtype) and, when asked, the
membrane the backward pass reads and a one-byte copy of the spikes.  The
backward reads the membrane and the gradients of the spikes (and of the
membrane, where it is used) and writes the input gradient, summed over time in
the same pass for a static input.  Arrays are flat with step ``t`` at ``t * M``;
one whose every step is the same (a static input, a gradient broadcast over
time) is passed as one step with a step stride of 0.
"""

import numpy as np
from numba import prange

from .cpu_cache import variants
from .cpu_neuron import _back_step, _step, _surrogate


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


_forward_parallel, _forward_serial = variants(_forward)
_backward_parallel, _backward_serial = variants(_backward)
_filter_parallel, _filter_serial = variants(_filter)
