"""Shared fixtures: tiny MNIST-format data sets written as real idx files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tasks.idx import FILES, write_idx  # noqa: E402


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class k is a bright horizontal bar at row 2 + 2k, plus noise."""
    gen = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    gen.shuffle(labels)
    images = gen.integers(0, 60, size=(n, 28, 28)).astype(np.int64)
    for i, k in enumerate(labels):
        row = 2 + 2 * int(k)
        images[i, row : row + 2, 4:24] = 255 - gen.integers(0, 40)
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_dataset(directory: Path, n_train: int = 96, n_test: int = 48, gz: bool = True, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    train = make_images(n_train, seed)
    test = make_images(n_test, seed + 1)
    arrays = {
        "train_images": train[0], "train_labels": train[1],
        "test_images": test[0], "test_labels": test[1],
    }
    for key, stem in FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), arrays[key])
    return directory


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A --data-dir holding tiny 'mnist' and 'fashion-mnist' data sets."""
    root = tmp_path_factory.mktemp("data")
    write_dataset(root / "mnist", gz=True)
    write_dataset(root / "fashion-mnist", gz=False, seed=5)
    return root


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No data set anywhere: empty cache, no $SPIKEBENCH_DATA, no system directory."""
    import tasks.idx as idx

    monkeypatch.delenv("SPIKEBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setattr(idx, "cache_dir", lambda: tmp_path / "cache" / "spikebench")
    idx._LOADED.clear()
    return tmp_path


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for running the command line in a subprocess from the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env
