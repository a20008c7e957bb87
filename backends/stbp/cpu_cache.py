"""numba's disk cache for the CPU engine's kernels, keyed on the source of every module they compile in.

numba's own cache (``cache=True``) stamps a function's compiled code with a hash of
the file that defines it.  A kernel's machine code also holds the helpers it
inlines or calls from other modules (every node runs :mod:`backends.stbp.cpu_neuron`'s
arithmetic), so a change to a helper alone would leave every kernel built on it
loading its old code from disk.  Here the stamp is a hash of the source of the
function's own module and of every module whose numba functions it can reach
through module globals (transitively), and of this module, which sets the
compile options (numba's index tells code apart by signature and bytecode, not
by options): change a helper, and every kernel that reaches it compiles again
on its next use; change nothing, and they load.  What is followed is numba
functions, not plain values: a constant a kernel reads from another module is
frozen into its code unseen, so constants live beside the helpers that read them.

The files lie where numba would put them (``NUMBA_CACHE_DIR`` when set, else
``__pycache__`` beside the source, else numba's per-user folder); a stale index
(its stamp differs) is replaced on the next save.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types

from numba import njit
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
    UserWideCacheLocator,
)
from numba.core.dispatcher import Dispatcher


def reached_modules(module_name: str) -> list[str]:
    """``module_name`` and every module whose numba functions it reaches through module globals,
    sorted: what the machine code of a kernel defined there can hold."""
    seen, todo = set(), [module_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [value.py_func.__module__ for value in vars(sys.modules[name]).values()
                 if isinstance(value, Dispatcher)]
    return sorted(seen)


def source_key(module_name: str) -> str:
    """SHA-256 of the names and sources of :func:`reached_modules` and of this module (read
    now: a module compiles its kernels after importing every module they reach)."""
    digest = hashlib.sha256()
    for name in reached_modules(module_name) + [__name__]:
        with open(inspect.getfile(sys.modules[name]), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


class _SourceKeyed:
    """A numba cache locator whose stamp is :func:`source_key` instead of the one file's hash."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._source_key = source_key(py_func.__module__)

    def get_source_stamp(self):
        return self._source_key


class _KeyedUserProvided(_SourceKeyed, UserProvidedCacheLocator):
    pass


class _KeyedInTree(_SourceKeyed, InTreeCacheLocator):
    pass


class _KeyedUserWide(_SourceKeyed, UserWideCacheLocator):
    pass


class _KeyedCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_KeyedUserProvided, _KeyedInTree, _KeyedUserWide]  # numba's own order


class _KeyedFunctionCache(FunctionCache):
    _impl_class = _KeyedCacheImpl


def cached_njit(fn, **options):
    """``njit(**options)(fn)`` with its compiled code cached on disk under :func:`source_key`."""
    dispatcher = njit(**options)(fn)
    # what ``cache=True`` does (Dispatcher.enable_caching), with the keyed cache
    dispatcher._cache = _KeyedFunctionCache(dispatcher.py_func)
    return dispatcher


def helper(fn):
    """A numba function inlined into the kernels that call it."""
    return cached_njit(fn, nogil=True, error_model="numpy", inline="always")


def reassociating(fn):
    """A numba function whose sums may run in any order (so that LLVM vectorises them)."""
    return cached_njit(fn, nogil=True, error_model="numpy", fastmath={"reassoc"})


def plain(fn):
    """A numba function compiled on its own (called from Python, or from kernels)."""
    return cached_njit(fn, nogil=True, error_model="numpy")


def variants(fn):
    """``(threaded, one-thread)`` compilations of kernel ``fn``.  Each is a copy of ``fn``
    under its own name: numba's disk cache tells functions apart by name and
    bytecode, not by compile options, so two variants of one function would
    load each other's code."""
    return tuple(_variant(fn, parallel) for parallel in (True, False))


def one_thread(fn):
    """Kernel ``fn`` compiled for one thread only."""
    return _variant(fn, False)


def _variant(fn, parallel: bool):
    name = f"{fn.__name__}_{'parallel' if parallel else 'serial'}"
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = fn.__doc__
    return cached_njit(copy, parallel=parallel, nogil=True, error_model="numpy")
