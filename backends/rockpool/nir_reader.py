"""Rockpool's own NIR reader (``rockpool.nn.modules.torch.nir.from_nir``): batch-major ``[B, T, ...]`` input."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from rockpool/nn/modules/torch/nir.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "maps NIR's LIF to LIFTorch through a CubaLIF's fields (tau_mem, tau_syn): a plain nir.LIF fails",
    "float32",
]


def version() -> str:
    from .neurons import rockpool  # imported with samna blocked: see neurons.samna_blocked

    return rockpool.__version__


def load(graph, dt: float, batch: int, T: int):
    from .neurons import samna_blocked

    with samna_blocked():  # else importing Rockpool's modules runs pip install samna (its placeholder on PyPI)
        from rockpool.nn.modules.torch.nir import from_nir

    return from_nir(graph)


def run(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import torch

    with torch.no_grad():
        y = model(torch.as_tensor(np.swapaxes(x, 0, 1), dtype=torch.float32))
    y = y[0] if isinstance(y, tuple) else y
    return np.swapaxes(y.double().numpy(), 0, 1), {}  # its neurons' membranes are not read from its modules


def calls(model, x: np.ndarray):
    """(inference, forward + backward) on ``x`` staged once (batch-major)."""
    import torch

    from ..torch_nir import timed_calls

    xs = torch.as_tensor(np.swapaxes(x, 0, 1), dtype=torch.float32)

    def forward():
        y = model(xs)
        return y[0] if isinstance(y, tuple) else y

    return timed_calls(model, forward)
