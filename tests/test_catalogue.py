"""tasks/catalogue.py: one entry per metric (unit, direction, label, description, ranked)."""

from __future__ import annotations

import re

import pytest

from tasks.catalogue import CATALOGUE, info, unit_of

TIMINGS = {"train_step", "forward_backward", "inference", "epoch_step"}


def test_every_entry_is_complete_and_named_by_its_key():
    for name, m in CATALOGUE.items():
        assert m.name == name and re.fullmatch(r"[a-z0-9_]+", name)
        assert m.better in ("higher", "lower") and m.unit and m.label
        assert m.description.endswith(".") and "\n" not in m.description, name
        assert m.timing is None or m.timing in TIMINGS, name


def test_a_timing_figure_names_the_timings_that_hold_its_repeats():
    assert CATALOGUE["train_step_time"].timing == "train_step"
    assert all(m.timing for n, m in CATALOGUE.items() if n.endswith("_spread"))


def test_only_what_a_framework_controls_is_ranked():
    assert not CATALOGUE["accuracy"].ranked and not CATALOGUE["firing_rate_mean"].ranked
    assert CATALOGUE["train_step_time"].ranked and CATALOGUE["train_step_time"].better == "lower"
    assert CATALOGUE["train_throughput"].better == "higher"


def test_a_metric_outside_the_catalogue_is_refused_with_where_to_add_it():
    assert unit_of("accuracy") == "fraction" and info("accuracy") is CATALOGUE["accuracy"]
    with pytest.raises(KeyError, match="not in tasks/catalogue.py"):
        unit_of("made_up_metric")
