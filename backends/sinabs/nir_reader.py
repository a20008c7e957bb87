"""Sinabs's own NIR reader (``sinabs.from_nir``): its layers take time folded into the batch, ``[B*T, ...]``."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from sinabs/nir.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "nir.Linear (a weight without bias) is not imported: the node is left out of the module, so a Linear whose "
    "input and output widths agree is silently skipped (the neurons get the Linear's input), and one whose widths "
    "differ fails",
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


def run(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Output [T, B, ...] and each neuron layer's recorded ``v_mem`` (after the step)."""
    import torch

    T, B = x.shape[:2]
    neurons = {name: m for name, m in model.named_modules() if hasattr(m, "record_states") and hasattr(m, "v_mem")}
    for m in neurons.values():
        m.record_states = True
    xb = torch.as_tensor(np.swapaxes(x, 0, 1).reshape((B * T,) + x.shape[2:]), dtype=torch.float32)
    with torch.no_grad():
        y = model(xb)
    y = y[0] if isinstance(y, tuple) else y
    mem = {name: np.swapaxes(m.recordings["v_mem"].double().numpy().reshape((B, T) + tuple(m.recordings["v_mem"].shape[2:])), 0, 1)
           for name, m in neurons.items() if "v_mem" in getattr(m, "recordings", {})}
    return np.swapaxes(y.double().numpy().reshape((B, T) + tuple(y.shape[1:])), 0, 1), mem


def calls(model, x: np.ndarray):
    """(inference, forward + backward) on ``x`` staged once (time folded into the batch), from reset states."""
    import torch

    from ..torch_nir import timed_calls

    T, B = x.shape[:2]
    xb = torch.as_tensor(np.swapaxes(x, 0, 1).reshape((B * T,) + x.shape[2:]), dtype=torch.float32)
    stateful = [m for m in model.modules() if hasattr(m, "reset_states")]

    def forward():
        for m in stateful:
            m.reset_states()
        y = model(xb)
        return y[0] if isinstance(y, tuple) else y

    return timed_calls(model, forward)
