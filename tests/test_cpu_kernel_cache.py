"""The CPU engine's numba disk cache (backends/stbp/cpu_cache.py) follows the source of the helpers
its kernels compile in: a changed helper recompiles the kernels built on it, an unchanged source loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

ENGINE = Path(__file__).resolve().parents[1] / "backends" / "stbp"

# one kernel of the neuron node on a static input, in a process of its own (so that what it
# runs comes from the disk cache or a compile, never from memory): prints the kernel's cache
# hits and misses, then the membranes
RUN_KERNEL = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from engine import cpu_neuron, cpu_neuron_node

kernel = cpu_neuron_node._forward_serial
T, M = 3, 8
x = np.linspace(-1.0, 2.0, M)
s, m = np.empty(T * M), np.empty(T * M)
q = cpu_neuron.constants("soft", (0.5, 1.0), np.float64, backward=False)
kernel(cpu_neuron.SOFT, x, 0, s, np.empty(0, np.uint8), m, T, M, q, True, False, M)
print(sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()))
print(" ".join(map(float.hex, m.tolist())))
"""

# the soft neuron's input term in _step (cpu_neuron.py), and the same with the input counted twice
SOFT_INPUT = "v = p0 * (state[j] - p1 * spk[j]) + c * xt[j]"
SOFT_INPUT_TWICE = "v = p0 * (state[j] - p1 * spk[j]) + (c + c) * xt[j]"


def _run(root: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    proc = subprocess.run([sys.executable, "-c", RUN_KERNEL, str(root)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts, membranes = proc.stdout.split("\n")[:2]
    hits, misses = map(int, counts.split())
    return hits, misses, [float.fromhex(v) for v in membranes.split()]


def test_a_changed_helper_recompiles_the_kernels_built_on_it_and_an_unchanged_source_loads(tmp_path):
    engine = tmp_path / "engine"  # a copy of the modules the kernel reaches, with a cache of its own
    engine.mkdir()
    (engine / "__init__.py").write_text("")
    for name in ("cpu_cache.py", "cpu_neuron.py", "cpu_neuron_node.py"):
        shutil.copy(ENGINE / name, engine / name)
    index_files = lambda: sorted((engine / "__pycache__").glob("cpu_neuron_node._forward_serial-*.nbi"))  # noqa: E731

    hits, misses, first = _run(tmp_path)
    assert (hits, misses) == (0, 1)
    [index] = index_files()
    stamped = index.read_bytes()

    hits, misses, again = _run(tmp_path)  # nothing changed: loaded, the index left as it was
    assert (hits, misses) == (1, 0) and again == first
    assert index_files() == [index] and index.read_bytes() == stamped

    helper = engine / "cpu_neuron.py"  # only the helper's module changes, not the kernel's
    source = helper.read_text()
    assert source.count(SOFT_INPUT) == 1
    helper.write_text(source.replace(SOFT_INPUT, SOFT_INPUT_TWICE))
    hits, misses, changed = _run(tmp_path)
    assert (hits, misses) == (0, 1)
    M = 8  # the first step's membranes are the input term alone (the state starts at 0): now doubled, exactly
    assert changed[:M] == [2 * v for v in first[:M]] and any(first[:M])
    assert index_files() == [index] and index.read_bytes() != stamped  # the stale index replaced


def test_every_kernel_module_is_keyed_on_the_neuron_arithmetic_it_compiles_in():
    pytest.importorskip("torch")
    import importlib

    from backends.stbp.cpu_cache import reached_modules

    for name in ("cpu_neuron_node", "cpu_neuron_linear_node", "cpu_tdbn_node"):
        importlib.import_module(f"backends.stbp.{name}")
        assert reached_modules(f"backends.stbp.{name}") == sorted(["backends.stbp.cpu_neuron", f"backends.stbp.{name}"])
    importlib.import_module("backends.stbp.cpu_synaptic_node")
    assert reached_modules("backends.stbp.cpu_synaptic_node") == ["backends.stbp.cpu_spike_linear",
                                                                 "backends.stbp.cpu_synaptic_node"]
