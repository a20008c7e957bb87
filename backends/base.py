"""The interface every backend implements.

No framework is imported here.  A backend is constructed for one task from the
shared NumPy initial weights, on one device at one precision, and then:

* ``train_step(batch)`` runs forward, backward and one Adam step; it returns
  the loss as a Python float (so the device is synchronised once per step);
* ``evaluate(batch)`` returns the loss, the per-class scores and each spiking
  layer's spike counts (and, with ``record=True``, every layer's spikes and
  membranes, time-major), all as NumPy arrays in the common layout;
* ``gradients(batch)`` returns the loss gradient of every trainable weight
  for one batch, without changing the weights (for parity checks);
* ``forward_backward(batch)`` runs the forward and backward pass and leaves
  the gradients on the device (the single-layer benchmark's yardstick);
* ``get_weights`` / ``set_weights`` move weights in the shared layout;
* ``synchronize``, ``reset_peak_memory`` and ``peak_memory_bytes`` support
  measurement.

The common layout: spikes and membranes are ``[T, B, *layer.shape]`` with
channels first; spike counts are summed over time and batch, shape
``layer.shape``; weights use the names and layouts of :mod:`tasks.weights`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tasks.data import Batch
from tasks.specs import ALL_PRECISIONS, DEVICES, TASKS, TaskSpec


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do and how it expresses each part of the equations.

    ``components`` maps a part (``"neuron:dsrn_tdbn"``, ``"tdbn"``,
    ``"surrogate:fc_mnist"``, ...) to how it is built: a library primitive, or
    a custom piece written through the library's extension mechanism.
    ``differences`` records, per task (or ``"all"``), where the library
    computes something other than the specification, and by how much;
    ``parity_tolerances`` gives the bounds (per task, per parity figure) that
    such a documented difference is held to instead of the default ones.
    """

    # Defaults: every task, both devices, every precision; a backend names
    # only what it leaves out.
    tasks: tuple[str, ...] = tuple(TASKS)
    devices: tuple[str, ...] = DEVICES
    precisions: tuple[str, ...] = ALL_PRECISIONS
    components: dict[str, str] = field(default_factory=dict)
    differences: dict[str, str] = field(default_factory=dict)
    parity_tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: str = ""
    # How a compiled variant compiles its steps (compiler, mode, ``dynamic``,
    # ``fullgraph``, what is compiled, how graph breaks are counted); empty for
    # a backend that runs eagerly.  A record's copy of the table adds
    # ``graph_breaks_counted``: the graph breaks its point's compilation met.
    compile: dict[str, Any] = field(default_factory=dict)

    def refusal(self, task: str, device: str, precision: str) -> str | None:
        """Why a backend of these capabilities does not run ``task`` on ``device`` in
        ``precision`` (the reason after its name), or ``None`` when it does."""
        if task not in self.tasks:
            return f"does not implement task {task}"
        if device not in self.devices:
            return f"does not run on {device}"
        if precision not in self.precisions:
            return f"does not support precision {precision}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "devices": list(self.devices),
            "precisions": list(self.precisions),
            "components": dict(self.components),
            "differences": dict(self.differences),
            "parity_tolerances": {k: dict(v) for k, v in self.parity_tolerances.items()},
            "notes": self.notes,
            **({"compile": dict(self.compile)} if self.compile else {}),
        }


@dataclass
class EvalOutput:
    loss: float
    scores: np.ndarray  # [B, n_classes]
    spike_counts: dict[str, np.ndarray]  # layer -> counts summed over T and B, shape layer.shape
    spikes: dict[str, np.ndarray] | None = None  # layer -> [T, B, *shape], with record=True
    membranes: dict[str, np.ndarray] | None = None
    readout: np.ndarray | None = None  # [T, B, n_classes], with record=True


class Backend(abc.ABC):
    """One framework's implementation of the tasks."""

    framework: ClassVar[str]
    variant: ClassVar[str | None] = None
    # What peak_memory_bytes covers: "window" (since reset_peak_memory) or
    # "process" (the framework cannot reset its peak: the process's lifetime).
    peak_memory_scope: ClassVar[str] = "window"

    def __init__(self, spec: TaskSpec, weights: dict[str, np.ndarray], *, device: str = "cpu", precision: str = "fp32"):
        refusal = self.capabilities().refusal(spec.name, device, precision)
        if refusal is not None:
            raise NotImplementedError(f"{self.name} {refusal}")
        self.spec = spec
        self.device = device
        self.precision = precision

    @property
    def name(self) -> str:
        return self.framework + (f":{self.variant}" if self.variant else "")

    # -- description ---------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def versions(cls) -> dict[str, str]:
        """Versions of the framework and the libraries it runs on."""

    @classmethod
    @abc.abstractmethod
    def capabilities(cls) -> Capabilities:
        """The capability table (shown by ``--list`` and stored in results)."""

    @abc.abstractmethod
    def device_info(self) -> dict[str, Any]:
        """``{"type": ..., "name": ..., ...}`` of the device in use."""

    # -- training and evaluation --------------------------------------------
    @abc.abstractmethod
    def train_step(self, batch: Batch) -> float:
        """Forward, backward and one optimiser step; returns the batch loss."""

    @abc.abstractmethod
    def evaluate(self, batch: Batch, *, record: bool = False, batch_statistics: bool = False) -> EvalOutput:
        """Forward pass without gradients.

        ``batch_statistics`` makes tdBN normalise with the batch's own
        statistics, as in training, without updating its running statistics.
        """

    @abc.abstractmethod
    def gradients(self, batch: Batch) -> dict[str, np.ndarray]:
        """d(loss)/d(weight) for every trainable weight, shared names and layouts,
        computed as in training (tdBN with batch statistics); weights unchanged."""

    @abc.abstractmethod
    def forward_backward(self, batch: Any) -> None:
        """Forward and backward pass on a batch (or a staged one), as in
        training; the gradients stay on the device (call :meth:`synchronize`
        to wait for them) and the weights are not changed."""

    @abc.abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """All weights and tdBN running statistics, shared names and layouts (float64)."""

    @abc.abstractmethod
    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in the shared layout (optimiser state is kept)."""

    @abc.abstractmethod
    def set_learning_rate(self, lr: float) -> None:
        """Change the optimiser's learning rate."""

    # -- measurement -----------------------------------------------------------
    def stage(self, batch: Batch) -> Any:
        """Copy ``batch`` to the device once, for timing loops.

        What it returns is accepted by :meth:`train_step` and :meth:`infer` in
        place of a :class:`Batch`, so a timed step moves no input data.
        """
        return batch

    def infer(self, batch: Any) -> None:
        """Inference: one forward pass without gradients, results left on the
        device (call :meth:`synchronize` to wait for it)."""
        self.evaluate(batch)

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Wait until the device has finished all queued work."""

    @abc.abstractmethod
    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window."""

    @abc.abstractmethod
    def peak_memory_bytes(self) -> int | None:
        """Peak device memory since the last reset (None where not measurable, e.g. CPU)."""

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the device ran out of memory."""
        return False

    def compile_info(self) -> dict[str, Any] | None:
        """How this backend's steps were compiled so far (``graph_breaks``,
        ``graphs`` compiled, ...), or None for a backend that runs eagerly."""
        return None

    def close(self) -> None:
        """Release device resources."""
