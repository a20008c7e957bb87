"""``python -m tasks.measure``: one measurement point (task x backend x settings).

Every figure is taken the same way for every backend:

* **timing** — the device is synchronised before and after each timed call;
  after warm-up (at least two calls, so JAX has compiled) the call is repeated
  ``--repeats`` times (at least 10) and the median is the figure, with min,
  max and every sample kept in the result (``timings``);
* **train step** — forward, backward and Adam on a batch already on the
  device (``Backend.stage``): ``train_step_time`` and samples/s;
* **inference** — one forward pass without gradients on a staged batch;
* **forward + backward** — the gradients of one staged batch, no optimiser
  step (the single-layer benchmark's yardstick; for every task);
* **epoch** — end to end: one epoch (or ``--epoch-steps`` batches) through the
  NumPy data pipeline, the copy to the device and the step;
* **memory** — the allocator's peak device memory, reset before and read after
  (inference is measured first, then training: JAX's peak cannot be reset, so
  each point runs in a fresh process and the training peak is the larger);
  on the CPU, the host memory each step needs (``*_host_memory``,
  :mod:`tasks.hostmem`), measured the same way for every framework in a
  process of its own after the timings; plus the host's peak resident memory;
* **activity** — firing rate per layer, activation sparsity and synaptic
  operations on the evaluation split, at the initial weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Sequence

from . import hostmem
from .data import TaskData
from .errors import SpikebenchError
from .metrics import EvalAccumulator
from .result import LayerStat, Result, Timing
from .runner import (
    MIN_WARMUP,
    RunConfig,
    evaluate_split,
    execute,
    host_peak_rss_bytes,
    record_activity,
    step_calls,
    warm_up,
)
from .specs import TaskSpec, get_spec

MEASURES = ("throughput", "memory", "epoch", "activity")
MEASURE_DEFAULT = "throughput,memory"
WARMUP_DEFAULT = 3
MIN_REPEATS = 10


def time_calls(call: Callable[[], object], synchronize: Callable[[], None], repeats: int, warmup: int,
               first: list[float] | None = None) -> Timing:
    """Median of ``repeats`` synchronised calls after ``warmup`` untimed ones; the first
    warm-up call's time is appended to ``first`` when given (where compilation shows)."""
    first_call = warm_up(call, synchronize, warmup)
    if first is not None:
        first.append(first_call)
    samples = []
    for _ in range(repeats):
        synchronize()
        t0 = time.perf_counter()
        call()
        synchronize()
        samples.append(time.perf_counter() - t0)
    return Timing(samples=samples)


def _measure(spec: TaskSpec, config: RunConfig, measures: set[str], repeats: int, warmup: int,
             epoch_steps: int | None, backend, data: TaskData, result: Result) -> None:
    m = result.set_metric
    if measures & {"throughput", "memory"}:
        n = repeats if "throughput" in measures else 1
        compile_time = 0.0
        for call in step_calls(spec, backend, data):
            backend.reset_peak_memory()
            first: list[float] = []
            t = time_calls(call.run, backend.synchronize, n, warmup, first)
            compile_time += first[0] - t.median
            scope = getattr(backend, "peak_memory_scope", "window")
            m(call.peak, backend.peak_memory_bytes(), call.peak_what if scope == "window" else
              f"{call.peak_what}; this framework cannot reset its peak: the process's peak (a fresh process per point)")
            if "throughput" in measures:
                t.what = call.what
                result.timings[call.key] = t
                m(f"{call.key}_time", t.median)
                m(f"{call.key}_throughput", call.size / t.median)
                m(f"{call.key}_spread", t.spread)
        result.extra["peak_memory_scope"] = getattr(backend, "peak_memory_scope", "window")
        if backend.compile_info() is not None:
            m("compile_time", compile_time)
        if "memory" in measures and config.device == "cpu":
            # in a process of its own, whose heap holds no block freed by the steps above
            for key, (value, note) in hostmem.measure_in_fresh_process(spec, config, warmup).items():
                m(f"{key}_host_memory", value, note)
    if "epoch" in measures and spec.trainable:
        steps = []
        samples = 0
        it = iter(data.train_batches(1))
        backend.synchronize()
        t_epoch = time.perf_counter()
        while epoch_steps is None or len(steps) < epoch_steps:
            t0 = time.perf_counter()
            try:
                b = next(it)  # the NumPy data path is part of what is timed
            except StopIteration:
                break
            backend.train_step(b)  # returns the loss as a float: synchronised
            steps.append(time.perf_counter() - t0)
            samples += b.size
        total = time.perf_counter() - t_epoch
        if steps:
            result.timings["epoch_step"] = Timing(samples=steps, what="one end-to-end step: batch made, copied, trained")
            m("epoch_time", total, f"{len(steps)} steps end to end, data path included")
            m("epoch_throughput", samples / total)
    if "activity" in measures:
        acc: EvalAccumulator = evaluate_split(backend, spec, data, "test")
        rates = acc.layer_rates()
        result.layers = [LayerStat(l.name, l.size, rates[l.name]) for l in spec.layers()]
        summary = acc.summary()
        m("firing_rate_mean", summary["firing_rate_mean"], "at the initial weights")
        m("firing_rate_overall", summary["firing_rate_overall"], "at the initial weights")
        record_activity(result, acc)
    m("host_peak_rss", host_peak_rss_bytes())
    result.extra["measures"] = sorted(measures)
    result.extra["repeats"] = repeats
    result.extra["warmup"] = max(warmup, MIN_WARMUP)


def measure(spec: TaskSpec, config: RunConfig, measures: Sequence[str], repeats: int = MIN_REPEATS,
            warmup: int = 3, epoch_steps: int | None = None, data: TaskData | None = None) -> Result:
    """Measure one point; failures (OOM included) become the result's status."""
    chosen = set(measures)
    body = lambda backend, d, result: _measure(spec, config, chosen, repeats, warmup, epoch_steps,  # noqa: E731
                                               backend, d, result)
    return execute(spec, config, body, data, kind="measurement")


def parse_measures(text: str) -> list[str]:
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in chosen if m not in MEASURES]
    if bad or not chosen:
        raise SpikebenchError(f"unknown measure {', '.join(bad) or '(none)'}; choose from {', '.join(MEASURES)}")
    return chosen


def add_measure_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--measure", default=MEASURE_DEFAULT, help=f"comma list of {', '.join(MEASURES)}")
    p.add_argument("--repeats", type=int, default=MIN_REPEATS, help=f"timed repeats (at least {MIN_REPEATS})")
    p.add_argument("--warmup", type=int, default=WARMUP_DEFAULT, help=f"untimed calls first (at least {MIN_WARMUP})")
    p.add_argument("--epoch-steps", type=int, help="end-to-end steps for 'epoch' (default: a whole epoch)")


def check_measure_arguments(args: argparse.Namespace) -> list[str]:
    if args.repeats < MIN_REPEATS:
        raise SpikebenchError(f"--repeats must be at least {MIN_REPEATS}, got {args.repeats}")
    if args.warmup < 0 or (args.epoch_steps is not None and args.epoch_steps <= 0):
        raise SpikebenchError("--warmup must be >= 0 and --epoch-steps > 0")
    return parse_measures(args.measure)


def main(argv: Sequence[str] | None = None) -> int:
    import backends as registry

    from .cli import (
        EXIT_CODES,
        OneLineParser,
        add_run_arguments,
        add_task_arguments,
        check_output,
        run_config,
        spec_overrides,
    )

    p = OneLineParser(prog="python -m tasks.measure", description="Measure one task on one backend.")
    p.add_argument("--task", help="a task (or --nir)")
    p.add_argument("--nir", metavar="GRAPH", help="a NIR graph: timed through every framework's reader that imports "
                                                  "it (--backend all or a comma list), with its fidelity (docs/nir.md)")
    p.add_argument("--backend", required=True)
    p.add_argument("--out", required=True, help="result file (.json); with --nir, a folder")
    add_task_arguments(p)
    add_run_arguments(p)
    add_measure_arguments(p)
    args = p.parse_args(argv)
    if (args.task is None) == (args.nir is None):
        p.error("give --task or --nir")
    try:
        if args.nir:
            from .nir import measure_main
            from .profiles import NirRow

            check_measure_arguments(args)
            return measure_main(args.nir, args.backend, args.T or NirRow.Ts[0], args.batch_size or NirRow.batch_size,
                                args.seed or NirRow.seed, args.repeats, args.warmup, args.out)
        measures = check_measure_arguments(args)
        spec = get_spec(args.task, **spec_overrides(args))
        registry.entry(args.backend)
        check_output(args.out)  # before any work: a measurement is never lost at the end
        data = None
        if registry.availability(args.backend)[0]:
            from .data import make_data

            data = make_data(spec, args.data_dir, not args.no_download)
        result = measure(spec, run_config(args, args.backend), measures, args.repeats, args.warmup,
                         args.epoch_steps, data)
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code
    result.save(args.out)
    if result.status != "ok":
        sys.stderr.write(f"spikebench: {args.backend} {result.status}: {result.message}\n")
    return EXIT_CODES[result.status]


if __name__ == "__main__":
    raise SystemExit(main())
