"""reports.published: a run of a publication's recipe is shown beside the published figure."""

from __future__ import annotations

import json
from pathlib import Path

from reports.build import build_report
from reports.groups import group_settings
from reports.load import Collection, Loaded
from reports.published import published_note
from tasks.runner import RunConfig, failed_result
from tasks.specs import TASKS, get_spec


def run(backend: str, seed: int, accuracy: float, **settings) -> Loaded:
    spec = get_spec("fc_mnist", **{**TASKS["fc_mnist"].published.settings("fc_mnist"), **settings}, seed=seed)
    r = failed_result(spec, RunConfig(backend), "ok", "")
    r.config["task"] = json.loads(json.dumps(r.config["task"]))  # as read back from a file
    r.set_metric("accuracy", accuracy)
    return Loaded(r, f"{backend}-{seed}-{settings}.json")


def group_of(*runs: Loaded):
    (setting,) = group_settings(Collection(root=Path("."), results=list(runs)))
    (group,) = setting.trainings
    return group


def test_the_recipe_shows_the_published_figure_and_the_backends_seed_means():
    group = group_of(run("stbp", 0, 0.93), run("stbp", 1, 0.935), run("snntorch", 0, 0.94), run("snntorch", 1, 0.94))
    note = published_note("fc_mnist", group)
    assert note.startswith("Published: 93.87 % on mnist (snnTorch's tutorial 5, one epoch).")
    assert "93.25 % to 94.00 %" in note


def test_another_recipe_shows_nothing():
    assert published_note("fc_mnist", group_of(run("stbp", 0, 0.5, limit_train=64))) is None
    assert published_note("fc_mnist", group_of(run("stbp", 0, 0.5, dataset="fashion-mnist"))) is None
    assert published_note("lif_layer", group_of(run("stbp", 0, 0.5))) is None  # no publication


def test_a_record_from_before_a_setting_existed_is_read_with_its_default():
    old = run("stbp", 0, 0.93)
    for key in ("lr_gamma", "lr_step_epochs"):  # the learning-rate schedule came later
        del old.result.config["task"][key]
    assert published_note("fc_mnist", group_of(old)).startswith("Published: 93.87 %")
    assert published_note("fc_mnist", group_of(run("stbp", 0, 0.93, epochs=2, lr_gamma=0.5))) is None


def test_the_report_prints_it_under_the_table(tmp_path):
    for loaded in (run("stbp", 0, 0.93), run("snntorch", 0, 0.94)):
        loaded.result.save(tmp_path / "runs" / loaded.path)
    html = Path(build_report([tmp_path / "runs"], tmp_path / "report.html")).read_text()
    assert '<p class="published">Published: 93.87 % on mnist' in html and "93.00 % to 94.00 %" in html
