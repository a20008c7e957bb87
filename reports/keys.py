"""How records are ordered, coloured, keyed and described: backends and tasks in
registry order, settings and configurations as canonical keys, labels for the
page."""

from __future__ import annotations

import json
from typing import Any

import backends as registry  # names, order and colours only: no framework is imported
from tasks.result import Result
from tasks.specs import TASKS, accuracy_target_in

from .fields import task_config

# Order and colours come from the registry (one place for a backend's facts);
# a backend that is not registered (an old record) takes a spare colour.
BACKEND_ORDER = registry.names()
TASK_ORDER = list(TASKS)
SPARE_COLORS = ["#8C6D31", "#444444", "#B8A100", "#7F3C8D", "#117733"]

STATUS_TEXT = {
    "ok": "ok",
    "unavailable": "unavailable",
    "oom": "out of memory",
    "diverged": "diverged",
    "error": "error",
}

# Fields of a task configuration that change neither the shape of the network
# nor the batch (each task's spec says which of its own), so a measurement point
# taken with other values still measures the same training step.
NOT_STRUCTURAL = frozenset({"task"}).union(*(cls.not_structural for cls in TASKS.values()))

# a sweep's axis -> (symbol, words) for tables and figures
AXIS_LABELS = {"T": ("T", "time steps T"), "neurons": ("N", "neurons N")}

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def backend_sort_key(name: str) -> tuple[int, str]:
    return (BACKEND_ORDER.index(name) if name in BACKEND_ORDER else len(BACKEND_ORDER), name)


def task_sort_key(name: str) -> tuple[int, str]:
    return (TASK_ORDER.index(name) if name in TASK_ORDER else len(TASK_ORDER), name)


def precision_sort_key(precision: str) -> tuple[int, str]:
    order = ["fp32", "tf32", "bf16", "fp64"]
    return (order.index(precision) if precision in order else len(order), precision)


def backend_color(name: str) -> str:
    """The backend's colour, the same in every table and figure of the page."""
    if name in registry.REGISTRY and registry.REGISTRY[name].color:
        return registry.REGISTRY[name].color
    return SPARE_COLORS[sum(name.encode()) % len(SPARE_COLORS)]  # stable across runs, unlike hash()


def slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def config_key(r: Result, drop: set[str] = frozenset()) -> str:
    return canonical({k: v for k, v in task_config(r).items() if k not in drop})


def structural_key(cfg: dict[str, Any]) -> str:
    return canonical({k: v for k, v in cfg.items() if k not in NOT_STRUCTURAL})


def describe_config(cfg: dict[str, Any], kind: str, data: dict[str, Any] | None = None) -> list[str]:
    """Short facts about a configuration: T, batch, epochs, data size."""
    facts = []
    if "T" in cfg:
        facts.append(f"T = {cfg['T']}")
    if "batch_size" in cfg:
        facts.append(f"batch {cfg['batch_size']}")
    if cfg.get("width") not in (None, 1, 1.0):
        facts.append(f"width × {cfg['width']:g}")
    if cfg.get("neurons") is not None:
        facts.append(f"N = {cfg['neurons']:,}")
    if kind == "training":
        if cfg.get("steps"):
            facts.append(f"{cfg['steps']} steps")
        elif cfg.get("epochs"):
            facts.append(f"{cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}")
        if cfg.get("lr"):
            facts.append(f"Adam lr {cfg['lr']:g}")
        every = cfg.get("lr_step_epochs", 1)
        if cfg.get("lr_gamma", 1) != 1 and cfg.get("epochs", 1) > every:  # a step the run takes
            facts.append(f"lr × {cfg['lr_gamma']:g} every {every} epoch{'s' if every != 1 else ''}")
        if cfg.get("eval_every_steps"):
            facts.append(f"evaluated every {cfg['eval_every_steps']} steps")
        if cfg.get("dataset"):
            facts.append(DATASET_NAMES.get(cfg["dataset"], str(cfg["dataset"])))
        data = data or {}
        if data.get("train_samples"):
            sizes = f"{data['train_samples']:,} training"
            if data.get("val_samples"):
                sizes += f" / {data['val_samples']:,} validation"
            if data.get("test_samples"):
                sizes += f" / {data['test_samples']:,} test"
            facts.append(sizes + " samples")
        elif cfg.get("limit_train") or cfg.get("limit_test"):
            facts.append(f"first {cfg.get('limit_train') or 'all'} training / {cfg.get('limit_test') or 'all'} test images")
    if cfg.get("seed") not in (None, 0) and kind == "training":
        facts.append(f"seed {cfg['seed']}")
    if cfg.get("surrogate_center") not in (None, "threshold"):
        facts.append(f"surrogate centred on {cfg['surrogate_center']}")
    return facts


def describe_device(dtype: str, name: str | None) -> str:
    label = {"cuda": "CUDA GPU", "cpu": "CPU"}.get(dtype, dtype)
    return f"{label} · {name}" if name else f"{label} (model not recorded)"


def accuracy_target(r: Result) -> float | None:
    target = r.extra.get("accuracy_target")
    if isinstance(target, (int, float)):
        return float(target)
    cfg = task_config(r)
    targets = cfg.get("accuracy_targets")
    if isinstance(targets, list):
        try:
            return accuracy_target_in(targets, cfg.get("dataset"))
        except (TypeError, ValueError):
            return None
    return None
