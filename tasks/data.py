"""Batches for every task, made once in NumPy so every backend sees the same ones.

The kinds of pipeline are here (one fixed batch; images read from a data
set); each task's own pipeline is ``DATA`` of its module (``tasks/workloads/``).

Shuffling, augmentation, Poisson draws and the validation split all happen
here, from named streams of the run's seed (:mod:`tasks.rng`).  A batch is
either *static* (one image per sample, fed at every time step; ``x`` is
``[B, ...]``) or time-varying (``x`` is ``[T, B, ...]``, time-major).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from . import rng
from .errors import UsageError
from .idx import ImageDataset, load_dataset
from .taskspec import TaskSpec


@dataclass(frozen=True)
class Batch:
    """One batch: inputs ``x`` (float32) and integer labels ``y``."""

    x: np.ndarray
    y: np.ndarray
    static: bool

    @property
    def size(self) -> int:
        return int(self.y.shape[0])

    def time_major(self, T: int) -> np.ndarray:
        """``x`` as ``[T, B, ...]`` (a read-only broadcast view for static batches)."""
        if self.static:
            return np.broadcast_to(self.x, (T,) + self.x.shape)
        return self.x


class TaskData:
    """The batches of one task: ``train_batches(epoch)`` and ``eval_batches(split)``."""

    splits: tuple[str, ...] = ("test",)
    # seconds make_data took (reading the data set from disk, or drawing the fixed batch): a training
    # run handed data made before it counts them in its time to accuracy
    load_seconds: float = 0.0

    def __init__(self, spec: TaskSpec):
        self.spec = spec

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        raise NotImplementedError

    def eval_batches(self, split: str) -> Iterator[Batch]:
        raise NotImplementedError

    def n_train_batches(self) -> int:
        raise NotImplementedError

    def n_eval_samples(self, split: str) -> int:
        raise NotImplementedError

    def n_eval_batches(self, split: str) -> int:
        return math.ceil(self.n_eval_samples(split) / self.spec.batch_size)

    def describe(self) -> dict:
        return {}


class FixedBatchData(TaskData):
    """One fixed batch, drawn from the seed; training repeats it ``steps`` times."""

    def __init__(self, spec: TaskSpec, batch: Batch):
        super().__init__(spec)
        self.batch = batch

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        for _ in range(self.n_train_batches()):
            yield self.batch

    def n_train_batches(self) -> int:
        return int(self.spec.steps)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        yield self.batch

    def n_eval_samples(self, split: str) -> int:
        return self.batch.size


def limited(n: int, limit: int | None) -> int:
    """``n``, or ``limit`` where that is fewer (a ``limit_train`` / ``limit_test`` of None: all)."""
    return n if limit is None else min(n, limit)


class ImageData(TaskData):
    """MNIST-format images: shuffled training batches (last partial batch dropped)
    and the full test set (last partial batch kept)."""

    def __init__(self, spec: TaskSpec, dataset: ImageDataset):
        super().__init__(spec)
        self.dataset = dataset
        self.train_index = np.arange(limited(len(dataset.train_images), spec.limit_train))
        self.test_index = np.arange(limited(len(dataset.test_images), spec.limit_test))

    # -- index bookkeeping ---------------------------------------------------
    def n_train_batches(self) -> int:
        return len(self.train_index) // self.spec.batch_size

    def _eval_source(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if split == "test":
            return self.dataset.test_images, self.dataset.test_labels, self.test_index
        raise KeyError(f"no {split!r} split in task {self.spec.name}")

    def n_eval_samples(self, split: str) -> int:
        return len(self._eval_source(split)[2])

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        order = rng.stream(self.spec.seed, "shuffle", epoch).permutation(self.train_index)
        bs = self.spec.batch_size
        for i in range(self.n_train_batches()):
            idx = order[i * bs : (i + 1) * bs]
            yield self.make_batch(
                self.dataset.train_images[idx], self.dataset.train_labels[idx], "train", epoch, i
            )

    def eval_batches(self, split: str) -> Iterator[Batch]:
        images, labels, index = self._eval_source(split)
        bs = self.spec.batch_size
        for i in range(math.ceil(len(index) / bs)):
            idx = index[i * bs : (i + 1) * bs]
            yield self.make_batch(images[idx], labels[idx], split, 0, i)

    def make_batch(self, images: np.ndarray, labels: np.ndarray, split: str, epoch: int, index: int) -> Batch:
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "dataset": self.dataset.name,
            "location": self.dataset.location,
            "train_samples": int(len(self.train_index)),
            **{f"{s}_samples": self.n_eval_samples(s) for s in self.splits},
        }


def generated(spec: TaskSpec) -> bool:
    """Whether the task's input is drawn, not read (the whole batch is made up
    front), by its pipeline (``DATA`` of its module)."""
    return not issubclass(spec.workload.DATA, ImageData)


def batch_bytes(spec: TaskSpec, batch: int) -> int:
    """Bytes of one float32 input batch of ``batch`` samples (``[T, B, ...]``
    unless the input is one image fed at every step)."""
    steps = 1 if spec.static_input else spec.T
    return 4 * steps * batch * math.prod(spec.input_shape())


def host_memory_bytes() -> int | None:
    """This machine's physical memory, where the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _too_large(spec: TaskSpec, batch: int, why: str) -> UsageError:
    size = f"T={spec.T}, batch {batch}" + (f", N={spec.neurons}" if hasattr(spec, "neurons") else "")
    return UsageError(f"{spec.name} with {size}: one input batch needs {_gib(batch_bytes(spec, batch))} "
                      f"of host memory, {why}; lower --T or --batch-size")


def check_batch_fits(spec: TaskSpec, batch: int) -> None:
    """Refuse, before allocating, a batch larger than this machine's memory:
    what it would need, in one line, rather than NumPy's MemoryError."""
    total = host_memory_bytes()
    if total is not None and batch_bytes(spec, batch) > total:
        raise _too_large(spec, batch, f"more than this machine's {_gib(total)}")


def make_data(spec: TaskSpec, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> TaskData:
    """The data pipeline of ``spec``; a data set, size or limit it cannot run
    with raises :class:`UsageError` or :class:`DataError` (exit 2)."""
    t0 = time.perf_counter()
    pipeline = spec.workload.DATA
    if generated(spec):
        check_batch_fits(spec, spec.batch_size)
        try:
            data = pipeline(spec)
        except MemoryError:  # fits the machine, not what this process may have
            raise _too_large(spec, spec.batch_size, "more than this process could allocate") from None
        data.load_seconds = time.perf_counter() - t0
        return data
    dataset = load_dataset(spec.dataset, data_dir, allow_download=allow_download)  # type: ignore[attr-defined]
    data = pipeline(spec, dataset)  # indices only: batches are made as they are read
    check_batch_fits(spec, min(spec.batch_size, max(len(data.train_index), len(data.test_index))))
    if data.n_train_batches() == 0:
        # batches are full (the last partial one is dropped): no step could be taken
        raise UsageError(
            f"{spec.name}: {len(data.train_index)} training images of {dataset.name} make no batch of "
            f"{spec.batch_size}, so no training step could be taken; lower --batch-size or raise --limit-train"
        )
    data.load_seconds = time.perf_counter() - t0
    return data


def check_data(spec: TaskSpec, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> None:
    """What :func:`make_data` would refuse, found without drawing a batch (a
    sweep checks every point before it starts one)."""
    if generated(spec):
        check_batch_fits(spec, spec.batch_size)
    else:
        make_data(spec, data_dir, allow_download)  # an image pipeline makes no batch up front
