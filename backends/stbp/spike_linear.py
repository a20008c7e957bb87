"""A linear layer fed by spikes, on the CPU: accumulation instead of multiplication.

A spike is 0 or 1, so ``x W^T`` is, for each row, the sum of the columns of W
at the row's spikes: no multiplication, and no work for the zeros.  The
forward pass reads the spikes once, adds the weight columns of the ones it
finds and lists their positions (4 bytes per spike); the backward pass
builds the weight gradient from that list (each spike adds its row's output
gradient to one column) and the input gradient, where one is needed, as the
dense product ``grad W`` (every input has a gradient, spike or not).  So what
the layer keeps for its backward pass is the list of spikes -- at the firing
rates of these tasks a fraction of a byte per input -- instead of the float
input autograd keeps for a dense product.

:class:`SpikeLinear` is an ``nn.Linear`` (same parameters, same state-dict
names) that takes this path for float32 and float64 CPU tensors where numba
is installed, outside autocast (under bf16 autocast the precision policy
wants the product in bfloat16: ``F.linear`` does that), and checks as it
reads that every input is 0 or 1: any other value makes it compute the dense
product instead, so it is never wrong, only slower, on inputs that are not
spikes.
"""

from __future__ import annotations

import torch

from . import multistep
from .dense_linear import DenseLinear, matmul_nt


def _kernels():
    from . import cpu_kernels

    return cpu_kernels


class SpikeLinearFunction(torch.autograd.Function):
    """(x [..., J] of 0s and 1s, weight [K, J], bias [K] or None) -> x W^T + b."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ck = _kernels()
        lead, J, K = tuple(x.shape[:-1]), x.shape[-1], weight.shape[0]
        flat = x.reshape(-1, J).contiguous()
        y, spikes = ck.torch_spike_linear(flat, weight, bias)
        ctx.has_bias = bias is not None
        ctx.shape = (lead, J, K)
        if spikes is None:  # not spikes: a dense product, and the input kept for its backward
            ctx.dense = True
            ctx.save_for_backward(flat, weight)
        else:
            ctx.dense = False
            ctx.save_for_backward(spikes[0], spikes[1], weight)
        return y.reshape(lead + (K,))

    @staticmethod
    def backward(ctx, grad):
        lead, J, K = ctx.shape
        g = grad.reshape(-1, K).contiguous()
        if ctx.dense:
            flat, weight = ctx.saved_tensors
            grad_w = matmul_nt(g.t(), flat.t()) if ctx.needs_input_grad[1] else None
        else:
            rows, cols, weight = ctx.saved_tensors
            grad_w = _kernels().torch_spike_linear_wgrad(g, rows, cols, J) if ctx.needs_input_grad[1] else None
        grad_x = matmul_nt(g, weight.t()).reshape(lead + (J,)) if ctx.needs_input_grad[0] else None
        grad_b = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


# Above this fraction of ones the dense product is faster: accumulating costs
# about one weight-column add per spike, the product a fixed amount.  Measured
# on fc_mnist_poisson's fc1 (784 -> 196, T = 50, B = 128, 2-core EPYC): at
# MNIST's density (0.13) accumulation took half the dense time (about 20 against
# 43 ms forward + weight gradient); at Fashion-MNIST's (0.29) it was slower than
# dense (the step 48 against 36 ms) -- break-even near 0.25.
MAX_DENSITY = 0.2
DENSITY_ROWS = 64  # rows read to estimate it


def sparse_enough(flat: torch.Tensor) -> bool:
    """Whether the ones of ``flat`` [rows, J] are few enough to accumulate (from evenly spaced rows)."""
    sample = flat[:: max(1, flat.shape[0] // DENSITY_ROWS)]
    return float(sample.count_nonzero()) <= MAX_DENSITY * sample.numel()


def accumulates(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the spike path applies to ``x`` (else the dense product)."""
    return (not x.is_cuda and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype
            and not torch.is_autocast_enabled("cpu") and x.dim() >= 1 and x.numel() > 0
            and multistep.numba_installed() and sparse_enough(x.reshape(-1, x.shape[-1])))


class SpikeLinear(DenseLinear):
    """``nn.Linear`` whose input is spikes (see the module docstring); dense
    inputs take :class:`~backends.stbp.dense_linear.DenseLinear`'s products."""

    # Below this many outputs per input, finding the spikes costs about as much
    # as the dense product it replaces: stbp:fused keeps a DenseLinear there.
    MIN_OUTPUTS = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if accumulates(x, self.weight):
            return SpikeLinearFunction.apply(x, self.weight, self.bias)
        return super().forward(x)
