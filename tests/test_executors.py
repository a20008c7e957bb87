"""tasks.executors: where local points run (--jobs, --gpus) and the option's bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tasks import executors
from tasks.errors import UsageError
from tasks.executors import LocalExecutor, Slot, local_slots, split
from tasks.orchestrate import Progress, orchestrate
from tasks.profiles import Point

CORES = sorted(os.sched_getaffinity(0))


def fake(part: str, i: int, sleep: float = 0.6, exit: int = 0) -> Point:
    args = ("--sleep", str(sleep)) + (("--exit", str(exit)) if exit else ())
    return Point(part=part, key=f"{part}/p{i}.json", backend="fake", label=f"{part} {i}", module="tests.fake_point",
                 args=args, estimate_s=1.0)


def run(points: list[Point], out: Path, executor) -> tuple[dict[str, dict], list[str]]:
    lines: list[str] = []
    result = orchestrate(points, out, executor, None, Progress(points, False, write=lines.append))
    ran = {pt.key: json.loads((out / pt.key).read_text()) for pt in points if (out / pt.key).exists()}
    return ran, result.failed


def overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_the_cores_are_split_in_contiguous_parts_and_never_oversubscribed():
    assert split([0, 1, 2, 3, 4], 2) == [(0, 1, 2), (3, 4)]
    assert split([4, 5, 6, 7], 4) == [(4,), (5,), (6,), (7,)]
    with pytest.raises(UsageError, match="at least 3 cores"):
        split([0, 1], 3)


@pytest.mark.skipif(len(CORES) < 2, reason="needs two cores to split")
def test_jobs_run_training_points_at_once_on_their_own_cores_and_a_timing_point_alone(tmp_path):
    points = [fake("train", i) for i in range(4)] + [fake("timing", 9, sleep=0.8)] + [fake("train", 4 + i) for i in range(2)]
    ran, _ = run(points, tmp_path, LocalExecutor(local_slots(2, None)))
    assert len(ran) == 7
    train = [v for k, v in ran.items() if k.startswith("train")]
    assert all(len(v["cpus"]) == len(CORES) // 2 and v["threads"] == str(len(CORES) // 2) for v in train)
    pairs = [(a, b) for i, a in enumerate(train) for b in train[i + 1:] if overlap(a, b)]
    assert pairs, "two training points should have run at once"
    assert all(not set(a["cpus"]) & set(b["cpus"]) for a, b in pairs)  # never on the same cores
    timing = ran["timing/p9.json"]
    assert timing["cpus"] == CORES and timing["threads"] is None  # the whole machine, as a lone run has it
    assert not any(overlap(timing, v) for v in train)


def test_one_point_at_a_time_by_default_with_the_process_as_it_is(tmp_path):
    ran, _ = run([fake("train", 0, 0.3), fake("train", 1, 0.3)], tmp_path, LocalExecutor(local_slots(1, None)))
    a, b = ran.values()
    assert not overlap(a, b) and a["cpus"] == CORES and a["threads"] is None


@pytest.mark.skipif(len(CORES) < 2, reason="needs two cores to split")
def test_gpus_put_one_point_on_each_gpu_timing_points_included(tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "visible_gpus", lambda: ["0", "1", "2"])  # no GPU here: the mask is what is tested
    points = [fake("timing", i, 0.5) for i in range(2)] + [fake("train", i, 0.5) for i in range(4)]
    ran, _ = run(points, tmp_path, LocalExecutor(local_slots(1, "2,0")))
    assert {v["gpu"] for v in ran.values()} == {"0", "2"}
    runs = list(ran.values())
    together = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:] if overlap(a, b)]
    assert together and all(a["gpu"] != b["gpu"] and not set(a["cpus"]) & set(b["cpus"]) for a, b in together)


def test_a_point_whose_process_dies_is_a_failure_named_with_its_log(tmp_path):
    ran, failed = run([fake("train", 0, exit=3)], tmp_path, LocalExecutor())
    assert not ran and len(failed) == 1 and "crashed (exit status 3; see" in failed[0]


@pytest.mark.parametrize("jobs, gpus, needle", [
    (0, None, "--jobs must be at least 1"),
    (1, "0,7", "has no GPU 7 (it has 0, 1)"),
    (1, "0,0", "distinct GPU indices"),
    (2, "0", "give one"),
])
def test_bad_local_options_are_one_line(monkeypatch, jobs, gpus, needle):
    monkeypatch.setattr(executors, "visible_gpus", lambda: ["0", "1"])
    with pytest.raises(UsageError) as exc:
        local_slots(jobs, gpus)
    assert needle in str(exc.value)


def test_suite_options_that_do_not_fit_the_executor_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from tasks.suite import main

    monkeypatch.setattr(executors, "visible_gpus", lambda: [])
    for argv, needle in ((["--gpus", "0"], "has no GPU 0 (it has none nvidia-smi can see)"),
                         (["--partition", "debug"], "--partition only apply to --executor slurm"),
                         (["--executor", "slurm", "--jobs", "2"], "Slurm places each job itself"),
                         (["--sbatch", "nodash"], "only apply to --executor slurm")):
        assert main(["--profile", "smoke", "--out", str(tmp_path / "o"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "o").exists()


def test_slot_environment_sets_every_thread_pool_and_the_gpu():
    env = Slot((2, 3), "1").env({"PATH": "/bin"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["PATH"] == "/bin"
    assert all(env[name] == "2" for name in executors.THREAD_VARIABLES)
