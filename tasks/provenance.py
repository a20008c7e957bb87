"""Which code produced a record: the git commit of the checkout, and a
fingerprint of the code itself; and the machine it ran on (tasks/machine.py).

The fingerprint hashes the Python source of ``tasks/`` and ``backends/`` (each
file's path and bytes), not the commit: a commit that changes only docs,
results or tests leaves it as it was, so one edition of published results can
span such commits, while any change to what runs splits it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from .machine import machine, this_machine

ROOT = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("tasks", "backends")


def code_fingerprint(root: Path = ROOT) -> str:
    """12 hex digits of the SHA-256 of every ``*.py`` under the code folders."""
    digest = hashlib.sha256()
    for folder in CODE_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def this_code() -> str:
    """This process's fingerprint (its source does not change under it)."""
    return code_fingerprint()


def project_commit(root: Path = ROOT) -> str | None:
    """The git commit of the spikebench checkout, when it is one (``-dirty``
    when tracked files outside ``results/`` have uncommitted changes: the suite
    writes its records into the checkout's own tracked ``results/``, which must
    not mark the code that writes them as changed)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
             "--", ".", ":(exclude)results"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict[str, Any]:
    """What a record carries of the code that wrote it and of the machine it ran on."""
    return {"spikebench_commit": project_commit(), "code_fingerprint": this_code(),
            "machine_fingerprint": this_machine(), "machine": machine()}


def edition_of(path: Path) -> tuple[str, str, dict]:
    """The code fingerprint, the machine fingerprint and the machine a record (or parity
    file) carries; "unrecorded" for one written before they did, "unreadable" for no record."""
    try:
        host = json.loads(path.read_text()).get("host", {})
        return (str(host.get("code_fingerprint") or "unrecorded"), str(host.get("machine_fingerprint") or "unrecorded"),
                host.get("machine") or {})
    except (OSError, ValueError, AttributeError):
        return "unreadable", "unreadable", {}
