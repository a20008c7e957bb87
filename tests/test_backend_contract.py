"""Every registered backend keeps the Backend contract on every task it runs
(tests/backend_contract.py): a new backend gets these checks by registering."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import backends
from tests.conftest import ROOT, subprocess_env


@pytest.mark.parametrize("name", backends.names())
def test_the_backend_keeps_the_contract(name):
    ok, why = backends.availability(name)
    if not ok:
        pytest.skip(why)
    proc = subprocess.run([sys.executable, "-m", "tests.backend_contract", name], capture_output=True, text=True,
                          cwd=ROOT, env=subprocess_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    broken, unavailable = found["broken"], found["unavailable"]
    assert not {task: b for task, b in broken.items() if b}, broken
    if not broken:  # every task unavailable (a step that does not compile): says why, breaks nothing
        assert unavailable, f"{name} runs no task"
        pytest.skip(f"{name} is unavailable on every task: {unavailable}")
