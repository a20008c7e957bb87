"""Sinabs's own NIR reader (``sinabs.from_nir``): its layers take time folded into the batch, ``[B*T, ...]``."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from sinabs/nir.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "no time step: LIF's tau (seconds in NIR) is taken as sinabs's tau_mem in steps, and sinabs decays by "
    "exp(-1/tau_mem) (exact exponential), not forward Euler",
    "LIF's reset: sinabs's default MembraneSubtract",
    "float32",
]


def version() -> str:
    import sinabs

    return sinabs.__version__


def load(graph, dt: float, batch: int, T: int):
    import sinabs

    return sinabs.from_nir(graph, batch_size=batch)


def run(model, x: np.ndarray) -> np.ndarray:
    import torch

    T, B = x.shape[:2]
    xb = torch.as_tensor(np.swapaxes(x, 0, 1).reshape((B * T,) + x.shape[2:]), dtype=torch.float32)
    with torch.no_grad():
        y = model(xb)
    y = y[0] if isinstance(y, tuple) else y
    return np.swapaxes(y.double().numpy().reshape((B, T) + tuple(y.shape[1:])), 0, 1)
