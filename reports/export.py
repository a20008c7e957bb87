"""``python -m reports.export RESULTS... -o results.csv``: every record as one flat table, for notebooks.

One row per record and metric (a timing's median, min and max are metrics
too: ``<name>.median``, ...), each with its unit and what it ran on: task,
backend, kind, status, device, precision, seed, T, batch size, the code's
fingerprint and commit, the machine's fingerprint, the host and its Slurm job.  The same table is a
pandas DataFrame from Python::

    from reports.export import results_table
    df = results_table(["results/cpu"])
    df[df.metric == "train_step_time"].pivot_table(index="backend", columns="T", values="value")
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from tasks.cli import OneLineParser
from tasks.result import write_atomic

from .fields import T_of, device_name, device_type, precision_of, task_config
from .load import ReportError, load_results

COLUMNS = ["path", "task", "backend", "kind", "status", "device_type", "device_name", "precision", "seed", "T",
           "batch_size", "code_fingerprint", "commit", "machine_fingerprint", "hostname", "slurm_job_id", "metric",
           "value", "unit"]


def results_table(roots: str | Path | Sequence[str | Path], warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every record under ``roots`` as rows of (record, metric, value, unit);
    a missing folder or one without records raises :class:`ReportError`, a
    file that is not a record is left out (and named to ``warn``)."""
    rows = []
    for loaded in load_results(roots, warn=warn).results:
        r = loaded.result
        where = {
            "path": loaded.path, "task": r.task, "backend": r.backend, "kind": r.kind, "status": r.status,
            "device_type": device_type(r), "device_name": device_name(r), "precision": precision_of(r),
            "seed": r.seed, "T": T_of(r), "batch_size": task_config(r).get("batch_size"),
            "code_fingerprint": r.host.get("code_fingerprint"), "commit": r.host.get("spikebench_commit"),
            "machine_fingerprint": r.host.get("machine_fingerprint"), "hostname": r.host.get("hostname"),
            "slurm_job_id": r.host.get("slurm_job_id"),
        }
        for name, metric in sorted(r.metrics.items()):
            rows.append({**where, "metric": name, "value": metric.value, "unit": metric.unit})
        for name, timing in sorted(r.timings.items()):
            for stat in ("median", "min", "max"):
                rows.append({**where, "metric": f"{name}.{stat}", "value": getattr(timing, stat), "unit": timing.unit})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m reports.export", description="Every result record as one flat CSV table.")
    p.add_argument("results_dir", metavar="RESULTS_DIR", nargs="+", help="directories searched for result records")
    p.add_argument("-o", "--output", required=True, help="the CSV file to write")
    args = p.parse_args(argv)
    try:
        frame = results_table(args.results_dir, warn=lambda text: sys.stderr.write(f"spikebench: warning: {text}\n"))
    except ReportError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return 2
    try:
        write_atomic(args.output, frame.to_csv(index=False))
    except OSError as exc:
        sys.stderr.write(f"spikebench: error: cannot write {args.output}: {exc.strerror or exc}\n")
        return 2
    print(f"{args.output}: {len(frame)} rows from {frame['path'].nunique()} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
