"""SpikingJelly's own NIR reader (``spikingjelly.activation_based.nir_exchange.from_nir.import_from_nir``),
run in multi-step mode on time-major ``[T, B, ...]`` input."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from spikingjelly/activation_based/nir_exchange/from_nir.py
DIFFERENCES = [
    "time step taken from the caller (dt passed: the reference's); LIF's tau read in steps as tau/dt",
    "R must be 1 or tau/dt, v_leak must equal v_reset",
    "float32",
]


def version() -> str:
    import spikingjelly

    return getattr(spikingjelly, "__version__", "unknown")


def load(graph, dt: float, batch: int, T: int):
    from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir

    return import_from_nir(graph, dt=dt, step_mode="m")


def run(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import torch
    from spikingjelly.activation_based import functional

    functional.reset_net(model)
    with torch.no_grad():
        y = model(torch.as_tensor(x, dtype=torch.float32))
    return y.double().numpy(), {}  # its neurons' membranes are not read from its modules


def calls(model, x: np.ndarray):
    """(inference, forward + backward) on ``x`` staged once, multi-step, from reset neurons."""
    import torch

    from ..torch_nir import timed_calls
    from spikingjelly.activation_based import functional

    xs = torch.as_tensor(x, dtype=torch.float32)

    def forward():
        functional.reset_net(model)
        return model(xs)

    return timed_calls(model, forward)
