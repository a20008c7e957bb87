"""SpikingJelly neurons and synapses of the four tasks, all multi-step (``step_mode="m"``).

* :class:`ChargeLIFNode` is SpikingJelly's ``neuron.LIFNode`` (its fused
  multi-step kernel where the surrogate has one) that can also hand back the
  charged potential H[t], the membrane the spec records (SpikingJelly's
  ``v_seq`` is the potential *after* the reset).
* :class:`ChargeSimpleLIFNode` is SpikingJelly's pure-PyTorch
  ``neuron.SimpleLIFNode`` with the same hook; ``spikingjelly:torch`` uses it
  on CUDA where ``LIFNode`` refuses to run (see :mod:`.backend`).
* :class:`SubtractiveLeakyNode` (fc_mnist) and :class:`ExponentialSynapse`
  (synthetic) are custom, written on SpikingJelly's ``BaseNode`` /
  ``MemoryModule`` extension interface, because no SpikingJelly module
  computes those equations.

Every neuron here exposes ``record_charge`` (set it before a forward pass)
and, after that pass, ``h_seq``: the membrane compared with the threshold at
each step, ``[T, B, ...]``, or ``None`` when not recording.  When not
recording they run exactly the library's training path.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import base, neuron


def charge(x: torch.Tensor, v: torch.Tensor, tau: float, decay_input: bool, v_reset: float | None) -> torch.Tensor:
    """LIFNode's charge equation (its documented H[t]; the same expression as its kernels).

    H = V + (X - (V - V_rest)) / tau with ``decay_input``, else
    H = V - (V - V_rest) / tau + X; V_rest = v_reset, or 0 for a soft reset.
    """
    rest = 0.0 if v_reset is None else v_reset
    if decay_input:
        return v + (x - (v - rest)) / tau
    return v - (v - rest) / tau + x


class ChargeLIFNode(neuron.LIFNode):
    """``neuron.LIFNode`` that can also return its charged potential H[t].

    With ``record_charge`` it runs the library's multi-step path with
    ``store_v_seq=True`` (post-reset V[t]) and recomputes H[t] from V[t-1] and
    X[t] with LIFNode's charge equation; otherwise it is LIFNode unchanged
    (the fast path, no extra work or memory).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.record_charge = False
        self.h_seq: torch.Tensor | None = None

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        if not self.record_charge:
            return super().multi_step_forward(x_seq, *args, **kwargs)
        v0 = self.v
        if not isinstance(v0, torch.Tensor) or v0.shape != x_seq.shape[1:]:
            v0 = torch.full_like(x_seq[0], 0.0 if self.v_reset is None else self.v_reset)
        self.store_v_seq = True
        try:
            spikes = super().multi_step_forward(x_seq, *args, **kwargs)
            v_seq = self.v_seq
        finally:
            self.store_v_seq = False  # also drops v_seq
        v_before = torch.cat((v0.to(v_seq.dtype).unsqueeze(0), v_seq[:-1]))
        self.h_seq = charge(x_seq.to(v_seq.dtype), v_before, self.tau, self.decay_input, self.v_reset)
        return spikes


class ChargeSimpleLIFNode(neuron.SimpleLIFNode):
    """``neuron.SimpleLIFNode`` (SpikingJelly's charge-fire-reset LIF in plain
    PyTorch) with the H[t] hook, and a soft reset (``v_reset=None``) whose leak
    goes towards 0 as in ``LIFNode`` (SimpleLIFNode's own charge needs a float
    ``v_reset``)."""

    def __init__(self, tau: float, decay_input: bool, v_threshold: float, v_reset: float | None,
                 surrogate_function, detach_reset: bool, step_mode: str = "m"):
        super().__init__(tau, decay_input, v_threshold, 0.0 if v_reset is None else v_reset,
                         surrogate_function, detach_reset, step_mode)
        self.v_reset = v_reset  # None: SimpleBaseNode.neuronal_reset subtracts the threshold
        self.record_charge = False
        self.h_seq: torch.Tensor | None = None
        self._charges: list[torch.Tensor] = []

    def neuronal_charge(self, x: torch.Tensor):
        if self.v_reset is None:
            self.v = charge(x, self.v, self.tau, self.decay_input, None)
        else:
            super().neuronal_charge(x)

    def neuronal_fire(self) -> torch.Tensor:
        if self.record_charge:
            self._charges.append(self.v)
        return super().neuronal_fire()

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if isinstance(self.v, float):  # a fresh state: zeros of one step's shape
            self.v = torch.full_like(x_seq[0], self.v)
        self._charges = []
        try:
            spikes = super().multi_step_forward(x_seq)
            self.h_seq = torch.stack(self._charges) if self.record_charge else None
        finally:
            self._charges = []
        return spikes


class SubtractiveLeakyNode(neuron.BaseNode):
    """fc_mnist (snnTorch's ``Leaky``): U[t] = beta U[t-1] + X[t] - V_th R[t],
    R[t] = H(U[t-1] - V_th) without gradient, S[t] = H(U[t] - V_th).

    Custom because SpikingJelly's soft reset subtracts V_th within the step of
    the spike, before the next decay, so the next membrane loses beta * V_th
    instead of V_th.  The state is U itself (the reset of step t is applied at
    t + 1), so ``v_seq`` already is the recorded membrane.
    """

    def __init__(self, beta: float, v_threshold: float, surrogate_function, step_mode: str = "m"):
        super().__init__(v_threshold=v_threshold, v_reset=None, surrogate_function=surrogate_function,
                         detach_reset=True, step_mode=step_mode)
        self.beta = beta
        self.record_charge = False
        self.h_seq: torch.Tensor | None = None

    def single_step_functional_forward(self, inputs, states, **kwargs):
        x, u = inputs[0], states[0]
        reset = (u.detach() > self.v_threshold).to(u.dtype)  # the spec's H, as the spike (StrictATan)
        u = self.beta * u + x - self.v_threshold * reset
        return (self.surrogate_function(u - self.v_threshold),), (u,)

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        if not self.record_charge:
            return super().multi_step_forward(x_seq, *args, **kwargs)
        self.store_v_seq = True  # BaseNode then stacks the state U[t] of every step
        try:
            spikes = super().multi_step_forward(x_seq, *args, **kwargs)
            self.h_seq = self.v_seq
        finally:
            self.store_v_seq = False
        return spikes


class ExponentialSynapse(base.MemoryModule):
    """I[t] = decay * I[t-1] + X[t] (synthetic's synapses), a SpikingJelly memory module.

    ``layer.SynapseFilter`` does not fit: it computes
    I[t] = I[t-1] - (1 - X[t]) I[t-1] / tau + X[t], which for a binary X skips
    the decay at input spikes, and is nonlinear for the real-valued W x + b here.
    """

    def __init__(self, decay: float, step_mode: str = "m"):
        super().__init__()
        self.decay = decay
        self.step_mode = step_mode
        self.register_memory("i", 0.0)

    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        i = states[0]
        if not isinstance(i, torch.Tensor) or i.shape != x.shape:
            i = torch.zeros_like(x)
        return (i.to(x.dtype),)

    def single_step_functional_forward(self, inputs, states, **kwargs):
        i = self.decay * states[0] + inputs[0]
        return (i,), (i,)

    def extra_repr(self):
        return f"decay={self.decay}, step_mode={self.step_mode}"
