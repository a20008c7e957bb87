"""The one child-process protocol of the harness.

Every command that runs a backend elsewhere (``tasks.run`` with several
backends, ``tasks.sweep``, ``tasks.parity``, ``tasks.suite``) starts
``python -m MODULE ... --out FILE`` (``--json FILE`` for parity) and takes as
the child's result only a file the child wrote: a file already at the path
(an earlier run's) never counts, and a child that died before writing leaves
nothing, which the caller records or redoes as it must.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

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


def run_child(argv: Sequence[str], path: Path, stdout: IO | int | None = None,
              stderr: IO | int | None = None) -> ChildOutcome:
    """Run ``argv`` to completion; whether it wrote ``path``.  Temporary files
    of writes that a kill cut short (an earlier run's, or this child's if it
    died mid-write) are removed."""
    path = Path(path)
    remove_stale_temporaries(path)
    before = file_stamp(path)
    proc = subprocess.run(list(argv), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    remove_stale_temporaries(path)
    return ChildOutcome(proc.returncode, file_stamp(path) != before)
