"""What asv measures: the suite's profiles (``tasks/profiles.toml``), one list for both.

``SPIKEBENCH_ASV_PROFILE`` names the profile (``smoke``, ``cpu`` or ``gpu``);
unset, it is ``gpu`` on a machine with an NVIDIA GPU and ``cpu`` elsewhere
(found without importing a framework).  ``SPIKEBENCH_ASV_PRECISION`` picks one
of the profile's precisions (default its first).  Data comes from the usual
search path (``$SPIKEBENCH_DATA`` first); the profiles use Fashion-MNIST, which
Debian installs offline (``dataset-fashion-mnist``).

The step suites take the profile's timing rows (task x T, and lif_layer x N);
a backend x task x T combination the profile does not list is skipped in
``setup`` (``NotImplementedError``), as numpy's suites skip.  The training
suite takes the profile's training rows at their first seed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import backends
from tasks.profiles import Profile, get_profile
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


PROFILE = current_profile()
DEVICE = PROFILE.device
PRECISION = os.environ.get("SPIKEBENCH_ASV_PRECISION", PROFILE.precisions[0])
if PRECISION not in PROFILE.precisions:
    raise ValueError(f"SPIKEBENCH_ASV_PRECISION={PRECISION} is not a precision of profile {PROFILE.name}")
BACKENDS = PROFILE.backend_names(backends.installable_names())

# task x T of the trained tasks' timing rows
STEP_POINTS: dict[tuple[str, int], StepPoint] = {}
# N of lif_layer, with its settings
LAYER_POINTS: dict[int, dict] = {}
for row in PROFILE.timing:
    settings = PROFILE.task_settings(row.task, row.settings)
    if row.task == "lif_layer":
        for n in row.neurons or (get_spec("lif_layer", **settings).neurons,):
            LAYER_POINTS[n] = {**settings, "neurons": n}
        continue
    for T in row.Ts or (get_spec(row.task, **settings).T,):
        STEP_POINTS[(row.task, T)] = StepPoint(row.task, T, {**settings, "T": T})

STEP_TASKS = sorted({t for t, _ in STEP_POINTS}, key=lambda t: list(dict.fromkeys(r.task for r in PROFILE.timing)).index(t))
STEP_TS = sorted({T for _, T in STEP_POINTS})
TRAIN_ROWS = {row.task: PROFILE.task_settings(row.task, {**row.settings, "seed": row.seeds[0]}) for row in PROFILE.train}


def step_settings(task: str, T: int) -> dict:
    """The settings of a listed point; NotImplementedError (asv: skipped) for one the profile does not list."""
    point = STEP_POINTS.get((task, T))
    if point is None:
        raise NotImplementedError(f"profile {PROFILE.name} does not time {task} at T = {T}")
    return point.settings
