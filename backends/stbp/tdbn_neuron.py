"""tdBN and the neuron layer it feeds, as one autograd node on the CPU (dsrn_tdbn).

In the residual network every convolution's output goes through tdBN into a
neuron layer (``lif1``), or through tdBN and the block's residual sum into one
(``lif2``).  Run apart, tdBN writes its output, the sum writes another tensor,
the neuron writes its membrane, and the backward pass keeps tdBN's input *and*
the membrane: two float tensors the size of the layer per time step.  Fused
(:mod:`backends.stbp.cpu_tdbn_node`), the forward normalises in cache and writes
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

from ..torch_networks import FoldedTdBN
from . import layout, multistep


def _kernels():
    from . import cpu_tdbn

    return cpu_tdbn


class TdBNNeuronFunction(torch.autograd.Function):
    """(x [T, B, C, H, W], tdBN's weight, bias, the residual or None, the residual's tdBN's weight
    and bias or None, the tdBN modules (their constants and running statistics), kind, params) -> spikes."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, r_weight, r_bias, bn, r_bn, kind, p):
        k = _kernels()
        if residual is not None and r_bn is None:
            # the block's input spikes: read, and kept, as their one-byte copy where there is
            # one (the kernels add 0 or 1 either way); unpacked to floats, they cost a copy
            residual = multistep.spike_bytes.keep(residual)
        consts = _batch(k, bn, x, weight, bias)
        r_consts = None if r_bn is None else _batch(k, r_bn, residual, r_weight, r_bias)
        s, s8 = k.torch_tdbn_neuron_forward(kind, x, p, consts, residual, r_consts)
        if multistep.spike_bytes.active():
            multistep.spike_bytes.register(s, s8)  # a convolution fed these spikes keeps the bytes
        ctx.save_for_backward(x, residual, consts, r_consts)
        ctx.kind, ctx.p = kind, p
        ctx.factors = _factor(bn), 0.0 if r_bn is None else _factor(r_bn)
        return s

    @staticmethod
    def backward(ctx, grad_s):
        x, residual, consts, r_consts = ctx.saved_tensors
        k, needs = _kernels(), ctx.needs_input_grad
        gx, gr, sums = k.torch_tdbn_neuron_backward(ctx.kind, x, ctx.p, consts, grad_s, ctx.factors[0], residual,
                                                    r_consts, ctx.factors[1], needs[0], needs[3])
        normalised = r_consts is not None
        return (gx, sums[k.G_WEIGHT] if needs[1] else None, sums[k.GSUM] if needs[2] else None, gr,
                sums[k.G_R_WEIGHT] if normalised and needs[4] else None,
                sums[k.GSUM] if normalised and needs[5] else None, None, None, None, None)


def _factor(bn) -> float:
    """What tdBN multiplies its weight by: alpha V_th."""
    return bn.alpha * bn.v_th


def _batch(k, bn, x, weight, bias):
    """The per-channel constants of training ``bn`` on ``x`` (``cpu_tdbn.torch_tdbn_batch``), whose
    running statistics this updates."""
    return k.torch_tdbn_batch(x, weight, bias, _factor(bn), bn.eps, bn.momentum, bn.running_mean, bn.running_var)


class NumbaStatisticsTdBN(FoldedTdBN):
    """:class:`~backends.torch_networks.FoldedTdBN` whose running statistics after a static
    batch (the stem's, in training) come from the node's statistics kernel where it applies:
    one read of the batch instead of PyTorch's ``var_mean`` (about 0.5 ms on the CPU for
    dsrn_tdbn's stem, ten times the kernel's time)."""

    @torch.no_grad()
    def update_running_static(self, flat: torch.Tensor, steps: int) -> None:
        if flat.dim() != 4 or not applies(flat.unsqueeze(0), grad=False):
            return super().update_running_static(flat, steps)
        _kernels().torch_tdbn_batch(flat.unsqueeze(0), self.weight, self.bias, _factor(self), self.eps, self.momentum,
                                    self.running_mean, self.running_var, count=flat.numel() // flat.shape[1] * steps)


def applies(x: torch.Tensor, grad: bool = True) -> bool:
    """Whether the fused node can run ``x`` [T, B, C, H, W] (else tdBN and the neuron run apart);
    ``grad`` False: whether the statistics kernel can, gradients recorded or not."""
    return (not x.is_cuda and x.dtype in (torch.float32, torch.float64) and x.dim() == 5
            and (torch.is_grad_enabled() or not grad) and not torch.is_autocast_enabled("cpu")
            and multistep.numba_installed())


def tdbn_neuron(bn, kind: str, p, x: torch.Tensor, residual: torch.Tensor | None = None,
                residual_bn=None) -> torch.Tensor:
    """Spikes of neuron ``kind`` fed ``bn(x) + residual`` -- or ``bn(x) + residual_bn(residual)`` --,
    ``bn`` and ``residual_bn`` training :class:`~backends.torch_networks.TdBN` modules whose
    running statistics this updates."""
    if kind not in multistep.KINDS:
        raise KeyError(f"unknown neuron kind {kind!r}")
    x = layout.steps_of_images(x)  # NCHW or channels-last steps: the kernels read both
    if residual is not None:
        residual = layout.like(x, residual)
    r_weight, r_bias = (None, None) if residual_bn is None else (residual_bn.weight, residual_bn.bias)
    return TdBNNeuronFunction.apply(x, bn.weight, bn.bias, residual, r_weight, r_bias, bn, residual_bn, kind,
                                    tuple(float(v) for v in p))
