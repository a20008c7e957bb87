"""``python -m tasks.sweep``: measurement points over backends and T (and N).

    python -m tasks.sweep --task dsrn_tdbn --backend all --T 1,2,4,8,16,32 --measure memory,throughput
    python -m tasks.sweep --task lif_layer --backend all --neurons 512,4096,16384 --measure memory,throughput

Each point (backend, T[, N]) runs ``python -m tasks.measure`` in a process of its
own — a clean memory peak, and an out-of-memory or crash that takes only that
point down — and writes one result file.  Running out of device memory is a
recorded point (status ``oom``, written by the point's process when its
framework says so), not a failure of the sweep.  Points already done (a result
with the same settings and status ``ok`` or ``oom``) are skipped, so a killed
sweep resumes where it stopped when it is run again with the same arguments.
A point whose process died (killed by a signal, the kernel's OOM killer
included, or crashed) leaves no new file and is run again next time; an
``unavailable`` point is asked again too (the framework may have been
installed since).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import backends as registry

from .child import run_child
from .cli import (
    EXIT_CODES,
    OneLineParser,
    add_run_arguments,
    add_task_arguments,
    check_output,
    forwarded_arguments,
    resolve_backends,
    spec_overrides,
)
from .data import check_data
from .errors import SpikebenchError
from .measure import add_measure_arguments, check_measure_arguments
from .result import Result
from .specs import get_spec

DONE = ("ok", "oom")


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SpikebenchError(f"{what} must be a comma list of integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise SpikebenchError(f"{what} must be positive integers, got {text!r}")
    return values


def point_path(out: Path, task: str, backend: str, T: int, neurons: int | None = None) -> Path:
    width = "" if neurons is None else f"-N{neurons}"
    return out / f"{task}-{backend.replace(':', '-')}-T{T}{width}.json"


def is_done(path: Path, spec_dict: dict, measures: list[str], precision: str, device: str) -> bool:
    """Whether ``path`` holds a finished point with exactly these settings."""
    if not path.exists():
        return False
    try:
        r = Result.load(path)
    except Exception:  # an unreadable file is redone
        return False
    run = r.config.get("run", {})
    return (
        r.status in DONE
        and r.config.get("task") == json.loads(json.dumps(spec_dict))  # tuples come back as lists
        and run.get("precision") == precision
        and run.get("device") == device
        and (r.status != "ok" or set(measures) <= set(r.extra.get("measures", [])))
    )


def measure_argv(args, backend: str, T: int, path: Path, measures: list[str], neurons: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "tasks.measure", "--task", args.task, "--backend", backend, "--out", str(path)]
    argv += forwarded_arguments(args, skip=("T", "neurons")) + ["--T", str(T), "--measure", ",".join(measures)]
    if neurons is not None:
        argv += ["--neurons", str(neurons)]
    argv += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if args.epoch_steps:
        argv += ["--epoch-steps", str(args.epoch_steps)]
    return argv


def table(results: dict[tuple, Result | str], names: list[str], points: list[tuple]) -> str:
    """Rows: backends; columns: points (T, or T and N); cells: step time and peak memory.

    The step is the training step, or forward + backward for a task that is
    not trained (lif_layer)."""
    head = ["backend"] + [f"T={T}" + ("" if n is None else f" N={n}") for T, n in points]
    rows = []
    for name in names:
        row = [name]
        for point in points:
            r = results.get((name,) + point)
            if r is None:
                row.append("-")
            elif isinstance(r, str):  # the point's process died: nothing recorded
                row.append(r)
            elif r.status != "ok":
                row.append(r.status)
            else:
                t = r.metric("train_step_time")
                t = r.metric("forward_backward_time") if t is None else t
                peak = r.metric("peak_device_memory")
                parts = []
                if t is not None:
                    parts.append(f"{t * 1e3:.1f} ms")
                if peak is not None:
                    parts.append(f"{peak / 2**20:.0f} MiB")
                row.append(" ".join(parts) or "ok")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m tasks.sweep", description="Measure a task over backends and time steps.")
    p.add_argument("--task", required=True)
    p.add_argument("--backend", default="all", help="a backend, a comma list or 'all'")
    p.add_argument("--out", help="directory for the points (default results/sweeps/<task>-<device>-<precision>)")
    add_task_arguments(p, several_T=True)
    add_run_arguments(p)
    add_measure_arguments(p)
    args = p.parse_args(argv)
    try:
        measures = check_measure_arguments(args)
        names = resolve_backends(args.backend)
        base = get_spec(args.task, **{k: v for k, v in spec_overrides(args).items() if k not in ("T", "neurons")})
        Ts = parse_ints(args.T, "--T") if args.T else [base.T]
        widths: list[int | None] = [None]
        if args.neurons:
            widths = parse_ints(args.neurons, "--neurons")  # type: ignore[assignment]
            base.with_overrides(neurons=widths[0])  # a task without N says so here
        points = [(T, n) for T in Ts for n in widths]
        out = Path(args.out) if args.out else Path("results") / "sweeps" / f"{base.name}-{args.device}-{args.precision}"
        check_output(out, directory=True)
        specs = {point: base.with_overrides(T=point[0], neurons=point[1]) for point in points}
        if any(registry.availability(name)[0] for name in names):
            # bad data or a point too large fails here, once, before any point is run
            for spec in specs.values():
                check_data(spec, args.data_dir, not args.no_download)
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code
    out.mkdir(parents=True, exist_ok=True)

    results: dict[tuple, Result | str] = {}
    ran = skipped = 0
    for name in names:
        for point, spec in specs.items():
            T, n = point
            key = (name, T, n)
            path = point_path(out, spec.name, name, T, n)
            if is_done(path, spec.to_dict(), measures, args.precision, args.device):
                results[key] = Result.load(path)
                skipped += 1
                continue
            where = f"T={T}" + ("" if n is None else f", N={n}")
            sys.stderr.write(f"spikebench: measuring {spec.name} on {name} at {where}\n")
            child = run_child(measure_argv(args, name, T, path, measures, n), path, stdout=sys.stderr)
            ran += 1
            if child.wrote:
                try:
                    results[key] = Result.load(path)
                    continue
                except Exception:
                    pass
            # The process died without writing its result (a signal, the kernel's OOM
            # killer, a crash): nothing is recorded, so the point is run again next time.
            results[key] = f"crashed ({child.returncode})"
            sys.stderr.write(f"spikebench: the process measuring {spec.name} on {name} at {where} ended with "
                             f"exit status {child.returncode} and wrote no result; run the sweep again to redo it\n")
    print(table(results, names, points))
    print(f"points: {out} ({ran} measured, {skipped} already done)")
    failed = [r for r in results.values() if isinstance(r, str) or r.status in ("error", "diverged")]
    return EXIT_CODES["error"] if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
