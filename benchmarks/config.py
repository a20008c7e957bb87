"""The two asv configurations: ``full`` (default, a GPU) and ``small`` (CI's CPU).

Chosen by the environment variable ``SPIKEBENCH_ASV_SIZE``. Data comes from the
usual search path (``--data-dir`` is ``$SPIKEBENCH_DATA`` here); the suite uses
Fashion-MNIST, which Debian installs offline (``dataset-fashion-mnist``), unless
``SPIKEBENCH_ASV_DATASET`` says ``mnist``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import backends


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    device: str
    precision: str
    tasks: tuple[str, ...]
    Ts: tuple[int, ...]
    # per-task overrides of the task spec (sizes, and training budget for track_*)
    overrides: dict[str, dict] = field(default_factory=dict)
    train_overrides: dict[str, dict] = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    # the single-layer benchmark (lif_layer): widths N, and spec overrides
    layer_neurons: tuple[int, ...] = (512, 4096, 16384)
    layer_overrides: dict = field(default_factory=dict)


FULL = SuiteConfig(
    name="full",
    device="cuda",
    precision=os.environ.get("SPIKEBENCH_ASV_PRECISION", "fp32"),
    tasks=("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn"),
    Ts=(2, 8, 32),
    overrides={},
    # the track_* figures train one epoch of each image task (synthetic: its 3000 steps)
    train_overrides={"fc_mnist_poisson": {"epochs": 1}, "dsrn_tdbn": {"epochs": 1}},
)

SMALL = SuiteConfig(
    name="small",
    device="cpu",
    precision="fp32",
    tasks=("fc_mnist", "dsrn_tdbn"),
    Ts=(2,),
    overrides={
        "synthetic": {"batch_size": 16},
        "fc_mnist": {"batch_size": 16, "limit_train": 64, "limit_test": 32},
        "fc_mnist_poisson": {"batch_size": 16, "limit_train": 64, "limit_test": 32},
        "dsrn_tdbn": {"batch_size": 8, "width": 1 / 16, "limit_train": 32, "limit_test": 16},
    },
    train_overrides={"synthetic": {"steps": 20}, "fc_mnist_poisson": {"epochs": 1}, "dsrn_tdbn": {"epochs": 1}},
    layer_neurons=(64, 256),
    layer_overrides={"T": 20, "batch_size": 4},
)


def current() -> SuiteConfig:
    size = os.environ.get("SPIKEBENCH_ASV_SIZE", "full")
    if size not in ("full", "small"):
        raise ValueError(f"SPIKEBENCH_ASV_SIZE must be 'full' or 'small', got {size!r}")
    return SMALL if size == "small" else FULL


def dataset(config: SuiteConfig) -> str:
    return os.environ.get("SPIKEBENCH_ASV_DATASET", config.dataset)


def task_overrides(config: SuiteConfig, task: str, T: int, training: bool = False) -> dict:
    out = dict(config.overrides.get(task, {}))
    if training:
        out.update(config.train_overrides.get(task, {}))
    out["T"] = T
    if task != "synthetic":
        out["dataset"] = dataset(config)
    return out


CONFIG = current()
BACKENDS = backends.names()
