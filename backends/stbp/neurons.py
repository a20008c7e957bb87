"""Multi-step neurons and synapses, one Python loop over time each.

Every function takes its input time-major, ``[T, B, ...]``, starts from zero
state and returns the spikes ``[T, B, ...]`` and, with ``record=True``, the
membrane compared with the threshold at each step (else ``None``).  Whether
the reset carries gradient follows the task's reference implementation and is
stated in each docstring.  The loops walk ``inputs.unbind(0)`` rather than
indexing ``inputs[t]``: indexing makes the backward pass zero-fill a full
``[T, ...]`` gradient per step (quadratic in T).
"""

from __future__ import annotations

import torch

from ..torch_surrogates import (
    ArctanSpike,
    RectangularSpike,
    SigmoidSpike,
    TriangleSpike,
    spike,
)

Pair = tuple[torch.Tensor, "torch.Tensor | None"]


def _stack(items: list[torch.Tensor] | None) -> torch.Tensor | None:
    return None if items is None else torch.stack(items)


def exponential_synapse(inputs: torch.Tensor, decay: float) -> torch.Tensor:
    """I[t] = decay * I[t-1] + inputs[t]."""
    current = torch.zeros_like(inputs[0])
    out = []
    for x_t in inputs.unbind(0):
        current = decay * current + x_t
        out.append(current)
    return torch.stack(out)


def soft_reset_lif(current: torch.Tensor, a_mem: float, v_th: float, alpha: float, width: float, record: bool) -> Pair:
    """synthetic: V[t] = a (V[t-1] - V_th S[t-1]) + (1 - a) I[t]; S = H((V - V_th) / V_th).

    The reset uses the previous spike with its surrogate gradient (brainpy's
    soft reset does not detach it).
    """
    v = torch.zeros_like(current[0])
    s = torch.zeros_like(current[0])
    spikes, membranes = [], ([] if record else None)
    for i_t in current.unbind(0):
        v = a_mem * (v - v_th * s) + (1.0 - a_mem) * i_t
        s = spike(TriangleSpike, (v - v_th) / v_th, alpha, width)
        spikes.append(s)
        if record:
            membranes.append(v)
    return torch.stack(spikes), _stack(membranes)


def subtractive_lif(inputs: torch.Tensor, beta: float, v_th: float, alpha: float, record: bool) -> Pair:
    """fc_mnist: U[t] = beta U[t-1] + X[t] - V_th H(U[t-1] - V_th); S = H(U - V_th).

    The reset term is computed from the previous membrane without gradient
    (snnTorch's default ``reset_delay`` behaviour).
    """
    u = torch.zeros_like(inputs[0])
    spikes, membranes = [], ([] if record else None)
    for x_t in inputs.unbind(0):
        reset = (u.detach() > v_th).to(u.dtype)
        u = beta * u + x_t - v_th * reset
        spikes.append(spike(ArctanSpike, u - v_th, alpha))
        if record:
            membranes.append(u)
    return torch.stack(spikes), _stack(membranes)


def hard_reset_lif(inputs: torch.Tensor, tau: float, v_th: float, alpha: float, record: bool) -> Pair:
    """fc_mnist_poisson: H = V + (X - V) / tau; S = H(H - V_th); V = H (1 - S).

    The reset multiplies by (1 - S) with S's surrogate gradient (SpikingJelly's
    default ``detach_reset=False``).
    """
    v = torch.zeros_like(inputs[0])
    spikes, membranes = [], ([] if record else None)
    for x_t in inputs.unbind(0):
        h = v + (x_t - v) / tau
        s = spike(SigmoidSpike, h - v_th, alpha)
        v = h * (1.0 - s)
        spikes.append(s)
        if record:
            membranes.append(h)
    return torch.stack(spikes), _stack(membranes)


def stbp_lif(inputs: torch.Tensor, tau: float, v_th: float, a: float, center: float, record: bool) -> Pair:
    """dsrn_tdbn: U[t] = tau U[t-1] (1 - S[t-1]) + X[t]; S = H(U - V_th).

    The multiplicative reset keeps the spike's surrogate gradient, as in the
    STBP reference code.  ``center`` shifts the rectangular window: 0 centres
    it on the threshold, -V_th on zero (the reference code's choice).
    """
    u = torch.zeros_like(inputs[0])
    s = torch.zeros_like(inputs[0])
    spikes, membranes = [], ([] if record else None)
    for x_t in inputs.unbind(0):
        u = tau * u * (1.0 - s) + x_t
        s = spike(RectangularSpike, u - v_th, a, center)
        spikes.append(s)
        if record:
            membranes.append(u)
    return torch.stack(spikes), _stack(membranes)
