"""Freed host memory kept for reuse: no page faults on a step's big tensors.

PyTorch's CPU allocator is the C library's ``malloc``, which gives every
block above its mmap threshold (at most 32 MiB by its own adaptation) back to
the kernel when freed.  A training step allocates the same large tensors
every time (lif_layer N = 2048: several of 64 MiB), so each step faults every
page of them in again and the kernel zeroes each one: on our 2-core CI VM
about a quarter of lif_layer's step (532 against 391 ms, median of 10).
:func:`keep_freed_memory` raises the threshold to 1 GiB and the trim
threshold to 2 GiB, so freed blocks stay in the heap for the next step -- the
host-side counterpart of a GPU framework's caching allocator.

It is a process-wide ``mallopt``: ``stbp:fused`` calls it when it is built for
the CPU, and the harness runs each measured point in a process of its own.
The host memory measure (``tasks.hostmem``) runs in yet another process,
whose thresholds are held from its start: there this policy is refused
(:func:`keep_freed_memory` returns False), so the memory a step needs is
measured as for every backend.
"""

from __future__ import annotations

from tasks import malloc

MMAP_THRESHOLD_BYTES = 2**30
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int

_kept = False


def keep_freed_memory() -> bool:
    """Keep freed blocks below 1 GiB for reuse (glibc); False where it cannot (not glibc)."""
    global _kept
    if not _kept:
        _kept = malloc.set_thresholds(MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES)
    return _kept


def policy() -> str:
    """What the device info records."""
    if _kept:
        return "glibc malloc keeping freed blocks below 1 GiB (mmap threshold 1 GiB, trim threshold 2 GiB)"
    return "glibc malloc defaults"
