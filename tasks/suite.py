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

Points run one at a time on this machine by default; ``--jobs N`` or
``--gpus 0,1,2,3`` run several at once, ``--executor slurm`` makes each point a
Slurm job (``tasks/executors.py``, ``tasks/slurm.py``).  One suite at a time
works on a results folder: a second is refused with one line.

Exit status: 0 when every point is done; 1 when some point failed (its
process died, its job ended without a record, or it ended in ``error``); 2
for bad input; 130 when interrupted (run it again to resume, or re-attach to
its Slurm jobs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import backends as registry

from .cli import OneLineParser, resolve_backends
from .errors import SpikebenchError, UsageError
from .executors import add_executor_arguments, make_executor
from .machine import describe, machine, this_machine
from .measure import WARMUP_DEFAULT
from .orchestrate import FolderLock, is_done, minutes, point_status, run_held, take_folder
from .profiles import PARTS, PROFILES_FILE, NirRow, Profile, get_profile, points, twin
from .provenance import edition_of, this_code
from .result import check_writable, record_files
from .specs import TASKS

# the committed comparison: the cpu and gpu profiles' default folders feed one report
PUBLISHED = {"cpu": "results/cpu", "gpu": "results/gpu"}
# what the committed report is built from: those folders and the NIR fidelity records (python -m tasks.nir fidelity)
PUBLISHED_SOURCES = (*PUBLISHED.values(), "results/nir")
PUBLISHED_REPORT = "reports/index.html"


def default_out(profile: Profile) -> Path:
    return Path(PUBLISHED.get(profile.name, f"results/{profile.name}"))


def build(out: Path, published: bool) -> bool:
    """The report (``python -m reports.build``, the layer above, as a command of
    its own): the committed one from every published folder, else
    ``<out>/report.html``.  Its lines (``report: PATH``, warnings, an error)
    are its own; whether it was built."""
    if published:
        argv = [p for p in PUBLISHED_SOURCES if Path(p).is_dir()] + ["-o", PUBLISHED_REPORT, "--base", "."]
    else:
        argv = [str(out), "-o", str(out / "report.html")]
    sys.stdout.flush()
    return subprocess.run([sys.executable, "-m", "reports.build", *argv], stdin=subprocess.DEVNULL).returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m tasks.suite", description="Run a profile's whole comparison, then build the report.")
    p.add_argument("--profile", required=True, help="a profile of tasks/profiles.toml (smoke, cpu, gpu)")
    p.add_argument("--out", help="directory for the results (default results/<profile>)")
    p.add_argument("--part", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default all)")
    p.add_argument("--backend", help="only these backends (a comma list; default the profile's)")
    p.add_argument("--task", help="only these tasks (a comma list; default the profile's)")
    p.add_argument("--nir", action="append", metavar="GRAPH",
                   help=f"also time this NIR graph through every framework's reader (T {NirRow.Ts[0]}, batch "
                        f"{NirRow.batch_size}; repeatable; "
                        "a profile's [[P.nir]] rows give other settings; docs/nir.md)")
    p.add_argument("--data-dir", help="where MNIST-format data sets are looked for first")
    p.add_argument("--list", action="store_true",
                   help="list the points (done, running, queued with their job ids, to do) and the estimate; run nothing")
    p.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    p.add_argument("--no-progress", action="store_true", help="a line per event instead of a progress bar")
    p.add_argument("--twin", metavar="PROFILE",
                   help="run the profile's training runs at PROFILE's sizes (e.g. smoke), first seed, on the CPU")
    p.add_argument("--new-edition", action="store_true",
                   help="the folder holds records of other code: move them to <out>/.editions/ and start anew")
    p.add_argument("--profiles", default=str(PROFILES_FILE), help=argparse.SUPPRESS)
    add_executor_arguments(p)
    args = p.parse_args(argv)
    try:
        profile = get_profile(args.profile, args.profiles)
        if args.twin:
            profile = twin(profile, get_profile(args.twin, args.profiles))
        parts = [x.strip() for x in args.part.split(",") if x.strip()]
        bad = [x for x in parts if x not in PARTS]
        if bad or not parts:
            raise UsageError(f"unknown part {', '.join(bad) or '(none)'}; parts: {', '.join(PARTS)}")
        names = profile.backend_names(registry.installable_names(profile.device))
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
        if args.nir and "timing" not in parts:
            raise UsageError("--nir adds measurement points: give a --part with timing")
        if "timing" in parts:  # a graph given on the command line is kept whatever the task filter
            todo_all += graph_points(profile.nir if not args.task else (), names)
            todo_all += graph_points(tuple(NirRow(g) for g in args.nir or ()), names)
        if args.list:
            return list_points(profile, parts, todo_all, out)
        check_writable(out, directory=True)
        executor = make_executor(args, out, profile.cluster)
        lock = take_folder(executor, out, args.cancel, f"profile {profile.name}")
        if lock is None:
            return 0
        try:
            one_edition(out, args.new_edition, this_machine() if executor.name == "local" else None)
        except SpikebenchError:
            lock.release()
            raise
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code

    run = run_held(todo_all, out, executor, lock, args.data_dir, not args.no_progress,
                   announce=lambda done: sys.stderr.write(heading(profile, parts, todo_all, done, out) + "\n"))
    if isinstance(run, int):
        return run
    summary: dict[str, int] = {}
    for pt in todo_all:
        s = point_status(pt, out / pt.key) if (out / pt.key).exists() else "missing"
        summary[s] = summary.get(s, 0) + 1
    print(f"profile {profile.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(summary.items())) + f" ({out})")
    for line in run.failed:
        print(f"  failed: {line}")
    if not args.no_report and not build(out, published=args.out is None and profile.name in PUBLISHED):
        return 1  # the results are kept; the report can be built again
    return 1 if run.failed else 0


def graph_points(rows: tuple[NirRow, ...], names: list[str]) -> list:
    """The measurement points of NIR graphs, for the backends with a NIR reader (``nir/`` in the results)."""
    if not rows:
        return []
    from . import nir as nir_graphs

    readers = [n for n in names if n in nir_graphs.READERS]
    return [pt for row in rows for pt in nir_graphs.nir_points(row, readers, WARMUP_DEFAULT, "nir/")]


def one_edition(out: Path, new_edition: bool, machine_here: str | None) -> None:
    """A results folder holds one edition: the records of one code state, taken on
    one kind of machine (tasks/machine.py). Records of other code, or, where the
    points run on this machine (``machine_here``: not through Slurm, whose nodes
    are the cluster's), of this code on another kind of machine, stop the suite
    (one line), or with ``new_edition`` are moved, paths kept, to
    ``<out>/.editions/<code>/`` (``<code>-<machine>/``), where the report does not look."""
    here = this_code()
    # (code, machine): machine None for records of other code, whatever their machine
    others: dict[tuple[str, str | None], list[Path]] = {}
    identities: dict[str, dict] = {}
    for path in record_files(out):
        code, machine_fp, identity = edition_of(path)
        if code == "unreadable":  # a half-written or corrupt file is no edition: it is redone
            continue
        if code != here:
            others.setdefault((code, None), []).append(path)
        elif machine_here is not None and machine_fp != machine_here:
            others.setdefault((code, machine_fp), []).append(path)
            identities.setdefault(machine_fp, identity)
    if not others:
        return

    def of(code: str, machine_fp: str | None) -> str:
        if machine_fp is None:
            return f"of code {code}"
        described = describe(identities[machine_fp]) if identities[machine_fp] else "not described"
        return f"of this code taken on machine {machine_fp} ({described})"

    found = ", ".join(f"{len(paths)} {of(*key)}" for key, paths in sorted(others.items()))  # a code is never both
    this = f"this code is {here}" + (f", this machine {machine_here} ({describe(machine())})" if machine_here else "")
    if not new_edition:
        raise UsageError(f"{out} holds records of another edition ({found}); {this}: add --new-edition to "
                         f"move them to {out / '.editions'} and start a new edition there")
    for (code, machine_fp), paths in others.items():
        folder = code if machine_fp is None else f"{code}-{machine_fp}"
        for path in paths:
            target = out / ".editions" / folder / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
    sys.stderr.write(f"spikebench: moved {found} to {out / '.editions'}; a new edition starts ({this})\n")


def heading(profile: Profile, parts: list[str], todo_all: list, done: list, out: Path) -> str:
    left = sum(pt.estimate_s for pt in todo_all if pt not in done)
    backends = len({pt.backend for pt in todo_all})
    return (f"profile {profile.name}: {len(todo_all)} points ({', '.join(parts)}), {len(done)} already done, "
            f"{len(todo_all) - len(done)} to run, estimated {minutes(left)} (the profile is sized for "
            f"{profile.budget_minutes_per_backend:g} min a backend, {profile.budget_minutes(backends):g} min "
            f"for these {backends}); results in {out}")


def list_points(profile: Profile, parts: list[str], todo_all: list, out: Path) -> int:
    """Every point: done, running or queued (where, with its Slurm job id), or to do."""
    from .slurm import queue_view

    done = [pt for pt in todo_all if is_done(pt, out / pt.key)]
    print(heading(profile, parts, todo_all, done, out))
    active = {key: f"running ({where})" for key, where in FolderLock(out).running().items()}
    active.update(queue_view(out))
    for pt in todo_all:
        state = "done" if pt in done else active.get(pt.key, "todo")
        print(f"  {state.split(' ')[0]:7s}  {pt.key}  ({minutes(pt.estimate_s)})"
              + (f"  {state.split(' ', 1)[1]}" if " " in state else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
