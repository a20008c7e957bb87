"""Result records as a pandas table: one row per record, one column per figure.

The tables' best values and ratios and the sweep plots are computed on
these frames.  Columns: ``path``, ``task``, ``backend``, ``kind``, ``status``,
``message``, ``T``, ``batch_size``, ``precision``, ``device_type``,
``device_name``, then every metric by name (its value in the record's unit;
NaN when absent or not finite) and, for every timing, ``<name>.median``,
``<name>.min``, ``<name>.max`` (seconds) and ``<name>.repeats``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from .load import Loaded
from .fields import T_of, device_name, device_type, precision_of, task_config

ID_COLUMNS = ["path", "task", "backend", "kind", "status", "message", "T", "batch_size", "precision",
              "device_type", "device_name"]


def records_frame(records: Iterable[Loaded]) -> pd.DataFrame:
    rows = []
    for loaded in records:
        r = loaded.result
        row: dict[str, object] = {
            "path": loaded.path,
            "task": r.task,
            "backend": r.backend,
            "kind": r.kind,
            "status": r.status,
            "message": r.message,
            "T": T_of(r),
            "batch_size": task_config(r).get("batch_size"),
            "precision": precision_of(r),
            "device_type": device_type(r),
            "device_name": device_name(r),
        }
        for name, metric in r.metrics.items():
            row[name] = np.nan if metric.value is None else float(metric.value)
        for name, timing in r.timings.items():
            if timing.samples:
                row[f"{name}.median"] = float(timing.median)
                row[f"{name}.min"] = float(timing.min)
                row[f"{name}.max"] = float(timing.max)
                row[f"{name}.repeats"] = len(timing.samples)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ID_COLUMNS)
    for column in ID_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]`` as floats (all NaN when no record has it)."""
    if name not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[name], errors="coerce").astype(float)


def best_and_ratios(values: pd.Series, better: str) -> tuple[pd.Series, pd.Series, bool]:
    """Which values are the best of their column, each value's ratio to the
    best, and whether all values are equal.

    Only finite values take part (and, for lower-is-better figures, only
    positive ones, so a ratio means something); with fewer than two values,
    nothing is best.
    """
    values = values.astype(float)
    usable = values[np.isfinite(values) & ((values > 0) | (better == "higher"))]
    no = pd.Series(False, index=values.index)
    nan = pd.Series(np.nan, index=values.index)
    if len(usable) < 2:
        return no, nan, False
    best = usable.max() if better == "higher" else usable.min()
    if np.allclose(usable, best, rtol=1e-12, atol=0.0):
        return no, nan, True
    is_best = pd.Series(np.isclose(values, best, rtol=1e-12, atol=0.0), index=values.index) & values.index.isin(usable.index)
    ratios = (values / best).where(values.index.isin(usable.index)) if best != 0 else nan
    return is_best, ratios, False


def throughput_with_range(frame: pd.DataFrame, metric: str, timing: str | None) -> pd.DataFrame:
    """``value`` (samples/s) and the range the repeats give: ``low`` (slowest
    repeat) and ``high`` (fastest), from the batch implied by value x median."""
    out = pd.DataFrame({"value": column(frame, metric)}, index=frame.index)
    if timing is None:
        out["low"] = out["high"] = out["value"]
        return out
    median, fastest, slowest = column(frame, f"{timing}.median"), column(frame, f"{timing}.min"), column(frame, f"{timing}.max")
    batch = out["value"] * median
    ok = (median > 0) & (fastest > 0) & (slowest > 0)
    out["low"] = (batch / slowest).where(ok, out["value"])
    out["high"] = (batch / fastest).where(ok, out["value"])
    return out
