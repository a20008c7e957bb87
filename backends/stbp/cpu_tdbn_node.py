"""tdBN and the neuron layer it feeds as one node on the CPU: its numba kernels (see :mod:`backends.stbp.tdbn_neuron`).

A tdBN + neuron pair run apart writes the normalised input ``y`` and the
membrane ``m`` forward, and keeps three tensors the size of the layer per
time step for the backward pass: tdBN's input ``x``, and the membrane (the
spikes, one byte each, are kept by the next convolution).  Here the forward
reads ``x`` once (after its per-channel statistics), normalises it in cache,
adds the block's residual where there is one, runs the neuron over all T and
writes the spikes (a float and a one-byte copy) -- nothing else.  The
backward recomputes the membranes from ``x`` (a few multiply-adds per
neuron-step, in a scratch array the size of one task's neurons times T),
walks time in reverse to the gradient ``g`` of the neuron's input, and sums
per channel what tdBN's backward needs; a second pass turns ``g`` into the
gradient of ``x``.  What the node keeps is ``x`` (which the pair kept too),
and the residual (spikes: their one-byte copy, already kept for the block's
first convolution, which both passes read as they are: 0 or 1 added).

Layout: ``x``, the residual, the spikes and the gradients are ``[T, B, C, H, W]``
tensors in one layout: NCHW at every step (contiguous), or channels-last at
every step (the kernels' ``nhwc`` switch, below).  In NCHW a task owns a run of whole
channel planes of one sample (``channels`` of them, ``HW`` values each), the
same run at every step, so no two tasks write the same value or the same
per-(sample, channel) sum.  The neuron arithmetic is :mod:`backends.stbp.cpu_neuron`'s
(``_step``, ``_surrogate``, ``_back_step``): the same operations as the
PyTorch engine, in the tensors' dtype (float32 or float64).
"""

import numpy as np
from numba import prange

from .cpu_cache import helper, plain, reassociating, variants
from .cpu_neuron import _back_step, _step, _surrogate

# the rows of a tdBN's per-channel constants (torch_tdbn_batch) and of the node's
# per-channel gradient sums (torch_tdbn_neuron_backward)
MEAN, VAR, INVSTD, SCALE, SHIFT = range(5)
GSUM, G_WEIGHT, G_R_WEIGHT, MEAN_G, MEAN_GDOT, R_MEAN_GDOT = range(6)


@helper
def _planes(task, per_sample, channels, C):
    """(sample -- or step and sample --, first channel, channels) of ``task``: a run of
    whole channel planes, ``per_sample`` tasks to a sample."""
    c0 = (task % per_sample) * channels
    return task // per_sample, c0, min(channels, C - c0)


@helper
def _normalise(x, r, r_mode, off, c0, nc, HW, a, b, ar, br, z):
    """z = a_c x + b_c over ``nc`` channel planes starting at ``x[off]`` (channel ``c0``), plus the
    residual: ``r`` itself (``r_mode`` 1) or normalised, ar_c r + br_c (``r_mode`` 2)."""
    for ci in range(nc):
        ac = a[c0 + ci]
        bc = b[c0 + ci]
        xs = x[off + ci * HW:off + (ci + 1) * HW]
        zs = z[ci * HW:(ci + 1) * HW]
        for j in range(HW):
            zs[j] = xs[j] * ac + bc
        if r_mode == 2:
            arc = ar[c0 + ci]
            brc = br[c0 + ci]
            rs = r[off + ci * HW:off + (ci + 1) * HW]
            for j in range(HW):
                zs[j] = zs[j] + (rs[j] * arc + brc)
    if r_mode == 1:
        n = nc * HW
        rs = r[off:off + n]
        for j in range(n):
            z[j] = z[j] + rs[j]


@reassociating
def _sums(g, x, mean, invstd, zero):
    """(sum g, sum g (x - mean) invstd), each in any order (so that LLVM vectorises them)."""
    acc_s = zero
    acc_d = zero
    for j in range(g.shape[0]):
        acc_s += g[j]
        acc_d += g[j] * ((x[j] - mean) * invstd)
    return acc_s, acc_d


@helper
def _shifted_moments(shift, s1, s2, n, zero):
    """(sum, sum of squared deviations from the mean) of n values from the sums s1 and s2 of their
    deviations d = x - shift and of d^2 (s2 - s1^2 / n, never below zero from rounding)."""
    return shift * n + s1, max(s2 - s1 * s1 / n, zero)


@reassociating
def _plane_moments(x, lo, hi, T, step, zero):
    """(sum, sum of squared deviations from the plane's own mean) of ``x[t * step + lo:t * step + hi]``
    over all T, in float64, in one read: the sums of d = x - x[lo] and of d^2 (each in any order,
    so that LLVM vectorises them), deviations from a value of the plane itself, so that the
    difference s2 - s1^2 / n loses nothing that float64 would not."""
    shift = x[lo] + zero
    s1 = zero
    s2 = zero
    for t in range(T):
        xs = x[t * step + lo:t * step + hi]
        for j in range(xs.shape[0]):
            d = xs[j] - shift
            s1 += d
            s2 += d * d
    return _shifted_moments(shift, s1, s2, (hi - lo) * T, zero)


def _tdbn_stats(x, T, B, C, HW, sums, m2s, channels):
    """Per sample and channel, the sum of the plane's T * HW values and their squared
    deviations from its own mean (float64): combined over samples by :func:`torch_tdbn_batch`."""
    per_sample = (C + channels - 1) // channels
    step = B * C * HW
    zero = np.float64(0.0)
    for task in prange(B * per_sample):
        bi, c0, nc = _planes(task, per_sample, channels, C)
        for c in range(c0, c0 + nc):
            lo = (bi * C + c) * HW
            sums[bi, c], m2s[bi, c] = _plane_moments(x, lo, lo + HW, T, step, zero)


@plain
def _combine_moments(sums, m2s, per_plane, mean, var):
    """Chan's rule over the samples' planes, in float64, rounded once into ``mean`` and ``var``
    (a few hundred values: a dozen PyTorch calls cost more than the arithmetic)."""
    B, C = sums.shape
    n = B * per_plane
    for c in range(C):
        total = 0.0
        for bi in range(B):
            total += sums[bi, c]
        mu = total / n
        m2 = 0.0
        for bi in range(B):
            m2 += m2s[bi, c]
        spread = 0.0
        for bi in range(B):
            d = sums[bi, c] / per_plane - mu
            spread += per_plane * (d * d)
        mean[c] = mu
        var[c] = (m2 + spread) / n


@plain
def _batch_constants(sums, m2s, per_plane, weight, bias, k, running_mean, running_var, out):
    """From the planes' moments (:func:`_combine_moments`), per channel: ``out`` = (mean, biased
    variance, invstd = 1 / sqrt(variance + eps), scale = invstd weight factor, shift = bias - mean
    scale), and the running statistics: r_mean (1 - momentum) + momentum mean, r_var (1 - momentum)
    + momentum var n / (n - 1) (the unbiased variance of the n values a channel has); ``k`` = (factor,
    eps, momentum, 1 - momentum, 1, n, n - 1) in the arrays' dtype.  The operations, their order and dtype
    are those of tdBN's PyTorch code (:class:`~backends.torch_networks.TdBN`); here one call
    instead of some twenty PyTorch calls on C values, each costing more than its arithmetic."""
    mean, var, invstd, scale, shift = out[0], out[1], out[2], out[3], out[4]
    _combine_moments(sums, m2s, per_plane, mean, var)
    factor, eps, momentum, keep, one, n, n1 = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    for c in range(mean.shape[0]):
        running_mean[c] = running_mean[c] * keep + momentum * mean[c]
        running_var[c] = running_var[c] * keep + momentum * var[c] * n / n1
        invstd[c] = one / np.sqrt(var[c] + eps)
        scale[c] = invstd[c] * (weight[c] * factor)
        shift[c] = bias[c] - mean[c] * scale[c]


@plain
def _gradient_constants(gsum, gdot, r_gdot, k, out):
    """The per-channel sums of the node's backward, its tasks' rows added (in order): ``out`` =
    (sum g, sum g x_hat times the factor -- tdBN's weight gradient --, sum g r_hat times the
    residual tdBN's factor, sum g / n, sum g x_hat / n, sum g r_hat / n); ``k`` = (factor,
    residual factor, n) in the arrays' dtype."""
    factor, r_factor, n = k[0], k[1], k[2]
    for c in range(gsum.shape[1]):
        s = gsum[0, c]
        d = gdot[0, c]
        r = r_gdot[0, c]
        for row in range(1, gsum.shape[0]):
            s += gsum[row, c]
            d += gdot[row, c]
            r += r_gdot[row, c]
        out[0, c] = s
        out[1, c] = d * factor
        out[2, c] = r * r_factor
        out[3, c] = s / n
        out[4, c] = d / n
        out[5, c] = r / n


# ------------------------------------------------------------------ channels-last (NHWC) steps
# The same node where every step is channels-last (the layout of oneDNN's
# fastest CPU convolutions, which feed and read it): ``[T, B, C, H, W]`` with
# strides ``(B HW C, HW C, 1, W C, C)``.  A task owns a run of whole positions
# of one sample (all C channels of each), a contiguous run of memory at every
# step; the per-channel arithmetic runs along the C values of a position.


@helper
def _positions(task, per_sample, positions, HW):
    """(sample -- or step and sample --, first position, positions) of ``task``: a run of
    whole positions, ``per_sample`` tasks to a sample."""
    p0 = (task % per_sample) * positions
    return task // per_sample, p0, min(positions, HW - p0)


@helper
def _normalise_nhwc(x, r, r_mode, off, npos, C, a, b, ar, br, z):
    """:func:`_normalise` over ``npos`` positions starting at ``x[off]`` (C values each): the
    same operations on each value, along the channels of a position."""
    for p in range(npos):
        xs = x[off + p * C:off + (p + 1) * C]
        zs = z[p * C:(p + 1) * C]
        for c in range(C):
            zs[c] = xs[c] * a[c] + b[c]
        if r_mode == 2:
            rs = r[off + p * C:off + (p + 1) * C]
            for c in range(C):
                zs[c] = zs[c] + (rs[c] * ar[c] + br[c])
    if r_mode == 1:
        n = npos * C
        rs = r[off:off + n]
        for j in range(n):
            z[j] = z[j] + rs[j]


def _tdbn_stats_nhwc(x, T, B, C, HW, sums, m2s):
    """:func:`_tdbn_stats` of channels-last steps: one task per sample (so that each
    (sample, channel) gathers the T * HW values :func:`_combine_moments` expects), the
    moments in one read as :func:`_plane_moments` takes them (deviations from the sample's
    first value of each channel)."""
    step = B * HW * C
    n = T * HW
    for bi in prange(B):
        shift = np.empty(C, dtype=np.float64)
        s1 = np.zeros(C, dtype=np.float64)
        s2 = np.zeros(C, dtype=np.float64)
        first = x[bi * HW * C:(bi * HW + 1) * C]
        for c in range(C):
            shift[c] = first[c]
        for t in range(T):
            for p in range(HW):
                xs = x[t * step + (bi * HW + p) * C:t * step + (bi * HW + p + 1) * C]
                for c in range(C):
                    d = xs[c] - shift[c]
                    s1[c] += d
                    s2[c] += d * d
        for c in range(C):
            sums[bi, c], m2s[bi, c] = _shifted_moments(shift[c], s1[c], s2[c], n, 0.0)


# ------------------------------------------------------------------ the node, either layout
# ``nhwc`` picks the layout; ``split`` is the channel planes (NCHW) or the
# positions (channels-last) of a task.  A task's run starts at
# ``t * B * C * HW + base`` at step t in both.


@helper
def _tasks_per_sample(split, C, HW, nhwc):
    return (HW + split - 1) // split if nhwc else (C + split - 1) // split


@helper
def _run(task, per_sample, split, C, HW, nhwc):
    """(sample -- or step and sample --, the run's offset at step 0, its first channel or
    position, how many, its values) of ``task``."""
    if nhwc:
        bi, p0, npos = _positions(task, per_sample, split, HW)
        return bi, (bi * HW + p0) * C, p0, npos, npos * C
    bi, c0, nc = _planes(task, per_sample, split, C)
    return bi, (bi * C + c0) * HW, c0, nc, nc * HW


@helper
def _normalise_run(x, r, r_mode, off, first, count, C, HW, nhwc, a, b, ar, br, z):
    if nhwc:
        _normalise_nhwc(x, r, r_mode, off, count, C, a, b, ar, br, z)
    else:
        _normalise(x, r, r_mode, off, first, count, HW, a, b, ar, br, z)


def _tdbn_neuron_forward(kind, x, r, r_mode, T, B, C, HW, a, b, ar, br, q, s, s8, split, nhwc):
    """Spikes ``s`` and their one-byte copy ``s8`` of neuron ``kind`` fed tdBN(x) + the residual."""
    per_sample = _tasks_per_sample(split, C, HW, nhwc)
    step = B * C * HW
    for task in prange(B * per_sample):
        bi, base, first, count, n = _run(task, per_sample, split, C, HW, nhwc)
        zero = q[4]
        z = np.zeros(n, dtype=s.dtype)
        state = np.zeros(n, dtype=s.dtype)
        spk = np.zeros(n, dtype=s.dtype)
        unused = np.zeros(n, dtype=s.dtype)  # no membrane written (not aliasing spk)
        for t in range(T):
            off = t * step + base
            _normalise_run(x, r, r_mode, off, first, count, C, HW, nhwc, a, b, ar, br, z)
            _step(kind, z, state, spk, unused, False, q)
            st = s[off:off + n]
            s8t = s8[off:off + n]
            for j in range(n):
                st[j] = spk[j]
                s8t[j] = np.uint8(1) if spk[j] != zero else np.uint8(0)


@helper
def _sums_planes(gt, x, r, r_mode, off, c0, nc, HW, mean, invstd, r_mean, r_invstd, sums, dots, r_dots, zero):
    """Adds one step's per-channel sums of ``gt`` (``nc`` planes from channel ``c0``) to
    ``sums``, ``dots`` and ``r_dots`` (indexed by plane)."""
    for ci in range(nc):
        gc = gt[ci * HW:(ci + 1) * HW]
        lo = off + ci * HW
        acc_s, acc_d = _sums(gc, x[lo:lo + HW], mean[c0 + ci], invstd[c0 + ci], zero)
        sums[ci] += acc_s
        dots[ci] += acc_d
        if r_mode == 2:
            r_dots[ci] += _sums(gc, r[lo:lo + HW], r_mean[c0 + ci], r_invstd[c0 + ci], zero)[1]


@helper
def _sums_positions(gt, x, r, r_mode, off, npos, C, mean, invstd, r_mean, r_invstd, sums, dots, r_dots):
    """Adds one step's per-channel sums of ``gt`` (``npos`` positions) to ``sums``, ``dots`` and
    ``r_dots`` (indexed by channel)."""
    for p in range(npos):
        gp = gt[p * C:(p + 1) * C]
        xp = x[off + p * C:off + (p + 1) * C]
        for c in range(C):
            sums[c] += gp[c]
            dots[c] += gp[c] * ((xp[c] - mean[c]) * invstd[c])
        if r_mode == 2:
            rp = r[off + p * C:off + (p + 1) * C]
            for c in range(C):
                r_dots[c] += gp[c] * ((rp[c] - r_mean[c]) * r_invstd[c])


def _tdbn_neuron_backward(kind, x, r, r_mode, gs, T, B, C, HW, a, b, ar, br, mean, invstd, r_mean, r_invstd,
                          qf, qb, g, gsum, gdot, r_gdot, split, nhwc, fast_exp):
    """The gradient ``g`` of the neuron's input (= of a plain residual), and the per-channel
    sums the tdBN backward passes need: ``gsum`` = sum g, ``gdot`` = sum g x_hat, and, for a
    normalised residual, ``r_gdot`` = sum g r_hat -- per sample (NCHW: ``[B, C]``) or per
    task (channels-last: ``[B * tasks per sample, C]``)."""
    per_sample = _tasks_per_sample(split, C, HW, nhwc)
    step = B * C * HW
    for task in prange(B * per_sample):
        bi, base, first, count, n = _run(task, per_sample, split, C, HW, nhwc)
        zero = qb[7]
        z = np.zeros(n, dtype=g.dtype)
        state = np.zeros(n, dtype=g.dtype)
        spk = np.zeros(n, dtype=g.dtype)
        m = np.zeros(T * n, dtype=g.dtype)  # the membranes, recomputed
        for t in range(T):
            _normalise_run(x, r, r_mode, t * step + base, first, count, C, HW, nhwc, a, b, ar, br, z)
            _step(kind, z, state, spk, m[t * n:(t + 1) * n], True, qf)
        carry = np.zeros(n, dtype=g.dtype)
        hs = np.zeros(n, dtype=g.dtype)
        unused = np.zeros(n, dtype=g.dtype)
        two_k = np.zeros(n if fast_exp else 0, dtype=np.int32)
        two_k_f = two_k.view(np.float32)
        width = C if nhwc else count  # the sums' entries: channels, or the task's planes
        sums = np.zeros(width, dtype=g.dtype)
        dots = np.zeros(width, dtype=g.dtype)
        r_dots = np.zeros(width, dtype=g.dtype)
        for t in range(T - 1, -1, -1):
            off = t * step + base
            mt = m[t * n:(t + 1) * n]
            gst = gs[off:off + n]
            gt = g[off:off + n]
            _surrogate(kind, mt, hs, two_k, two_k_f, qb, fast_exp)
            _back_step(kind, mt, gst, gst, False, hs, carry, gt, unused, False, qb)
            if nhwc:
                _sums_positions(gt, x, r, r_mode, off, count, C, mean, invstd, r_mean, r_invstd, sums, dots, r_dots)
            else:
                _sums_planes(gt, x, r, r_mode, off, first, count, HW, mean, invstd, r_mean, r_invstd,
                             sums, dots, r_dots, zero)
        row = np.int64(task) if nhwc else np.int64(bi)  # (prange's index is unsigned)
        c0 = 0 if nhwc else first
        for ci in range(width):
            gsum[row, c0 + ci] = sums[ci]
            gdot[row, c0 + ci] = dots[ci]
            r_gdot[row, c0 + ci] = r_dots[ci]


@helper
def _input_grad_plane(gc, xs, oc, in_place, k, m1, m2, mc, ic):
    """One channel plane of tdBN's input gradient, the channel's values given."""
    if in_place:
        for j in range(gc.shape[0]):
            gc[j] = k * (gc[j] - m1 - ((xs[j] - mc) * ic) * m2)
    else:
        for j in range(gc.shape[0]):
            oc[j] = k * (gc[j] - m1 - ((xs[j] - mc) * ic) * m2)


@helper
def _input_grad_position(gc, xs, oc, in_place, scale, mean_g, mean_gdot, mean, invstd):
    """One position's C values of tdBN's input gradient, channel c at c."""
    if in_place:
        for c in range(gc.shape[0]):
            gc[c] = scale[c] * (gc[c] - mean_g[c] - ((xs[c] - mean[c]) * invstd[c]) * mean_gdot[c])
    else:
        for c in range(gc.shape[0]):
            oc[c] = scale[c] * (gc[c] - mean_g[c] - ((xs[c] - mean[c]) * invstd[c]) * mean_gdot[c])


def _tdbn_input_grad(g, x, T, B, C, HW, scale, mean_g, mean_gdot, mean, invstd, gx, in_place, split, nhwc):
    """tdBN's input gradient: scale_c (g - mean_g_c - x_hat mean_gdot_c), x_hat = (x - mean_c) invstd_c;
    into ``g`` itself when ``in_place`` (``gx`` is then ``g``; one array written: no aliasing for
    LLVM to fear), else into ``gx``."""
    per_sample = _tasks_per_sample(split, C, HW, nhwc)
    L = C if nhwc else HW  # the values of a position, or of a channel plane
    for task in prange(T * B * per_sample):
        tb, base, first, count, n = _run(task, per_sample, split, C, HW, nhwc)
        for i in range(count):
            off = base + i * L
            gc, xs, oc = g[off:off + L], x[off:off + L], gx[off:off + L]
            if nhwc:
                _input_grad_position(gc, xs, oc, in_place, scale, mean_g, mean_gdot, mean, invstd)
            else:
                c = first + i
                _input_grad_plane(gc, xs, oc, in_place, scale[c], mean_g[c], mean_gdot[c], mean[c], invstd[c])


_stats_parallel, _stats_serial = variants(_tdbn_stats)
_stats_nhwc_parallel, _stats_nhwc_serial = variants(_tdbn_stats_nhwc)
_forward_parallel, _forward_serial = variants(_tdbn_neuron_forward)
_backward_parallel, _backward_serial = variants(_tdbn_neuron_backward)
_input_grad_parallel, _input_grad_serial = variants(_tdbn_input_grad)
