"""From result records to what the page shows: groups, tables, cells.

Results are compared only inside a *setting*: one task, one device and one
precision.  Inside a setting, training runs with the same task configuration
form one comparison table (a row per backend); measurement points with the
same configuration apart from T form one *sweep*.  A table takes its
measurement columns from the sweep point at the training run's T and batch
size, and says so.  Nothing the records hold is dropped: a failed run is a
row with its status and reason; an older record of the same run is listed as
superseded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import backends as registry  # names, order and colours only: no framework is imported
from tasks.catalogue import CATALOGUE
from tasks.result import Result, Timing
from tasks.specs import TASKS, get_spec

from .fields import T_of, device_name, device_type, precision_of, task_config
from .format import RATE_UNIT, Scale, column_scale, human, ratio_text, scaled, spread_text
from .frame import best_and_ratios
from .load import Collection, Loaded

# Order and colours come from the registry (one place for a backend's facts);
# a backend that is not registered (an old record) takes a spare colour.
BACKEND_ORDER = registry.names()
TASK_ORDER = list(TASKS)
SPARE_COLORS = ["#D55E00", "#8C6D31", "#444444", "#B8A100", "#7F3C8D"]

STATUS_TEXT = {
    "ok": "ok",
    "unavailable": "unavailable",
    "oom": "out of memory",
    "diverged": "diverged",
    "error": "error",
}

# Fields of a task configuration that change neither the shape of the
# network nor the batch, so a measurement point taken with other values
# still measures the same training step.
NOT_STRUCTURAL = {
    "T", "epochs", "steps", "limit_train", "limit_test", "seed", "lr", "lr_step_epochs", "lr_gamma",
    "patience", "eval_every_steps", "accuracy_targets", "adam_betas", "adam_eps", "dataset",
    "validation_size", "task",
}

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def backend_sort_key(name: str) -> tuple[int, str]:
    return (BACKEND_ORDER.index(name) if name in BACKEND_ORDER else len(BACKEND_ORDER), name)


def task_sort_key(name: str) -> tuple[int, str]:
    return (TASK_ORDER.index(name) if name in TASK_ORDER else len(TASK_ORDER), name)


def precision_sort_key(precision: str) -> tuple[int, str]:
    order = ["fp32", "tf32", "bf16", "fp64"]
    return (order.index(precision) if precision in order else len(order), precision)


def backend_color(name: str) -> str:
    """The backend's colour, the same in every table and figure of the page."""
    if name in registry.REGISTRY and registry.REGISTRY[name].color:
        return registry.REGISTRY[name].color
    return SPARE_COLORS[sum(name.encode()) % len(SPARE_COLORS)]  # stable across runs, unlike hash()


def slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def config_key(r: Result, drop: set[str] = frozenset()) -> str:
    return canonical({k: v for k, v in task_config(r).items() if k not in drop})


def structural_key(cfg: dict[str, Any]) -> str:
    return canonical({k: v for k, v in cfg.items() if k not in NOT_STRUCTURAL})


def describe_config(cfg: dict[str, Any], kind: str, data: dict[str, Any] | None = None) -> list[str]:
    """Short facts about a configuration: T, batch, epochs, data size."""
    facts = []
    if "T" in cfg and kind != "sweep":
        facts.append(f"T = {cfg['T']}")
    if "batch_size" in cfg:
        facts.append(f"batch {cfg['batch_size']}")
    if cfg.get("width") not in (None, 1, 1.0):
        facts.append(f"width × {cfg['width']:g}")
    if cfg.get("neurons") is not None:
        facts.append(f"N = {cfg['neurons']:,}")
    if kind == "training":
        if cfg.get("steps"):
            facts.append(f"{cfg['steps']} steps")
        elif cfg.get("epochs"):
            facts.append(f"{cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}")
        if cfg.get("dataset"):
            facts.append(DATASET_NAMES.get(cfg["dataset"], str(cfg["dataset"])))
        data = data or {}
        if data.get("train_samples"):
            sizes = f"{data['train_samples']:,} training"
            if data.get("val_samples"):
                sizes += f" / {data['val_samples']:,} validation"
            if data.get("test_samples"):
                sizes += f" / {data['test_samples']:,} test"
            facts.append(sizes + " samples")
        elif cfg.get("limit_train") or cfg.get("limit_test"):
            facts.append(f"first {cfg.get('limit_train') or 'all'} training / {cfg.get('limit_test') or 'all'} test images")
    if cfg.get("seed") not in (None, 0) and kind == "training":
        facts.append(f"seed {cfg['seed']}")
    if cfg.get("surrogate_center") not in (None, "threshold"):
        facts.append(f"surrogate centred on {cfg['surrogate_center']}")
    return facts


def describe_device(dtype: str, name: str | None) -> str:
    label = {"cuda": "CUDA GPU", "cpu": "CPU"}.get(dtype, dtype)
    return f"{label} · {name}" if name else f"{label} (model not recorded)"


def accuracy_target(r: Result) -> float | None:
    target = r.extra.get("accuracy_target")
    if isinstance(target, (int, float)):
        return float(target)
    cfg = task_config(r)
    targets = cfg.get("accuracy_targets")
    if isinstance(targets, list):
        try:
            return dict((k, v) for k, v in targets).get(cfg.get("dataset") or "synthetic")
        except (TypeError, ValueError):
            return None
    return None


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
    tta = f"Time to {target * 100:g}\u00a0%" if target is not None else None
    return [catalogue_column("accuracy"), catalogue_column("time_to_accuracy", tta),
            catalogue_column("train_throughput"), catalogue_column("peak_device_memory"),
            catalogue_column("firing_rate_mean")]


def measurement_columns(trainable: bool = True, dtype: str = "cuda") -> list[Column]:
    """The measured step (train step, or forward + backward for a task that is
    not trained), inference, and the memory of the step: the device allocator's
    peak on CUDA, the host memory the step needs on the CPU."""
    step = "train_step" if trainable else "forward_backward"
    if dtype == "cuda":
        memory = "peak_device_memory" if trainable else "peak_device_memory_forward_backward"
    else:
        memory = f"{step}_host_memory"
    return [catalogue_column(f"{step}_time"), catalogue_column(f"{step}_throughput"),
            catalogue_column("inference_time"), catalogue_column(memory)]


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
    """(sub-line, tooltip) for a throughput with its repeats."""
    timing: Timing | None = r.timings.get(column.timing) if column.timing else None
    if timing is None or not timing.samples or not timing.median:
        return "", f"{human(value, column.unit)}; no repeats recorded"
    batch = value * timing.median
    tip = (f"{human(value, column.unit)}: batch of {batch:.0f} in a median {human(timing.median, 's')} "
           f"over {len(timing.samples)} repeats (min {human(timing.min, 's')}, max {human(timing.max, 's')}; "
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
    """Checks (accuracy, firing rate) are averaged over seeds; timings take the median."""
    return "mean" if not column.ranked and column.unit in ("fraction", RATE_UNIT) else "median"


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
            if not got and (metric is None or metric.value is None):
                has_target = column.key == "time_to_accuracy" and column.key in r.metrics and accuracy_target(r) is not None
                cell = Cell(column.key, None, "not reached" if has_target else "—", column.unit,
                            title=_missing_title(r, column), missing=True)
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
                if column.key == "accuracy":
                    ties = float(np.mean([l.result.metric("tie_rate") or 0.0 for l in runs]))
                    if ties:
                        cell.sub = (cell.sub + " · " if cell.sub else "") + f"ties {ties * 100:.1f} %"
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


MIN_SEEDS_FOR_FLAG = 3  # values of the other backends needed to speak of their spread


def accuracy_flag(backend: str, per_backend: dict[str, list[float]], column: Column) -> str:
    """A backend whose mean accuracy lies outside the range of every other
    backend's seed runs is flagged as a suspected defect, not crowned: the
    backends start from the same weights and see the same batches."""
    mine = per_backend.get(backend) or []
    others = [v for b, vs in per_backend.items() if b != backend for v in vs]
    if not mine or len(others) < MIN_SEEDS_FOR_FLAG:
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


# ------------------------------------------------------------------ groups
@dataclass
class Sweep:
    """Measurement points of one configuration over T."""

    id: str
    config: dict[str, Any]
    points: dict[tuple[str, int], Loaded] = field(default_factory=dict)
    superseded: list[str] = field(default_factory=list)

    @property
    def Ts(self) -> list[int]:
        return sorted({T for _, T in self.points})

    @property
    def backends(self) -> list[str]:
        return sorted({b for b, _ in self.points}, key=backend_sort_key)

    def at(self, backend: str, T: int) -> Loaded | None:
        return self.points.get((backend, T))

    def ok_count(self, T: int) -> int:
        return sum(1 for (b, t), p in self.points.items() if t == T and p.result.status == "ok")

    @property
    def batch(self) -> Any:
        return self.config.get("batch_size")

    @property
    def repeats(self) -> set[int]:
        return {p.result.extra.get("repeats") for p in self.points.values()
                if p.result.status == "ok" and p.result.extra.get("repeats")}


@dataclass
class TrainingGroup:
    """Training runs of one configuration, every seed of every backend."""

    id: str
    config: dict[str, Any]  # without the seed
    seed_runs: dict[str, dict[int, Loaded]] = field(default_factory=dict)  # backend -> seed -> run
    superseded: list[str] = field(default_factory=list)

    @property
    def runs(self) -> dict[str, Loaded]:
        """One run per backend (its lowest finished seed, else its lowest seed): curves and layers."""
        out = {}
        for name, by_seed in self.seed_runs.items():
            ok = [by_seed[s] for s in sorted(by_seed) if by_seed[s].result.status == "ok"]
            out[name] = ok[0] if ok else by_seed[min(by_seed)]
        return out

    def finished(self, backend: str) -> list[Loaded]:
        by_seed = self.seed_runs.get(backend, {})
        return [by_seed[s] for s in sorted(by_seed) if by_seed[s].result.status == "ok"]

    @property
    def seeds(self) -> list[int]:
        return sorted({s for by_seed in self.seed_runs.values() for s in by_seed})


@dataclass
class Setting:
    """One task on one device at one precision: the unit of comparison."""

    id: str
    task: str
    dtype: str
    dname: str | None
    precision: str
    trainings: list[TrainingGroup] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)

    @property
    def device_label(self) -> str:
        return describe_device(self.dtype, self.dname)

    @property
    def label(self) -> str:
        return f"{self.device_label} · {self.precision}"


def _newest(a: Loaded, b: Loaded) -> tuple[Loaded, Loaded]:
    """(kept, superseded)."""
    return (b, a) if b.sort_time >= a.sort_time else (a, b)


def group_settings(collection: Collection) -> list[Setting]:
    """Split every record into settings, training groups and sweeps."""
    # Device names: a record that failed before its backend was built has no
    # device name; it joins the setting of the same device type, precision and
    # host when one exists.
    named: dict[tuple[str, str, str], set[str]] = {}
    hosts: dict[tuple[str, str, str, str], set[str]] = {}
    for loaded in collection.results:
        r = loaded.result
        name = device_name(r)
        if name:
            key = (r.task, device_type(r), precision_of(r))
            named.setdefault(key, set()).add(name)
            hosts.setdefault(key + (name,), set()).add(str(r.host.get("hostname")))

    def resolve_name(r: Result) -> str | None:
        name = device_name(r)
        if name:
            return name
        key = (r.task, device_type(r), precision_of(r))
        choices = sorted(named.get(key, ()))
        if len(choices) == 1:
            return choices[0]
        same_host = [c for c in choices if str(r.host.get("hostname")) in hosts[key + (c,)]]
        return same_host[0] if len(same_host) == 1 else None

    settings: dict[tuple, Setting] = {}
    for loaded in sorted(collection.results, key=lambda l: l.sort_time):
        r = loaded.result
        dname = resolve_name(r)
        skey = (r.task, device_type(r), dname, precision_of(r))
        setting = settings.get(skey)
        if setting is None:
            setting = settings[skey] = Setting(
                id=slug(r.task, device_type(r), dname, precision_of(r)),
                task=r.task, dtype=device_type(r), dname=dname, precision=precision_of(r),
            )
        if r.kind == "measurement":
            ckey = config_key(r, {"T"})
            sweep = next((s for s in setting.sweeps if canonical({k: v for k, v in s.config.items() if k != "T"}) == ckey), None)
            if sweep is None:
                sweep = Sweep(id=f"{setting.id}-sweep{len(setting.sweeps) + 1}", config=task_config(r))
                setting.sweeps.append(sweep)
            T = T_of(r) or 0
            old = sweep.points.get((r.backend, T))
            if old is not None:
                keep, drop = _newest(old, loaded)
                sweep.points[(r.backend, T)] = keep
                sweep.superseded.append(drop.path)
            else:
                sweep.points[(r.backend, T)] = loaded
        else:
            ckey = config_key(r, {"seed"})
            group = next((g for g in setting.trainings if canonical(g.config) == ckey), None)
            if group is None:
                config = {k: v for k, v in task_config(r).items() if k != "seed"}
                group = TrainingGroup(id=f"{setting.id}-run{len(setting.trainings) + 1}", config=config)
                setting.trainings.append(group)
            by_seed = group.seed_runs.setdefault(r.backend, {})
            seed = r.seed if isinstance(r.seed, int) else 0
            old = by_seed.get(seed)
            if old is not None:
                keep, drop = _newest(old, loaded)
                by_seed[seed] = keep
                group.superseded.append(drop.path)
            else:
                by_seed[seed] = loaded
    ordered = sorted(settings.values(), key=lambda s: (task_sort_key(s.task), s.dtype != "cuda", s.dtype,
                                                       s.dname or "", precision_sort_key(s.precision)))
    return ordered


def matching_sweep(setting: Setting, config: dict[str, Any], T: int | None) -> Sweep | None:
    """The sweep measuring the same network and batch as ``config``, with points at ``T``."""
    want = structural_key(config)
    candidates = [s for s in setting.sweeps if structural_key(s.config) == want and T in s.Ts]
    if not candidates:
        return None
    return max(candidates, key=lambda s: s.ok_count(T))


def reference_T(task: str, sweep: Sweep) -> int | None:
    """The T a sweep-only table shows: the task's default T when measured,
    else the T with the most successful points (the smallest on a tie)."""
    Ts = sweep.Ts
    if not Ts:
        return None
    try:
        default = get_spec(task).T
    except Exception:
        default = None
    if default in Ts and sweep.ok_count(default):
        return default
    return max(Ts, key=lambda T: (sweep.ok_count(T), -T))


def _meas_source(sweep: Sweep | None, T: int | None, batch: Any) -> str:
    if sweep is None:
        where = f" at T = {T}, batch {batch}" if T is not None else ""
        return f"none{where} in these results (python -m tasks.sweep makes one)"
    repeats = sweep.repeats
    reps = f", median of {'/'.join(str(r) for r in sorted(repeats))} repeats" if repeats else ""
    return f"T = {T}, batch {sweep.batch}{reps}"


def build_table(setting: Setting, group: TrainingGroup | None, sweep: Sweep | None, T: int | None,
                index: int, total: int) -> Table:
    """A comparison table: training runs of ``group`` (if any) and the points
    of ``sweep`` at ``T`` (if any)."""
    backends = set(group.runs) if group else set()
    if sweep is not None:
        backends |= {b for b, t in sweep.points if t == T} | set(sweep.backends)
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
        measurement = sweep.at(name, T) if sweep is not None and T is not None else None
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
    meas_columns = measurement_columns(trainable, setting.dtype)
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
        meas_source=_meas_source(sweep, T, batch if sweep is None else sweep.batch),
        rows=rows,
        notes=notes,
    )


# ------------------------------------------------------------ environment
@dataclass
class Environment:
    devices: list[dict[str, str]]
    precisions: list[str]
    dates: str
    commits: list[str]
    common_versions: list[tuple[str, str]]
    backend_versions: list[tuple[str, str, str]]  # backend, colour, "torch 2.1 · ..."
    counts: dict[str, int]
    warnings: list[str]


def _short_commit(commit: str) -> str:
    dirty = commit.endswith("-dirty")
    base = commit[: -len("-dirty")] if dirty else commit
    return base[:10] + (" (uncommitted changes)" if dirty else "")


def environment(collection: Collection, settings: list[Setting]) -> Environment:
    results = [l.result for l in collection.results]
    devices: dict[tuple[str, str], dict[str, str]] = {}
    for r in results:
        name = device_name(r)
        if not name:
            continue
        key = (device_type(r), name)
        details = []
        if r.device.get("driver"):
            details.append(f"driver {r.device['driver']}")
        if r.device.get("cuda_runtime"):
            details.append(f"CUDA runtime {r.device['cuda_runtime']}")
        if r.device.get("memory_bytes"):
            details.append(f"{r.device['memory_bytes'] / 2**30:.0f} GiB")
        if r.device.get("capability"):
            details.append(f"compute capability {r.device['capability']}")
        if key[0] == "cpu" and r.host.get("cpu_count"):
            details.append(f"{r.host['cpu_count']} logical CPUs")
        text = " · ".join(details)
        known = devices.get(key)
        if known is None or len(text) > len(known["details"]):  # the record that says most about it
            devices[key] = {"type": key[0], "name": name, "details": text}
    if not devices:
        devices[("?", "?")] = {"type": "", "name": "not recorded", "details": "no run got as far as its device"}
    precisions = sorted({precision_of(r) for r in results}, key=precision_sort_key)
    days = sorted(r.started_at[:10] for r in results if r.started_at)
    dates = "not recorded" if not days else days[0] if days[0] == days[-1] else f"{days[0]} to {days[-1]}"
    commits = sorted({_short_commit(str(r.host.get("spikebench_commit")))
                      for r in results if r.host.get("spikebench_commit")}) or ["not recorded"]

    common: dict[str, set[str]] = {}
    per_backend: dict[str, dict[str, set[str]]] = {}
    for r in results:
        for lib, version in r.versions.items():
            if lib in ("spikebench", "python", "numpy"):
                common.setdefault(lib, set()).add(str(version))
            elif lib != "versions_error":
                per_backend.setdefault(r.backend, {}).setdefault(lib, set()).add(str(version))
    common_versions = [(lib, ", ".join(sorted(v))) for lib, v in sorted(common.items())]
    names = sorted({r.backend for r in results}, key=backend_sort_key)
    backend_versions = []
    for name in names:
        libs = per_backend.get(name, {})
        text = " · ".join(f"{lib} {', '.join(sorted(v))}" for lib, v in sorted(libs.items()))
        backend_versions.append((name, backend_color(name), text or "not recorded (the framework did not load)"))

    warnings = []
    per_task: dict[str, list[Setting]] = {}
    for s in settings:
        per_task.setdefault(s.task, []).append(s)
    if len(devices) > 1 or len(precisions) > 1:
        what = []
        if len(devices) > 1:
            what.append(f"{len(devices)} devices")
        if len(precisions) > 1:
            what.append(f"{len(precisions)} precisions ({', '.join(precisions)})")
        warnings.append(
            f"These results come from {' and '.join(what)}. Figures are compared only within one device and one "
            "precision: each task shows a separate block per combination, with its own best marks and ratios.")
    split = [t for t, ss in per_task.items() if len(ss) > 1]
    if split and not warnings:
        warnings.append(f"{', '.join(split)}: results from more than one device or precision, shown separately.")
    if len(commits) > 1:
        warnings.append(f"The results were produced by {len(commits)} different spikebench commits: {', '.join(commits)}.")
    for rel, why in collection.skipped:
        warnings.append(f"Skipped {rel}: {why}.")
    counts = {
        "training": sum(1 for r in results if r.kind != "measurement"),
        "measurement": sum(1 for r in results if r.kind == "measurement"),
        "failed": sum(1 for r in results if r.status != "ok"),
        "parity": len(collection.parity.rows) if collection.parity else 0,
        "files": len(collection.results),
    }
    return Environment(
        devices=list(devices.values()),
        precisions=precisions,
        dates=dates,
        commits=commits,
        common_versions=common_versions,
        backend_versions=backend_versions,
        counts=counts,
        warnings=warnings,
    )
