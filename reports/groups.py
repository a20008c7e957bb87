"""Records into comparison units: a *setting* (one task, device and precision)
holds training groups (one configuration, every seed of every backend) and
sweeps (measurement points of one configuration over the axis it sweeps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.result import Result
from tasks.specs import TASKS, get_spec

from .fields import axis_value, device_name, device_type, precision_of, task_config
from .keys import (
    AXIS_LABELS,
    backend_sort_key,
    canonical,
    config_key,
    describe_device,
    precision_sort_key,
    slug,
    structural_key,
    task_sort_key,
)
from .load import Collection, Loaded


# ------------------------------------------------------------------ groups
@dataclass
class Sweep:
    """Measurement points of one configuration over the setting it sweeps
    (``axis``: the task's ``sweep_axis``, T or the layer width N); ``config``
    is the configuration without it, points are keyed (backend, value)."""

    id: str
    config: dict[str, Any]
    axis: str = "T"
    points: dict[tuple[str, int], Loaded] = field(default_factory=dict)
    superseded: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[int]:
        return sorted({v for _, v in self.points})

    @property
    def symbol(self) -> str:
        return AXIS_LABELS.get(self.axis, (self.axis, self.axis))[0]

    def label(self, value: int) -> str:
        """``T = 25`` or ``N = 512`` (with the fixed T of a sweep over N)."""
        text = f"{self.symbol} = {value:,}" if self.axis != "T" else f"T = {value}"
        if self.axis != "T" and "T" in self.config:
            text += f", T = {self.config['T']}"
        return text

    @property
    def backends(self) -> list[str]:
        return sorted({b for b, _ in self.points}, key=backend_sort_key)

    def at(self, backend: str, value: int) -> Loaded | None:
        return self.points.get((backend, value))

    def ok_count(self, value: int) -> int:
        return sum(1 for (b, v), p in self.points.items() if v == value and p.result.status == "ok")

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
            axis = sweep_axis(r.task)
            ckey = config_key(r, {axis})
            sweep = next((s for s in setting.sweeps if s.axis == axis and canonical(s.config) == ckey), None)
            if sweep is None:
                config = {k: v for k, v in task_config(r).items() if k != axis}
                sweep = Sweep(id=f"{setting.id}-sweep{len(setting.sweeps) + 1}", config=config, axis=axis)
                setting.sweeps.append(sweep)
            value = axis_value(r, axis) or 0
            old = sweep.points.get((r.backend, value))
            if old is not None:
                keep, drop = _newest(old, loaded)
                sweep.points[(r.backend, value)] = keep
                sweep.superseded.append(drop.path)
            else:
                sweep.points[(r.backend, value)] = loaded
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


def sweep_axis(task: str) -> str:
    """What the task's measurement sweeps vary (T for a task the registry does not know)."""
    return getattr(TASKS.get(task), "sweep_axis", "T")


def matching_sweep(setting: Setting, config: dict[str, Any], T: int | None) -> Sweep | None:
    """The sweep over T measuring the same network and batch as ``config``, with points at ``T``."""
    want = structural_key(config)
    candidates = [s for s in setting.sweeps if s.axis == "T" and structural_key(s.config) == want and T in s.values]
    if not candidates:
        return None
    return max(candidates, key=lambda s: s.ok_count(T))


def reference_value(task: str, sweep: Sweep) -> int | None:
    """The value a sweep-only table shows: the task's default (T, N) when
    measured, else the value with the most successful points (the smallest on a tie)."""
    values = sweep.values
    if not values:
        return None
    try:
        default = getattr(get_spec(task), sweep.axis)
    except Exception:
        default = None
    if default in values and sweep.ok_count(default):
        return default
    return max(values, key=lambda v: (sweep.ok_count(v), -v))
