"""Norse's own NIR reader (``norse.torch.from_nir``): a graph stepped one time step per call."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from norse/torch/utils/import_nir.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "time step taken from the caller (dt passed: the reference's)",
    "LIF becomes LIFBoxCell: forward Euler of tau dv/dt = v_leak - v + R I at dt, reset to v_reset = 0",
    "float32",
]


def version() -> str:
    import norse

    return getattr(norse, "__version__", "unknown")


def load(graph, dt: float, batch: int, T: int):
    import norse.torch as norse_torch

    return norse_torch.from_nir(graph, dt=dt)


def run(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Output [T, B, ...] and each neuron node's membrane after the step (its state's ``v``)."""
    import torch

    state, out, mem = None, [], {}
    with torch.no_grad():
        for xt in torch.as_tensor(x, dtype=torch.float32):
            y, state = model(xt, state)
            out.append(y)
            for name, s in state.state.items():
                s = s[0] if isinstance(s, tuple) else s
                if hasattr(s, "v"):
                    mem.setdefault(name, []).append(s.v.clone())
    return torch.stack(out).double().numpy(), {k: torch.stack(v).double().numpy() for k, v in mem.items()}


def calls(model, x: np.ndarray):
    """(inference, forward + backward) on ``x`` staged once, each from a zero state."""
    import torch

    from ..torch_nir import timed_calls

    xs = torch.as_tensor(x, dtype=torch.float32)

    def forward():
        state, out = None, []
        for xt in xs:
            y, state = model(xt, state)
            out.append(y)
        return torch.stack(out)

    return timed_calls(model, forward)
