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

# submitit's first import configures logging (logging.config.dictConfig), which closes every
# handler alive; absl's (JAX imports it) then closes its stream unless that is the current
# sys.stderr, and under capsys pytest's own capture file is not: every later test of that
# worker errs "I/O operation on closed file".  Imported here, before any framework, it closes
# nothing of pytest's.
try:
    import submitit  # noqa: E402, F401
except ImportError:
    pass


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


@pytest.fixture
def register_backend(monkeypatch):
    """Adds a backend to the registry for one test: ``register_backend(name, "module:Class",
    requires=("torch",))`` (a fake from tests/fake_backends.py, or a framework that is missing)."""
    import backends

    def add(name: str, target: str, requires: tuple[str, ...] = ("torch",)) -> None:
        monkeypatch.setitem(backends.REGISTRY, name, backends.BackendEntry(name, target, requires, "test backend"))

    return add


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The report built from the fixture records (tests/report_page.py): (html, parsed page, path)."""
    from reports.build import build_report
    from tests.report_page import FIXTURES, parse

    out = tmp_path_factory.mktemp("report") / "report.html"
    build_report(FIXTURES, out)
    html = out.read_text(encoding="utf-8")
    return html, parse(html), out


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for running the command line in a subprocess from the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def pytest_addoption(parser):
    parser.addoption("--backend", default="", metavar="NAME[,NAME...]",
                     help="run only these registered backends' parametrisations of the generic backend checks "
                          "(tests/test_backend_contract.py); other tests are unaffected")


def pytest_collection_modifyitems(config, items):
    chosen = {name for name in config.getoption("--backend").split(",") if name}
    if not chosen:
        return
    import backends

    unknown = chosen - set(backends.names())
    if unknown:
        raise pytest.UsageError(f"unknown backend {', '.join(sorted(unknown))}; valid backends: {', '.join(backends.names())}")
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        name = params.get("registered_backend")
        (keep if name is None or name in chosen else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
