"""backends/stbp/allocator.py: the host allocator's policy, and the host memory measure that refuses
it."""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from tests.conftest import ROOT  # noqa: E402


def test_the_host_memory_measure_refuses_stbp_fused_allocator_policy():
    """In the measuring process (its malloc thresholds held from the start), stbp:fused's
    keeping of freed blocks is refused: a block freed inside a step goes back to the
    kernel and is not counted once more by the next allocation."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    code = (
        "import numpy as np\n"
        "from tasks import hostmem\n"
        "if HELD: assert hostmem.hold_thresholds()\n"
        "from backends.stbp import allocator\n"
        "assert allocator.keep_freed_memory() is not HELD\n"
        "print(allocator.policy())\n"
        "def step():\n"
        "    a = np.ones(2**24)  # 128 MiB, freed before the next one\n"
        "    del a\n"
        "    return np.ones(2**23).sum()  # 64 MiB\n"
        "step()\n"
        "value, why = hostmem.step_memory(step, lambda: None)\n"
        "print(value)\n"
    )
    seen = {}
    for held in (False, True):
        out = subprocess.run([sys.executable, "-c", f"HELD = {held}\n" + code], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stderr
        policy, value = out.stdout.split("\n")[-3:-1]
        seen[held] = int(value)
        assert ("defaults" in policy) is held
    assert 120 * 2**20 <= seen[True] < 140 * 2**20  # the 128 MiB block, then 64 MiB once it is gone
