"""``python -m tasks.suite``: run the whole comparison of a profile, then build the report.

    python -m tasks.suite --profile cpu                 # everything, results/cpu/, reports/index.html
    python -m tasks.suite --profile cpu --part timing   # only the timings (on a quiet machine)
    python -m tasks.suite --profile smoke --out /tmp/s  # tiny, as CI runs it
    python -m tasks.suite --profile cpu --list          # the points, which are done, the estimate

A profile (``tasks/profiles.toml``) lists training runs (accuracy and firing
rates over seeds), measurement points (step time and memory, over T and N)
and parity.  Each point runs in a process of its own (``tasks.run``,
``tasks.measure`` or ``tasks.parity``) and writes one file under ``--out``;
its output goes to ``<out>/logs/``.  A point is done when its file holds a
finished record with the same settings (``ok``, ``oom`` or ``diverged``, or
``unavailable`` because the backend's capabilities leave the point out;
parity without ``error`` rows), so a suite that was killed anywhere finishes
when it is run again, redoing only what did not finish: a point whose process
died leaves no new file and is run again next time.

The parts are separate (``--part timing,parity,train``) so that timings can be
taken on a quiet machine while training runs resume across sessions.

Exit status: 0 when every point is done; 1 when some point failed (its
process died, or it ended in ``error``); 2 for bad input; 130 when
interrupted (run it again to resume).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import backends as registry
from backends.base import Capabilities

from .child import run_child
from .cli import OneLineParser, resolve_backends
from .errors import SpikebenchError, UsageError
from .profiles import (
    PARTS,
    PROFILES_FILE,
    TIMING_MEASURES,
    Point,
    Profile,
    get_profile,
    points,
)
from .progress import progress_bar
from .result import Result, check_writable
from .specs import TASKS

DONE_STATUSES = ("ok", "oom", "diverged")
# the committed comparison: the cpu and gpu profiles' default folders feed one report
PUBLISHED = {"cpu": "results/cpu", "gpu": "results/gpu"}
PUBLISHED_REPORT = "reports/index.html"


def is_done(point: Point, path: Path) -> bool:
    """Whether ``path`` holds the finished record of ``point``."""
    if not path.is_file():
        return False
    try:
        if point.part == "parity":
            rows = json.loads(path.read_text())["rows"]
            return bool(rows) and all(r.get("backend") == point.backend and r.get("status") != "error" for r in rows)
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
    if point.part == "timing" and r.status == "ok":
        return set(TIMING_MEASURES.split(",")) <= set(r.extra.get("measures", []))
    return True


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


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class Progress:
    """One bar over the points, weighted by each point's estimated time, so the
    time left is the estimate of what remains scaled by how fast this machine
    has gone so far; plain lines where there is no terminal."""

    def __init__(self, todo: list[Point], enabled: bool):
        self.total = sum(p.estimate_s for p in todo)
        self.n, self.count = 0, len(todo)
        self.done_estimate = 0.0
        self.started = time.perf_counter()
        self.bar = progress_bar(enabled and sys.stderr.isatty(), total=round(self.total), unit="est-s",
                                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} est. s [{elapsed}<{remaining}]")

    def start(self, point: Point) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{self.n + 1}/{self.count} {point.label}")

    def finish(self, point: Point, status: str, seconds: float) -> None:
        self.n += 1
        self.done_estimate += point.estimate_s
        if self.bar is not None:
            self.bar.update(round(point.estimate_s))
            return
        elapsed = time.perf_counter() - self.started
        left = (self.total - self.done_estimate) * (elapsed / self.done_estimate) if self.done_estimate else 0.0
        sys.stderr.write(f"[{self.n}/{self.count}] {point.label}: {status} ({_minutes(seconds)}; "
                         f"about {_minutes(left)} left)\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_point(point: Point, out: Path, data_dir: str | None) -> tuple[str, float]:
    """Run one point in a process of its own; (status, seconds)."""
    path = out / point.key
    log = out / "logs" / (point.key.replace("/", "__").removesuffix(".json") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", point.module, *point.args]
    argv += ["--json", str(path)] if point.part == "parity" else ["--out", str(path)]
    if data_dir and point.part != "parity":
        argv += ["--data-dir", data_dir]
    t0 = time.perf_counter()
    with open(log, "w") as handle:
        handle.write(" ".join(argv) + "\n")
        handle.flush()
        child = run_child(argv, path, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if not child.wrote:
        # the process died before writing: nothing recorded, so the point is redone next time
        return f"crashed (exit status {child.returncode}; see {log})", seconds
    return point_status(point, path), seconds


def default_out(profile: Profile) -> Path:
    return Path(PUBLISHED.get(profile.name, f"results/{profile.name}"))


def build(out: Path, published: bool) -> Path:
    """The report: the committed one from every published folder, else ``<out>/report.html``."""
    from reports.build import build_report

    warn = lambda text: sys.stderr.write(f"spikebench: warning: {text}\n")  # noqa: E731
    if published:
        sources = [Path(p) for p in PUBLISHED.values() if Path(p).is_dir()]
        return build_report(sources, PUBLISHED_REPORT, warn=warn, base=".")
    return build_report([out], out / "report.html", warn=warn)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m tasks.suite", description="Run a profile's whole comparison, then build the report.")
    p.add_argument("--profile", required=True, help="a profile of tasks/profiles.toml (smoke, cpu, gpu)")
    p.add_argument("--out", help="directory for the results (default results/<profile>)")
    p.add_argument("--part", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default all)")
    p.add_argument("--backend", help="only these backends (a comma list; default the profile's)")
    p.add_argument("--task", help="only these tasks (a comma list; default the profile's)")
    p.add_argument("--data-dir", help="where MNIST-format data sets are looked for first")
    p.add_argument("--list", action="store_true", help="list the points, which are done, and the estimate; run nothing")
    p.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    p.add_argument("--no-progress", action="store_true", help="a line per point instead of a progress bar")
    p.add_argument("--profiles", default=str(PROFILES_FILE), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        profile = get_profile(args.profile, args.profiles)
        parts = [x.strip() for x in args.part.split(",") if x.strip()]
        bad = [x for x in parts if x not in PARTS]
        if bad or not parts:
            raise UsageError(f"unknown part {', '.join(bad) or '(none)'}; parts: {', '.join(PARTS)}")
        names = profile.backend_names(registry.installable_names())
        if args.backend:
            names = resolve_backends(args.backend)
        out = Path(args.out) if args.out else default_out(profile)
        todo_all = points(profile, names, [x for x in PARTS if x in parts])
        if args.task:
            tasks = [t.strip() for t in args.task.split(",") if t.strip()]
            unknown = [t for t in tasks if t not in TASKS]
            if unknown or not tasks:
                raise UsageError(f"unknown task {', '.join(unknown) or '(none)'}; tasks: {', '.join(TASKS)}")
            # a parity file covers every task of its backend: kept whatever the task filter
            todo_all = [pt for pt in todo_all if pt.task in tasks or pt.part == "parity"]
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code

    done = [pt for pt in todo_all if is_done(pt, out / pt.key)]
    todo = [pt for pt in todo_all if pt not in done]
    estimate = sum(pt.estimate_s for pt in todo)
    head = (f"profile {profile.name}: {len(todo_all)} points ({', '.join(parts)}), {len(done)} already done, "
            f"{len(todo)} to run, estimated {_minutes(estimate)} (the profile is sized for "
            f"{profile.budget_minutes:g} min in all); results in {out}")
    if args.list:
        print(head)
        for pt in todo_all:
            print(f"  {'done' if pt in done else 'todo':4s}  {pt.key}  ({_minutes(pt.estimate_s)})")
        return 0
    try:
        check_writable(out, directory=True)
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: --out: {exc}\n")
        return exc.exit_code
    out.mkdir(parents=True, exist_ok=True)
    sys.stderr.write(head + "\n")

    progress = Progress(todo, not args.no_progress)
    failed: list[str] = []
    try:
        for pt in todo:
            progress.start(pt)
            status, seconds = run_point(pt, out, args.data_dir)
            if status not in DONE_STATUSES + ("unavailable", "fail"):
                failed.append(f"{pt.key}: {status}")
            progress.finish(pt, status, seconds)
    except KeyboardInterrupt:
        progress.close()
        sys.stderr.write(f"spikebench: interrupted; run the same command again to resume ({out})\n")
        return 130
    progress.close()
    summary = {}
    for pt in todo_all:
        s = point_status(pt, out / pt.key) if (out / pt.key).exists() else "missing"
        summary[s] = summary.get(s, 0) + 1
    print(f"profile {profile.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(summary.items())) + f" ({out})")
    for line in failed:
        print(f"  failed: {line}")
    if not args.no_report:
        try:
            print(f"report: {build(out, published=args.out is None and profile.name in PUBLISHED)}")
        except Exception as exc:  # the results are kept; the report can be built again
            sys.stderr.write(f"spikebench: error: the report could not be built: {exc}\n")
            return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
