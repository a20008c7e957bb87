"""The task specification in executable form: a float64 NumPy forward pass.

Every network of ``docs/tasks.md`` is written directly from its equations, one
time step at a time, with no framework: the neurons, synapses and losses here,
each task's network in its own module (``reference_forward`` of
``tasks/workloads/<task>.py``).  It returns per-layer
spikes and membranes (time-major), the readout, the loss and the scores the
accuracy is computed from.  Every backend is checked against it.

The membrane recorded for a layer is the potential compared with the
threshold at step t, before any reset that the spike at t causes:
``V[t]`` (synthetic), ``U[t]`` (fc_mnist, dsrn_tdbn) and the charged ``H[t]``
(fc_mnist_poisson).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .data import Batch
from .taskspec import TaskSpec
from .weights import Weights


def heaviside(x: np.ndarray) -> np.ndarray:
    """H(x) = 1 where x > 0, else 0."""
    return (x > 0).astype(np.float64)


# ---------------------------------------------------------------- neurons
def exponential_synapse(inputs: np.ndarray, decay: float) -> np.ndarray:
    """I[t] = decay * I[t-1] + inputs[t], from I[0] = 0."""
    out = np.empty_like(inputs)
    current = np.zeros_like(inputs[0])
    for t in range(len(inputs)):
        current = decay * current + inputs[t]
        out[t] = current
    return out


def soft_reset_lif(current: np.ndarray, a_mem: float, v_th: float) -> tuple[np.ndarray, np.ndarray]:
    """synthetic: V[t] = a (V[t-1] - V_th S[t-1]) + (1 - a) I[t]; S = H((V - V_th) / V_th)."""
    spikes, membranes = np.empty_like(current), np.empty_like(current)
    v = np.zeros_like(current[0])
    s = np.zeros_like(current[0])
    for t in range(len(current)):
        v = a_mem * (v - v_th * s) + (1.0 - a_mem) * current[t]
        s = heaviside((v - v_th) / v_th)
        spikes[t], membranes[t] = s, v
    return spikes, membranes


def subtractive_lif(inputs: np.ndarray, beta: float, v_th: float) -> tuple[np.ndarray, np.ndarray]:
    """fc_mnist: R = H(U[t-1] - V_th); U[t] = beta U[t-1] + X[t] - V_th R; S = H(U - V_th)."""
    spikes, membranes = np.empty_like(inputs), np.empty_like(inputs)
    u = np.zeros_like(inputs[0])
    for t in range(len(inputs)):
        reset = heaviside(u - v_th)
        u = beta * u + inputs[t] - v_th * reset
        spikes[t], membranes[t] = heaviside(u - v_th), u
    return spikes, membranes


def hard_reset_lif(inputs: np.ndarray, tau: float, v_th: float) -> tuple[np.ndarray, np.ndarray]:
    """fc_mnist_poisson and lif_layer: H = V + (X - V) / tau; S = H(H - V_th); V = H (1 - S)."""
    spikes, membranes = np.empty_like(inputs), np.empty_like(inputs)
    v = np.zeros_like(inputs[0])
    for t in range(len(inputs)):
        h = v + (inputs[t] - v) / tau
        s = heaviside(h - v_th)
        v = h * (1.0 - s)
        spikes[t], membranes[t] = s, h
    return spikes, membranes


def stbp_lif(inputs: np.ndarray, tau: float, v_th: float) -> tuple[np.ndarray, np.ndarray]:
    """dsrn_tdbn: U[t] = tau U[t-1] (1 - S[t-1]) + X[t]; S = H(U - V_th)."""
    spikes, membranes = np.empty_like(inputs), np.empty_like(inputs)
    u = np.zeros_like(inputs[0])
    s = np.zeros_like(inputs[0])
    for t in range(len(inputs)):
        u = tau * u * (1.0 - s) + inputs[t]
        s = heaviside(u - v_th)
        spikes[t], membranes[t] = s, u
    return spikes, membranes


# ---------------------------------------------------------------- synapses
def linear(x: np.ndarray, weights: Weights, name: str) -> np.ndarray:
    out = x @ weights[f"{name}.weight"].T
    if f"{name}.bias" in weights:
        out = out + weights[f"{name}.bias"]
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation of ``x`` [N, C, H, W] with ``weight`` [O, C, k, k], no bias."""
    k = weight.shape[-1]
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True)


def tdbn(
    x: np.ndarray,
    weights: Weights,
    name: str,
    alpha: float,
    v_th: float,
    eps: float,
    batch_statistics: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold-dependent batch norm of ``x`` [T, B, C, H, W].

    Returns the output and the batch mean and biased variance (the running
    statistics when ``batch_statistics`` is false).
    """
    if batch_statistics:
        mean = x.mean(axis=(0, 1, 3, 4))
        var = x.var(axis=(0, 1, 3, 4))
    else:
        mean, var = weights[f"{name}.running_mean"], weights[f"{name}.running_var"]
    c = (slice(None), None, None)
    normed = (x - mean[c]) / np.sqrt(var[c] + eps)
    return weights[f"{name}.weight"][c] * alpha * v_th * normed + weights[f"{name}.bias"][c], mean, var


def updated_running_stats(
    running_mean: np.ndarray, running_var: np.ndarray, mean: np.ndarray, var: np.ndarray, n: int, momentum: float
) -> tuple[np.ndarray, np.ndarray]:
    """Running statistics after one training batch (unbiased variance)."""
    unbiased = var * n / (n - 1)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * unbiased


# ---------------------------------------------------------------- losses
def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_softmax(logits)[np.arange(len(labels)), labels].mean())


# the spec's loss and score kinds (tasks/taskspec.py) -> float64 NumPy
LOSSES = {
    "ce_of_time_mean": lambda readout, labels, n_classes: cross_entropy(readout.mean(axis=0), labels),
    "ce_summed_over_time": lambda readout, labels, n_classes: float(
        sum(cross_entropy(readout[t], labels) for t in range(len(readout)))),
    "mse_of_rate": lambda readout, labels, n_classes: float(
        ((readout.mean(axis=0) - np.eye(n_classes)[labels]) ** 2).mean()),
    # no objective (lif_layer): the mean output spike; the field's benchmark
    # backpropagates the sum, which differs by a constant factor
    "mean": lambda readout, labels, n_classes: float(readout.mean()),
}
SCORES = {
    "max_over_time": lambda readout, spikes: readout.max(axis=0),
    "spike_count": lambda readout, spikes: spikes.sum(axis=0),
    "time_mean": lambda readout, spikes: readout.mean(axis=0),
}


def loss_and_scores(
    spec: TaskSpec, readout: np.ndarray, output_spikes: np.ndarray | None, labels: np.ndarray
) -> tuple[float, np.ndarray]:
    """The task's loss and the per-class scores its accuracy is read from, by the spec's kinds.

    ``readout`` [T, B, C] is what the loss is computed from: the readout
    synapse O (synthetic), the output membrane U2 (fc_mnist) or the output
    spikes (fc_mnist_poisson, dsrn_tdbn, lif_layer).  ``output_spikes`` are
    the output layer's spikes (None for synthetic, whose readout does not spike).
    """
    return LOSSES[spec.loss](readout, labels, spec.n_classes), SCORES[spec.score](readout, output_spikes)


# ---------------------------------------------------------------- networks
@dataclass
class ReferenceOutput:
    readout: np.ndarray
    loss: float
    scores: np.ndarray
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    membranes: dict[str, np.ndarray] = field(default_factory=dict)
    # tdBN running statistics after this batch (batch_statistics=True only)
    running: dict[str, np.ndarray] = field(default_factory=dict)


def forward(spec: TaskSpec, weights: Weights, batch: Batch, batch_statistics: bool = True) -> ReferenceOutput:
    """Run ``spec``'s network on ``batch`` in float64.

    ``batch_statistics`` selects tdBN's training behaviour (normalise with the
    batch's statistics); otherwise the running statistics are used.  Tasks
    without tdBN ignore it.
    """
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    x = np.asarray(batch.time_major(spec.T), dtype=np.float64)
    spikes: dict[str, np.ndarray] = {}
    membranes: dict[str, np.ndarray] = {}
    running: dict[str, np.ndarray] = {}

    def record(name: str, pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        spikes[name], membranes[name] = pair
        return pair[0]

    readout = spec.workload.reference_forward(spec, w, x, batch_statistics, record, running)
    # a non-spiking readout (the synthetic task's synapse) has no output spikes
    output_spikes = spikes[spec.layer_names()[-1]] if spec.readout != "synapse" else None
    loss, scores = loss_and_scores(spec, readout, output_spikes, np.asarray(batch.y))
    return ReferenceOutput(readout, loss, scores, spikes, membranes, running)

