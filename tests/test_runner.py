"""tasks/runner.py: a run's failure becomes its status, never a crash (classify, one-line
messages, the record of a run that never started), and what every record says about its run."""

from __future__ import annotations

import errno

import pytest

from tasks import runner
from tasks.errors import BackendUnavailable, DeviceOutOfMemory, Diverged
from tasks.runner import RunConfig, classify, execute, failed_result, is_host_out_of_memory, new_result, one_line
from tasks.specs import get_spec


class Backend:
    def __init__(self, oom: bool):
        self.oom = oom

    def is_out_of_memory(self, exc):
        return self.oom


@pytest.mark.parametrize("exc, status", [
    (BackendUnavailable("snntorch not installed"), "unavailable"),
    (Diverged(3, float("inf")), "diverged"),
    (DeviceOutOfMemory("CUDA out of memory"), "oom"),
    (MemoryError(), "oom"),
    (OSError(errno.ENOMEM, "Cannot allocate memory"), "oom"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 36 bytes"), "oom"),
    (RuntimeError("std::bad_alloc"), "oom"),
    (RuntimeError("shapes do not match"), "error"),
    (OSError(errno.ENOENT, "No such file"), "error"),
])
def test_an_exception_is_classified_as_the_status_it_means(exc, status):
    assert classify(exc) == status


def test_a_backend_recognises_its_own_out_of_memory_errors():
    exc = RuntimeError("RESOURCE_EXHAUSTED: Out of memory")
    assert not is_host_out_of_memory(exc)
    assert classify(exc, Backend(oom=True)) == "oom" and classify(exc, Backend(oom=False)) == "error"


def test_a_message_is_one_line_naming_the_exception():
    assert one_line(RuntimeError("kernel exploded\nsecond line")) == "RuntimeError: kernel exploded"
    assert one_line(ValueError()) == "ValueError"


def test_every_record_says_what_ran_how_and_where():
    spec = get_spec("synthetic", T=20)
    r = new_result(spec, RunConfig("spikingjelly:torch", precision="bf16"))
    assert (r.task, r.backend, r.framework, r.variant, r.precision, r.seed) == (
        "synthetic", "spikingjelly:torch", "spikingjelly", "torch", "bf16", spec.seed)
    assert r.config["task"]["T"] == 20 and r.config["run"]["backend"] == "spikingjelly:torch"
    assert r.versions["spikebench"] and r.host["python"] and r.started_at
    assert new_result(spec, RunConfig("stbp")).variant is None


def test_a_run_that_never_started_is_recorded_with_its_status(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    r = failed_result(get_spec("lif_layer"), RunConfig("stbp"), "error", "its process died", kind="measurement")
    assert (r.status, r.message, r.kind) == ("error", "its process died", "measurement")
    assert r.finished_at and r.metric("host_peak_rss") > 0 and r.host["slurm_job_id"] == "77_3"


def test_execute_turns_a_failing_body_into_a_status_with_the_traceback(register_backend):
    register_backend("broken", "tests.fake_backends:RaisesInTraining")
    spec = get_spec("synthetic", T=5, batch_size=2)

    def body(backend, data, result):
        raise RuntimeError("kernel exploded\nsecond line")

    r = execute(spec, RunConfig("broken", progress=False), body)
    assert (r.status, r.message) == ("error", "RuntimeError: kernel exploded")
    assert "second line" in r.extra["traceback"] and r.device["type"] == "cpu" and r.capabilities


def test_execute_records_a_missing_framework_as_unavailable(register_backend):
    register_backend("ghost", "tests.fake_backends:RaisesInTraining", requires=("no_such_framework_xyz",))
    r = execute(get_spec("synthetic"), RunConfig("ghost"), lambda *a: None)
    assert r.status == "unavailable" and "no_such_framework_xyz" in r.message
    with pytest.raises(ValueError, match="precision"):
        execute(get_spec("synthetic"), RunConfig("stbp", precision="fp8"), lambda *a: None)
    assert runner.safe_versions(type("NoVersions", (), {"versions": staticmethod(lambda: 1 / 0)})) == {
        "versions_error": "ZeroDivisionError: division by zero"}
