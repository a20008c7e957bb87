"""``python -m tasks.sweep``: measurement points over backends and T (and N).

    python -m tasks.sweep --task dsrn_tdbn --backend all --T 1,2,4,8,16,32 --measure memory,throughput
    python -m tasks.sweep --task lif_layer --backend all --neurons 512,4096,16384 --measure memory,throughput
    python -m tasks.sweep --task fc_mnist --backend all --T 5,25,50 --executor slurm --partition gpu --device cuda
    python -m tasks.sweep --nir model.nir --backend all --T 25,50,100 --batch-size 32


A thin front end over the suite's orchestrator (``tasks/orchestrate.py``): each
point (backend, T[, N]) runs ``python -m tasks.measure`` in a process of its
own — a clean memory peak, and an out-of-memory or crash that takes only that
point down — and writes one result file, named as the suite names its
measurement points; the same executors run them (``--jobs``, ``--gpus``,
``--executor slurm``) and the same rule says which are done, so a killed sweep
resumes where it stopped when it is run again with the same arguments.
With ``--nir`` the points are a NIR graph's through each framework's reader
(``tasks.measure --nir`` on one framework, docs/nir.md), on the CPU in fp32.
Running out of device memory is a recorded point (status ``oom``), not a
failure of the sweep.  A point whose process died leaves no new file and is
run again next time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import backends as registry

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
from .executors import add_executor_arguments, make_executor
from .measure import MEASURE_DEFAULT, add_measure_arguments, check_measure_arguments
from .orchestrate import FolderLock, run_held, take_folder
from .profiles import ClusterResources, NirRow, Point, measure_key, normalised
from .result import Result
from .specs import TaskSpec, get_spec

POINT_ESTIMATE_S = 30.0  # for the progress display and a Slurm job's time limit


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SpikebenchError(f"{what} must be a comma list of integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise SpikebenchError(f"{what} must be positive integers, got {text!r}")
    return values


def measure_point(args, spec: TaskSpec, backend: str, measures: list[str]) -> Point:
    """The point measuring ``spec`` (its T and N) on ``backend``."""
    T, n = spec.T, getattr(spec, "neurons", None) if args.neurons else None
    argv = ["--task", args.task, "--backend", backend]
    argv += forwarded_arguments(args, skip=("T", "neurons")) + ["--T", str(T), "--measure", ",".join(measures)]
    if n is not None:
        argv += ["--neurons", str(n)]
    argv += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if args.epoch_steps:
        argv += ["--epoch-steps", str(args.epoch_steps)]
    where = f"T={T}" + ("" if n is None else f" N={n}")
    return Point(part="timing", key=measure_key(spec.name, backend, T, n), backend=backend,
                 label=f"measure {spec.name} {backend} {where}", module="tasks.measure", args=tuple(argv),
                 estimate_s=POINT_ESTIMATE_S, task=spec.name, expected_task=normalised(spec.to_dict()),
                 precision=args.precision, device=args.device, measures=tuple(measures))


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


def parser() -> OneLineParser:
    """``python -m tasks.sweep``'s command line."""
    p = OneLineParser(prog="python -m tasks.sweep", description="Measure a task over backends and time steps.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--task")
    what.add_argument("--nir", metavar="GRAPH", help="a NIR graph, through every framework's reader (docs/nir.md)")
    p.add_argument("--backend", default="all", help="a backend, a comma list, 'eager' (all but the compiled variants) or 'all'")
    p.add_argument("--out", help="directory for the points (default results/sweeps/<task>-<device>-<precision>; "
                                 "with --nir, results/sweeps/nir-<graph>-cpu-fp32)")
    add_task_arguments(p, several_T=True)
    add_run_arguments(p)
    add_measure_arguments(p)
    add_executor_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        measures = check_measure_arguments(args)
        if args.nir:
            return nir_sweep(args, measures)
        names = resolve_backends(args.backend)
        base = get_spec(args.task, **{k: v for k, v in spec_overrides(args).items() if k not in ("T", "neurons")})
        Ts = parse_ints(args.T, "--T") if args.T else [base.T]
        widths: list[int | None] = [None]
        if args.neurons:
            widths = parse_ints(args.neurons, "--neurons")  # type: ignore[assignment]
            base.with_overrides(neurons=widths[0])  # a task without N says so here
        grid = [(T, n) for T in Ts for n in widths]
        out = Path(args.out) if args.out else Path("results") / "sweeps" / f"{base.name}-{args.device}-{args.precision}"
        check_output(out, directory=True)
        specs = {point: base.with_overrides(T=point[0], neurons=point[1]) for point in grid}
        if any(registry.availability(name)[0] for name in names):
            # bad data or a point too large fails here, once, before any point is run
            for spec in specs.values():
                check_data(spec, args.data_dir, not args.no_download)
        resources = ClusterResources(gpus_per_task=1 if args.device == "cuda" else 0)
        executor = make_executor(args, out, resources)
        lock = take_folder(executor, out, args.cancel, f"sweep of {base.name}")
        if lock is None:
            return 0
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code

    points = {(name,) + xy: measure_point(args, spec, name, measures) for name in names for xy, spec in specs.items()}
    return run_points(points, names, grid, out, executor, lock, not args.no_progress)


def nir_sweep(args, measures: list[str]) -> int:
    """The sweep of a NIR graph over T: one point per reader and T."""
    from . import nir as nir_graphs

    if args.measure != MEASURE_DEFAULT and set(measures) != set(nir_graphs.NIR_MEASURES):
        raise SpikebenchError(f"a NIR graph's points measure {', '.join(nir_graphs.NIR_MEASURES)} only")
    if args.device != nir_graphs.NIR_RUN["device"] or args.precision != nir_graphs.NIR_RUN["precision"]:
        raise SpikebenchError("a NIR graph is measured on the CPU in fp32 (its readers build there): "
                              "leave out --device and --precision")
    if args.neurons:
        raise SpikebenchError("--neurons is a task's width; a NIR graph's sizes are its own")
    names = list(nir_graphs.readers_of(args.backend))
    Ts = tuple(parse_ints(args.T, "--T")) if args.T else NirRow.Ts
    batch, seed = args.batch_size or NirRow.batch_size, args.seed or NirRow.seed
    if batch <= 0:
        raise SpikebenchError(f"--batch-size must be > 0, got {batch}")
    listed = nir_graphs.nir_points(NirRow(args.nir, Ts, batch, seed, args.repeats), names, args.warmup)
    out = Path(args.out) if args.out else Path("results") / "sweeps" / f"nir-{nir_graphs.graph_name(args.nir)}-cpu-fp32"
    check_output(out, directory=True)
    executor = make_executor(args, out, ClusterResources())
    lock = take_folder(executor, out, args.cancel, f"sweep of {args.nir}")
    if lock is None:
        return 0
    points = {(pt.backend, pt.expected_task["T"], None): pt for pt in listed}
    return run_points(points, names, [(T, None) for T in Ts], out, executor, lock, not args.no_progress)


def run_points(points: dict[tuple, Point], names: list[str], grid: list[tuple], out: Path, executor,
               lock: FolderLock, progress: bool) -> int:
    """Run the points not yet done (the orchestrator's one rule), then print the table."""
    done: list[Point] = []
    run = run_held(list(points.values()), out, executor, lock, None, progress, announce=done.extend)
    if isinstance(run, int):
        return run
    results: dict[tuple, Result | str] = {}
    for key, pt in points.items():
        status = run.statuses.get(pt.key, "")
        try:
            results[key] = status if status.startswith(("crashed", "no record")) else Result.load(out / pt.key)
        except Exception:
            results[key] = "unreadable"
    print(table(results, names, grid))
    print(f"points: {out} ({len(points) - len(done)} measured, {len(done)} already done)")
    failed = [r for r in results.values() if isinstance(r, str) or r.status in ("error", "diverged")]
    return EXIT_CODES["error"] if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
