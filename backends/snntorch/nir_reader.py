"""snnTorch's own NIR reader (``snntorch.import_nir.import_from_nir``; not ``snntorch.import_from_nir``,
where its docs put it): a graph stepped one time step per call, its state carried between calls."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from snntorch/import_nir.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "time step fixed at dt = 1e-4 s: a graph's time constants are read at that step, whatever its own",
    "LIF becomes Leaky(beta = 1 - dt/tau, reset to zero) with the input's factor R dt/tau moved into the threshold "
    "(V_th / (R dt/tau)): the weights are kept, so its membrane is the reference's divided by R dt/tau (x2 at "
    "tau = 2 dt) while its spikes are the same",
    "v_leak is not read (assumed 0)",
    "float32",
]


def version() -> str:
    import snntorch

    return snntorch.__version__


def load(graph, dt: float, batch: int, T: int):
    from snntorch.import_nir import import_from_nir

    return import_from_nir(graph)


def run(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Output spikes [T, B, ...] and each neuron's membrane after the step (its ``mem``: the
    imported neurons keep their state inside, ``init_hidden``)."""
    import torch

    neurons = {name: m for name, m in model.named_modules() if hasattr(m, "mem") and getattr(m, "init_hidden", False)}
    out, mem = [], {name: [] for name in neurons}
    with torch.no_grad():
        for xt in torch.as_tensor(x, dtype=torch.float32):
            y = model(xt)
            out.append(y[0] if isinstance(y, tuple) else y)  # (output, executor state) or the output
            for name, m in neurons.items():
                mem[name].append(m.mem.clone())
    return torch.stack(out).double().numpy(), {k: torch.stack(v).double().numpy() for k, v in mem.items()}


def calls(model, x: np.ndarray):
    """(inference, forward + backward) on ``x`` staged once, each starting from reset neurons."""
    import torch

    from ..torch_nir import timed_calls
    from snntorch import utils

    xs = torch.as_tensor(x, dtype=torch.float32)

    def forward():
        utils.reset(model)  # the neurons keep their state inside (init_hidden)
        out = [model(xt) for xt in xs]
        return torch.stack([y[0] if isinstance(y, tuple) else y for y in out])

    return timed_calls(model, forward)
