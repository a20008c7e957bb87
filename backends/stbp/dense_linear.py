"""Dense float32 products on the CPU through oneDNN instead of ``torch.mm``.

PyTorch's CPU build sends a float32 ``torch.mm`` / ``F.linear`` to MKL.  On
an AMD EPYC of our CI machines MKL runs its float32 GEMM at about half the
AVX-512 peak (about 190 GFLOP/s on 2 cores, where the peak is about 420),
while oneDNN -- also inside every x86 PyTorch build, reached through
``torch.ops.mkldnn._linear_pointwise``, the op PyTorch's own compiler emits
for frozen linear layers -- runs the same products at about 400 GFLOP/s,
in float32 arithmetic (its error against a float64 product is of float32's
size: measured in ``docs/performance.md``, "The CPU engine").

:func:`matmul_nt` is ``a @ b.T`` by oneDNN for float32 CPU tensors outside
autocast, by ``torch.mm`` otherwise (CUDA, float64, bf16 autocast -- where
PyTorch already calls oneDNN).  :class:`DenseLinear` is an ``nn.Linear``
(the same parameters and state-dict names) whose products, forward and
backward, are :func:`matmul_nt`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tasks import cpu


def _onednn_op():
    try:
        op = torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None
    return op if torch.backends.mkldnn.is_available() else None


_OP = _onednn_op()


def available() -> bool:
    """Whether this PyTorch build has oneDNN's linear op."""
    return _OP is not None


# MKL picks its code by the CPU's maker: on Intel's CPUs it runs its own
# fastest kernels, elsewhere slower ones.  Measured (docs/performance.md, "Dense
# products"): on a 2-core AMD EPYC oneDNN ran float32 products twice as fast
# as MKL; on a 2-core Intel Xeon (Sapphire Rapids) MKL was as fast forward and
# faster for weight gradients (fc_mnist_poisson's fc1: 6.1 against 8.9 ms).
MKL_AT_ITS_BEST = ("GenuineIntel",)


def preferred() -> bool:
    """Whether oneDNN's products are the faster choice on this CPU (not where MKL is at its best)."""
    return available() and cpu.vendor() not in MKL_AT_ITS_BEST


def engine(dtype: torch.dtype) -> str:
    """What computes a CPU product of ``dtype`` here (recorded in the device info)."""
    if _OP is None or dtype != torch.float32:
        return "torch.mm"
    return f"oneDNN (torch.ops.mkldnn._linear_pointwise, fp32_precision={torch.backends.mkldnn.fp32_precision})"


def onednn_applies(*tensors: torch.Tensor) -> bool:
    """Whether a product of ``tensors`` goes to oneDNN: all float32 on the CPU, outside autocast."""
    return (_OP is not None and not torch.is_autocast_enabled("cpu")
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors))


def matmul_nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b.T (+ bias)`` for ``a`` [M, K] and ``b`` [N, K] (either may be a strided view)."""
    if onednn_applies(a, b) and (bias is None or onednn_applies(bias)):
        return _OP(a, b, bias, "none", [], "")
    out = a.mm(b.t())
    return out if bias is None else out.add_(bias)


class DenseLinearFunction(torch.autograd.Function):
    """(x [..., J], weight [K, J], bias [K] or None) -> x W^T + b, every product by :func:`matmul_nt`."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        lead, J, K = tuple(x.shape[:-1]), x.shape[-1], weight.shape[0]
        flat = x.reshape(-1, J)
        ctx.shape, ctx.has_bias = (lead, J, K), bias is not None
        # keep only what the gradients asked for need: the input for W's, W for the input's
        ctx.save_for_backward(flat if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        return matmul_nt(flat, weight, bias).reshape(lead + (K,))

    @staticmethod
    def backward(ctx, grad):
        lead, J, K = ctx.shape
        flat, weight = ctx.saved_tensors
        g = grad.reshape(-1, K)
        grad_x = matmul_nt(g, weight.t()).reshape(lead + (J,)) if ctx.needs_input_grad[0] else None
        grad_w = matmul_nt(g.t(), flat.t()) if ctx.needs_input_grad[1] else None
        grad_b = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` with oneDNN's products where :func:`onednn_applies`."""
    if x.numel() > 0 and onednn_applies(x, weight):
        return DenseLinearFunction.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class DenseLinear(nn.Linear):
    """``nn.Linear`` computed by :func:`linear` (by ``F.linear`` where ``onednn`` is False)."""

    onednn = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            return linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)

    @classmethod
    def like(cls, layer: nn.Linear) -> DenseLinear:
        """An instance of ``cls`` holding ``layer``'s parameters (the same tensors)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = layer.in_features, layer.out_features
        new.register_parameter("weight", layer.weight)
        new.register_parameter("bias", layer.bias)
        return new
