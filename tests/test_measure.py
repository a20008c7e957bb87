"""tasks/measure.py: one measurement point (timings with their spread, host memory in a process of its
own, out of memory as a recorded point)."""

import sys

import pytest

from tasks.measure import measure, time_calls
from tasks.result import Result
from tasks.runner import RunConfig
from tasks.specs import get_spec


def test_time_calls_synchronises_around_every_repeat():
    events = []
    timing = time_calls(lambda: events.append("call"), lambda: events.append("sync"), repeats=10, warmup=0)
    assert len(timing.samples) == 10 and timing.min <= timing.median <= timing.max
    # at least two warm-up calls even when 0 are asked for, each followed by a sync, and the first
    # preceded by one (its time is the compile time's)
    assert events[:5] == ["sync", "call", "sync", "call", "sync"]
    assert events[5:9] == ["sync", "call", "sync", "sync"]


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


def test_a_measuring_process_that_writes_nothing_leaves_the_figures_out_with_the_reason(monkeypatch, data_root):
    from tasks import child, hostmem

    monkeypatch.setattr(child, "run_child", lambda argv, path, **kw: child.ChildOutcome(-9, False))
    spec = get_spec("fc_mnist", T=4, batch_size=16)
    r = measure(spec, RunConfig("stbp", data_dir=str(data_root), progress=False), ["memory"], warmup=2)
    assert r.status == "ok"
    metric = r.metrics["train_step_host_memory"]
    assert metric.value is None and "wrote nothing (exit status -9)" in metric.description
    assert hostmem.CALLS == ("inference", "forward_backward", "train_step")


def test_out_of_memory_is_a_recorded_point(register_backend, data_root):
    register_backend("oom", "tests.fake_backends:OutOfMemory")
    r = measure(get_spec("fc_mnist", T=2, batch_size=16), RunConfig("oom", data_dir=str(data_root)), ["throughput"])
    assert r.status == "oom" and "out of memory" in r.message
