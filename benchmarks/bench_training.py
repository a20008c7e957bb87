"""Tracked figures of a training run, for every backend x task of the profile.

Training happens once per combination, in ``setup_cache``, through the same
command as the suite's training points (``python -m tasks.run``, each backend
in a process of its own); the ``track_*`` benchmarks only read the cached
results.  The training budget is the profile's training row, at its first
seed.  A run that failed (error, out of memory, diverged) fails its
benchmarks visibly; only an unavailable backend or task is skipped.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from tasks.catalogue import unit_of

from .config import BACKENDS, DEVICE, PRECISION, TRAIN_BACKENDS, TRAIN_ROWS

FIGURES = ("accuracy", "firing_rate_mean", "peak_device_memory", "train_throughput", "time_to_accuracy")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class TrainingSuite:
    params = (BACKENDS, list(TRAIN_ROWS))
    param_names = ["backend", "task"]
    timeout = 600

    def setup_cache(self) -> dict:
        from tasks.result import Result
        from tasks.run import main

        cache: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            for task, settings in TRAIN_ROWS.items():
                out = Path(tmp) / task
                argv = ["--task", task, "--backend", ",".join(TRAIN_BACKENDS[task]), "--out", str(out),
                        "--device", DEVICE, "--precision", PRECISION, "--no-progress", "--no-download"]
                for key, value in settings.items():
                    argv += [_flag(key), str(value)]
                main(argv)
                for path in out.glob("*.json"):
                    r = Result.load(path)
                    cache[f"{r.backend}|{task}"] = {
                        "status": r.status,
                        "message": r.message,
                        **{name: r.metric(name) for name in FIGURES},
                    }
        return cache

    setup_cache.timeout = 6 * 3600

    def setup(self, cache: dict, backend: str, task: str) -> None:
        if backend not in TRAIN_BACKENDS.get(task, ()):
            raise NotImplementedError(f"the profile does not train {task} on {backend}")
        entry = cache.get(f"{backend}|{task}")
        if entry is None or entry["status"] == "unavailable":
            raise NotImplementedError(entry["message"] if entry else "not run")
        self.entry = entry

    def _figure(self, name: str) -> float:
        if self.entry["status"] != "ok":  # error, oom, diverged: a failure, not an n/a
            raise RuntimeError(f"the training run ended {self.entry['status']}: {self.entry['message']}")
        value = self.entry[name]
        return math.nan if value is None else float(value)  # a figure not reached (e.g. time to accuracy)

    def track_test_accuracy(self, cache, backend, task):
        return self._figure("accuracy")

    track_test_accuracy.unit = unit_of("accuracy")

    def track_firing_rate(self, cache, backend, task):
        return self._figure("firing_rate_mean")

    track_firing_rate.unit = unit_of("firing_rate_mean")

    def track_peak_device_memory(self, cache, backend, task):
        return self._figure("peak_device_memory")

    track_peak_device_memory.unit = unit_of("peak_device_memory")

    def track_throughput(self, cache, backend, task):
        return self._figure("train_throughput")

    track_throughput.unit = unit_of("train_throughput")

    def track_time_to_accuracy(self, cache, backend, task):
        return self._figure("time_to_accuracy")

    track_time_to_accuracy.unit = unit_of("time_to_accuracy")
