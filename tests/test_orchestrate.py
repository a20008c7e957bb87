"""tasks.orchestrate: the one rule for "done" (the suite's and the sweep's), the
child's command, one suite per results folder, the progress display."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tasks.orchestrate import FolderLock, Progress, child_command, is_done
from tasks.profiles import Point, get_profile, points
from tasks.result import Metric, Result, Timing
from tasks.runner import RunConfig, failed_result
from tasks.specs import TASKS, get_spec
from tasks.sweep import measure_point, parser
from tests.conftest import ROOT, subprocess_env

SMOKE = get_profile("smoke")
LAYER = {"T": 20, "batch_size": 4, "neurons": 64}  # the smoke profile's lif_layer point


def suite_point() -> Point:
    """The smoke profile's lif_layer timing point on stbp, as the suite runs it."""
    (pt,) = [p for p in points(SMOKE, ["stbp"], ["timing"]) if p.task == "lif_layer"]
    return pt


def sweep_point(pt: Point) -> Point:
    """The same measurement as ``tasks.sweep`` would ask for it."""
    spec = get_spec("lif_layer", **LAYER)
    args = parser().parse_args(["--task", "lif_layer", "--T", "20", "--neurons", "64", "--batch-size", "4",
                                "--repeats", "10", "--warmup", "3", "--no-progress"])
    return measure_point(args, spec, "stbp", list(pt.measures))


def measured(pt: Point, status: str = "ok", measures=("memory", "throughput"), timed: bool = True,
             capabilities: dict | None = None) -> Result:
    spec = get_spec(pt.task, **LAYER)
    r = failed_result(spec, RunConfig(pt.backend, device=pt.device, precision=pt.precision), status, "",
                      kind="measurement")
    r.capabilities = capabilities or {}
    if status == "ok":
        r.extra["measures"] = list(measures)
        if timed:
            r.timings["forward_backward"] = Timing(samples=[0.01, 0.012])
            r.metrics["forward_backward_time"] = Metric(0.011, "s")
            r.metrics["forward_backward_host_memory"] = Metric(2.0**20, "bytes")
    return r


EVERYTHING = {"tasks": list(TASKS), "devices": ["cpu", "cuda"], "precisions": ["fp32", "bf16", "fp64"]}
CASES = [
    ("ok", {}, True),
    ("oom", {}, True),
    ("diverged", {}, True),
    ("error", {}, False),
    ("unavailable, the task left out by the backend", {"capabilities": {**EVERYTHING, "tasks": ["synthetic"]}}, True),
    ("unavailable, the framework missing", {"capabilities": {}}, False),
    ("unavailable though declared", {"capabilities": EVERYTHING}, False),
    ("ok without the memory measure", {"measures": ("throughput",)}, False),
    ("ok claiming its measures without their figures", {"timed": False}, False),
]


@pytest.mark.parametrize("case, kwargs, done", CASES, ids=[c[0] for c in CASES])
def test_the_suite_and_the_sweep_share_one_rule_and_one_name(tmp_path, case, kwargs, done):
    pt = suite_point()
    twin = sweep_point(pt)
    assert pt.key.split("/", 1)[1] == twin.key  # one naming rule: the suite adds its precision folder
    assert (twin.expected_task, twin.precision, twin.device, twin.measures) == \
           (pt.expected_task, pt.precision, pt.device, pt.measures)
    measured(pt, case.split(",")[0].split(" ")[0], **kwargs).save(tmp_path / pt.key)
    (tmp_path / twin.key).write_bytes((tmp_path / pt.key).read_bytes())
    assert is_done(pt, tmp_path / pt.key) is done
    assert is_done(twin, tmp_path / twin.key) is done


def test_a_record_of_other_settings_or_another_backend_is_not_done(tmp_path):
    pt = suite_point()
    r = measured(pt)
    r.config["task"]["T"] = 21
    r.save(tmp_path / "a.json")
    assert not is_done(pt, tmp_path / "a.json")
    r = measured(pt)
    r.backend = "snntorch"
    r.save(tmp_path / "b.json")
    assert not is_done(pt, tmp_path / "b.json")
    (tmp_path / "c.json").write_text("{ not json")
    assert not is_done(pt, tmp_path / "c.json")


@pytest.mark.parametrize("rows, done", [
    ([("lif_layer", "ok"), ("synthetic", "fail")], True),  # a failed check is an answer, shown as one
    ([("lif_layer", "ok"), ("synthetic", "error")], False),
    ([("lif_layer", "ok")], False),  # a task left out
    ([], False),
    ([("lif_layer", "ok"), ("synthetic", None)], False),
])
def test_a_parity_file_is_done_with_a_finished_row_for_each_task(tmp_path, rows, done):
    pt = Point(part="parity", key="parity/stbp.json", backend="stbp", label="parity stbp", module="tasks.parity",
               args=("--backend", "stbp", "--task", "lif_layer,synthetic"), estimate_s=1)
    body = [{"task": t, "backend": "stbp", **({"status": s} if s else {})} for t, s in rows]
    (tmp_path / "p.json").write_text(json.dumps({"rows": body}))
    assert is_done(pt, tmp_path / "p.json") is done


def test_the_child_command_is_the_same_for_every_executor(tmp_path):
    pt = suite_point()
    c = child_command(pt, tmp_path, "/data")
    assert c.argv[:3] == (sys.executable, "-m", "tasks.measure") and c.argv[-4:] == (
        "--out", str(tmp_path / pt.key), "--data-dir", "/data")
    assert c.log == tmp_path / "logs" / (pt.key.replace("/", "__").removesuffix(".json") + ".log")
    parity = points(SMOKE, ["stbp"], ["parity"])[0]
    assert child_command(parity, tmp_path, "/data").argv[-2:] == ("--json", str(tmp_path / parity.key))


def test_a_second_suite_on_one_folder_is_refused_in_one_line(tmp_path):
    lock = FolderLock(tmp_path)
    lock.acquire("a test")
    try:
        lock.write_running({"train/x.json": "cores 0-1"})
        for module in ("tasks.suite", "tasks.sweep"):
            argv = ["--profile", "smoke", "--part", "parity"] if module == "tasks.suite" else \
                ["--task", "lif_layer", "--backend", "stbp", "--T", "3"]
            proc = subprocess.run([sys.executable, "-m", module, *argv, "--out", str(tmp_path)], cwd=ROOT,
                                  env=subprocess_env(), capture_output=True, text=True, timeout=120)
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
            assert "another suite is running on" in proc.stderr and "a test" in proc.stderr
        listed = subprocess.run([sys.executable, "-m", "tasks.suite", "--profile", "smoke", "--out", str(tmp_path),
                                 "--list"], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0  # --list reads, it does not need the lock
    finally:
        lock.release()
    assert FolderLock(tmp_path).running() == {}  # released: nobody is running
    FolderLock(tmp_path).acquire("again")  # and free for the next one


def test_progress_counts_queued_running_done_and_failed_and_says_what_is_left():
    pts = [Point(part="train", key=f"k{i}", backend="b", label=f"p{i}", module="m", args=(), estimate_s=10)
           for i in range(3)]
    lines: list[str] = []
    progress = Progress(pts, False, write=lines.append)
    for pt in pts:
        progress.queue(pt)
    progress.start(pts[0], "job 1")
    assert progress.counts() == "2 queued, 1 running, 0 done, 0 failed of 3"
    progress.finish(pts[0], "ok", 5.0)
    progress.finish(pts[1], "crashed (exit status 9)", None)
    assert progress.counts() == "1 queued, 0 running, 1 done, 1 failed of 3"
    assert lines[-1].startswith("[1 queued, 0 running, 1 done, 1 failed of 3] p1: crashed") and "left)" in lines[-1]
    assert 0 < progress.left_s()


def test_sigterm_stops_a_local_run_and_its_children_as_ctrl_c_does(tmp_path):
    marker = str(tmp_path / "marker")  # names this test's child among the machine's processes
    script = f"""
import os, sys
from pathlib import Path
from tasks.executors import LocalExecutor
from tasks.orchestrate import Progress, orchestrate
from tasks.profiles import Point
pt = Point(part="train", key="p.json", backend="fake", label="p", module="tests.fake_point",
           args=("--sleep", "60", "--marker", os.environ["MARKER"]), estimate_s=60)
try:
    orchestrate([pt], Path({str(tmp_path)!r}), LocalExecutor(), None, Progress([pt], False))
except KeyboardInterrupt:
    sys.exit(130)
"""
    # the marker reaches the script by its environment: only the child's command line holds it
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(MARKER=marker))

    def child_pids() -> list[str]:
        return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()

    deadline = time.time() + 60
    while not child_pids() and time.time() < deadline:
        time.sleep(0.2)
    assert child_pids(), "the point's process never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert not child_pids()  # the child went with it: a point cut short is redone next time
    assert not (tmp_path / "p.json").exists()
