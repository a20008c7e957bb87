"""What asv measures: the suite's profiles (``tasks/profiles.toml``), one list for both.

``SPIKEBENCH_ASV_PROFILE`` names the profile (``smoke``, ``cpu`` or ``gpu``);
unset, it is ``gpu`` on a machine with an NVIDIA GPU and ``cpu`` elsewhere
(found without importing a framework).  ``SPIKEBENCH_ASV_PRECISION`` picks one
of the profile's precisions (default its first); ``SPIKEBENCH_ASV_BACKENDS`` (a comma
list, as the suite's ``--backend``) keeps those of the profile's backends.  Data comes from the usual
search path (``$SPIKEBENCH_DATA`` first); the profiles use Fashion-MNIST, which
Debian installs offline (``dataset-fashion-mnist``).

The step suites take the profile's timing rows (task x T, and lif_layer x N);
a backend x task x T combination the profile does not list is skipped in
``setup`` (``NotImplementedError``), as numpy's suites skip: so is a compiled
variant on a row of eager variants (``variants = "eager"``), which would
otherwise compile there; a point a row of compiled variants lists as well
(``variants = "compiled"``) is one point, run by both rows' backends.  The
training suite takes each task's first training row at its first seed, on
that row's backends.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace

import backends
from tasks.cli import resolve_backends
from tasks.profiles import Profile, get_profile, row_backends
from tasks.specs import get_spec


def has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def current_profile() -> Profile:
    name = os.environ.get("SPIKEBENCH_ASV_PROFILE") or ("gpu" if has_nvidia_gpu() else "cpu")
    return get_profile(name)


@dataclass(frozen=True)
class StepPoint:
    task: str
    T: int
    settings: dict
    backends: tuple[str, ...]  # those of BACKENDS its row runs (a row of eager variants: no compiled one)


PROFILE = current_profile()
DEVICE = PROFILE.device
PRECISION = os.environ.get("SPIKEBENCH_ASV_PRECISION", PROFILE.precisions[0])
if PRECISION not in PROFILE.precisions:
    raise ValueError(f"SPIKEBENCH_ASV_PRECISION={PRECISION} is not a precision of profile {PROFILE.name}")
BACKENDS = PROFILE.backend_names(backends.installable_names(DEVICE))
if os.environ.get("SPIKEBENCH_ASV_BACKENDS"):
    _asked = resolve_backends(os.environ["SPIKEBENCH_ASV_BACKENDS"])  # an unknown name: UsageError
    BACKENDS = [b for b in BACKENDS if b in _asked]


def _add(points: dict, key, point: StepPoint) -> None:
    """A point two rows list (one of the eager variants, one of the compiled ones) is one
    point, run by both rows' backends."""
    old = points.get(key)
    if old is None:
        points[key] = point
    elif old.settings != point.settings:
        raise ValueError(f"profile {PROFILE.name}: two timing rows give {key} different settings")
    else:
        points[key] = replace(old, backends=old.backends + tuple(b for b in point.backends if b not in old.backends))


# task x T of the trained tasks' timing rows
STEP_POINTS: dict[tuple[str, int], StepPoint] = {}
# N of lif_layer, with its settings
LAYER_POINTS: dict[int, StepPoint] = {}
for row in PROFILE.timing:
    settings = PROFILE.task_settings(row.task, row.settings)
    names = tuple(row_backends(row.variants, BACKENDS))
    if row.task == "lif_layer":
        for n in row.neurons or (get_spec("lif_layer", **settings).neurons,):
            spec = get_spec("lif_layer", **settings, neurons=n)
            _add(LAYER_POINTS, n, StepPoint(row.task, spec.T, {**settings, "neurons": n}, names))
        continue
    for T in row.Ts or (get_spec(row.task, **settings).T,):
        _add(STEP_POINTS, (row.task, T), StepPoint(row.task, T, {**settings, "T": T}, names))

STEP_TASKS = sorted({t for t, _ in STEP_POINTS}, key=lambda t: list(dict.fromkeys(r.task for r in PROFILE.timing)).index(t))
STEP_TS = sorted({T for _, T in STEP_POINTS})
# a task's first training row, at its first seed, and the backends that row runs
TRAIN_ROWS: dict[str, dict] = {}
TRAIN_BACKENDS: dict[str, list[str]] = {}
for row in PROFILE.train:
    if row.task not in TRAIN_ROWS:
        TRAIN_ROWS[row.task] = PROFILE.task_settings(row.task, {**row.settings, "seed": row.seeds[0]})
        TRAIN_BACKENDS[row.task] = row_backends(row.variants, BACKENDS)


def _listed(point: StepPoint | None, backend: str, what: str) -> dict:
    if point is None or backend not in point.backends:
        raise NotImplementedError(f"profile {PROFILE.name} does not time {what} on {backend}")
    return point.settings


def step_settings(backend: str, task: str, T: int) -> dict:
    """The settings of a listed point; NotImplementedError (asv: skipped) for one the profile does not list."""
    return _listed(STEP_POINTS.get((task, T)), backend, f"{task} at T = {T}")


def layer_settings(backend: str, N: int) -> dict:
    """lif_layer's settings at width ``N``, as :func:`step_settings`."""
    return _listed(LAYER_POINTS.get(N), backend, f"lif_layer at N = {N}")
