"""The host (CPU) memory a step needs, measured the same way for every framework.

On the CPU there is no device allocator to ask, and each framework allocates
through its own layers (PyTorch's CPU allocator, XLA's buffers), all of which
end in the C library's ``malloc``.  So the figure is taken from the kernel, in
a process of its own (``python -m tasks.hostmem``, which ``tasks.measure``
starts for every CPU point that asks for memory):

1. before anything else, ``malloc`` is told to hand every block of 64 KiB or
   more back to the kernel as soon as it is freed (a fixed mmap threshold,
   which also turns off glibc's adaptive threshold), for the whole process:
   a backend's own allocation policy (``stbp:fused`` keeps freed blocks) is
   refused there;
2. the backend is built and each call warmed up; memory already freed is
   trimmed;
3. the kernel's peak resident set (``VmHWM``) is reset (``/proc/self/clear_refs``);
4. the call runs a few times;
5. the figure is the new peak minus the resident set just before the calls.

Why a process of its own: in the process that took the timings, the heap is
full of blocks freed by earlier steps (glibc's adaptive threshold, or a
backend's policy, kept them).  Trimming gives their pages back but leaves
the blocks in malloc's free lists, so the measured steps reuse them, touch
their pages again and, once freed, leave them resident: the peak then
counted freed memory too, by an amount that depended on the heap's history
(dsrn_tdbn at T = 2: 72 to 95 MiB in repeated runs, against 49.0-49.1 MiB
from a fresh process, which is what the step's live tensors add up to).

Linux only; elsewhere, and where the kernel refuses the reset, the figure is
``None`` with the reason.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from . import malloc
from .catalogue import HOST_MEMORY_METHOD, HOST_MEMORY_STEPS

MMAP_THRESHOLD_BYTES = 64 * 1024
STEPS = HOST_MEMORY_STEPS


def _status_kib(field: str) -> int | None:
    try:
        text = open("/proc/self/status").read()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def hold_thresholds() -> bool:
    """The measuring process's malloc setting, fixed for its whole life (step 1 above)."""
    return malloc.hold_thresholds(MMAP_THRESHOLD_BYTES, 0)


def release_freed_memory() -> bool:
    """Make ``malloc`` return freed memory to the kernel (now and from now on)."""
    ok = malloc.held() or malloc.set_thresholds(MMAP_THRESHOLD_BYTES, 0)
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


# ------------------------------------------------------------------ the measuring process
def measure_in_fresh_process(spec, config, warmup: int) -> dict[str, tuple[int | None, str]]:
    """``{call: (bytes, note)}`` for the calls of :func:`tasks.runner.step_calls`, each
    measured by :func:`step_memory` in a new ``python -m tasks.hostmem`` process; the note
    says how it was measured, or why it was not."""
    from .child import run_child
    from .result import Result

    with tempfile.TemporaryDirectory(prefix="spikebench-hostmem-") as folder:
        request, out = Path(folder) / "request.json", Path(folder) / "memory.json"
        request.write_text(json.dumps({"task": spec.to_dict(), "run": asdict(config), "warmup": warmup}))
        outcome = run_child([sys.executable, "-m", "tasks.hostmem", str(request), "--out", str(out)], out,
                            stdout=sys.stderr)
        if not outcome.wrote:
            why = f"not measured: the measuring process wrote nothing (exit status {outcome.returncode})"
            return {key: (None, why) for key in CALLS}
        r = Result.load(out)
    if r.status != "ok":
        why = f"not measured: the measuring process ended {r.status}: {r.message}"
        return {key: (None, why) for key in CALLS}
    measured = {}
    for key in CALLS:
        metric = r.metrics.get(f"{key}_host_memory")
        if metric is not None:
            measured[key] = (metric.value, metric.description)
    return measured


CALLS = ("inference", "forward_backward", "train_step")


def _measure_here(spec, warmup: int, backend, data, result) -> None:
    from .runner import step_calls, warm_up

    for call in step_calls(spec, backend, data):
        warm_up(call.run, backend.synchronize, warmup)
        value, why = step_memory(call.run, backend.synchronize)
        result.set_metric(f"{call.key}_host_memory", value, why or HOST_MEMORY_METHOD)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tasks.hostmem REQUEST --out FILE``: the measuring process of
    :func:`measure_in_fresh_process` (its thresholds are held before anything is allocated)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 3 or argv[1] != "--out":
        sys.stderr.write("usage: python -m tasks.hostmem REQUEST --out FILE\n")
        return 2
    from .runner import RunConfig, execute
    from .specs import spec_from_dict

    request = json.loads(Path(argv[0]).read_text())
    spec, config = spec_from_dict(request["task"]), RunConfig(**request["run"])
    result = execute(spec, config, lambda backend, data, r: _measure_here(spec, request["warmup"], backend, data, r),
                     kind="measurement")
    result.save(argv[2])
    return 0


if __name__ == "__main__":
    hold_thresholds()  # before the backend (or anything big) is allocated
    raise SystemExit(main())
