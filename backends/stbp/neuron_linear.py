"""A neuron layer, the linear layer it feeds and the neuron layer that feeds, as one
autograd node on the CPU.

In the fully connected networks the hidden layer's spikes go to one linear
layer with few outputs (fc_mnist's and fc_mnist_poisson's 10 classes), and
that to the output neurons.  Run apart, the neuron writes its spikes as floats,
the linear layer keeps them for its weight gradient, and the backward pass
writes the spikes' gradient ``g W`` over all T before the neuron reads it back:
three tensors the size of the layer per time step; the small output layer costs
an autograd node and its tensors (about 0.2 ms of fc_mnist's 3 ms step).  Fused
(:func:`~backends.stbp.cpu_kernels.torch_neuron_linear_forward`), each step's
spikes of a sample become its row of the linear layer's output while they are in
cache, and that row the output neurons' step; the backward pass runs the output
neurons' reverse step and computes ``g W`` per sample and step where the hidden
neuron's reverse step needs it, and recomputes the spikes for the weight gradient
from the membrane.  For a static input, unless the membranes are asked for
(recording), the forward does not write them: the node keeps the input (T times
smaller) and the backward pass computes each sample's membranes again into a
scratch in cache before walking it in reverse (the forward's arithmetic: the same
values); the hidden spikes come out as one byte each.

Used by ``stbp:fused`` on float32 and float64 CPU tensors where numba is
installed, with gradients on and outside autocast; anything else runs the
layers apart.
"""

from __future__ import annotations

import torch

from . import multistep


def _kernels():
    from . import cpu_kernels

    return cpu_kernels


class NeuronLinearFunction(torch.autograd.Function):
    """(x, weight [K, N], bias [K] or None, kind, params, steps, keep_membrane, out_kind, out_params)
    -> (spikes uint8, membranes or None, output spikes [T, B, K], output membranes [T, B, K])."""

    @staticmethod
    def forward(ctx, x, weight, bias, kind, p, steps, keep_membrane, out_kind, out_p):
        s8, m, s_out, m_out = _kernels().torch_neuron_linear_forward(kind, x, p, steps, weight, bias, keep_membrane,
                                                                     out_kind, out_p)
        # the membranes where they were written, else the input they are computed from again
        ctx.save_for_backward(m if keep_membrane else x.detach(), weight, m_out)
        ctx.steps = None if keep_membrane else (steps if steps is not None else x.shape[0])
        ctx.kind, ctx.p, ctx.out_kind, ctx.out_p = kind, p, out_kind, out_p
        ctx.static, ctx.has_bias = steps is not None, bias is not None
        ctx.mark_non_differentiable(s8)
        ctx.set_materialize_grads(False)
        return s8, m, s_out, m_out

    @staticmethod
    def backward(ctx, grad_s8, grad_m, grad_s_out, grad_m_out):
        saved, weight, m_out = ctx.saved_tensors
        gx, gw, gb = _kernels().torch_neuron_linear_backward(ctx.kind, saved, ctx.p, weight, m_out, ctx.out_kind,
                                                             ctx.out_p, grad_s_out, grad_m_out, ctx.static, ctx.steps,
                                                             grad_m)
        return (gx, gw if ctx.needs_input_grad[1] else None, gb if ctx.has_bias and ctx.needs_input_grad[2] else None,
                None, None, None, None, None, None)


def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the fused node can run ``x`` (else the layers run apart)."""
    return (not x.is_cuda and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype
            and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
            and not torch.is_autocast_enabled("cpu") and x.dim() in (2, 3) and multistep.numba_installed())


def neuron_linear(kind: str, x: torch.Tensor, p, weight: torch.Tensor, bias: torch.Tensor | None,
                  out_kind: str, out_p, steps: int | None = None, record: bool = True):
    """Spikes (uint8) and membranes of neuron ``kind`` fed ``x``, and spikes and membranes of
    neuron ``out_kind`` fed the linear layer's output.

    The hidden membranes are None for a static input (``steps`` given) unless ``record``:
    the node then keeps the input instead, T times smaller.  A time-major input is as large
    as the membranes, and computing them again in the backward pass cost more than writing
    them (fc_mnist_poisson: 0.2-0.4 ms more a step), so there they are kept.
    """
    for k in (kind, out_kind):
        if k not in multistep.KINDS:
            raise KeyError(f"unknown neuron kind {k!r}")
    keep_membrane = record or steps is None
    return NeuronLinearFunction.apply(x, weight, bias, kind, tuple(float(v) for v in p), steps, keep_membrane,
                                      out_kind, tuple(float(v) for v in out_p))
