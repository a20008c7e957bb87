"""The referee itself: parity fails on any NaN or infinity, judges float64 by
what float64 achieves, and says which figure failed, by how much and where."""

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from backends.stbp.backend import STBPBackend  # noqa: E402
from tasks import parity  # noqa: E402
from tasks.parity import TOLERANCES, _rel, _worst, check_backend, exceeds, failure_text, format_table  # noqa: E402
from tasks.specs import TASKS  # noqa: E402
from tests.backend_contract import assert_parity  # noqa: E402

FIGURES = ("membrane_rel", "gradient_rel", "loss_curve_rel")


def test_float64_limits_are_one_figure_for_every_backend_and_near_what_float64_achieves():
    fp64 = TOLERANCES["fp64"]
    assert fp64["spike_mismatches"] == 0 and TOLERANCES["fp32"]["spike_mismatches"] == 0
    assert {fp64[k] for k in FIGURES} == {parity.FP64_LIMIT} and parity.FP64_LIMIT <= 1e-10
    assert all(TOLERANCES["fp32"][k] > fp64[k] for k in FIGURES)  # float32's kept apart, looser


@pytest.mark.parametrize("value, limit, fails", [
    (None, 1.0, True), (math.nan, 1.0, True), (math.inf, 1.0, True), (-math.inf, 1.0, True),
    (1.0, 1.0, False), (1.0 + 1e-12, 1.0, True), (0.0, 0.0, False), (1, 0, True), (0.5, 1.0, False),
])
def test_a_figure_fails_when_missing_not_finite_or_over_its_limit(value, limit, fails):
    assert exceeds(value, limit) is fails


def test_the_worst_value_keeps_a_nan_and_says_where():
    assert _worst([(1e-3, "a"), (math.nan, "b"), (2e-3, "c")])[1] == "b"  # max(0.0, nan) is 0.0
    assert _worst([(math.nan, "b"), (1e-3, "a")])[1] == "b"
    assert _worst([(1e-3, "a"), (2e-3, "c"), (5e-4, "d")]) == (2e-3, "c")
    assert _worst([]) == (0.0, "")


def test_relative_difference_of_nan_infinity_and_zero_scale():
    assert _rel(np.array([1.0, 3.0]), np.array([1.0, 2.0])) == pytest.approx(0.5)
    assert _rel(np.zeros(2), np.zeros(2)) == 0.0
    assert _rel(np.array([0.0, 1e-300]), np.zeros(2)) == math.inf
    assert math.isnan(_rel(np.array([math.nan, 1.0]), np.ones(2)))
    assert _rel(np.zeros(0), np.zeros(0)) == 0.0


def test_failure_text_names_the_figure_the_amount_the_limit_and_where():
    assert failure_text("gradient_rel", 5e-8, 1e-10, "fc1.weight") == \
        "gradient_rel 5e-08 (500x the limit) on fc1.weight, limit 1e-10"
    assert failure_text("gradient_rel", 3e-10, 1e-10, "fc1.weight") == "gradient_rel 3e-10 on fc1.weight, limit 1e-10"
    assert failure_text("loss_curve_rel", 50.0, 0.5, "training step 2") == \
        "loss_curve_rel 50 (100x the limit) on training step 2, limit 0.5"  # from 100 times the limit on
    assert failure_text("loss_curve_rel", 49.5, 0.5, "training step 2") == "loss_curve_rel 49.5 on training step 2, limit 0.5"
    assert failure_text("gradient_rel", math.nan, 1e-10, "fc.weight") == \
        "gradient_rel nan (not finite) on fc.weight, limit 1e-10"
    assert failure_text("spike_mismatches", 3, 0, "lif1 (batch statistics): 3") == \
        "spike_mismatches 3 on lif1 (batch statistics): 3, limit 0"
    assert failure_text("membrane_rel", None, 1e-10, "") == "membrane_rel not computed on the whole case, limit 1e-10"


def _patched(monkeypatch, method, change):
    real = getattr(STBPBackend, method)
    monkeypatch.setattr(STBPBackend, method, lambda self, *a, **k: change(real(self, *a, **k)))


def test_nan_gradients_fail_their_row_naming_the_tensor(monkeypatch):
    _patched(monkeypatch, "gradients", lambda g: {k: np.full_like(np.asarray(v), np.nan) for k, v in g.items()})
    row = check_backend("lif_layer", "stbp")
    assert row.status == "fail" and math.isnan(row.gradient_rel)
    assert row.failures == ["gradient_rel nan (not finite) on fc.weight, limit 1e-10"]
    assert "fail: gradient_rel nan (not finite) on fc.weight, limit 1e-10" in format_table([row])


def test_one_nan_gradient_among_good_ones_is_not_dropped(monkeypatch):
    def one_nan(g):
        g = {k: np.array(v, dtype=np.float64) for k, v in g.items()}
        g["fc.weight"][3, 5] = np.nan
        return g

    _patched(monkeypatch, "gradients", one_nan)
    row = check_backend("lif_layer", "stbp")
    assert row.status == "fail" and math.isnan(row.gradient_rel) and row.where["gradient_rel"] == "fc.weight"
    assert row.failures == ["gradient_rel nan (not finite) on fc.weight, limit 1e-10"]


def test_an_infinite_membrane_fails_naming_the_layer(monkeypatch):
    def inf_membrane(out):
        out.membranes["lif"] = np.where(np.arange(out.membranes["lif"].size).reshape(out.membranes["lif"].shape) == 0,
                                        np.inf, out.membranes["lif"])
        return out

    _patched(monkeypatch, "evaluate", inf_membrane)
    row = check_backend("lif_layer", "stbp")
    assert row.status == "fail" and row.membrane_rel == math.inf
    assert row.where["membrane_rel"] == "lif (batch statistics)"
    assert any(f.startswith("membrane_rel inf (not finite) on lif") for f in row.failures)


def test_a_nan_loss_fails_naming_the_training_step(monkeypatch):
    calls = []

    def nan_third(loss):
        calls.append(loss)
        return math.nan if len(calls) == 3 else loss

    _patched(monkeypatch, "train_step", nan_third)
    row = check_backend("lif_layer", "stbp")
    assert row.status == "fail" and row.where["loss_curve_rel"] == "training step 3"


def test_a_gradient_off_by_a_part_in_ten_million_fails(monkeypatch):
    """What float32-sized limits let through in float64 (a decay times 1 + 1e-7)."""
    _patched(monkeypatch, "gradients", lambda g: {k: np.asarray(v) * (1 + 1e-7) for k, v in g.items()})
    row = check_backend("lif_layer", "stbp")
    assert row.status == "fail" and row.where["gradient_rel"] == "fc.weight"
    assert 5e-8 < row.gradient_rel < 2e-7
    assert row.failures == ["gradient_rel 1e-07 (1,000x the limit) on fc.weight, limit 1e-10"]


def test_spike_mismatches_name_their_layer_and_mode(monkeypatch):
    def flip(out):
        out.spikes["lif"] = 1.0 - np.asarray(out.spikes["lif"])
        return out

    _patched(monkeypatch, "evaluate", flip)
    row = check_backend("lif_layer", "stbp")
    assert row.status == "fail" and row.spike_mismatches == row.spikes_compared
    half = row.spikes_compared // 2
    assert row.where["spike_mismatches"] == f"lif (batch statistics): {half}, lif (running statistics): {half}"


def test_the_shared_backend_assertion_refuses_loose_limits_and_nan():
    row = check_backend("lif_layer", "stbp")
    assert_parity(row)
    for change in ({"tolerances": dict(TOLERANCES["fp32"])}, {"gradient_rel": math.nan}, {"spikes_compared": 0},
                   {"loss_curve_rel": None}, {"status": "fail"}):
        bad = parity.ParityRow(**{**row.__dict__, **change})
        with pytest.raises(AssertionError):
            assert_parity(bad)


def test_a_report_shows_an_old_record_that_called_nan_ok_as_a_failure():
    from reports import figures as F

    row = {"task": "fc_mnist", "backend": "x", "status": "ok", "spike_mismatches": 0, "spikes_compared": 10,
           "membrane_rel": 0.0, "gradient_rel": math.nan, "loss_curve_rel": 0.0}
    assert F.parity_code(row) == 2 and F.parity_status(row) == "fail" and "FAIL" in F.parity_cell_text(row)
    assert F.parity_code({**row, "gradient_rel": 1e-15}) == 0
    assert F.parity_code({**row, "gradient_rel": None, "status": "error"}) == 3


EDGE_TASKS = ("fc_mnist", "lif_layer", "dsrn_tdbn")  # subtractive, hard and stbp neurons


@pytest.mark.parametrize("task", EDGE_TASKS)
def test_parity_cases_put_a_first_layer_membrane_exactly_at_the_threshold(task):
    """Where ``>`` and ``>=`` differ, in the parity case of every backend that runs these tasks:
    sample 0 at t = 0 (dsrn_tdbn's with running statistics, the only mode where tdBN's output
    is exact); the layers still fire."""
    from tasks import reference

    case = parity.parity_case(task)
    ref = reference.forward(case.spec, case.weights, case.batches[0], batch_statistics=False)
    first = case.spec.layer_names()[0]
    at = ref.membranes[first][0, 0] == case.spec.v_th
    assert at.any() and not ref.spikes[first][0, 0][at].any()
    fired = reference.forward(case.spec, case.weights, case.batches[0]).spikes
    assert all(0 < s.mean() < 0.9 for s in fired.values()), {k: s.mean() for k, s in fired.items()}


def test_the_edge_is_left_out_only_where_it_would_be_a_rounding_tie():
    case = parity.parity_case("synthetic")
    assert {t for t, cls in TASKS.items() if cls.workload.at_threshold is None} == {"synthetic", "fc_mnist_poisson"}
    assert set(TASKS) - set(EDGE_TASKS) == {"synthetic", "fc_mnist_poisson"}
    batch = case.batches[0]
    before = {k: v.copy() for k, v in case.weights.items()}
    parity.at_threshold(case.spec, case.weights, batch)
    assert all(np.array_equal(before[k], case.weights[k]) for k in before)


def test_the_table_shows_every_figure_and_a_failure_in_full():
    ok = parity.ParityRow("fc_mnist", "stbp", spike_mismatches=0, spikes_compared=1200, membrane_rel=1.234e-15,
                          gradient_rel=2e-14, loss_curve_rel=0.0)
    bad = parity.ParityRow("lif_layer", "x", status="fail", message="gradient_rel nan (not finite) on fc.weight",
                           spike_mismatches=3, spikes_compared=10, gradient_rel=math.nan)
    documented = parity.ParityRow("synthetic", "y", documented_difference="its own surrogate", precision="fp32")
    gone = parity.ParityRow("dsrn_tdbn", "z", status="unavailable", message="not installed")
    broke = parity.ParityRow("dsrn_tdbn", "w", status="error", message="RuntimeError: boom")
    lines = format_table([ok, bad, documented, gone, broke]).splitlines()
    assert lines[0].split("  ")[0] == "task" and lines[0].split() == [
        "task", "backend", "prec", "spike", "mismatches", "membrane", "rel", "gradient", "rel", "loss", "curve", "rel",
        "status"]
    assert lines[1].split() == ["fc_mnist", "stbp", "fp64", "0/1200", "1.23e-15", "2.00e-14", "0.00e+00", "ok"]
    assert lines[2].split() == ["lif_layer", "x", "fp64", "3/10", "-", "nan", "-", "fail:", "gradient_rel", "nan",
                                "(not", "finite)", "on", "fc.weight"]
    assert lines[3].endswith("ok (documented difference)") and " fp32 " in lines[3]
    assert lines[4].endswith("unavailable: not installed") and lines[4].split()[3:7] == ["-"] * 4
    assert lines[5].endswith("error: RuntimeError: boom")
    assert lines[0].index("membrane rel") - lines[0].index("spike mismatches") == len("spike mismatches") + 2
    assert all(l[9:11] == "  " and l[11] != " " for l in lines)  # the task column padded to its widest, 9
    assert format_table([]).split() == lines[0].split()
