"""What the stbp engine's tests (tests/test_stbp_*.py) share: each neuron kind's parameters and
inputs that make it fire, the clear neurons they are compared with, and the fused backend's variants.

torch is imported here: a test file imports this after its own ``pytest.importorskip("torch")``.
"""

import pytest
import torch

from backends.stbp import multistep, neurons
from tasks.parity import parity_case


# Parameters of each neuron kind (multistep's order) and an input scale that
# makes it fire often enough for resets and surrogates to matter.
KINDS = {
    "soft": ((0.5, 1.0, 0.3, 1.0), 3.0),
    "subtractive": ((0.9, 1.0, 2.0), 1.0),
    "hard": ((2.0, 1.0, 4.0), 2.0),
    "stbp": ((0.25, 0.4, 0.5, 0.0), 0.6),
}
T, SHAPE = 9, (4, 6)


def inputs(kind, static, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scale = KINDS[kind][1]
    shape = SHAPE if static else (T,) + SHAPE
    x = (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 0.5) * scale
    gs = torch.randn((T,) + SHAPE, generator=gen, dtype=dtype)
    gm = torch.randn((T,) + SHAPE, generator=gen, dtype=dtype)
    return x, gs, gm


def clear_neuron(kind, x, p, static):
    xs = x.unsqueeze(0).expand((T,) + tuple(x.shape)) if static else x
    return {"soft": neurons.soft_reset_lif, "subtractive": neurons.subtractive_lif,
            "hard": neurons.hard_reset_lif, "stbp": neurons.stbp_lif}[kind](xs, *p, record=True)


def run_backward(fn, x, gs, gm):
    """Spikes, membranes and the input gradient of sum(s * gs + m * gm)."""
    x = x.clone().requires_grad_(True)
    s, m = fn(x)
    (s * gs + m * gm).sum().backward()
    return s.detach(), m.detach(), x.grad


def saved_bytes(fn, x):
    """Bytes autograd keeps for the backward pass of ``fn(x)``."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.clone().requires_grad_(True))
    return sum(saved)


needs_numba = pytest.mark.skipif(not multistep.numba_installed(), reason="numba is not installed")


def exact(kind, dtype):
    """Bit-identical to the torch engine, except the sigmoid surrogate's exp (a rounding apart)."""
    if kind != "hard":
        return dict(rtol=0.0, atol=0.0)
    return dict(rtol=1e-13, atol=1e-15) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)


def fused_variant(task, precision="fp64", **flags):
    from backends.stbp.fused import FusedSTBPBackend

    case = parity_case(task)
    cls = type("Variant", (FusedSTBPBackend,), flags)
    return cls(case.spec, case.weights, precision=precision), case
