"""reports.export: every record as one flat table, the same in a CSV and a DataFrame."""

from __future__ import annotations

import pandas as pd

from reports.export import COLUMNS, main, results_table
from tasks.result import Result, Timing
from tasks.runner import RunConfig, failed_result
from tasks.specs import get_spec


def write_records(root):
    spec = get_spec("lif_layer", T=5, batch_size=2, neurons=16)
    timed = failed_result(spec, RunConfig("stbp"), "ok", "", kind="measurement")
    timed.set_metric("forward_backward_time", 0.02)
    timed.set_metric("forward_backward_host_memory", 3 * 2**20)
    timed.timings["forward_backward"] = Timing(samples=[0.02, 0.018, 0.025])
    timed.host.update(code_fingerprint="0123456789ab", machine_fingerprint="fedcba987654", slurm_job_id="12_3")
    timed.save(root / "timing" / "a.json")
    trained = failed_result(get_spec("synthetic", T=10, steps=3, seed=2), RunConfig("snntorch"), "ok", "")
    trained.set_metric("accuracy", 0.75)
    trained.save(root / "train" / "b.json")
    (root / "notes.json").write_text('{"not": "a record"}')


def test_a_row_per_record_and_metric_with_its_unit_and_where_it_ran(tmp_path, capsys):
    write_records(tmp_path)
    out = tmp_path / "results.csv"
    records = [Result.load(p) for p in (tmp_path / "timing" / "a.json", tmp_path / "train" / "b.json")]
    rows = sum(len(r.metrics) + 3 * len(r.timings) for r in records)
    assert main([str(tmp_path), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert f"{rows} rows from 2 records" in printed.out and "skipped notes.json" in printed.err
    csv = pd.read_csv(out, dtype={"code_fingerprint": str, "machine_fingerprint": str})
    frame = results_table(tmp_path)
    assert list(csv.columns) == COLUMNS == list(frame.columns) and len(csv) == len(frame) == rows
    row = csv[csv.metric == "forward_backward_time"].iloc[0]
    assert (row.value, row.unit, row.backend, row["T"], row.code_fingerprint, row.machine_fingerprint,
            row.slurm_job_id) == (0.02, "s", "stbp", 5, "0123456789ab", "fedcba987654", "12_3")
    assert csv[csv.metric == "forward_backward_host_memory"].iloc[0].unit == "bytes"
    spread = csv[csv.metric.str.startswith("forward_backward.")].set_index("metric").value
    assert spread.to_dict() == {"forward_backward.max": 0.025, "forward_backward.median": 0.02,
                                "forward_backward.min": 0.018}
    accuracy = csv[csv.metric == "accuracy"].iloc[0]
    assert (accuracy.task, accuracy.seed, accuracy.value) == ("synthetic", 2, 0.75)


def test_a_folder_without_records_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "-o", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no result records" in err and not (tmp_path / "r.csv").exists()
