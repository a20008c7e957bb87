"""Spike functions: Heaviside forward, a surrogate derivative backward.

Written once for the PyTorch backends: our own neurons use them, and a library
that lacks one of the tasks' surrogates (Norse has no arctangent and no
rectangle) takes it from here through its own spike-function hook.

Each surrogate is its own ``torch.autograd.Function`` so that the backward
pass is exactly the formula of ``docs/tasks.md`` and nothing else.  All take
``x`` = (membrane - threshold), possibly scaled, and return H(x) = [x > 0].
"""

from __future__ import annotations

import math

import torch
from torch.autograd import Function


def heaviside(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


class RectangularSpike(Function):
    """h(x) = 1 / (2a) where |x - center| < a, else 0 (STBP)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: float, center: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.a, ctx.center = a, center
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        window = ((x - ctx.center).abs() < ctx.a).to(grad.dtype)
        return grad * window / (2.0 * ctx.a), None, None


class ArctanSpike(Function):
    """h(x) = (alpha / 2) / (1 + (pi alpha x / 2)^2) (snnTorch's atan)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        return grad * (a / 2.0) / (1.0 + (math.pi * a * x / 2.0) ** 2), None


class SigmoidSpike(Function):
    """h(x) = alpha s(alpha x) (1 - s(alpha x)), s the logistic function."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return grad * ctx.alpha * s * (1.0 - s), None


class TriangleSpike(Function):
    """h(x) = alpha * max(0, width - |x|) (the ReLU-shaped surrogate of brainstate)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha, ctx.width = alpha, width
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * ctx.alpha * torch.clamp(ctx.width - x.abs(), min=0.0), None, None
