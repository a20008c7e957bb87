"""tasks.slurm against a real Slurm (``tools/slurm/local_cluster.sh start`` makes
one on this machine; CI starts it): the suite through ``--executor slurm``, its
faults (a cancelled job, a killed suite, Ctrl-C), re-attaching, ``--list`` and
``--cancel``; and, without a cluster, the job function under submitit's local
executor and the one-line errors of a machine without Slurm or submitit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.result import Result
from tests.conftest import ROOT, subprocess_env

# one worker runs them all: they share the one cluster, whose two CPUs a second worker's jobs would wait for
pytestmark = pytest.mark.xdist_group("slurm")


def _slurm_missing() -> str | None:
    if not all(shutil.which(c) for c in ("sbatch", "squeue", "scontrol", "scancel")):
        return "Slurm's commands are not installed (tools/slurm/local_cluster.sh start)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"no Slurm controller answers ({proc.stderr.strip() or 'sinfo printed nothing'})"
    return None


@pytest.fixture(scope="module")
def cluster():
    missing = _slurm_missing()
    if missing:
        if os.environ.get("CI"):  # CI starts a cluster: its absence is a failure there
            pytest.fail(missing)
        pytest.skip(missing)


def profile(tmp_path: Path, seeds: int = 2, steps: int = 3, timing: bool = True) -> Path:
    text = f"""
[p]
device = "cpu"
backends = ["stbp"]
budget_minutes_per_backend = 5
[[p.train]]
task = "synthetic"
seeds = {list(range(seeds))}
settings = {{ T = 10, steps = {steps}, batch_size = 8 }}
minutes = 0.1
[p.cluster]
cpus_per_task = 1
mem_gb = 1
min_minutes = 5
"""
    if timing:
        text += """
[[p.timing]]
task = "lif_layer"
neurons = [16]
settings = { T = 5, batch_size = 2 }
seconds = 5
[p.parity]
tasks = ["lif_layer"]
"""
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    return path


def suite_argv(profiles: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tasks.suite", "--profiles", str(profiles), "--profile", "p", "--out", str(out),
            "--executor", "slurm", "--no-progress", "--no-report", *extra]


def suite(profiles: Path, out: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(suite_argv(profiles, out, *extra), cwd=ROOT, env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)


def submitted(out: Path) -> list[tuple[str, str]]:
    """(job, key) of every submission ever made for ``out``."""
    log = out / ".slurm" / "submitted.log"
    return [tuple(line.split(" ", 1)) for line in log.read_text().splitlines()] if log.exists() else []


def squeue(jobs: list[str]) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True).stdout
    states = dict(line.split() for line in out.splitlines() if line.strip())
    return {j: states[j] for j in jobs if j in states}


def running_points(out: Path, keys) -> list[str]:
    """The keys among ``keys`` whose point's process is alive on this machine (the one-node
    cluster's): its command line names its record."""
    argvs = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argvs.append(cmdline.read_bytes().split(b"\0"))
        except OSError:  # the process ended meanwhile
            continue
    return [key for key in keys if any(os.fsencode(out / key) in argv for argv in argvs)]


def wait_for(condition, timeout: float = 120, what: str = ""):
    """The condition's first true value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_suite_through_slurm_records_every_point_with_its_job_and_node(cluster, tmp_path):
    profiles, out = profile(tmp_path), tmp_path / "out"
    proc = suite(profiles, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "profile p: 4 ok" in proc.stdout
    jobs = dict((key, job) for job, key in submitted(out))
    assert set(jobs) == {"train/synthetic-stbp-s0.json", "train/synthetic-stbp-s1.json",
                         "timing-fp32/lif_layer-stbp-T5-N16.json", "parity/stbp.json"}
    timing_job = jobs.pop("timing-fp32/lif_layer-stbp-T5-N16.json")
    assert "_" not in timing_job  # the timing points: an array of their own (here, one exclusive job)
    assert len({job.split("_")[0] for job in jobs.values()}) == 1  # the rest: one job array
    for key in ("train/synthetic-stbp-s0.json", "train/synthetic-stbp-s1.json"):
        host = Result.load(out / key).host
        assert host["slurm_job_id"] == jobs[key] and host["hostname"]
    script = next((out / ".slurm" / "logs").glob(f"{timing_job}/*submission.sh")).read_text()
    assert "#SBATCH --exclusive" in script and "#SBATCH --mem=0" in script and "#SBATCH --time=5" in script
    script = next((out / ".slurm" / "logs").glob(f"{jobs['parity/stbp.json'].split('_')[0]}/*submission.sh")).read_text()
    assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH --mem=1G" in script and "#SBATCH --array=0-2" in script
    # run again: everything is done, nothing is submitted
    again = suite(profiles, out)
    assert again.returncode == 0 and "0 to run" in again.stderr and len(submitted(out)) == 4


def test_a_cancelled_job_and_a_killed_suite_lose_nothing_and_submit_nothing_twice(cluster, tmp_path):
    # long enough (seconds of training after the imports) that the job cancelled while running has not written
    # its record yet
    profiles, out = profile(tmp_path, seeds=5, steps=1500, timing=False), tmp_path / "out"
    log = open(tmp_path / "first.err", "w")
    first = subprocess.Popen(suite_argv(profiles, out), cwd=ROOT, env=subprocess_env(), stdout=log, stderr=log,
                             start_new_session=True)
    try:
        wait_for(lambda: len(submitted(out)) == 5, what="the submission")
        jobs = {key: job for job, key in submitted(out)}
        # a job whose point has started: one cancelled in submitit's start-up has its SIGTERM
        # swallowed (submitit bypasses it) and runs its point to the end before Slurm's SIGKILL
        victim = wait_for(lambda: running_points(out, jobs), what="a running point")[0]
        victim_job = jobs[victim]
        subprocess.run(["scancel", victim_job], check=True)
        # the suite reports the cancelled job with Slurm's reason, then is killed mid-run
        wait_for(lambda: "CANCELLED" in (tmp_path / "first.err").read_text(), timeout=300,
                 what="the cancellation's report")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        log.close()
    report = (tmp_path / "first.err").read_text()
    seed = victim.split("-s")[-1].removesuffix(".json")
    assert f"seed {seed}: no record: job {victim_job} CANCELLED" in report, report

    listed = subprocess.run(suite_argv(profiles, out, "--list"), cwd=ROOT, env=subprocess_env(),
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0
    alive = squeue([j for k, j in jobs.items() if k != victim])
    for key, job in jobs.items():
        line = next(line for line in listed.stdout.splitlines() if key in line)
        if job in alive:  # queued or running jobs are listed with their ids
            assert f"job {job}" in line and line.split()[0] in ("queued", "running"), line
    assert any(f"job {j}" in listed.stdout for j in alive) or not alive
    assert f"  todo     {victim}" in listed.stdout  # the cancelled one waits for the next run

    rerun = suite(profiles, out)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    if alive:
        assert "re-attached" in rerun.stderr
    times = {}
    for job, key in submitted(out):
        times.setdefault(key, []).append(job)
    assert times[victim][0] == victim_job and len(times[victim]) == 2  # the cancelled point: submitted again
    assert all(len(v) == 1 for k, v in times.items() if k != victim)  # every other point: once
    for key, jobs_of in times.items():  # every record written by the point's last job
        assert Result.load(out / key).host["slurm_job_id"] == jobs_of[-1]


def test_ctrl_c_leaves_the_jobs_running_and_cancel_cancels_them(cluster, tmp_path):
    profiles, out = profile(tmp_path, seeds=3, steps=400, timing=False), tmp_path / "out"
    # Ctrl-C's default action in the suite even where this test runs with SIGINT ignored (a
    # shell's background job), which Python would keep rather than raise KeyboardInterrupt
    proc = subprocess.Popen(suite_argv(profiles, out), cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: len(submitted(out)) == 3, what="the submission")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "keep running" in err and "--cancel" in err
    jobs = [job for job, _ in submitted(out)]
    alive = squeue(jobs)
    assert alive  # still queued or running
    cancelled = suite(profiles, out, "--cancel")
    assert cancelled.returncode == 0 and f"cancelled {len(alive)} " in cancelled.stdout
    wait_for(lambda: not squeue(jobs), what="the jobs to go")


def test_an_unknown_partition_is_slurms_own_line_and_records_nothing(cluster, tmp_path):
    profiles, out = profile(tmp_path, seeds=1, timing=False), tmp_path / "out"
    proc = suite(profiles, out, "--partition", "no-such-partition")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 1, proc.stderr
    assert "sbatch refused the jobs" in proc.stderr and "partition" in proc.stderr.lower()
    assert not submitted(out) and not list(out.rglob("*.json"))


# ---------------------------------------------------------------- without a cluster
def test_the_job_function_runs_the_points_command_under_submitits_local_executor(tmp_path):
    import submitit

    from tasks.slurm import run_job

    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=5)
    target, log = tmp_path / "point.json", tmp_path / "point.log"
    argv = [sys.executable, "-m", "tests.fake_point", "--out", str(target)]
    job = executor.submit(run_job, argv, str(target), str(log), str(ROOT))
    assert job.result() == 0
    assert json.loads(target.read_text())["end"] > 0
    assert log.read_text().startswith(" ".join(argv))
    dying = executor.submit(run_job, argv + ["--exit", "5"], str(tmp_path / "never.json"), str(log), str(ROOT))
    assert dying.result() == 5 and not (tmp_path / "never.json").exists()


def test_without_submitit_or_slurms_commands_the_suite_says_what_to_install(tmp_path, capsys, monkeypatch):
    from tasks import slurm
    from tasks.suite import main

    monkeypatch.setitem(sys.modules, "submitit", None)  # import fails
    assert main(["--profile", "smoke", "--out", str(tmp_path / "o"), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[cluster]'" in err
    monkeypatch.delitem(sys.modules, "submitit")
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    assert main(["--profile", "smoke", "--out", str(tmp_path / "o"), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sbatch, squeue, scontrol, scancel on PATH" in err
    assert not (tmp_path / "o").exists()
