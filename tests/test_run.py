"""tasks/run.py: ``python -m tasks.run`` as a user meets it."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import backends
from tasks.result import Result
from tasks.run import QUICK_STEPS, argv_is_default, build_parser, main
from tasks.specs import get_spec
from tasks.cli import resolve_backends
from tests.conftest import ROOT, subprocess_env, write_dataset

# what the default job runs: every backend but the compiled variants
EAGER = resolve_backends("eager")


def test_eager_is_every_backend_but_the_compiled_variants_and_the_default():
    compiled = [n for n in backends.names() if backends.entry(n).compiles]
    assert compiled and all(n.endswith((":compile", ":cudagraphs")) for n in compiled)
    assert EAGER == [n for n in backends.names() if n not in compiled] and resolve_backends("all") == backends.names()
    assert build_parser().parse_args([]).backend == "eager"


def cli(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "tasks.run", *args], cwd=ROOT, capture_output=True, text=True,
        env=env or subprocess_env(), timeout=timeout,
    )


# ---------------------------------------------------------------- bad input
BAD = [
    (["--task", "imagenet"], "valid tasks: synthetic, fc_mnist"),
    (["--backend", "tensorflow"], "valid backends: stbp"),
    (["--T", "0"], "T must be a positive integer"),
    (["--batch-size", "-4"], "batch_size must be a positive integer"),
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--lr", "-0.1"], "lr must be a positive number"),
    (["--T", "many"], "invalid int value"),
    (["--precision", "fp8"], "invalid choice"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    backend = [] if "--backend" in args else ["--backend", "stbp"]
    proc = cli(*args, *backend, "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_missing_dataset_says_where_to_get_it(tmp_path):
    out = tmp_path / "out"
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), SPIKEBENCH_DATA=str(tmp_path / "empty"))
    proc = cli("--task", "fc_mnist", "--backend", "stbp", "--dataset", "mnist", "--no-download",
               "--out", str(out), env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "data set mnist not found" in proc.stderr and "--data-dir" in proc.stderr
    assert not out.exists()


def test_corrupt_idx_file_is_named(tmp_path):
    data = write_dataset(tmp_path / "data" / "mnist", n_train=20, n_test=10, gz=False)
    labels = data / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-3])
    out = tmp_path / "out"
    proc = cli("--task", "fc_mnist", "--backend", "stbp", "--data-dir", str(tmp_path / "data"), "--out", str(out))
    assert proc.returncode == 2 and "t10k-labels-idx1-ubyte" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


# ---------------------------------------------------------------- runs
TINY = {
    "synthetic": ["--steps", "30", "--T", "50"],
    "fc_mnist": ["--T", "5", "--batch-size", "16"],
    "fc_mnist_poisson": ["--T", "8", "--batch-size", "16", "--epochs", "2"],
    "dsrn_tdbn": ["--T", "2", "--batch-size", "8", "--width", "0.0625", "--epochs", "2", "--limit-test", "16"],
}


@pytest.mark.parametrize("task", list(TINY))
def test_every_task_runs_end_to_end_on_stbp(task, data_root, tmp_path):
    path = tmp_path / f"{task}.json"
    proc = cli("--task", task, "--backend", "stbp", "--data-dir", str(data_root), "--out", str(path),
               "--no-progress", *TINY[task])
    assert proc.returncode == 0, proc.stderr
    r = Result.load(path)
    assert r.status == "ok" and r.task == task and r.backend == "stbp"
    assert r.versions["torch"] and r.device["type"] == "cpu" and r.precision == "fp32"
    assert 0.0 <= r.metric("accuracy") <= 1.0 and r.metrics["accuracy"].unit == "fraction"
    assert [l.name for l in r.layers] == _layer_names(task)
    assert all(0.0 <= l.firing_rate <= 1.0 for l in r.layers)
    assert r.metric("firing_rate_mean") is not None and len(r.curves["train_loss"].y) == r.metric("steps")
    assert "stbp" in proc.stdout and "accuracy" in proc.stdout  # the table
    if task == "dsrn_tdbn":
        assert len(r.curves["val_loss"].y) == 2 and r.metric("best_epoch") in (1, 2)


def _layer_names(task):
    from tasks.specs import get_spec

    return get_spec(task).layer_names()


@pytest.mark.slow
def test_synthetic_fits_its_batch_within_3000_steps(tmp_path):
    """The foundation's acceptance run: final loss < 0.05 and a result with accuracy and hidden rate.
    On stbp's fused engine (the same equations as stbp, by parity): the recipe is what is
    checked, in a sixth of plain PyTorch's time."""
    path = tmp_path / "synthetic.json"
    proc = cli("--task", "synthetic", "--backend", "stbp:fused", "--out", str(path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    r = Result.load(path)
    assert r.metric("steps") == 3000
    assert r.metric("final_train_loss") < 0.05
    assert r.metric("accuracy") > 0.7
    assert r.layers[0].name == "hidden" and 0 < r.layers[0].firing_rate < 1
    assert r.metric("time_to_accuracy") is not None


def test_a_backend_that_cannot_be_installed_is_a_record_beside_the_others(tmp_path):
    out = tmp_path / "cmp"
    asked = ["stbp", "lava-dl"]
    proc = cli("--task", "synthetic", "--backend", ",".join(asked), "--steps", "5", "--T", "20", "--out", str(out),
               "--no-progress")
    assert proc.returncode == 2, proc.stderr  # a backend named on the command line that cannot run
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"synthetic-{n}.json" for n in asked)
    statuses = {Result.load(out / f).backend: Result.load(out / f).status for f in files}
    assert statuses == {"stbp": "ok", "lava-dl": "unavailable"}
    # a framework that cannot be installed at all (no backend): its installer's reason, also in CI
    assert backends.entry("lava-dl").unavailable_reason in Result.load(out / "synthetic-lava-dl.json").message
    for name in asked:
        assert name in proc.stdout


def test_list_shows_tasks_backends_and_availability():
    proc = cli("--list")
    assert proc.returncode == 0
    for word in ("synthetic", "fc_mnist_poisson", "dsrn_tdbn", "stbp", "spikingjelly:torch", "brainstate"):
        assert word in proc.stdout
    assert "available" in proc.stdout and "neuron:dsrn_tdbn" in proc.stdout
    # a framework that cannot be installed is listed, unavailable, with the installer's reason
    lava = [line for line in proc.stdout.splitlines() if line.startswith("  lava-dl ")]
    assert lava and "unavailable" in lava[0]
    assert "No matching distribution found for lava-dl" in proc.stdout


def test_an_entry_that_cannot_be_installed_is_unavailable_everywhere(tmp_path, capsys):
    from tasks.errors import BackendUnavailable

    reason = backends.entry("lava-dl").unavailable_reason
    assert "Requires-Python >=3.10,<3.11" in reason
    assert backends.availability("lava-dl") == (False, reason)
    with pytest.raises(BackendUnavailable, match="No matching distribution"):
        backends.load("lava-dl")
    path = tmp_path / "r.json"
    assert main(["--task", "synthetic", "--backend", "lava-dl", "--steps", "2", "--T", "10", "--out", str(path),
                 "--no-progress"]) == 2
    r = Result.load(path)
    assert r.status == "unavailable" and reason in r.message
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------- failures
@pytest.fixture
def fake_registry(register_backend):
    register_backend("nan", "tests.fake_backends:NaNAfterThreeSteps")
    register_backend("broken", "tests.fake_backends:RaisesInTraining")
    register_backend("oom", "tests.fake_backends:OutOfMemory")
    register_backend("ghost", "tests.fake_backends:NaNAfterThreeSteps", requires=("no_such_framework_xyz",))


@pytest.mark.parametrize("name,status,code", [("nan", "diverged", 3), ("broken", "error", 1), ("oom", "oom", 4),
                                              ("ghost", "unavailable", 2)])
def test_failures_become_statuses(fake_registry, tmp_path, capsys, name, status, code):
    path = tmp_path / "r.json"
    rc = main(["--task", "synthetic", "--backend", name, "--steps", "10", "--T", "20", "--out", str(path),
               "--no-progress"])
    assert rc == code
    r = Result.load(path)
    assert r.status == status and r.message
    assert "\n" not in r.message
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == "diverged":
        assert "step 3" in r.message and r.curves["train_loss"].y[-1] is None
    if status == "error":
        assert "kernel exploded" in r.message and "RuntimeError" in r.extra["traceback"]
    if status == "unavailable":
        assert "no_such_framework_xyz" in r.message


def _tensorboard_tags(directory: Path) -> set[str]:
    from tensorboardX.proto import event_pb2

    tags = set()
    for path in directory.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_tensorboard_scalars(data_root, tmp_path, capsys):
    tb = tmp_path / "tb"
    rc = main(["--task", "fc_mnist", "--backend", "stbp", "--T", "4", "--batch-size", "32", "--data-dir",
               str(data_root), "--out", str(tmp_path / "r.json"), "--tensorboard", str(tb), "--no-progress"])
    assert rc == 0
    tags = _tensorboard_tags(tb)
    assert {"train/loss", "test/loss", "test/accuracy", "firing_rate/lif1", "firing_rate/lif2"} <= tags


def test_result_json_is_standard_json(data_root, tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["--task", "fc_mnist", "--backend", "stbp", "--T", "3", "--batch-size", "32", "--data-dir", str(data_root),
                 "--out", str(path), "--no-progress"]) == 0
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


# several backends through one command: stbp, a library on torch and one that leaves most tasks out
# (every backend on every task: tests/test_backend_contract.py, through the same runner; the suite's
# smoke profile, through this command)
SEVERAL = ["stbp", "snntorch", "rockpool"]


@pytest.mark.parametrize("task", list(TINY))
def test_every_task_runs_on_several_backends_in_their_own_processes(task, data_root, tmp_path):
    """Each task on :data:`SEVERAL` end to end through the command line, at tiny size."""
    out = tmp_path / task
    extra = ["--epochs", "1"] if task in ("fc_mnist_poisson", "dsrn_tdbn") else []
    proc = cli("--task", task, "--backend", ",".join(SEVERAL), "--data-dir", str(data_root), "--out", str(out),
               "--no-progress", *TINY[task], *extra)
    results = {Result.load(p).backend: Result.load(p) for p in out.glob("*.json")}
    assert set(results) == set(SEVERAL), proc.stderr
    # a backend named on the command line that cannot run: exit 2, the others' records written all the same
    assert proc.returncode == (2 if any(r.status == "unavailable" for r in results.values()) else 0), proc.stderr
    for name, r in results.items():
        if r.status == "unavailable" and task not in r.capabilities.get("tasks", [task]):
            # a backend whose library cannot express this task leaves it out (its notes say why)
            assert "does not implement" in r.message, r.message
            continue
        if r.status == "unavailable" and not os.environ.get("CI"):
            # a framework missing on a developer's machine; CI installs every one
            assert "not installed" in r.message, r.message
            continue
        assert r.status == "ok", (name, r.message)
        assert [l.name for l in r.layers] == _layer_names(task)
        assert r.metric("accuracy") is not None and r.metric("synops_ac") is not None
    ok = [r for r in results.values() if r.status == "ok"]
    assert len(ok) >= (2 if os.environ.get("CI") else 1)
    # identical data and weights: the first training loss is the same for every backend
    first = [r.curves["train_loss"].y[0] for r in ok]
    assert max(first) - min(first) <= 1e-4 * max(1.0, abs(first[0])), first


def test_the_default_job_is_the_quick_one_and_only_it():
    assert argv_is_default(build_parser().parse_args([]))
    for argv in (["--steps", "30"], ["--backend", "stbp"], ["--task", "fc_mnist"], ["--T", "20"]):
        assert not argv_is_default(build_parser().parse_args(argv)), argv


def test_by_the_quick_job_s_last_step_every_backend_has_learned_alike():
    """In the cpu profile's synthetic runs (the full recipe, seed 0), every backend's
    training loss has clearly fallen by step QUICK_STEPS, and by the same amount."""
    assert QUICK_STEPS < get_spec("synthetic").steps
    losses = {}
    for name in backends.installable_names():
        path = ROOT / "results" / "cpu" / "train" / f"synthetic-{name.replace(':', '-')}-s0.json"
        if not path.exists():  # a backend newer than the committed edition
            continue
        curve = json.loads(path.read_text())["curves"]["train_loss"]
        losses[name] = (curve["y"][0], curve["y"][curve["x"].index(QUICK_STEPS)])
    assert all(end < start - 0.15 for start, end in losses.values()), losses  # from ln 2 = 0.69
    assert len(losses) >= 2, losses  # a comparison
    ends = [end for _, end in losses.values()]
    assert max(ends) - min(ends) < 0.01, losses
