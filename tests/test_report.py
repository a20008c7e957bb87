"""The HTML comparison report (``python -m reports.build``).

The fixtures under tests/fixtures/report/results are constructed records of
a CUDA machine (``tests/fixtures/report/generate.py`` rewrites them): several
backends and a variant, an unavailable backend, an error, a diverged run, a
missing metric, out-of-memory points in a sweep, a single-backend task, a
second precision and a parity file.  The tests parse the page with the
standard library's HTML parser and check its numbers against the JSON they
came from.  The last test opens the page in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tasks.catalogue import CATALOGUE

from reports.build import build_report, main
from reports.columns import catalogue_column
from reports.tables import _timing_detail, accuracy_flag, peak_scope
from tasks.result import Result

from tests.conftest import ROOT, subprocess_env

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "report" / "results"
FC_FP32 = "fc-mnist-cuda-nvidia-h100-80gb-hbm3-fp32"
FC_BF16 = "fc-mnist-cuda-nvidia-h100-80gb-hbm3-bf16"
DSRN = "dsrn-tdbn-cuda-nvidia-h100-80gb-hbm3-fp32"
SYNTHETIC = "synthetic-cuda-nvidia-h100-80gb-hbm3-fp32"

# the display unit of a column header -> factor from the shown number to the record's unit
DISPLAY = {"%": 0.01, "s": 1.0, "ms": 1e-3, "MiB": 2**20, "GiB": 2**30, "samples/s": 1.0, "spikes/neuron/step": 1.0}


# ----------------------------------------------------------------- parsing
class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text_parts: list[str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return " ".join(" ".join(self.text_parts + [c.text() for c in self.children]).split())

    def own_text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list["Node"]:
        out = []
        for child in self.children:
            if ((tag is None or child.tag == tag) and (cls is None or cls in child.classes)
                    and all(child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())):
                out.append(child)
            out.extend(child.find_all(tag, cls, **attrs))
        return out

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> "Node | None":
        found = self.find_all(tag, cls, **attrs)
        return found[0] if found else None

    def ancestor(self, cls: str) -> "Node | None":
        node = self.parent
        while node is not None and cls not in node.classes:
            node = node.parent
        return node


class Tree(HTMLParser):
    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text_parts.append(data)


def parse(html: str) -> Node:
    return Tree(html).root


def comparison_tables(root: Node, setting: str | None = None) -> list[Node]:
    tables = root.find_all("table", data_table="comparison")
    if setting is None:
        return tables
    return [t for t in tables if t.ancestor("setting").attrs["id"] == setting]


def column_units(table: Node) -> dict[str, str]:
    return {th.attrs["data-column"]: th.find("span", cls="unit").own_text()
            for th in table.find_all("th", cls="num") if "data-column" in th.attrs}


def row(table: Node, backend: str) -> Node:
    found = table.find("tr", data_backend=backend)
    assert found is not None, f"no row for {backend}"
    return found


def value_cells(table: Node) -> list[Node]:
    return [td for td in table.find_all("td") if "data-metric" in td.attrs]


def figure_specs(html: str) -> dict[str, dict]:
    match = re.search(r'<script type="application/json" id="plot-specs">(.*?)</script>', html, re.S)
    assert match, "no figure data in the page"
    return json.loads(match.group(1))


def record(rel: str, root: Path = FIXTURES) -> dict:
    return json.loads((root / rel).read_text())


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[str, Node, Path]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    build_report(FIXTURES, out)
    html = out.read_text(encoding="utf-8")
    return html, parse(html), out


def copy_fixtures(dest: Path, *patterns: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for src in FIXTURES.glob(pattern):
            target = dest / src.relative_to(FIXTURES)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    return dest


# ------------------------------------------------------------------ numbers
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


# ------------------------------------------------------------ failed runs
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


def test_a_diverged_run_keeps_its_curve_up_to_the_divergence(page):
    html, root, _ = page
    tr = row(comparison_tables(root, DSRN)[0], "spikingjelly:torch")
    assert tr.attrs["data-status"] == "diverged"
    assert "became nan at step 206" in tr.text()
    specs = figure_specs(html)
    curves = specs[f"fig-{DSRN}-table1-curves"]["data"]
    marker = [t for t in curves if t.get("text") == ["diverged"]]
    assert marker and marker[0]["x"] == [205]


def test_a_missing_metric_is_a_dash_not_a_zero(page):
    _, root, _ = page
    (table,) = comparison_tables(root, FC_FP32)
    td = row(table, "spikingjelly").find("td", data_metric="peak_device_memory")
    assert "missing" in td.classes and td.attrs["data-value"] == ""
    assert td.find("span", cls="v").own_text() == "—"
    assert "not in this result" in td.attrs["title"]
    tta = row(comparison_tables(root, FC_BF16)[0], "spikingjelly").find("td", data_metric="time_to_accuracy")
    assert tta.find("span", cls="v").own_text() == "not reached"


def test_oom_points_of_a_sweep_are_drawn_as_such(page):
    html, root, _ = page
    specs = figure_specs(html)
    sweep_id = root.find("div", cls="sweep").attrs["id"]
    for figure in ("memory", "throughput"):
        traces = specs[f"fig-{sweep_id}-{figure}"]["data"]
        oom = {t["legendgroup"]: sorted(t["x"]) for t in traces if t.get("text") and set(t["text"]) == {"OOM"}}
        assert oom == {"stbp": [32], "snntorch": [16, 32]}
        assert any(t["name"] == "out of memory (no value)" for t in traces)
        # log2 T axis with every T as a tick
        layout = specs[f"fig-{sweep_id}-{figure}"]["layout"]
        assert layout["xaxis"]["type"] == "log" and layout["xaxis"]["tickvals"] == [1, 2, 4, 8, 16, 32]
    points = root.find("table", data_table="points")
    snn = row(points, "snntorch")
    oom_cells = snn.find_all("td", data_status="oom")
    assert len(oom_cells) == 2 and "CUDA out of memory" in oom_cells[0].text()
    assert "brainstate (unavailable" in root.find("div", cls="sweep").text()


def test_throughput_error_bars_span_the_repeats(page):
    html, root, _ = page
    specs = figure_specs(html)
    sweep_id = root.find("div", cls="sweep").attrs["id"]
    trace = next(t for t in specs[f"fig-{sweep_id}-throughput"]["data"] if t["name"] == "stbp" and t.get("error_y"))
    rec = record("sweep/dsrn_tdbn-stbp-T4.json")
    i = trace["x"].index(4)
    value, timing = rec["metrics"]["train_step_throughput"]["value"], rec["timings"]["train_step"]
    batch = value * timing["median"]
    assert trace["y"][i] == pytest.approx(value)
    assert trace["y"][i] + trace["error_y"]["array"][i] == pytest.approx(batch / timing["min"])
    assert trace["y"][i] - trace["error_y"]["arrayminus"][i] == pytest.approx(batch / timing["max"])


# --------------------------------------------------------------- structure
def test_header_names_device_driver_versions_precision_date_and_commit(page):
    _, root, _ = page
    facts = root.find("dl", cls="facts").text()
    for text in ("NVIDIA H100 80GB HBM3", "driver 570.124.06", "fp32", "bf16", "2026-11-20", "2c728f3534"):
        assert text in facts
    env = root.find("section", id="environment").text()
    assert "torch 2.13.0+cu128" in env and "snntorch 0.9.4" in env and "spikingjelly 2.0.0" in env


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


def test_plots_have_data_and_plotly_is_inlined_once(page):
    html, root, _ = page
    specs = figure_specs(html)
    divs = root.find_all("div", cls="plot")
    assert {d.attrs["id"] for d in divs} == set(specs)
    kinds = {d.attrs["data-figure"] for d in divs}
    assert kinds == {"curves", "layers", "memory", "throughput", "parity"}
    for fig_id, spec in specs.items():
        assert spec["data"], fig_id
    assert html.count("plotly.js v") == 1
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=\"?https?:", html)
    layers = next(spec for key, spec in specs.items() if key.startswith(f"fig-{DSRN}") and key.endswith("layers"))
    assert len(layers["data"][0]["x"]) == 19  # every spiking layer of dsrn_tdbn


def test_parity_matrix(page):
    html, root, _ = page
    specs = figure_specs(html)
    heat = specs["fig-parity-matrix"]["data"][0]
    assert heat["type"] == "heatmap"
    assert heat["x"] == ["synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn"]
    assert heat["y"][:2] == ["stbp", "snntorch"]
    z = {(b, t): heat["z"][i][j] for i, b in enumerate(heat["y"]) for j, t in enumerate(heat["x"])}
    assert z[("snntorch", "fc_mnist_poisson")] == 2  # fail
    assert z[("spikingjelly:torch", "dsrn_tdbn")] == 3  # error
    assert z[("brainstate", "synthetic")] == 4  # unavailable
    assert z[("spikingjelly", "synthetic")] == 1  # documented difference
    rows = root.find("table", cls="parity-table").find_all("tr")
    assert len(rows) == 1 + 20
    # no backend is the reference of another: every stbp cell is a checked number or a dash
    for tr in rows[1:]:
        for td in tr.find_all("td", cls="num"):
            assert td.find("span", cls="v") is None and "reference" not in td.text()
    assert "gradient_rel 0.0032 > 1e-06" in root.find("section", id="parity").text()


def test_asv_link_when_the_pages_exist(tmp_path):
    out = tmp_path / "site" / "report.html"
    build_report(FIXTURES, out)
    assert 'href="reports/asv/index.html"' not in out.read_text()
    index = tmp_path / "site" / "reports" / "asv" / "index.html"
    index.parent.mkdir(parents=True)
    index.write_text("<html></html>")
    build_report(FIXTURES, out)
    assert 'href="reports/asv/index.html"' in out.read_text()
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "index.html").write_text("<html></html>")
    build_report(FIXTURES, out, asv=str(other))
    assert 'href="../elsewhere/index.html"' in out.read_text()


def test_written_atomically_and_readable(tmp_path):
    out = tmp_path / "out" / "report.html"
    path = build_report(FIXTURES, out)
    assert path == out and os.listdir(out.parent) == ["report.html"]
    assert out.stat().st_mode & 0o044  # not the temporary file's 0600


# ------------------------------------------------------------- odd inputs
def one_line_error(capsys, argv) -> str:
    """The error line (after any warnings about skipped files)."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert all(l.startswith("spikebench: warning: skipped ") for l in lines[:-1])
    assert lines[-1].startswith("spikebench: error: ")
    return lines[-1]


def test_missing_or_empty_directory_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert "does not exist" in one_line_error(capsys, [str(tmp_path / "nope"), "-o", str(out)])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no result records" in one_line_error(capsys, [str(empty), "-o", str(out)])
    (empty / "notes.txt").write_text("x")
    (empty / "other.json").write_text('{"a": 1}')
    assert "no result records" in one_line_error(capsys, [str(empty), "-o", str(out)])
    assert not out.exists()
    assert "is not a directory" in one_line_error(capsys, [str(empty / "notes.txt"), "-o", str(out)])


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert "is a directory" in one_line_error(capsys, [str(FIXTURES), "-o", str(tmp_path)])
    assert "no index.html" in one_line_error(capsys, [str(FIXTURES), "-o", str(tmp_path / "r.html"),
                                                      "--asv", str(tmp_path)])
    assert not (tmp_path / "r.html").exists()


def test_a_malformed_file_is_skipped_with_a_warning(tmp_path, capsys):
    results = copy_fixtures(tmp_path / "res", "train/fc_mnist-*.json")
    (results / "train" / "broken.json").write_text('{"task": "fc_mnist", "backend": ')
    (results / "bad-status.json").write_text(json.dumps({**record("train/fc_mnist-stbp.json"), "status": "weird"}))
    out = tmp_path / "r.html"
    assert main([str(results), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [l for l in captured.err.splitlines() if l]
    assert len(warnings) == 2 and all(l.startswith("spikebench: warning: skipped ") for l in warnings)
    assert any("train/broken.json: not valid JSON" in l for l in warnings)
    assert any("bad-status.json: not a valid result record" in l for l in warnings)
    html = out.read_text()
    assert "Skipped train/broken.json" in html


def test_a_bad_parity_file_is_skipped_too(tmp_path, capsys):
    results = copy_fixtures(tmp_path / "res", "train/synthetic-stbp.json")
    (results / "parity.json").write_text(json.dumps({"tolerances": {}, "rows": [{"task": "fc_mnist"}]}))
    assert main([str(results), "-o", str(tmp_path / "r.html")]) == 0
    assert "skipped parity.json: not a parity record" in capsys.readouterr().err
    assert parse((tmp_path / "r.html").read_text()).find("section", id="parity") is None


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


def test_a_single_result_file(tmp_path):
    results = copy_fixtures(tmp_path / "res", "train/synthetic-stbp.json")
    out = build_report(results, tmp_path / "r.html")
    root = parse(out.read_text())
    assert len(comparison_tables(root)) == 1
    assert root.find("section", id="parity") is None


def test_failed_records_only(tmp_path):
    results = copy_fixtures(tmp_path / "res", "train/fc_mnist-brainstate.json", "train/fc_mnist-spikingjelly-torch.json")
    root = parse(build_report(results, tmp_path / "r.html").read_text())
    (table,) = comparison_tables(root)
    assert [td.attrs["data-status"] for td in table.find_all("td", cls="reason")] == ["error", "unavailable"]
    assert not root.find_all("div", cls="plot")


def test_records_written_by_the_result_api(tmp_path):
    """A minimal record (no config, no device) still makes a page."""
    r = Result(task="fc_mnist", backend="stbp", status="ok")
    r.set_metric("accuracy", 0.5)
    r.save(tmp_path / "res" / "a.json")
    root = parse(build_report(tmp_path / "res", tmp_path / "r.html").read_text())
    td = comparison_tables(root)[0].find("td", data_metric="accuracy")
    assert float(td.attrs["data-value"]) == 0.5 and td.find("span", cls="v").own_text() == "50.00"


def test_a_sweep_only_setting_takes_the_task_default_T(tmp_path):
    results = copy_fixtures(tmp_path / "res", "sweep/*.json")
    root = parse(build_report(results, tmp_path / "r.html").read_text())
    (table,) = comparison_tables(root)
    assert "T = 2, batch 64" in table.find("th", cls="g-meas").text()
    for td in value_cells(table):
        assert td.attrs["data-source"].endswith("-T2.json")
    assert "no training run" in row(table, "stbp").text()


def test_the_command_line_imports_no_framework(tmp_path):
    """``python -m reports.build`` end to end, and neither torch nor jax loaded."""
    out = tmp_path / "r.html"
    code = ("import runpy, sys; sys.argv = ['reports.build', sys.argv[1], '-o', sys.argv[2]]\n"
            "try:\n    runpy.run_module('reports.build', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "bad = sorted(m for m in ('torch', 'jax', 'snntorch', 'spikingjelly', 'brainstate') if m in sys.modules)\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code, str(FIXTURES), str(out)], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "report:" in proc.stdout and out.exists()
    proc = subprocess.run([sys.executable, "-m", "reports.build", str(tmp_path / "missing")], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]
WIDTH = 1400


def find_chromium() -> str | None:
    for name in (os.environ.get("SPIKEBENCH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def run_chromium(binary: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="spikebench-chromium-") as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *extra, url],
            capture_output=True, text=True, timeout=90,
        )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def artifacts_dir() -> Path:
    return Path(os.environ.get("SPIKEBENCH_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")


def open_in_chromium(binary: str, url: str) -> tuple[Node, Node, list[Node]]:
    """The page as Chromium drew it: no console message, every figure drawn and not empty."""
    proc = run_chromium(binary, url, f"--window-size={WIDTH},1000", "--enable-logging=stderr", "--v=0",
                        "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [l for l in proc.stderr.splitlines() if ":CONSOLE" in l]
    assert not console, "console messages:\n" + "\n".join(console)
    root = parse(proc.stdout)
    body = root.find("body")
    divs = root.find_all("div", cls="plot")
    assert divs and body.attrs.get("data-plots-total") == str(len(divs))
    assert body.attrs.get("data-plots-drawn") == str(len(divs)), "not every figure was drawn"
    assert body.attrs.get("data-plots-failed") == "0"
    for div in divs:
        svg = div.find("svg", cls="main-svg")
        assert svg is not None, f"{div.attrs['id']}: no SVG drawn"
        drawn = div.find_all("g", cls="trace") + [g for g in div.find_all("g", cls="hm") if g.find("image")]
        assert drawn, f"{div.attrs['id']}: an empty plot"
        assert not div.find_all("p", cls="plot-error")
    return root, body, divs


def test_the_page_renders_in_headless_chromium(tmp_path):
    binary = find_chromium()
    if binary is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    out = build_report(FIXTURES, tmp_path / "report.html")
    url = out.resolve().as_uri()

    root, body, divs = open_in_chromium(binary, url)
    assert len(divs) == 10
    assert len(root.find_all("table", data_table="comparison")) == 4  # synthetic, fc_mnist fp32 and bf16, dsrn_tdbn

    height = min(int(body.attrs.get("data-page-height", "8000")) + 20, 16000)
    shots = artifacts_dir()
    shots.mkdir(parents=True, exist_ok=True)
    png = shots / "report.png"
    if png.exists():
        png.unlink()
    proc = run_chromium(binary, url, f"--window-size={WIDTH},{height}", f"--screenshot={png}")
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]
    shutil.copy(out, shots / "report.html")
    assert png_size(png) == (WIDTH, height)
    # a blank page compresses to a few kilobytes; this one has tables and ten plots
    assert png.stat().st_size > 150_000


# ------------------------------------------------ cell details (found by mutation testing)
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
