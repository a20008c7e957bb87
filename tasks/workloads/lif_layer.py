"""lif_layer: one Linear(N, N) + LIF layer, forward and backward (the single-layer speed benchmark)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import reference as ref
from .. import reference_grad as bptt
from .. import rng
from ..data import Batch, FixedBatchData
from ..errors import UsageError
from ..taskspec import LayerInfo, SynapseInfo, TaskSpec
from ..weights import Weights, kaiming_normal


@dataclass(frozen=True, kw_only=True)
class LIFLayerSpec(TaskSpec):
    """One Linear(N, N) + LIF layer: the field's single-layer speed benchmark.

    The yardstick of the open-neuromorphic SNN library comparison (batch 16,
    500 time steps, N in {512, 4096, 16384}, one forward and one backward
    pass), written with the equations of ``fc_mnist_poisson``'s neuron so
    every backend runs the same thing.  It has no learning objective: it is
    measured (``tasks.measure``, ``tasks.sweep``, asv), not trained.
    """

    name: ClassVar[str] = "lif_layer"
    description: ClassVar[str] = "one Linear(N, N) + LIF layer, forward and backward (single-layer speed benchmark)"
    static_input: ClassVar[bool] = False
    trainable: ClassVar[bool] = False
    sweep_axis: ClassVar[str] = "neurons"
    neuron: ClassVar[str] = "hard"
    readout: ClassVar[str] = "spikes"
    loss: ClassVar[str] = "mean"
    score: ClassVar[str] = "spike_count"

    T: int = 500
    batch_size: int = 16
    epochs: int = 1
    steps: int | None = 1
    lr: float = 1e-3
    neurons: int = 4096
    tau: float = 2.0
    v_th: float = 1.0
    surrogate_alpha: float = 4.0  # sigmoid, as fc_mnist_poisson
    # Kaiming-normal variance multiplier of the N x N weight: with inputs
    # uniform in [0, 1) about 4 % of the neuron-steps spike.
    w_scale: float = 2.0

    @property
    def n_classes(self) -> int:  # type: ignore[override]
        # the "scores" of this benchmark are the output spike counts
        return self.neurons

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.neurons, int) or self.neurons <= 0:
            raise UsageError(f"neurons must be a positive integer, got {self.neurons!r}")

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("lif", (self.neurons,))]

    def synapses(self) -> list[SynapseInfo]:
        return [SynapseInfo("fc", "linear", "input", (self.neurons,), (self.neurons,), inputs="real")]

    def input_shape(self) -> tuple[int, ...]:
        return (self.neurons,)


class LayerBenchmarkData(FixedBatchData):
    """lif_layer: inputs uniform in [0, 1), time-major ``[T, B, N]`` (the field's
    benchmark feeds ``torch.rand``); the labels are unused zeros."""

    def __init__(self, spec: LIFLayerSpec):
        gen = rng.stream(spec.seed, "lif-layer-data")
        x = gen.random((spec.T, spec.batch_size, spec.neurons), dtype=np.float32)
        super().__init__(spec, Batch(x=x, y=np.zeros(spec.batch_size, dtype=np.int64), static=False))

    def describe(self) -> dict:
        return {"input": "uniform [0, 1)", "input_mean": float(self.batch.x.mean())}


SPEC = LIFLayerSpec
ORDER = 5
DATA = LayerBenchmarkData


def initial_weights(spec: LIFLayerSpec, gen: np.random.Generator) -> Weights:
    return {"fc.weight": kaiming_normal(gen, (spec.neurons, spec.neurons), spec.w_scale)}


def reference_forward(spec: LIFLayerSpec, w: Weights, x: np.ndarray, batch_statistics: bool, record, running):
    return record("lif", ref.hard_reset_lif(ref.linear(x, w, "fc"), spec.tau, spec.v_th))


def reference_gradients(spec: LIFLayerSpec, w: Weights, x: np.ndarray, labels: np.ndarray, spike, grads,
                        record) -> float:
    s, h, cache = bptt.hard_reset_lif(bptt.linear(x, w, "fc"), spec.tau, spec.v_th, spike)
    record("lif", s, h)
    loss, g = bptt.loss_and_readout_grad(spec, s, labels)
    bptt.linear_backward(bptt.hard_reset_lif_backward(g, cache, spike), x, w, "fc", grads)
    return loss


PARITY_SIZE = {"T": 30, "batch_size": 4, "neurons": 48}
PARITY_GAINS: dict[str, float] = {}


def parity_batch(spec: LIFLayerSpec, gen: np.random.Generator) -> Batch:
    gen.integers(0, spec.n_classes, size=spec.batch_size)  # labels drawn first as in every task, unused here
    return Batch(gen.random((spec.T, spec.batch_size, spec.neurons)).astype(np.float32),
                 np.zeros(spec.batch_size, np.int64), static=False)


def at_threshold(spec: LIFLayerSpec, weights: Weights, batch: Batch) -> None:
    """Sample 0's input is one input of 1, so its first membrane is H = X / tau with
    X one weight (no bias): that weight set to tau V_th."""
    batch.x[:, 0] = 0.0
    batch.x[0, 0, 0] = 1.0
    weights["fc.weight"][0, 0] = spec.tau * spec.v_th


# the field's widths N
FLOOR_POINTS: list[dict] = [{"neurons": n} for n in (512, 4096, 16384)]
