"""Time to the accuracy target, the headline of the training runs: what the runner measures (from the run's
start, the data's loading included) and how the report shows it (reached / not reached / some seeds only)."""

from __future__ import annotations

from pathlib import Path

from reports.groups import group_settings
from reports.load import load_results
from reports.tables import build_table
from reports.verdict import verdict
from tasks.data import make_data
from tasks.result import Curve, Result
from tasks.runner import RunConfig, run
from tasks.specs import get_spec

TARGET = 0.8


def _train(out: Path, backend: str, seed: int, curve: list[float], reached_at: float | None) -> None:
    """A three-epoch fc_mnist run on Fashion-MNIST whose test accuracy went along ``curve``."""
    spec = get_spec("fc_mnist", seed=seed, epochs=3, dataset="fashion-mnist")
    r = Result(task="fc_mnist", backend=backend, seed=seed, framework=backend, started_at="2026-12-01T00:00:00")
    r.config = {"task": spec.to_dict(), "run": {"device": "cpu", "precision": "fp32"}}
    r.device = {"type": "cpu", "name": "Test CPU"}
    r.curves["test_accuracy"] = Curve("epoch", "fraction", list(range(1, len(curve) + 1)), list(curve))
    r.set_metric("accuracy", curve[-1])
    r.set_metric("epochs", len(curve))
    r.set_metric("time_to_accuracy", reached_at)
    r.extra["accuracy_target"] = TARGET
    r.save(out / f"train-{backend}-s{seed}.json")


def _records(out: Path) -> None:
    for seed, t in enumerate((10.0, 12.0, 14.0)):  # every seed reached it
        _train(out, "quick", seed, [0.70, 0.81, 0.83], t)
    for seed, t in enumerate((20.0, 30.0, None)):  # two of three seeds
        _train(out, "mixed", seed, [0.70, 0.79, 0.80] if t else [0.70, 0.75, 0.78], t)
    for seed in range(3):  # none
        _train(out, "never", seed, [0.60, 0.65, 0.70 + 0.01 * seed], None)


def _table(out: Path):
    (setting,) = group_settings(load_results(out))
    (group,) = setting.trainings
    table = build_table(setting, group, None, None, 1, 1)
    return {row.backend: row.train_cells[0] for row in table.rows}, table


def test_the_time_to_target_leads_the_training_columns_as_a_mean_with_the_seeds_that_reached_it(tmp_path):
    _records(tmp_path)
    cells, table = _table(tmp_path)
    assert table.train_columns[0].key == "time_to_accuracy" and table.train_columns[0].label == "Time to 80\u00a0%"
    quick, mixed, never = cells["quick"], cells["mixed"], cells["never"]
    assert quick.value == 12.0 and quick.aggregate == "mean"
    assert quick.sub.startswith("± ") and quick.sub.endswith("3 of 3 seeds reached the target")
    assert mixed.value == 25.0 and mixed.sub.endswith("2 of 3 seeds reached the target")  # the mean of those that did
    assert "not reached in 3 epochs (best 78.00 %)" in mixed.title  # and what the third seed got to
    assert never.value is None and never.missing
    assert never.text == "not reached in 3 epochs" and never.sub == "best 72.00 %"  # the best evaluation of any seed
    assert "0 of 3 seeds reached the target" in never.title


def test_the_verdict_names_who_reached_the_target_soonest_and_who_did_not(tmp_path):
    _records(tmp_path)
    (row,) = verdict(group_settings(load_results(tmp_path)))
    assert row.target.backend == "quick"
    assert "80.00 %" in row.target.text and "3 of 3 seeds" in row.target.text
    assert "2.08× sooner than mixed" in row.target.text  # 25 s / 12 s
    assert "2 of 3 backends reached it" in row.target.detail
    assert "some seeds only: mixed (2 of 3)" in row.target.detail
    assert "not reached in 3 epochs: never (best 72.00 %)" in row.target.detail
    assert row.accuracy is not None  # accuracy stays, as a check


def test_no_backend_reaching_the_target_is_said_so(tmp_path):
    for seed in range(2):
        _train(tmp_path, "a", seed, [0.5, 0.6], None)
        _train(tmp_path, "b", seed, [0.5, 0.61], None)
    (row,) = verdict(group_settings(load_results(tmp_path)))
    assert row.target.backend is None and row.target.text == "no backend reached 80.00 %"
    assert row.target.detail == "not reached in 2 epochs: a (best 60.00 %), b (best 61.00 %)"


def test_the_time_to_accuracy_counts_from_the_run_s_start_data_loading_included():
    spec = get_spec("synthetic", T=20, steps=10, batch_size=16, eval_every_steps=5,
                    accuracy_targets=(("synthetic", 0.0),))  # reached at the first evaluation
    data = make_data(spec)
    data.load_seconds = 5.0  # as if reading the data set had taken 5 s before the run began
    r = run(spec, RunConfig("stbp", progress=False), data=data)
    assert r.status == "ok", r.message
    assert r.wall_times["data"] == 5.0
    tta = r.metric("time_to_accuracy")
    # the loading, the setup (import, building the network) and the first five steps with their evaluation
    assert tta >= 5.0 + r.wall_times["setup"]
    assert tta <= 5.0 + r.wall_times["total"]
    assert "from the run's start" in r.metrics["time_to_accuracy"].description
