"""tasks/sweep.py: sweeps write one result per point, resume, and refuse bad lists."""

import subprocess
import sys

from tasks.result import Result
from tests.conftest import ROOT, subprocess_env


def sweep(out, *extra, data_root):
    return subprocess.run(
        [sys.executable, "-m", "tasks.sweep", "--task", "dsrn_tdbn", "--backend", "stbp", "--T", "1,2",
         "--width", "0.0625", "--batch-size", "4", "--limit-train", "8", "--limit-test", "8",
         "--data-dir", str(data_root), "--out", str(out), "--no-progress", *extra],
        cwd=ROOT, capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )


def test_sweep_writes_one_result_per_point_and_resumes(tmp_path, data_root):
    out = tmp_path / "sweep"
    first = sweep(out, data_root=data_root)
    assert first.returncode == 0, first.stderr
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["dsrn_tdbn-stbp-T1.json", "dsrn_tdbn-stbp-T2.json"]
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["dsrn_tdbn-stbp-T1.log", "dsrn_tdbn-stbp-T2.log"]
    for T in (1, 2):
        r = Result.load(out / f"dsrn_tdbn-stbp-T{T}.json")
        assert r.status == "ok" and r.config["task"]["T"] == T and r.metric("train_step_time") > 0
    assert "2 measured, 0 already done" in first.stdout and "T=1" in first.stdout

    # a killed sweep: one point missing, one half-written
    (out / "dsrn_tdbn-stbp-T1.json").unlink()
    (out / "dsrn_tdbn-stbp-T2.json").write_text("{ truncated")
    again = sweep(out, data_root=data_root)
    assert "2 measured, 0 already done" in again.stdout
    third = sweep(out, data_root=data_root)
    assert "0 measured, 2 already done" in third.stdout
    # other settings are other points
    fourth = sweep(out, "--precision", "bf16", data_root=data_root)
    assert "2 measured, 0 already done" in fourth.stdout


def test_sweep_rejects_bad_lists(tmp_path, data_root):
    proc = sweep(tmp_path / "s", "--T", "1,x", data_root=data_root)  # the later --T wins
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--T" in proc.stderr
    proc = sweep(tmp_path / "s", "--measure", "speed", data_root=data_root)
    assert proc.returncode == 2 and "unknown measure speed" in proc.stderr
