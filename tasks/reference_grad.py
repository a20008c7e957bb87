"""The backward pass of the task specification: float64 NumPy BPTT, and Adam.

:mod:`tasks.reference` proves the forward pass of every backend; this module
proves the backward pass.  It computes, from ``docs/tasks.md`` alone and with
no framework, the loss gradient of every trainable weight (backpropagation
through time, one step at a time) and the loss curve of a short Adam run, so
the gradient and loss-curve columns of ``python -m tasks.parity`` compare
every backend -- ``stbp`` included -- with an independent implementation.

The steps are here; each task chains them into its network in its own module
(``reference_gradients`` of ``tasks/workloads/<task>.py``).  Every operation
is written as a forward step that keeps what its backward
step needs (a *cache*), and a backward step that takes the gradient of the
loss with respect to the operation's output and returns the gradient with
respect to its input (adding the weight gradients to ``grads``).  The spike
nonlinearity is a :class:`SpikeFunction`: Heaviside forward and the task's
surrogate derivative backward.  Tests swap in a smooth function whose
derivative *is* the surrogate, which makes the whole network differentiable
so that finite differences can check every backward step.

Which terms carry a gradient (``docs/tasks.md``):

* synthetic: the soft reset ``- V_th S[t-1]`` carries the spike's surrogate
  gradient; the surrogate is evaluated at ``x = (V - V_th) / V_th``, so
  ``dS/dV = h(x) / V_th`` (chain rule through the scaled argument);
* fc_mnist: the reset ``V_th H(U[t-1] - V_th)`` carries none;
* fc_mnist_poisson, lif_layer: ``V = H (1 - S)`` carries gradient through
  both ``H`` and ``S``;
* dsrn_tdbn: ``tau U (1 - S)`` carries gradient through both ``U`` and ``S``;
  tdBN's batch mean and variance are functions of the batch, and the
  gradient flows through them (as in every batch norm in training mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .data import Batch
from .reference import heaviside, log_softmax
from .taskspec import TaskSpec
from .weights import Weights, trainable_names

Grads = dict[str, np.ndarray]


# ---------------------------------------------------------------- surrogates
def triangle(x: np.ndarray, alpha: float, width: float) -> np.ndarray:
    """synthetic: h(x) = alpha max(0, width - |x|)."""
    return alpha * np.maximum(0.0, width - np.abs(x))


def arctangent(x: np.ndarray, alpha: float) -> np.ndarray:
    """fc_mnist: h(x) = (alpha / 2) / (1 + (pi alpha x / 2)^2); alpha = 2 gives 1 / (1 + (pi x)^2)."""
    return (alpha / 2.0) / (1.0 + (math.pi * alpha * x / 2.0) ** 2)


def sigmoid_derivative(x: np.ndarray, alpha: float) -> np.ndarray:
    """fc_mnist_poisson, lif_layer: h(x) = alpha s(alpha x) (1 - s(alpha x)).

    Written as alpha e^-|z| / (1 + e^-|z|)^2 (z = alpha x), the same number
    without overflow for large |z|.
    """
    e = np.exp(-np.abs(alpha * x))
    return alpha * e / (1.0 + e) ** 2


def rectangular(x: np.ndarray, a: float, center: float) -> np.ndarray:
    """dsrn_tdbn: h(x) = 1 / (2a) where |x - center| < a (open window), else 0."""
    return (np.abs(x - center) < a) / (2.0 * a)


@dataclass(frozen=True)
class SpikeFunction:
    """The spike nonlinearity: ``fire(x)`` forward, ``derivative(x)`` backward."""

    fire: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]


# the spec's neuron kinds -> their surrogate derivative, from the spec's constants
SURROGATES: dict[str, Callable[[TaskSpec], Callable[[np.ndarray], np.ndarray]]] = {
    "soft": lambda spec: lambda x: triangle(x, spec.surrogate_alpha, spec.surrogate_width),
    "subtractive": lambda spec: lambda x: arctangent(x, spec.surrogate_alpha),
    "hard": lambda spec: lambda x: sigmoid_derivative(x, spec.surrogate_alpha),
    "stbp": lambda spec: lambda x: rectangular(x, spec.surrogate_a, surrogate_center(spec)),
}


def spike_function(spec: TaskSpec) -> SpikeFunction:
    """The task's spike: Heaviside forward, its neuron kind's surrogate backward."""
    return SpikeFunction(heaviside, SURROGATES[spec.neuron](spec))


def surrogate_center(spec: TaskSpec) -> float:
    """Where dsrn_tdbn's window is centred, in x = U - V_th: on the threshold (0)
    or, as the published code does, on U = 0 (x = -V_th): the stbp neuron's offset
    in :meth:`~tasks.taskspec.TaskSpec.neuron_params`."""
    return spec.neuron_params()[3]


# ---------------------------------------------------------------- neurons
# Each neuron returns its spikes, the membrane it compares with the threshold
# (what tasks.reference records) and a cache; its backward takes the loss
# gradient with respect to the spikes and (optionally) the membranes and
# returns the gradient with respect to the neuron's input.  The backward
# loops run t = T..1 carrying the gradient that step t+1 sends back to the
# state of step t.
@dataclass
class NeuronCache:
    spikes: np.ndarray
    membranes: np.ndarray
    params: tuple = ()


def exponential_synapse_backward(grad_out: np.ndarray, decay: float) -> np.ndarray:
    """I[t] feeds I[t+1] with factor ``decay``: the same filter, run backwards in time."""
    grad_in = np.empty_like(grad_out)
    carried = np.zeros_like(grad_out[0])
    for t in reversed(range(len(grad_out))):
        carried = grad_out[t] + decay * carried
        grad_in[t] = carried
    return grad_in


def soft_reset_lif(current: np.ndarray, a_mem: float, v_th: float, spike: SpikeFunction):
    """synthetic: V[t] = a (V[t-1] - V_th S[t-1]) + (1 - a) I[t]; S = f((V - V_th) / V_th)."""
    spikes, membranes = np.empty_like(current), np.empty_like(current)
    v = np.zeros_like(current[0])
    s = np.zeros_like(current[0])
    for t in range(len(current)):
        v = a_mem * (v - v_th * s) + (1.0 - a_mem) * current[t]
        s = spike.fire((v - v_th) / v_th)
        spikes[t], membranes[t] = s, v
    return spikes, membranes, NeuronCache(spikes, membranes, (a_mem, v_th))


def soft_reset_lif_backward(grad_spikes, cache: NeuronCache, spike: SpikeFunction, grad_membranes=None):
    a, v_th = cache.params
    grad_in = np.empty_like(grad_spikes)
    grad_v_next = np.zeros_like(grad_spikes[0])  # dL/dV[t+1]
    for t in reversed(range(len(grad_spikes))):
        # S[t] reaches the loss directly and through V[t+1] = a (V[t] - V_th S[t]) + ...
        grad_s = grad_spikes[t] - a * v_th * grad_v_next
        grad_v = a * grad_v_next + grad_s * spike.derivative((cache.membranes[t] - v_th) / v_th) / v_th
        if grad_membranes is not None:
            grad_v = grad_v + grad_membranes[t]
        grad_in[t] = (1.0 - a) * grad_v
        grad_v_next = grad_v
    return grad_in


def subtractive_lif(inputs: np.ndarray, beta: float, v_th: float, spike: SpikeFunction):
    """fc_mnist: R = H(U[t-1] - V_th), no gradient; U[t] = beta U[t-1] + X[t] - V_th R; S = f(U - V_th).

    The reset R is decided by a hard threshold whatever ``spike`` is: the
    spec gives it no gradient, and a locally constant step is what has none.
    """
    spikes, membranes = np.empty_like(inputs), np.empty_like(inputs)
    u = np.zeros_like(inputs[0])
    for t in range(len(inputs)):
        reset = heaviside(u - v_th)
        u = beta * u + inputs[t] - v_th * reset
        spikes[t], membranes[t] = spike.fire(u - v_th), u
    return spikes, membranes, NeuronCache(spikes, membranes, (beta, v_th))


def subtractive_lif_backward(grad_spikes, cache: NeuronCache, spike: SpikeFunction, grad_membranes=None):
    beta, v_th = cache.params
    grad_in = np.empty_like(grad_spikes)
    grad_u_next = np.zeros_like(grad_spikes[0])
    for t in reversed(range(len(grad_spikes))):
        # U[t] feeds U[t+1] through beta only: the reset is a constant to the gradient
        grad_u = beta * grad_u_next + grad_spikes[t] * spike.derivative(cache.membranes[t] - v_th)
        if grad_membranes is not None:
            grad_u = grad_u + grad_membranes[t]
        grad_in[t] = grad_u
        grad_u_next = grad_u
    return grad_in


def hard_reset_lif(inputs: np.ndarray, tau: float, v_th: float, spike: SpikeFunction):
    """fc_mnist_poisson, lif_layer: H = V + (X - V) / tau; S = f(H - V_th); V = H (1 - S)."""
    spikes, membranes = np.empty_like(inputs), np.empty_like(inputs)
    v = np.zeros_like(inputs[0])
    for t in range(len(inputs)):
        h = v + (inputs[t] - v) / tau
        s = spike.fire(h - v_th)
        v = h * (1.0 - s)
        spikes[t], membranes[t] = s, h
    return spikes, membranes, NeuronCache(spikes, membranes, (tau, v_th))


def hard_reset_lif_backward(grad_spikes, cache: NeuronCache, spike: SpikeFunction, grad_membranes=None):
    tau, v_th = cache.params
    grad_in = np.empty_like(grad_spikes)
    grad_h_next = np.zeros_like(grad_spikes[0])  # dL/dH[t+1]
    for t in reversed(range(len(grad_spikes))):
        h, s = cache.membranes[t], cache.spikes[t]
        grad_v = (1.0 - 1.0 / tau) * grad_h_next  # H[t+1] = (1 - 1/tau) V[t] + X[t+1] / tau
        # V[t] = H[t] (1 - S[t]): the reset carries gradient to H and to S
        grad_s = grad_spikes[t] - h * grad_v
        grad_h = (1.0 - s) * grad_v + grad_s * spike.derivative(h - v_th)
        if grad_membranes is not None:
            grad_h = grad_h + grad_membranes[t]
        grad_in[t] = grad_h / tau
        grad_h_next = grad_h
    return grad_in


def stbp_lif(inputs: np.ndarray, tau: float, v_th: float, spike: SpikeFunction):
    """dsrn_tdbn: U[t] = tau U[t-1] (1 - S[t-1]) + X[t]; S = f(U - V_th)."""
    spikes, membranes = np.empty_like(inputs), np.empty_like(inputs)
    u = np.zeros_like(inputs[0])
    s = np.zeros_like(inputs[0])
    for t in range(len(inputs)):
        u = tau * u * (1.0 - s) + inputs[t]
        s = spike.fire(u - v_th)
        spikes[t], membranes[t] = s, u
    return spikes, membranes, NeuronCache(spikes, membranes, (tau, v_th))


def stbp_lif_backward(grad_spikes, cache: NeuronCache, spike: SpikeFunction, grad_membranes=None):
    tau, v_th = cache.params
    grad_in = np.empty_like(grad_spikes)
    grad_u_next = np.zeros_like(grad_spikes[0])
    for t in reversed(range(len(grad_spikes))):
        u, s = cache.membranes[t], cache.spikes[t]
        # U[t+1] = tau U[t] (1 - S[t]) + X[t+1]: gradient to U[t] and to S[t]
        grad_s = grad_spikes[t] - tau * u * grad_u_next
        grad_u = tau * (1.0 - s) * grad_u_next + grad_s * spike.derivative(u - v_th)
        if grad_membranes is not None:
            grad_u = grad_u + grad_membranes[t]
        grad_in[t] = grad_u
        grad_u_next = grad_u
    return grad_in


# ---------------------------------------------------------------- synapses
def linear(x: np.ndarray, w: Weights, name: str) -> np.ndarray:
    out = x @ w[f"{name}.weight"].T
    if f"{name}.bias" in w:
        out = out + w[f"{name}.bias"]
    return out


def linear_backward(grad_out: np.ndarray, x: np.ndarray, w: Weights, name: str, grads: Grads) -> np.ndarray:
    """out[..., o] = sum_i W[o, i] x[..., i] + b[o], summed over every leading (time, batch) index."""
    g2, x2 = grad_out.reshape(-1, grad_out.shape[-1]), x.reshape(-1, x.shape[-1])
    accumulate(grads, f"{name}.weight", g2.T @ x2)
    if f"{name}.bias" in w:
        accumulate(grads, f"{name}.bias", g2.sum(axis=0))
    return grad_out @ w[f"{name}.weight"]


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation of ``x`` [N, C, H, W] with ``weight`` [O, C, k, k], no bias."""
    k = weight.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True)


def conv2d_backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int, padding: int):
    """Gradients of :func:`conv2d` with respect to its input and its weight.

    Output pixel (h, w) reads input pixel (stride h + i, stride w + j) of the
    padded input with kernel tap (i, j); the input gradient scatters every
    tap back there, and the padding's gradient is dropped.
    """
    k = weight.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    grad_weight = np.einsum("nchwij,nohw->ocij", windows, grad_out, optimize=True)
    grad_padded = np.zeros_like(padded)
    out_h, out_w = grad_out.shape[2:]
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + stride * (out_h - 1) + 1, stride)
            cols = slice(j, j + stride * (out_w - 1) + 1, stride)
            grad_padded[:, :, rows, cols] += np.einsum("nohw,oc->nchw", grad_out, weight[:, :, i, j])
    height, width = x.shape[2:]
    return grad_padded[:, :, padding:padding + height, padding:padding + width], grad_weight


# ---------------------------------------------------------------- tdBN
@dataclass
class TdBNCache:
    normed: np.ndarray  # (x - mean) / sqrt(var + eps)
    inv_std: np.ndarray  # per channel
    scale: float  # alpha * V_th


def tdbn(x: np.ndarray, w: Weights, name: str, alpha: float, v_th: float, eps: float):
    """tdBN of ``x`` [T, B, C, H, W] with the batch's statistics (training mode)."""
    c = (slice(None), None, None)
    mean = x.mean(axis=(0, 1, 3, 4))
    var = x.var(axis=(0, 1, 3, 4))  # biased
    inv_std = 1.0 / np.sqrt(var + eps)
    normed = (x - mean[c]) * inv_std[c]
    out = w[f"{name}.weight"][c] * alpha * v_th * normed + w[f"{name}.bias"][c]
    return out, TdBNCache(normed, inv_std, alpha * v_th)


def tdbn_backward(grad_out: np.ndarray, cache: TdBNCache, w: Weights, name: str, grads: Grads) -> np.ndarray:
    """Batch-norm backward with the gradient through the batch mean and variance.

    With n = (x - mean) / s over the N values of a channel, dL/dx =
    (g - mean(g) - n mean(g n)) / s for g = dL/dn: the two means are what the
    statistics contribute.
    """
    axes = (0, 1, 3, 4)
    c = (slice(None), None, None)
    accumulate(grads, f"{name}.weight", (grad_out * cache.scale * cache.normed).sum(axis=axes))
    accumulate(grads, f"{name}.bias", grad_out.sum(axis=axes))
    grad_normed = grad_out * (w[f"{name}.weight"] * cache.scale)[c]
    mean_g = grad_normed.mean(axis=axes)
    mean_gn = (grad_normed * cache.normed).mean(axis=axes)
    return (grad_normed - mean_g[c] - cache.normed * mean_gn[c]) * cache.inv_std[c]


# ---------------------------------------------------------------- losses
def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def cross_entropy_and_grad(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Batch-mean softmax cross-entropy and its gradient (softmax - one-hot) / B."""
    B = len(labels)
    loss = float(-log_softmax(logits)[np.arange(B), labels].mean())
    grad = softmax(logits)
    grad[np.arange(B), labels] -= 1.0
    return loss, grad / B


def _ce_of_time_mean(readout, labels, n_classes):
    loss, g = cross_entropy_and_grad(readout.mean(axis=0), labels)
    return loss, np.broadcast_to(g / len(readout), readout.shape).copy()


def _ce_summed_over_time(readout, labels, n_classes):
    pairs = [cross_entropy_and_grad(readout[t], labels) for t in range(len(readout))]
    return float(sum(p[0] for p in pairs)), np.stack([p[1] for p in pairs])


def _mse_of_rate(readout, labels, n_classes):
    diff = readout.mean(axis=0) - np.eye(n_classes)[labels]
    g = 2.0 * diff / diff.size
    return float((diff ** 2).mean()), np.broadcast_to(g / len(readout), readout.shape).copy()


# the spec's loss kinds -> (loss, d loss / d readout)
LOSS_GRADIENTS = {
    "ce_of_time_mean": _ce_of_time_mean,
    "ce_summed_over_time": _ce_summed_over_time,
    "mse_of_rate": _mse_of_rate,
    "mean": lambda readout, labels, n_classes: (float(readout.mean()), np.full(readout.shape, 1.0 / readout.size)),
}


def loss_and_readout_grad(spec: TaskSpec, readout: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The task's loss (as :func:`tasks.reference.loss_and_scores`) and its gradient
    with respect to the readout [T, B, C]."""
    return LOSS_GRADIENTS[spec.loss](readout, labels, spec.n_classes)


# ---------------------------------------------------------------- networks
@dataclass
class GradientOutput:
    loss: float
    gradients: Grads
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    membranes: dict[str, np.ndarray] = field(default_factory=dict)


def loss_and_gradients(spec: TaskSpec, weights: Weights, batch: Batch, spike: SpikeFunction | None = None) -> GradientOutput:
    """Forward (training mode) and backward pass of ``spec``'s network on ``batch``, in float64.

    ``spike`` replaces the task's spike function (tests pass a smooth one);
    by default it is Heaviside forward and the task's surrogate backward.
    """
    spike = spike or spike_function(spec)
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    x = np.asarray(batch.time_major(spec.T), dtype=np.float64)
    labels = np.asarray(batch.y)
    grads: Grads = {}
    out = GradientOutput(0.0, grads)

    def record(name: str, spikes: np.ndarray, membranes: np.ndarray) -> None:
        out.spikes[name], out.membranes[name] = spikes, membranes

    out.loss = spec.workload.reference_gradients(spec, w, x, labels, spike, grads, record)
    missing = set(trainable_names(w)) - set(grads)
    if missing:  # every weight the network reads has a gradient; anything else is a bug here
        raise AssertionError(f"no gradient computed for {sorted(missing)}")
    return out


def accumulate(grads: Grads, name: str, value: np.ndarray) -> None:
    """Add ``value`` to the gradient of ``name`` (a weight several steps read sums their gradients)."""
    grads[name] = grads[name] + value if name in grads else np.array(value, dtype=np.float64)


def gradients(spec: TaskSpec, weights: Weights, batch: Batch) -> Grads:
    """d(loss)/d(weight) for every trainable weight, keyed as ``Backend.gradients`` returns them."""
    return loss_and_gradients(spec, weights, batch).gradients


# ---------------------------------------------------------------- Adam
class Adam:
    """Adam as ``torch.optim.Adam`` applies it (and optax's scale_by_adam, equal in exact arithmetic).

    Per weight, at step k: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    w -= lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps): eps is added
    to the bias-corrected root, no weight decay.  Every weight is in one group
    with the spec's learning rate (a backend that stores a weight rescaled
    scales its group's lr and eps so that the trajectory of the shared weight
    is this one).
    """

    def __init__(self, lr: float, betas: tuple[float, float], eps: float):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_count = 0
        self.m: Grads = {}
        self.v: Grads = {}

    def step(self, weights: Weights, grads: Grads) -> Weights:
        """The weights after one update (a new dict; running statistics passed through)."""
        b1, b2 = self.betas
        self.step_count += 1
        k = self.step_count
        new = dict(weights)
        for name, g in grads.items():
            self.m[name] = b1 * self.m.get(name, 0.0) + (1.0 - b1) * g
            self.v[name] = b2 * self.v.get(name, 0.0) + (1.0 - b2) * g * g
            denom = np.sqrt(self.v[name]) / math.sqrt(1.0 - b2 ** k) + self.eps
            new[name] = weights[name] - (self.lr / (1.0 - b1 ** k)) * self.m[name] / denom
        return new


def loss_curve(spec: TaskSpec, weights: Weights, batches: list[Batch]) -> np.ndarray:
    """The loss of each of ``len(batches)`` Adam steps, each taken before its update
    (what ``Backend.train_step`` returns).

    Training normalises tdBN with the batch's statistics, so the running
    statistics a step updates never reach a training loss and are not kept.
    """
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    adam = Adam(spec.lr, tuple(spec.adam_betas), spec.adam_eps)
    losses = []
    for batch in batches:
        result = loss_and_gradients(spec, w, batch)
        losses.append(result.loss)
        w = adam.step(w, result.gradients)
    return np.array(losses)
