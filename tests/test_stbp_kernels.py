"""backends/stbp/kernels.py: the Triton kernels, run by Triton's interpreter on the CPU."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")


def test_triton_kernels_under_the_interpreter():
    """tests/kernels_interpreted.py, in a fresh process: Triton reads
    TRITON_INTERPRET when it is first imported, which here has happened already."""
    pytest.importorskip("triton")
    here = os.path.dirname(__file__)
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(here, "kernels_interpreted.py")],
                          cwd=os.path.dirname(here), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout
