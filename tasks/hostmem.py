"""The host (CPU) memory a step needs, measured the same way for every framework.

On the CPU there is no device allocator to ask, and each framework allocates
through its own layers (PyTorch's CPU allocator, XLA's buffers), all of which
end in the C library's ``malloc``.  So the figure is taken from the kernel:

1. ``malloc`` is told to hand every block of 64 KiB or more back to the
   kernel as soon as it is freed (a fixed mmap threshold, which also turns off
   glibc's adaptive threshold), and memory already freed is trimmed, so that
   what is resident afterwards is what is still in use;
2. the kernel's peak resident set (``VmHWM``) is reset (``/proc/self/clear_refs``);
3. the step runs a few times;
4. the figure is the new peak minus the resident set just before the steps.

This is done after the timings (a fixed mmap threshold makes allocation
slower), in a process of its own per point.  Linux only; elsewhere, and where
the kernel refuses the reset, the figure is ``None`` with the reason.
"""

from __future__ import annotations

import re
from typing import Callable

from . import malloc

MMAP_THRESHOLD_BYTES = 64 * 1024
STEPS = 3

DESCRIPTION = ("host memory the step needs: peak resident memory over {steps} calls minus the resident memory "
               "just before them (kernel VmHWM reset; malloc returning freed blocks of 64 KiB or more at once)")


def _status_kib(field: str) -> int | None:
    try:
        text = open("/proc/self/status").read()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def release_freed_memory() -> bool:
    """Make ``malloc`` return freed memory to the kernel (now and from now on)."""
    ok = malloc.set_thresholds(MMAP_THRESHOLD_BYTES, 0)
    malloc.trim()
    return ok


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def step_memory(call: Callable[[], object], synchronize: Callable[[], None], steps: int = STEPS) -> tuple[int | None, str]:
    """(bytes, why-not) of the host memory ``call`` needs beyond what is resident before it."""
    if not release_freed_memory():
        return None, "not measured: needs Linux with glibc (mallopt)"
    synchronize()
    before = _status_kib("VmRSS")
    if before is None or not _reset_peak():
        return None, "not measured: the kernel does not allow resetting the peak resident set"
    for _ in range(steps):
        call()
        synchronize()
    peak = _status_kib("VmHWM")
    if peak is None:
        return None, "not measured: no VmHWM in /proc/self/status"
    return max(0, peak - before) * 1024, ""
