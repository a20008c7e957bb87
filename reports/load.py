"""Find and read the result records (and a parity file) under a directory."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tasks.result import Result, record_files


class ReportError(Exception):
    """Bad input: reported in one line, exit status 2, nothing written."""


@dataclass
class Loaded:
    """One result record and where it came from."""

    result: Result
    path: str  # relative to the results directory, for display
    mtime: float = 0.0

    @property
    def sort_time(self) -> tuple[str, float]:
        """Newest last: the record's own start time, then its path (a file's time
        is when it was checked out, not when it was measured)."""
        return (self.result.started_at or "", self.path)


@dataclass
class Parity:
    """Rows of ``python -m tasks.parity --json`` (merged over files)."""

    rows: list[dict[str, Any]]
    tolerances: dict[str, Any]
    paths: list[str]


@dataclass
class Collection:
    root: Path
    results: list[Loaded] = field(default_factory=list)
    parity: Parity | None = None
    nir: list[tuple[str, dict]] = field(default_factory=list)  # (path, record) of tasks.nir fidelity (reports/nir.py)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_parity(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("rows"), list) and "tolerances" in data


def _is_result(data: Any) -> bool:
    return isinstance(data, dict) and "task" in data and "backend" in data


PARITY_NUMBERS = ("spike_mismatches", "spikes_compared", "membrane_rel", "gradient_rel", "loss_curve_rel")


def _check_parity_rows(rows: list[Any]) -> None:
    for row in rows:
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("task", "backend", "status")):
            raise ValueError("a parity row lacks task, backend or status")
        for key in PARITY_NUMBERS:
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"parity row {row['task']}/{row['backend']}: {key} is {value!r}")
        tolerances = row.get("tolerances") or {}
        if not isinstance(tolerances, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in tolerances.values()):
            raise ValueError(f"parity row {row['task']}/{row['backend']}: tolerances are not numbers")


def load_results(roots: str | os.PathLike | Sequence[str | os.PathLike],
                 warn: Callable[[str], None] | None = None, base: str | os.PathLike | None = None) -> Collection:
    """Read every result record under ``roots`` (one directory or several).

    Raises :class:`ReportError` when a directory is missing, is not a
    directory, or when none holds a result record.  A file that cannot be read
    as a result (or parity) record is skipped and reported through ``warn`` in
    one line.  Paths are shown relative to ``base`` when given, else to the
    directory (or, for several, to their common parent).
    """
    dirs = [Path(roots)] if isinstance(roots, (str, os.PathLike)) else [Path(r) for r in roots]
    if not dirs:
        raise ReportError("no results directory given")
    for root in dirs:
        if not root.exists():
            raise ReportError(f"results directory {root} does not exist")
        if not root.is_dir():
            raise ReportError(f"{root} is not a directory")
    if base is not None:
        base = Path(base).resolve()
    else:
        base = dirs[0].resolve() if len(dirs) == 1 else Path(os.path.commonpath([d.resolve() for d in dirs]))
    root = dirs[0] if len(dirs) == 1 else Path(", ".join(str(d) for d in dirs))
    collection = Collection(root=root)
    parity_files: list[tuple[float, str, dict]] = []

    def skip(rel: str, why: str) -> None:
        collection.skipped.append((rel, why))
        if warn is not None:
            warn(f"skipped {rel}: {why}")

    for path in [f for d in dirs for f in record_files(d)]:
        rel = path.resolve().relative_to(base).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
            mtime = path.stat().st_mtime
        except (OSError, UnicodeDecodeError) as exc:
            skip(rel, f"cannot read it ({_one_line(exc)})")
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            skip(rel, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
            continue
        except (ValueError, RecursionError) as exc:  # a number of too many digits; nesting too deep
            skip(rel, f"not readable JSON ({_one_line(exc)})")
            continue
        if _is_parity(data):
            try:
                _check_parity_rows(data["rows"])
            except ValueError as exc:
                skip(rel, f"not a parity record ({exc})")
                continue
            parity_files.append((mtime, rel, data))
            continue
        if isinstance(data, dict) and data.get("record") == "nir_fidelity":
            collection.nir.append((rel, data))
            continue
        if not _is_result(data):
            skip(rel, "not a spikebench result or parity record")
            continue
        try:
            result = Result.from_dict(data)
            _check_result(result)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
            skip(rel, f"not a valid result record ({_one_line(exc)})")
            continue
        collection.results.append(Loaded(result, rel, mtime))

    if not collection.results:
        if parity_files:
            raise ReportError(f"no result records under {root} (only parity files); nothing to report")
        raise ReportError(f"no result records (*.json from tasks.run, tasks.measure or tasks.sweep) under {root}")
    if parity_files:
        collection.parity = _merge_parity(parity_files)
    return collection


def _check_result(result: Result) -> None:
    """The fields the report reads have the types it expects."""
    if not isinstance(result.task, str) or not isinstance(result.backend, str):
        raise ValueError("task and backend must be strings")
    for name in ("config", "device", "versions", "host", "extra"):
        if not isinstance(getattr(result, name), dict):
            raise ValueError(f"{name} must be an object")
    for name in ("started_at", "finished_at"):  # records are ordered by them
        if not isinstance(getattr(result, name), str):
            raise ValueError(f"{name} must be a timestamp string, got {getattr(result, name)!r}")
    task = result.config.get("task", {})
    if not isinstance(task, dict):
        raise ValueError("config.task must be an object")
    T = task.get("T")  # sweeps are drawn against it on a log axis; a minimal training record may lack it
    if (T is not None or result.kind == "measurement") and (isinstance(T, bool) or not isinstance(T, int) or T <= 0):
        raise ValueError(f"config.task.T must be a positive integer, got {T!r}")
    for name, curve in result.curves.items():
        if len(curve.x) != len(curve.y):
            raise ValueError(f"curve {name} has x and y of different lengths")
        _numbers(curve.x, f"curve {name}")
        _numbers([v for v in curve.y if v is not None], f"curve {name}")
    _numbers([l.firing_rate for l in result.layers if l.firing_rate is not None], "layers")
    for name, timing in result.timings.items():
        _numbers(timing.samples + [timing.median, timing.min, timing.max], f"timing {name}")


def _numbers(values: list, what: str) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{what} holds {v!r}, not a number")
        float(v)  # an integer too large for a float raises OverflowError: skipped, not a crash later


def _merge_parity(files: list[tuple[float, str, dict]]) -> Parity:
    """Rows of several parity files; a later file (by time) wins for the same
    task, backend and precision."""
    rows: dict[tuple[str, str, str], dict] = {}
    tolerances: dict[str, Any] = {}
    paths = []
    for _, rel, data in sorted(files, key=lambda f: (f[0], f[1])):
        paths.append(rel)
        if isinstance(data.get("tolerances"), dict):
            tolerances.update(data["tolerances"])
        for row in data["rows"]:
            rows[(row["task"], row["backend"], row.get("precision", ""))] = row
    # listed by name: file times differ between checkouts, the page must not
    return Parity(rows=list(rows.values()), tolerances=tolerances, paths=sorted(paths))
