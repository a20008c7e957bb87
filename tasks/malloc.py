"""The C library's ``malloc`` settings, where both a backend and the harness change them.

``stbp:fused`` keeps freed blocks for its next step (``backends/stbp/allocator.py``)
and the host memory measure makes ``malloc`` return them at once
(``tasks.hostmem``): two policies, one way of reaching ``mallopt``.  No
framework is imported here, so every layer may use it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@functools.cache  # loaded once: set_thresholds and trim both use it
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_held = [False]  # thresholds fixed for the whole process (hold_thresholds)


def set_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """Blocks of ``mmap_bytes`` or more go back to the kernel when freed, and the
    heap is trimmed when ``trim_bytes`` are free at its top; False where
    ``mallopt`` is missing (not glibc) or refuses, and in a process whose
    thresholds are held (:func:`hold_thresholds`)."""
    if _held[0]:
        return False
    return _mallopt(mmap_bytes, trim_bytes)


def hold_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """Set the thresholds for the rest of the process: later :func:`set_thresholds`
    calls (a backend's own policy) are refused.  False where it cannot."""
    _held[0] = _mallopt(mmap_bytes, trim_bytes)
    return _held[0]


def held() -> bool:
    return _held[0]


def _mallopt(mmap_bytes: int, trim_bytes: int) -> bool:
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_bytes))


def trim() -> None:
    """Give the memory already freed back to the kernel, where the C library can."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
