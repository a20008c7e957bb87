"""``python -m tasks.floor``: the least time a training step can take on a GPU or on this CPU.

For a task at a batch size, T and precision, count what one training step
must do -- floating-point operations and bytes moved to and from device
memory -- layer by layer, from the task spec alone (no framework).  Each
operation takes at least ``max(flops / peak FLOP/s, bytes / bandwidth)``
(the roofline); the floor of the step is the sum over its operations, which
run one after another.  A measured step time divided by the floor says how
far an implementation is from what the hardware allows.

The model (``docs/performance.md`` explains it):

* synapses (linear, convolution): 2 FLOPs per multiply-accumulate forward;
  backward the weight gradient and, unless the input is the data, the input
  gradient, 2 each.  A static input (an image fed at every step) is
  multiplied once per sample, not once per step.  Bytes: the input, the
  weights and the output once forward; the output gradient, the input, the
  weights and the gradients written backward.
* neurons: forward read the input, write the spikes and the one saved
  membrane (float32); backward read the spike gradient and the membrane,
  write the input gradient.
* tdBN: forward read and write each element once, backward read two and
  write one (the statistics are taken in the same passes).
* the residual sum: read two, write one (forward only).
* Adam (training steps only): read parameter, gradient and both moments,
  write three, per parameter.

Convolution and linear operands are 4 bytes (fp32, tf32) or 2 (bf16); neuron
state, gradients and optimiser state are 4.  GPU peak rates are the vendor's
dense figures: CUDA-core float32 for ``fp32`` (TF32 off), tensor cores for
``tf32`` and ``bf16``.  On the CPU (``--device cpu``) the rates are measured
by a short calibration run (:mod:`tasks.calibrate`): the best matrix-product
rate per precision of the GEMMs installed (PyTorch's and XLA's), used for every
FLOP (an upper bound, so the floor stays a lower bound), and the bandwidth of
a large copy.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import SpikebenchError
from .specs import PRECISIONS, TASKS, DSRNSpec, SynapseInfo, TaskSpec, get_spec

STATE_BYTES = 4  # neuron state, gradients, optimiser state


@dataclass(frozen=True)
class GPU:
    """A device's rates: a GPU's datasheet, or this CPU's calibration."""

    name: str
    peak_flops: dict[str, float]  # precision -> FLOP/s (dense); "fp32" also for what is not a matrix product
    bandwidth: float  # bytes/s
    type: str = "cuda"


GPUS = {
    # NVIDIA's H100 SXM5 and H200 SXM datasheets (dense, no sparsity)
    "h100": GPU("NVIDIA H100 SXM5 80GB", {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12}, 3.35e12),
    "h200": GPU("NVIDIA H200 SXM 141GB", {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12}, 4.8e12),
}


@dataclass(frozen=True)
class Op:
    """One piece of a step: its name, FLOPs and bytes moved."""

    name: str
    flops: float
    bytes: float
    tensor_core: bool = False  # a matrix product (runs at the precision's matrix rate)

    def compute_seconds(self, gpu: GPU, precision: str) -> float:
        return self.flops / (gpu.peak_flops[precision] if self.tensor_core else gpu.peak_flops["fp32"])

    def memory_seconds(self, gpu: GPU) -> float:
        return self.bytes / gpu.bandwidth

    def seconds(self, gpu: GPU, precision: str) -> float:
        """The roofline: the larger of the two bounds."""
        return max(self.compute_seconds(gpu, precision), self.memory_seconds(gpu))


def operand_bytes(precision: str) -> int:
    return 2 if precision == "bf16" else 4


def _synapse_macs(s: SynapseInfo) -> tuple[int, int]:
    """Multiply-accumulates per sample and step, and the weight count."""
    if s.kind == "linear":
        weights = math.prod(s.in_shape) * math.prod(s.out_shape)
        return weights, weights
    weights = s.out_shape[0] * s.in_shape[0] * s.kernel * s.kernel
    return math.prod(s.out_shape[1:]) * weights, weights


def step_ops(spec: TaskSpec, precision: str, training: bool = True) -> list[Op]:
    """The operations of one step (forward + backward, plus Adam when ``training``)."""
    if precision not in PRECISIONS:
        raise SpikebenchError(f"precision must be one of {', '.join(PRECISIONS)}")
    act = operand_bytes(precision)
    T, B = spec.T, spec.batch_size
    static = spec.static_input
    ops: list[Op] = []
    params = 0
    for s in spec.synapses():
        macs, weights = _synapse_macs(s)
        from_data = s.source == "input"
        reps = B if (from_data and static) else T * B
        n_in, n_out = math.prod(s.in_shape) * reps, math.prod(s.out_shape) * reps
        params += weights + (s.out_shape[0] if s.bias else 0)
        ops.append(Op(f"{s.name} forward", 2 * macs * reps, act * (n_in + n_out + weights), True))
        back_flops = 2 * macs * reps * (1 if from_data else 2)
        back_bytes = act * (n_out + n_in + weights) + STATE_BYTES * weights + (0 if from_data else act * n_in)
        ops.append(Op(f"{s.name} backward", back_flops, back_bytes, True))
        if isinstance(spec, DSRNSpec) and s.kind == "conv":
            n_bn = math.prod(s.out_shape) * reps
            params += 2 * s.out_shape[0]
            ops.append(Op(f"{s.name} tdBN forward", 4 * n_bn, STATE_BYTES * 2 * n_bn))
            ops.append(Op(f"{s.name} tdBN backward", 6 * n_bn, STATE_BYTES * 3 * n_bn))
    first = spec.layers()[0].name
    for layer in spec.layers():
        n = layer.size * T * B
        # the first layer of a static-input task reads (and returns the gradient of) one copy per sample
        n_in = layer.size * B if (static and layer.name == first) else n
        ops.append(Op(f"{layer.name} forward", 5 * n, STATE_BYTES * n_in + act * n + STATE_BYTES * n))
        ops.append(Op(f"{layer.name} backward", 10 * n, STATE_BYTES * (2 * n + n_in)))
    if isinstance(spec, DSRNSpec):
        for b in spec.blocks():
            n = b.out_channels * b.out_size * b.out_size * T * B
            ops.append(Op(f"{b.prefix} residual sum", n, STATE_BYTES * 3 * n))
    if training:
        ops.append(Op("Adam", 12 * params, STATE_BYTES * 7 * params))
    return ops


@dataclass(frozen=True)
class Floor:
    task: str
    T: int
    batch_size: int
    precision: str
    gpu: str
    flops: float
    bytes: float
    seconds: float  # the floor
    compute_seconds: float  # the sum of the FLOP terms alone
    memory_seconds: float  # the sum of the byte terms alone


def cpu_device(cal) -> GPU:
    """This CPU as the floor sees it, from a :class:`tasks.calibrate.Calibration`.

    Every FLOP counts at the matrix-product rate of its precision (the fastest
    this CPU reaches), and TF32 is float32 here."""
    rates = {p: cal.peak(p) for p in PRECISIONS}
    rates = {p: v for p, v in rates.items() if v > 0}
    return GPU(f"{cal.cpu}, {cal.threads} threads (calibrated)", {**rates, "fp32": rates.get("fp32", 0.0)},
               cal.bandwidth, type="cpu")


def floor(spec: TaskSpec, precision: str, gpu: str | GPU = "h100", training: bool | None = None) -> Floor:
    if isinstance(gpu, GPU):
        g = gpu
    elif gpu in GPUS:
        g = GPUS[gpu]
    else:
        raise SpikebenchError(f"unknown GPU {gpu!r}; choose from {', '.join(GPUS)}")
    if g.type == "cpu":  # every FLOP at the matrix-product rate of its precision
        ops = step_ops(spec, precision, spec.trainable if training is None else training)
        rate = g.peak_flops[precision]
        return Floor(
            task=spec.name, T=spec.T, batch_size=spec.batch_size, precision=precision, gpu=g.name,
            flops=sum(op.flops for op in ops), bytes=sum(op.bytes for op in ops),
            seconds=sum(max(op.flops / rate, op.bytes / g.bandwidth) for op in ops),
            compute_seconds=sum(op.flops / rate for op in ops),
            memory_seconds=sum(op.bytes / g.bandwidth for op in ops),
        )
    ops = step_ops(spec, precision, spec.trainable if training is None else training)
    return Floor(
        task=spec.name, T=spec.T, batch_size=spec.batch_size, precision=precision, gpu=g.name,
        flops=sum(op.flops for op in ops), bytes=sum(op.bytes for op in ops),
        seconds=sum(op.seconds(g, precision) for op in ops),
        compute_seconds=sum(op.compute_seconds(g, precision) for op in ops),
        memory_seconds=sum(op.memory_seconds(g) for op in ops),
    )


# The points docs/performance.md tabulates: each task at its recipe's batch
# size, at the overrides its module lists (FLOOR_POINTS).
DOC_POINTS: list[tuple[str, dict]] = [
    (task, overrides) for task, cls in TASKS.items() for overrides in cls.workload.FLOOR_POINTS]


def cpu_points() -> list[tuple[str, dict]]:
    """The CPU table's points: the cpu profile's timing points (its sizes), each once (a point
    of the compiled variants' rows is one of the eager rows' too)."""
    from .profiles import get_profile

    out = []
    for row in get_profile("cpu").timing:
        for T in row.Ts or (None,):
            for n in row.neurons or (None,):
                overrides = dict(row.settings)
                if T is not None:
                    overrides["T"] = T
                if n is not None:
                    overrides["neurons"] = n
                if (row.task, overrides) not in out:
                    out.append((row.task, overrides))
    return out


def _label(spec: TaskSpec) -> str:
    extra = f", N={spec.neurons}" if hasattr(spec, "neurons") else ""  # type: ignore[attr-defined]
    width = getattr(spec, "width", 1)
    extra += f", width {width:g}" if width not in (None, 1, 1.0) else ""
    return f"{spec.name} (T={spec.T}, B={spec.batch_size}{extra})"


def _point_key(task: str, T, batch_size, neurons, width, precision: str) -> tuple:
    """What matches a measured time to a point of the table: the task, its
    sizes and the precision (``None`` where the task has no such size)."""
    return (task, T, batch_size, neurons, width, precision)


def _spec_key(spec: TaskSpec, precision: str) -> tuple:
    return _point_key(spec.name, spec.T, spec.batch_size, getattr(spec, "neurons", None), getattr(spec, "width", None),
                      precision)


def measured_times(results_dir: Path | None, device: str = "cuda") -> dict[tuple, list[tuple[str, float]]]:
    """Measured step times on ``device`` from ``tasks.measure`` records, keyed like the floor table."""
    from .result import Result, record_files

    found: dict[tuple, list[tuple[str, float]]] = {}
    if results_dir is None:
        return found
    for path in record_files(results_dir):  # not the editions moved aside into .editions/
        try:
            r = Result.load(path)
        except Exception:
            continue  # parity files and others that are not result records
        if r.status != "ok" or r.kind != "measurement" or (r.device or {}).get("type") != device:
            continue
        # the floor's step: a training step, or forward + backward for lif_layer
        t = r.metric("train_step_time")
        t = r.metric("forward_backward_time") if t is None else t
        if t is None:
            continue
        task = r.config.get("task", {})
        key = _point_key(r.task, task.get("T"), task.get("batch_size"), task.get("neurons"), task.get("width"),
                         r.precision)
        found.setdefault(key, []).append((r.backend, float(t)))
    return found


def table(precisions: Sequence[str], gpu: str | GPU, results_dir: Path | None = None) -> str:
    """The markdown table of docs/performance.md (with measured multiples when results are given)."""
    device = gpu if isinstance(gpu, GPU) else GPUS.get(gpu)
    on_cpu = device is not None and device.type == "cpu"
    measured = measured_times(results_dir, "cpu" if on_cpu else "cuda")
    head = "| task | precision | GFLOP | MB moved | compute-bound | memory-bound | floor |"
    rule = "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    if results_dir is not None:
        head += " measured (multiple of the floor) |"
        rule += " --- |"
    lines = [head, rule]
    for precision in precisions:
        for task, overrides in (cpu_points() if on_cpu else DOC_POINTS):
            spec = get_spec(task, **overrides)
            f = floor(spec, precision, gpu)
            row = (f"| {_label(spec)} | {precision} | {f.flops / 1e9:,.1f} | {f.bytes / 1e6:,.1f} | "
                   f"{f.compute_seconds * 1e3:.3f} ms | {f.memory_seconds * 1e3:.3f} ms | {f.seconds * 1e3:.3f} ms |")
            if results_dir is not None:
                cells = [f"{b} {t * 1e3:.2f} ms ({t / f.seconds:.1f}x)"
                         for b, t in sorted(measured.get(_spec_key(spec, precision), []))]
                row += f" {'; '.join(cells) or 'not measured'} |"
            lines.append(row)
    return "\n".join(lines)


# The engine's speed targets (docs/performance.md) for our own backend: at least this much faster than the
# best other backend, or, where that would go below the floor, within this
# multiple of it.
TARGET_SPEEDUP = 1.5
TARGET_NEAR_FLOOR = 1.25


def targets(precision: str, gpu: str | GPU, results_dir: Path, backend: str) -> str:
    """The markdown table of ``backend`` against the best other measured backend and the floor, per point."""
    device = gpu if isinstance(gpu, GPU) else GPUS.get(gpu)
    on_cpu = device is not None and device.type == "cpu"
    measured = measured_times(results_dir, "cpu" if on_cpu else "cuda")
    lines = [f"| point | {backend} | best other | {backend} vs best other | multiple of the floor | "
             f"target ({TARGET_SPEEDUP:g}x faster, or within {TARGET_NEAR_FLOOR:g}x of the floor) |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for task, overrides in (cpu_points() if on_cpu else DOC_POINTS):
        spec = get_spec(task, **overrides)
        times = dict(measured.get(_spec_key(spec, precision), []))
        ours = times.pop(backend, None)
        if ours is None or not times:
            continue
        other, best = min(times.items(), key=lambda item: item[1])
        multiple = ours / floor(spec, precision, gpu).seconds
        ratio = f"{best / ours:.2f}x faster" if ours <= best else f"{ours / best:.2f}x slower"
        if best / ours >= TARGET_SPEEDUP:
            verdict = "met (faster)"
        elif multiple <= TARGET_NEAR_FLOOR:
            verdict = "met (near the floor)"
        else:
            verdict = "not met"
        lines.append(f"| {_label(spec)} | {ours * 1e3:.2f} ms | {other} {best * 1e3:.2f} ms | {ratio} | "
                     f"{multiple:.2f}x | {verdict} |")
    return "\n".join(lines)


def cpu_calibration(path: Path | None, precisions: Sequence[str] = ("fp32", "bf16")):
    """The calibration in ``path`` when it exists, else a fresh one of ``precisions`` (written to
    ``path`` when given): bf16 only when asked for, as a CPU without bf16 instructions times
    its bf16 products for many minutes (on a 2-core AMD EPYC without AVX-512, more than 15)
    where fp32 takes half a minute."""
    import json

    from .calibrate import Calibration, calibrate
    from .result import write_atomic

    if path is not None and path.is_file():
        try:
            return Calibration(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise SpikebenchError(f"--calibration {path} is not a calibration file ({exc})") from None
    # fp32 always: what is not a matrix product counts at its rate (cpu_device); tf32 is fp32 here
    cal = calibrate(("fp32",) + (("bf16",) if "bf16" in precisions else ()))
    if path is not None:
        write_atomic(path, json.dumps(cal.to_dict(), indent=1) + "\n")
    return cal


def check_same_machine(cal, results_dir: Path) -> None:
    """A floor is this calibration's machine's: records taken on another kind of machine
    (where both say which) are not measured against it."""
    from .machine import describe, fingerprint
    from .provenance import edition_of
    from .result import record_files

    if not cal.machine:
        return
    mine = fingerprint(cal.machine)
    others: dict[str, dict] = {}
    for path in record_files(results_dir):
        _, machine_fp, identity = edition_of(path)
        if machine_fp not in ("unrecorded", "unreadable", mine):
            others.setdefault(machine_fp, identity)
    if others:
        found = "; ".join(f"{fp} ({describe(m) if m else 'not described'})" for fp, m in sorted(others.items()))
        raise SpikebenchError(f"{results_dir} holds records taken on another machine than the calibration's "
                              f"({found}; the calibration's: {mine}, {describe(cal.machine)}): calibrate there")


def calibration_line(cal) -> str:
    rates = "; ".join(f"{p} " + ", ".join(f"{name} {r / 1e9:,.0f}" for name, r in sorted(cal.gemm[p].items()))
                      for p in cal.gemm)
    return (f"CPU calibration: {cal.cpu}, {cal.threads} threads; GEMM GFLOP/s: {rates}; "
            f"copy {cal.bandwidth / 1e9:,.1f} GB/s")


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import OneLineParser

    p = OneLineParser(prog="python -m tasks.floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cuda: a GPU's datasheet (--gpu); cpu: this CPU, calibrated by a short run")
    p.add_argument("--gpu", default="h100", choices=sorted(GPUS))
    p.add_argument("--calibration", metavar="FILE",
                   help="with --device cpu: read the calibration from FILE, or write the one this run measures there")
    p.add_argument("--precision", default="fp32,bf16", help=f"comma list of {', '.join(PRECISIONS)}")
    p.add_argument("--results", metavar="DIR", help="add measured step times from these result records")
    p.add_argument("--against", metavar="BACKEND",
                   help=f"with --results: instead of the floors, BACKEND against the best other backend and the "
                        f"floor (the engine's targets: {TARGET_SPEEDUP:g}x faster, or within {TARGET_NEAR_FLOOR:g}x "
                        f"of the floor)")
    args = p.parse_args(argv)
    try:
        if args.calibration and args.device != "cpu":
            raise SpikebenchError("--calibration is for --device cpu")
        precisions = [x.strip() for x in args.precision.split(",") if x.strip()]
        bad = [x for x in precisions if x not in PRECISIONS]
        if bad or not precisions:
            raise SpikebenchError(f"precision must be a comma list of {', '.join(PRECISIONS)}, got {args.precision!r}")
        if args.results and not Path(args.results).is_dir():
            raise SpikebenchError(f"--results {args.results} is not a directory")
        if args.against and not args.results:
            raise SpikebenchError("--against needs --results")
        device: str | GPU = args.gpu
        if args.device == "cpu":
            calibration = Path(args.calibration) if args.calibration else None
            existed = calibration is not None and calibration.is_file()
            cal = cpu_calibration(calibration, precisions)
            device = cpu_device(cal)
            if args.results:
                check_same_machine(cal, Path(args.results))
            print(calibration_line(cal))
            missing = [x for x in precisions if x not in device.peak_flops]
            if missing and existed:
                raise SpikebenchError(f"{calibration} holds no {', '.join(missing)} rates: calibrate again into "
                                      f"another file with --precision {','.join(precisions)}")
            if missing:
                raise SpikebenchError(f"no matrix product could be timed here in {', '.join(missing)}")
        if args.against:
            for precision in precisions:
                print(targets(precision, device, Path(args.results), args.against))
        else:
            print(table(precisions, device, Path(args.results) if args.results else None))
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
