"""The suite's profiles (``tasks/profiles.toml``): read, checked, expanded into points.

A profile is data: which tasks, backends, sizes, seeds, T and N lists.  This
module turns one into the list of :class:`Point` s that ``python -m
tasks.suite`` runs (each in a process of its own) and that the asv suite
parameterises over.  It imports no backend: the backend names come from the
registry's list alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .specs import DATASETS, DEVICES, PRECISIONS, TASKS, get_spec

PROFILES_FILE = Path(__file__).with_name("profiles.toml")
PARTS = ("timing", "parity", "train")  # the order a whole run takes them in
# the settings a profile may give: the task-spec fields the command line overrides
SETTINGS = ("T", "epochs", "steps", "batch_size", "lr", "lr_gamma", "lr_step_epochs", "dataset", "limit_train",
            "limit_test", "width", "surrogate_center", "neurons", "eval_every_steps")
TIMING_MEASURES = ("throughput", "memory")
# which of the profile's backends a training or timing row runs: "all", "eager" (every one
# but the compiled variants, whose compiling a profile pays once per point) or "compiled"
# (those alone: their own points, where compiling every point of the eager ones costs too much)
VARIANTS = ("all", "eager", "compiled")
# a compiled variant's registry name ends so (backends/__init__.py; tests/test_registry.py checks
# it): torch.compile's default mode, or its CUDA graphs (CUDA only)
COMPILED_SUFFIXES = (":compile", ":cudagraphs")
# what a point's job asks a cluster for, unless its profile's [P.cluster] table says otherwise
CLUSTER_DEFAULTS = {"cpus_per_task": 2, "gpus_per_task": 0, "mem_gb": 8.0, "time_margin": 3.0, "min_minutes": 10.0}


def is_compiled_variant(backend: str) -> bool:
    return backend.endswith(COMPILED_SUFFIXES)


def row_backends(variants: str, names: list[str]) -> list[str]:
    """The backends of ``names`` a row of ``variants`` ("all", "eager" or "compiled") runs."""
    return [n for n in names if variants == "all" or (variants == "compiled") == is_compiled_variant(n)]


@dataclass(frozen=True)
class TrainRow:
    task: str
    seeds: tuple[int, ...]
    settings: dict[str, Any]
    minutes: float
    variants: str = "all"


@dataclass(frozen=True)
class TimingRow:
    task: str
    Ts: tuple[int, ...]  # empty: the spec's T
    neurons: tuple[int, ...]  # lif_layer widths (empty: the spec's)
    settings: dict[str, Any]
    repeats: int
    seconds: float
    variants: str = "all"


@dataclass(frozen=True)
class NirRow:
    """A NIR graph timed through every framework's reader (``tasks.measure --nir``; docs/nir.md)."""

    graph: str  # the .nir file
    Ts: tuple[int, ...] = (100,)
    batch_size: int = 32
    seed: int = 0
    repeats: int = 10
    seconds: float = 30.0


@dataclass(frozen=True)
class ClusterResources:
    """What each point's Slurm job asks for (a profile's ``[P.cluster]`` table):
    CPUs, GPUs and memory per point, a time limit of ``time_margin`` times the
    point's estimate (at least ``min_minutes``), and any other sbatch option
    (``sbatch``: partition, account, qos, constraint, ...)."""

    cpus_per_task: int = int(CLUSTER_DEFAULTS["cpus_per_task"])
    gpus_per_task: int = int(CLUSTER_DEFAULTS["gpus_per_task"])
    mem_gb: float = CLUSTER_DEFAULTS["mem_gb"]
    time_margin: float = CLUSTER_DEFAULTS["time_margin"]
    min_minutes: float = CLUSTER_DEFAULTS["min_minutes"]
    sbatch: dict[str, str] = field(default_factory=dict)

    def minutes(self, estimate_s: float) -> int:
        return max(int(self.min_minutes), math.ceil(estimate_s * self.time_margin / 60))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    device: str
    precisions: tuple[str, ...]
    backends: tuple[str, ...] | str  # "all" or names
    dataset: str
    # what one backend's points are sized for: the profile's budget grows with the backends it runs
    budget_minutes_per_backend: float
    train: tuple[TrainRow, ...] = ()
    timing: tuple[TimingRow, ...] = ()
    parity_tasks: tuple[str, ...] = ()
    parity_seconds: float = 40.0
    parity_compiled_tasks: tuple[str, ...] = ()  # what the compiled variants' parity checks
    nir: tuple[NirRow, ...] = ()
    cluster: "ClusterResources" = field(default_factory=lambda: ClusterResources())

    def budget_minutes(self, backends: int) -> float:
        """What the profile is sized for on ``backends`` backends."""
        return self.budget_minutes_per_backend * backends

    def backend_names(self, registered: list[str]) -> list[str]:
        if self.backends == "all":
            return list(registered)
        unknown = [b for b in self.backends if b not in registered]
        if unknown:
            raise UsageError(f"profile {self.name}: unknown backend(s) {', '.join(unknown)}")
        return list(self.backends)

    def task_settings(self, task: str, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` with the profile's data set for an image task."""
        out = dict(settings)
        if "dataset" in {f for f in TASKS[task].__dataclass_fields__} and "dataset" not in out:
            out["dataset"] = self.dataset
        return out


@dataclass(frozen=True)
class Point:
    """One thing the suite runs in a process of its own and finds again by its file."""

    part: str  # "train" | "timing" | "parity"
    key: str  # the output file, relative to the suite's directory
    backend: str
    label: str  # for the progress line
    module: str  # python -m <module>
    args: tuple[str, ...]
    estimate_s: float
    task: str | None = None
    # what a finished record must hold (train/timing): the task configuration and the run's
    expected_task: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    device: str = "cpu"
    measures: tuple[str, ...] = ()  # a measurement point: what its record must have measured


def measure_key(task: str, backend: str, T: int, neurons: int | None = None) -> str:
    """The one file name of a measurement point (the suite's and the sweep's)."""
    return f"{task}-{_safe(backend)}-T{T}" + ("" if neurons is None else f"-N{neurons}") + ".json"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_keys(where: str, table: dict, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise UsageError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")


def _ints(where: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise UsageError(f"{where} must be a list of non-negative integers, got {value!r}")
    return tuple(value)


def _settings(where: str, task: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}.settings must be a table, got {value!r}")
    _check_keys(f"{where}.settings", value, set(SETTINGS))
    get_spec(task, **value)  # every value checked by the spec itself
    return dict(value)


def _task(where: str, row: dict) -> str:
    task = row.get("task")
    if task not in TASKS:
        raise UsageError(f"{where}: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def parse_profile(name: str, table: dict) -> Profile:
    where = f"profile {name}"
    _check_keys(where, table, {"description", "device", "precisions", "backends", "dataset",
                               "budget_minutes_per_backend", "train", "timing", "parity", "nir", "cluster"})
    device = table.get("device", "cpu")
    if device not in DEVICES:
        raise UsageError(f"{where}: device must be one of {', '.join(DEVICES)}, got {device!r}")
    precisions = tuple(table.get("precisions", ["fp32"]))
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise UsageError(f"{where}: precisions must be a non-empty list of {', '.join(PRECISIONS)}")
    backends = table.get("backends", "all")
    if backends != "all" and not (isinstance(backends, list) and backends and all(isinstance(b, str) for b in backends)):
        raise UsageError(f"{where}: backends must be \"all\" or a list of names")
    dataset = table.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:
        raise UsageError(f"{where}: dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    train = []
    for i, row in enumerate(table.get("train", [])):
        w = f"{where} train[{i}]"
        _check_keys(w, row, {"task", "seeds", "settings", "recipe", "minutes", "variants"})
        task = _task(w, row)
        if not TASKS[task].trainable:
            raise UsageError(f"{w}: {task} is measured, not trained")
        seeds = _ints(f"{w}.seeds", row.get("seeds", [0]))
        if not seeds:
            raise UsageError(f"{w}.seeds is empty")
        settings = row.get("settings", {})
        if "recipe" in row:  # the publication's own recipe (the task's module): the one place it is written
            if row["recipe"] != "published" or settings or TASKS[task].published is None:
                raise UsageError(f"{w}: recipe = \"published\" (alone, without settings) is the only recipe, "
                                 f"for a task with a publication")
            settings = TASKS[task].published.settings(task)
        train.append(TrainRow(task, seeds, _settings(w, task, settings), float(row.get("minutes", 1.0)),
                              _variants(w, row)))
    timing = []
    for i, row in enumerate(table.get("timing", [])):
        w = f"{where} timing[{i}]"
        _check_keys(w, row, {"task", "T", "neurons", "settings", "repeats", "seconds", "variants"})
        task = _task(w, row)
        settings = _settings(w, task, row.get("settings", {}))
        Ts = _ints(f"{w}.T", row.get("T", []))
        neurons = _ints(f"{w}.neurons", row.get("neurons", []))
        for T in Ts:
            get_spec(task, **{**settings, "T": T})
        for n in neurons:
            get_spec(task, **{**settings, "neurons": n})  # a task without N says so here
        repeats = _repeats(w, row.get("repeats", 10))
        timing.append(TimingRow(task, Ts, neurons, settings, repeats, float(row.get("seconds", 20.0)),
                                _variants(w, row)))
    nir = tuple(parse_nir_row(f"{where} nir[{i}]", row) for i, row in enumerate(table.get("nir", [])))
    if nir and device != "cpu":
        raise UsageError(f"{where}: nir rows are measured on the CPU (the readers build there); "
                         f"this profile's device is {device}")
    budget = table.get("budget_minutes_per_backend", 0)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
        raise UsageError(f"{where}: budget_minutes_per_backend must be a non-negative number, got {budget!r}")
    parity = table.get("parity", {})
    _check_keys(f"{where} parity", parity, {"tasks", "compiled_tasks", "seconds"})
    ptasks = _parity_tasks(where, parity.get("tasks", []))
    compiled_tasks = _parity_tasks(where, parity.get("compiled_tasks", ptasks))
    if not set(compiled_tasks) <= set(ptasks):
        raise UsageError(f"{where} parity: compiled_tasks must be among its tasks")
    return Profile(
        cluster=parse_cluster(f"{where} cluster", table.get("cluster", {})),
        name=name, description=str(table.get("description", "")), device=device, precisions=precisions,
        backends="all" if backends == "all" else tuple(backends), dataset=dataset,
        budget_minutes_per_backend=budget, train=tuple(train), timing=tuple(timing),
        parity_tasks=tuple(ptasks), parity_seconds=float(parity.get("seconds", 40.0)),
        parity_compiled_tasks=tuple(compiled_tasks), nir=nir,
    )


def _variants(where: str, row: dict) -> str:
    variants = row.get("variants", "all")
    if variants not in VARIANTS:
        raise UsageError(f"{where}.variants must be one of {', '.join(VARIANTS)}, got {variants!r}")
    return variants


def _parity_tasks(where: str, tasks: Any) -> list[str]:
    tasks = list(TASKS) if tasks == "all" else tasks
    if not isinstance(tasks, list):
        raise UsageError(f"{where} parity: tasks must be \"all\" or a list, got {tasks!r}")
    for t in tasks:
        if t not in TASKS:
            raise UsageError(f"{where} parity: unknown task {t!r}")
    return tasks


def parse_nir_row(where: str, row: dict) -> NirRow:
    _check_keys(where, row, {"graph", "T", "batch_size", "seed", "repeats", "seconds"})
    graph = row.get("graph")
    if not isinstance(graph, str) or not graph:
        raise UsageError(f"{where}.graph must name a .nir file")
    Ts = _ints(f"{where}.T", row.get("T", list(NirRow.Ts)))
    batch, seed = row.get("batch_size", NirRow.batch_size), row.get("seed", NirRow.seed)
    if not Ts or min(Ts) <= 0 or not isinstance(batch, int) or batch <= 0 or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"{where}: T must be a non-empty list of positive integers, batch_size a positive "
                         f"integer, seed >= 0")
    repeats = _repeats(where, row.get("repeats", NirRow.repeats))
    return NirRow(graph, Ts, batch, seed, repeats, float(row.get("seconds", NirRow.seconds)))


def _repeats(where: str, value: Any) -> int:
    if not isinstance(value, int) or value < 10:
        raise UsageError(f"{where}.repeats must be an integer of at least 10, got {value!r}")
    return value


def parse_cluster(where: str, table: Any) -> ClusterResources:
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table, got {table!r}")
    _check_keys(where, table, set(CLUSTER_DEFAULTS) | {"sbatch"})
    values: dict[str, Any] = {}
    for key, default in CLUSTER_DEFAULTS.items():
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                or (isinstance(default, int) and not isinstance(value, int)):
            raise UsageError(f"{where}.{key} must be a non-negative {type(default).__name__}, got {value!r}")
        values[key] = value
    if values["cpus_per_task"] < 1 or values["time_margin"] < 1:
        raise UsageError(f"{where}: cpus_per_task and time_margin must be at least 1")
    sbatch = table.get("sbatch", {})
    if not isinstance(sbatch, dict) or not all(isinstance(v, (str, int)) for v in sbatch.values()):
        raise UsageError(f"{where}.sbatch must be a table of sbatch options, got {sbatch!r}")
    return ClusterResources(**values, sbatch={str(k): str(v) for k, v in sbatch.items()})


def twin(profile: Profile, sizes: Profile) -> Profile:
    """``profile``'s training runs at ``sizes``' sizes: each task with the
    settings of ``sizes``' first row for it (the data set kept), its first seed,
    on the CPU -- a rehearsal of a long profile in minutes."""
    rows = []
    for row in profile.train:
        small = next((r for r in sizes.train if r.task == row.task), None)
        if small is None:
            raise UsageError(f"profile {sizes.name} has no size for {row.task}, so {profile.name} has no twin there")
        kept = {k: v for k, v in row.settings.items() if k == "dataset"}
        rows.append(TrainRow(row.task, row.seeds[:1], {**small.settings, **kept}, small.minutes, row.variants))
    return dataclasses.replace(profile, name=f"{profile.name}@{sizes.name}", device="cpu", train=tuple(rows),
                               timing=(), parity_tasks=(), parity_compiled_tasks=(), nir=(), cluster=sizes.cluster,
                               budget_minutes_per_backend=sizes.budget_minutes_per_backend)


def load_profiles(path: str | Path = PROFILES_FILE) -> dict[str, Profile]:
    try:
        tables = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the profiles {path}: {exc}") from None
    return {name: parse_profile(name, table) for name, table in tables.items()}


def get_profile(name: str, path: str | Path = PROFILES_FILE) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise UsageError(f"unknown profile {name!r}; profiles: {', '.join(profiles)}")
    return profiles[name]


def _safe(backend: str) -> str:
    return backend.replace(":", "-")


def normalised(spec_dict: dict) -> dict:
    return json.loads(json.dumps(spec_dict))  # tuples as lists, as a record reads back


def run_args(profile: Profile, precision: str) -> tuple[str, ...]:
    return ("--device", profile.device, "--precision", precision, "--no-progress")


def train_points(profile: Profile, names: list[str]) -> list[Point]:
    precision = profile.precisions[0]
    points = []
    # seed-major: a suite stopped half-way has every task on every backend at the first seed
    seeds = sorted({s for row in profile.train for s in row.seeds})
    for seed in seeds:
        for row in profile.train:
            if seed not in row.seeds:
                continue
            settings = profile.task_settings(row.task, row.settings)
            spec = get_spec(row.task, **settings, seed=seed)
            flags = [a for k, v in settings.items() for a in (_flag(k), str(v))]
            for name in row_backends(row.variants, names):
                key = f"train/{row.task}-{_safe(name)}-s{seed}.json"
                points.append(Point(
                    part="train", key=key, backend=name, label=f"train {row.task} {name} seed {seed}",
                    module="tasks.run", task=row.task, estimate_s=row.minutes * 60,
                    args=("--task", row.task, "--backend", name, *flags, "--seed", str(seed),
                          *run_args(profile, precision)),
                    expected_task=normalised(spec.to_dict()), precision=precision, device=profile.device,
                ))
    return points


def timing_points(profile: Profile, names: list[str]) -> list[Point]:
    points = []
    for precision in profile.precisions:
        for row in profile.timing:
            settings = profile.task_settings(row.task, row.settings)
            base = get_spec(row.task, **settings)
            Ts = row.Ts or (base.T,)
            widths = row.neurons or (None,)
            for T in Ts:
                for n in widths:
                    spec = base.with_overrides(T=T, neurons=n)
                    flags = [a for k, v in settings.items() if k not in ("T", "neurons") for a in (_flag(k), str(v))]
                    flags += ["--T", str(T)] + (["--neurons", str(n)] if n is not None else [])
                    where = f"T={T}" + ("" if n is None else f" N={n}")
                    for name in row_backends(row.variants, names):
                        key = f"timing-{precision}/" + measure_key(row.task, name, T, n)
                        points.append(Point(
                            part="timing", key=key, backend=name, label=f"time {row.task} {name} {where} {precision}",
                            module="tasks.measure", task=row.task, estimate_s=row.seconds,
                            args=("--task", row.task, "--backend", name, *flags, "--measure", ",".join(TIMING_MEASURES),
                                  "--repeats", str(row.repeats), *run_args(profile, precision)),
                            expected_task=normalised(spec.to_dict()), precision=precision, device=profile.device,
                            measures=TIMING_MEASURES,
                        ))
    return points


def parity_points(profile: Profile, names: list[str]) -> list[Point]:
    out = []
    for name in names:
        tasks = profile.parity_compiled_tasks if is_compiled_variant(name) else profile.parity_tasks
        if tasks:
            out.append(Point(part="parity", key=f"parity/{_safe(name)}.json", backend=name, label=f"parity {name}",
                             module="tasks.parity", estimate_s=profile.parity_seconds,
                             args=("--backend", name, "--task", ",".join(tasks))))
    return out


def points(profile: Profile, names: list[str], parts: list[str]) -> list[Point]:
    make = {"train": train_points, "timing": timing_points, "parity": parity_points}
    out: list[Point] = []
    for part in parts:
        out += make[part](profile, names)
    return out
