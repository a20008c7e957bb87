"""The contract every registered backend keeps, checked on each task it runs
(``python -m tests.backend_contract NAME [TASK,...]`` prints its broken promises and
the tasks it turned out unavailable for as JSON).

Run in a process of its own per backend (a variant sets environment
variables before its framework is imported), at the parity cases' small sizes:

* weights round-trip: ``set_weights(get_weights())`` changes nothing, and
  ``get_weights`` returns the shared names and shapes;
* ``evaluate`` and ``gradients`` leave every weight and running statistic alone;
* ``forward_backward`` takes no optimiser step (trainable weights unchanged);
* ``train_step`` does take one (some trainable weight changes).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from tasks.errors import BackendUnavailable
from tasks.parity import TOLERANCES, ParityRow, exceeds, parity_case
from tasks.runner import load_backend, open_backend
from tasks.weights import trainable_names


def assert_parity(row: ParityRow) -> None:
    """What every backend's own parity test asserts: the row is ok by parity's one set of
    limits for its precision (none declared by the backend), every figure computed and
    finite, and spikes compared at all."""
    assert row.status == "ok", row.message
    limits = TOLERANCES[row.precision]
    assert row.tolerances == limits, f"{row.backend} judged by {row.tolerances}, not parity's {limits}"
    assert row.spikes_compared and row.spike_mismatches == 0, (row.spike_mismatches, row.spikes_compared)
    for key, limit in limits.items():
        assert not exceeds(getattr(row, key), limit), (key, getattr(row, key), limit, row.where.get(key))


def _changed(before: dict, after: dict, names) -> list[str]:
    return [k for k in names if not np.array_equal(np.asarray(before[k]), np.asarray(after[k]))]


def check(name: str, task: str) -> list[str]:
    case = parity_case(task)
    cls = load_backend(name)
    precision = "fp64" if "fp64" in cls.capabilities().precisions else "fp32"
    broken = []
    with open_backend(cls, case.spec, device="cpu", precision=precision, weights=case.weights) as backend:
        start = backend.get_weights()
        if sorted(start) != sorted(case.weights) or any(np.shape(start[k]) != np.shape(case.weights[k]) for k in start):
            broken.append("get_weights does not return the shared names and shapes")
        backend.set_weights(start)
        if _changed(start, backend.get_weights(), start):
            broken.append("set_weights(get_weights()) changed weights")
        batch = case.batches[0]
        backend.evaluate(batch)
        backend.evaluate(batch, record=True, batch_statistics=True)
        moved = _changed(start, backend.get_weights(), start)
        if moved:
            broken.append(f"evaluate changed {moved}")
        backend.gradients(batch)
        moved = _changed(start, backend.get_weights(), start)
        if moved:
            broken.append(f"gradients changed {moved}")
        trained = trainable_names(start)
        backend.forward_backward(backend.stage(batch))
        backend.synchronize()
        moved = _changed(start, backend.get_weights(), trained)
        if moved:
            broken.append(f"forward_backward changed trainable weights {moved} (an optimiser step)")
        if case.spec.trainable:
            backend.train_step(batch)
            if not _changed(start, backend.get_weights(), trained):
                broken.append("train_step changed no trainable weight")
    return broken


def main(name: str, tasks: list[str] | None = None) -> dict[str, dict]:
    """{"broken": {task: [broken promises]}, "unavailable": {task: why}} over the tasks
    it runs (of ``tasks`` when given): a task the backend turns out not to run (a
    compiled variant whose step does not compile) is unavailable, with its reason,
    not broken."""
    cls = load_backend(name)
    broken, unavailable = {}, {}
    for task in cls.capabilities().tasks:
        if tasks is not None and task not in tasks:
            continue
        try:
            broken[task] = check(name, task)
        except BackendUnavailable as exc:
            unavailable[task] = str(exc)
    return {"broken": broken, "unavailable": unavailable}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2].split(",") if len(sys.argv) > 2 else None)))
