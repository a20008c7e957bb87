"""The float64 NumPy reference of NIR graphs (docs/nir.md), on a neutral form.

NIR describes continuous-time dynamics; this module fixes one discretisation so
every framework's importer can be compared with it: forward Euler with one
stated time step ``dt`` on NIR's equations, a strict threshold ``v > v_th`` and
NIR's reset to ``v_reset`` (0 where the file has none: nir 1.0.4's classes have
no ``v_reset``).  Within a step the nodes run in topological order and a node's
input is the sum of what its predecessors output at the same step; a graph with
a cycle is refused (the reference has no delays).

The neutral form (:class:`Graph`: node kinds, NumPy parameters, edges) keeps
this module free of the ``nir`` package; ``tasks/nir.py`` converts a file to it.
Arrays are time-major ``[T, B, ...]``, a sample's shape as NIR gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import SpikebenchError

# the node kinds the reference computes (NIR's class names)
KINDS = ("Input", "Output", "Affine", "Linear", "Scale", "Flatten", "Conv2d", "SumPool2d", "AvgPool2d",
         "LI", "I", "LIF", "IF", "CubaLIF", "Threshold")
NEURONS = ("LI", "I", "LIF", "IF", "CubaLIF")  # the stateful kinds (a membrane)
SPIKING = ("LIF", "IF", "CubaLIF", "Threshold")


class GraphError(SpikebenchError):
    """A graph the reference cannot compute: unknown node, cycle, shapes that do not chain."""


@dataclass
class Node:
    kind: str
    params: dict = field(default_factory=dict)  # NumPy arrays and ints, NIR's names


@dataclass
class Graph:
    nodes: dict[str, Node]
    edges: list[tuple[str, str]]

    def order(self) -> list[str]:
        """The nodes in topological order (Kahn); a cycle is a GraphError naming its nodes."""
        for a, b in self.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise GraphError(f"edge {a} -> {b} names no node {end!r}")
        indegree = {n: 0 for n in self.nodes}
        for _, b in self.edges:
            indegree[b] += 1
        ready = [n for n in self.nodes if indegree[n] == 0]
        out: list[str] = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for a, b in self.edges:
                if a == n:
                    indegree[b] -= 1
                    if indegree[b] == 0:
                        ready.append(b)
        if len(out) != len(self.nodes):
            cyclic = sorted(n for n in self.nodes if n not in out)
            raise GraphError(f"the graph has a cycle through {', '.join(cyclic)}; the reference computes feedforward "
                             "graphs only (a recurrent edge would need a delay NIR does not state)")
        return out

    def predecessors(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def inputs(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.kind == "Input"]

    def outputs(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.kind == "Output"]


def _pair(v) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _conv_padding(p, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    if isinstance(p, str):
        if p == "valid":
            return (0, 0)
        if p == "same":  # odd kernels: the symmetric padding that keeps the size at stride 1
            return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))  # type: ignore[return-value]
        raise GraphError(f"Conv2d padding {p!r} is neither 'same', 'valid' nor a number")
    return _pair(p)


def _windows(x: np.ndarray, kernel, stride, padding, dilation=(1, 1)) -> np.ndarray:
    """``x [B, C, H, W]`` -> its windows ``[B, C, Ho, Wo, kh, kw]`` (zero padding)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        raise GraphError(f"a {kh}x{kw} window does not fit a {x.shape[2]}x{x.shape[3]} (padded) input")
    out = np.empty(x.shape[:2] + (ho, wo, kh, kw))
    for i in range(kh):
        for j in range(kw):
            out[..., i, j] = x[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
    return out


def conv2d(x: np.ndarray, p: dict) -> np.ndarray:
    w = np.asarray(p["weight"], dtype=np.float64)
    groups = int(p.get("groups", 1))
    if x.ndim != 4 or x.shape[1] != w.shape[1] * groups:
        raise GraphError(f"Conv2d with weight {list(w.shape)} (groups {groups}) gets a sample of shape {list(x.shape[1:])}")
    kernel, dilation = (w.shape[2], w.shape[3]), _pair(p.get("dilation", 1))
    win = _windows(x, kernel, _pair(p.get("stride", 1)), _conv_padding(p.get("padding", 0), kernel, dilation), dilation)
    cin, cout = w.shape[1], w.shape[0] // groups
    outs = [np.einsum("bchwij,ocij->bohw", win[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout])
            for g in range(groups)]
    y = np.concatenate(outs, axis=1)
    bias = p.get("bias")
    return y if bias is None else y + np.asarray(bias, dtype=np.float64).reshape(1, -1, 1, 1)


def sum_pool2d(x: np.ndarray, p: dict) -> np.ndarray:
    if x.ndim != 4:
        raise GraphError(f"SumPool2d/AvgPool2d gets a sample of shape {list(x.shape[1:])}, not [C, H, W]")
    return _windows(x, _pair(p["kernel_size"]), _pair(p["stride"]), _pair(p.get("padding", 0))).sum(axis=(-2, -1))


def _matmul(x: np.ndarray, w: np.ndarray, kind: str) -> np.ndarray:
    if x.shape[-1] != w.shape[1] or x.ndim != 2:
        raise GraphError(f"{kind} with weight {list(w.shape)} gets a sample of shape {list(x.shape[1:])}")
    return x @ w.T


def flatten(x: np.ndarray, p: dict) -> np.ndarray:
    """NIR's Flatten on a sample's shape (dimensions counted without the batch)."""
    shape = list(x.shape[1:])
    start = int(p.get("start_dim", 0)) % len(shape)
    end = int(p.get("end_dim", -1)) % len(shape)
    return x.reshape([x.shape[0]] + shape[:start] + [math.prod(shape[start:end + 1])] + shape[end + 1:])


def _param(p: dict, name: str, shape: tuple[int, ...], default: float | None = None) -> np.ndarray:
    if name not in p or p[name] is None:
        if default is None:
            raise GraphError(f"missing parameter {name}")
        return np.full(shape, default)
    v = np.asarray(p[name], dtype=np.float64)
    try:
        return np.broadcast_to(v, shape)
    except ValueError:
        raise GraphError(f"parameter {name} of shape {list(v.shape)} does not fit neurons of shape {list(shape)}") from None


class Neuron:
    """One stateful node: its membrane (and synaptic current), stepped by forward Euler."""

    def __init__(self, kind: str, p: dict, x: np.ndarray, dt: float):
        self.kind, self.dt = kind, dt
        shape = x.shape[1:]
        declared = p.get("shape")
        if declared is not None and tuple(declared) != tuple(shape):
            raise GraphError(f"{kind} of shape {list(declared)} gets a sample of shape {list(shape)}")
        self.v = np.zeros_like(x)
        self.i = np.zeros_like(x)
        if kind == "CubaLIF":
            self.tau_syn, self.tau = _param(p, "tau_syn", shape), _param(p, "tau_mem", shape)
            self.w_in = _param(p, "w_in", shape, 1.0)
        elif kind in ("LI", "LIF"):
            self.tau = _param(p, "tau", shape)
        self.r = _param(p, "r", shape)
        self.v_leak = _param(p, "v_leak", shape, 0.0)
        if kind in SPIKING:
            self.v_th = _param(p, "v_threshold", shape)
            self.v_reset = _param(p, "v_reset", shape, 0.0)

    def step(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step: (output, membrane compared with the threshold, before the reset)."""
        dt = self.dt
        if self.kind == "CubaLIF":  # the synapse first: its new current drives this step's membrane
            self.i = self.i + dt / self.tau_syn * (-self.i + self.w_in * x)
            drive = self.r * self.i
        else:
            drive = self.r * x
        if self.kind in ("I", "IF"):
            self.v = self.v + dt * drive
        else:
            self.v = self.v + dt / self.tau * (self.v_leak - self.v + drive)
        v = self.v
        if self.kind in ("LI", "I"):
            return v, v
        spikes = (v > self.v_th).astype(np.float64)
        self.v = np.where(spikes > 0, self.v_reset, v)
        return spikes, v


@dataclass
class Trace:
    """What a run of the reference gives: each Output's values, each neuron node's membrane."""

    outputs: dict[str, np.ndarray]  # [T, B, ...]
    membranes: dict[str, np.ndarray]  # neuron node -> [T, B, ...], before the reset
    states: dict[str, np.ndarray]  # neuron node -> [T, B, ...], the membrane after the step (reset included)


def simulate(graph: Graph, x: np.ndarray, dt: float) -> Trace:
    """Run ``graph`` on ``x [T, B, ...]`` (its one Input) in float64 with time step ``dt``."""
    order = graph.order()
    ins = graph.inputs()
    if len(ins) != 1 or not graph.outputs():
        raise GraphError(f"the reference needs one Input and at least one Output node; the graph has "
                         f"{len(ins)} Input and {len(graph.outputs())} Output")
    for name in order:
        if graph.nodes[name].kind not in KINDS:
            raise GraphError(f"node {name} is a {graph.nodes[name].kind}, which the reference does not compute "
                             f"(it computes {', '.join(KINDS)})")
    x = np.asarray(x, dtype=np.float64)
    shape = graph.nodes[ins[0]].params.get("shape")
    if shape is not None and tuple(x.shape[2:]) != tuple(shape):
        raise GraphError(f"input of sample shape {list(x.shape[2:])} for Input {ins[0]} of shape {list(shape)}")
    preds = {n: graph.predecessors(n) for n in order}
    neurons: dict[str, Neuron] = {}
    outputs: dict[str, list] = {n: [] for n in graph.outputs()}
    membranes: dict[str, list] = {n: [] for n in order if graph.nodes[n].kind in NEURONS}
    states: dict[str, list] = {n: [] for n in membranes}
    for t in range(x.shape[0]):
        value: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            if node.kind == "Input":
                value[name] = x[t]
                continue
            if not preds[name]:
                raise GraphError(f"node {name} has no input edge")
            try:
                total = sum(value[a] for a in preds[name])
            except ValueError:
                raise GraphError(f"the inputs of {name} have shapes "
                                 f"{[list(value[a].shape[1:]) for a in preds[name]]} that cannot be summed") from None
            value[name] = _apply(name, node, total, neurons, membranes, dt)
            if node.kind == "Output":
                outputs[name].append(value[name])
            elif name in states:
                states[name].append(neurons[name].v)
    stack = lambda d: {n: np.stack(v) for n, v in d.items()}  # noqa: E731
    return Trace(stack(outputs), stack(membranes), stack(states))


def _apply(name: str, node: Node, x: np.ndarray, neurons: dict, membranes: dict, dt: float) -> np.ndarray:
    p, kind = node.params, node.kind
    try:
        if kind == "Output":
            shape = p.get("shape")
            if shape is not None and math.prod(shape) != math.prod(x.shape[1:]):
                raise GraphError(f"Output {name} of shape {list(shape)} gets a sample of shape {list(x.shape[1:])}")
            return x
        if kind in ("Affine", "Linear"):
            y = _matmul(x, np.asarray(p["weight"], dtype=np.float64), kind)
            return y + np.asarray(p["bias"], dtype=np.float64) if kind == "Affine" else y
        if kind == "Scale":
            return x * np.asarray(p["scale"], dtype=np.float64)
        if kind == "Flatten":
            return flatten(x, p)
        if kind == "Conv2d":
            return conv2d(x, p)
        if kind in ("SumPool2d", "AvgPool2d"):
            y = sum_pool2d(x, p)
            return y / math.prod(_pair(p["kernel_size"])) if kind == "AvgPool2d" else y
        if kind == "Threshold":
            return (x > _param(p, "threshold", x.shape[1:])).astype(np.float64)
        if name not in neurons:
            neurons[name] = Neuron(kind, p, x, dt)
        out, v = neurons[name].step(x)
        membranes[name].append(v)
        return out
    except GraphError as exc:
        raise GraphError(f"node {name} ({kind}): {exc}") from None
