"""``python -m tasks.parity``: prove every backend computes the same thing.

For each task x backend, on a small *parity case* (the task's network at a
reduced size, fresh random inputs, weights scaled where needed so every layer
fires), it reports:

* ``spike_mismatches``: spikes that differ from :mod:`tasks.reference`
  (float64 NumPy), over every layer, step and sample, with tdBN in training
  mode (batch statistics) and in evaluation mode (running statistics);
* ``membrane_rel``: the largest membrane difference from the reference,
  relative to the layer's largest membrane magnitude;
* ``gradient_rel``: the largest gradient difference after one backward pass
  on the same batch from :mod:`tasks.reference_grad` (float64 NumPy BPTT,
  written from the spec like the forward reference), relative to the largest
  reference gradient of the same tensor;
* ``loss_curve_rel``: the largest relative difference of the losses of a
  short training run (20 Adam steps on fixed batches) from the reference's
  (the same BPTT and Adam, in NumPy).

Every backend, ``stbp`` included, is a check in every column: no backend is
the reference of another.

Runs in float64 wherever the framework can (PyTorch on the CPU, JAX with
x64); otherwise float32 with looser tolerances (``TOLERANCES``, the same for
every backend: docs/testing.md).  It exits non-zero when any tolerance is
exceeded or any figure is NaN or infinite; a failing row names the figure, its
value against the limit and the layer, tensor or training step it comes from.
A backend whose library computes something different declares that in its
capability table (``differences`` and ``parity_tolerances``); the row is then
judged by the declared bound and marked as a documented difference.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

import backends as registry

from . import reference, reference_grad, rng
from .child import run_child
from .cli import OneLineParser, resolve_backends
from .data import Batch
from .errors import BackendUnavailable, SpikebenchError
from .provenance import provenance
from .result import write_atomic
from .runner import classify, load_backend, one_line, open_backend
from .specs import TASKS, TaskSpec, get_spec
from .weights import Weights, initial_weights, trainable_names

# The limits, the same for every backend (one a backend declares is a documented
# difference, shown as such).  float64: the worst figure of every backend's
# parity run is 6.5e-14 (dsrn_tdbn's gradients, a sum of thousands of terms in
# another order); 1e-10 leaves three orders of magnitude for that, and is far
# below what a wrong equation gives (stbp's decay off by 1e-7: fc_mnist's gradients 3e-7).
# float32 (frameworks without float64): its rounding is 1e-7 per operation.
FP64_LIMIT = 1e-10
TOLERANCES = {
    "fp64": {"spike_mismatches": 0, "membrane_rel": FP64_LIMIT, "gradient_rel": FP64_LIMIT,
             "loss_curve_rel": FP64_LIMIT},
    "fp32": {"spike_mismatches": 0, "membrane_rel": 1e-5, "gradient_rel": 1e-4, "loss_curve_rel": 1e-4},
}
TRAINING_STEPS = 20

@dataclass
class ParityCase:
    spec: TaskSpec
    weights: Weights
    batches: list[Batch]  # batches[0] is compared; all are used for the training run


def random_batch(spec: TaskSpec, gen: np.random.Generator) -> Batch:
    """Fresh random inputs of the task's kind (no data set needed)."""
    return spec.workload.parity_batch(spec, gen)


def parity_case(task: str, seed: int = 0, edge: bool = True) -> ParityCase:
    """The task's parity case (``PARITY_SIZE`` and ``PARITY_GAINS`` of its module: the task at
    a small size, and gains on linear/conv weights so that every layer fires at a useful rate;
    a layer that never spikes proves nothing about resets or surrogates).  ``edge=False``
    leaves out the membrane at the threshold (for a test of something else on a backend that
    is known to fire there)."""
    workload = TASKS[task].workload
    spec = get_spec(task, seed=seed).with_overrides(**workload.PARITY_SIZE)
    weights = initial_weights(spec)
    for name, gain in workload.PARITY_GAINS.items():
        weights[name] = weights[name] * gain
    gen = rng.stream(seed, f"parity-{task}")
    batches = [random_batch(spec, gen) for _ in range(TRAINING_STEPS)]
    if edge:
        at_threshold(spec, weights, batches[0])
    return ParityCase(spec, weights, batches)


def at_threshold(spec: TaskSpec, weights: Weights, batch: Batch) -> None:
    """Put a first-layer membrane exactly at V_th in sample 0 at t = 0 (the edge where ``>``
    and ``>=`` differ: no spike, and no subtractive reset at t = 1), where any arithmetic of
    the spec gives exactly V_th (``at_threshold`` of the task's module; ``None`` in a task
    where no arithmetic lands there exactly)."""
    if spec.workload.at_threshold is not None:
        spec.workload.at_threshold(spec, weights, batch)


@dataclass
class ParityRow:
    task: str
    backend: str
    precision: str = "fp64"
    status: str = "ok"  # ok | fail | unavailable | error
    message: str = ""
    spike_mismatches: int | None = None
    spikes_compared: int | None = None
    membrane_rel: float | None = None
    gradient_rel: float | None = None
    loss_curve_rel: float | None = None
    tolerances: dict = field(default_factory=dict)
    documented_difference: str = ""
    failures: list[str] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)  # figure -> the layer, tensor or step of its worst value


def _worst(found: list[tuple[float, str]]) -> tuple[float, str]:
    """The largest (value, where); a NaN is larger than anything (``max`` would drop it)."""
    return max(found, key=lambda f: (math.isnan(f[0]), f[0]), default=(0.0, ""))


def exceeds(value: float | None, limit: float) -> bool:
    """A figure fails its limit when it is missing, NaN, infinite or over the limit."""
    return value is None or not math.isfinite(value) or value > limit


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (0 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a - b).max()) if b.size else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def compare_forward(case: ParityCase, backend, where: dict[str, str] | None = None) -> tuple[int, int, float]:
    """Spike mismatches, spikes compared and membrane difference, in both tdBN modes;
    ``where`` gets the layers they come from."""
    mismatches = compared = 0
    membranes, missed = [], []
    batch = case.batches[0]
    for batch_statistics in (True, False):
        mode = "batch statistics" if batch_statistics else "running statistics"
        ref = reference.forward(case.spec, case.weights, batch, batch_statistics=batch_statistics)
        out = backend.evaluate(batch, record=True, batch_statistics=batch_statistics)
        for layer in case.spec.layer_names():
            got, want = np.asarray(out.spikes[layer]), ref.spikes[layer]
            if got.shape != want.shape:
                raise ValueError(f"layer {layer}: spikes of shape {got.shape}, reference {want.shape}")
            wrong = int((got != want).sum())
            mismatches += wrong
            compared += want.size
            if wrong:
                missed.append(f"{layer} ({mode}): {wrong}")
            membranes.append((_rel(out.membranes[layer], ref.membranes[layer]), f"{layer} ({mode})"))
    worst, at = _worst(membranes)
    if where is not None:
        where["membrane_rel"] = at
        if missed:
            where["spike_mismatches"] = ", ".join(missed)
    return mismatches, compared, worst


def loss_curve(backend, batches: list[Batch]) -> np.ndarray:
    return np.array([backend.train_step(b) for b in batches])


def check_backend(task: str, name: str, precision: str = "fp64", seed: int = 0) -> ParityRow:
    """Parity of backend ``name`` on ``task`` against the NumPy forward and backward references."""
    row = ParityRow(task=task, backend=name, precision=precision)
    try:
        cls = load_backend(name)
    except BackendUnavailable as exc:
        row.status, row.message = "unavailable", str(exc)
        return row
    caps = cls.capabilities()
    if task not in caps.tasks:
        row.status, row.message = "unavailable", f"{name} does not implement {task}"
        return row
    if precision not in caps.precisions:
        precision = row.precision = "fp32"
    tolerances = dict(TOLERANCES[precision])
    declared = caps.parity_tolerances.get(task, {})
    tolerances.update(declared)
    row.tolerances = tolerances
    if declared:
        row.documented_difference = caps.differences.get(task) or caps.differences.get("all", "")

    case = parity_case(task, seed)
    backend = None
    try:
        with open_backend(cls, case.spec, device="cpu", precision=precision, weights=case.weights) as backend:
            row.spike_mismatches, row.spikes_compared, row.membrane_rel = compare_forward(case, backend, row.where)
            grads = backend.gradients(case.batches[0])
            want = reference_grad.gradients(case.spec, case.weights, case.batches[0])
            missing = sorted(set(trainable_names(case.weights)) - set(grads))
            if missing:
                raise ValueError(f"no gradient returned for {missing}")
            row.gradient_rel, row.where["gradient_rel"] = _worst([(_rel(grads[k], want[k]), k) for k in want])
            got_curve = loss_curve(backend, case.batches)
            want_curve = reference_grad.loss_curve(case.spec, case.weights, case.batches)
            steps = np.abs(got_curve - want_curve) / np.maximum(np.abs(want_curve), 1e-300)
            row.loss_curve_rel, row.where["loss_curve_rel"] = _worst(
                [(float(v), f"training step {i + 1}") for i, v in enumerate(steps)])
    except Exception as exc:  # a broken backend is a row of the matrix, not a crash
        status = classify(exc, backend)
        row.status = "unavailable" if status == "unavailable" else "error"
        prefix = "" if status in ("unavailable", "error") else f"{status}: "
        row.message = prefix + one_line(exc)
        return row
    for key, limit in tolerances.items():
        value = getattr(row, key)
        if exceeds(value, limit):
            row.failures.append(failure_text(key, value, limit, row.where.get(key, "")))
    if row.failures:
        row.status = "fail"
        row.message = "; ".join(row.failures)
    return row


def failure_text(key: str, value: float | None, limit: float, where: str) -> str:
    """"gradient_rel nan (not finite) on fc1.weight, limit 1e-10": the figure, by how much, where."""
    if value is None:
        said = "not computed"
    elif not math.isfinite(value):
        said = f"{value} (not finite)"
    else:
        times = value / limit if limit else math.inf
        said = f"{value:.3g} ({times:,.0f}x the limit)" if limit and times >= 100 else f"{value:.3g}"
    return f"{key} {said} on {where or 'the whole case'}, limit {limit:g}"


def format_table(rows: list[ParityRow]) -> str:
    head = ["task", "backend", "prec", "spike mismatches", "membrane rel", "gradient rel", "loss curve rel", "status"]
    lines = []
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.2e}"  # noqa: E731
        mism = "-" if r.spike_mismatches is None else f"{r.spike_mismatches}/{r.spikes_compared}"
        status = r.status + (" (documented difference)" if r.documented_difference and r.status == "ok" else "")
        if r.status in ("unavailable", "error", "fail"):  # a failure says in the table which figure, where
            status += f": {r.message}"
        lines.append([r.task, r.backend, r.precision, mism, fmt(r.membrane_rel), fmt(r.gradient_rel),
                      fmt(r.loss_curve_rel), status])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(l, widths)).rstrip() for l in lines]
    return "\n".join(out)


def _run_child(task_names: list[str], name: str, seed: int) -> list[ParityRow]:
    """One backend in its own process (variants set environment variables before import)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        argv = [sys.executable, "-m", "tasks.parity", "--child", "--task", ",".join(task_names),
                "--backend", name, "--seed", str(seed), "--json", str(out)]
        child = run_child(argv, out, stdout=subprocess.DEVNULL)
        if child.wrote:
            return [ParityRow(**r) for r in json.loads(out.read_text())["rows"]]
        return [ParityRow(task=t, backend=name, status="error",
                          message=f"parity process ended with exit status {child.returncode}") for t in task_names]


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m tasks.parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="all", help=f"a task, a comma list or 'all' ({', '.join(TASKS)})")
    p.add_argument("--backend", default="all", help="a backend, a comma list, 'eager' (all but the compiled variants) or 'all'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON (for the report)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        task_names = list(TASKS) if args.task == "all" else [t.strip() for t in args.task.split(",")]
        for t in task_names:
            if t not in TASKS:
                raise SpikebenchError(f"unknown task {t!r}; valid tasks: {', '.join(TASKS)}")
        names = resolve_backends(args.backend)
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return 2

    if args.child:
        rows = [check_backend(t, names[0], seed=args.seed) for t in task_names]
    else:
        rows = []
        for name in names:
            if not registry.availability(name)[0]:
                rows += [check_backend(t, name) for t in task_names]  # unavailable rows, at once
            else:
                rows += _run_child(task_names, name, args.seed)
        print(format_table(rows))
    if args.json:
        write_atomic(args.json, json.dumps({"tolerances": TOLERANCES, "host": provenance(),
                                            "rows": [asdict(r) for r in rows]}, indent=1))
    failed = [r for r in rows if r.status in ("fail", "error")]
    if failed and not args.child:
        sys.stderr.write(f"spikebench: parity failed for {len(failed)} of {len(rows)} task x backend pairs\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
