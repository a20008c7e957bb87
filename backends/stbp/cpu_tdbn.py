"""tdBN and the neuron layer it feeds, as one node on the CPU: the torch tensors' entry points
(the kernels: :mod:`backends.stbp.cpu_tdbn_node`)."""

from __future__ import annotations

import functools

import numba
import numpy as np
import torch

from . import cpu_kernels, layout
from .cpu_kernels import _absent, _flat
from .cpu_neuron import KIND_CODES, constants
from .cpu_tdbn_node import (  # the rows of the sums are read by the node (backends.stbp.tdbn_neuron) here
    G_R_WEIGHT,  # noqa: F401
    G_WEIGHT,  # noqa: F401
    GSUM,  # noqa: F401
    INVSTD,
    MEAN,
    MEAN_G,
    MEAN_GDOT,
    R_MEAN_GDOT,
    SCALE,
    SHIFT,
    VAR,  # noqa: F401
    _backward_parallel,
    _backward_serial,
    _batch_constants,
    _forward_parallel,
    _forward_serial,
    _gradient_constants,
    _input_grad_parallel,
    _input_grad_serial,
    _stats_nhwc_parallel,
    _stats_nhwc_serial,
    _stats_parallel,
    _stats_serial,
    _tasks_per_sample,
)
from .cpu_threads import sync_threads

# values per task: a task's scratch (a few arrays of this length, T of them
# for the recomputed membranes) stays in the core's L2 cache
TASK_VALUES = 4096


def _plan(T: int, B: int, C: int, HW: int):
    """(threaded, channel planes per task): a task holds about TASK_VALUES values per step."""
    threaded = T * B * C * HW >= cpu_kernels.PARALLEL_MIN and numba.get_num_threads() > 1
    return threaded, max(1, min(C, TASK_VALUES // max(HW, 1)))


def _plan_nhwc(T: int, B: int, C: int, HW: int):
    """(threaded, positions per task): about TASK_VALUES values per step, the runs of a
    sample as even as whole positions allow."""
    threaded = T * B * C * HW >= cpu_kernels.PARALLEL_MIN and numba.get_num_threads() > 1
    per_sample = -(-HW // max(1, TASK_VALUES // max(C, 1)))
    return threaded, -(-HW // per_sample)


def _dims(x: torch.Tensor):
    T, B, C, H, W = x.shape
    return T, B, C, H * W


def _channels_last(x: torch.Tensor) -> bool:
    """Whether the kernels read ``x`` as channels-last steps (NCHW when it is both: C or H W of 1)."""
    return not x.is_contiguous() and layout.channels_last_steps(x)


def _residual(x, residual, residual_consts):
    """(flat array, mode) of the residual in ``x``'s layout: none (0), added as it is (1), or
    normalised (2: with tdBN constants)."""
    if residual is None:
        return _absent(x.dtype), 0
    if residual_consts is None and residual.dtype == torch.uint8:  # spikes in one byte: added as 0 or 1
        return _flat(layout.like(x, residual)), 1
    return _flat(layout.like(x, residual.to(x.dtype))), 1 if residual_consts is None else 2


@functools.lru_cache(maxsize=8)
def _absent_rows(dtype: torch.dtype) -> np.ndarray:
    return np.zeros((5, 1), dtype=_absent(dtype).dtype)  # (no kernel writes it)


def _rows(consts, x):
    """The NumPy rows of tdBN constants, or the placeholder of absent ones."""
    return _absent_rows(x.dtype) if consts is None else consts.numpy()


def torch_tdbn_batch(x, weight, bias, factor: float, eps: float, momentum: float, running_mean, running_var,
                     count: int | None = None):
    """tdBN in training on ``x`` [T, B, C, H, W]: its constants per channel ``[5, C]``, rows
    ``MEAN, VAR, INVSTD, SCALE, SHIFT`` (the batch mean and biased variance, 1 / sqrt(variance + eps),
    and the scale and shift tdBN folds into, y = scale x + shift, its weight times ``factor``), in
    ``x``'s dtype; the running statistics updated in place (:func:`_batch_constants`) as for ``count``
    values a channel (by default its T B H W).  Each plane's moments in one read (float64),
    combined over the planes (Chan's rule)."""
    sync_threads()
    x = layout.steps_of_images(x)
    T, B, C, HW = _dims(x)
    sums = np.empty((B, C), dtype=np.float64)
    m2s = np.empty((B, C), dtype=np.float64)
    if _channels_last(x):
        threaded = _plan_nhwc(T, B, C, HW)[0]
        fn = _stats_nhwc_parallel if threaded else _stats_nhwc_serial
        fn(_flat(x), T, B, C, HW, sums, m2s)
    else:
        threaded, channels = _plan(T, B, C, HW)
        fn = _stats_parallel if threaded else _stats_serial
        fn(_flat(x), T, B, C, HW, sums, m2s, channels)
    consts = torch.empty((5, C), dtype=x.dtype)
    out = consts.numpy()
    n = T * B * HW if count is None else count
    k = np.array([factor, eps, momentum, 1 - momentum, 1, n, n - 1], dtype=out.dtype)
    _batch_constants(sums, m2s, T * HW, _flat(weight), _flat(bias), k, running_mean.numpy(), running_var.numpy(), out)
    return consts


def torch_tdbn_neuron_forward(kind: str, x, p, consts, residual=None, residual_consts=None):
    """``(spikes, one-byte spikes)`` ``[T, B, C, H, W]`` of neuron ``kind`` fed ``scale_c x + shift_c``
    (tdBN, its constants ``consts`` from :func:`torch_tdbn_batch`) plus ``residual``: as it is, or
    through its own tdBN (``residual_consts``).  The spikes have ``x``'s layout (NCHW or
    channels-last steps)."""
    sync_threads()
    x = layout.steps_of_images(x)
    T, B, C, HW = _dims(x)
    s = layout.empty_like_layout(x)
    s8 = layout.empty_like_layout(x, torch.uint8)
    r, r_mode = _residual(x, residual, residual_consts)
    c, rc = consts.numpy(), _rows(residual_consts, x)
    nhwc = _channels_last(x)
    threaded, split = (_plan_nhwc if nhwc else _plan)(T, B, C, HW)
    fn = _forward_parallel if threaded else _forward_serial
    fn(KIND_CODES[kind], _flat(x), r, r_mode, T, B, C, HW, c[SCALE], c[SHIFT], rc[SCALE], rc[SHIFT],
       constants(kind, p, c.dtype, backward=False), _flat(s), _flat(s8), split, nhwc)
    return s, s8


def torch_tdbn_neuron_backward(kind: str, x, p, consts, grad_s, factor: float, residual=None, residual_consts=None,
                               residual_factor: float = 0.0, x_grad: bool = True, residual_grad: bool = False):
    """``(gradient of x or None, of the residual or None, sums [6, C])`` of the node of
    :func:`torch_tdbn_neuron_forward`, the gradients in ``x``'s layout.  The gradient ``g`` of the
    neuron's input and, per channel (:func:`_gradient_constants`), its sums plain and times x_hat
    (tdBN's bias gradient ``GSUM``, its weight's ``G_WEIGHT``: times ``factor``), and times the
    normalised residual (its tdBN's weight gradient ``G_R_WEIGHT``; zeros for a plain residual),
    each sum also divided by the n values of a channel (``MEAN_G``...); then tdBN's input
    gradients (:func:`_tdbn_input_grad`), x's written over ``g`` where the residual's is not ``g``."""
    sync_threads()
    x = layout.steps_of_images(x)
    T, B, C, HW = _dims(x)
    g = layout.empty_like_layout(x)
    r, r_mode = _residual(x, residual, residual_consts)
    c, rc = consts.numpy(), _rows(residual_consts, x)
    nhwc = _channels_last(x)
    threaded, split = (_plan_nhwc if nhwc else _plan)(T, B, C, HW)
    rows = B * _tasks_per_sample(split, C, HW, True) if nhwc else B  # channels-last: a row of sums per task
    dtype = c.dtype
    gsum, gdot, r_gdot = (np.empty((rows, C), dtype=dtype) for _ in range(3))
    fn = _backward_parallel if threaded else _backward_serial
    xf, gf = _flat(x), _flat(g)
    fn(KIND_CODES[kind], xf, r, r_mode, _flat(layout.like(x, grad_s.to(x.dtype))), T, B, C, HW,
       c[SCALE], c[SHIFT], rc[SCALE], rc[SHIFT], c[MEAN], c[INVSTD], rc[MEAN], rc[INVSTD],
       constants(kind, p, dtype, backward=False), constants(kind, p, dtype, backward=True), gf,
       gsum, gdot, r_gdot, split, nhwc, x.dtype == torch.float32)
    sums = torch.empty((6, C), dtype=x.dtype)
    m = sums.numpy()
    _gradient_constants(gsum, gdot, r_gdot, np.array([factor, residual_factor, T * B * HW], dtype=dtype), m)
    input_grad = _input_grad_parallel if threaded else _input_grad_serial
    gr = None
    if residual is not None and residual_grad:
        gr = g
        if residual_consts is not None:  # BatchNorm's input gradient; g is still needed for x's
            gr = layout.empty_like_layout(g)
            input_grad(gf, r, T, B, C, HW, rc[SCALE], m[MEAN_G], m[R_MEAN_GDOT], rc[MEAN], rc[INVSTD],
                       _flat(gr), False, split, nhwc)
    gx = None
    if x_grad:
        in_place = gr is not g
        gx = g if in_place else layout.empty_like_layout(g)
        input_grad(gf, xf, T, B, C, HW, c[SCALE], m[MEAN_G], m[MEAN_GDOT], c[MEAN], c[INVSTD],
                   _flat(gx), in_place, split, nhwc)
    return gx, gr, sums
