"""The one child-process protocol of the harness.

Every command that runs a backend elsewhere (``tasks.run`` with several
backends, ``tasks.sweep``, ``tasks.parity``, ``tasks.suite``) starts
``python -m MODULE ... --out FILE`` (``--json FILE`` for parity) and takes as
the child's result only a file the child wrote: a file already at the path
(an earlier run's) never counts, and a child that died before writing leaves
nothing, which the caller records or redoes as it must.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Mapping, Sequence

from .result import remove_stale_temporaries


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, or None: whether a child wrote it since."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class ChildOutcome:
    returncode: int
    wrote: bool  # the child wrote its file (else whatever is at the path is older)


class RunningChild:
    """A child started by :func:`start_child`; :meth:`poll` says when it ended and whether it wrote."""

    def __init__(self, proc: subprocess.Popen, path: Path, before: tuple[int, int] | None):
        self.proc, self.path, self.before = proc, path, before

    def outcome(self) -> ChildOutcome:
        remove_stale_temporaries(self.path)
        return ChildOutcome(self.proc.returncode, file_stamp(self.path) != self.before)

    def poll(self) -> ChildOutcome | None:
        return None if self.proc.poll() is None else self.outcome()

    def wait(self) -> ChildOutcome:
        self.proc.wait()
        return self.outcome()


def start_child(argv: Sequence[str], path: Path, stdout: IO | int | None = None, stderr: IO | int | None = None,
                env: Mapping[str, str] | None = None, cpus: Iterable[int] | None = None) -> RunningChild:
    """Start ``argv`` (on ``cpus`` only, when given); the caller polls or waits.
    Temporary files of writes that a kill cut short (an earlier run's, or this
    child's if it dies mid-write) are removed before and after."""
    path = Path(path)
    remove_stale_temporaries(path)
    before = file_stamp(path)
    pin = None if cpus is None else (lambda cores=tuple(cpus): os.sched_setaffinity(0, cores))
    proc = subprocess.Popen(list(argv), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                            env=None if env is None else dict(env), preexec_fn=pin)
    return RunningChild(proc, path, before)


def run_child(argv: Sequence[str], path: Path, stdout: IO | int | None = None,
              stderr: IO | int | None = None) -> ChildOutcome:
    """Run ``argv`` to completion; whether it wrote ``path``."""
    return start_child(argv, path, stdout=stdout, stderr=stderr).wait()
