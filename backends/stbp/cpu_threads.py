"""The CPU engine's threads: numba's thread pool is PyTorch's OpenMP pool where it can be, and its
size follows PyTorch's."""

from __future__ import annotations

import os

import numba
import torch  # before numba's OpenMP layer loads: see THREADING_LAYER_PRIORITY below

# numba's OpenMP layer first, unless the user chose a layer.  Loaded after
# PyTorch (imported above), its OpenMP calls bind to PyTorch's own libgomp:
# PyTorch puts it in the process's global symbol scope, which a library's
# lookups search first.  So the neuron kernels and PyTorch's operations
# (oneDNN's products) run on one pool of threads.  numba's own pool
# ("workqueue") beside PyTorch's cost 0.5-1.5 ms at every hand-over between
# the two on a quiet machine (docs/performance.md, "Threads"); where the
# OpenMP layer cannot load, numba falls back to the next in this list.
if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(n: int | None = None) -> int:
    """Numba's thread count: ``n``, or the cores available (at most what numba started with)."""
    n = cpu_count() if n is None else int(n)
    n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def torch_openmp_library() -> str | None:
    """The OpenMP runtime PyTorch loaded (the libgomp inside its wheel), if any."""
    folder = os.path.join(os.path.dirname(torch.__file__), "lib")
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith("libgomp") and ".so" in n)
    except OSError:
        return None
    return os.path.join(folder, names[0]) if names else None


def openmp_shared_with_torch() -> bool:
    """Whether an OpenMP call from numba's OpenMP layer lands in PyTorch's libgomp:
    the process's global symbol scope (searched first by every library's
    lookups) resolves ``GOMP_parallel`` to PyTorch's copy.  Then the two share
    one pool of threads."""
    import ctypes

    path = torch_openmp_library()
    if path is None:
        return False
    try:
        first = ctypes.cast(ctypes.CDLL(None).GOMP_parallel, ctypes.c_void_p).value
        torchs = ctypes.cast(ctypes.CDLL(path).GOMP_parallel, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return False
    return first == torchs


set_threads()
_threads_set = [0]


def sync_threads() -> int:
    """Numba's thread count follows PyTorch's (``torch.set_num_threads``, by default
    the cores available): one setting for the whole step."""
    n = torch.get_num_threads()
    if n != _threads_set[0]:
        _threads_set[0] = set_threads(n)
    return _threads_set[0]
