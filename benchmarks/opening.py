"""Opening a backend for a benchmark: unavailable is a skip, a failure is a failure.

asv shows ``NotImplementedError`` from ``setup`` as "n/a" and any other
exception as a failed benchmark.  So a backend whose framework is missing, or
that does not run this task, device or precision, raises the former; one that
breaks while being built (an error, running out of memory) raises its own
exception and fails visibly, never a quiet n/a.  The backend is opened the one
way every command opens it (``tasks.runner.open_backend``) and closed in the
suite's ``teardown``.
"""

from __future__ import annotations

from contextlib import ExitStack

from tasks.errors import BackendUnavailable

from .config import DEVICE, PRECISION


def open_backend(name: str, spec, stack: ExitStack):
    """The backend ``name`` built for ``spec``, closed when ``stack`` closes."""
    from tasks import runner

    try:
        cls = runner.load_backend(name)  # the framework is imported here, never at module top
        return stack.enter_context(runner.open_backend(cls, spec, device=DEVICE, precision=PRECISION))
    except BackendUnavailable as exc:
        raise NotImplementedError(str(exc)) from None
