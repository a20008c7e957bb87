"""The task registry (tasks/workloads/): every module of the package is a task, found by
scanning, in its ORDER, and holds every piece the generic modules read from it."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import pytest

from reports.keys import NOT_STRUCTURAL, TASK_ORDER
from tasks import parity, reference, reference_grad, rng, workloads
from tasks.data import TaskData
from tasks.specs import TASKS, get_spec
from tasks.taskspec import TaskSpec
from tasks.weights import initial_weights

# what a task module defines (tasks/workloads/__init__.py's docstring)
INTERFACE = ("SPEC", "ORDER", "DATA", "initial_weights", "reference_forward", "reference_gradients", "PARITY_SIZE",
             "PARITY_GAINS", "parity_batch", "at_threshold", "FLOOR_POINTS")


def test_the_registry_holds_every_module_of_the_package_in_its_order():
    package = Path(workloads.__file__).parent
    assert set(TASKS) == {p.stem for p in package.glob("*.py")} - {"__init__"}
    orders = [module.ORDER for module in workloads.MODULES.values()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert TASK_ORDER == list(TASKS)  # the report's order is the registry's


@pytest.mark.parametrize("task", list(TASKS))
def test_a_task_module_defines_every_piece_and_its_spec_points_back_at_it(task):
    module = workloads.MODULES[task]
    missing = [name for name in INTERFACE if not hasattr(module, name)]
    assert not missing, f"tasks/workloads/{task}.py lacks {missing}"
    assert module.SPEC is TASKS[task] and TASKS[task].workload is module and module.__name__.endswith(f".{task}")
    assert issubclass(module.SPEC, TaskSpec) and issubclass(module.DATA, TaskData)
    assert module.at_threshold is None or callable(module.at_threshold)


@pytest.mark.parametrize("task", list(TASKS))
def test_parity_sizes_gains_and_floor_points_are_settings_and_weights_of_the_task(task):
    module = workloads.MODULES[task]
    spec = get_spec(task, **module.PARITY_SIZE)  # a setting the task lacks is refused here
    assert set(module.PARITY_GAINS) <= set(initial_weights(spec))
    for overrides in module.FLOOR_POINTS:
        get_spec(task, **overrides)
    fields = {f.name for f in dataclasses.fields(module.SPEC)}
    assert module.SPEC.not_structural <= fields, module.SPEC.not_structural - fields


def test_the_report_reads_the_fields_that_change_no_network_from_the_specs():
    assert NOT_STRUCTURAL == {"task"}.union(*(cls.not_structural for cls in TASKS.values()))
    # the sizes of a network are structural in every task that has them
    assert not {"batch_size", "n_hidden", "neurons", "width", "stages", "image_size"} & NOT_STRUCTURAL


def test_the_generic_passes_run_each_task_through_its_module():
    """reference.forward and reference_grad.loss_and_gradients take the task's network from its
    module: a spec whose module is swapped runs the swapped network."""
    spec = get_spec("lif_layer", **workloads.MODULES["lif_layer"].PARITY_SIZE)
    weights = initial_weights(spec)
    batch = parity.random_batch(spec, rng.stream(0, "test-workloads"))
    calls = []

    def forward(spec, w, x, batch_statistics, record, running):
        calls.append("forward")
        return workloads.MODULES["lif_layer"].reference_forward(spec, w, x, batch_statistics, record, running)

    fake = types.SimpleNamespace(reference_forward=forward)

    class Swapped(type(spec)):
        workload = fake

    swapped = Swapped(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
    got, want = reference.forward(swapped, weights, batch), reference.forward(spec, weights, batch)
    assert calls == ["forward"] and np.array_equal(got.spikes["lif"], want.spikes["lif"])
    assert set(reference_grad.gradients(spec, weights, batch)) == {"fc.weight"}


def _module(name: str, task: str, order: int = 9) -> types.ModuleType:
    module = types.ModuleType(f"tasks.workloads.{name}")
    module.SPEC = type("Spec", (), {"name": task})
    module.ORDER = order
    return module


def test_a_task_module_is_named_after_its_task_and_registered_once():
    with pytest.raises(ImportError, match="named after its task"):
        workloads.register(_module("mine", "other"))
    with pytest.raises(ImportError, match="defined twice"):
        workloads.register(_module("fc_mnist", "fc_mnist"))
    assert list(TASKS) == list(workloads.MODULES)  # nothing half-registered


def test_a_new_module_in_the_package_is_found_without_a_list(tmp_path, monkeypatch):
    package = tmp_path / "scratch_workloads"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "late.py").write_text("ORDER = 2\n")
    (package / "early.py").write_text("ORDER = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = workloads.discover([str(package)], "scratch_workloads")
    assert [m.__name__ for m in found] == ["scratch_workloads.early", "scratch_workloads.late"]
