"""A setting's comparison table: rows per backend, cells with their sources,
seed aggregates, best marks and ratios where a framework controls the metric,
the accuracy flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.catalogue import FRACTION, RATE_UNIT
from tasks.metrics import TRAINED_TIE_RATE
from tasks.result import Result, Timing
from tasks.specs import TASKS, get_spec

from .columns import Column, measurement_columns, training_columns
from .fields import device_type
from .format import (
    column_scale,
    human,
    ratio_text,
    scaled,
    spread_text,
)
from .frame import best_and_ratios
from .groups import Setting, Sweep, TrainingGroup
from .keys import (
    STATUS_TEXT,
    accuracy_target,
    backend_color,
    backend_sort_key,
    describe_config,
)
from .load import Loaded


# --------------------------------------------------------------------- cells
@dataclass
class Cell:
    metric: str
    value: float | None
    text: str
    unit: str  # the record's unit of ``value``
    title: str = ""
    sub: str = ""  # a second, small line (ties, spread)
    best: bool = False
    ratio: str = ""
    missing: bool = False
    source: str = ""  # the record file the value comes from
    sources: list[str] = field(default_factory=list)  # several: the value aggregates them over seeds
    aggregate: str = ""  # "mean" | "median" over ``sources``
    flag: str = ""  # a suspected defect (an accuracy outside the others' seed spread)
    caution: str = ""  # why the value is not what its column promises (an untrained network's accuracy)
    group: str = "train"  # "train" (training runs) or "meas" (measurement points): ranked separately


@dataclass
class Failure:
    status: str
    message: str
    source: str = ""


@dataclass
class Row:
    backend: str
    color: str
    framework: str = ""
    variant: str | None = None
    training: Loaded | None = None
    measurement: Loaded | None = None
    seed_runs: list[Loaded] = field(default_factory=list)  # every finished seed of the training run
    train_cells: list[Cell] = field(default_factory=list)
    meas_cells: list[Cell] = field(default_factory=list)
    train_failure: Failure | None = None
    meas_failure: Failure | None = None

    @property
    def sources(self) -> list[str]:
        runs = self.seed_runs or ([self.training] if self.training is not None else [])
        return [x.path for x in runs + ([self.measurement] if self.measurement is not None else [])]

    @property
    def statuses(self) -> list[str]:
        return [x.result.status for x in (self.training, self.measurement) if x is not None]

    @property
    def worst_status(self) -> str:
        for s in ("error", "diverged", "oom", "unavailable"):
            if s in self.statuses:
                return s
        return "ok"


@dataclass
class Table:
    id: str
    caption: str
    train_columns: list[Column]
    meas_columns: list[Column]
    train_source: str  # what the training-run columns come from
    meas_source: str  # what the measurement columns come from
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def _timing_detail(r: Result, column: Column, value: float) -> tuple[str, str]:
    """(sub-line, tooltip) for a step time or a throughput, with its repeats."""
    timing: Timing | None = r.timings.get(column.timing) if column.timing else None
    if timing is None or not timing.samples or not timing.median:
        return "", f"{human(value, column.unit)}; no repeats recorded"
    repeats = (f"a median {human(timing.median, 's')} over {len(timing.samples)} repeats "
               f"(min {human(timing.min, 's')}, max {human(timing.max, 's')}")
    if column.unit == "s":  # a time: the throughput needs the batch, from the record's task
        batch = (r.config.get("task") or {}).get("batch_size")
        rate = f"; batch of {batch}: {batch / timing.max:,.0f} to {batch / timing.min:,.0f} samples/s" if batch else ""
        return spread_text(timing.spread), f"{human(value, column.unit)}: {repeats}{rate})"
    batch = value * timing.median  # a throughput: samples per step
    tip = (f"{human(value, column.unit)}: batch of {batch:.0f} in {repeats}; "
           f"{batch / timing.max:,.0f} to {batch / timing.min:,.0f} samples/s)")
    return spread_text(timing.spread), tip


def _missing_title(r: Result, column: Column) -> str:
    if column.key == "peak_device_memory" and device_type(r) != "cuda":
        return "not recorded: device memory is measured on CUDA only"
    if column.key == "time_to_accuracy":
        target = accuracy_target(r)
        if target is None:
            return "no accuracy target for this task and data set"
        return f"the test accuracy never reached {target * 100:g} % in this run"
    return f"{column.key} is not in this result"


def peak_scope(r: Result) -> str:
    """What a record's peak device memory covers: "window" or "process" (JAX)."""
    scope = r.extra.get("peak_memory_scope")
    if scope in ("window", "process"):
        return scope
    return "process" if r.framework == "brainstate" else "window"


SCOPE_WHY = ("not ranked: JAX cannot reset its allocator peak, so its figure is the process's lifetime peak "
             "(a fresh process per run), PyTorch's the peak of the measured window; not the same measure")


def _aggregate(values: list[float], how: str) -> float:
    return float(np.mean(values)) if how == "mean" else float(np.median(values))


def _how(column: Column) -> str:
    """Checks (accuracy, firing rate) and the time to the target are averaged over seeds (± their standard
    deviation); the other timings take the median."""
    if column.key == "time_to_accuracy":
        return "mean"
    return "mean" if not column.ranked and column.unit in (FRACTION, RATE_UNIT) else "median"


@dataclass(frozen=True)
class TimeToTarget:
    """A backend's time to the accuracy target over its finished seeds."""

    times: list[float]  # of the seeds that reached the target, in seconds
    seeds: int  # finished seeds
    best_accuracy: float | None  # the best test accuracy any seed was evaluated at
    extent: str  # how long the runs trained: "3 epochs", "3000 steps"

    @property
    def reached(self) -> int:
        return len(self.times)

    @property
    def seed_text(self) -> str:
        return f"{self.reached} of {self.seeds} seed{'s' if self.seeds != 1 else ''} reached the target"

    @property
    def not_reached_text(self) -> str:
        return f"not reached in {self.extent}"

    @property
    def best_text(self) -> str:
        return f"best {human(self.best_accuracy, FRACTION)}" if self.best_accuracy is not None else ""


def time_to_target(runs: list[Loaded]) -> TimeToTarget:
    """The time to the target of ``runs`` (one backend's finished seeds), how many reached it, and, for a
    run that did not, the best accuracy it was evaluated at and how long it trained."""
    results = [l.result for l in runs]
    times = [v for r in results if (v := r.metric("time_to_accuracy")) is not None]
    evaluated = [y for r in results for y in getattr(r.curves.get("test_accuracy"), "y", []) if y is not None]
    evaluated += [v for r in results if (v := r.metric("accuracy")) is not None]
    by_step = any(getattr(r.curves.get("test_accuracy"), "x_name", "") == "step" for r in results)
    counts = [v for r in results if (v := r.metric("steps" if by_step else "epochs")) is not None]
    amount = int(max(counts)) if counts else 0
    what = "step" if by_step else "epoch"
    extent = f"{amount} {what}{'s' if amount != 1 else ''}" if counts else "these runs"
    return TimeToTarget(times, len(results), max(evaluated) if evaluated else None, extent)


def _fill_cells(rows: list[Row], columns: list[Column], which: str) -> None:
    """Make the cells of ``columns`` for every row that finished, marking the
    best of each ranked column and every value's ratio to it.  Training runs
    over several seeds show their mean (checks) or median (timings), with the
    spread."""
    finished: dict[str, list[Loaded]] = {}
    for row in rows:
        loaded = row.training if which == "train" else row.measurement
        failure = row.train_failure if which == "train" else row.meas_failure
        if loaded is not None and failure is None:
            finished[row.backend] = (row.seed_runs or [loaded]) if which == "train" else [loaded]

    def comparable(runs: list[Loaded], column: Column) -> list[float]:
        """The values of the runs that state it in the column's unit."""
        out = []
        for l in runs:
            metric = l.result.metrics.get(column.key)
            if metric is not None and metric.unit == column.unit and metric.value is not None:
                out.append(metric.value)
        return out

    for column in columns:
        per_backend = {b: comparable(runs, column) for b, runs in finished.items()}
        how = _how(column)
        values = pd.Series({b: _aggregate(v, how) if v else np.nan for b, v in per_backend.items()}, dtype=float)
        column.scale = column_scale(column.unit, [v for v in values if np.isfinite(v)])
        if column.key.startswith("peak_device_memory"):
            scopes = {peak_scope(runs[0].result) for b, runs in finished.items() if per_backend[b]}
            if len(scopes) > 1:
                column.ranked, column.unranked_why = False, SCOPE_WHY
        if column.ranked:
            is_best, ratios, column.all_equal = best_and_ratios(values, column.better)
        else:
            is_best, ratios = pd.Series(False, index=values.index), pd.Series(np.nan, index=values.index)
            column.all_equal = len(values.dropna()) > 1 and bool(np.allclose(values.dropna(), values.dropna().iloc[0],
                                                                              rtol=1e-12, atol=0.0))
            column.unranked_why = column.unranked_why or ("not ranked: a check that every framework computes the same "
                                                          "thing, or a single unsynchronised run")
        for row in rows:
            if row.backend not in finished:
                continue
            runs = finished[row.backend]
            r = runs[0].result
            got = per_backend[row.backend]
            metric = r.metrics.get(column.key)
            has_target = column.key == "time_to_accuracy" and column.key in r.metrics and accuracy_target(r) is not None
            if not got and has_target:
                tt = time_to_target(runs)
                cell = Cell(column.key, None, tt.not_reached_text, column.unit, sub=tt.best_text,
                            title=f"{_missing_title(r, column)}: {tt.seed_text}; "
                                  f"{tt.best_text or 'no evaluation recorded'}", missing=True)
            elif not got and (metric is None or metric.value is None):
                cell = Cell(column.key, None, "—", column.unit, title=_missing_title(r, column), missing=True)
            elif not got:  # not comparable: shown with its own unit, never ranked
                cell = Cell(column.key, metric.value, human(metric.value, metric.unit), metric.unit,
                            title=f"recorded in {metric.unit!r}, not {column.unit!r}: not compared")
            else:
                v = float(values[row.backend])
                cell = Cell(column.key, v, scaled(v, column.scale), column.unit, title=human(v, column.unit))
                if metric and metric.description:
                    cell.title += f" — {metric.description}"
                if len(runs) > 1:
                    cell.sources = [l.path for l in runs if l.result.metric(column.key) is not None]
                    cell.aggregate = how
                    seeds = ", ".join(f"seed {l.result.seed}: {human(l.result.metric(column.key), column.unit)}"
                                      for l in runs if l.result.metric(column.key) is not None)
                    cell.title += f"; {how} of {len(got)} seed{'s' if len(got) != 1 else ''} ({seeds})"
                    if how == "mean" and len(got) > 1:
                        sd = float(np.std(got, ddof=1))
                        cell.sub = f"± {scaled(sd, column.scale)} · {len(got)} seeds"
                    else:
                        cell.sub = f"{len(got)} seeds, {scaled(min(got), column.scale)}–{scaled(max(got), column.scale)}"
                elif column.timing:
                    cell.sub, cell.title = _timing_detail(r, column, v)
                if has_target:  # how many seeds reached the target, beside their mean
                    tt = time_to_target(runs)
                    spread = f"± {scaled(float(np.std(got, ddof=1)), column.scale)} · " if len(got) > 1 else ""
                    cell.sub = spread + tt.seed_text
                    missed = [l for l in runs if l.result.metric("time_to_accuracy") is None]
                    if missed:
                        other = time_to_target(missed)
                        seeds = ", ".join(str(l.result.seed) for l in missed)
                        cell.title += f"; seed {seeds}: {other.not_reached_text} ({other.best_text})"
                if column.key == "accuracy":
                    ties = float(np.mean([l.result.metric("tie_rate") or 0.0 for l in runs]))
                    if ties:
                        cell.sub = (cell.sub + " · " if cell.sub else "") + f"ties {ties * 100:.1f} %"
                    cell.caution = tie_caution(ties)
                if column.key == "compile_time":
                    cell.sub = inductor_cache_text(r)
                    cell.flag = accuracy_flag(row.backend, per_backend, column)
                if is_best.get(row.backend, False):
                    cell.best = True
                    cell.ratio = "best"
                elif np.isfinite(ratios.get(row.backend, np.nan)):
                    cell.ratio = ratio_text(float(ratios[row.backend]))
                    cell.title += f"; {cell.ratio} the best of this column"
                if not column.ranked:
                    cell.title += f" ({column.unranked_why})"
            cell.source = runs[0].path
            cell.group = which
            (row.train_cells if which == "train" else row.meas_cells).append(cell)


def inductor_cache_text(result: Result) -> str:
    """What inductor's on-disk cache gave a compiled point's compile time: "cold cache" (every
    graph compiled anew), "warm cache" (every one found there) or how many it found; "" where
    the record does not say (JAX's jit, a record written before it was counted)."""
    cache = (result.extra.get("compile") or {}).get("inductor_cache") or {}
    hit, miss = cache.get("hit", 0), cache.get("miss", 0)
    if hit + miss == 0:
        return ""
    if not hit or not miss:
        return "warm cache" if hit else "cold cache"
    return f"cache: {hit} of {hit + miss} graphs found"


def tie_caution(ties: float) -> str:
    """Why an accuracy whose test images tie this often (mean over the seeds) is not a trained
    network's; "" where they tie less than a trained readout does."""
    if ties <= TRAINED_TIE_RATE:
        return ""
    return (f"{ties * 100:.0f} % of the test images tied at the top (a trained network's readout: under "
            f"{TRAINED_TIE_RATE * 100:.0f} %): this accuracy is mostly random tie-breaking, "
            f"a check that the backends agree, not a trained network's")


MIN_SEEDS_FOR_FLAG = 3  # values of the other backends needed to speak of their spread


def accuracy_flag(backend: str, per_backend: dict[str, list[float]], column: Column) -> str:
    """A backend whose mean accuracy lies outside the range of every other
    backend's seed runs is flagged as a suspected defect, not crowned: the
    backends start from the same weights and see the same batches.  A backend
    with fewer finished seeds than that is not judged: one run outside the
    others' spread is not a mean over the same seeds."""
    mine = per_backend.get(backend) or []
    others = [v for b, vs in per_backend.items() if b != backend for v in vs]
    if len(mine) < MIN_SEEDS_FOR_FLAG or len(others) < MIN_SEEDS_FOR_FLAG:
        return ""
    mean, low, high = float(np.mean(mine)), min(others), max(others)
    if low <= mean <= high:
        return ""
    where = "below" if mean < low else "above"
    return (f"mean {human(mean, column.unit)} is {where} every other backend's seed run "
            f"({human(low, column.unit)} to {human(high, column.unit)}): a suspected defect, not a better framework")


def _failure(loaded: Loaded | None) -> Failure | None:
    if loaded is None or loaded.result.status == "ok":
        return None
    r = loaded.result
    return Failure(r.status, r.message or "(no message recorded)", loaded.path)


def _meas_source(sweep: Sweep | None, value: int | None, batch: Any) -> str:
    if sweep is None:
        where = f" at T = {value}, batch {batch}" if value is not None else ""
        return f"none{where} in these results (python -m tasks.sweep makes one)"
    repeats = sweep.repeats
    reps = f", median of {'/'.join(str(r) for r in sorted(repeats))} repeats" if repeats else ""
    return f"{sweep.label(value)}, batch {sweep.batch}{reps}"


def build_table(setting: Setting, group: TrainingGroup | None, sweep: Sweep | None, value: int | None,
                index: int, total: int) -> Table:
    """A comparison table: training runs of ``group`` (if any) and the points
    of ``sweep`` at ``value`` of its axis (if any; a training run's T)."""
    backends = set(group.runs) if group else set()
    if sweep is not None:
        backends |= {b for b, v in sweep.points if v == value} | set(sweep.backends)
    ordered = sorted(backends, key=backend_sort_key)
    target = None
    train_source = "none in these results (python -m tasks.run makes one)"
    notes: list[str] = []
    if group is not None:
        first = next(iter(group.runs.values())).result
        target = accuracy_target(first)
        data = next((l.result.data for l in group.runs.values() if l.result.data), {})
        facts = describe_config(group.config, "training", data)
        seeds = group.seeds
        facts.append(f"seed{'s' if len(seeds) != 1 else ''} {', '.join(str(x) for x in seeds)}")
        train_source = ", ".join(facts)
        if group.superseded:
            notes.append(f"{len(group.superseded)} older training record(s) of the same runs are superseded by "
                         f"newer ones and not shown: {', '.join(sorted(group.superseded))}.")
    if sweep is not None and sweep.superseded:
        notes.append(f"{len(sweep.superseded)} older measurement record(s) superseded: "
                     f"{', '.join(sorted(sweep.superseded))}.")
    batch = (group.config if group else sweep.config if sweep else {}).get("batch_size")
    rows = []
    for name in ordered:
        training = group.runs.get(name) if group else None
        measurement = sweep.at(name, value) if sweep is not None and value is not None else None
        some = training or measurement
        r = some.result if some else None
        row = Row(
            backend=name,
            color=backend_color(name),
            framework=(r.framework if r else "") or name.partition(":")[0],
            variant=(r.variant if r else None) or (name.partition(":")[2] or None),
            training=training,
            measurement=measurement,
        )
        if group is not None and name in group.seed_runs:
            row.seed_runs = group.finished(name)
            failed = [l for l in group.seed_runs[name].values() if l.result.status != "ok"]
            if row.seed_runs and failed:
                notes.append(f"{name}: " + "; ".join(f"seed {l.result.seed} {STATUS_TEXT.get(l.result.status)} "
                                                    f"({l.result.message})" for l in failed)
                             + " — the row shows the other seeds.")
        row.train_failure = None if row.seed_runs else _failure(training)
        row.meas_failure = _failure(measurement)
        rows.append(row)
    if group is None and sweep is not None:
        try:
            spec = get_spec(setting.task)
            target = spec.accuracy_target(sweep.config.get("dataset"))
        except Exception:
            target = None
    train_columns = training_columns(target)
    trainable = getattr(TASKS.get(setting.task), "trainable", True)
    compiled = any(row.measurement is not None and row.measurement.result.metric("compile_time") is not None
                   for row in rows)
    meas_columns = measurement_columns(trainable, setting.dtype, compile_time=compiled)
    _fill_cells(rows, train_columns, "train")
    _fill_cells(rows, meas_columns, "meas")
    caption = "Comparison"
    if total > 1:
        caption += f" {index} of {total}"
    table_id = f"{setting.id}-table{index}"
    return Table(
        id=table_id,
        caption=caption,
        train_columns=train_columns,
        meas_columns=meas_columns,
        train_source=train_source,
        meas_source=_meas_source(sweep, value, batch if sweep is None else sweep.batch),
        rows=rows,
        notes=notes,
    )
