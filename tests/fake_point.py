"""A point's process for the executor tests: ``python -m tests.fake_point --out
FILE [--sleep S] [--exit N] [--kill]`` records where and when it ran (its CPU mask,
thread variables, GPU mask, start and end), or exits without writing."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time

from tasks.result import write_atomic


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--exit", type=int, default=0, help="exit with this status before writing anything")
    p.add_argument("--marker", help="ignored: a word that names this process to pgrep")
    p.add_argument("--kill", action="store_true", help="die by SIGKILL before writing anything (the OOM killer's way)")
    args, _ = p.parse_known_args()
    if args.kill:
        os.kill(os.getpid(), signal.SIGKILL)
    if args.exit:
        return args.exit
    start = time.time()
    time.sleep(args.sleep)
    write_atomic(args.out, json.dumps({
        "cpus": sorted(os.sched_getaffinity(0)),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "start": start,
        "end": time.time(),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
