"""Train and evaluate one task on one backend; return a :class:`Result`.

This is the one training loop of spikebench: every backend is driven by it
(the command line, the asv suite and the sweeps all call :func:`run`), so
data order, learning-rate schedule, early stopping and metric computation are
identical for all of them.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import math
import os
import platform
import resource
import socket
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import numpy as np

from . import __version__
from .catalogue import FRACTION
from .data import Batch, TaskData, make_data
from .errors import BackendUnavailable, DeviceOutOfMemory, DeviceUnavailable, Diverged
from .metrics import EvalAccumulator
from .neuro import input_counts
from .progress import progress_bar
from .provenance import provenance
from .result import Curve, LayerStat, Result
from .specs import PRECISIONS, TaskSpec
from .weights import initial_weights


@dataclass(frozen=True)
class RunConfig:
    """How to run (as opposed to what: that is the task spec)."""

    backend: str
    device: str = "cpu"
    precision: str = "fp32"
    data_dir: str | None = None
    allow_download: bool = True
    progress: bool = True
    tensorboard: str | None = None


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def host_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        **provenance(),
        "slurm_job_id": slurm_job_id(),
    }


def slurm_job_id() -> str | None:
    """The Slurm job this process runs in (``ARRAY_TASK`` form for an array's task), or None."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def host_peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def new_result(spec: TaskSpec, config: RunConfig) -> Result:
    framework, _, variant = config.backend.partition(":")
    return Result(
        task=spec.name,
        backend=config.backend,
        framework=framework,
        variant=variant or None,
        versions={"spikebench": __version__, "python": platform.python_version(), "numpy": np.__version__},
        precision=config.precision,
        seed=spec.seed,
        # stored as JSON types (tuples as lists) so a record equals itself read back
        config=json.loads(json.dumps({"task": spec.to_dict(), "run": asdict(config)})),
        host=host_info(),
        started_at=now(),
    )


class _Scalars:
    """TensorBoard scalars (tensorboardX), or nothing."""

    def __init__(self, logdir: str | None, name: str):
        self.writer = None
        if logdir:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(logdir=os.path.join(logdir, name))

    def add(self, tag: str, value: float | None, step: int) -> None:
        if self.writer is not None and value is not None and math.isfinite(value):
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def evaluate_split(backend, spec: TaskSpec, data: TaskData, split: str) -> EvalAccumulator:
    acc = EvalAccumulator(spec)
    for batch in data.eval_batches(split):
        out = backend.evaluate(batch)
        acc.add(out.loss, out.scores, batch.y, out.spike_counts)
        acc.add_inputs(input_counts(spec, batch))
    return acc


def run(spec: TaskSpec, config: RunConfig, data: TaskData | None = None) -> Result:
    """Train and evaluate ``spec`` on ``config.backend``; never raises for a
    backend's failure: it becomes the result's status."""
    return execute(spec, config, lambda backend, d, result: _train(spec, config, backend, d, result), data)


# ------------------------------------------------------------------ what a measurement point calls
# untimed calls before a call is timed or measured: at least two, so JAX has compiled
MIN_WARMUP = 2


def warm_up(call: Callable[[], object], synchronize: Callable[[], None], warmup: int) -> float:
    """``warmup`` synchronised calls (at least :data:`MIN_WARMUP`), not counted in a timing;
    returns the first one's seconds (where a compiled step compiles)."""
    synchronize()
    t0 = time.perf_counter()
    call()
    synchronize()
    first = time.perf_counter() - t0
    for _ in range(max(warmup, MIN_WARMUP) - 1):
        call()
        synchronize()
    return first


def first_batch(data: TaskData, split: str) -> Batch:
    if split == "train":
        return next(iter(data.train_batches(0)))
    return next(iter(data.eval_batches(split)))


@dataclass(frozen=True)
class StepCall:
    """One call a point times and measures, on a batch already on the device."""

    key: str  # inference, forward_backward, train_step
    run: Callable[[], object]
    size: int  # samples per call
    what: str
    peak: str  # its device-memory metric
    peak_what: str


def step_calls(spec: TaskSpec, backend, data: TaskData) -> list[StepCall]:
    """The calls of a measurement point, in the order they are measured."""
    test = backend.stage(first_batch(data, "test"))
    staged = backend.stage(first_batch(data, "train"))
    calls = [
        StepCall("inference", lambda: backend.infer(test), test.size,
                 "one forward pass without gradients, batch on the device",
                 "peak_device_memory_inference", "allocator peak over inference"),
        StepCall("forward_backward", lambda: backend.forward_backward(staged), staged.size,
                 "forward and backward pass, gradients left on the device, no optimiser step; batch on the device",
                 "peak_device_memory_forward_backward", "allocator peak over forward + backward passes"),
    ]
    if spec.trainable:  # a speed benchmark (lif_layer) has no optimiser step to time
        calls.append(StepCall("train_step", lambda: backend.train_step(staged), staged.size,
                              "forward, backward and Adam step, batch on the device",
                              "peak_device_memory", "allocator peak over training steps"))
    return calls


def load_backend(name: str):
    """The backend class of ``name``; :class:`BackendUnavailable` when its
    framework is missing or broken (nothing else is imported before this)."""
    from backends import load

    return load(name)


@contextmanager
def open_backend(cls, spec: TaskSpec, *, device: str, precision: str, weights: dict | None = None) -> Iterator[Any]:
    """The one way a backend is opened: built from the shared initial weights of
    ``spec`` (or ``weights``), given to the caller, and closed whatever happens.

    A backend that does not run this task, device or precision raises
    :class:`BackendUnavailable` here; what goes wrong inside is the caller's to
    :func:`classify`.  Used by the runner (training and measurement), parity
    and the asv suites alike."""
    try:
        backend = cls(spec, initial_weights(spec) if weights is None else weights, device=device, precision=precision)
    except (NotImplementedError, DeviceUnavailable) as exc:  # not a failure of the backend: it cannot run here
        raise BackendUnavailable(str(exc) or f"{cls.__name__} cannot run {spec.name}") from None
    try:
        yield backend
    finally:
        try:
            backend.close()
        except Exception:  # closing must not hide what happened inside
            pass


def classify(exc: BaseException, backend: Any = None) -> str:
    """The status of a run that raised ``exc``: unavailable, diverged, oom or error."""
    if isinstance(exc, BackendUnavailable):
        return "unavailable"
    if isinstance(exc, Diverged):
        return "diverged"
    if isinstance(exc, (DeviceOutOfMemory, MemoryError)) or is_host_out_of_memory(exc):
        return "oom"
    if backend is not None and backend.is_out_of_memory(exc):
        return "oom"
    return "error"


def execute(
    spec: TaskSpec,
    config: RunConfig,
    body: Callable[[Any, TaskData, Result], None],
    data: TaskData | None = None,
    kind: str = "training",
) -> Result:
    """Load the backend, build it from the shared weights, call ``body`` and
    turn whatever goes wrong into the result's status (``unavailable`` when the
    framework is missing or the backend does not support the task, device or
    precision; ``diverged``; ``oom``; ``error`` with the traceback kept)."""
    if config.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    result = new_result(spec, config)
    result.kind = kind
    t_start = time.perf_counter()
    try:
        cls = load_backend(config.backend)
    except BackendUnavailable as exc:
        return finish(result, "unavailable", str(exc), t_start)
    result.versions.update(safe_versions(cls))
    result.capabilities = cls.capabilities().to_dict()
    if data is None:
        data = make_data(spec, config.data_dir, config.allow_download)  # timed in the setup
    else:  # made before the run: its loading is still part of what the run needed
        result.wall_times["data"] = data.load_seconds
    result.data = data.describe()

    backend = None
    try:
        with open_backend(cls, spec, device=config.device, precision=config.precision) as backend:
            result.device = backend.device_info()
            result.wall_times["setup"] = time.perf_counter() - t_start
            try:
                body(backend, data, result)
            finally:  # what compiled, also when a step then failed to
                record_compilation(result, backend)
        finish(result, "ok", "", t_start)
    except Exception as exc:  # a backend's failure is a result, not a crash
        status = classify(exc, backend)
        if status == "error":
            result.extra["traceback"] = traceback.format_exc()
        finish(result, status, str(exc) if status in ("unavailable", "diverged") else one_line(exc), t_start)
    return result


def record_compilation(result: Result, backend: Any) -> None:
    """A compiling backend's ``compile_info`` into the record, its graph breaks also
    into the record's capability table."""
    info = backend.compile_info()
    if info is None:
        return
    result.extra["compile"] = info
    if "compile" in result.capabilities and info.get("graph_breaks") is not None:
        result.capabilities["compile"]["graph_breaks_counted"] = info["graph_breaks"]


# How running out of host memory reads when a framework's C++ allocator, not
# Python, fails: PyTorch's DefaultCPUAllocator, a C++ std::bad_alloc turned into
# a RuntimeError, the C library's ENOMEM text.
HOST_OOM_TEXTS = ("can't allocate memory", "std::bad_alloc", "cannot allocate memory")


def is_host_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the host (CPU) memory ran out, for any framework."""
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
        return True
    text = str(exc).lower()
    return any(t in text for t in HOST_OOM_TEXTS)


def record_activity(result: Result, acc: EvalAccumulator) -> None:
    """Sparsity and synaptic operations of an evaluated split, into ``result``."""
    act = acc.activity()
    m = result.set_metric
    m("activation_sparsity", act["activation_sparsity"])
    m("synops_ac", act["synops_ac"])
    m("synops_mac", act["synops_mac"])
    m("dense_mac", act["dense_mac"])
    result.extra["synops_per_layer"] = act["per_layer"]


def failed_result(spec: TaskSpec, config: RunConfig, status: str, message: str, kind: str = "training") -> Result:
    """A result for a run that never started (or whose process died)."""
    result = new_result(spec, config)
    result.kind = kind
    return finish(result, status, message, time.perf_counter())


def safe_versions(cls) -> dict[str, str]:
    try:
        return dict(cls.versions())
    except Exception as exc:  # versions are informative; never fail a run over them
        return {"versions_error": one_line(exc)}


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def finish(result: Result, status: str, message: str, t_start: float) -> Result:
    result.status = status
    result.message = message
    result.wall_times["total"] = time.perf_counter() - t_start
    result.set_metric("host_peak_rss", host_peak_rss_bytes())
    result.finished_at = now()
    return result


def _train(spec: TaskSpec, config: RunConfig, backend, data: TaskData, result: Result) -> None:
    scalars = _Scalars(config.tensorboard, f"{spec.name}-{config.backend.replace(':', '-')}")
    curves = {
        "train_loss": Curve("step", "loss"),
        "learning_rate": Curve("epoch", "1"),
    }
    x_name = "step" if spec.eval_every_steps else "epoch"
    for split in data.splits:
        curves[f"{split}_loss"] = Curve(x_name, "loss")
        curves[f"{split}_accuracy"] = Curve(x_name, FRACTION)
    result.curves = curves

    target = spec.accuracy_target(getattr(spec, "dataset", None))
    patience = getattr(spec, "patience", None)
    every = spec.eval_every_steps
    # the time to accuracy counts from the run's start: the framework's import, the data's loading and
    # the network's building (the setup), then training with every compile and the evaluations up to the
    # one that reached the target
    started = time.perf_counter() - result.wall_times.get("setup", 0.0) - result.wall_times.get("data", 0.0)
    state = {"train_time": 0.0, "eval_time": 0.0, "time_to_accuracy": None, "last_test": None}

    def evaluate_point(x: int, step: int) -> None:
        """Evaluate every split; ``x`` is the epoch (or step, with eval_every_steps)."""
        t0 = time.perf_counter()
        for split in data.splits:
            acc = evaluate_split(backend, spec, data, split)
            summary = acc.summary()
            curves[f"{split}_loss"].append(x, summary["loss"])
            curves[f"{split}_accuracy"].append(x, summary["accuracy"])
            scalars.add(f"{split}/loss", summary["loss"], step)
            scalars.add(f"{split}/accuracy", summary["accuracy"], step)
            if split == "test":
                state["last_test"] = acc
                for layer, rate in acc.layer_rates().items():
                    scalars.add(f"firing_rate/{layer}", rate, step)
                reached = target is not None and summary["accuracy"] >= target
                if reached and state["time_to_accuracy"] is None:
                    state["time_to_accuracy"] = time.perf_counter() - started
        state["eval_time"] += time.perf_counter() - t0

    best_val, best_epoch, best_weights, bad_epochs = math.inf, -1, None, 0
    samples = step = epochs_done = 0
    last_loss = math.nan
    backend.reset_peak_memory()

    try:
        for epoch in range(spec.epochs):
            lr = spec.learning_rate(epoch)
            backend.set_learning_rate(lr)
            curves["learning_rate"].append(epoch, lr)
            bar = progress_bar(config.progress, total=data.n_train_batches(), leave=False,
                               desc=f"{config.backend} {spec.name} epoch {epoch + 1}/{spec.epochs}")
            t0 = time.perf_counter()
            for batch in data.train_batches(epoch):
                last_loss = backend.train_step(batch)
                step += 1
                samples += batch.size
                curves["train_loss"].append(step, last_loss)
                scalars.add("train/loss", last_loss, step)
                if not math.isfinite(last_loss):
                    raise Diverged(step, last_loss)
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{last_loss:.4f}")
                if every and step % every == 0:
                    state["train_time"] += time.perf_counter() - t0
                    evaluate_point(step, step)
                    t0 = time.perf_counter()
                if spec.steps is not None and step >= spec.steps:
                    break
            state["train_time"] += time.perf_counter() - t0
            if bar is not None:
                bar.close()
            epochs_done = epoch + 1
            if not every:
                evaluate_point(epoch + 1, step)
            elif step % every:
                evaluate_point(step, step)

            if "val" in data.splits:
                val_loss = curves["val_loss"].y[-1]
                if val_loss is not None and val_loss < best_val:
                    best_val, best_epoch, bad_epochs = val_loss, epoch + 1, 0
                    best_weights = backend.get_weights()
                else:
                    bad_epochs += 1
                    if patience is not None and bad_epochs >= patience:
                        break
            if spec.steps is not None and step >= spec.steps:
                break
    finally:
        scalars.close()

    train_time, eval_time = state["train_time"], state["eval_time"]
    time_to_accuracy, last_test = state["time_to_accuracy"], state["last_test"]
    if best_weights is not None and best_epoch != epochs_done:
        backend.set_weights(best_weights)
        t0 = time.perf_counter()
        last_test = evaluate_split(backend, spec, data, "test")
        eval_time += time.perf_counter() - t0

    summary = last_test.summary()
    layer_rates = last_test.layer_rates()
    result.layers = [
        LayerStat(layer.name, layer.size, layer_rates[layer.name]) for layer in spec.layers()
    ]
    m = result.set_metric
    m("accuracy", summary["accuracy"])
    m("tie_rate", summary["tie_rate"])
    m("accuracy_first_index", summary["accuracy_first_index"])
    m("test_loss", summary["loss"])
    m("final_train_loss", last_loss)
    m("firing_rate_mean", summary["firing_rate_mean"])
    m("firing_rate_overall", summary["firing_rate_overall"])
    record_activity(result, last_test)
    m("steps", step)
    m("epochs", epochs_done)
    m("train_time", train_time)
    m("train_throughput", samples / train_time if train_time > 0 else None)
    m("peak_device_memory", backend.peak_memory_bytes(), "allocator peak over the whole run")
    result.extra["peak_memory_scope"] = getattr(backend, "peak_memory_scope", "window")
    m("time_to_accuracy", time_to_accuracy,
      f"wall time from the run's start until the test accuracy first reached {target}" if target is not None
      else "no target")
    if best_epoch > 0:
        m("best_val_loss", best_val)
        m("best_epoch", best_epoch)
    result.wall_times["train"] = train_time
    result.wall_times["eval"] = eval_time
    if target is not None:
        result.extra["accuracy_target"] = target
