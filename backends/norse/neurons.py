"""Norse neurons as the tasks use them, and the two surrogates Norse lacks.

Every spiking layer is a Norse ``LIFBoxCell`` (the current-free LIF of
``norse.torch.functional.lif_box``), stepped over time from zero state with
its ``LIFBoxFeedForwardState`` passed explicitly.  With ``dt = 1`` Norse's
step is

    v_dec = v + dt * tau_mem_inv * (X' + v_leak - v),   z = threshold(v_dec - v_th, method, alpha),
    v     = reset_method(z, v_dec, v_reset, v_th)

and each task's neuron is a choice of ``tau_mem_inv``, of what is fed as X'
and of ``reset_method`` (a field of ``LIFBoxParameters``, Norse's hook for
the reset), with ``v_leak = v_reset = 0``:

* hard (fc_mnist_poisson, lif_layer): ``tau_mem_inv = 1/tau``, X' = X,
  Norse's ``reset_value`` (V = H (1 - S), the spike's gradient kept);
* soft (synthetic): ``tau_mem_inv = 1 - a_m``, X' = I (the synapse's
  current), Norse's ``reset_subtract`` (V - V_th S, gradient kept), so the
  next step is a_m (V - V_th S) + (1 - a_m) I;
* subtractive (fc_mnist): ``tau_mem_inv = 1 - beta``, X' = X / (1 - beta),
  reset :func:`detached_subtract` (Norse's ``reset_subtract`` with the spike
  detached and V_th / beta subtracted, so that after the decay the next step
  subtracts exactly V_th: beta U + X - V_th R, R without gradient);
* stbp (dsrn_tdbn): ``tau_mem_inv = 1 - tau``, X' = X / (1 - tau), Norse's
  ``reset_value`` (U = tau U (1 - S) + X, gradient kept).

Surrogates: Norse's ``method="triangle"`` (alpha 0.3) is synthetic's
triangle at V_th = 1; Norse's ``method="tanh"`` with alpha 2 is the sigmoid
surrogate 4 s(4x) (1 - s(4x)) = 1 - tanh(2x)^2, the same function.  Norse has
no arctangent and no rectangular surrogate and its ``threshold`` dispatches
on a closed list of method names, so fc_mnist's and dsrn_tdbn's layers use
:class:`SurrogateLIFBoxCell`: a ``LIFBoxCell`` whose activation is the same
LIFBox step with a given spike function (the shared PyTorch surrogates of
:mod:`backends.torch_surrogates`: arctangent and rectangle).

Norse ships no multi-step LIFBox module, and its generic ``SNN`` wrapper
returns post-reset states (not the membrane compared with the threshold) and
indexes ``input[t]`` at every step (each step's backward then writes a
zero-filled ``[T, ...]`` gradient), so :class:`LIFBoxLayer` loops over
``inputs.unbind(0)`` calling the cell; the membrane is taken from the
``reset_method`` hook, which Norse hands the pre-reset membrane.
"""

from __future__ import annotations

from typing import Callable

import torch
from norse.torch import LIFBoxCell, LIFBoxFeedForwardState, LIFBoxParameters
from norse.torch.functional.filter import exp_filter_step
from norse.torch.functional.reset import reset_subtract, reset_value
from torch import nn

from ..torch_surrogates import ArctanSpike, RectangularSpike, spike

Pair = tuple[torch.Tensor, "torch.Tensor | None"]

DT = 1.0  # every task is written in steps of dt = 1


# ----------------------------------------------------------------- surrogates
def atan(alpha: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """fc_mnist's arctangent surrogate, h(x) = (alpha/2) / (1 + (pi alpha x / 2)^2): Norse has none."""
    return lambda x: spike(ArctanSpike, x, alpha)


def rectangle(a: float, center: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """dsrn_tdbn's rectangle, h = 1/(2a) where |x - center| < a (x = U - V_th; center 0 or -V_th): Norse has none."""
    return lambda x: spike(RectangularSpike, x, a, center)


# ----------------------------------------------------------------- resets
def detached_subtract(beta: float):
    """fc_mnist's reset as a Norse ``reset_method``: Norse's ``reset_subtract`` with
    the spike detached and V_th / beta subtracted.

    The task subtracts V_th R[t] *after* the decay (beta U[t-1] + X - V_th R[t]),
    while a reset method acts before the next decay; V - (V_th / beta) S decays
    to beta V - V_th S.  R[t] = H(U[t-1] - V_th) is the spike of step t-1,
    detached as the task says.
    """

    def reset(z: torch.Tensor, v: torch.Tensor, v_reset, v_th) -> torch.Tensor:
        return reset_subtract(z.detach(), v, v_reset, v_th / beta)

    return reset


class Traced:
    """A ``reset_method`` that keeps the membrane Norse hands it (the one compared
    with the threshold, before the reset) while ``trace`` is a list."""

    def __init__(self, reset):
        self.reset = reset
        self.trace: list[torch.Tensor] | None = None

    def __call__(self, z, v, v_reset, v_th):
        if self.trace is not None:
            self.trace.append(v)
        return self.reset(z, v, v_reset, v_th)


# ----------------------------------------------------------------- cells
def lif_box_step_with(spike: Callable[[torch.Tensor], torch.Tensor]):
    """Norse's LIFBox feed-forward step (``lif_box_feed_forward_step``'s equations),
    with ``spike(v_dec - v_th)`` in place of Norse's ``threshold(..., method, alpha)``."""

    def step(input_tensor: torch.Tensor, state: LIFBoxFeedForwardState, p: LIFBoxParameters, dt: float):
        v_dec = state.v + dt * p.tau_mem_inv * (input_tensor + p.v_leak - state.v)
        z = spike(v_dec - p.v_th)
        return z, LIFBoxFeedForwardState(v=p.reset_method(z, v_dec, p.v_reset, p.v_th))

    return step


class SurrogateLIFBoxCell(LIFBoxCell):
    """``LIFBoxCell`` with a spike function Norse's ``threshold`` does not offer."""

    def __init__(self, p: LIFBoxParameters, spike: Callable[[torch.Tensor], torch.Tensor], dt: float = DT):
        super().__init__(p, dt=dt)
        self.activation = lif_box_step_with(spike)


class LIFBoxLayer(nn.Module):
    """One layer of Norse LIFBox neurons over time, from zero state.

    ``forward(inputs, record, steps=None)``: ``inputs`` ``[T, B, ...]`` (or, with
    ``steps``, one ``[B, ...]`` input fed at each of ``steps`` steps) is divided by
    ``input_divisor`` (X' above) and fed to the cell step by step.  Returns the
    spikes ``[T, B, ...]`` and, with ``record``, the membrane compared with the
    threshold.  The constants are Python floats in ``LIFBoxParameters``: they
    take the dtype of the state (float64 exactly in fp64) and hold no tensor.
    """

    def __init__(self, p: LIFBoxParameters, input_divisor: float = 1.0,
                 spike: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.traced = Traced(p.reset_method)
        p = p._replace(reset_method=self.traced)
        self.cell = LIFBoxCell(p, dt=DT) if spike is None else SurrogateLIFBoxCell(p, spike, dt=DT)
        self.input_divisor = input_divisor

    def forward(self, inputs: torch.Tensor, record: bool, steps: int | None = None) -> Pair:
        x = inputs if self.input_divisor == 1.0 else inputs / self.input_divisor
        xs = (x,) * steps if steps is not None else x.unbind(0)
        state = LIFBoxFeedForwardState(v=torch.zeros_like(xs[0]))
        spikes = []
        self.traced.trace = [] if record else None
        try:
            for x_t in xs:
                z, state = self.cell(x_t, state)
                spikes.append(z)
            membranes = torch.stack(self.traced.trace) if record else None
        finally:
            self.traced.trace = None
        return torch.stack(spikes), membranes


def hard_reset_lif(tau: float, v_th: float, alpha: float) -> LIFBoxLayer:
    """fc_mnist_poisson / lif_layer: H = V + (X - V)/tau, S = H(H - V_th), V = H (1 - S);
    surrogate 4 s(4x)(1 - s(4x)) as Norse's tanh method: 1 - tanh(2x)^2."""
    if alpha != 4.0:
        raise ValueError(f"Norse's tanh surrogate is the sigmoid surrogate of slope 4 only, not {alpha}")
    p = LIFBoxParameters(tau_mem_inv=1.0 / tau, v_leak=0.0, v_th=v_th, v_reset=0.0,
                         method="tanh", alpha=alpha / 2.0, reset_method=reset_value)
    return LIFBoxLayer(p)


def soft_reset_lif(a_mem: float, v_th: float, alpha: float, width: float) -> LIFBoxLayer:
    """synthetic: V = a_m (V - V_th S) + (1 - a_m) I, S = H((V - V_th)/V_th),
    h(x) = alpha max(0, width - |x|) as Norse's triangle method (exact for V_th = width = 1)."""
    if v_th != 1.0 or width != 1.0:
        raise ValueError("Norse's triangle surrogate is alpha max(0, 1 - |V - V_th|): V_th = width = 1 only")
    p = LIFBoxParameters(tau_mem_inv=(1.0 - a_mem) / DT, v_leak=0.0, v_th=v_th, v_reset=0.0,
                         method="triangle", alpha=alpha, reset_method=reset_subtract)
    return LIFBoxLayer(p)


def subtractive_lif(beta: float, v_th: float, alpha: float) -> LIFBoxLayer:
    """fc_mnist: U = beta U + X - V_th H(U[t-1] - V_th) (detached), arctangent surrogate."""
    c = 1.0 - beta
    p = LIFBoxParameters(tau_mem_inv=c / DT, v_leak=0.0, v_th=v_th, v_reset=0.0,
                         method="atan", alpha=alpha, reset_method=detached_subtract(beta))
    return LIFBoxLayer(p, input_divisor=c, spike=atan(alpha))


def stbp_lif(tau: float, v_th: float, a: float, center: float) -> LIFBoxLayer:
    """dsrn_tdbn: U = tau U (1 - S[t-1]) + X, rectangular surrogate."""
    c = 1.0 - tau
    p = LIFBoxParameters(tau_mem_inv=c / DT, v_leak=0.0, v_th=v_th, v_reset=0.0,
                         method="rectangle", alpha=a, reset_method=reset_value)
    return LIFBoxLayer(p, input_divisor=c, spike=rectangle(a, center))


NEURONS = {
    "hard": hard_reset_lif,
    "soft": soft_reset_lif,
    "subtractive": subtractive_lif,
    "stbp": stbp_lif,
}


# ----------------------------------------------------------------- synapse
class ExpFilterSynapse(nn.Module):
    """I[t] = decay I[t-1] + inputs[t] with Norse's ``exp_filter_step`` (the step of
    Norse's ``ExpFilter``, whose own Linear layer is the shared network's)."""

    def __init__(self, decay: float):
        super().__init__()
        self.decay = decay

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        xs = inputs.unbind(0)
        out = [xs[0]]  # I[1] = inputs[1], from zero state, as ExpFilter starts
        for x_t in xs[1:]:
            out.append(exp_filter_step(out[-1], x_t, self.decay))
        return torch.stack(out)
