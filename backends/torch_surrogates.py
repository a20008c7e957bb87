"""Spike functions: Heaviside forward, a surrogate derivative backward.

Written once for the PyTorch backends: our own neurons use them, and a library
that lacks one of the tasks' surrogates (Norse has no arctangent and no
rectangle) takes it from here through its own spike-function hook.

Each surrogate is its own ``torch.autograd.Function`` (made by
:func:`_spike_function` from its formula) so that the backward pass is
exactly the formula of ``docs/tasks.md`` and nothing else.  All take
``x`` = (membrane - threshold), possibly scaled, and return H(x) = [x > 0].
"""

from __future__ import annotations

import math

import torch
from torch.autograd import Function


def heaviside(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def spike(function: type[Function], x: torch.Tensor, *params: float) -> torch.Tensor:
    """H(x), through the spike ``function`` (its surrogate gradient) only where a gradient
    is taken; without one the Heaviside alone, the same values (compiled, a ``Function``
    that saves ``x`` for a backward that never comes breaks dynamo's graph at every neuron
    of an evaluation, and the pieces' recompilations pass its limit on the DSRN)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return function.apply(x, *params)
    return heaviside(x)


def _spike_function(name: str, doc: str, grad_of):
    """A ``Function`` class: H(x) forward, ``grad_of(grad, x, *params)`` backward.

    Its ``apply(x, *params)`` keeps ``x`` (the one tensor the backward needs)
    and the surrogate's parameters; the parameters get no gradient."""

    def forward(ctx, x: torch.Tensor, *params: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.params = params
        return heaviside(x)

    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return (grad_of(grad, x, *ctx.params),) + (None,) * len(ctx.params)

    return type(name, (Function,), {"__doc__": doc, "__module__": __name__,
                                    "forward": staticmethod(forward), "backward": staticmethod(backward)})


def _rectangle(grad, x, a: float, center: float):
    return grad * ((x - center).abs() < a).to(grad.dtype) / (2.0 * a)


def _arctan(grad, x, alpha: float):
    return grad * (alpha / 2.0) / (1.0 + (math.pi * alpha * x / 2.0) ** 2)


def _sigmoid(grad, x, alpha: float):
    s = torch.sigmoid(alpha * x)
    return grad * alpha * s * (1.0 - s)


def _triangle(grad, x, alpha: float, width: float):
    return grad * alpha * torch.clamp(width - x.abs(), min=0.0)


# apply(x, a, center)
RectangularSpike = _spike_function("RectangularSpike", "h(x) = 1 / (2a) where |x - center| < a, else 0 (STBP).",
                                   _rectangle)
# apply(x, alpha)
ArctanSpike = _spike_function("ArctanSpike", "h(x) = (alpha / 2) / (1 + (pi alpha x / 2)^2) (snnTorch's atan).",
                              _arctan)
# apply(x, alpha)
SigmoidSpike = _spike_function("SigmoidSpike", "h(x) = alpha s(alpha x) (1 - s(alpha x)), s the logistic function.",
                               _sigmoid)
# apply(x, alpha, width)
TriangleSpike = _spike_function("TriangleSpike",
                                "h(x) = alpha * max(0, width - |x|) (the ReLU-shaped surrogate of brainstate).",
                                _triangle)
