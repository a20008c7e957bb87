"""The result record: one run of one task on one backend, as JSON.

It carries everything needed to defend the numbers in it: schema version,
task, backend and variant, library versions, device, precision, seed, the
full task configuration, metrics with their units, curves, wall times and a
status (``ok``, ``unavailable``, ``oom``, ``diverged`` or ``error``) with a
message.  It is written atomically (temporary file, then rename) and reads
back into an equal object.  Non-finite numbers are stored as ``null`` so the
file is standard JSON.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalogue import unit_of
from .errors import UsageError

SCHEMA_VERSION = 1
STATUSES = ("ok", "unavailable", "oom", "diverged", "error")


def finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class Metric:
    value: float | None
    unit: str
    description: str = ""

    def __post_init__(self) -> None:
        self.value = finite_or_none(self.value)


@dataclass
class Curve:
    """A series: ``y[i]`` measured at ``x[i]`` (a step or an epoch)."""

    x_name: str
    unit: str
    x: list[float] = field(default_factory=list)
    y: list[float | None] = field(default_factory=list)

    def append(self, x: float, y: float | None) -> None:
        self.x.append(x)
        self.y.append(finite_or_none(y))


@dataclass
class Timing:
    """Repeated timings of one operation, in seconds; the median is the figure."""

    samples: list[float]
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0
    unit: str = "s"
    what: str = ""

    def __post_init__(self) -> None:
        if self.samples and not self.median:
            ordered = sorted(self.samples)
            n = len(ordered)
            self.median = ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])
            self.min, self.max = ordered[0], ordered[-1]

    @property
    def spread(self) -> float:
        """max / min of the repeats."""
        return self.max / self.min if self.min > 0 else float("inf")


@dataclass
class LayerStat:
    name: str
    neurons: int
    firing_rate: float | None


@dataclass
class Result:
    task: str
    backend: str  # registry name, e.g. "spikingjelly:torch"
    kind: str = "training"  # "training" (tasks.run) or "measurement" (tasks.measure)
    status: str = "ok"
    message: str = ""
    schema_version: int = SCHEMA_VERSION
    framework: str = ""  # e.g. "spikingjelly"
    variant: str | None = None  # e.g. "torch"
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    capabilities: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    layers: list[LayerStat] = field(default_factory=list)
    curves: dict[str, Curve] = field(default_factory=dict)
    timings: dict[str, Timing] = field(default_factory=dict)
    wall_times: dict[str, float] = field(default_factory=dict)  # seconds
    data: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    # -- convenience ---------------------------------------------------------
    def metric(self, name: str) -> float | None:
        m = self.metrics.get(name)
        return None if m is None else m.value

    def set_metric(self, name: str, value: Any, description: str = "") -> None:
        """Record metric ``name`` in its catalogue unit (tasks/catalogue.py).  ``description`` is
        what is particular to this record (how it was taken here, or why it was not): what the
        metric is, the catalogue says."""
        self.metrics[name] = Metric(value, unit_of(name), description)

    # -- JSON ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        data = dict(data)
        version = data.get("schema_version", SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise ValueError(f"result schema {version} is newer than this spikebench ({SCHEMA_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["metrics"] = {k: Metric(**v) for k, v in data.get("metrics", {}).items()}
        kwargs["curves"] = {k: Curve(**v) for k, v in data.get("curves", {}).items()}
        kwargs["layers"] = [LayerStat(**v) for v in data.get("layers", [])]
        kwargs["timings"] = {k: Timing(**v) for k, v in data.get("timings", {}).items()}
        return cls(**kwargs)

    def to_json(self) -> str:
        return json_text(self.to_dict()) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Result":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        return write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Result":
        return cls.from_json(Path(path).read_text())


def json_text(value: Any, indent: int = 0) -> str:
    """``value`` as JSON, one key a line, but a list of numbers (a curve's thousands of steps) on
    one line: the committed records travel in every GPU call's 64 MiB (tools/gpu), and one number
    a line made them a fifth longer."""
    value = _json_default(value) if hasattr(value, "tolist") else value
    inner = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(str(k))}: {json_text(v, indent + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return "[\n" + ",\n".join(inner + json_text(v, indent + 1) for v in value) + "\n" + " " * indent + "]"
    return json.dumps(value, allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    # NumPy scalars and arrays that slipped into config or extra.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a result")


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a result is an ordinary file
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def check_writable(path: str | os.PathLike, directory: bool = False) -> None:
    """Raise :class:`UsageError` unless a result can be written at ``path`` (a
    file, or with ``directory`` a folder of them).

    Called before any work, so that a run never finishes only to lose its
    result.  The nearest existing folder is probed with a temporary file (removed
    at once): permissions alone do not tell, e.g. for root or in ``/proc``."""
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise UsageError(f"{path} exists and is not a directory")
        if not directory and path.is_dir():
            raise UsageError(f"{path} is a directory, not a result file")
    existing = path if directory else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write {path}: {existing} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {existing}: {exc.strerror or exc}") from None


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Remove the temporary files that killed writes of ``path`` left behind
    (:func:`write_atomic`'s ``.NAME.*.tmp``); the number removed.

    Only ``path``'s own temporaries: another process may be writing other
    files in the same folder."""
    path = Path(path)
    removed = 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def record_files(root: str | os.PathLike) -> list[Path]:
    """Every ``*.json`` under ``root``, sorted, hidden files and folders left out:
    the records of a results folder, without the editions moved aside into
    ``.editions/`` or a write's ``.NAME.*.tmp``."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found.extend(Path(directory) / name for name in sorted(files)
                     if name.endswith(".json") and not name.startswith("."))
    return found
