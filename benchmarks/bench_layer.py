"""The field's single-layer benchmark: one Linear(N, N) + LIF layer, forward and backward.

The yardstick of the open-neuromorphic SNN library comparison (batch 16,
T = 500, N in {512, 4096, 16384}), run here as the ``lif_layer`` task so that
every backend computes the same equations (``docs/tasks.md``).  Each call is
one forward and one backward pass on a batch already on the device, ending
synchronised; no optimiser step.
"""

from __future__ import annotations

import math

import backends as registry
from tasks.data import make_data
from tasks.measure import first_batch
from tasks.specs import get_spec
from tasks.weights import initial_weights

from .config import BACKENDS, CONFIG


class LayerSuite:
    params = (BACKENDS, list(CONFIG.layer_neurons))
    param_names = ["backend", "N"]
    timeout = 600
    warmup_time = 0.5

    def setup(self, backend: str, N: int) -> None:
        ok, why = registry.availability(backend)
        if not ok:
            raise NotImplementedError(why)
        spec = get_spec("lif_layer", neurons=N, **CONFIG.layer_overrides)
        cls = registry.load(backend)  # the framework is imported here, never at module top
        caps = cls.capabilities()
        if spec.name not in caps.tasks or CONFIG.device not in caps.devices:
            raise NotImplementedError(f"{backend} does not run {spec.name} on {CONFIG.device}")
        self.backend = cls(spec, initial_weights(spec), device=CONFIG.device, precision=CONFIG.precision)
        self.batch = self.backend.stage(first_batch(make_data(spec), "train"))
        # compile (JAX) and warm up outside the timed region; the peak covers these passes
        self.backend.reset_peak_memory()
        for _ in range(2):
            self.backend.forward_backward(self.batch)
        self.backend.synchronize()
        self.peak = self.backend.peak_memory_bytes()

    def teardown(self, backend: str, N: int) -> None:
        if getattr(self, "backend", None) is not None:
            self.backend.close()

    def time_forward_backward(self, backend: str, N: int) -> None:
        """One forward and one backward pass of Linear(N, N) + LIF over T steps."""
        self.backend.forward_backward(self.batch)
        self.backend.synchronize()

    def track_peak_device_memory(self, backend: str, N: int) -> float:
        """Allocator peak of a forward + backward pass (n/a on the CPU)."""
        return math.nan if self.peak is None else float(self.peak)

    track_peak_device_memory.unit = "bytes"
