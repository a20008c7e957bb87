"""What every task spec has: the base dataclass, the named kinds and the layout records.

Each task subclasses :class:`TaskSpec` in its own module (``tasks/workloads/``);
every hyperparameter of the shared task specification (``docs/tasks.md``) is a
default there, and the command line overrides a few of them through
:meth:`TaskSpec.with_overrides`.  A spec also knows the names and shapes of its
spiking layers, which is the common layout every backend reports spikes in.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import ModuleType
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
        # the registry imports the task modules, which import this one: looked up when called
        from .workloads import TASKS

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
    # A step schedule: the learning rate is multiplied by lr_gamma every
    # lr_step_epochs epochs (the DSRN's recipe; none in the others', which a
    # profile's training row may set: tasks/profiles.toml)
    lr_step_epochs: int = 1
    lr_gamma: float = 1.0
    # Target test accuracy (headline, tie-aware) per dataset, for the
    # time-to-accuracy metric.
    accuracy_targets: tuple[tuple[str, float], ...] = ()
    # What the seed's publication reached with the task's default recipe:
    # (dataset, test accuracy, where and after how much training); the report
    # shows it beside records of that recipe (the ``full`` profile's).
    published: ClassVar["Published | None"] = None
    # Fields that change neither the shape of the network nor the batch, so a
    # measurement point taken with other values still measures the same
    # training step (a subclass adds its own recipe fields).
    not_structural: ClassVar[frozenset[str]] = frozenset({
        "T", "epochs", "steps", "limit_train", "limit_test", "seed", "lr", "lr_step_epochs", "lr_gamma",
        "eval_every_steps", "accuracy_targets", "adam_betas", "adam_eps"})
    # The module that defines the task (tasks/workloads/<name>.py): its data
    # pipeline, initial weights, reference passes and parity case.  Set by the
    # registry when it loads the module.
    workload: ClassVar[ModuleType]

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
        if not (isinstance(self.lr_gamma, (int, float)) and 0 < self.lr_gamma <= 1):
            raise UsageError(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        for key in ("steps", "limit_train", "limit_test", "eval_every_steps", "lr_step_epochs"):
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
        return self.lr * self.lr_gamma ** (epoch // self.lr_step_epochs)

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
        return accuracy_target_in(self.accuracy_targets, dataset)


def accuracy_target_in(targets, dataset: str | None) -> float | None:
    """The target of ``dataset`` in a spec's ``accuracy_targets`` pairs; a task
    without a data set keys its target "synthetic"."""
    return dict((k, v) for k, v in targets).get(dataset or "synthetic")


@dataclass(frozen=True, kw_only=True)
class ImageTaskSpec(TaskSpec):
    """A task trained on an image data set (``DATASETS``)."""

    dataset: str = "mnist"
    not_structural: ClassVar[frozenset[str]] = TaskSpec.not_structural | {"dataset"}

    def validate(self) -> None:
        super().validate()
        if self.dataset not in DATASETS:
            raise UsageError(f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
