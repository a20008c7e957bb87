"""Spyx's own NIR reader (``spyx.nir.from_nir``): builds the model and scans it over time-major input."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from spyx/nir.py and spyx/nn.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "time step taken from the caller (dt passed: the reference's); LIF's beta = 1 - dt/tau",
    "LIF: V = beta V + x - S V_th with S decided from the previous step's V: a subtractive reset, and R dt/tau "
    "not applied to the input (R is read as tau/dt)",
    "v_leak not read",
    "convolutions channels-last (its calling convention: the input is given [T, B, H, W, C])",
    "float32",
]


def version() -> str:
    import spyx

    return getattr(spyx, "__version__", "unknown")


def load(graph, dt: float, batch: int, T: int):
    return (graph, dt)  # spyx builds the model and runs it in one call


def run(model, x: np.ndarray) -> np.ndarray:
    import jax.numpy as jnp
    import spyx.nir as spyx_nir

    graph, dt = model
    if x.ndim > 3:  # Spyx's convolutions are channels-last: [T, B, H, W, C] in, and back
        x = np.moveaxis(x, 2, -1)
    _, out = spyx_nir.from_nir(graph, jnp.asarray(x, dtype=jnp.float32), dt=dt)
    out = np.asarray(out, dtype=np.float64)
    return np.moveaxis(out, -1, 2) if out.ndim > 3 else out
