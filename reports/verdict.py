"""The verdict at the top of the report: per task and setting, who reached the
accuracy target soonest (and who did not), who is fastest and by how much, who
needs the least memory per added time step, any accuracy flag and what compiling
gained, each with its conditions (device, precision, size).

Only what a framework controls is ranked (tasks/catalogue.py): the measured
step time and the memory of the step.  The time to the target is the training
runs' headline: the soonest is named, with the seeds behind it, but its table
column carries no best mark (unsynchronised runs, one per seed).  Accuracy gets
no winner, only a flag when one backend's mean lies outside every other
backend's seed runs.  Where a compiled variant was measured beside the eager
backend it compiles, the row says what compiling gained that framework (its
eager step over the compiled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import backends as registry  # compiled variants' eager backends only: no framework is imported
from tasks.catalogue import CATALOGUE
from tasks.metrics import TRAINED_TIE_RATE
from tasks.result import Timing
from tasks.specs import TASKS

from .columns import catalogue_column
from .format import human
from .groups import Setting, Sweep, reference_value
from .keys import accuracy_target, backend_color, describe_config
from .tables import accuracy_flag, time_to_target


@dataclass
class Finding:
    backend: str | None
    color: str
    text: str  # what it says, with the number
    detail: str = ""  # the runner-up, the condition
    sources: list[str] = field(default_factory=list)


@dataclass
class VerdictRow:
    task: str
    conditions: str
    target: Finding | None = None  # the headline of the training runs: time to the accuracy target
    fastest: Finding | None = None
    memory: Finding | None = None
    accuracy: Finding | None = None
    compiling: Finding | None = None  # what compiling gained each framework with a compiled variant


def step_metric(task: str) -> str:
    trainable = getattr(TASKS.get(task), "trainable", True)
    return "train_step_time" if trainable else "forward_backward_time"


def memory_metric(task: str, dtype: str) -> str:
    trainable = getattr(TASKS.get(task), "trainable", True)
    step = "train_step" if trainable else "forward_backward"
    if dtype == "cuda":
        return "peak_device_memory" if trainable else "peak_device_memory_forward_backward"
    return f"{step}_host_memory"


def _values(sweep: Sweep, value: int, metric: str) -> dict[str, tuple[float, str, Timing | None]]:
    out = {}
    for (name, v), loaded in sweep.points.items():
        if v == value and loaded.result.status == "ok":
            v = loaded.result.metric(metric)
            if v is not None and v > 0:
                out[name] = (v, loaded.path, loaded.result.timings.get(CATALOGUE[metric].timing or ""))
    return out


def overlap(a: Timing | None, b: Timing | None) -> bool:
    """Whether two timings' repeats overlap (the slowest of one is slower than the fastest of the other)."""
    return a is not None and b is not None and bool(a.samples) and bool(b.samples) and a.max >= b.min


def fastest(setting: Setting, sweep: Sweep, value: int | None) -> Finding | None:
    """Who is fastest at the sweep's point ``value``."""
    metric = step_metric(setting.task)
    values = _values(sweep, value, metric) if value is not None else {}
    if len(values) < 2:
        return None
    ranked = sorted(values.items(), key=lambda kv: kv[1][0])
    (best, (t_best, src, rep_best)), (second, (t_second, _, rep_second)) = ranked[0], ranked[1]
    slowest, (t_slow, _, _) = ranked[-1]
    label = CATALOGUE[metric].label.lower()
    detail = f"{t_slow / t_best:.1f}× faster than the slowest ({slowest}); at {sweep.label(value)}"
    if overlap(rep_best, rep_second):  # the margin is inside the noise of the repeats
        return Finding(best, backend_color(best),
                       f"{best} and {second} tie: {human(t_best, 's')} and {human(t_second, 's')} per {label} "
                       f"(×{t_second / t_best:.2f}), and their repeats overlap", detail, [src])
    return Finding(best, backend_color(best),
                   f"{best}: {human(t_best, 's')} per {label}, {t_second / t_best:.2f}× faster than {second}",
                   detail + "; the repeats of the two do not overlap", [src])


def memory_slopes(sweep: Sweep, metric: str) -> dict[str, float]:
    """Least-squares bytes per added time step, per backend with at least two finished T
    (nothing for a sweep over another axis)."""
    out = {}
    if sweep.axis != "T":
        return out
    for name in sweep.backends:
        pts = [(T, p.result.metric(metric)) for (b, T), p in sweep.points.items()
               if b == name and p.result.status == "ok" and p.result.metric(metric) is not None]
        if len({T for T, _ in pts}) >= 2:
            Ts, ms = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
            out[name] = float(np.polyfit(Ts, ms, 1)[0])
    return out


def least_memory(setting: Setting, sweep: Sweep) -> Finding | None:
    metric = memory_metric(setting.task, setting.dtype)
    slopes = memory_slopes(sweep, metric)
    if len(slopes) < 2:
        return None
    ranked = sorted(slopes.items(), key=lambda kv: kv[1])
    (best, s_best), (second, s_second) = ranked[0], ranked[1]
    what = CATALOGUE[metric].label.lower()
    ratio = f", {s_second / s_best:.2f}× less than {second} ({human(s_second, 'bytes')})" if s_best > 0 else \
        f"; {second}: {human(s_second, 'bytes')}"
    return Finding(best, backend_color(best), f"{best}: {human(s_best, 'bytes')} per added time step{ratio}",
                   f"slope of the {what} over T = {', '.join(str(T) for T in sweep.values)}")


def compiling_gain(setting: Setting, sweep: Sweep, value: int | None) -> Finding | None:
    """For each compiled variant measured beside the eager backend it compiles: the eager
    step over the compiled one (above 1: compiling made it faster), and its compile time."""
    if value is None:
        return None
    metric = step_metric(setting.task)
    values = _values(sweep, value, metric)
    gains, sources = [], []
    for name, (t_compiled, src, _) in values.items():
        eager = registry.REGISTRY[name].compiles if name in registry.REGISTRY else ""
        if eager in values:
            t_eager, eager_src, _ = values[eager]
            loaded = sweep.points[(name, value)]
            spent = loaded.result.metric("compile_time")
            compiling = f", compiling {human(spent, 's')}" if spent is not None else ""
            gains.append(f"{eager} ×{t_eager / t_compiled:.2f} ({human(t_eager, 's')} → "
                         f"{human(t_compiled, 's')}{compiling})")
            sources += [eager_src, src]
    if not gains:
        return None
    return Finding(None, "", "; ".join(gains),
                   f"eager step ÷ compiled step ({CATALOGUE[metric].label.lower()}; above 1: faster compiled); "
                   f"at {sweep.label(value)}", sources)


def seed_counts(per_backend: dict[str, list[float]], each: str) -> str:
    """``3 seed(s) <each>``, and, where backends finished different numbers, which had fewer."""
    counts = {b: len(v) for b, v in per_backend.items()}
    most = max(counts.values())
    fewer = {b: n for b, n in counts.items() if n < most}
    text = f"{most} seed(s) {each}"
    return text + (f" ({', '.join(f'{b}: {n}' for b, n in sorted(fewer.items()))})" if fewer else "")


def accuracy_finding(setting: Setting) -> Finding | None:
    if not setting.trainings:
        return None
    group = _fullest(setting)
    column = catalogue_column("accuracy")
    per_backend = {b: [l.result.metric("accuracy") for l in group.finished(b) if l.result.metric("accuracy") is not None]
                   for b in group.seed_runs}
    per_backend = {b: v for b, v in per_backend.items() if v}
    if not per_backend:
        return None
    flags = [(b, accuracy_flag(b, per_backend, column)) for b in per_backend]
    flags = [(b, f) for b, f in flags if f]
    everything = [v for vs in per_backend.values() for v in vs]
    seeds = seed_counts(per_backend, "each")
    ties = [l.result.metric("tie_rate") or 0.0 for b in per_backend for l in group.finished(b)]
    above = [t for t in ties if t > TRAINED_TIE_RATE]
    low, high = (f"{min(above) * 100:.0f}", f"{max(above) * 100:.0f}") if above else ("", "")
    untrained = (f"; ⚠ {len(above)} of {len(ties)} runs not trained networks: "
                 f"{low if low == high else f'{low}–{high}'} % of their test images tied "
                 f"(a trained readout: under {TRAINED_TIE_RATE * 100:.0f} %)" if above else "")
    if flags:
        b, text = flags[0]
        more = f" (and {len(flags) - 1} more)" if len(flags) > 1 else ""
        return Finding(b, backend_color(b), f"⚠ {b}: {text}{more}{untrained}", seed_counts(per_backend, "per backend"))
    return Finding(None, "", f"no flag: {len(per_backend)} backends, {human(min(everything), 'fraction')} to "
                              f"{human(max(everything), 'fraction')} over {seeds}{untrained}",
                   ", ".join(describe_config(group.config, "training", {})))


def _fullest(setting: Setting):
    """The training group with the most finished runs."""
    return max(setting.trainings, key=lambda g: sum(len(g.finished(b)) for b in g.seed_runs))


def target_finding(setting: Setting) -> Finding | None:
    """Who reached the accuracy target soonest (mean over the seeds that reached it), how many seeds
    reached it, and which backends did not, with their best accuracy."""
    if not setting.trainings:
        return None
    group = _fullest(setting)
    runs = {b: group.finished(b) for b in group.seed_runs}
    runs = {b: v for b, v in runs.items() if v}
    target = next((accuracy_target(v[0].result) for v in runs.values()), None)
    if target is None:
        return None
    times = {b: time_to_target(v) for b, v in runs.items()}
    reached = sorted(((float(np.mean(t.times)), b) for b, t in times.items() if t.times))
    missed = sorted(b for b, t in times.items() if not t.times)
    partly = sorted(f"{b} ({t.reached} of {t.seeds})" for b, t in times.items() if 0 < t.reached < t.seeds)
    goal = human(target, "fraction")
    notes = []
    by_extent: dict[str, list[str]] = {}
    for b in missed:
        by_extent.setdefault(times[b].not_reached_text, []).append(f"{b} ({times[b].best_text})")
    notes += [f"{extent}: {', '.join(names)}" for extent, names in by_extent.items()]
    if partly:
        notes.append("some seeds only: " + ", ".join(partly))
    if not reached:
        return Finding(None, "", f"no backend reached {goal}", "; ".join(notes))
    (t_best, best), everyone = reached[0], len(reached) == len(times) and not partly
    text = f"{best}: {goal} in {human(t_best, 's')} ({times[best].seed_text})"
    if len(reached) > 1:
        t_second, second = reached[1]
        text += f", {t_second / t_best:.2f}× sooner than {second}"
    every = "every backend reached it on every seed" if everyone else \
        f"{len(reached)} of {len(times)} backends reached it"
    return Finding(best, backend_color(best), text, "; ".join([every] + notes),
                   [l.path for l in runs[best]])


def verdict(settings: list[Setting]) -> list[VerdictRow]:
    rows = []
    for setting in settings:
        # a sweep over T gives one row (at its reference T, memory over T);
        # a sweep over the width one row per width
        points = [(sweep, value) for sweep in setting.sweeps
                  for value in ([reference_value(setting.task, sweep)] if sweep.axis == "T" else sweep.values)]
        for i, (sweep, value) in enumerate(points or [(None, None)]):
            facts = [setting.device_label, setting.precision]
            if sweep is not None:
                facts += [f for f in describe_config(sweep.config, "sweep") if not f.startswith("T = ")]
                if value is not None:
                    facts.append(sweep.label(value))
            row = VerdictRow(task=setting.task, conditions=" · ".join(facts))
            if sweep is not None:
                row.fastest = fastest(setting, sweep, value)
                row.memory = least_memory(setting, sweep)
                row.compiling = compiling_gain(setting, sweep, value)
            if i == 0:
                row.target = target_finding(setting)
                row.accuracy = accuracy_finding(setting)
            if row.target or row.fastest or row.memory or row.accuracy or row.compiling:
                rows.append(row)
    return rows

