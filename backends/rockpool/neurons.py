"""Rockpool's Torch modules as the synthetic task uses them, and the pieces Rockpool lacks.

Every layer here *is* a Rockpool module, used through its Torch API
(``to_torch()``): synthetic's hidden layer is one ``LIFTorch`` in
``leak_mode="decays"``, which keeps the synaptic current itself, and its
readout filter is one ``ExpSynTorch``.  Per step Rockpool computes (read
from rockpool/nn/modules/torch/lif_torch.py and exp_syn_torch.py, 3.1.0)::

    LIFTorch:    I_syn <- beta (I_syn + x[t])            (the input added, then the decay)
                 V     <- alpha V + I_syn + bias
                 S     =  spike_generation_fn(V, threshold, learning_window, max_spikes_per_dt)
                 V     <- V - S threshold                 (reset by subtraction, S's gradient kept)
    ExpSynTorch: I     <- exp(-dt / tau) (I + x[t])

so with ``alpha = a_m``, ``beta = a_s`` and the input ``x = (1 - a_m) / a_s
(W1 x + b1)`` its ``I_syn`` is ``(1 - a_m) I[t]`` and its membrane is the spec's
``V[t] = a_m (V[t-1] - V_th S[t-1]) + (1 - a_m) I[t]``; ``ExpSynTorch`` fed
``u / a_s`` returns ``O[t] = a_s O[t-1] + u[t]``.

What is written here, each because Rockpool computes something else (the
tests in tests/test_backend_rockpool.py pin every item):

* :func:`triangle`: the spike function (Rockpool's ``spike_generation_fn``
  mechanism).  Rockpool's ``StepPWL`` emits ``floor(V / V_th)`` spikes at
  ``V >= V_th`` (up to ``max_spikes_per_dt``, 2^16 by default), its surrogate is
  a step (``1 / V_th`` on ``V >= V_th - window``), and it returns float32
  spikes (in float64 ``LIFTorch`` then fails at the next step).
* :class:`CapturingSpike`: hands Rockpool that function and keeps the
  membrane Rockpool passes it -- the spec's recorded membrane, before the
  reset.  Rockpool's own record (``record=True``) holds V after the reset, in
  float32, on the CPU.
* :func:`default_dtype`: Rockpool allocates each module's output with
  ``torch.zeros(...)`` in torch's default dtype and writes every step into it,
  so in float64 its output is float32 (the next float64 layer refuses it, and
  a cast back would round every gradient through a spike to float32); the
  default dtype is the input's while Rockpool runs.
* :class:`RockpoolLayer`: Rockpool casts every parameter, ``Constant``
  included, to float32 when the module is built, so after ``.to(float64)``
  a_m = exp(-1/20) would be off by 2.9e-8 (relative); the constants are
  refilled from Python floats after every move.  It also resets the module's
  state before and after every call (a Rockpool module starts from the final
  state of the previous call's first sample) and builds the module at the
  first call, when the layer width is known.
* :func:`samna_blocked`: ``import rockpool`` imports ``samna`` to ask whether
  it is usable; the ``samna`` on PyPI (sinabs depends on it) is a placeholder
  whose import runs ``pip install --force-reinstall samna`` from another
  index.  Blocked while Rockpool is imported (it then records samna as
  unavailable, which the Torch modules never need).

There are no trainable tensors here: tau, decays, thresholds and biases are
Rockpool ``Constant`` s (Rockpool then registers them as buffers, not
``nn.Parameter`` s).
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def samna_blocked() -> Iterator[None]:
    """``import samna`` raises ImportError inside the block (unless samna is already imported)."""
    if "samna" in sys.modules:  # someone imported it already: nothing left to prevent
        yield
        return
    sys.modules["samna"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "samna" in sys.modules and sys.modules["samna"] is None:
            del sys.modules["samna"]


with samna_blocked():
    import rockpool
    from rockpool.nn.modules import ExpSynTorch, LIFTorch
    from rockpool.parameters import Constant

__all__ = ["rockpool", "LIFTorch", "ExpSynTorch", "Constant", "triangle", "CapturingSpike", "default_dtype",
           "RockpoolLayer", "SynapticLIF", "Synapse"]


# ----------------------------------------------------------------- spike function
@functools.lru_cache(maxsize=None)
def triangle(alpha: float) -> type[torch.autograd.Function]:
    """synthetic's spike: S = H(x), x = (V - V_th) / V_th, h(x) = alpha max(0, width - |x|).

    An autograd Function with the signature Rockpool calls a
    ``spike_generation_fn`` with, ``(V, threshold, learning_window,
    max_spikes_per_dt)``: the half-width is Rockpool's ``learning_window``
    ("cutoff value for the surrogate gradient").  One spike at most (the layer
    is built with ``max_spikes_per_dt = 1``), at x > 0 strictly, in V's dtype.
    dS/dV = h(x) / V_th (the chain rule through x).
    """

    class TriangleSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v, threshold, window, max_spikes_per_dt):
            ctx.save_for_backward(v, threshold, window)
            return ((v - threshold) / threshold > 0).to(v.dtype)

        @staticmethod
        def backward(ctx, grad_output):
            v, threshold, window = ctx.saved_tensors
            x = (v - threshold) / threshold
            grad = grad_output * (alpha * torch.clamp(window - x.abs(), min=0.0) / threshold)
            return grad, None, None, None

    TriangleSpike.__qualname__ = f"triangle({alpha!r})"
    return TriangleSpike


class CapturingSpike:
    """What a Rockpool neuron is given as ``spike_generation_fn``: it calls
    ``function.apply`` (Rockpool stores ``spike_generation_fn.apply``) and, while
    ``keep`` is a list, appends the membrane it is handed (before the reset)."""

    def __init__(self, function: type[torch.autograd.Function]):
        self.function = function
        self.keep: list[torch.Tensor] | None = None

    def apply(self, v, threshold, window, max_spikes_per_dt):
        if self.keep is not None:
            self.keep.append(v)
        return self.function.apply(v, threshold, window, max_spikes_per_dt)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """torch's default dtype is ``dtype`` inside the block (float32 / float64 only)."""
    old = torch.get_default_dtype()
    if dtype == old or dtype not in (torch.float32, torch.float64):
        yield
        return
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# ----------------------------------------------------------------- layers
class RockpoolLayer(nn.Module):
    """A Rockpool Torch module over time-major input: the glue every layer here shares.

    ``make(size)`` builds the Rockpool module (its Torch API); ``constants``
    names the module's constant tensors and their exact values.  The module is
    built at the first call (the shared networks do not pass a layer's width;
    :func:`backends.rockpool.networks.build` runs one dry call so it exists before
    the network is moved to its device and dtype).
    """

    def __init__(self, constants: dict[str, float]):
        super().__init__()
        self.constants = dict(constants)
        self.size: int | None = None
        self.cell: nn.Module | None = None

    def make(self, size: int) -> nn.Module:
        raise NotImplementedError

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.refill()
        return out

    @torch.no_grad()
    def refill(self) -> None:
        """Set every constant to its exact value in the tensor's dtype (Rockpool
        cast it to float32 when the module was built)."""
        if self.cell is not None:
            for name, value in self.constants.items():
                getattr(self.cell, name).fill_(value)

    def _cell(self, x: torch.Tensor) -> nn.Module:
        size = int(x.shape[-1])
        if self.cell is None:
            self.size = size
            self.cell = self.make(size).to(device=x.device, dtype=x.dtype)
            self.refill()
        elif size != self.size:
            raise ValueError(f"{type(self).__name__} was built for {self.size} neurons, got {size}")
        return self.cell

    def evolve(self, x: torch.Tensor) -> torch.Tensor:
        """Rockpool's forward over batch-first ``x`` [B, T, N], from zero state."""
        cell = self._cell(x)
        with default_dtype(x.dtype):
            cell.reset_state()
            try:
                return cell(x)
            finally:
                cell.reset_state()
                cell._record_dict = {}  # as Rockpool's evolve() does: no graph kept alive by the module


def _batch_first(x: torch.Tensor) -> torch.Tensor:
    """[T, B, ...] -> Rockpool's [B, T, N]."""
    return x.flatten(2).transpose(0, 1)


def _time_major(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Rockpool's [B, T, N] -> [T, B, ...] of ``shape``."""
    return x.transpose(0, 1).reshape(shape)


class SynapticLIF(RockpoolLayer):
    """synthetic's hidden layer: exponential synapse + soft-reset LIF, one ``LIFTorch``.

    ``forward(inputs, record)`` takes ``W1 x + b1`` time-major and returns the
    spikes and, with ``record``, the membrane compared with the threshold.
    """

    def __init__(self, decay: float, a_mem: float, v_th: float, alpha: float, width: float):
        super().__init__({
            "alpha": a_mem,  # Rockpool's membrane decay
            "beta": decay,  # Rockpool's synaptic decay
            "threshold": v_th,
            "bias": 0.0,  # b1 is fc1's bias, before the synapse
            "learning_window": width,
            "max_spikes_per_dt": 1.0,
        })
        # LIFTorch decays its synapse after adding the input: I_syn = a_s (I_syn + x)
        self.input_scale = (1.0 - a_mem) / decay
        self.spike = CapturingSpike(triangle(alpha))

    def make(self, size: int) -> nn.Module:
        c = self.constants
        return LIFTorch(
            (size,),
            leak_mode="decays",
            alpha=Constant(c["alpha"]),
            beta=Constant(c["beta"]),
            threshold=Constant(c["threshold"]),
            bias=Constant(c["bias"]),
            spike_generation_fn=self.spike,
            learning_window=c["learning_window"],
            max_spikes_per_dt=c["max_spikes_per_dt"],
            dt=1.0,
        ).to_torch()

    def forward(self, inputs: torch.Tensor, record: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.spike.keep = [] if record else None
        try:
            spikes = self.evolve(_batch_first(inputs * self.input_scale))
            kept = self.spike.keep
        finally:
            self.spike.keep = None
        membranes = torch.stack(kept).reshape(inputs.shape) if record else None  # kept per step: [B, N]
        return _time_major(spikes, inputs.shape), membranes


class Synapse(RockpoolLayer):
    """The non-spiking exponential synapse I[t] = decay I[t-1] + inputs[t]: one ``ExpSynTorch``."""

    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ExpSynTorch needs a decay in (0, 1), got {decay!r}")
        # ExpSynTorch computes its decay as exp(-dt / tau), dt = 1
        super().__init__({"tau": -1.0 / math.log(decay)})
        self.decay = decay

    def make(self, size: int) -> nn.Module:
        return ExpSynTorch((size,), tau=Constant(self.constants["tau"]), dt=1.0).to_torch()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # ExpSynTorch decays after adding the input: I = a (I + x); fed x / a it is a I + x
        return _time_major(self.evolve(_batch_first(inputs / self.decay)), inputs.shape)
