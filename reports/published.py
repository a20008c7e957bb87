"""Reproduced beside published: where a training group ran a task's
publication recipe (``published`` in the task's module; the ``full`` profile), the
published accuracy and the range of the backends' seed means."""

from __future__ import annotations

import statistics

from tasks.catalogue import unit_of
from tasks.profiles import normalised
from tasks.specs import TASKS, get_spec, spec_from_dict

from .format import human
from .groups import TrainingGroup
from .keys import canonical


def published_note(task: str, group: TrainingGroup) -> str | None:
    """The line under the group's table, or None when it did not run the published recipe."""
    published = getattr(TASKS.get(task), "published", None)
    if published is None:
        return None
    recipe = normalised(get_spec(task, **published.settings(task)).to_dict())  # as records read back
    recipe.pop("seed", None)
    try:  # a record from before a setting existed has its default
        ran = normalised(spec_from_dict({**group.config, "task": task}).to_dict())
    except (TypeError, ValueError):
        return None
    ran.pop("seed", None)
    if canonical(ran) != canonical(recipe):
        return None
    means = [statistics.fmean(run.result.metric("accuracy") for run in runs)
             for runs in (group.finished(b) for b in group.seed_runs)
             if runs and all(run.result.metric("accuracy") is not None for run in runs)]
    unit = unit_of("accuracy")
    text = f"Published: {human(published.accuracy, unit)} on {published.dataset} ({published.source})."
    if not means:
        return text + " Reproduced here: no run of the recipe finished."
    low, high = human(min(means), unit), human(max(means), unit)
    span = low if len(means) == 1 else f"{low} to {high}"
    return text + f" Reproduced here with the same recipe: {span} (each backend's mean over its seeds)."
