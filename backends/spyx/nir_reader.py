"""Spyx's own NIR reader (``spyx.nir.from_nir``): builds the model and scans it over time-major input."""

from __future__ import annotations

import numpy as np

# what the importer changes, read from spyx/nir.py and spyx/nn.py (measured by tasks.nir fidelity)
DIFFERENCES = [
    "time step taken from the caller (dt passed: the reference's); LIF's beta = 1 - dt/tau",
    "LIF: V = beta V + x - S V_th with S = H(V - V_th) of the previous step's V: a subtractive reset one step "
    "late, and the input not multiplied by R dt/tau (R read as tau/dt)",
    "v_leak not read",
    "convolutions channels-last (its calling convention: the input is given [T, B, H, W, C])",
    "float32",
]


def version() -> str:
    import spyx

    return getattr(spyx, "__version__", "unknown")


def load(graph, dt: float, batch: int, T: int):
    return (graph, dt)  # spyx builds the model and runs it in one call


def _chain(graph) -> list[str]:
    after = dict(graph.edges)
    node = next(n for n, v in graph.nodes.items() if type(v).__name__ == "Input")
    chain = []
    while node in after and type(graph.nodes[after[node]]).__name__ != "Output":
        node = after[node]
        chain.append(node)
    return chain


def run(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import jax.numpy as jnp
    import spyx.nir as spyx_nir

    graph, dt = model
    channels_last = x.ndim > 3  # Spyx's convolutions are channels-last: [T, B, H, W, C] in, and back
    back = (lambda a: np.moveaxis(np.asarray(a, dtype=np.float64), -1, 2)) if channels_last else (
        lambda a: np.asarray(a, dtype=np.float64))
    if channels_last:
        x = np.moveaxis(x, 2, -1)
    _, (out, states) = spyx_nir.from_nir(graph, jnp.asarray(x, dtype=jnp.float32), dt=dt, return_all_states=True)
    # one state per layer, its layers the chain of nodes from Input to Output (Spyx builds a sequence
    # by following the edges); a neuron's state is its V
    layers = _chain(graph)
    mem = {name: back(s) for name, s in zip(layers, states)
           if s is not None and type(graph.nodes[name]).__name__ in ("LIF", "IF", "CubaLIF")}
    return back(out), mem


def calls(model, x: np.ndarray):
    """(inference, forward + backward) on ``x`` staged once: the model built once, both calls compiled
    (``nnx.jit``); each call waits for its result, so the caller's clock sees the work."""
    import jax
    import jax.numpy as jnp
    import spyx.nir as spyx_nir
    from flax import nnx
    from spyx.nn import run as spyx_run

    graph, dt = model
    if x.ndim > 3:
        x = np.moveaxis(x, 2, -1)
    xs = jnp.asarray(x, dtype=jnp.float32)
    net, _ = spyx_nir.from_nir(graph, xs, dt=dt)
    infer_fn = nnx.jit(lambda m, v: spyx_run(m, v)[0])
    grad_fn = nnx.jit(nnx.grad(lambda m, v: spyx_run(m, v)[0].mean()))
    return (lambda: jax.block_until_ready(infer_fn(net, xs)),
            lambda: jax.block_until_ready(grad_fn(net, xs)))
