"""Multi-step neurons as one autograd node each, with a hand-written backward.

The clear neurons (:mod:`backends.stbp.neurons`) let autograd record every
time step: T small graphs, and every intermediate of every step kept for the
backward pass.  Here a neuron layer is a single :class:`torch.autograd.Function`
over all T steps.  Its forward saves exactly one tensor, the membrane the
spike was read from (``[T, ...]``): the spikes, the surrogate's argument and
the reset can all be recomputed from it.  Its backward walks time in reverse
(back-propagation through time written out for each neuron of
``docs/tasks.md``).

Three engines compute the same recurrences:

* ``triton`` -- :mod:`backends.stbp.kernels`, one kernel launch for all T
  (float32 tensors on a CUDA device);
* ``numba`` -- :mod:`backends.stbp.cpu_kernels`, one compiled call for all T
  on the CPU, the cores sharing blocks of neurons (float32 and float64 CPU
  tensors, where numba is installed);
* ``torch`` -- a PyTorch loop over time with the same saved state (wherever
  neither can run; the reference the others are tested against).

A static input (one ``[B, ...]`` tensor standing for T identical steps, an
image fed at every step) is read at every step without being repeated in
memory, and its gradient is summed over time in the same pass.

The neuron kinds, their parameters (in order) and what the backward uses:

========== ========================== ===========================================
kind       parameters                 recurrence (membrane m saved)
========== ========================== ===========================================
soft       a, v_th, alpha, width      v = a (v - v_th s) + (1 - a) x; s = H((v - v_th)/v_th)
subtractive beta, v_th, alpha         u = beta u + x - v_th H(u_prev - v_th) (detached); s = H(u - v_th)
hard       tau, v_th, alpha           h = v + (x - v)/tau; s = H(h - v_th); v = h (1 - s)
stbp       tau, v_th, a, center       u = tau u (1 - s) + x; s = H(u - v_th)
========== ========================== ===========================================

Surrogates: ``soft`` triangle alpha max(0, width - |z|) on z = (v - v_th)/v_th;
``subtractive`` arctangent (alpha/2)/(1 + (pi alpha z/2)^2); ``hard`` sigmoid
alpha s(alpha z)(1 - s(alpha z)); ``stbp`` rectangle 1/(2a) on |z - center| < a;
z = m - v_th for the last three.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import weakref

import torch

KINDS = ("soft", "subtractive", "hard", "stbp")


# ------------------------------------------------------------------ surrogates
def surrogate(kind: str, m: torch.Tensor, p: tuple[float, ...]) -> torch.Tensor:
    """d spike / d membrane of ``kind`` at membrane ``m``."""
    if kind == "soft":
        a, v_th, alpha, width = p
        return alpha * torch.clamp(width - ((m - v_th) / v_th).abs(), min=0.0) / v_th
    if kind == "subtractive":
        _, v_th, alpha = p
        return (alpha / 2.0) / (1.0 + (math.pi * alpha * (m - v_th) / 2.0) ** 2)
    if kind == "hard":
        _, v_th, alpha = p
        sig = torch.sigmoid(alpha * (m - v_th))
        return alpha * sig * (1.0 - sig)
    if kind == "stbp":
        _, v_th, a, center = p
        return ((m - v_th - center).abs() < a).to(m.dtype) / (2.0 * a)
    raise KeyError(kind)


def fires(kind: str, m: torch.Tensor, p: tuple[float, ...]) -> torch.Tensor:
    """The spike H(.) read from membrane ``m`` (the same comparison as the forward)."""
    v_th = p[1]
    z = (m - v_th) / v_th if kind == "soft" else m - v_th
    return (z > 0).to(m.dtype)


# ------------------------------------------------------------------ torch engine
def _steps(x: torch.Tensor, steps: int | None):
    """The input of each step: ``x[t]``, or the static ``x`` ``steps`` times."""
    return x.unbind(0) if steps is None else [x] * steps


def torch_forward(kind: str, x: torch.Tensor, p: tuple[float, ...], steps: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and saved membranes ``[T, ...]`` (no autograd inside)."""
    spikes, membranes = [], []
    state = torch.zeros_like(x[0] if steps is None else x)
    s = torch.zeros_like(state)
    for x_t in _steps(x, steps):
        if kind == "soft":
            a, v_th = p[0], p[1]
            state = a * (state - v_th * s) + (1.0 - a) * x_t
            m = state
        elif kind == "subtractive":
            beta, v_th = p[0], p[1]
            state = beta * state + x_t - v_th * (state > v_th).to(state.dtype)
            m = state
        elif kind == "hard":
            tau = p[0]
            m = state + (x_t - state) / tau
        elif kind == "stbp":
            tau = p[0]
            state = tau * state * (1.0 - s) + x_t
            m = state
        else:
            raise KeyError(kind)
        s = fires(kind, m, p)
        if kind == "hard":
            state = m * (1.0 - s)
        spikes.append(s)
        membranes.append(m)
    return torch.stack(spikes), torch.stack(membranes)


def torch_backward(kind: str, m: torch.Tensor, p: tuple[float, ...], grad_s: torch.Tensor,
                   grad_m: torch.Tensor | None, static: bool) -> torch.Tensor:
    """d loss / d input from the gradients of the spikes (and membranes), in reverse time.

    ``carry`` is the gradient reaching this step's state from the next step.
    """
    T = m.shape[0]
    carry = torch.zeros_like(m[0])
    grads = []
    total = torch.zeros_like(m[0]) if static else None
    for t in reversed(range(T)):
        m_t, gs = m[t], grad_s[t]
        h = surrogate(kind, m_t, p)
        gm = grad_m[t] if grad_m is not None else 0.0
        if kind == "soft":
            # v[t+1] = a v[t] - a v_th s[t] + (1 - a) x[t+1]
            a, v_th = p[0], p[1]
            g_state = (gs - carry * a * v_th) * h + carry * a + gm
            g_in, carry = (1.0 - a) * g_state, g_state
        elif kind == "subtractive":
            # u[t+1] = beta u[t] + x - v_th H(u[t] - v_th), the reset detached
            g_state = gs * h + carry * p[0] + gm
            g_in, carry = g_state, g_state
        elif kind == "hard":
            # v[t] = h[t] (1 - s[t]); h[t+1] = (1 - 1/tau) v[t] + x[t+1] / tau
            tau = p[0]
            s = fires(kind, m_t, p)
            g_h = carry * (1.0 - s) + (gs - carry * m_t) * h + gm
            g_in, carry = g_h / tau, g_h * (1.0 - 1.0 / tau)
        else:  # stbp: u[t+1] = tau u[t] (1 - s[t]) + x[t+1]
            tau = p[0]
            s = fires(kind, m_t, p)
            g_state = (gs - carry * tau * m_t) * h + carry * tau * (1.0 - s) + gm
            g_in, carry = g_state, g_state
        if static:
            total = total + g_in
        else:
            grads.append(g_in)
    if static:
        return total
    return torch.stack(grads[::-1])


def torch_synapse(x: torch.Tensor, decay: float) -> torch.Tensor:
    out, current = [], torch.zeros_like(x[0])
    for x_t in x.unbind(0):
        current = decay * current + x_t
        out.append(current)
    return torch.stack(out)


def torch_synapse_backward(grad: torch.Tensor, decay: float) -> torch.Tensor:
    out, carry = [], torch.zeros_like(grad[0])
    for g in reversed(grad.unbind(0)):
        carry = g + decay * carry
        out.append(carry)
    return torch.stack(out[::-1])


# ------------------------------------------------------------------ engine choice
def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


@functools.cache
def numba_installed() -> bool:
    """Whether numba imports (an installed but broken numba counts as absent)."""
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True


def engine(cuda: bool, dtype: torch.dtype) -> str:
    """``triton`` for float32 on a CUDA device (when installed); ``numba`` for
    float32 and float64 on the CPU (when installed); else ``torch``."""
    if cuda:
        return "triton" if dtype == torch.float32 and triton_installed() else "torch"
    return "numba" if dtype in (torch.float32, torch.float64) and numba_installed() else "torch"


def engine_for(x: torch.Tensor, forced: str | None = None) -> str:
    """The engine for tensor ``x`` (``forced`` when given)."""
    return forced if forced is not None else engine(x.is_cuda, x.dtype)


def _kernels():
    from . import kernels  # imports triton: only when a Triton engine is used

    return kernels


def _cpu_kernels():
    from . import (
        cpu_kernels,  # imports numba (and compiles, or loads the cache): only when used
    )

    return cpu_kernels


def run_forward(engine: str, kind, x, p, steps, keep_membrane: bool):
    if engine == "triton":
        return _kernels().neuron_forward(kind, x, p, steps, keep_membrane)
    if engine == "numba":
        return _cpu_kernels().torch_neuron_forward(kind, x, p, steps, keep_membrane)
    s, m = torch_forward(kind, x, p, steps)
    return s, (m if keep_membrane else None)


def run_backward(engine: str, kind, m, p, grad_s, grad_m, static: bool):
    if engine == "triton":
        if grad_s is None:
            grad_s = torch.zeros_like(m)
        return _kernels().neuron_backward(kind, m, p, grad_s, grad_m, static)
    if engine == "numba":
        return _cpu_kernels().torch_neuron_backward(kind, m, p, grad_s, grad_m, static)
    if grad_s is None:
        grad_s = torch.zeros_like(m)
    return torch_backward(kind, m, p, grad_s, grad_m, static)


def run_synapse(engine: str, x, decay: float, reverse: bool):
    if engine == "triton":
        k = _kernels()
        return k.synapse_backward(x, decay) if reverse else k.synapse_forward(x, decay)
    if engine == "numba":
        return _cpu_kernels().torch_synapse(x, decay, reverse)
    return torch_synapse_backward(x, decay) if reverse else torch_synapse(x, decay)


# ------------------------------------------------------------------ spikes kept in one byte
class _SpikeBytes:
    """Spikes saved for a backward pass in one byte instead of a float each.

    A layer fed by spikes (a convolution, a linear layer) keeps its input for
    its weight gradient: autograd saves the float spike tensor, 4 bytes per
    neuron and step.  Inside :meth:`saving` (``torch.autograd.graph.saved_tensors_hooks``),
    a saved tensor that is -- or views -- spikes a neuron layer registered
    with their one-byte copy (written by the same kernel) is replaced by a
    view of that copy with the same strides, and turned back into floats when
    the backward pass asks for it (a temporary, one layer at a time).  The
    values are the same (0 and 1); what is kept is a quarter of the bytes.
    The networks' Recorder keeps the one-byte copy too (the training step
    reads only the last layer's, for its scores).  The spike tensors must not
    be modified in place afterwards (none is).
    """

    def __init__(self):
        self._by_id: dict[int, tuple] = {}
        self._depth = 0

    def active(self) -> bool:
        return self._depth > 0

    def register(self, s: torch.Tensor, s8: torch.Tensor) -> None:
        key = id(s)
        self._by_id[key] = (weakref.ref(s, lambda _r, k=key: self._by_id.pop(k, None)), s8)

    def _pack(self, t: torch.Tensor):
        base = t if t._base is None else t._base
        entry = self._by_id.get(id(base))
        if entry is None or entry[0]() is not base or t.dtype != base.dtype:
            return t
        return (_PACKED, entry[1].as_strided(t.size(), t.stride(), t.storage_offset()), t.dtype)

    @staticmethod
    def _unpack(packed):
        if isinstance(packed, tuple) and packed and packed[0] is _PACKED:
            return packed[1].to(packed[2])
        return packed

    def keep(self, s: torch.Tensor) -> torch.Tensor:
        """What a Recorder keeps of spikes ``s``: their one-byte copy, when there is one."""
        entry = self._by_id.get(id(s))
        return entry[1] if entry is not None and entry[0]() is s else s

    @contextlib.contextmanager
    def saving(self):
        """Spikes registered inside are saved in one byte by any autograd node,
        and recorded in one byte by the networks' Recorder (their float copy is
        freed once the next layer has read it)."""
        from ..torch_common import spike_keeper

        self._depth += 1
        token = spike_keeper.set(self.keep)
        try:
            with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
                yield
        finally:
            spike_keeper.reset(token)
            self._depth -= 1
            if not self._depth:
                self._by_id.clear()


_PACKED = object()
spike_bytes = _SpikeBytes()


# ------------------------------------------------------------------ autograd
class MultiStepNeuron(torch.autograd.Function):
    """(x, kind, params, steps, engine) -> (spikes [T, ...], membranes [T, ...])."""

    @staticmethod
    def forward(ctx, x, kind, p, steps, engine):
        if engine == "numba" and spike_bytes.active():
            # the same pass writes a one-byte copy of the spikes, which a layer
            # saving these spikes for its backward pass keeps instead
            s, m, s8 = _cpu_kernels().torch_neuron_forward(kind, x, p, steps, True, spikes8=True)
            spike_bytes.register(s, s8)
        else:
            s, m = run_forward(engine, kind, x, p, steps, keep_membrane=True)
        ctx.save_for_backward(m)
        ctx.kind, ctx.p, ctx.static, ctx.engine = kind, p, steps is not None, engine
        # An output nobody used gets a gradient of None, not a tensor of zeros
        # to allocate and read (the membrane, in most networks).
        ctx.set_materialize_grads(False)
        return s, m

    @staticmethod
    def backward(ctx, grad_s, grad_m):
        (m,) = ctx.saved_tensors
        gx = run_backward(ctx.engine, ctx.kind, m, ctx.p, grad_s, grad_m, ctx.static)
        return gx, None, None, None, None


class MultiStepSynapse(torch.autograd.Function):
    """I[t] = decay I[t-1] + x[t] over all T at once (nothing saved)."""

    @staticmethod
    def forward(ctx, x, decay, engine):
        ctx.decay, ctx.engine = decay, engine
        return run_synapse(engine, x, decay, reverse=False)

    @staticmethod
    def backward(ctx, grad):
        return run_synapse(ctx.engine, grad, ctx.decay, reverse=True), None, None


def neuron(kind: str, x: torch.Tensor, p: tuple[float, ...], record: bool, steps: int | None = None,
           engine: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes (and, with ``record`` or where gradients flow, membranes) of one layer.

    Without gradients (evaluation) the membrane is written only when asked
    for; with gradients it is the one tensor the backward pass keeps.
    """
    if kind not in KINDS:
        raise KeyError(f"unknown neuron kind {kind!r}")
    chosen = engine_for(x, engine)
    p = tuple(float(v) for v in p)
    if torch.is_grad_enabled() and x.requires_grad:
        s, m = MultiStepNeuron.apply(x, kind, p, steps, chosen)
        return s, m
    with torch.no_grad():
        return run_forward(chosen, kind, x, p, steps, keep_membrane=record)


def synapse(x: torch.Tensor, decay: float, engine: str | None = None) -> torch.Tensor:
    return MultiStepSynapse.apply(x, float(decay), engine_for(x, engine))
