"""Fields of a result record that the report reads, with safe defaults."""

from __future__ import annotations

from typing import Any

from tasks.result import Result


def task_config(r: Result) -> dict[str, Any]:
    cfg = r.config.get("task") if isinstance(r.config, dict) else None
    return cfg if isinstance(cfg, dict) else {}


def run_config(r: Result) -> dict[str, Any]:
    cfg = r.config.get("run") if isinstance(r.config, dict) else None
    return cfg if isinstance(cfg, dict) else {}


def T_of(r: Result) -> int | None:
    return axis_value(r, "T")


def axis_value(r: Result, axis: str) -> int | None:
    """The record's value of a swept setting (``T``, ``neurons``)."""
    value = task_config(r).get(axis)
    return int(value) if isinstance(value, (int, float)) else None


def device_type(r: Result) -> str:
    return str(run_config(r).get("device") or r.device.get("type") or "unknown")


def device_name(r: Result) -> str | None:
    name = r.device.get("name")
    return str(name) if name else None


def precision_of(r: Result) -> str:
    return str(r.precision or run_config(r).get("precision") or "unknown")
