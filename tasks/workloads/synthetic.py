"""synthetic: fit one batch of sparse random spike trains, 100 -> 4 -> 2 (brainstate tutorial)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import reference as ref
from .. import reference_grad as bptt
from .. import rng
from ..data import Batch, FixedBatchData
from ..errors import UsageError
from ..taskspec import LayerInfo, Published, SynapseInfo, TaskSpec
from ..weights import Weights, kaiming_normal


@dataclass(frozen=True, kw_only=True)
class SyntheticSpec(TaskSpec):
    """Sparse random spike trains, 100 -> 4 -> 2 (brainstate tutorial)."""

    name: ClassVar[str] = "synthetic"
    description: ClassVar[str] = "fit one batch of sparse random spike trains (100-4-2, exponential synapses)"
    n_classes: ClassVar[int] = 2
    static_input: ClassVar[bool] = False
    neuron: ClassVar[str] = "soft"
    readout: ClassVar[str] = "synapse"
    loss: ClassVar[str] = "ce_of_time_mean"
    score: ClassVar[str] = "max_over_time"

    T: int = 200
    batch_size: int = 256
    epochs: int = 1
    steps: int | None = 3000
    eval_every_steps: int | None = 100
    lr: float = 3e-3
    n_in: int = 100
    n_hidden: int = 4
    input_probability: float = 0.005  # 5 Hz at dt = 1 ms
    dt: float = 1.0
    tau_syn: float = 10.0
    tau_mem: float = 20.0
    v_th: float = 1.0
    surrogate_alpha: float = 0.3  # h(x) = alpha * max(0, width - |x|)
    surrogate_width: float = 1.0
    # Kaiming-normal "scale" is a variance multiplier: N(0, scale / fan_in).
    w1_scale: float = 7.0 * (1.0 - math.exp(-1.0))
    w2_scale: float = 2.0
    accuracy_targets: tuple[tuple[str, float], ...] = (("synthetic", 0.75),)
    published: ClassVar["Published | None"] = Published(
        "synthetic", 0.871, "the brainstate SNN-training tutorial, 3000 steps")

    @property
    def a_syn(self) -> float:
        return math.exp(-self.dt / self.tau_syn)

    @property
    def a_mem(self) -> float:
        return math.exp(-self.dt / self.tau_mem)

    def validate(self) -> None:
        super().validate()
        if self.steps is None:
            raise UsageError("synthetic needs a step count (--steps)")

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("hidden", (self.n_hidden,))]

    def synapses(self) -> list[SynapseInfo]:
        return [
            SynapseInfo("fc1", "linear", "input", (self.n_in,), (self.n_hidden,), bias=True),
            SynapseInfo("readout", "linear", "hidden", (self.n_hidden,), (self.n_classes,), bias=True),
        ]

    def input_shape(self) -> tuple[int, ...]:
        return (self.n_in,)


class SyntheticData(FixedBatchData):
    """Bernoulli spike trains and random binary labels (the synthetic task)."""

    def __init__(self, spec: SyntheticSpec):
        gen = rng.stream(spec.seed, "synthetic-data")
        shape = (spec.T, spec.batch_size, spec.n_in)
        x = (gen.random(shape) < spec.input_probability).astype(np.float32)
        y = (gen.random(spec.batch_size) < 0.5).astype(np.int64)
        super().__init__(spec, Batch(x=x, y=y, static=False))

    def describe(self) -> dict:
        return {"input_spikes": int(self.batch.x.sum()), "positive_labels": int(self.batch.y.sum())}


SPEC = SyntheticSpec
ORDER = 1
DATA = SyntheticData


def initial_weights(spec: SyntheticSpec, gen: np.random.Generator) -> Weights:
    return {
        "fc1.weight": kaiming_normal(gen, (spec.n_hidden, spec.n_in), spec.w1_scale),
        "fc1.bias": np.zeros(spec.n_hidden),
        "readout.weight": kaiming_normal(gen, (spec.n_classes, spec.n_hidden), spec.w2_scale),
        "readout.bias": np.zeros(spec.n_classes),
    }


def reference_forward(spec: SyntheticSpec, w: Weights, x: np.ndarray, batch_statistics: bool, record, running):
    current = ref.exponential_synapse(ref.linear(x, w, "fc1"), spec.a_syn)
    s = record("hidden", ref.soft_reset_lif(current, spec.a_mem, spec.v_th))
    return ref.exponential_synapse(ref.linear(s, w, "readout"), spec.a_syn)


def reference_gradients(spec: SyntheticSpec, w: Weights, x: np.ndarray, labels: np.ndarray, spike, grads,
                        record) -> float:
    current = ref.exponential_synapse(bptt.linear(x, w, "fc1"), spec.a_syn)
    s, v, cache = bptt.soft_reset_lif(current, spec.a_mem, spec.v_th, spike)
    record("hidden", s, v)
    readout = ref.exponential_synapse(bptt.linear(s, w, "readout"), spec.a_syn)
    loss, g = bptt.loss_and_readout_grad(spec, readout, labels)
    g = bptt.linear_backward(bptt.exponential_synapse_backward(g, spec.a_syn), s, w, "readout", grads)
    g = bptt.soft_reset_lif_backward(g, cache, spike)
    bptt.linear_backward(bptt.exponential_synapse_backward(g, spec.a_syn), x, w, "fc1", grads)
    return loss


# parity: ten times the input rate, so that the 4 hidden neurons fire
PARITY_SIZE = {"T": 100, "batch_size": 16, "input_probability": 0.05}
PARITY_GAINS: dict[str, float] = {}


def parity_batch(spec: SyntheticSpec, gen: np.random.Generator) -> Batch:
    y = gen.integers(0, spec.n_classes, size=spec.batch_size)
    x = (gen.random((spec.T, spec.batch_size, spec.n_in)) < spec.input_probability).astype(np.float32)
    return Batch(x, y, static=False)


# V = (1 - a) I never lands on V_th exactly: a backend computing 1 - a its own
# way is an ulp off, a rounding tie, not the spec's edge
at_threshold = None

FLOOR_POINTS: list[dict] = [{}]
