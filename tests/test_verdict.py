"""The verdict at the top of the report: fastest (or a tie), memory per added T, accuracy flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.load import load_results
from reports.groups import group_settings
from reports.verdict import verdict
from tasks.result import Result, Timing
from tasks.specs import get_spec


def _point(out: Path, backend: str, T: int, step: list[float], memory: float, compile_time: float | None = None) -> None:
    spec = get_spec("fc_mnist", T=T, batch_size=16)
    r = Result(task="fc_mnist", backend=backend, kind="measurement", framework=backend, started_at="2026-12-01T00:00:00")
    r.config = {"task": spec.to_dict(), "run": {"device": "cpu", "precision": "fp32"}}
    r.device = {"type": "cpu", "name": "Test CPU"}
    r.timings["train_step"] = Timing(samples=step)
    r.set_metric("train_step_time", r.timings["train_step"].median)
    r.set_metric("train_step_host_memory", memory)
    if compile_time is not None:
        r.set_metric("compile_time", compile_time)
    r.save(out / f"{backend.replace(':', '-')}-T{T}.json")


def _train(out: Path, backend: str, seed: int, accuracy: float, tie_rate: float | None = None) -> None:
    spec = get_spec("fc_mnist", seed=seed)
    r = Result(task="fc_mnist", backend=backend, seed=seed, framework=backend, started_at="2026-12-01T00:00:00")
    r.config = {"task": spec.to_dict(), "run": {"device": "cpu", "precision": "fp32"}}
    r.device = {"type": "cpu", "name": "Test CPU"}
    r.set_metric("accuracy", accuracy)
    if tie_rate is not None:
        r.set_metric("tie_rate", tie_rate)
    r.save(out / f"train-{backend}-s{seed}.json")


def rows(out: Path):
    return verdict(group_settings(load_results(out)))


def test_the_fastest_step_and_the_least_memory_per_time_step(tmp_path):
    for T, mem in ((5, 1.0), (25, 5.0)):
        _point(tmp_path, "fast", T, [0.010, 0.011, 0.012] * 4, mem * 2**20)
        _point(tmp_path, "slow", T, [0.030, 0.031, 0.033] * 4, 3 * mem * 2**20)
    (row,) = rows(tmp_path)
    assert row.fastest.backend == "fast" and "× faster than slow" in row.fastest.text
    assert "2.82×" in row.fastest.text  # 31 ms / 11 ms, the medians
    assert "do not overlap" in row.fastest.detail and "T = 25" in row.fastest.detail
    assert row.memory.backend == "fast" and "3.00× less than slow" in row.memory.text
    assert "Test CPU" in row.conditions and "fp32" in row.conditions


def test_what_compiling_gained_each_framework_with_a_compiled_variant(tmp_path):
    for T in (5, 25):
        _point(tmp_path, "snntorch", T, [0.040] * 10, 1.0)
        _point(tmp_path, "snntorch:compile", T, [0.010] * 10, 1.0, compile_time=38.0)
        _point(tmp_path, "spikingjelly:torch", T, [0.020] * 10, 1.0)
        _point(tmp_path, "spikingjelly:compile", T, [0.040] * 10, 1.0)  # slower compiled: said so
        _point(tmp_path, "norse:compile", T, [0.010] * 10, 1.0)  # no eager norse measured: nothing to say
    (row,) = rows(tmp_path)
    assert row.compiling.backend is None
    parts = row.compiling.text.split("; ")
    assert parts[0].startswith("snntorch ×4.00 (") and "compiling 38" in parts[0]
    assert parts[1].startswith("spikingjelly:torch ×0.50 (") and "compiling" not in parts[1]
    assert len(parts) == 2 and "T = 25" in row.compiling.detail and len(row.compiling.sources) == 4


def test_no_compiled_variant_no_compiling_finding(tmp_path):
    _point(tmp_path, "a", 25, [0.010] * 10, 1.0)
    _point(tmp_path, "b", 25, [0.020] * 10, 1.0)
    (row,) = rows(tmp_path)
    assert row.compiling is None


def test_overlapping_repeats_are_a_tie_not_a_win(tmp_path):
    _point(tmp_path, "a", 25, [0.010, 0.012, 0.020] * 4, 1.0)
    _point(tmp_path, "b", 25, [0.011, 0.013, 0.021] * 4, 1.0)
    (row,) = rows(tmp_path)
    assert "tie" in row.fastest.text and "repeats overlap" in row.fastest.text


@pytest.mark.parametrize("outlier, flagged", [(0.70, False), (0.95, True)])
def test_an_accuracy_outside_the_others_seed_spread_is_flagged_never_crowned(tmp_path, outlier, flagged):
    for seed, (a, b) in enumerate(((0.69, 0.70), (0.72, 0.71), (0.74, 0.73))):
        _train(tmp_path, "a", seed, a)
        _train(tmp_path, "b", seed, b)
        _train(tmp_path, "odd", seed, outlier + 0.001 * seed)
    (row,) = rows(tmp_path)
    if flagged:
        assert row.accuracy.backend == "odd" and "suspected defect" in row.accuracy.text
    else:
        assert row.accuracy.backend is None and row.accuracy.text.startswith("no flag")


def test_a_backend_with_fewer_seeds_than_the_others_is_not_flagged():
    from reports.columns import catalogue_column
    from reports.tables import accuracy_flag

    column = catalogue_column("accuracy")
    others = {"a": [0.80, 0.82, 0.84], "b": [0.81, 0.83, 0.85]}
    assert accuracy_flag("c", {**others, "c": [0.70]}, column) == ""  # one run: not a mean over the seeds
    assert "below every other backend's seed run" in accuracy_flag("c", {**others, "c": [0.70, 0.71, 0.72]}, column)


@pytest.mark.parametrize("ties, says", [((0.05, 0.10, 0.15), ""),
                                        ((0.83, 0.83, 0.83), "3 of 3 runs not trained networks: 83 %"),
                                        ((0.12, 0.79, 0.92), "2 of 3 runs not trained networks: 79–92 %")])
def test_the_accuracy_finding_says_when_the_networks_did_not_train(tmp_path, ties, says):
    for backend, tie_rate in zip(("a", "b", "c"), ties):
        _train(tmp_path, backend, 0, 0.30, tie_rate=tie_rate)
    (row,) = rows(tmp_path)
    assert row.accuracy.text.startswith("no flag")
    assert ("test images tied" in row.accuracy.text) == bool(says)
    if says:
        assert f"⚠ {says} of their test images tied (a trained readout: under 15 %)" in row.accuracy.text
