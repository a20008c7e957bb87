"""The synthetic task's whole network as one autograd node on the CPU.

``synthetic`` is 100 inputs -> 4 synaptic soft-reset neurons -> 2 filtered
outputs over T = 200 steps: every layer is tiny and the step is overhead:
five multi-step nodes, two pairs of products on ``[T*B, ...]`` tensors and
their gradients.  Here one kernel
(:func:`~backends.stbp.cpu_kernels.torch_synaptic_forward`) walks each
sample through time: the input spikes (5 Hz: one in 200) are found in one
read of the input and their weight columns added, then the input synapse,
the neuron, the readout and its synapse, all in registers and cache.  The
backward kernel walks each sample back in time the same way and adds the
four parameter gradients.  Kept for the backward pass: the hidden membranes
(16 bytes per sample and step) and the positions of the input spikes.

The input may come in one byte per spike (``uint8``, as ``stbp:fused``
stages the task's binary input on the CPU): a quarter of the memory to read
per step, and eight inputs tested at once.  Any other use of the network
(the layers apart) reads it as floats of the weights' dtype.

The equations and their arithmetic are those of the layers run apart (the
products summed in another order: the same to rounding); an input that is
not 0 or 1, a static input, float16/bfloat16 or autocast, or no gradient
wanted runs the layers apart.
"""

from __future__ import annotations

import torch

from . import multistep


def _kernels():
    from . import cpu_kernels

    return cpu_kernels


class SynapticNetFunction(torch.autograd.Function):
    """(W1, b1, W2, b2, done: the forward kernel's results, decay, params) -> (spikes, O)."""

    @staticmethod
    def forward(ctx, w1, b1, w2, b2, done, decay, p):
        s, m, o, (rows, cols) = done
        ctx.save_for_backward(m, w2, rows, cols)
        ctx.decay, ctx.p, ctx.J = decay, p, w1.shape[1]
        ctx.mark_non_differentiable(s)
        ctx.set_materialize_grads(False)
        return s, o

    @staticmethod
    def backward(ctx, grad_s, grad_o):
        m, w2, rows, cols = ctx.saved_tensors
        if grad_o is None:
            return None, None, None, None, None, None, None
        dw1, db1, dw2, db2 = _kernels().torch_synaptic_backward(m, w2, grad_o, ctx.decay, ctx.p, rows, cols, ctx.J)
        return dw1, db1, dw2, db2, None, None, None


def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (not x.is_cuda and x.dim() == 3 and weight.dtype in (torch.float32, torch.float64)
            and x.dtype in (weight.dtype, torch.uint8)
            and torch.is_grad_enabled() and not x.requires_grad and weight.requires_grad
            and not torch.is_autocast_enabled("cpu") and multistep.numba_installed())


def synaptic_net(x, w1, b1, w2, b2, decay: float, p):
    """``(hidden spikes, O)`` of the synthetic network on spikes ``x`` [T, B, J], or
    ``None`` when an input is not 0 or 1."""
    p = tuple(float(v) for v in p)
    with torch.no_grad():
        done = _kernels().torch_synaptic_forward(x, w1, b1, w2, b2, float(decay), p)
    if done is None:
        return None
    return SynapticNetFunction.apply(w1, b1, w2, b2, done, float(decay), p)
