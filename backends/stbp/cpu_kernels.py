"""The CPU engine's entry points (see :mod:`backends.stbp.multistep`): torch tensors in, numba kernels
run, torch tensors out.

The CPU counterpart of :mod:`backends.stbp.kernels`: one call covers all T
steps of a layer, or a whole fused node.  The kernels live one module per node
(``cpu_neuron_node``, ``cpu_neuron_linear_node``, ``cpu_spike_linear``,
``cpu_synaptic_node``, ``cpu_tdbn_node``), the neuron arithmetic they share in
``cpu_neuron``, the threads in ``cpu_threads``; this module picks a kernel
variant (threaded or not) and its task size, and hands it the tensors' memory.

Tensors go in and out as NumPy views of the torch tensors' memory (no
copy); they must be contiguous with step ``t`` at ``t * M``.  A tensor whose
every step is the same (a static input, or a gradient broadcast over time)
is passed as one step with a step stride of 0.

Compiled code is cached on disk (:mod:`backends.stbp.cpu_cache`, keyed on the
source of every module a kernel compiles in): the first use on a machine
compiles (a few seconds per kernel and dtype), later processes load it.
"""

from __future__ import annotations

import functools
import sys

import numba
import numpy as np
import torch

from .cpu_neuron import KIND_CODES, constants
from .cpu_neuron_linear_node import (
    _nl_backward_parallel,
    _nl_backward_serial,
    _nl_forward_parallel,
    _nl_forward_serial,
)
from .cpu_neuron_node import (
    _backward_parallel,
    _backward_serial,
    _filter_parallel,
    _filter_serial,
    _forward_parallel,
    _forward_serial,
)
from .cpu_spike_linear import (
    _spike_bytes_parallel,
    _spike_bytes_serial,
    _spike_linear_parallel,
    _spike_linear_serial,
    _wgrad_parallel,
    _wgrad_serial,
)
from .cpu_synaptic_node import (
    _syn_backward_parallel,
    _syn_backward_serial,
    _syn_forward_parallel,
    _syn_forward_serial,
    _syn_input_parallel,
    _syn_input_serial,
    _syn_input_wgrad,
)
from .cpu_threads import openmp_shared_with_torch, sync_threads

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


@functools.lru_cache(maxsize=None)
def _absent(dtype: torch.dtype) -> np.ndarray:
    """The one-value array a kernel is given for an argument it does not read (made once per dtype:
    no kernel writes it)."""
    return torch.zeros(1, dtype=dtype).numpy()


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
    out = (KIND_CODES[out_kind], constants(out_kind, out_p, npdtype, backward=True), _flat(m_out), gs_out,
           gs_out_step, none if gm_out is None else gm_out, gm_out_step, grad_m_out is not None)
    fn(KIND_CODES[kind], constants(kind, p, npdtype, backward=True), constants(kind, p, npdtype, backward=False),
       m, _flat(x) if recompute else x, x_step, recompute, T, B, N, weight.detach().contiguous().numpy(), g.numpy(),
       (none, 0, False, gm, grad_m is not None), _flat(gx), static, dw.numpy(), out, (rows, chunk),
       dtype == torch.float32)
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
