"""Where the orchestrator's points run: ``--executor local`` (this machine) or
``--executor slurm`` (a cluster, :mod:`tasks.slurm`), one option for the suite
and the sweep.

Locally, one point at a time by default (every core for it); ``--jobs N`` runs
N points at once with the cores split between them, ``--gpus 0,1,2,3`` one
point on each GPU (``CUDA_VISIBLE_DEVICES``), the cores split the same way.
A timing point never shares its cores or its GPU: with ``--jobs`` it runs
alone, with every core; with ``--gpus`` it has a GPU and its own cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .child import RunningChild, start_child
from .errors import UsageError
from .orchestrate import ChildCommand, Executor, Run, crashed
from .profiles import ClusterResources

EXECUTORS = ("local", "slurm")
# the thread pools of PyTorch, NumPy's BLAS, numba and XLA follow these (and the CPU mask)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
POLL_S = 0.2


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the points run")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: this machine (default); slurm: one Slurm job per point, through submitit")
    g.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="local: run N training points at once, the cores split between them (timing points run alone)")
    g.add_argument("--gpus", metavar="LIST", help="local: one point on each of these GPUs at once, e.g. 0,1,2,3")
    s = p.add_argument_group("slurm (--executor slurm; also a profile's [P.cluster] table)")
    for name in ("partition", "account", "qos", "constraint"):
        s.add_argument(f"--{name}", help=f"sbatch --{name}")
    s.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. --sbatch mail-type=END (repeatable)")
    s.add_argument("--cancel", action="store_true", help="cancel this results folder's queued and running jobs")


def cpu_set() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def visible_gpus() -> list[str]:
    """The GPU indices of this machine, as ``nvidia-smi`` numbers them (none without it)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


@dataclass(frozen=True)
class Slot:
    """Where one local point runs: some cores, maybe one GPU."""

    cpus: tuple[int, ...]
    gpu: str | None = None

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        for name in THREAD_VARIABLES:
            env[name] = str(len(self.cpus))
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        return env


def split(cpus: list[int], n: int) -> list[tuple[int, ...]]:
    """``cpus`` in ``n`` contiguous, near-equal parts (each at least one core)."""
    if n > len(cpus):
        raise UsageError(f"{n} points at once need at least {n} cores; this machine gives {len(cpus)}")
    size, extra = divmod(len(cpus), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(tuple(cpus[start:end]))
        start = end
    return parts


class LocalExecutor:
    """Points as child processes of this one, in ``slots``; a timing point
    takes the whole machine unless slots have GPUs of their own."""

    name = "local"

    def __init__(self, slots: list[Slot] | None = None):
        self.slots = slots or []  # none: one point at a time, as the process itself is (no mask, no variables)

    @property
    def width(self) -> int:
        return max(1, len(self.slots))

    def _exclusive(self, command: ChildCommand) -> bool:
        return command.point.part == "timing" and not any(s.gpu for s in self.slots)

    def run(self, commands: list[ChildCommand], run: Run) -> None:
        waiting = list(commands)
        running: dict[int, tuple[ChildCommand, RunningChild, float, object]] = {}
        try:
            while waiting or running:
                free = [i for i in range(self.width) if i not in running]
                busy_alone = any(self._exclusive(c) for c, *_ in running.values())
                while waiting and free and not busy_alone:
                    command = waiting[0]
                    if self._exclusive(command) and running:
                        break  # it waits until the machine is its own
                    waiting.pop(0)
                    i = free.pop(0)
                    slot = None if self._exclusive(command) or not self.slots else self.slots[i]
                    running[i] = self._start(command, slot, run)
                    busy_alone = self._exclusive(command)
                ended = False
                for i, (command, child, t0, handle) in list(running.items()):
                    outcome = child.poll()
                    if outcome is None:
                        continue
                    handle.close()
                    del running[i]
                    ended = True
                    failure = None if outcome.wrote else crashed(outcome.returncode, command.log)
                    run.finished(command.point, failure, time.perf_counter() - t0)
                if not ended:
                    time.sleep(POLL_S)
        finally:  # interrupted: the children go too (a point cut short is redone next time)
            for command, child, _, handle in running.values():
                child.proc.terminate()
            for command, child, _, handle in running.values():
                child.proc.wait()
                handle.close()

    def _start(self, command: ChildCommand, slot: Slot | None, run: Run):
        handle = open(command.log, "w")
        handle.write(" ".join(command.argv) + "\n")
        handle.flush()
        env = None if slot is None else slot.env(dict(os.environ))
        where = "" if slot is None else (f"GPU {slot.gpu}, " if slot.gpu else "") + f"cores {_cores(slot.cpus)}"
        run.started(command.point, where or f"pid {os.getpid()}'s child")
        child = start_child(command.argv, command.path, stdout=handle, stderr=subprocess.STDOUT, env=env,
                            cpus=None if slot is None else slot.cpus)
        return command, child, time.perf_counter(), handle


def _cores(cpus: tuple[int, ...]) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 and cpus[-1] - cpus[0] == len(cpus) - 1 else \
        ",".join(map(str, cpus))


def local_slots(jobs: int, gpus: str | None) -> list[Slot]:
    """The slots of ``--jobs`` / ``--gpus`` (none: today's one point at a time)."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if gpus is None:
        return [] if jobs == 1 else [Slot(c) for c in split(cpu_set(), jobs)]
    if jobs != 1:
        raise UsageError("--jobs and --gpus are two ways of running points at once: give one")
    wanted = [g.strip() for g in gpus.split(",") if g.strip()]
    if not wanted or len(set(wanted)) != len(wanted):
        raise UsageError(f"--gpus must be a comma list of distinct GPU indices, got {gpus!r}")
    have = visible_gpus()
    missing = [g for g in wanted if g not in have]
    if missing:
        raise UsageError(f"--gpus: this machine has no GPU {', '.join(missing)} "
                         f"(it has {', '.join(have) if have else 'none nvidia-smi can see'})")
    return [Slot(c, g) for c, g in zip(split(cpu_set(), len(wanted)), wanted)]


def sbatch_options(args: argparse.Namespace, cluster: ClusterResources) -> dict[str, str]:
    """The profile's sbatch options, then the command line's over them."""
    options = dict(cluster.sbatch)
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(args, name):
            options[name] = getattr(args, name)
    for item in args.sbatch:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--sbatch takes KEY=VALUE (an sbatch option without its dashes), got {item!r}")
        options[key.strip().lstrip("-")] = value
    return options


def make_executor(args: argparse.Namespace, out: Path, cluster: ClusterResources) -> Executor:
    """The executor the command line asks for; bad options are one-line errors."""
    slurm_only = [f"--{n}" for n in ("partition", "account", "qos", "constraint", "sbatch") if getattr(args, n)]
    if args.executor == "local":
        if slurm_only or args.cancel:
            raise UsageError(f"{', '.join(slurm_only or ['--cancel'])} only apply to --executor slurm")
        return LocalExecutor(local_slots(args.jobs, args.gpus))
    if args.jobs != 1 or args.gpus:
        raise UsageError("--jobs and --gpus are for --executor local; Slurm places each job itself")
    from .slurm import SlurmExecutor

    return SlurmExecutor(out, cluster, sbatch_options(args, cluster))
