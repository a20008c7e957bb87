"""Opening a backend for a benchmark: unavailable is a skip, a failure is a failure.

asv shows ``NotImplementedError`` from ``setup`` as "n/a" and any other
exception as a failed benchmark.  So a backend whose framework is missing, or
that does not run this task, device or precision, raises the former; one that
breaks while being built (an error, running out of memory) raises its own
exception and fails visibly, never a quiet n/a.
"""

from __future__ import annotations

from tasks.errors import BackendUnavailable

from .config import DEVICE, PRECISION


def open_backend(name: str, spec):
    import backends as registry
    from tasks.weights import initial_weights

    try:
        cls = registry.load(name)  # the framework is imported here, never at module top
    except BackendUnavailable as exc:
        raise NotImplementedError(str(exc)) from None
    caps = cls.capabilities()
    if spec.name not in caps.tasks or DEVICE not in caps.devices or PRECISION not in caps.precisions:
        raise NotImplementedError(f"{name} does not run {spec.name} on {DEVICE} at {PRECISION}")
    return cls(spec, initial_weights(spec), device=DEVICE, precision=PRECISION)
