"""reports/load.py: reading a results directory (result, parity and NIR records; what is
skipped, with why; what is refused)."""

from __future__ import annotations

import json
import os

import pytest

from reports.load import ReportError, load_results
from tasks.result import Result


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def result(backend="stbp", **kw) -> Result:
    return Result(task="fc_mnist", backend=backend, framework=backend, config={"task": {"T": 4}}, **kw)


def parity(backend, status, when):
    return {"tolerances": {"fp64": {"membrane_rel": 1e-10}},
            "rows": [{"task": "fc_mnist", "backend": backend, "precision": "fp64", "status": status}]}, when


def test_results_parity_and_nir_records_are_told_apart(tmp_path):
    result().save(tmp_path / "a" / "run.json")
    write(tmp_path / "parity.json", parity("stbp", "ok", 0)[0])
    write(tmp_path / "nir" / "lif.json", {"record": "nir_fidelity", "framework": "norse"})
    got = load_results(tmp_path)
    assert [(loaded.path, loaded.result.backend) for loaded in got.results] == [("a/run.json", "stbp")]
    assert [row["status"] for row in got.parity.rows] == ["ok"] and got.parity.paths == ["parity.json"]
    assert [rel for rel, _ in got.nir] == ["nir/lif.json"] and not got.skipped


def test_what_is_not_a_record_is_skipped_with_why_in_one_line(tmp_path):
    result().save(tmp_path / "good.json")
    write(tmp_path / "broken.json", "{")
    write(tmp_path / "other.json", {"hello": 1})
    write(tmp_path / "bad_T.json", {**result().to_dict(), "config": {"task": {"T": 0}}})
    write(tmp_path / "bad_curve.json", {**result().to_dict(), "curves": {"loss": {"x_name": "step", "unit": "loss", "x": [1, 2], "y": [1.0]}}})
    warnings = []
    got = load_results(tmp_path, warn=warnings.append)
    why = dict(got.skipped)
    assert why["broken.json"].startswith("not valid JSON (")
    assert why["other.json"] == "not a spikebench result or parity record"
    assert why["bad_T.json"] == "not a valid result record (config.task.T must be a positive integer, got 0)"
    assert "x and y of different lengths" in why["bad_curve.json"]
    assert sorted(warnings) == sorted(f"skipped {rel}: {w}" for rel, w in got.skipped)
    assert all("\n" not in w for w in warnings)
    assert [loaded.path for loaded in got.results] == ["good.json"]


def test_a_later_parity_file_wins_for_the_same_row(tmp_path):
    for name, (data, when) in {"old.json": parity("stbp", "fail", 1000), "new.json": parity("stbp", "ok", 2000)}.items():
        os.utime(write(tmp_path / name, data), (when, when))
    result().save(tmp_path / "run.json")
    got = load_results(tmp_path)
    assert [row["status"] for row in got.parity.rows] == ["ok"]
    assert got.parity.paths == ["new.json", "old.json"]  # by name: file times differ between checkouts


def test_several_directories_are_read_relative_to_their_common_parent(tmp_path):
    result("stbp").save(tmp_path / "cpu" / "a.json")
    result("snntorch").save(tmp_path / "gpu" / "b.json")
    got = load_results([tmp_path / "cpu", tmp_path / "gpu"])
    assert sorted(loaded.path for loaded in got.results) == ["cpu/a.json", "gpu/b.json"]


def test_nothing_to_report_is_refused_with_why(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        load_results(tmp_path / "missing")
    with pytest.raises(ReportError, match="is not a directory"):
        load_results(write(tmp_path / "file.json", "{}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="^no result records"):
        load_results(tmp_path / "empty")
    write(tmp_path / "only_parity" / "p.json", parity("stbp", "ok", 0)[0])
    with pytest.raises(ReportError, match=r"only parity files"):
        load_results(tmp_path / "only_parity")
    with pytest.raises(ReportError, match="no results directory given"):
        load_results([])
