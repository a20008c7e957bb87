"""snnTorch's own NIR reader (``snntorch.import_nir.import_from_nir``; not ``snntorch.import_from_nir``,
where its docs put it): a graph stepped one time step per call, its state carried between calls."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from snntorch/import_nir.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "time step fixed at dt = 1e-4 s: a graph's time constants are read at that step, whatever its own",
    "LIF becomes Leaky(beta = 1 - dt/tau) with reset to zero; R dt/tau is folded into the incoming weights "
    "(it warns 'scaling weights to avoid scaling inputs')",
    "v_leak is not read (assumed 0)",
    "float32",
]


def version() -> str:
    import snntorch

    return snntorch.__version__


def load(graph, dt: float, batch: int, T: int):
    from snntorch.import_nir import import_from_nir

    return import_from_nir(graph)


def run(model, x: np.ndarray) -> np.ndarray:
    import torch

    state, out = None, []
    with torch.no_grad():
        for xt in torch.as_tensor(x, dtype=torch.float32):
            y, state = model(xt, state) if state is not None else model(xt)
            out.append(y[0] if isinstance(y, tuple) else y)
    return torch.stack(out).double().numpy()
