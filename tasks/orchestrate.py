"""The one orchestrator of ``tasks.suite`` and ``tasks.sweep``: points in, one
record per point out.

A :class:`~tasks.profiles.Point` is run by its own process (``python -m
tasks.run``, ``tasks.measure`` or ``tasks.parity``) that writes one file under
the results folder, named by the point's key.  Here live the rules every
front end and every executor share:

- **done** (:func:`is_done`): the file holds a finished record of the point's
  settings: ``ok``, ``oom`` or ``diverged``, or ``unavailable`` because the
  backend's capabilities leave the point out; a measurement point's ``ok``
  record holds every measure it asked for; a parity file has a row for each of
  its tasks and none in ``error``.  Anything else is run again.
- **the child's command** (:func:`child_command`): the same argv whichever
  executor runs it, locally or as a Slurm job.
- **one suite per folder** (:class:`FolderLock`): a second suite on the same
  results folder is refused with one line while the first runs.
- **one progress display** (:class:`Progress`): queued / running / done /
  failed, with the estimate of what remains.

Executors (``tasks/executors.py``, ``tasks/slurm.py``) only decide where and
when a child runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from backends.base import Capabilities

from .errors import SpikebenchError, UsageError
from .profiles import Point
from .progress import progress_bar
from .result import Result, write_atomic

DONE_STATUSES = ("ok", "oom", "diverged")
# a point that ended, recorded or not, that the summary does not call a failure
SETTLED_STATUSES = DONE_STATUSES + ("unavailable", "fail")


def is_done(point: Point, path: Path) -> bool:
    """Whether ``path`` holds the finished record of ``point``."""
    if not path.is_file():
        return False
    try:
        if point.part == "parity":
            rows = json.loads(path.read_text())["rows"]
            tasks = set(_argument(point.args, "--task").split(","))
            return (bool(rows) and tasks <= {r.get("task") for r in rows}
                    and all(r.get("backend") == point.backend and r.get("status") not in ("error", None) for r in rows))
        r = Result.load(path)
    except Exception:  # unreadable: redone
        return False
    run = r.config.get("run", {})
    if (r.backend != point.backend or r.config.get("task") != point.expected_task
            or run.get("precision") != point.precision or run.get("device") != point.device):
        return False
    if r.status == "unavailable":
        return refused_by_capabilities(r, point)
    if r.status not in DONE_STATUSES:
        return False
    if point.measures and r.status == "ok":
        return all(m in r.extra.get("measures", []) and MEASURED[m](r) for m in point.measures)
    return True


# what an ``ok`` measurement record holds for each measure it claims
MEASURED: dict[str, Callable[[Result], bool]] = {
    "throughput": lambda r: bool(r.timings) and any(k.endswith("_time") and m.value for k, m in r.metrics.items()),
    "memory": lambda r: any(k.endswith("memory") and m.value is not None for k, m in r.metrics.items()),
    "epoch": lambda r: r.metric("epoch_time") is not None,
    "activity": lambda r: r.metric("firing_rate_mean") is not None,
}


def _argument(args: tuple[str, ...], flag: str) -> str:
    return args[args.index(flag) + 1] if flag in args[:-1] else ""


def refused_by_capabilities(r: Result, point: Point) -> bool:
    """Whether an ``unavailable`` record says the backend declares it cannot run
    the point (its capabilities leave out the task, device or precision): an
    answer running it again would repeat.  A framework that is missing or did
    not import records no capabilities, and is tried again."""
    if not r.capabilities:
        return False
    try:
        caps = Capabilities(**r.capabilities)
    except TypeError:  # a record of another layout: tried again
        return False
    return caps.refusal(r.task, point.device, point.precision) is not None


def point_status(point: Point, path: Path) -> str:
    """What the point's file says now (for the summary)."""
    try:
        if point.part == "parity":
            rows = json.loads(path.read_text())["rows"]
            states = {r.get("status") for r in rows}
            return "error" if "error" in states else "fail" if "fail" in states else "ok"
        return Result.load(path).status
    except Exception:
        return "missing"


@dataclass(frozen=True)
class ChildCommand:
    """How one point runs: its argv, the file it must write and its log."""

    point: Point
    argv: tuple[str, ...]
    path: Path
    log: Path


def child_command(point: Point, out: Path, data_dir: str | None, python: str = sys.executable) -> ChildCommand:
    path = out / point.key
    log = out / "logs" / (point.key.replace("/", "__").removesuffix(".json") + ".log")
    argv = [python, "-m", point.module, *point.args]
    argv += ["--json", str(path)] if point.part == "parity" else ["--out", str(path)]
    if data_dir and point.part != "parity" and "--data-dir" not in point.args:
        argv += ["--data-dir", data_dir]
    return ChildCommand(point, tuple(argv), path, log)


def crashed(returncode: int, log: Path) -> str:
    return f"crashed (exit status {returncode}; see {log})"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


# ------------------------------------------------------------------ one suite per folder
class FolderLock:
    """An exclusive lock on a results folder (``<out>/.lock``, flock: released
    by the kernel when its holder dies, SIGKILL included), so that two suites
    never run the same points; the holder's pid and host are written in it and
    its running points in ``<out>/.running``."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / ".lock"
        self.state = out / ".running"  # JSON; not *.json: not a record
        self.handle = None

    def acquire(self, what: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(f"another suite is running on {self.out} ({holder}); wait for it, or see its points "
                             "with --list") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, {what}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        self.handle = handle

    def held_by_another(self) -> bool:
        """Whether some other live process holds the lock now (for ``--list``)."""
        if not self.path.exists():
            return False
        with open(self.path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    def write_running(self, running: dict[str, str]) -> None:
        write_atomic(self.state, json.dumps(running, indent=1) + "\n")

    def running(self) -> dict[str, str]:
        """The running points of the suite that holds the lock (key -> where)."""
        if not self.held_by_another():
            return {}
        try:
            return dict(json.loads(self.state.read_text()))
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.handle is not None:
            try:
                self.state.unlink()
            except OSError:
                pass
            self.handle.close()
            self.handle = None


# ------------------------------------------------------------------ progress
class Progress:
    """One display over every executor: how many points are queued, running,
    done and failed, and the time left (the estimate of what remains, scaled by
    how fast this machine or cluster has gone so far).  A tqdm bar weighted by
    each point's estimate on a terminal; a line per event otherwise."""

    def __init__(self, todo: list[Point], enabled: bool, write: Callable[[str], None] | None = None):
        self.total = sum(p.estimate_s for p in todo)
        self.count = len(todo)
        self.queued: set[str] = set()
        self.running: dict[str, str] = {}  # key -> where
        self.done = self.failed = 0
        self.done_estimate = 0.0
        self.started = time.perf_counter()
        self.write = write or (lambda text: (sys.stderr.write(text + "\n"), sys.stderr.flush()))
        self.bar = progress_bar(enabled and sys.stderr.isatty(), total=round(self.total), unit="est-s",
                                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} est. s [{elapsed}<{remaining}]")

    def counts(self) -> str:
        return (f"{len(self.queued)} queued, {len(self.running)} running, {self.done} done, {self.failed} failed"
                f" of {self.count}")

    def left_s(self) -> float:
        elapsed = time.perf_counter() - self.started
        if not self.done_estimate:
            return self.total
        return (self.total - self.done_estimate) * elapsed / self.done_estimate

    def _describe(self) -> None:
        if self.bar is not None:
            self.bar.set_description(self.counts())

    def queue(self, point: Point) -> None:
        self.queued.add(point.key)
        self._describe()

    def start(self, point: Point, where: str = "") -> None:
        self.queued.discard(point.key)
        self.running[point.key] = where or "here"
        self._describe()

    def finish(self, point: Point, status: str, seconds: float | None) -> None:
        self.queued.discard(point.key)
        self.running.pop(point.key, None)
        self.done_estimate += point.estimate_s
        if status in SETTLED_STATUSES:
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(round(point.estimate_s))
            self._describe()
            return
        took = "" if seconds is None else f"{minutes(seconds)}; "
        self.write(f"[{self.counts()}] {point.label}: {status} ({took}about {minutes(self.left_s())} left)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ one run of points
class Executor(Protocol):
    name: str

    def run(self, commands: list[ChildCommand], run: "Run") -> None:
        """Run every command, calling ``run.started`` / ``run.finished``;
        return when each has finished (KeyboardInterrupt may cut it short)."""


@dataclass
class Run:
    """The points of one orchestration: what executors report to."""

    out: Path
    progress: Progress
    lock: FolderLock | None = None
    failed: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # key -> status or failure

    def queued(self, point: Point) -> None:
        self.progress.queue(point)

    def started(self, point: Point, where: str = "") -> None:
        self.progress.start(point, where)
        if self.lock is not None:
            self.lock.write_running(self.progress.running)

    def finished(self, point: Point, failure: str | None, seconds: float | None = None) -> str:
        """The point's process ended: ``failure`` says why it wrote nothing (a
        crash, Slurm's reason), else its file is read.  Its status."""
        status = failure or point_status(point, self.out / point.key)
        if status not in SETTLED_STATUSES:
            self.failed.append(f"{point.key}: {status}")
        self.statuses[point.key] = status
        self.progress.finish(point, status, seconds)
        if self.lock is not None:
            self.lock.write_running(self.progress.running)
        return status


def orchestrate(todo: list[Point], out: Path, executor: Executor, data_dir: str | None,
                progress: Progress, lock: FolderLock | None = None) -> Run:
    """Run ``todo`` with ``executor``; each point writes its record under ``out``."""
    run = Run(out, progress, lock)
    commands = [child_command(pt, out, data_dir) for pt in todo]
    for command in commands:
        command.path.parent.mkdir(parents=True, exist_ok=True)
        command.log.parent.mkdir(parents=True, exist_ok=True)
    # a SIGTERM (kill, a scheduler's stop) ends the run as Ctrl-C does: local children stopped, jobs left running
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        executor.run(commands, run)
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
    return run


def _interrupt(signum, frame):
    raise KeyboardInterrupt


# ------------------------------------------------------------------ a front end's run over a folder
def take_folder(executor: Executor, out: Path, cancel: bool, what: str) -> FolderLock | None:
    """``--cancel``: cancel ``out``'s queued and running jobs (printed) and return
    None; else the folder's lock, held (a second run on it is refused)."""
    if cancel:
        print(f"cancelled {executor.cancel()} queued or running job(s) of {out}")
        return None
    lock = FolderLock(out)
    lock.acquire(f"{what}, executor {executor.name}")
    return lock


def run_held(points: list[Point], out: Path, executor: Executor, lock: FolderLock, data_dir: str | None,
             show_progress: bool, announce: Callable[[list[Point]], None] | None = None) -> Run | int:
    """Run those of ``points`` not yet done (``announce`` is told which are), then
    release ``lock``.  The run, or the exit status of one that did not finish:
    130 interrupted (a line says how to resume), a :class:`SpikebenchError`'s
    code (its line written; e.g. sbatch refused the jobs: nothing recorded as done)."""
    try:
        done = [pt for pt in points if is_done(pt, out / pt.key)]
        if announce is not None:
            announce(done)
        todo = [pt for pt in points if pt not in done]
        return orchestrate(todo, out, executor, data_dir, Progress(todo, show_progress), lock)
    except KeyboardInterrupt:
        again = ("its Slurm jobs keep running: run the same command again to re-attach to them, "
                 "or with --cancel to cancel them" if executor.name == "slurm"
                 else "run the same command again to resume")
        sys.stderr.write(f"spikebench: interrupted; {again} ({out})\n")
        return 130
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code
    finally:
        lock.release()
