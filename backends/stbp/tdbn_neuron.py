"""tdBN and the neuron layer it feeds, as one autograd node on the CPU (dsrn_tdbn).

In the residual network every convolution's output goes through tdBN into a
neuron layer (``lif1``), or through tdBN and the block's residual sum into one
(``lif2``).  Run apart, tdBN writes its output, the sum writes another tensor,
the neuron writes its membrane, and the backward pass keeps tdBN's input *and*
the membrane: two float tensors the size of the layer per time step.  Fused
(:mod:`backends.stbp.cpu_tdbn`), the forward normalises in cache and writes
only the spikes; the backward recomputes the membranes from tdBN's input.
What the node keeps is tdBN's input and the residual (spikes: kept in one
byte, the same bytes the block's first convolution keeps; the shortcut's
tdBN output where the block has a convolution on its shortcut).

The statistics are tdBN's (:class:`~backends.torch_networks.FoldedTdBN`):
batch mean and biased variance over (T, B, H, W) per channel, the running
statistics updated with the unbiased variance, the weight
lambda * alpha * V_th.  Used by ``stbp:fused`` in training on float32 and
float64 CPU tensors where numba is installed; anything else (evaluation,
recording, autocast, CUDA) runs the layers apart.
"""

from __future__ import annotations

import torch

from . import layout, multistep


def _kernels():
    from . import cpu_tdbn

    return cpu_tdbn


class TdBNNeuronFunction(torch.autograd.Function):
    """(x [T, B, C, H, W], tdBN's weight, bias, mean, invstd [C], kind, params, residual or None,
    and for a residual through tdBN of its own: that tdBN's weight, bias, mean, invstd) -> spikes."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, kind, p, residual, r_weight, r_bias, r_mean, r_invstd):
        k = _kernels()
        normalised = r_weight is not None
        if residual is not None and not normalised:
            # the block's input spikes: read, and kept, as their one-byte copy where there is
            # one (the kernels add 0 or 1 either way); unpacked to floats, they cost a copy
            residual = multistep.spike_bytes.keep(residual)
        s, s8 = k.torch_tdbn_neuron_forward(kind, x, p, *_fold(weight, bias, mean, invstd), residual,
                                            *(_fold(r_weight, r_bias, r_mean, r_invstd) if normalised else ()))
        if multistep.spike_bytes.active():
            multistep.spike_bytes.register(s, s8)  # a convolution fed these spikes keeps the bytes
        ctx.save_for_backward(x, weight, bias, mean, invstd, residual, r_weight, r_bias, r_mean, r_invstd)
        ctx.kind, ctx.p = kind, p
        return s

    @staticmethod
    def backward(ctx, grad_s):
        x, weight, bias, mean, invstd, residual, r_weight, r_bias, r_mean, r_invstd = ctx.saved_tensors
        k, needs = _kernels(), ctx.needs_input_grad
        normalised = r_weight is not None
        scale, shift = _fold(weight, bias, mean, invstd)
        r_scale, r_shift = _fold(r_weight, r_bias, r_mean, r_invstd) if normalised else (None, None)
        g, gsum, gdot, r_gdot = k.torch_tdbn_neuron_backward(ctx.kind, x, ctx.p, scale, shift, mean, invstd, grad_s,
                                                             residual, r_scale, r_shift, r_mean, r_invstd)
        n = x.numel() // x.shape[2]
        gr = None
        if residual is not None and needs[7]:
            # BatchNorm's input gradient: scale (g - mean g - x_hat mean(g x_hat)); g is
            # still needed for x's, so this one is written apart
            gr = (k.torch_tdbn_input_grad(g, residual, r_scale, gsum / n, r_gdot / n, r_mean, r_invstd, False)
                  if normalised else g)
        gx = None
        if needs[0]:
            gx = k.torch_tdbn_input_grad(g, x, scale, gsum / n, gdot / n, mean, invstd, in_place=gr is not g)
        r_grads = (r_gdot if needs[8] else None, gsum if needs[9] else None) if normalised else (None, None)
        return (gx, gdot if needs[1] else None, gsum if needs[2] else None, None, None, None, None, gr, *r_grads,
                None, None)


def _fold(weight, bias, mean, invstd):
    """tdBN as a scale and a shift per channel: y = scale x + shift."""
    scale = invstd * weight
    return scale, bias - mean * scale


def _batch_statistics(bn, x: torch.Tensor):
    """(mean, invstd) of ``x`` [T, B, C, H, W] for training ``bn``, whose running statistics this updates."""
    with torch.no_grad():
        mean, var = _kernels().torch_tdbn_stats(x)
        bn.update_running(mean, var, x.numel() // x.shape[2])
        return mean, 1.0 / torch.sqrt(var + bn.eps)


def applies(x: torch.Tensor) -> bool:
    """Whether the fused node can run ``x`` [T, B, C, H, W] (else tdBN and the neuron run apart)."""
    return (not x.is_cuda and x.dtype in (torch.float32, torch.float64) and x.dim() == 5
            and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu") and multistep.numba_installed())


def tdbn_neuron(bn, kind: str, p, x: torch.Tensor, residual: torch.Tensor | None = None,
                residual_bn=None) -> torch.Tensor:
    """Spikes of neuron ``kind`` fed ``bn(x) + residual`` -- or ``bn(x) + residual_bn(residual)`` --,
    ``bn`` and ``residual_bn`` training :class:`~backends.torch_networks.TdBN` modules whose
    running statistics this updates."""
    if kind not in multistep.KINDS:
        raise KeyError(f"unknown neuron kind {kind!r}")
    x = layout.steps_of_images(x)  # NCHW or channels-last steps: the kernels read both
    mean, invstd = _batch_statistics(bn, x)
    r_args = (None, None, None, None)
    if residual is not None:
        residual = layout.like(x, residual)
        if residual_bn is not None:
            r_mean, r_invstd = _batch_statistics(residual_bn, residual)
            r_args = (residual_bn.weight * (residual_bn.alpha * residual_bn.v_th), residual_bn.bias, r_mean, r_invstd)
    return TdBNNeuronFunction.apply(x, bn.weight * (bn.alpha * bn.v_th), bn.bias, mean, invstd, kind,
                                    tuple(float(v) for v in p), residual, *r_args)
