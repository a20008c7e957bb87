"""Tracked figures of a training run, for every backend x task x T.

Training happens once per combination, in ``setup_cache``, through the same
runner as ``python -m tasks.run`` (each backend in a process of its own); the
``track_*`` benchmarks only read the cached results.  The training budget is
the configuration's (``benchmarks/config.py``): one epoch per image task in the
full configuration, a few steps in the small one.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import backends as registry

from .config import BACKENDS, CONFIG, task_overrides

FIGURES = ("accuracy", "firing_rate_mean", "peak_device_memory", "train_throughput", "time_to_accuracy")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class TrainingSuite:
    params = (BACKENDS, list(CONFIG.tasks), list(CONFIG.Ts))
    param_names = ["backend", "task", "T"]
    timeout = 600

    def setup_cache(self) -> dict:
        from tasks.result import Result
        from tasks.run import main

        cache: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            for task in CONFIG.tasks:
                for T in CONFIG.Ts:
                    out = Path(tmp) / f"{task}-T{T}"
                    argv = ["--task", task, "--backend", ",".join(BACKENDS), "--out", str(out),
                            "--device", CONFIG.device, "--precision", CONFIG.precision,
                            "--no-progress", "--no-download"]
                    for key, value in task_overrides(CONFIG, task, T, training=True).items():
                        argv += [_flag(key), str(value)]
                    main(argv)
                    for path in out.glob("*.json"):
                        r = Result.load(path)
                        cache[f"{r.backend}|{task}|{T}"] = {
                            "status": r.status,
                            "message": r.message,
                            **{name: r.metric(name) for name in FIGURES},
                        }
        return cache

    setup_cache.timeout = 6 * 3600

    def setup(self, cache: dict, backend: str, task: str, T: int) -> None:
        ok, why = registry.availability(backend)
        if not ok:
            raise NotImplementedError(why)
        entry = cache.get(f"{backend}|{task}|{T}")
        if entry is None or entry["status"] == "unavailable":
            raise NotImplementedError(entry["message"] if entry else "not run")
        self.entry = entry

    def _figure(self, name: str) -> float:
        # A failed run (oom, diverged, error) or a figure not reached shows as n/a.
        value = self.entry[name] if self.entry["status"] == "ok" else None
        return math.nan if value is None else float(value)

    def track_test_accuracy(self, cache, backend, task, T):
        return self._figure("accuracy")

    track_test_accuracy.unit = "fraction"

    def track_firing_rate(self, cache, backend, task, T):
        return self._figure("firing_rate_mean")

    track_firing_rate.unit = "spikes/neuron/step"

    def track_peak_device_memory(self, cache, backend, task, T):
        return self._figure("peak_device_memory")

    track_peak_device_memory.unit = "bytes"

    def track_throughput(self, cache, backend, task, T):
        return self._figure("train_throughput")

    track_throughput.unit = "samples/s"

    def track_time_to_accuracy(self, cache, backend, task, T):
        return self._figure("time_to_accuracy")

    track_time_to_accuracy.unit = "s"
