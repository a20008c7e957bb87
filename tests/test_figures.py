"""reports/figures.py: the report's figures (curves, sweeps, error bars, the parity matrix) and plotly
inlined once."""

from __future__ import annotations

import re

import pytest

from tests.report_page import DSRN, comparison_tables, figure_specs, record, row


def test_a_diverged_run_keeps_its_curve_up_to_the_divergence(page):
    html, root, _ = page
    tr = row(comparison_tables(root, DSRN)[0], "spikingjelly:torch")
    assert tr.attrs["data-status"] == "diverged"
    assert "became nan at step 206" in tr.text()
    specs = figure_specs(html)
    curves = specs[f"fig-{DSRN}-table1-curves"]["data"]
    marker = [t for t in curves if t.get("text") == ["diverged"]]
    assert marker and marker[0]["x"] == [205]


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
