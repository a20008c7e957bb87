"""The field's single-layer benchmark: one Linear(N, N) + LIF layer, forward and backward.

The yardstick of the open-neuromorphic SNN library comparison (batch 16,
T = 500), run here as the ``lif_layer`` task so that every backend computes
the same equations (``docs/tasks.md``), at the profile's widths N.  Each call
is one forward and one backward pass on a batch already on the device, ending
synchronised; no optimiser step.
"""

from __future__ import annotations

from contextlib import ExitStack

import math

from tasks.catalogue import unit_of

from .config import BACKENDS, LAYER_POINTS, layer_settings
from .opening import open_backend


class LayerSuite:
    params = (BACKENDS, sorted(LAYER_POINTS))
    param_names = ["backend", "N"]
    timeout = 600
    # setup already warmed up (and compiled); one round of 5 to 10 single calls
    # keeps a history run of the cpu profile within minutes per commit
    warmup_time = 0.0
    number = 1
    rounds = 1
    repeat = (5, 10, 20.0)

    def setup(self, backend: str, N: int) -> None:
        from tasks.data import make_data
        from tasks.runner import first_batch
        from tasks.specs import get_spec

        spec = get_spec("lif_layer", **layer_settings(backend, N))
        self._stack = ExitStack()
        self.backend = open_backend(backend, spec, self._stack)
        self.batch = self.backend.stage(first_batch(make_data(spec), "train"))
        # compile (JAX) and warm up outside the timed region; the peak covers these passes
        self.backend.reset_peak_memory()
        for _ in range(2):
            self.backend.forward_backward(self.batch)
        self.backend.synchronize()
        self.peak = self.backend.peak_memory_bytes()

    def teardown(self, backend: str, N: int) -> None:
        if getattr(self, "_stack", None) is not None:
            self._stack.close()

    def time_forward_backward(self, backend: str, N: int) -> None:
        """One forward and one backward pass of Linear(N, N) + LIF over T steps."""
        self.backend.forward_backward(self.batch)
        self.backend.synchronize()

    def track_peak_device_memory(self, backend: str, N: int) -> float:
        """Allocator peak of a forward + backward pass (n/a where there is no device allocator: the CPU)."""
        return math.nan if self.peak is None else float(self.peak)

    track_peak_device_memory.unit = unit_of("peak_device_memory_forward_backward")
