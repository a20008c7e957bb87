"""Surrogate spike functions that SpikingJelly does not ship, written on its
:class:`~spikingjelly.activation_based.surrogate.SurrogateFunctionBase`.

ScaledTriangle fires with SpikingJelly's own ``surrogate.heaviside`` (1 where
x >= 0), as the library's surrogates do; only its backward formula is ours.
StrictATan, StrictRect and ShiftedRect fire at x > 0, the spec's H: the
library's fire on a membrane exactly at the threshold, which parity's edge
case puts there (and bf16 reaches in fc_mnist).  A surrogate defined outside
SpikingJelly's ``surrogate`` module has no fused kernel, so a ``LIFNode`` using
one runs the library's Torch reference path (autograd through each step), as
a ``LIFNode`` with the library's ``Rect`` does anyway.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import surrogate


class _shifted_rect(torch.autograd.Function):
    @staticmethod
    def forward(x, alpha, center):
        return (x > 0).to(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, alpha, center = inputs
        ctx.save_for_backward(x)
        ctx.alpha, ctx.center = alpha, center

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        window = ((x - ctx.center).abs() < 0.5 / ctx.alpha).to(grad_output.dtype)
        return grad_output * ctx.alpha * window, None, None


class ShiftedRect(surrogate.SurrogateFunctionBase):
    """``surrogate.Rect`` with its window moved: h(x) = alpha where |x - center| < 0.5 / alpha,
    firing at x > 0.

    dsrn_tdbn's ``--surrogate-center zero``: the neuron passes x = U - V_th, and
    ``center = -V_th`` centres the window on U = 0 (the STBP reference code).
    """

    def __init__(self, alpha: float = 1.0, center: float = 0.0, spiking: bool = True):
        super().__init__(spiking=spiking, alpha=alpha, center=center)

    @staticmethod
    def spiking_function(x, alpha, center):
        return _shifted_rect.apply(x, alpha, center)

    @staticmethod
    def primitive_function(x, alpha, center):
        return torch.clamp(alpha * (x - center) + 0.5, min=0.0, max=1.0)


class _scaled_triangle(torch.autograd.Function):
    @staticmethod
    def forward(x, alpha, width, scale):
        return surrogate.heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, alpha, width, scale = inputs
        ctx.save_for_backward(x)
        ctx.alpha, ctx.width, ctx.scale = alpha, width, scale

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        z = x / ctx.scale
        return grad_output * ctx.alpha * torch.clamp(ctx.width - z.abs(), min=0.0) / ctx.scale, None, None, None


class ScaledTriangle(surrogate.SurrogateFunctionBase):
    """Spike H(x / scale) with h = alpha * max(0, width - |x / scale|) (synthetic's triangle).

    The neuron passes x = V - V_th; with ``scale = V_th`` this is the spec's
    S = H((V - V_th) / V_th), whose derivative with respect to V carries the
    factor 1 / V_th.
    """

    def __init__(self, alpha: float = 0.3, width: float = 1.0, scale: float = 1.0, spiking: bool = True):
        super().__init__(spiking=spiking, alpha=alpha, width=width, scale=scale)

    @staticmethod
    def spiking_function(x, alpha, width, scale):
        return _scaled_triangle.apply(x, alpha, width, scale)


def _strict(library_backward):
    """An autograd Function firing at x > 0 whose backward is a library surrogate's,
    ``library_backward(grad_output, x, alpha) -> (grad_x, None)``."""

    class Strict(torch.autograd.Function):
        @staticmethod
        def forward(x, alpha):
            return (x > 0).to(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, alpha = inputs
            ctx.save_for_backward(x)
            ctx.alpha = alpha

        @staticmethod
        def backward(ctx, grad_output):
            return library_backward(grad_output, ctx.saved_tensors[0], ctx.alpha)

    return Strict


_strict_atan = _strict(lambda grad, x, alpha: (surrogate.ATan.backward(grad, x, alpha), None))
_strict_rect = _strict(surrogate.rect_backward)


class StrictATan(surrogate.ATan):
    """``surrogate.ATan`` (its gradient, unchanged) firing at x > 0, the spec's H, instead of x >= 0.

    Used by fc_mnist's custom neuron only: there, under bf16, the first step's
    membrane U[1] = W x + b is a bfloat16 number and equals V_th = 1 exactly
    often enough to matter (SpikingJelly's heaviside would fire on the tie).
    """

    @staticmethod
    def spiking_function(x, alpha):
        return _strict_atan.apply(x, alpha)


class StrictRect(surrogate.Rect):
    """``surrogate.Rect`` (its gradient, unchanged) firing at x > 0, the spec's H, instead of x >= 0.

    dsrn_tdbn's neurons: a static image's stem convolution with running
    statistics lands exactly on V_th at parity's edge, and the library's
    heaviside would fire there.  Rect has no fused kernel, so this costs nothing.
    """

    @staticmethod
    def spiking_function(x, alpha):
        return _strict_rect.apply(x, alpha)
