"""Timed benchmarks: one training step and one inference pass, batch on the device.

asv times the calls itself (repeats, warm-up, statistics); each call ends
synchronised: ``train_step`` returns the loss as a Python float, and
``time_inference`` waits for the device explicitly.  The points are the
profile's timing rows (``benchmarks/config.py``).
"""

from __future__ import annotations

from contextlib import ExitStack

from .config import BACKENDS, STEP_TASKS, STEP_TS, step_settings
from .opening import open_backend


class StepSuite:
    params = (BACKENDS, STEP_TASKS, STEP_TS)
    param_names = ["backend", "task", "T"]
    timeout = 600
    # setup already warmed up (and compiled); one round of 5 to 10 single calls
    # keeps a history run of the cpu profile within minutes per commit
    warmup_time = 0.0
    number = 1
    rounds = 1
    repeat = (5, 10, 20.0)

    def setup(self, backend: str, task: str, T: int) -> None:
        from tasks.data import make_data
        from tasks.runner import first_batch
        from tasks.specs import get_spec

        spec = get_spec(task, **step_settings(backend, task, T))
        self._stack = ExitStack()
        self.backend = open_backend(backend, spec, self._stack)  # unavailable: skipped; a failure fails
        data = make_data(spec, allow_download=False)
        self.train_batch = self.backend.stage(first_batch(data, "train"))
        self.test_batch = self.backend.stage(first_batch(data, "test"))
        # Compile and warm up outside the timed region (JAX compiles on the first call).
        for _ in range(2):
            self.backend.train_step(self.train_batch)
            self.backend.infer(self.test_batch)
        self.backend.synchronize()

    def teardown(self, backend: str, task: str, T: int) -> None:
        if getattr(self, "_stack", None) is not None:
            self._stack.close()

    def time_train_step(self, backend: str, task: str, T: int) -> None:
        """Forward, backward and Adam step on one training batch already on the device."""
        self.backend.train_step(self.train_batch)

    def time_inference(self, backend: str, task: str, T: int) -> None:
        """One forward pass without gradients on one test batch already on the device."""
        self.backend.infer(self.test_batch)
        self.backend.synchronize()
