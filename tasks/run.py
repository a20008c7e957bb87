"""``python -m tasks.run``: run tasks on backends and compare them.

With no arguments it runs ``synthetic`` on every available backend, offline,
and prints a comparison table.  Several backends run each in a process of
its own, so one failing (or one needing an environment variable set before
its framework is imported) cannot affect the others.

Exit status: 0 when every run is ``ok``; 2 for bad input (one line on stderr,
nothing written) or an explicitly named backend that is unavailable; 1 for a
run that failed with an error, 3 diverged, 4 out of device memory.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Sequence

import backends as registry

from .catalogue import FRACTION, LOSS, RATE_UNIT, unit_of
from .child import run_child
from .cli import (
    EXIT_CODES,
    OVERRIDES,
    OneLineParser,
    add_run_arguments,
    add_task_arguments,
    check_output,
    forwarded_arguments,
    resolve_backends,
    run_config,
    spec_overrides,
)
from .data import make_data
from .errors import SpikebenchError, UsageError
from .result import Result, remove_stale_temporaries
from .runner import failed_result, run
from .specs import TASKS, TRAINABLE_TASKS, get_spec

# The default job (no arguments): a first comparison of every available
# backend in under 3 minutes on 2 cores, not the recipe's tens of minutes.  The
# steps are most of its time: in the cpu profile's records (results/cpu/train,
# a 2-core machine) 500 steps of the ten backends take about 280 s, their set-up
# and evaluation about 50 s, beside each process's start and imports.  By step
# 200 the loss has fallen from 0.69 to about 0.51 on every backend alike: what a
# first comparison shows is that they all learn, the same, and how fast.
QUICK_STEPS = 200
FULL_COMPARISON = "python -m tasks.suite --profile cpu"

def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m tasks.run",
        description="Run spikebench tasks on one or more backends and compare them.",
    )
    p.add_argument("--task", default="synthetic", help=f"one of: {', '.join(TRAINABLE_TASKS)} (default synthetic)")
    p.add_argument("--backend", default="eager",
                   help="a backend, a comma list, 'eager' (the default: every backend but the compiled variants, "
                        "which compile for tens of seconds before their first step) or 'all'")
    p.add_argument("--out", help="result file (.json, one backend) or directory (default results/<timestamp>/)")
    p.add_argument("--list", action="store_true", help="list tasks and backends (and whether each is available)")
    add_task_arguments(p)
    add_run_arguments(p)
    p.add_argument("--tensorboard", metavar="DIR", help="write loss, accuracy and firing-rate scalars here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p


def file_name(task: str, backend: str) -> str:
    return f"{task}-{backend.replace(':', '-')}.json"


def output_paths(out: str | None, task: str, names: list[str]) -> dict[str, Path]:
    if out and out.endswith(".json"):
        if len(names) > 1:
            raise UsageError("--out names one .json file, but several backends were asked for; give a directory")
        check_output(out)
        return {names[0]: Path(out)}
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    directory = Path(out) if out else Path("results") / stamp
    check_output(directory, directory=True)
    return {name: directory / file_name(task, name) for name in names}


def child_argv(args: argparse.Namespace, backend: str, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "tasks.run", "--child", "--task", args.task, "--backend", backend, "--out", str(out)]
    argv += forwarded_arguments(args)
    if args.tensorboard:
        argv += ["--tensorboard", args.tensorboard]
    return argv


def run_in_child(args, spec, name: str, path: Path) -> Result:
    """Run one backend in its own process; a crash becomes an ``error`` result.

    A file already at ``path`` (an earlier run's) is never taken for this
    run's: only a file the child wrote counts."""
    child = run_child(child_argv(args, name, path), path, stdout=sys.stderr)
    if child.wrote:
        try:
            return Result.load(path)
        except (ValueError, KeyError, json.JSONDecodeError):
            pass
    message = f"the backend's process ended with exit status {child.returncode} and wrote no result"
    result = failed_result(spec, run_config(args, name), "error", message)
    result.save(path)
    return result


# ------------------------------------------------------------------ output
def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# the table's columns: (metric, heading, format); units from the catalogue
TABLE_COLUMNS = [
    ("accuracy", "accuracy", ".4f"),
    ("tie_rate", "ties", ".3f"),
    ("final_train_loss", "final loss", ".4g"),
    ("firing_rate_mean", "firing rate", ".4f"),
    ("train_time", "train", ".1f"),
    ("train_throughput", "throughput", ".0f"),
    ("peak_device_memory", "peak", ".0f"),
]
# units shown in another scale than they are recorded in
DISPLAY_SCALE = {"bytes": ("MiB", 2**20)}
UNITLESS = {FRACTION, LOSS, RATE_UNIT}


def _heading(metric: str, heading: str) -> str:
    unit = unit_of(metric)
    shown = DISPLAY_SCALE.get(unit, (unit, 1))[0]
    return heading if unit in UNITLESS else f"{heading} {shown}"


def comparison_table(results: list[Result]) -> str:
    header = ["backend", "status"] + [_heading(metric, heading) for metric, heading, _ in TABLE_COLUMNS]
    rows = []
    for r in results:
        if r.status != "ok":
            rows.append([r.backend, r.status, r.message[:70]])
            continue
        cells = []
        for metric, _, spec in TABLE_COLUMNS:
            value = r.metric(metric)
            divisor = DISPLAY_SCALE.get(unit_of(metric), ("", 1))[1]
            cells.append(_fmt(None if value is None else value / divisor, spec))
        rows.append([r.backend, r.status] + cells)
    widths = [len(h) for h in header]
    for row in rows:
        # backend and status are in every row, a failed run's too
        cells = row if len(row) == len(header) else row[:2]
        widths = [max(w, len(c)) for w, c in zip(widths, cells)] + widths[len(cells):]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    for row in rows:
        if len(row) == len(header):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        else:
            lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2]]))
    return "\n".join(lines)


def print_list() -> None:
    print("tasks:")
    for name, cls in TASKS.items():
        spec = cls()
        extra = f", dataset {spec.dataset}" if hasattr(spec, "dataset") else ""
        extra += "" if spec.trainable else f", N={spec.neurons}; measured, not trained"
        print(f"  {name:18s} {cls.description} (T={spec.T}, batch {spec.batch_size}{extra})")
    print("backends:")
    for name in registry.names():
        e = registry.entry(name)
        try:  # only a backend that loads is available: its framework may be installed but broken
            caps = registry.load(name).capabilities()
        except Exception as exc:  # listing must not fail because one backend does
            print(f"  {name:18s} unavailable {e.description}")
            print(f"  {'':18s} ({exc})")
            continue
        print(f"  {name:18s} available   {e.description}")
        print(f"  {'':18s} tasks: {', '.join(caps.tasks)}; devices: {', '.join(caps.devices)}")
        for part, how in caps.components.items():
            print(f"  {'':18s}   {part}: {how}")
        for part, diff in caps.differences.items():
            print(f"  {'':18s}   differs, {part}: {diff}")
        for key, value in caps.compile.items():
            print(f"  {'':18s}   compile, {key}: {value}")


def argv_is_default(args: argparse.Namespace) -> bool:
    """No task setting, task or backend given: the quick default job."""
    defaults = build_parser().parse_args([])
    return all(getattr(args, k) == getattr(defaults, k) for k in ("task", "backend", *OVERRIDES))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("spikebench: interrupted\n")
        return 130


def _main(args: argparse.Namespace) -> int:
    if args.list:
        print_list()
        return 0
    quick = argv_is_default(args)
    if quick:
        args.steps = QUICK_STEPS  # forwarded to each backend's process like any --steps
    spec = get_spec(args.task, **spec_overrides(args))
    if not spec.trainable:
        raise UsageError(
            f"{spec.name} is a speed benchmark with no learning objective: measure it with "
            f"python -m tasks.measure or python -m tasks.sweep; tasks to train: {', '.join(TRAINABLE_TASKS)}"
        )
    names = resolve_backends(args.backend)
    paths = output_paths(args.out, spec.name, names)
    explicit = args.backend not in ("all", "eager")

    if len(names) == 1:
        name = names[0]
        remove_stale_temporaries(paths[name])  # an earlier run of this file that was killed mid-write
        data = None
        if registry.availability(name)[0]:
            data = make_data(spec, args.data_dir, not args.no_download)  # bad data: exit 2, nothing written
        result = run(spec, run_config(args, name), data=data)  # an unavailable backend returns at once
        path = result.save(paths[name])
        if not args.child:
            print(comparison_table([result]))
            print(f"result: {path}")
        if result.status == "unavailable":
            sys.stderr.write(f"spikebench: {result.message}\n")
            return 2 if explicit else 0
        if result.status != "ok":
            sys.stderr.write(f"spikebench: {name} {result.status}: {result.message}\n")
        return EXIT_CODES[result.status]

    make_data(spec, args.data_dir, not args.no_download)  # check the data once, before any process starts
    results = []
    for name in names:
        if not registry.availability(name)[0]:
            result = run(spec, run_config(args, name))  # returns the unavailable record at once
            result.save(paths[name])
        else:
            sys.stderr.write(f"spikebench: running {spec.name} on {name}\n")
            result = run_in_child(args, spec, name, paths[name])
        results.append(result)
    print(comparison_table(results))
    print(f"results: {paths[names[0]].parent}")
    if quick:
        full = get_spec(args.task).steps
        print(f"This was the quick comparison: {spec.steps} of the recipe's {full} steps of {spec.name}, one seed; "
              f"timings from a training run are not ranked. The full comparison (every task, 3 seeds, "
              f"synchronised timings, memory versus T, parity, the HTML report): {FULL_COMPARISON}")
    codes = [EXIT_CODES[r.status] for r in results if r.status != "unavailable" or explicit]
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    raise SystemExit(main())
