"""The four benchmark tasks (and the single-layer speed benchmark) as frozen dataclasses.

Every hyperparameter of the shared task specification (``docs/tasks.md``) is a
default here; the command line overrides a few of them through
:func:`TaskSpec.with_overrides`.  A spec also knows the names and shapes of its
spiking layers, which is the common layout every backend reports spikes in.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import UsageError

PRECISIONS = ("fp32", "tf32", "bf16")
# float64 is not a benchmark setting: the parity checks use it where a
# framework can run it.
ALL_PRECISIONS = PRECISIONS + ("fp64",)
DEVICES = ("cpu", "cuda")
DATASETS = ("mnist", "fashion-mnist")
# Bounds of the float settings: finite is not enough.  Adam moves each weight
# by about lr a step, so an lr beyond this cannot train (and near float32's
# largest value, 3.4e38, it overflows inside the optimiser); a channel
# multiplier beyond this is larger than any GPU holds.
LR_MAX = 10.0
WIDTH_MAX = 64.0

# What a task means, as named kinds (docs/tasks.md writes each one out).  A
# backend maps each kind to its framework's function in one table; no backend
# asks which task it runs to know its loss, its scores or its neuron.
#
# neuron: the spiking neuron's update and reset
#   "soft"         V = a_mem V + (1 - a_mem) I - V_th S[t-1]   (synthetic; I an exponential synapse)
#   "subtractive"  U = beta U + X - V_th S[t-1], reset detached (fc_mnist)
#   "hard"         H = V + (X - V) / tau, V = H (1 - S)         (fc_mnist_poisson, lif_layer)
#   "stbp"         U = tau U (1 - S[t-1]) + X                    (dsrn_tdbn)
NEURON_KINDS = ("soft", "subtractive", "hard", "stbp")
# readout: what the loss is computed from, [T, B, classes]
#   "synapse" a non-spiking exponential-synapse readout; "membrane" the output
#   layer's membrane; "spikes" the output layer's spikes
READOUT_KINDS = ("synapse", "membrane", "spikes")
# loss of the readout R [T, B, C] and the labels
#   "ce_of_time_mean"      cross-entropy of mean_t R, batch mean
#   "ce_summed_over_time"  sum over t of the batch-mean cross-entropy of R[t]
#   "mse_of_rate"          mean squared error of mean_t R against the one-hot labels
#   "mean"                 mean of R (no objective: the speed benchmark's backward pass)
LOSS_KINDS = ("ce_of_time_mean", "ce_summed_over_time", "mse_of_rate", "mean")
# scores the accuracy is read from, [B, C]
#   "max_over_time" max_t R; "spike_count" the output spikes summed over t;
#   "time_mean" mean_t R
SCORE_KINDS = ("max_over_time", "spike_count", "time_mean")


@dataclass(frozen=True)
class Published:
    """What a task's seed publication reached: test accuracy on ``dataset``
    after its recipe -- the task's defaults, but for ``overrides`` (the
    settings where our default is a shorter run)."""

    dataset: str
    accuracy: float
    source: str
    overrides: tuple[tuple[str, Any], ...] = ()

    def settings(self, task: str) -> dict[str, Any]:
        """The recipe as task settings (the data set included where the task has one)."""
        fields = {f.name for f in dataclasses.fields(TASKS[task])}
        return {**({"dataset": self.dataset} if "dataset" in fields else {}), **dict(self.overrides)}


@dataclass(frozen=True)
class LayerInfo:
    """A spiking layer: its name and the shape of one sample's neurons."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SynapseInfo:
    """A synaptic layer (linear or convolution) and where its input comes from.

    ``source`` is the name of the spiking layer that feeds it, or ``"input"``
    for the data.  ``inputs`` says what arrives: ``"spikes"`` (binary: each
    spike costs accumulates), ``"real"`` (real values: each non-zero costs
    multiply-accumulates) or ``"dense"`` (real values not observable from spike
    counts, e.g. pooled rates: every element counted as a multiply-accumulate).
    The measurement code counts synaptic operations from this.
    """

    name: str
    kind: str  # "linear" or "conv"
    source: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    inputs: str = "spikes"
    bias: bool = False  # a linear layer with a bias vector


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What every task has: data size, recipe and seed."""

    name: ClassVar[str]
    description: ClassVar[str]
    n_classes: ClassVar[int] = 10
    # Tasks whose input is one image fed at every step ("static") send the
    # image once per batch; the others send a [T, B, ...] array.
    static_input: ClassVar[bool] = True
    # False for a speed benchmark that is measured but never trained.
    trainable: ClassVar[bool] = True
    # what a measurement sweep of the task varies: its time steps, or (the
    # single-layer benchmark) its width
    sweep_axis: ClassVar[str] = "T"
    # the task's kinds (see NEURON_KINDS ... SCORE_KINDS above)
    neuron: ClassVar[str]
    readout: ClassVar[str]
    loss: ClassVar[str]
    score: ClassVar[str]

    T: int
    batch_size: int
    epochs: int
    lr: float
    seed: int = 0
    steps: int | None = None  # cap on optimiser steps (None: no cap)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    limit_train: int | None = None
    limit_test: int | None = None
    # Evaluate every this many steps instead of at the end of each epoch.
    eval_every_steps: int | None = None
    # Target test accuracy (headline, tie-aware) per dataset, for the
    # time-to-accuracy metric.
    accuracy_targets: tuple[tuple[str, float], ...] = ()
    # What the seed's publication reached with the task's default recipe:
    # (dataset, test accuracy, where and after how much training); the report
    # shows it beside records of that recipe (the ``full`` profile's).
    published: ClassVar["Published | None"] = None

    # ---- what the command line may change -------------------------------
    def with_overrides(self, **overrides: Any) -> "TaskSpec":
        """A copy with some fields replaced; ``None`` values are ignored."""
        names = {f.name for f in dataclasses.fields(self)}
        clean = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in names:
                raise UsageError(f"task {self.name} has no setting {key!r}")
            clean[key] = value
        spec = dataclasses.replace(self, **clean)
        spec.validate()
        return spec

    def validate(self) -> None:
        for key in ("T", "batch_size", "epochs"):
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise UsageError(f"{key} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"lr must be a positive number, got {self.lr!r}")
        if self.lr > LR_MAX:
            raise UsageError(f"lr must be at most {LR_MAX:g} (Adam moves each weight by about lr a step), "
                             f"got {self.lr!r}")
        for key in ("steps", "limit_train", "limit_test", "eval_every_steps"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise UsageError(f"{key} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["task"] = self.name
        return out

    # ---- learning-rate schedule ------------------------------------------
    def learning_rate(self, epoch: int) -> float:
        return self.lr

    # ---- layout ------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        """The spiking layers in forward order, with one sample's shape."""
        raise NotImplementedError

    def synapses(self) -> list[SynapseInfo]:
        """The synaptic layers in forward order."""
        raise NotImplementedError

    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers()]

    def input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def neuron_params(self) -> tuple[float, ...]:
        """The constants of the task's neuron kind, in the order of ``NEURON_KINDS``' notes:
        soft (a_mem, v_th, surrogate alpha, width), subtractive (beta, v_th, alpha),
        hard (tau, v_th, alpha), stbp (tau, v_th, a, surrogate centre offset)."""
        if self.neuron == "soft":
            return (self.a_mem, self.v_th, self.surrogate_alpha, self.surrogate_width)
        if self.neuron == "subtractive":
            return (self.beta, self.v_th, self.surrogate_alpha)
        if self.neuron == "hard":
            return (self.tau, self.v_th, self.surrogate_alpha)
        # the rectangle is centred on V_th (offset 0) or on 0 (offset -V_th)
        return (self.tau, self.v_th, self.surrogate_a, 0.0 if self.surrogate_center == "threshold" else -self.v_th)

    def accuracy_target(self, dataset: str | None) -> float | None:
        return dict(self.accuracy_targets).get(dataset or "synthetic")


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


@dataclass(frozen=True, kw_only=True)
class _ImageSpec(TaskSpec):
    dataset: str = "mnist"

    def validate(self) -> None:
        super().validate()
        if self.dataset not in DATASETS:
            raise UsageError(f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")


@dataclass(frozen=True, kw_only=True)
class FCMnistSpec(_ImageSpec):
    """784 -> 1000 -> 10 Leaky neurons, direct input (snnTorch tutorial 5)."""

    name: ClassVar[str] = "fc_mnist"
    description: ClassVar[str] = "784-1000-10 leaky neurons, subtractive reset, image fed at every step"
    neuron: ClassVar[str] = "subtractive"
    readout: ClassVar[str] = "membrane"
    loss: ClassVar[str] = "ce_summed_over_time"
    score: ClassVar[str] = "spike_count"

    T: int = 25
    batch_size: int = 128
    epochs: int = 1
    lr: float = 5e-4
    n_in: int = 784
    n_hidden: int = 1000
    beta: float = 0.95
    v_th: float = 1.0
    surrogate_alpha: float = 2.0  # arctangent, snnTorch's atan(alpha=2)
    accuracy_targets: tuple[tuple[str, float], ...] = (("mnist", 0.93), ("fashion-mnist", 0.80))
    published: ClassVar["Published | None"] = Published("mnist", 0.9387, "snnTorch's tutorial 5, one epoch")

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("lif1", (self.n_hidden,)), LayerInfo("lif2", (self.n_classes,))]

    def synapses(self) -> list[SynapseInfo]:
        return [
            SynapseInfo("fc1", "linear", "input", (self.n_in,), (self.n_hidden,), inputs="real", bias=True),
            SynapseInfo("fc2", "linear", "lif1", (self.n_hidden,), (self.n_classes,), bias=True),
        ]

    def input_shape(self) -> tuple[int, ...]:
        return (self.n_in,)


@dataclass(frozen=True, kw_only=True)
class FCPoissonSpec(_ImageSpec):
    """784 -> 196 -> 10 LIF neurons, hard reset, Poisson input (SpikingJelly tutorial)."""

    name: ClassVar[str] = "fc_mnist_poisson"
    description: ClassVar[str] = "784-196-10 LIF neurons, hard reset, Poisson-coded input"
    static_input: ClassVar[bool] = False
    neuron: ClassVar[str] = "hard"
    readout: ClassVar[str] = "spikes"
    loss: ClassVar[str] = "mse_of_rate"
    score: ClassVar[str] = "spike_count"

    T: int = 50
    batch_size: int = 128
    epochs: int = 10
    lr: float = 1e-3
    n_in: int = 784
    n_hidden: int = 196
    tau: float = 100.0
    v_th: float = 1.0
    surrogate_alpha: float = 4.0  # sigmoid
    accuracy_targets: tuple[tuple[str, float], ...] = (("mnist", 0.90), ("fashion-mnist", 0.78))
    published: ClassVar["Published | None"] = Published(
        "mnist", 0.92, "SpikingJelly's single-layer tutorial, about 92 % after 100 epochs", (("epochs", 100),))

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("lif1", (self.n_hidden,)), LayerInfo("lif2", (self.n_classes,))]

    def synapses(self) -> list[SynapseInfo]:
        return [
            SynapseInfo("fc1", "linear", "input", (self.n_in,), (self.n_hidden,)),
            SynapseInfo("fc2", "linear", "lif1", (self.n_hidden,), (self.n_classes,)),
        ]

    def input_shape(self) -> tuple[int, ...]:
        return (self.n_in,)


@dataclass(frozen=True)
class BlockInfo:
    """One basic block of the residual network."""

    prefix: str  # e.g. "layer2.0"
    in_channels: int
    out_channels: int
    stride: int
    in_size: int  # spatial size of the block's input
    out_size: int

    @property
    def has_projection(self) -> bool:
        return self.stride != 1 or self.in_channels != self.out_channels


SURROGATE_CENTERS = ("threshold", "zero")


@dataclass(frozen=True, kw_only=True)
class DSRNSpec(_ImageSpec):
    """Deep spiking residual network with tdBN (STBP-tdBN), 19 spiking layers."""

    name: ClassVar[str] = "dsrn_tdbn"
    description: ClassVar[str] = "19-layer spiking ResNet with tdBN, STBP neurons, augmented images"
    neuron: ClassVar[str] = "stbp"
    readout: ClassVar[str] = "spikes"
    loss: ClassVar[str] = "ce_of_time_mean"
    score: ClassVar[str] = "time_mean"

    T: int = 2
    batch_size: int = 64
    epochs: int = 11
    lr: float = 1e-3
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    patience: int = 7
    validation_size: int = 5000
    width: float = 1.0  # channel multiplier (< 1 for CPU tests)
    image_size: int = 28
    stem_channels: int = 64
    # (channels, blocks, stride of the first block)
    stages: tuple[tuple[int, int, int], ...] = ((128, 3, 1), (256, 3, 2), (512, 2, 2))
    fc_hidden: int = 256
    tau: float = 0.25
    v_th: float = 0.4
    surrogate_a: float = 0.5
    surrogate_center: str = "threshold"
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    block_alpha: float = 1.0 / math.sqrt(2.0)
    mean: float = 0.1307
    std: float = 0.3082
    pad: int = 4
    accuracy_targets: tuple[tuple[str, float], ...] = (("mnist", 0.98), ("fashion-mnist", 0.85))
    published: ClassVar["Published | None"] = Published("mnist", 0.9867, "STBP-tdBN (Zheng et al. 2021), 11 epochs")

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.width, (int, float)) and self.width > 0 and math.isfinite(self.width)):
            raise UsageError(f"width must be a positive number, got {self.width!r}")
        if self.width > WIDTH_MAX:
            raise UsageError(f"width must be at most {WIDTH_MAX:g} ({WIDTH_MAX * self.stages[-1][0]:g} channels), "
                             f"got {self.width!r}")
        if self.surrogate_center not in SURROGATE_CENTERS:
            raise UsageError(
                f"surrogate centre must be one of {', '.join(SURROGATE_CENTERS)}, got {self.surrogate_center!r}"
            )

    def learning_rate(self, epoch: int) -> float:
        return self.lr * self.lr_gamma ** (epoch // self.lr_step_epochs)

    def channels(self, base: int) -> int:
        return max(1, int(round(base * self.width)))

    def blocks(self) -> list[BlockInfo]:
        out = []
        in_ch = self.channels(self.stem_channels)
        size = self.image_size
        for stage, (base, count, stride) in enumerate(self.stages, start=1):
            ch = self.channels(base)
            for index in range(count):
                s = stride if index == 0 else 1
                out_size = (size - 1) // s + 1  # 3x3 kernel, padding 1
                out.append(BlockInfo(f"layer{stage}.{index}", in_ch, ch, s, size, out_size))
                in_ch, size = ch, out_size
        return out

    @property
    def final_channels(self) -> int:
        return self.channels(self.stages[-1][0])

    @property
    def hidden_units(self) -> int:
        return self.channels(self.fc_hidden)

    def layers(self) -> list[LayerInfo]:
        size = self.image_size
        out = [LayerInfo("stem.lif", (self.channels(self.stem_channels), size, size))]
        for block in self.blocks():
            shape = (block.out_channels, block.out_size, block.out_size)
            out.append(LayerInfo(f"{block.prefix}.lif1", shape))
            out.append(LayerInfo(f"{block.prefix}.lif2", shape))
        out.append(LayerInfo("fc1.lif", (self.hidden_units,)))
        out.append(LayerInfo("fc2.lif", (self.n_classes,)))
        return out

    def synapses(self) -> list[SynapseInfo]:
        size = self.image_size
        stem = self.channels(self.stem_channels)
        out = [SynapseInfo("stem.conv", "conv", "input", (1, size, size), (stem, size, size), 3, 1, 1, "real")]
        source = "stem.lif"
        for b in self.blocks():
            in_shape = (b.in_channels, b.in_size, b.in_size)
            shape = (b.out_channels, b.out_size, b.out_size)
            out.append(SynapseInfo(f"{b.prefix}.conv1", "conv", source, in_shape, shape, 3, b.stride, 1))
            out.append(SynapseInfo(f"{b.prefix}.conv2", "conv", f"{b.prefix}.lif1", shape, shape, 3, 1, 1))
            if b.has_projection:
                out.append(SynapseInfo(f"{b.prefix}.shortcut.conv", "conv", source, in_shape, shape, 1, b.stride, 0))
            source = f"{b.prefix}.lif2"
        # fc1 reads the spatial mean of the last block's spikes: real-valued
        out.append(SynapseInfo("fc1", "linear", source, (self.final_channels,), (self.hidden_units,), inputs="dense",
                               bias=True))
        out.append(SynapseInfo("fc2", "linear", "fc1.lif", (self.hidden_units,), (self.n_classes,), bias=True))
        return out

    def input_shape(self) -> tuple[int, ...]:
        return (1, self.image_size, self.image_size)


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


TASKS: dict[str, type[TaskSpec]] = {
    cls.name: cls for cls in (SyntheticSpec, FCMnistSpec, FCPoissonSpec, DSRNSpec, LIFLayerSpec)
}
# The tasks with a learning objective (what ``python -m tasks.run`` trains).
TRAINABLE_TASKS = tuple(name for name, cls in TASKS.items() if cls.trainable)


def get_spec(name: str, **overrides: Any) -> TaskSpec:
    """The default spec of task ``name`` with ``overrides`` applied."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None
    spec = cls()
    return spec.with_overrides(**overrides)


def spec_from_dict(data: dict[str, Any]) -> TaskSpec:
    """Rebuild a spec from :meth:`TaskSpec.to_dict` output."""
    data = dict(data)
    cls = TASKS[data.pop("task")]
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key in known:
            kwargs[key] = _tuplify(value)
    return cls(**kwargs)


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value
