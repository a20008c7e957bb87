"""reports/build.py: the HTML comparison report (``python -m reports.build``) as a whole, its
command line and odd inputs, and the page in headless Chromium.

The fixtures under tests/fixtures/report/results are constructed records of a CUDA machine
(tests/report_page.py says what they hold); the tests parse the page with the standard
library's HTML parser and check it against the JSON it came from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys


from reports.build import build_report, main
from tasks.result import Result
from tests.conftest import ROOT, subprocess_env
from tests.report_page import (FIXTURES, WIDTH, artifacts_dir, chromium_or_skip, comparison_tables, copy_fixtures,
                               open_in_chromium, parse, png_size, record, row, run_chromium, value_cells)


def test_header_names_device_driver_versions_precision_date_and_commit(page):
    _, root, _ = page
    facts = root.find("dl", cls="facts").text()
    for text in ("NVIDIA H100 80GB HBM3", "driver 570.124.06", "fp32", "bf16", "2026-11-20", "2c728f3534"):
        assert text in facts
    env = root.find("section", id="environment").text()
    assert "torch 2.13.0+cu128" in env and "snntorch 0.9.4" in env and "spikingjelly 2.0.0" in env


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


def test_the_page_renders_in_headless_chromium(tmp_path):
    binary = chromium_or_skip("run the browser test")
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
