"""The committed comparison (reports/index.html, built from results/cpu and results/gpu):
every number in it traces to a committed record, it is the page those records
build today, and it draws in a browser without errors."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from reports.build import render
from reports.load import load_results
from tasks.suite import PUBLISHED, PUBLISHED_REPORT
from tests.conftest import ROOT
from tests.test_report import comparison_tables, find_chromium, open_in_chromium, parse, value_cells

REPORT = ROOT / PUBLISHED_REPORT
SOURCES = [ROOT / p for p in PUBLISHED.values() if (ROOT / p).is_dir()]

pytestmark = pytest.mark.skipif(not REPORT.is_file(), reason="no committed report (python -m tasks.suite --profile cpu)")


@pytest.fixture(scope="module")
def page():
    html = REPORT.read_text(encoding="utf-8")
    return html, parse(html)


def _metric(rel: str, name: str):
    data = json.loads((ROOT / rel).read_text())
    return data["metrics"].get(name, {}).get("value")


def test_every_number_in_the_committed_tables_traces_to_a_committed_record(page):
    _, root = page
    checked = 0
    for table in comparison_tables(root):
        for td in value_cells(table):
            metric, value = td.attrs["data-metric"], td.attrs["data-value"]
            sources = td.attrs.get("data-sources", "").split() or [td.attrs["data-source"]]
            for rel in sources:
                assert (ROOT / rel).is_file(), f"{rel} is shown in the report but not committed"
            if value == "":
                assert _metric(sources[0], metric) is None, (sources[0], metric)
                continue
            stored = [_metric(rel, metric) for rel in sources]
            how = td.attrs.get("data-aggregate", "")
            want = statistics.fmean(stored) if how == "mean" else statistics.median(stored) if how else stored[0]
            assert float(value) == pytest.approx(want, rel=1e-12), (sources, metric)
            checked += 1
    assert checked > 50


def test_the_committed_report_is_what_the_committed_results_build(page, monkeypatch):
    html, _ = page
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        fresh = render(load_results([p.relative_to(ROOT) for p in SOURCES], base="."), Path(PUBLISHED_REPORT))
    finally:
        os.chdir(cwd)
    strip = lambda text: "\n".join(l for l in text.splitlines() if "Built by" not in l)  # the build time  # noqa: E731
    assert strip(fresh) == strip(html), "reports/index.html is stale: rebuild it from the committed results"


def test_the_committed_report_draws_in_headless_chromium():
    binary = find_chromium()
    if binary is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must open the committed report")
        pytest.skip(message)
    open_in_chromium(binary, REPORT.resolve().as_uri())
