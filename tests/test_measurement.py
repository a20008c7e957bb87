"""Measurement: NeuroBench-style counts by hand, the timing harness, sweeps and the asv suite."""

import json
import subprocess
import sys

import numpy as np
import pytest

import backends
from backends import BackendEntry
from tasks import neuro
from tasks.data import Batch
from tasks.errors import SpikebenchError
from tasks.measure import measure, time_calls
from tasks.result import Result
from tasks.runner import RunConfig
from tasks.specs import SynapseInfo, get_spec
from tests.conftest import ROOT, subprocess_env


# ---------------------------------------------------------------- activity counts
def test_coverage_counts_windows_at_the_borders():
    # 3x3 kernel, padding 1, stride 1 over 4 positions: edges are read by 2 windows, inside by 3
    np.testing.assert_array_equal(neuro.coverage(4, 4, 3, 1, 1), [2, 3, 3, 2])
    # stride 2 over 4 -> 2 outputs at starts -1 and 1: index 0 read once, 1 twice, 2 once, 3 once
    np.testing.assert_array_equal(neuro.coverage(4, 2, 3, 2, 1), [1, 2, 1, 1])
    # 1x1, stride 2, no padding: only even positions are read
    np.testing.assert_array_equal(neuro.coverage(4, 2, 1, 2, 0), [1, 0, 1, 0])


def test_conv_fan_out_times_counts_is_the_number_of_accumulates():
    syn = SynapseInfo("c", "conv", "a", (2, 4, 4), (5, 4, 4), 3, 1, 1)
    fan = neuro.fan_out(syn)
    assert fan.shape == (2, 4, 4) and fan[0, 0, 0] == 5 * 2 * 2 and fan[1, 1, 2] == 5 * 3 * 3
    # brute force: one spike at (c, i, j) reaches every output whose 3x3 window covers it
    for (c, i, j) in [(0, 0, 0), (1, 1, 2), (0, 3, 1)]:
        reached = sum(1 for oi in range(4) for oj in range(4) if abs(oi - i) <= 1 and abs(oj - j) <= 1)
        assert fan[c, i, j] == 5 * reached


def test_synaptic_operations_by_hand():
    spec = get_spec("fc_mnist_poisson", T=2)  # 784 -> 196 -> 10, spikes in, spikes between
    inputs = np.zeros(784)
    inputs[:3] = [1, 2, 0]  # 3 input spikes in total over T and 2 samples
    counts = {"lif1": np.zeros(196), "lif2": np.zeros(10)}
    counts["lif1"][5] = 4
    ops = neuro.synaptic_operations(spec, counts, inputs, samples=2)
    assert ops["ac"] == pytest.approx((3 * 196 + 4 * 10) / 2) and ops["mac"] == 0
    fc = get_spec("fc_mnist", T=3)  # real-valued input: multiply-accumulates
    ops = neuro.synaptic_operations(fc, {"lif1": np.zeros(1000), "lif2": np.zeros(10)}, np.full(784, 6.0), 2)
    assert ops["mac"] == pytest.approx(784 * 6 * 1000 / 2) and ops["ac"] == 0


def test_input_counts_of_static_and_time_varying_batches():
    spec = get_spec("fc_mnist", T=5)
    x = np.zeros((2, 784), dtype=np.float32)
    x[0, :10] = 0.5
    assert neuro.input_counts(spec, Batch(x, np.zeros(2, int), True))[:10].tolist() == [5.0] * 10
    xt = np.zeros((5, 2, 784), dtype=np.float32)
    xt[1, 0, 3] = xt[2, 1, 3] = 1
    assert neuro.input_counts(spec, Batch(xt, np.zeros(2, int), False))[3] == 2


def _valid_taps(out_index, size, kernel, stride, padding):
    start = out_index * stride - padding
    return sum(1 for k in range(kernel) if 0 <= start + k < size)


def test_dsrn_dense_count_counts_every_in_bounds_product():
    """Counted from the outputs' side (taps that land inside the image), unlike fan_out."""
    spec = get_spec("dsrn_tdbn", width=1 / 16, T=3)
    expected = 0
    for s in spec.synapses():
        if s.kind == "linear":
            expected += s.in_shape[0] * s.out_shape[0]
            continue
        taps = sum(_valid_taps(oi, s.in_shape[1], s.kernel, s.stride, s.padding)
                   * _valid_taps(oj, s.in_shape[2], s.kernel, s.stride, s.padding)
                   for oi in range(s.out_shape[1]) for oj in range(s.out_shape[2]))
        expected += s.out_shape[0] * s.in_shape[0] * taps
    assert neuro.dense_operations(spec) == pytest.approx(3 * expected)


# ---------------------------------------------------------------- timing
def test_time_calls_synchronises_around_every_repeat():
    events = []
    timing = time_calls(lambda: events.append("call"), lambda: events.append("sync"), repeats=10, warmup=0)
    assert len(timing.samples) == 10 and timing.min <= timing.median <= timing.max
    # at least two warm-up calls even when 0 are asked for, each followed by a sync
    assert events[:4] == ["call", "sync", "call", "sync"]
    assert events[4:8] == ["sync", "call", "sync", "sync"]


def test_measure_point_records_figures_with_spread(data_root):
    spec = get_spec("fc_mnist", T=4, batch_size=16)
    r = measure(spec, RunConfig("stbp", data_dir=str(data_root), progress=False),
                ["throughput", "memory", "epoch", "activity"], repeats=10, warmup=2, epoch_steps=3)
    assert r.status == "ok" and r.kind == "measurement"
    assert len(r.timings["train_step"].samples) == 10 and len(r.timings["inference"].samples) == 10
    t = r.timings["train_step"]
    assert t.min <= t.median <= t.max and r.metric("train_step_spread") == pytest.approx(t.max / t.min)
    assert r.metric("train_step_throughput") == pytest.approx(16 / t.median)
    assert len(r.timings["epoch_step"].samples) == 3 and r.metric("epoch_time") > 0
    assert 0 < r.metric("activation_sparsity") < 1 and r.metric("synops_mac") > 0
    assert r.metric("peak_device_memory") is None  # CPU: no device allocator
    assert Result.from_json(r.to_json()) == r


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_host_memory_is_measured_in_a_process_of_its_own(data_root):
    """The CPU memory figures come from a fresh ``python -m tasks.hostmem`` process,
    whose malloc setting no backend can change (stbp:fused's kept blocks are refused)."""
    from tasks import hostmem

    spec = get_spec("fc_mnist", T=4, batch_size=16)
    config = RunConfig("stbp:fused", data_dir=str(data_root), progress=False)
    r = measure(spec, config, ["memory"], warmup=2)
    assert r.status == "ok"
    for key in ("inference", "forward_backward", "train_step"):
        metric = r.metrics[f"{key}_host_memory"]
        assert metric.value > 0 and "process of its own" in metric.description
    assert r.device["host_allocator"].startswith("glibc malloc keeping")  # the timing process kept its policy
    # the same figures from another measuring process: nothing left over from this one's steps
    again = hostmem.measure_in_fresh_process(spec, config, warmup=2)
    assert again["train_step"][0] == pytest.approx(r.metrics["train_step_host_memory"].value, rel=0.25, abs=2**20)


# a measuring process: a 200 MiB peak before the measure, then a call that needs nothing and one
# that needs 64 MiB (what tasks.hostmem measures is the step, not what the process did before it)
_KNOWN_STEPS = """
import json, numpy as np
from tasks import hostmem
hostmem.hold_thresholds()
big = np.ones(200 * 2**20 // 8)
del big
nothing = hostmem.step_memory(lambda: None, lambda: None)
touch = hostmem.step_memory(lambda: np.ones(64 * 2**20 // 8).sum(), lambda: None)
print(json.dumps({"nothing": nothing, "touch": touch}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_host_memory_is_what_the_step_allocates_not_an_earlier_peak():
    proc = subprocess.run([sys.executable, "-c", _KNOWN_STEPS], cwd=ROOT, capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["nothing"][1] == "" and got["nothing"][0] < 4 * 2**20  # the earlier 200 MiB peak is not counted
    assert 64 * 2**20 <= got["touch"][0] < 72 * 2**20, got["touch"]  # the array, plus interpreter noise


def test_a_measuring_process_that_writes_nothing_leaves_the_figures_out_with_the_reason(monkeypatch, data_root):
    from tasks import child, hostmem

    monkeypatch.setattr(child, "run_child", lambda argv, path, **kw: child.ChildOutcome(-9, False))
    spec = get_spec("fc_mnist", T=4, batch_size=16)
    r = measure(spec, RunConfig("stbp", data_dir=str(data_root), progress=False), ["memory"], warmup=2)
    assert r.status == "ok"
    metric = r.metrics["train_step_host_memory"]
    assert metric.value is None and "wrote nothing (exit status -9)" in metric.description
    assert hostmem.CALLS == ("inference", "forward_backward", "train_step")


def test_out_of_memory_is_a_recorded_point(monkeypatch, data_root):
    monkeypatch.setitem(backends.REGISTRY, "oom", BackendEntry("oom", "tests.fake_backends:OutOfMemory", ("torch",), ""))
    r = measure(get_spec("fc_mnist", T=2, batch_size=16), RunConfig("oom", data_dir=str(data_root)), ["throughput"])
    assert r.status == "oom" and "out of memory" in r.message


# ---------------------------------------------------------------- sweep
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


# ---------------------------------------------------------------- asv suite
def test_asv_configuration_is_valid_json_with_the_required_settings():
    text = (ROOT / "asv.conf.json").read_text()
    conf = json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))
    assert conf["environment_type"] == "existing" and conf["branches"] == ["main"]
    assert conf["results_dir"] == ".asv/results" and conf["html_dir"] == "reports/asv"
    assert conf["launch_method"] == "spawn" and conf["benchmark_dir"] == "benchmarks"


def test_asv_suites_skip_unavailable_backends_and_fail_visibly_on_failures(monkeypatch):
    from benchmarks import config
    from benchmarks.bench_steps import StepSuite
    from benchmarks.bench_training import TrainingSuite

    assert StepSuite.param_names == ["backend", "task", "T"]
    assert set(StepSuite.params[0]) == set(config.BACKENDS)
    monkeypatch.setitem(backends.REGISTRY, "ghost",
                        BackendEntry("ghost", "x:Y", ("no_such_module_abc",), ""))
    task, T = next(iter(config.STEP_POINTS))
    with pytest.raises(NotImplementedError):
        StepSuite().setup("ghost", task, T)
    with pytest.raises(NotImplementedError):  # a combination the profile does not list is skipped
        StepSuite().setup("stbp", task, 10**6)
    with pytest.raises(NotImplementedError):
        TrainingSuite().setup({}, "ghost", "fc_mnist")
    suite = TrainingSuite()
    suite.setup({"stbp|fc_mnist": {"status": "oom", "message": "out of memory", "accuracy": None}}, "stbp", "fc_mnist")
    with pytest.raises(RuntimeError, match="oom"):  # a failed run is a failed benchmark, not n/a
        suite.track_test_accuracy(None, "stbp", "fc_mnist")
    suite.setup({"stbp|fc_mnist": {"status": "ok", "message": "", "time_to_accuracy": None}}, "stbp", "fc_mnist")
    assert np.isnan(suite.track_time_to_accuracy(None, "stbp", "fc_mnist"))  # not reached: n/a


def test_asv_reads_the_suites_profiles(monkeypatch):
    import importlib

    from benchmarks import config
    from tasks.profiles import get_profile

    monkeypatch.setenv("SPIKEBENCH_ASV_PROFILE", "smoke")
    smoke = importlib.reload(config)
    try:
        profile = get_profile("smoke")
        assert smoke.PROFILE.name == "smoke" and smoke.DEVICE == profile.device
        listed = {(r.task, T) for r in profile.timing if r.task != "lif_layer" for T in r.Ts}
        assert set(smoke.STEP_POINTS) == listed
        assert set(smoke.LAYER_POINTS) == {n for r in profile.timing if r.task == "lif_layer" for n in r.neurons}
        assert set(smoke.TRAIN_ROWS) == {r.task for r in profile.train}
        monkeypatch.setenv("SPIKEBENCH_ASV_PROFILE", "no-such-profile")
        with pytest.raises(SpikebenchError):
            importlib.reload(config)
    finally:
        monkeypatch.delenv("SPIKEBENCH_ASV_PROFILE")
        importlib.reload(config)

