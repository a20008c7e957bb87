"""Timed benchmarks: one training step and one inference pass, batch on the device.

asv times the calls itself (repeats, warm-up, statistics); each call ends
synchronised: ``train_step`` returns the loss as a Python float, and
``time_inference`` waits for the device explicitly.
"""

from __future__ import annotations

import backends as registry
from tasks.data import make_data
from tasks.measure import first_batch
from tasks.specs import get_spec
from tasks.weights import initial_weights

from .config import BACKENDS, CONFIG, task_overrides


class StepSuite:
    params = (BACKENDS, list(CONFIG.tasks), list(CONFIG.Ts))
    param_names = ["backend", "task", "T"]
    timeout = 600
    warmup_time = 0.5

    def setup(self, backend: str, task: str, T: int) -> None:
        ok, why = registry.availability(backend)
        if not ok:
            raise NotImplementedError(why)
        spec = get_spec(task, **task_overrides(CONFIG, task, T))
        data = make_data(spec, allow_download=False)
        cls = registry.load(backend)  # the framework is imported here, never at module top
        caps = cls.capabilities()
        if task not in caps.tasks or CONFIG.device not in caps.devices:
            raise NotImplementedError(f"{backend} does not run {task} on {CONFIG.device}")
        self.backend = cls(spec, initial_weights(spec), device=CONFIG.device, precision=CONFIG.precision)
        self.train_batch = self.backend.stage(first_batch(data, "train"))
        self.test_batch = self.backend.stage(first_batch(data, "test"))
        # Compile and warm up outside the timed region (JAX compiles on the first call).
        for _ in range(2):
            self.backend.train_step(self.train_batch)
            self.backend.infer(self.test_batch)
        self.backend.synchronize()

    def teardown(self, backend: str, task: str, T: int) -> None:
        if getattr(self, "backend", None) is not None:
            self.backend.close()

    def time_train_step(self, backend: str, task: str, T: int) -> None:
        """Forward, backward and Adam step on one training batch already on the device."""
        self.backend.train_step(self.train_batch)

    def time_inference(self, backend: str, task: str, T: int) -> None:
        """One forward pass without gradients on one test batch already on the device."""
        self.backend.infer(self.test_batch)
        self.backend.synchronize()
