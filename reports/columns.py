"""The columns of the comparison tables, from the metric catalogue (one place
for a metric's unit, direction, label and whether it is ranked)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.catalogue import CATALOGUE

from .format import (
    Scale,
)


# ------------------------------------------------------------------- columns
@dataclass
class Column:
    key: str  # metric name (tasks/catalogue.py)
    label: str
    unit: str  # the metric's unit in the records
    better: str  # "higher" | "lower"
    help: str
    timing: str | None = None  # Result.timings key with the repeats
    ranked: bool = True  # a framework controls it: best marks and ratios
    scale: Scale | None = None
    all_equal: bool = False  # every row has the same value: nothing is best
    unranked_why: str = ""  # why this column has no best mark

    @property
    def unit_label(self) -> str:
        return self.scale.unit if self.scale else self.unit


def catalogue_column(name: str, label: str | None = None) -> Column:
    m = CATALOGUE[name]
    return Column(name, label or m.label, m.unit, m.better, m.description, timing=m.timing, ranked=m.ranked)


def training_columns(target: float | None) -> list[Column]:
    """The training run's columns, its headline first: how long each backend took to reach the target
    (accuracy and firing rates follow, as checks)."""
    tta = f"Time to {target * 100:g}\u00a0%" if target is not None else None
    return [catalogue_column("time_to_accuracy", tta), catalogue_column("accuracy"),
            catalogue_column("train_throughput"), catalogue_column("peak_device_memory"),
            catalogue_column("firing_rate_mean")]


def measurement_columns(trainable: bool = True, dtype: str = "cuda", compile_time: bool = False) -> list[Column]:
    """The measured step (train step, or forward + backward for a task that is
    not trained), inference, and the memory of the step: the device allocator's
    peak on CUDA, the host memory the step needs on the CPU; and compile time
    where a record of the table has it (compiled variants, JAX's jit)."""
    step = "train_step" if trainable else "forward_backward"
    if dtype == "cuda":
        memory = "peak_device_memory" if trainable else "peak_device_memory_forward_backward"
    else:
        memory = f"{step}_host_memory"
    return [catalogue_column(f"{step}_time"), catalogue_column(f"{step}_throughput"),
            catalogue_column("inference_time"), catalogue_column(memory)] + \
        ([catalogue_column("compile_time")] if compile_time else [])
