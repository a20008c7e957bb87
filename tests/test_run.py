"""python -m tasks.run's default job: quick, and still a comparison."""

from __future__ import annotations

import json

import backends
from tasks.run import QUICK_STEPS, argv_is_default, build_parser
from tasks.specs import get_spec
from tests.conftest import ROOT


def test_the_default_job_is_the_quick_one_and_only_it():
    assert argv_is_default(build_parser().parse_args([]))
    for argv in (["--steps", "30"], ["--backend", "stbp"], ["--task", "fc_mnist"], ["--T", "20"]):
        assert not argv_is_default(build_parser().parse_args(argv)), argv


def test_by_the_quick_job_s_last_step_every_backend_has_learned_alike():
    """In the cpu profile's synthetic runs (the full recipe, seed 0), every backend's
    training loss has clearly fallen by step QUICK_STEPS, and by the same amount."""
    assert QUICK_STEPS < get_spec("synthetic").steps
    losses = {}
    for name in backends.installable_names():
        path = ROOT / "results" / "cpu" / "train" / f"synthetic-{name.replace(':', '-')}-s0.json"
        curve = json.loads(path.read_text())["curves"]["train_loss"]
        losses[name] = (curve["y"][0], curve["y"][curve["x"].index(QUICK_STEPS)])
    assert all(end < start - 0.15 for start, end in losses.values()), losses  # from ln 2 = 0.69
    ends = [end for _, end in losses.values()]
    assert max(ends) - min(ends) < 0.01, losses
