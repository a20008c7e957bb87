"""The task registry: every module of this package is one task.

A task module holds what the task *is* (docs/architecture.md, "How to add a
task"), under these names:

``SPEC``
    its :class:`~tasks.taskspec.TaskSpec` subclass: sizes, recipe, targets,
    kinds, layout and published result
``ORDER``
    where it sits among the tasks (tables, figures, ``--task all``)
``DATA``
    its data pipeline, a :class:`~tasks.data.TaskData` class
``initial_weights(spec, gen)``
    its float64 initial weights, drawn from ``gen``
``reference_forward(spec, w, x, batch_statistics, record, running)``
    its float64 forward pass over :mod:`tasks.reference`'s neurons and
    synapses; returns the readout
``reference_gradients(spec, w, x, labels, spike, grads, record)``
    its forward and backward pass over :mod:`tasks.reference_grad`'s steps;
    returns the loss
``PARITY_SIZE``, ``PARITY_GAINS``, ``parity_batch(spec, gen)``, ``at_threshold``
    its parity case (:mod:`tasks.parity`): the small size, the weight gains
    that make every layer fire, fresh random inputs, and the function that
    puts a membrane exactly at the threshold (``None`` where no arithmetic
    lands there exactly)
``FLOOR_POINTS``
    the overrides of the points docs/performance.md's floor table shows
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from types import ModuleType
from typing import Any

from ..errors import UsageError
from ..taskspec import TaskSpec


def discover(path, package: str) -> list[ModuleType]:
    """Every module of the package at ``path`` (named ``package``), in their ``ORDER``."""
    found = [importlib.import_module(f"{package}.{info.name}") for info in pkgutil.iter_modules(path)]
    return sorted(found, key=lambda module: module.ORDER)


def register(module: ModuleType) -> None:
    """Add a task module to :data:`MODULES` and point its spec at it."""
    name = module.__name__.rsplit(".", 1)[-1]
    if module.SPEC.name != name:
        raise ImportError(f"{module.__name__} defines task {module.SPEC.name!r}: a task module is named after its task")
    if name in MODULES:
        raise ImportError(f"task {name!r} is defined twice")
    module.SPEC.workload = module
    MODULES[name] = module


MODULES: dict[str, ModuleType] = {}
for _module in discover(__path__, __name__):
    register(_module)

TASKS: dict[str, type[TaskSpec]] = {name: module.SPEC for name, module in MODULES.items()}
# The tasks with a learning objective (what ``python -m tasks.run`` trains).
TRAINABLE_TASKS = tuple(name for name, cls in TASKS.items() if cls.trainable)


def get_spec(name: str, **overrides: Any) -> TaskSpec:
    """The default spec of task ``name`` with ``overrides`` applied."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None
    spec = cls()
    return spec.with_overrides(**overrides)


def spec_from_dict(data: dict[str, Any]) -> TaskSpec:
    """Rebuild a spec from :meth:`TaskSpec.to_dict` output."""
    data = dict(data)
    cls = TASKS[data.pop("task")]
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key in known:
            kwargs[key] = _tuplify(value)
    return cls(**kwargs)


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value
