"""Errors that reach the user.

Anything derived from :class:`SpikebenchError` is a problem the user can fix
(bad argument, missing data, missing framework); the command line prints its
message as one line and exits with status 2, never with a traceback.
"""


class SpikebenchError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""

    exit_code = 2


class UsageError(SpikebenchError):
    """A bad command-line value or task override."""


class DataError(SpikebenchError):
    """A data set that cannot be found, downloaded or read."""


class BackendUnavailable(SpikebenchError):
    """The framework a backend needs is not installed (or fails to import)."""


class DeviceUnavailable(Exception):
    """The device asked for is not on this machine (``--device cuda`` without a
    GPU the framework can see): the backend is ``unavailable`` there."""


class Diverged(Exception):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"loss became {loss} at step {step}")
        self.step = step
        self.loss = loss


class DeviceOutOfMemory(Exception):
    """The device ran out of memory; recorded as status ``oom``."""
