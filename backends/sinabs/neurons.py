"""Sinabs neurons as the tasks use them, and the activation pieces Sinabs lacks.

Every neuron here *is* a Sinabs layer: ``sinabs.layers.LIF`` for the spiking
neurons and ``sinabs.layers.ExpLeak`` for the non-spiking exponential synapse.
Sinabs's LIF step (``sinabs.layers.functional.lif_forward``) is

    v = alpha v + I            (norm_input=False)
    v = alpha v + (1 - alpha) I  (norm_input=True),   alpha = exp(-1 / tau_mem)
    S = spike_fn(v)            (compared membrane: v before the reset)
    v = reset_fn(S, v)         (applied right after the spike of the same step)

and ``min_v_mem=None`` (the default, kept) clips nothing.  What the tasks need
beyond that is written through Sinabs's own activation mechanism
(``spike_fn`` / ``reset_fn`` / ``surrogate_grad_fn``):

* :class:`StrictSpike`: Sinabs's ``SingleSpike`` fires at ``v >= V_th`` and
  returns float32 spikes; the tasks fire at ``v > V_th`` (a membrane exactly at
  threshold does not spike) with spikes in the membrane's dtype.  The backward
  pass is Sinabs's (``BackwardClass``: ``grad * surrogate_grad_fn(v, V_th)``).
* the surrogates (:class:`Triangle`, :class:`ArcTan`, :class:`Sigmoid`,
  :class:`Rectangular`): Sinabs has Heaviside, Gaussian, MultiGaussian,
  SingleExponential and PeriodicExponential, none of them a task's ``h``.
* the resets: synthetic's soft reset is Sinabs's ``MembraneSubtract`` as it is;
  :class:`DelayedSubtract` (fc_mnist's detached reset decided at the previous
  step) and :class:`ZeroResetWithGradient` (``V = H (1 - S)`` with the spike's
  surrogate gradient, which Sinabs's ``MembraneReset`` computes as
  ``V * (S == 0)``, without it) are custom.

Glue (:class:`SinabsNeuron`): Sinabs registers its time constants and
threshold as ``nn.Parameter`` (``tau_mem`` trainable by default) in float32,
and treats *every* buffer of a layer as neuron state; the constants are
therefore stored as plain float64 attributes (no parameter, no buffer), read
by Sinabs's own ``alpha = exp(-1 / tau_mem)``.  Sinabs layers are batch-first
(``[B, T, ...]``) and keep their state between calls; the glue transposes the
time-major tensors and leaves every layer uninitialised between forwards, so
Sinabs starts each forward from zero state itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sinabs.layers as sl
import torch
from sinabs.activation import MembraneSubtract, SingleSpike
from torch import nn

Pair = tuple[torch.Tensor, "torch.Tensor | None"]


# ----------------------------------------------------------------- spike_fn
class StrictSpike(SingleSpike):
    """``SingleSpike`` with the task's strict threshold and the membrane's dtype.

    Sinabs computes ``(v - V_th >= 0).float()``: a spike at ``v == V_th`` and a
    float32 tensor even in float64 (every gradient reaching a spike would be
    rounded to float32).  Here ``S = (v > V_th)`` in ``v``'s dtype; what is
    saved for, and done in, the backward pass is Sinabs's.
    """

    @staticmethod
    def forward(ctx, v_mem, spike_threshold, surrogate_grad_fn):
        ctx.save_for_backward(v_mem)
        ctx.spike_threshold = spike_threshold
        ctx.surrogate_grad_fn = surrogate_grad_fn
        return (v_mem > spike_threshold).to(v_mem.dtype)


class KeptMembrane:
    """A ``spike_fn`` object (Sinabs's protocol, as its ``MaxSpike``: ``required_states``
    and ``apply``) that hands over to :class:`StrictSpike` and, while ``kept`` is a
    list, appends the membrane it compares with the threshold (the membrane the
    tasks record; Sinabs's ``record_states`` keeps the one after the reset)."""

    required_states = ["v_mem"]

    def __init__(self, fn=StrictSpike):
        self.fn = fn
        self.kept: list[torch.Tensor] | None = None

    def apply(self, v_mem, spike_threshold, surrogate_grad_fn):
        if self.kept is not None:
            self.kept.append(v_mem)
        return self.fn.apply(v_mem, spike_threshold, surrogate_grad_fn)


# ----------------------------------------------------------------- surrogate_grad_fn
# Sinabs calls surrogate_grad_fn(v_mem, spike_threshold) and multiplies the
# incoming gradient by what it returns: dS/dv.
@dataclass
class Triangle:
    """synthetic: S = H(x), x = (v - V_th) / V_th, h(x) = alpha max(0, width - |x|);
    dS/dv = h(x) / V_th (chain rule through x)."""

    alpha: float = 0.3
    width: float = 1.0

    def __call__(self, v_mem, spike_threshold):
        x = (v_mem - spike_threshold) / spike_threshold
        return self.alpha * torch.clamp(self.width - x.abs(), min=0.0) / spike_threshold


@dataclass
class ArcTan:
    """fc_mnist: h(x) = (alpha / 2) / (1 + (pi alpha x / 2)^2), x = v - V_th (snnTorch's atan)."""

    alpha: float = 2.0

    def __call__(self, v_mem, spike_threshold):
        x = v_mem - spike_threshold
        return (self.alpha / 2.0) / (1.0 + (math.pi * self.alpha / 2.0 * x) ** 2)


@dataclass
class Sigmoid:
    """fc_mnist_poisson, lif_layer: h(x) = alpha s(alpha x) (1 - s(alpha x)), x = v - V_th,
    written alpha s(z) s(-z) (no overflow, full relative precision)."""

    alpha: float = 4.0

    def __call__(self, v_mem, spike_threshold):
        z = self.alpha * (v_mem - spike_threshold)
        return self.alpha * torch.sigmoid(z) * torch.sigmoid(-z)


@dataclass
class Rectangular:
    """dsrn_tdbn: h = 1 / (2a) where |(v - V_th) - center| < a, else 0 (center 0: the
    window centred on the threshold; -V_th: on zero)."""

    a: float = 0.5
    center: float = 0.0

    def __call__(self, v_mem, spike_threshold):
        inside = ((v_mem - spike_threshold - self.center).abs() < self.a).to(v_mem.dtype)
        return inside / (2.0 * self.a)


# ----------------------------------------------------------------- reset_fn
@dataclass
class DelayedSubtract(MembraneSubtract):
    """fc_mnist: U[t] = beta U[t-1] + X[t] - V_th S[t-1], the reset detached.

    Sinabs resets right after the spike, and the next step multiplies the stored
    membrane by alpha = beta: with ``MembraneSubtract`` the next membrane would be
    ``beta (U - V_th S) + X``, a reset of beta V_th carrying the spike's gradient.
    Storing ``U - (V_th / beta) S`` with S detached gives exactly
    ``beta U + X - V_th S`` at the next step (construct with
    ``subtract_value=V_th / beta``).
    """

    def __call__(self, spikes, state, threshold):
        return super().__call__(spikes.detach(), state, threshold)


@dataclass
class ZeroResetWithGradient:
    """fc_mnist_poisson, lif_layer, dsrn_tdbn: v = v (1 - S), S with its surrogate gradient.

    Sinabs's ``MembraneReset(0)`` computes ``v * (S == 0).float()``: the same
    values, but the comparison carries no gradient (the reset term of the
    spec's backward pass would be missing)."""

    def __call__(self, spikes, state, spike_threshold):
        new_state = state.copy()
        new_state["v_mem"] = new_state["v_mem"] * (1.0 - spikes)
        return new_state


# ----------------------------------------------------------------- glue
def tau_of_decay(decay: float) -> float:
    """Sinabs's tau_mem for a per-step decay alpha (Sinabs computes alpha = exp(-1 / tau_mem))."""
    return -1.0 / math.log(decay)


def freeze_constants(layer: sl.LIF, tau_mem: float, spike_threshold: float | None) -> sl.LIF:
    """Replace Sinabs's ``tau_mem`` / ``spike_threshold`` parameters by constants.

    Sinabs makes them ``nn.Parameter`` in float32 (``tau_mem`` with
    ``requires_grad=True``); every trained tensor here is a shared weight, and a
    buffer would be taken for neuron state by Sinabs (``dict(named_buffers())``
    is its state), so they become plain attributes: ``tau_mem`` a float64
    tensor (Sinabs computes ``exp(-1 / tau_mem)`` from it at every forward, in
    float64, then multiplies the state by it in the state's dtype), the
    threshold a Python float.
    """
    for name in ("tau_mem", "spike_threshold"):
        if name in layer._parameters:
            del layer._parameters[name]
    layer.tau_mem = torch.tensor(tau_mem, dtype=torch.float64)
    layer.spike_threshold = spike_threshold
    assert not list(layer.parameters()) and layer.min_v_mem is None and not layer.train_alphas
    return layer


def clear_state(layer: sl.StatefulLayer) -> None:
    """Leave ``layer`` uninitialised (every state a size-0 tensor): Sinabs then
    initialises zero state of the input's shape at its next forward, and no
    tensor of the last forward (nor its graph) stays referenced."""
    for name, buffer in list(layer.named_buffers(recurse=False)):
        layer.register_buffer(name, buffer.new_zeros(0).detach())


def batch_first(inputs: torch.Tensor, steps: int | None) -> torch.Tensor:
    """Time-major ``[T, B, ...]`` (or a static ``[B, ...]`` standing for ``steps``
    steps) as Sinabs's ``[B, T, ...]`` (a view either way)."""
    if steps is not None:
        return inputs.unsqueeze(1).expand((inputs.shape[0], steps) + tuple(inputs.shape[1:]))
    return inputs.transpose(0, 1)


class SinabsNeuron(nn.Module):
    """A ``sinabs.layers.LIF`` as a neuron of the shared networks
    (``forward(inputs, record, steps=None) -> (spikes, membranes)``, time-major)."""

    def __init__(self, *, decay: float, v_th: float, norm_input: bool, reset_fn, surrogate_grad_fn):
        super().__init__()
        self.spike_fn = KeptMembrane()
        tau = tau_of_decay(decay)
        self.lif = freeze_constants(
            sl.LIF(tau_mem=tau, spike_threshold=v_th, spike_fn=self.spike_fn, reset_fn=reset_fn,
                   surrogate_grad_fn=surrogate_grad_fn, norm_input=norm_input),
            tau, v_th,
        )
        clear_state(self.lif)

    def forward(self, inputs: torch.Tensor, record: bool, steps: int | None = None) -> Pair:
        kept = self.spike_fn.kept = [] if record else None
        clear_state(self.lif)
        try:
            spikes = self.lif(batch_first(inputs, steps))
        finally:
            self.spike_fn.kept = None
            clear_state(self.lif)
        return spikes.transpose(0, 1), (torch.stack(kept) if kept is not None else None)


class SinabsSynapse(nn.Module):
    """``sinabs.layers.ExpLeak`` (norm_input=False, its default): I[t] = decay I[t-1] + inputs[t],
    time-major in and out."""

    def __init__(self, decay: float):
        super().__init__()
        tau = tau_of_decay(decay)
        self.leak = freeze_constants(sl.ExpLeak(tau_mem=tau), tau, None)
        assert not self.leak.norm_input and self.leak.spike_fn is None
        clear_state(self.leak)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        clear_state(self.leak)
        try:
            current = self.leak(inputs.transpose(0, 1))
        finally:
            clear_state(self.leak)
        return current.transpose(0, 1)
