"""reports/tables.py: the comparison tables of the report (every number the JSON value it came
from, what is ranked, failed rows, units) and each cell's details."""

from __future__ import annotations

import json
import types

import pytest

from reports.build import build_report
from reports.columns import catalogue_column
from reports.tables import _timing_detail, accuracy_flag, peak_scope
from tasks.catalogue import CATALOGUE
from tasks.result import Result
from tests.report_page import (DISPLAY, DSRN, FC_BF16, FC_FP32, SYNTHETIC, Node, column_units, comparison_tables,
                               copy_fixtures, parse, record, row, value_cells)


def test_every_number_in_the_tables_is_the_json_value_it_came_from(page):
    _, root, _ = page
    cells = [td for t in comparison_tables(root) for td in value_cells(t)]
    assert len(cells) > 40
    checked = 0
    for table in comparison_tables(root):
        units = column_units(table)
        for td in value_cells(table):
            metric, source = td.attrs["data-metric"], td.attrs["data-source"]
            stored = record(source)["metrics"].get(metric, {}).get("value")
            if td.attrs["data-value"] == "":
                assert stored is None, f"{source} {metric}: {stored} shown as missing"
                continue
            assert float(td.attrs["data-value"]) == stored, (source, metric)
            shown = float(td.find("span", cls="v").own_text().replace(",", ""))
            unit = units[metric]
            assert unit in DISPLAY, f"column {metric} has no known unit: {unit!r}"
            assert shown * DISPLAY[unit] == pytest.approx(stored, rel=5e-3, abs=DISPLAY[unit] * 0.0051), (source, metric)
            checked += 1
    assert checked > 40


def test_the_best_of_each_ranked_column_is_marked_and_ratios_follow(page):
    _, root, _ = page
    for table in comparison_tables(root):
        by_metric: dict[tuple[str, str], list[Node]] = {}
        for td in value_cells(table):  # training runs and measurement points are ranked apart
            by_metric.setdefault((td.attrs["data-group"], td.attrs["data-metric"]), []).append(td)
        for (group, metric), tds in by_metric.items():
            marked = {i for i, td in enumerate(tds) if "best" in td.classes}
            header = table.find("th", data_column=metric, cls=f"g-{group}")
            if not CATALOGUE[metric].ranked or "not ranked" in header.text():
                # checks (accuracy, firing rate) and single unsynchronised runs: shown, never ranked
                assert not marked, f"{metric} is not ranked, yet a best is marked"
                assert all(td.find("span", cls="ratio") is None for td in tds), metric
                continue
            higher = CATALOGUE[metric].better == "higher"
            values = {i: float(td.attrs["data-value"]) for i, td in enumerate(tds) if td.attrs["data-value"]}
            usable = {i: v for i, v in values.items() if v > 0 or higher}
            if len(usable) < 2 or len(set(usable.values())) == 1:
                assert not marked, f"{metric}: best marked among {len(usable)} distinct value(s)"
                continue
            best = max(usable.values()) if higher else min(usable.values())
            assert marked == {i for i, v in usable.items() if v == best}, metric
            for i, td in enumerate(tds):
                if i in usable and i not in marked:
                    ratio = float(td.find("span", cls="ratio").own_text().lstrip("×").replace(",", ""))
                    assert ratio == pytest.approx(usable[i] / best, rel=2e-3, abs=5.1e-3)  # shown to 2 decimals
                    assert ratio != 1.0


def test_only_what_a_framework_controls_is_ranked(page):
    _, root, _ = page
    (table,) = comparison_tables(root, FC_FP32)
    best = {(tr.attrs["data-backend"], td.attrs["data-metric"])
            for tr in table.find_all("tr") if "data-backend" in tr.attrs
            for td in tr.find_all("td", cls="best")}
    assert ("stbp", "peak_device_memory") in best  # spikingjelly has no memory figure
    assert {m for _, m in best} >= {"train_step_time", "inference_time"}
    assert not {m for _, m in best} & {"accuracy", "firing_rate_mean", "train_throughput", "time_to_accuracy"}
    for metric in ("accuracy", "firing_rate_mean", "train_throughput"):
        assert "not ranked" in table.find("th", data_column=metric).text()
    assert "same for all" in table.find("th", data_column="firing_rate_mean").text()
    assert "★ best" not in row(table, "spikingjelly").find("td", data_metric="accuracy").text()


def test_timings_show_their_spread(page):
    _, root, _ = page
    (table,) = comparison_tables(root, FC_FP32)
    td = row(table, "stbp").find("td", data_metric="train_step_time")
    timing = record(td.attrs["data-source"])["timings"]["train_step"]
    assert td.find("span", cls="sub").own_text() == f"spread ×{timing['max'] / timing['min']:.2f}"
    assert "repeats" in td.attrs["title"]


def test_failed_rows_are_kept_with_their_reason(page):
    _, root, _ = page
    expected = {
        (FC_FP32, "spikingjelly:torch"): "train/fc_mnist-spikingjelly-torch.json",
        (FC_FP32, "brainstate"): "train/fc_mnist-brainstate.json",
        (DSRN, "spikingjelly:torch"): "train/dsrn_tdbn-spikingjelly-torch.json",
        (DSRN, "brainstate"): "train/dsrn_tdbn-brainstate.json",
    }
    for (setting, backend), source in expected.items():
        stored = record(source)
        tables = comparison_tables(root, setting)
        reasons = [td for t in tables for td in row(t, backend).find_all("td", cls="reason")]
        assert reasons, (setting, backend)
        td = reasons[0]
        assert td.attrs["data-status"] == stored["status"]
        assert stored["message"] in td.text()
        assert td.attrs["title"] == source
    # the unavailable backend of the sweep: its measurement cell keeps the reason too
    tr = row(comparison_tables(root, DSRN)[0], "brainstate")
    assert [td.attrs["data-status"] for td in tr.find_all("td", cls="reason")] == ["unavailable", "unavailable"]


def test_a_missing_metric_is_a_dash_not_a_zero(page):
    _, root, _ = page
    (table,) = comparison_tables(root, FC_FP32)
    td = row(table, "spikingjelly").find("td", data_metric="peak_device_memory")
    assert "missing" in td.classes and td.attrs["data-value"] == ""
    assert td.find("span", cls="v").own_text() == "—"
    assert "not in this result" in td.attrs["title"]
    tta = row(comparison_tables(root, FC_BF16)[0], "spikingjelly").find("td", data_metric="time_to_accuracy")
    assert tta.find("span", cls="v").own_text() == "not reached in 3 epochs"  # how long it trained
    assert tta.find("span", cls="sub").own_text().startswith("best ")  # and the best it got to


def test_precisions_are_never_compared_with_each_other(page):
    _, root, _ = page
    warning = root.find("div", cls="callout").text()
    assert "2 precisions" in warning and "compared only within one device and one precision" in warning
    fp32, bf16 = root.find("div", id=FC_FP32), root.find("div", id=FC_BF16)
    assert "fp32" in fp32.find("span", cls="precision").text() and "bf16" in bf16.find("span", cls="precision").text()
    (table,) = comparison_tables(root, FC_BF16)
    assert {tr.attrs["data-backend"] for tr in table.find_all("tr") if "data-backend" in tr.attrs} == {
        "stbp", "spikingjelly"}
    # accuracy is a check, never ranked, in either precision
    assert not [td for td in table.find_all("td", cls="best") if td.attrs["data-metric"] == "accuracy"]


def test_a_single_backend_task_has_one_row_and_no_best(page):
    _, root, _ = page
    (table,) = comparison_tables(root, SYNTHETIC)
    rows = [tr for tr in table.find_all("tr") if "data-backend" in tr.attrs]
    assert [tr.attrs["data-backend"] for tr in rows] == ["stbp"]
    assert not table.find_all("td", cls="best")


def test_units_and_sources_on_every_column(page):
    _, root, _ = page
    for table in comparison_tables(root):
        units = column_units(table)
        assert units and all(units.values()), units
        groups = table.find("tr", cls="groups").text()
        assert "Training run" in groups and "Measurement point" in groups
        assert "T = " in groups and "batch" in groups
    (table,) = comparison_tables(root, FC_FP32)
    assert "T = 25, batch 128, median of 10 repeats" in table.find("th", cls="g-meas").text()


def test_a_figure_in_another_unit_is_shown_but_not_ranked(tmp_path):
    results = copy_fixtures(tmp_path / "res", "train/fc_mnist-*.json")
    path = results / "train" / "fc_mnist-snntorch.json"
    data = json.loads(path.read_text())
    data["metrics"]["peak_device_memory"] = {"value": 10.0, "unit": "MiB", "description": ""}
    path.write_text(json.dumps(data))
    (table,) = comparison_tables(parse(build_report(results, tmp_path / "r.html").read_text()))
    td = row(table, "snntorch").find("td", data_metric="peak_device_memory")
    assert td.find("span", cls="v").own_text() == "10.0 MiB" and "not compared" in td.attrs["title"]
    assert "best" not in td.classes and td.find("span", cls="ratio") is None
    assert "best" not in row(table, "stbp").find("td", data_metric="peak_device_memory").classes  # alone now


@pytest.mark.parametrize("extra, framework, scope", [
    ({"peak_memory_scope": "process"}, "stbp", "process"),
    ({"peak_memory_scope": "window"}, "brainstate", "window"),
    ({"peak_memory_scope": "lifetime"}, "stbp", "window"),  # an unknown word: the framework's own
    ({}, "brainstate", "process"),  # JAX cannot reset its allocator's peak
    ({}, "snntorch", "window"),
])
def test_a_records_peak_memory_scope(extra, framework, scope):
    assert peak_scope(types.SimpleNamespace(extra=extra, framework=framework)) == scope


def test_a_timing_cell_without_repeats_says_so():
    column = catalogue_column("train_step_throughput")
    none = types.SimpleNamespace(timings={}, config={})
    assert _timing_detail(none, column, 8485.0) == ("", "8,485 samples/s; no repeats recorded")
    empty = types.SimpleNamespace(timings={"train_step": types.SimpleNamespace(samples=[], median=0.03)}, config={})
    assert _timing_detail(empty, column, 8485.0)[1].endswith("; no repeats recorded")
    zero = types.SimpleNamespace(timings={"train_step": types.SimpleNamespace(samples=[0.0], median=0.0)}, config={})
    assert _timing_detail(zero, column, 8485.0)[1].endswith("; no repeats recorded")
    column.timing = None  # a column with no repeats to show
    assert _timing_detail(empty, column, 8485.0) == ("", "8,485 samples/s; no repeats recorded")


def test_a_step_time_without_a_batch_size_shows_its_repeats_alone():
    column = catalogue_column("train_step_time")
    timing = types.SimpleNamespace(samples=[0.02, 0.03, 0.04], median=0.03, min=0.02, max=0.04, spread=2.0)
    r = types.SimpleNamespace(timings={"train_step": timing}, config={"task": {}})
    assert _timing_detail(r, column, 0.03) == (
        "spread ×2.00", "30 ms: a median 30 ms over 3 repeats (min 20 ms, max 40 ms)")
    r.config["task"]["batch_size"] = 8
    assert _timing_detail(r, column, 0.03)[1] == \
        "30 ms: a median 30 ms over 3 repeats (min 20 ms, max 40 ms; batch of 8: 200 to 400 samples/s)"


def _result(**fields) -> Result:
    r = Result(task="fc_mnist", backend="stbp", kind="training")
    for k, v in fields.items():
        setattr(r, k, v)
    return r


def test_a_missing_cells_title_says_why():
    from reports.tables import _missing_title

    memory, tta, other = (catalogue_column(k) for k in ("peak_device_memory", "time_to_accuracy", "accuracy"))
    assert _missing_title(_result(device={"type": "cpu"}), memory) == "not recorded: device memory is measured on CUDA only"
    assert _missing_title(_result(device={"type": "cuda"}), memory) == "peak_device_memory is not in this result"
    assert _missing_title(_result(), tta) == "no accuracy target for this task and data set"
    assert _missing_title(_result(extra={"accuracy_target": 0.9}), tta) == \
        "the test accuracy never reached 90 % in this run"
    assert _missing_title(_result(), other) == "accuracy is not in this result"


FLAG = catalogue_column("accuracy")


@pytest.mark.parametrize("mine, others, flag", [  # values exact in binary: a mean of equal values is that value
    ([0.25] * 3, [0.5, 0.75, 0.625], "mean 25.00 % is below every other backend's seed run (50.00 % to 75.00 %): "
                                      "a suspected defect, not a better framework"),
    ([0.875] * 3, [0.5, 0.75, 0.625], "mean 87.50 % is above every other backend's seed run (50.00 % to 75.00 %): "
                                       "a suspected defect, not a better framework"),
    ([0.5] * 3, [0.5, 0.75, 0.625], ""),  # at the others' lowest: inside
    ([0.75] * 3, [0.5, 0.75, 0.625], ""),  # at their highest: inside
    ([0.25] * 2, [0.5, 0.75, 0.625], ""),  # two seeds: not judged
    ([0.25] * 3, [0.5, 0.75], ""),  # two runs of the others: not judged
])
def test_the_accuracy_flag_marks_a_mean_outside_every_other_seed_run(mine, others, flag):
    per_backend = {"a": mine, "b": others[:1], "c": others[1:]}
    assert accuracy_flag("a", per_backend, FLAG) == flag
    assert accuracy_flag("nobody", {"b": others[:1], "c": others[1:]}, FLAG) == ""


def test_a_failed_record_without_a_message_says_so():
    from reports.load import Loaded
    from reports.tables import _failure

    assert _failure(None) is None and _failure(Loaded(_result(status="ok"), "a.json")) is None
    failure = _failure(Loaded(_result(status="error", message=""), "runs/a.json"))
    assert (failure.status, failure.message, failure.source) == ("error", "(no message recorded)", "runs/a.json")
    assert _failure(Loaded(_result(status="oom", message="out of memory"), "b.json")).message == "out of memory"


def test_compile_time_is_a_column_where_a_record_has_it_and_the_verdict_says_what_compiling_gained(tmp_path):
    from tasks.result import Timing
    from tasks.specs import get_spec

    for backend, step, compile_time in (("snntorch", 0.040, None), ("snntorch:compile", 0.010, 38.0)):
        for T in (5, 25):
            spec = get_spec("fc_mnist", T=T, batch_size=16)
            r = Result(task="fc_mnist", backend=backend, kind="measurement", framework="snntorch",
                       variant=backend.partition(":")[2] or None, started_at="2026-12-01T00:00:00")
            r.config = {"task": spec.to_dict(), "run": {"device": "cpu", "precision": "fp32"}}
            r.device = {"type": "cpu", "name": "Test CPU"}
            r.timings["train_step"] = Timing(samples=[step] * 10)
            r.set_metric("train_step_time", step)
            if compile_time is not None:
                r.set_metric("compile_time", compile_time)
                r.extra["compile"] = {"inductor_cache": {"hit": 2, "miss": 1}}
            r.save(tmp_path / "res" / f"{backend.replace(':', '-')}-T{T}.json")
    page = parse(build_report(tmp_path / "res", tmp_path / "r.html").read_text())
    (table,) = comparison_tables(page)
    assert column_units(table)["compile_time"] == "s"
    cell = row(table, "snntorch:compile").find("td", data_metric="compile_time")
    assert cell.find("span", cls="v").own_text() and cell.find("span", cls="sub").own_text() == "cache: 2 of 3 graphs found"
    assert "—" in row(table, "snntorch").find("td", data_metric="compile_time").text()
    verdict = page.find("table", data_table="verdict")
    assert "What compiling gained" in verdict.text() and "snntorch ×4.00" in verdict.text()


@pytest.mark.parametrize("ties, cautioned", [(0.10, False), (0.15, False), (0.60, True)])
def test_an_accuracy_whose_test_images_mostly_tie_is_marked_not_a_trained_networks(tmp_path, ties, cautioned):
    from tasks.specs import get_spec

    for backend in ("a", "b"):
        r = Result(task="fc_mnist", backend=backend, seed=0, framework=backend, started_at="2026-12-01T00:00:00")
        r.config = {"task": get_spec("fc_mnist").to_dict(), "run": {"device": "cpu", "precision": "fp32"}}
        r.device = {"type": "cpu", "name": "Test CPU"}
        r.set_metric("accuracy", 0.5)
        r.set_metric("tie_rate", ties)
        r.save(tmp_path / "res" / f"train-{backend}-s0.json")
    (table,) = comparison_tables(parse(build_report(tmp_path / "res", tmp_path / "r.html").read_text()))
    caution = row(table, "a").find("td", data_metric="accuracy").find("span", cls="caution")
    assert (caution is not None) == cautioned
    if cautioned:
        assert caution.attrs["title"].startswith("60 % of the test images tied") and "under 15 %" in caution.attrs["title"]


@pytest.mark.parametrize("cache, text", [
    ({"hit": 0, "miss": 3}, "cold cache"), ({"hit": 3, "miss": 0}, "warm cache"),
    ({"hit": 1, "miss": 2}, "cache: 1 of 3 graphs found"), ({"hit": 0, "miss": 0}, ""), (None, ""),
])
def test_a_compile_time_says_what_inductors_cache_gave_it(cache, text):
    from reports.tables import inductor_cache_text

    r = _result()
    if cache is not None:
        r.extra["compile"] = {"inductor_cache": cache}
    assert inductor_cache_text(r) == text
