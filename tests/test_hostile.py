"""What a hostile run found.  Nothing lost, nothing misreported.

Each test is one finding: bad input is one line and exit 2 with nothing
written, a failure is recorded as what it is, and nothing finished is lost or
replaced by something older.  Tiny sizes throughout; in-process where a
subprocess is not the point.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import backends
import tasks.idx as idx
from backends import BackendEntry
from tasks import measure as measure_module
from tasks import run as run_module
from tasks import sweep as sweep_module
from tasks.errors import DataError
from tasks.result import Result
from tasks.specs import get_spec
from tests.conftest import ROOT, make_images, subprocess_env, write_dataset

TINY_SYNTHETIC = ["--task", "synthetic", "--steps", "3", "--T", "5", "--batch-size", "4", "--no-progress"]
TINY_LAYER = ["--task", "lif_layer", "--T", "3", "--batch-size", "2", "--warmup", "0"]


def one_line_exit_2(rc: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def fake_registry(register_backend):
    register_backend("hostoom", "tests.fake_backends:HostOutOfMemory")
    register_backend("badalloc", "tests.fake_backends:BadAlloc")
    register_backend("broken", "tests.fake_broken_backend:Backend")
    return register_backend


# ------------------------------------------------- 1. a stale file is not the child's result
def test_a_stale_file_is_never_taken_for_the_childs_result(tmp_path):
    path = tmp_path / "synthetic-x.json"
    Result(task="synthetic", backend="no-such-backend", status="ok", started_at="2000-01-01T00:00:00+00:00").save(path)
    args = run_module.build_parser().parse_args(TINY_SYNTHETIC)
    spec = get_spec("synthetic", steps=3, T=5, batch_size=4)
    # the child exits at once (unknown backend) and writes nothing
    result = run_module.run_in_child(args, spec, "no-such-backend", path)
    assert result.status == "error" and "wrote no result" in result.message
    assert Result.load(path).status == "error"  # this run's record, not the older "ok"


# ------------------------------------------------- 2. --out is checked before any work
@pytest.mark.parametrize("where", ["proc", "dir.json"])
def test_an_unwritable_run_out_is_refused_before_training(tmp_path, capsys, where):
    out = "/proc/x.json" if where == "proc" else str(tmp_path / "d.json")
    if where == "dir.json":
        os.mkdir(out)
    rc = run_module.main([*TINY_SYNTHETIC, "--backend", "stbp", "--out", out])
    one_line_exit_2(rc, capsys.readouterr().err, "--out")
    if where == "dir.json":
        assert os.listdir(out) == []


def test_measure_out_that_is_a_directory_is_refused_first(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    rc = measure_module.main([*TINY_LAYER, "--backend", "stbp", "--neurons", "8", "--out", str(tmp_path / "m")])
    one_line_exit_2(rc, capsys.readouterr().err, "is a directory")
    assert list((tmp_path / "m").iterdir()) == []


def test_sweep_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "f"
    out.write_text("mine")
    rc = sweep_module.main([*TINY_LAYER, "--backend", "stbp", "--neurons", "8", "--out", str(out)])
    one_line_exit_2(rc, capsys.readouterr().err, "not a directory")
    assert out.read_text() == "mine"


# ------------------------------------------------- 3. sweep: a killed point is redone, not "oom"
def _layer_point(tmp_path):
    from tasks.profiles import measure_key

    spec = get_spec("lif_layer", T=3, batch_size=2, neurons=8)
    return spec, tmp_path / measure_key("lif_layer", "stbp", 3, 8)


def test_a_killed_sweep_point_records_nothing_and_is_redone(tmp_path, capsys, monkeypatch):
    import dataclasses

    calls = []
    real = sweep_module.measure_point

    def killed(*args, **kwargs):  # the kernel's OOM killer (or anyone) sends SIGKILL to the point's process
        calls.append(args)
        return dataclasses.replace(real(*args, **kwargs), module="tests.fake_point", args=("--kill",))

    monkeypatch.setattr(sweep_module, "measure_point", killed)
    argv = [*TINY_LAYER, "--backend", "stbp", "--neurons", "8", "--out", str(tmp_path), "--no-progress"]
    assert sweep_module.main(argv) == 1
    out = capsys.readouterr().out
    assert "crashed (exit status -9" in out and "1 measured" in out
    assert not list(tmp_path.glob("*.json"))  # not an "oom" record: nothing is known about memory
    assert sweep_module.main(argv) == 1 and len(calls) == 2  # not done: asked again


@pytest.mark.parametrize("status,done", [("oom", True), ("diverged", True), ("unavailable", False),
                                         ("error", False)])
def test_only_a_finished_point_counts_as_done(tmp_path, status, done):
    from tasks.orchestrate import is_done
    from tasks.runner import RunConfig, failed_result

    spec, path = _layer_point(tmp_path)
    failed_result(spec, RunConfig("stbp"), status, "recorded by the point's process", kind="measurement").save(path)
    args = sweep_module.parser().parse_args(["--task", "lif_layer", "--neurons", "8", "--repeats", "10",
                                             "--warmup", "0", "--no-progress"])
    point = sweep_module.measure_point(args, spec, "stbp", ["throughput"])
    assert tmp_path / point.key == path
    # an unavailable framework (no capabilities recorded) may be installed since: asked again
    assert is_done(point, path) is done


# ------------------------------------------------- 4. a run that cannot take one step
def test_a_run_that_cannot_take_one_step_is_bad_input(tmp_path, data_root, capsys):
    out = tmp_path / "r.json"
    rc = run_module.main(["--task", "fc_mnist", "--dataset", "fashion-mnist", "--backend", "stbp", "--limit-train",
                          "64", "--limit-test", "32", "--steps", "5", "--data-dir", str(data_root),
                          "--out", str(out), "--no-progress"])
    one_line_exit_2(rc, capsys.readouterr().err, "no training step", "64 training images", "batch of 128")
    assert not out.exists()


# ------------------------------------------------- 5. a corrupt deflate body
def test_a_gzip_with_a_corrupt_deflate_body_is_named(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    idx.write_idx(path, make_images(20, 0)[0])
    data = bytearray(path.read_bytes())
    data[20:60] = b"\xff" * 40  # inside the deflate stream, after the gzip header
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        idx.read_idx(path)


# ------------------------------------------------- 6. sizes too large for memory
@pytest.mark.parametrize("argv,needle", [
    (["--task", "synthetic", "--T", "100000000"], "T=100000000"),
    (["--task", "synthetic", "--batch-size", "1000000000"], "batch 1000000000"),
])
def test_a_batch_larger_than_memory_says_what_it_needs(tmp_path, capsys, argv, needle):
    out = tmp_path / "r.json"
    rc = run_module.main([*argv, "--backend", "stbp", "--out", str(out), "--no-progress"])
    one_line_exit_2(rc, capsys.readouterr().err, needle, "GiB of host memory")
    assert not out.exists()


def test_measure_of_a_layer_larger_than_memory_says_what_it_needs(tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = measure_module.main(["--task", "lif_layer", "--T", "1000000000", "--backend", "stbp", "--out", str(out)])
    one_line_exit_2(rc, capsys.readouterr().err, "lif_layer with T=1000000000", "GiB of host memory")
    assert not out.exists()


@pytest.mark.skipif(Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1",
                    reason="with overcommit always on, a huge allocation would succeed and exhaust the machine")
def test_an_allocation_that_fails_anyway_is_one_line(monkeypatch):
    import tasks.data as data

    monkeypatch.setattr(data, "host_memory_bytes", lambda: 2**80)  # a machine large enough on paper
    with pytest.raises(data.UsageError, match="more than this process could allocate"):
        data.make_data(get_spec("synthetic", T=100_000_000))


# ------------------------------------------------- 7. host memory running out inside torch
@pytest.mark.parametrize("name", ["hostoom", "badalloc"])
def test_running_out_of_host_memory_inside_torch_is_oom(fake_registry, tmp_path, capsys, name):
    path = tmp_path / "r.json"
    rc = run_module.main([*TINY_SYNTHETIC, "--backend", name, "--out", str(path)])
    r = Result.load(path)
    assert rc == 4 and r.status == "oom", r.message
    m = measure_module.main([*TINY_LAYER, "--neurons", "8", "--backend", name, "--out", str(tmp_path / "m.json")])
    assert m == 4 and Result.load(tmp_path / "m.json").status == "oom"


# ------------------------------------------------- 8. file contents are validated
def _write_split(directory: Path, images: np.ndarray, labels: np.ndarray, images_bytes: bytes | None = None):
    write_dataset(directory, n_train=20, n_test=10, gz=False)
    idx.write_idx(directory / "train-labels-idx1-ubyte", labels)
    if images_bytes is None:
        idx.write_idx(directory / "train-images-idx3-ubyte", images)
    else:
        (directory / "train-images-idx3-ubyte").write_bytes(images_bytes)


def _float_images(n: int) -> bytes:
    values = np.zeros((n, 28, 28), dtype=">f4")
    return struct.pack(">HBB", 0, 0x0D, 3) + struct.pack(">3I", n, 28, 28) + values.tobytes()


@pytest.mark.parametrize("case,file,needle", [
    ("label 10", "train-labels-idx1-ubyte", "labels from 0 to 10"),
    ("14x14 images", "train-images-idx3-ubyte", "28x28"),
    ("no images", "train-images-idx3-ubyte", "no images"),
    ("float images", "train-images-idx3-ubyte", "unsigned bytes"),
])
def test_file_contents_the_tasks_cannot_read_are_named(tmp_path, isolated_data, case, file, needle):
    images, labels = make_images(20, 0)
    blob = None
    if case == "label 10":
        labels = labels.copy()
        labels[3] = 10
    elif case == "14x14 images":
        images = images[:, :14, :14].copy()
    elif case == "no images":
        images, labels = images[:0], labels[:0]
    else:
        blob = _float_images(20)
    _write_split(tmp_path / "d" / "mnist", images, labels, blob)
    with pytest.raises(DataError) as info:
        idx.load_dataset("mnist", tmp_path / "d")
    assert file in str(info.value) and needle in str(info.value)


def test_labels_out_of_range_stop_the_run_before_any_backend(tmp_path, isolated_data, capsys):
    images, labels = make_images(20, 0)
    _write_split(tmp_path / "d" / "mnist", images, (labels + 5).astype(np.uint8))
    out = tmp_path / "r.json"
    rc = run_module.main(["--task", "fc_mnist", "--backend", "stbp", "--batch-size", "4", "--T", "2",
                          "--data-dir", str(tmp_path / "d"), "--out", str(out), "--no-progress"])
    one_line_exit_2(rc, capsys.readouterr().err, "train-labels-idx1-ubyte")
    assert not out.exists()


# ------------------------------------------------- 9. sweep with data that cannot be found
def test_sweep_without_its_data_set_is_one_line_and_writes_nothing(tmp_path, isolated_data, capsys):
    out = tmp_path / "s"
    rc = sweep_module.main(["--task", "fc_mnist", "--backend", "stbp", "--dataset", "mnist", "--T", "1,2",
                            "--no-download", "--out", str(out)])
    one_line_exit_2(rc, capsys.readouterr().err, "data set mnist not found")
    assert not out.exists()


# ------------------------------------------------- 10. an unsupported device
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_unavailable(tmp_path, capsys):
    path = tmp_path / "r.json"
    rc = run_module.main([*TINY_SYNTHETIC, "--backend", "stbp", "--device", "cuda", "--out", str(path)])
    r = Result.load(path)
    assert rc == 2 and r.status == "unavailable" and "no CUDA device" in r.message
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------- 11. an out-of-range float
@pytest.mark.parametrize("argv,needle", [(["--lr", "3e38"], "lr must be at most"),
                                         (["--task", "dsrn_tdbn", "--width", "1e30"], "width must be at most")])
def test_out_of_range_floats_are_bad_input(tmp_path, capsys, argv, needle):
    out = tmp_path / "r.json"
    rc = run_module.main([*TINY_SYNTHETIC, *argv, "--backend", "stbp", "--out", str(out)])
    one_line_exit_2(rc, capsys.readouterr().err, needle)
    assert not out.exists()


# ------------------------------------------------- 12. a broken install
def test_a_framework_broken_at_import_is_unavailable_with_the_reason(fake_registry, tmp_path, capsys):
    path = tmp_path / "r.json"
    rc = run_module.main([*TINY_SYNTHETIC, "--backend", "broken", "--out", str(path)])
    r = Result.load(path)
    assert rc == 2 and r.status == "unavailable"
    assert "RuntimeError" in r.message and "undefined symbol" in r.message
    assert "Traceback" not in capsys.readouterr().err


def test_list_calls_a_broken_backend_unavailable(monkeypatch, capsys):
    monkeypatch.setattr(backends, "REGISTRY", {"broken": BackendEntry("broken", "tests.fake_broken_backend:B",
                                                                      ("torch",), "test backend")})
    assert run_module.main(["--list"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.strip().startswith("broken"))
    assert "unavailable" in line and "undefined symbol" in out and "cannot load" not in out


def test_a_broken_framework_never_breaks_the_others(tmp_path):
    """A real broken install: an importable snntorch that raises at import."""
    fake = tmp_path / "site" / "snntorch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise OSError("libsnn.so: cannot open shared object file")\n')
    out = tmp_path / "cmp"
    env = subprocess_env(PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path / 'site'}")
    proc = subprocess.run([sys.executable, "-m", "tasks.run", *TINY_SYNTHETIC, "--backend", "stbp,snntorch",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    results = {Result.load(p).backend: Result.load(p) for p in out.glob("*.json")}
    assert results["stbp"].status == "ok"
    assert results["snntorch"].status == "unavailable" and "cannot open shared object" in results["snntorch"].message
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # a named backend is unavailable


# ------------------------------------------------- 13. malformed records in the report
FIXTURE = ROOT / "tests" / "fixtures" / "report" / "results" / "sweep" / "dsrn_tdbn-stbp-T1.json"


def _malformed(record: dict) -> dict[str, str]:
    def edit(change):
        r = json.loads(json.dumps(record))
        change(r)
        return json.dumps(r)

    big = json.dumps(record).replace('"metrics": {', '"metrics": {"huge": {"value": 1' + "0" * 400
                                     + ', "unit": "s", "description": ""}, ', 1)
    return {
        "timestamp-number.json": edit(lambda r: r.update(started_at=1700000000)),
        "T-zero.json": edit(lambda r: r["config"]["task"].update(T=0)),
        "no-T.json": edit(lambda r: r["config"]["task"].pop("T")),
        "enormous.json": big,
        "deep.json": "[" * 100000 + "]" * 100000,
    }


def test_malformed_records_are_skipped_with_a_line_naming_each(tmp_path):
    from reports.build import build_report
    from reports.load import load_results

    record = json.loads(FIXTURE.read_text())
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "good.json").write_text(json.dumps(record))
    bad = _malformed(record)
    for name, text in bad.items():
        (tmp_path / "res" / name).write_text(text)
    warnings: list[str] = []
    collection = load_results(tmp_path / "res", warn=warnings.append)
    assert [l.path for l in collection.results] == ["good.json"]
    assert sorted(p for p, _ in collection.skipped) == sorted(bad)
    assert all("\n" not in w and any(name in w for name in bad) for w in warnings)
    build_report(tmp_path / "res", tmp_path / "r.html", warn=lambda _: None)
    assert (tmp_path / "r.html").stat().st_size > 0


# ------------------------------------------------- 14. an explicit --data-dir is used alone
@pytest.mark.parametrize("case,needle", [("empty", "lacks train-images-idx3-ubyte"),
                                         ("incomplete", "lacks t10k-labels-idx1-ubyte"),
                                         ("missing", "does not exist")])
def test_an_explicit_data_dir_never_falls_back(tmp_path, data_root, isolated_data, monkeypatch, case, needle):
    monkeypatch.setenv("SPIKEBENCH_DATA", str(data_root))  # a complete copy elsewhere
    given = tmp_path / "given"
    if case != "missing":
        given.mkdir()
    if case == "incomplete":
        write_dataset(given / "mnist", n_train=20, n_test=10)
        (given / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        idx.load_dataset("mnist", given)
    assert needle in str(info.value) and str(given) in str(info.value)
    assert idx.load_dataset("mnist", None).location == str(data_root / "mnist")  # without it, the search


# ------------------------------------------------- 15. smaller ones
def test_orphan_temporaries_of_a_killed_write_are_removed(tmp_path):
    path = tmp_path / "synthetic-x.json"
    orphan = tmp_path / ".synthetic-x.json.abc123.tmp"  # write_atomic's name, the writer killed
    orphan.write_text('{"half')
    other = tmp_path / ".someone-else.json.abc.tmp"
    other.write_text("")
    args = run_module.build_parser().parse_args(TINY_SYNTHETIC)
    run_module.run_in_child(args, get_spec("synthetic", steps=3, T=5, batch_size=4), "no-such-backend", path)
    assert not orphan.exists() and other.exists()  # only this file's


def test_a_backend_named_twice_runs_once():
    assert run_module.resolve_backends("stbp, stbp,stbp") == ["stbp"]


def test_a_huge_idx_header_reports_the_true_byte_count(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"x")
    with pytest.raises(DataError) as info:
        idx.read_idx(path)
    assert f"expected {(2**32 - 1) ** 3} data bytes" in str(info.value)


def test_failed_rows_keep_the_table_aligned():
    ok = Result(task="synthetic", backend="stbp")
    ok.set_metric("accuracy", 0.5)
    gone = Result(task="synthetic", backend="snntorch", status="unavailable", message="snntorch not installed")
    head, first, second = run_module.comparison_table([ok, gone]).splitlines()
    assert second.index("snntorch not installed") == head.index("accuracy") == first.index("0.5000")


# ------------------------------------------------- fault injection
def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _kill_at_random(argv: list[str], seed: int, kills: int, kill_parent: bool) -> subprocess.Popen:
    """Run ``argv``; SIGKILL ``kills`` of its children, each a random time after it
    starts; with ``kill_parent`` then the whole process group, at a random time."""
    rng = random.Random(seed)
    proc = subprocess.Popen(argv, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    seen: set[int] = set()
    deadline = time.time() + 60
    while kills and proc.poll() is None and time.time() < deadline:
        fresh = [c for c in _children(proc.pid) if c not in seen]
        if not fresh:
            time.sleep(0.05)
            continue
        seen.update(fresh)
        time.sleep(rng.uniform(0.0, 3.0))  # during start-up, the measurement or the write
        for child in fresh:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it finished first
        kills -= 1
    if kill_parent and proc.poll() is None:
        time.sleep(rng.uniform(0.0, 2.0))
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=120)
    return proc


def _records(out: Path, started: str) -> dict[str, tuple[int, int]]:
    """Every result file: complete JSON of the run that started at ``started``."""
    found = {}
    for path in sorted(out.glob("*.json")):
        r = Result.load(path)  # complete JSON, or this raises
        assert r.started_at >= started, f"{path.name} is older than this run"
        st = path.stat()
        found[path.name] = (st.st_mtime_ns, st.st_size)
    return found


def _now() -> str:
    from tasks.runner import now

    return now()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sweep_killed_anywhere_loses_nothing_and_finishes_each_point_once(tmp_path, seed):
    out = tmp_path / "s"
    argv = [sys.executable, "-m", "tasks.sweep", *TINY_LAYER, "--backend", "stbp", "--neurons", "8,16",
            "--out", str(out)]
    started = _now()
    _kill_at_random(argv, seed, kills=1 + seed % 2, kill_parent=seed == 2)
    kept = _records(out, started) if out.exists() else {}
    for name in kept:
        assert Result.load(out / name).status == "ok"  # a killed point is not recorded as anything
    rerun = subprocess.run(argv, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{2 - len(kept)} measured, {len(kept)} already done" in rerun.stdout
    after = _records(out, started)
    assert len(after) == 2 and all(Result.load(out / n).status == "ok" for n in after)
    assert all(after[n] == stamp for n, stamp in kept.items())  # finished points were not redone
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_a_run_killed_anywhere_records_this_run_or_nothing(tmp_path, seed):
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "tasks.run", *TINY_SYNTHETIC, "--backend", "stbp,stbp:fused", "--out", str(out)]
    started = _now()
    _kill_at_random(argv, seed, kills=1, kill_parent=seed == 1)
    _records(out, started) if out.exists() else {}  # complete records of this run, or none
    rerun = subprocess.run(argv, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _records(out, started)
    assert sorted(after) == ["synthetic-stbp-fused.json", "synthetic-stbp.json"]
    assert all(Result.load(out / n).status == "ok" for n in after)
    assert not list(out.glob(".*.tmp"))
