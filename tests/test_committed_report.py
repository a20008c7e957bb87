"""The committed comparison (reports/index.html, built from results/cpu and results/gpu):
every number in it traces to a committed record, it is the page those records
build today, and it draws in a browser without errors."""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import pytest

from reports.build import render
from reports.load import load_results
from tasks.catalogue import CATALOGUE
from tasks.suite import PUBLISHED_REPORT, PUBLISHED_SOURCES
from tests.conftest import ROOT
from tests.report_page import chromium_or_skip, column_units, comparison_tables, open_in_chromium, parse, value_cells

REPORT = ROOT / PUBLISHED_REPORT
SOURCES = [ROOT / p for p in PUBLISHED_SOURCES if (ROOT / p).is_dir()]



def test_the_committed_report_is_there():
    """Published claims with no page are a failure, not a skip."""
    assert REPORT.is_file(), f"{PUBLISHED_REPORT} is missing: rebuild it (python -m reports.build results/cpu ...)"


@pytest.fixture(scope="module")
def page():
    if not REPORT.is_file():
        pytest.fail(f"{PUBLISHED_REPORT} is missing")
    html = REPORT.read_text(encoding="utf-8")
    return html, parse(html)


def _record(rel: str) -> dict:
    return json.loads((ROOT / rel).read_text())


def _metric(rel: str, name: str):
    return _record(rel)["metrics"].get(name, {}).get("value")


# what a unit in the page's text is worth in the records' units (seconds, bytes, fractions)
UNITS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "KiB": 1024.0, "MiB": 2.0**20, "GiB": 2.0**30, "%": 0.01,
         "samples/s": 1.0, "spikes/neuron/step": 1.0, "": 1.0}
NUMBER = r"-?[\d,]*\.?\d+(?:e[+-]?\d+)?"
QUANTITY = re.compile(rf"({NUMBER})\s?(µs|ms|min|s|KiB|MiB|GiB|%|samples/s|spikes/neuron/step)?(?![\w/])")


def shows(text: str, want: float, unit: str = "", slack: float = 0.5) -> bool:
    """Does ``text`` (a number as the page prints it, in ``unit``) show ``want`` (in the records' unit),
    rounded to the digits printed (``slack`` of the last digit; 1 where the page rounds away from 1)?"""
    digits = text.replace(",", "").lstrip("-")
    if "e" in digits:
        mantissa = digits.split("e")[0]
        places = len(mantissa.partition(".")[2])
        return abs(float(digits) - want / UNITS[unit]) <= slack * 10.0 ** (int(digits.split("e")[1]) - places) * 1.0001
    places = len(digits.partition(".")[2])
    return abs(float(text.replace(",", "")) - want / UNITS[unit]) <= slack * 10.0 ** -places * 1.0001


def quantity(text: str) -> tuple[str, str]:
    match = QUANTITY.match(text.strip())
    assert match, f"no number at the start of {text!r}"
    return match.group(1), match.group(2) or ""


def _timing_tip(title: str, rec: dict, metric: str, where) -> None:
    """A step time's or throughput's tooltip: the median, min and max of the record's repeats,
    their count, the batch and the samples/s range they give."""
    timing = rec["timings"][CATALOGUE[metric].timing]
    batch = rec["config"]["task"]["batch_size"]
    batch_of = re.search(r"batch of (\d+)", title)
    repeats = re.search(r"a median (\S+ \S+) over (\d+) repeats \(min (\S+ \S+), max (\S+ \S+?)[;)]", title)
    rates = re.search(rf"({NUMBER}) to ({NUMBER}) samples/s\)", title)
    assert batch_of and repeats and rates, (where, title)
    assert int(batch_of.group(1)) == batch, (where, title)
    for text, want in zip(repeats.group(1, 3, 4), (timing["median"], timing["min"], timing["max"])):
        assert shows(quantity(text)[0], want, quantity(text)[1]), (where, text, want)
    assert int(repeats.group(2)) == len(timing["samples"]), (where, title)
    assert shows(rates.group(1), batch / timing["max"]) and shows(rates.group(2), batch / timing["min"]), (where, title)


def test_every_displayed_number_and_tooltip_traces_to_a_committed_record(page):
    """The text a reader sees, not only ``data-value``: the value in the column's unit, the
    tooltip's value, each seed's, a timing's repeats and batch, the spread and the ratio."""
    _, root = page
    checked = 0
    for table in comparison_tables(root):
        units = column_units(table)
        cells = [td for td in value_cells(table) if td.attrs["data-value"] != ""]
        best = {(td.attrs["data-group"], td.attrs["data-metric"]): float(td.attrs["data-value"])
                for td in cells if "best" in td.attrs.get("class", "").split()}
        for td in cells:
            metric, unit, want = td.attrs["data-metric"], td.attrs["data-unit"], float(td.attrs["data-value"])
            sources = td.attrs.get("data-sources", "").split() or [td.attrs["data-source"]]
            where = (sources[0], metric)
            shown = td.find("span", cls="v").own_text()
            assert shows(shown, want, units[metric]), (where, shown, units[metric], want)
            title = td.attrs["title"]
            number, in_unit = quantity(title)
            assert shows(number, want, in_unit), (where, title)
            records = [_record(rel) for rel in sources]
            for seed, text in re.findall(rf"seed (\d+): ({NUMBER}\s?\S*)[,)]", title):
                rec = next(r for r in records if r["seed"] == int(seed))
                number, in_unit = quantity(text)
                assert shows(number, rec["metrics"][metric]["value"], in_unit), (where, seed, text)
            if len(records) == 1 and CATALOGUE[metric].timing:
                _timing_tip(title, records[0], metric, where)
                spread = td.find("span", cls="sub").own_text()
                timing = records[0]["timings"][CATALOGUE[metric].timing]
                assert shows(spread.removeprefix("spread ×"), timing["max"] / timing["min"]), (where, spread)
            ratio = td.find("span", cls="ratio")
            if ratio is not None:
                shown_ratio = ratio.own_text().removeprefix("×")
                assert shows(shown_ratio, want / best[td.attrs["data-group"], metric], slack=1.0), (where, shown_ratio)
            checked += 1
    assert checked > 50


def test_the_parity_table_shows_the_committed_parity_figures(page):
    _, root = page
    files = [p for src in SOURCES for p in sorted(src.rglob("*.json")) if "rows" in json.loads(p.read_text())]
    want = {(r["task"], r["backend"], r["precision"]): r for p in files for r in json.loads(p.read_text())["rows"]}
    table = root.find("table", cls="parity-table")
    rows = table.find_all("tr")[1:]
    assert len(rows) == len(want)
    for tr in rows:
        task, backend, precision = (td.text().strip() for td in tr.find_all("td")[:3])
        r = want[task, backend, precision]
        assert tr.find("span", cls="pill").own_text() == r["status"]
        for td in tr.find_all("td", cls="num")[1:]:
            key, value = td.attrs["data-metric"], r[td.attrs["data-metric"]]
            assert (td.attrs["data-value"] == "") == (value is None), (task, backend, key)
            if value is not None:
                assert shows(quantity(td.text())[0], value), (task, backend, key, td.text())


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
    binary = chromium_or_skip("open the committed report")
    open_in_chromium(binary, REPORT.resolve().as_uri())
