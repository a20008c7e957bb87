"""python -m tasks.suite and its profiles: data in, points out, resumable, one report."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.profiles import get_profile, points
from tasks.result import Result
from tests.conftest import ROOT, subprocess_env

TINY = """
[tiny]
description = "a test profile"
device = "cpu"
precisions = ["fp32"]
backends = ["stbp"]
dataset = "fashion-mnist"
budget_minutes_per_backend = 1

[[tiny.train]]
task = "synthetic"
seeds = [0, 1]
settings = { T = 10, steps = 3, batch_size = 8 }

[[tiny.timing]]
task = "lif_layer"
neurons = [16]
settings = { T = 5, batch_size = 2 }

[tiny.parity]
tasks = ["lif_layer"]
"""


def suite(*args: str, profile_file: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tasks.suite", "--profiles", str(profile_file), *args],
                          capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), timeout=timeout)


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(TINY)
    return path


# ---------------------------------------------------------------- the command line
def test_bad_input_is_one_line_and_exit_2(tiny, tmp_path):
    for args, needle in ((["--profile", "nope"], "unknown profile"),
                         (["--profile", "tiny", "--part", "everything"], "unknown part"),
                         (["--profile", "tiny", "--backend", "nope"], "unknown backend")):
        proc = suite(*args, "--out", str(tmp_path / "o"), profile_file=tiny)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    (tmp_path / "file").write_text("x")
    proc = suite("--profile", "tiny", "--out", str(tmp_path / "file"), profile_file=tiny)
    assert proc.returncode == 2 and "not a directory" in proc.stderr


# ---------------------------------------------------------------- running
def _files(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in out.rglob("*.json")}


@pytest.mark.slow
def test_a_suite_runs_resumes_and_redoes_only_what_did_not_finish(tiny, tmp_path, data_root):
    out = tmp_path / "out"
    proc = suite("--profile", "tiny", "--out", str(out), "--no-progress", "--data-dir", str(data_root),
                 profile_file=tiny)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 to run" in proc.stderr and "report:" in proc.stdout
    first = _files(out)
    assert set(first) == {"train/synthetic-stbp-s0.json", "train/synthetic-stbp-s1.json",
                          "timing-fp32/lif_layer-stbp-T5-N16.json", "parity/stbp.json"}
    assert {Result.load(out / "train/synthetic-stbp-s1.json").seed} == {1}
    timing = Result.load(out / "timing-fp32/lif_layer-stbp-T5-N16.json")
    assert timing.metrics["forward_backward_host_memory"].unit == "bytes"
    assert (out / "report.html").is_file()
    assert (out / "logs").is_dir()

    # run again: nothing to do, nothing rewritten
    proc = suite("--profile", "tiny", "--out", str(out), "--no-progress", "--no-report", profile_file=tiny)
    assert proc.returncode == 0 and "0 to run" in proc.stderr
    assert _files(out) == first

    # a corrupt file and a record of other settings are redone; the rest is kept
    (out / "train/synthetic-stbp-s0.json").write_text("{ not json")
    other = Result.load(out / "train/synthetic-stbp-s1.json")
    other.config["task"]["steps"] = 999
    other.save(out / "train/synthetic-stbp-s1.json")
    proc = suite("--profile", "tiny", "--out", str(out), "--no-progress", "--no-report", "--part", "train",
                 "--data-dir", str(data_root), profile_file=tiny)
    assert proc.returncode == 0 and "2 to run" in proc.stderr, proc.stderr
    now = _files(out)
    assert now["timing-fp32/lif_layer-stbp-T5-N16.json"] == first["timing-fp32/lif_layer-stbp-T5-N16.json"]
    assert Result.load(out / "train/synthetic-stbp-s1.json").config["task"]["steps"] == 3


@pytest.mark.slow
def test_a_killed_suite_finishes_when_run_again(tiny, tmp_path, data_root):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "tasks.suite", "--profiles", str(tiny), "--profile", "tiny", "--out", str(out),
            "--no-progress", "--no-report", "--data-dir", str(data_root)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.rglob("*.json")):
        time.sleep(0.2)
    time.sleep(1.0)  # somewhere inside the next point
    os.killpg(proc.pid, signal.SIGKILL)  # the suite and its child, mid-point
    proc.wait()
    kept = _files(out)
    assert kept, "the first point should have finished before the kill"
    for name in kept:  # whatever is there is complete JSON
        json.loads((out / name).read_text())
    rerun = suite("--profile", "tiny", "--out", str(out), "--no-progress", "--no-report", "--data-dir",
                  str(data_root), profile_file=tiny)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _files(out)
    assert len(after) == 4
    for name, stamp in kept.items():  # finished points were not redone
        assert after[name] == stamp
    assert not list(out.rglob(".*.tmp"))


def test_a_point_whose_process_dies_leaves_nothing_and_is_redone(tiny, tmp_path):
    from tasks.executors import LocalExecutor
    from tasks.orchestrate import Progress, is_done, orchestrate

    profile = get_profile("tiny", tiny)
    (pt,) = [p for p in points(profile, ["stbp"], ["timing"])]
    out = tmp_path / "o"
    stale = Result(task="lif_layer", backend="stbp", kind="measurement")
    stale.save(out / pt.key)  # an older record with other settings is at the path
    before = (out / pt.key).read_text()
    dying = dataclasses.replace(pt, module="tasks.no_such_module")
    run = orchestrate([dying], out, LocalExecutor(), None, Progress([dying], False, write=lambda _: None))
    assert run.statuses[pt.key].startswith("crashed") and len(run.failed) == 1
    assert (out / pt.key).read_text() == before  # not taken for this run's result, not replaced
    assert not is_done(pt, out / pt.key)


def test_list_shows_the_points_and_the_estimate(tiny, tmp_path):
    proc = suite("--profile", "tiny", "--out", str(tmp_path / "o"), "--list", profile_file=tiny)
    assert proc.returncode == 0
    assert "4 points" in proc.stdout and "  todo     parity/stbp.json" in proc.stdout
    assert not (tmp_path / "o").exists()  # --list writes nothing


def test_the_task_filter_keeps_only_those_tasks_and_refuses_an_unknown_one(capsys):
    from tasks.suite import main

    assert main(["--profile", "smoke", "--task", "fc_mnist", "--part", "train,timing", "--list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed and all("fc_mnist" in line and "poisson" not in line for line in listed)
    assert main(["--profile", "smoke", "--task", "mnist", "--list"]) == 2
    assert "unknown task mnist" in capsys.readouterr().err


# ---------------------------------------------------------------- one code state per folder
def _record_of_code(path: Path, fingerprint: str | None, machine: dict | None = None) -> None:
    """A record of code ``fingerprint`` (None: from before records carried one) taken on
    ``machine`` (an identity; None: this machine)."""
    from tasks.machine import fingerprint as machine_fingerprint, machine as this_machine

    r = Result(task="synthetic", backend="stbp")
    identity = this_machine() if machine is None else machine
    r.host = ({"code_fingerprint": fingerprint} if fingerprint else {}) | {
        "machine_fingerprint": machine_fingerprint(identity), "machine": identity}
    r.save(path)


def test_records_of_other_code_stop_the_suite_until_a_new_edition_moves_them_aside(tiny, tmp_path):
    from tasks.machine import this_machine
    from tasks.provenance import this_code
    from tasks.suite import one_edition

    out = tmp_path / "o"
    _record_of_code(out / "train/synthetic-stbp-s0.json", this_code())
    one_edition(out, new_edition=False, machine_here=this_machine())  # this code's records: nothing to say
    _record_of_code(out / "train/synthetic-stbp-s1.json", "0123456789ab")
    _record_of_code(out / "timing-fp32/lif_layer-stbp-T5-N16.json", None)  # written before records carried one
    proc = suite("--profile", "tiny", "--out", str(out), "--no-progress", profile_file=tiny)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "1 of code 0123456789ab, 1 of code unrecorded" in proc.stderr and "--new-edition" in proc.stderr
    assert not (out / "logs").exists()  # nothing ran

    (out / "train/half-written.json").write_text("{ not json")  # no edition: it is redone, not moved
    one_edition(out, new_edition=True, machine_here=this_machine())
    assert (out / "train/half-written.json").is_file()
    (out / "train/half-written.json").unlink()
    assert (out / ".editions/0123456789ab/train/synthetic-stbp-s1.json").is_file()
    assert (out / ".editions/unrecorded/timing-fp32/lif_layer-stbp-T5-N16.json").is_file()
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.json") if ".editions" not in p.parts] == [
        "train/synthetic-stbp-s0.json"]  # this code's record stays
    one_edition(out, new_edition=False, machine_here=this_machine())  # one edition now


def test_records_of_this_code_from_another_kind_of_machine_stop_the_suite_too(tiny, tmp_path):
    from tasks.machine import fingerprint, machine, this_machine
    from tasks.provenance import this_code
    from tasks.suite import one_edition

    out = tmp_path / "o"
    _record_of_code(out / "train/synthetic-stbp-s0.json", this_code())
    other = machine() | {"cpu": "AMD EPYC", "model": "17", "isa": ["avx2", "avx512f", "avx512_bf16"]}
    _record_of_code(out / "train/synthetic-stbp-s1.json", this_code(), machine=other)
    proc = suite("--profile", "tiny", "--out", str(out), "--no-progress", profile_file=tiny)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert (f"1 of this code taken on machine {fingerprint(other)} (AMD EPYC (" in proc.stderr
            and "avx2 avx512f avx512_bf16" in proc.stderr and f"this machine {this_machine()}" in proc.stderr)
    assert not (out / "logs").exists()  # nothing ran
    one_edition(out, new_edition=False, machine_here=None)  # through Slurm the nodes are the cluster's: not judged
    one_edition(out, new_edition=True, machine_here=this_machine())
    assert (out / f".editions/{this_code()}-{fingerprint(other)}/train/synthetic-stbp-s1.json").is_file()
    assert (out / "train/synthetic-stbp-s0.json").is_file()


@pytest.mark.slow
def test_the_full_profiles_smoke_twin_runs_the_publications_recipes_at_smoke_sizes(tmp_path, data_root):
    from tasks.specs import TASKS

    out = tmp_path / "twin"
    proc = subprocess.run([sys.executable, "-m", "tasks.suite", "--profile", "full", "--twin", "smoke", "--backend",
                           "stbp", "--out", str(out), "--no-progress", "--data-dir", str(data_root)],
                          capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "profile full@smoke: 4 ok" in proc.stdout and (out / "report.html").is_file()
    full = get_profile("full")
    for row in full.train:  # the full profile's own recipe: the publication's, on MNIST
        assert row.settings == TASKS[row.task].published.settings(row.task)
        r = Result.load(out / f"train/{row.task}-stbp-s0.json")
        assert r.config["task"].get("dataset", "synthetic") == TASKS[row.task].published.dataset
