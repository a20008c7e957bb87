"""tasks.hostmem's arithmetic and order of steps, on a fake kernel and malloc (and the real
measure, on steps of known size, in a process of its own)."""

import json
import subprocess
import sys

import pytest

from tasks import hostmem, malloc
from tests.conftest import ROOT, subprocess_env


class FakeKernel:
    """/proc/self/status and clear_refs: the resident set grows with what a call touches."""

    def __init__(self, rss_kib=1000, hwm_kib=50_000, resettable=True):
        self.rss, self.hwm, self.resettable, self.events = rss_kib, hwm_kib, resettable, []

    def status(self, field):
        self.events.append(f"read {field}")
        return {"VmRSS": self.rss, "VmHWM": self.hwm}.get(field)

    def reset(self):
        self.events.append("reset")
        if self.resettable:
            self.hwm = self.rss
        return self.resettable

    def touch(self, kib):
        self.events.append("call")
        self.hwm = max(self.hwm, self.rss + kib)


@pytest.fixture
def kernel(monkeypatch):
    k = FakeKernel()
    monkeypatch.setattr(hostmem, "_status_kib", k.status)
    monkeypatch.setattr(hostmem, "_reset_peak", k.reset)
    monkeypatch.setattr(malloc, "held", lambda: False)
    monkeypatch.setattr(malloc, "set_thresholds", lambda m, t: k.events.append(f"thresholds {m} {t}") or True)
    monkeypatch.setattr(malloc, "trim", lambda: k.events.append("trim"))
    return k


def test_the_figure_is_the_new_peak_minus_the_resident_set_before_the_calls(kernel):
    sizes = iter([300, 700, 500])
    value, why = hostmem.step_memory(lambda: kernel.touch(next(sizes)), lambda: kernel.events.append("sync"))
    assert (value, why) == (700 * 1024, "")  # the earlier 50 MB peak is not counted
    assert kernel.events == ["thresholds 65536 0", "trim", "sync", "read VmRSS", "reset",
                             "call", "sync", "call", "sync", "call", "sync", "read VmHWM"]


def test_steps_sets_the_number_of_calls(kernel):
    hostmem.step_memory(lambda: kernel.touch(1), lambda: None, steps=2)
    assert kernel.events.count("call") == 2 and hostmem.STEPS == 3


def test_a_call_that_touches_nothing_needs_nothing(kernel):
    kernel.rss = 2000
    assert hostmem.step_memory(lambda: None, lambda: None) == (0, "")


def test_what_cannot_be_measured_is_none_with_the_reason(kernel, monkeypatch):
    kernel.resettable = False
    assert hostmem.step_memory(lambda: None, lambda: None) == (
        None, "not measured: the kernel does not allow resetting the peak resident set")
    kernel.resettable, kernel.rss = True, None
    assert hostmem.step_memory(lambda: None, lambda: None)[0] is None
    kernel.rss = 1000
    monkeypatch.setattr(kernel, "hwm", None)
    monkeypatch.setattr(hostmem, "_reset_peak", lambda: True)
    assert hostmem.step_memory(lambda: None, lambda: None) == (None, "not measured: no VmHWM in /proc/self/status")
    monkeypatch.setattr(malloc, "set_thresholds", lambda m, t: False)
    assert hostmem.step_memory(lambda: None, lambda: None) == (None, "not measured: needs Linux with glibc (mallopt)")


def test_thresholds_already_held_are_not_set_again(kernel, monkeypatch):
    monkeypatch.setattr(malloc, "held", lambda: True)
    assert hostmem.release_freed_memory() and kernel.events == ["trim"]


def test_the_status_reader_parses_kib_fields(monkeypatch, tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  123456 kB\nVmRSS:\t    789 kB\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(status if path == "/proc/self/status"
                                                                          else path, *a, **k))
    assert hostmem._status_kib("VmHWM") == 123456 and hostmem._status_kib("VmRSS") == 789
    assert hostmem._status_kib("VmSwap") is None
    status.unlink()
    assert hostmem._status_kib("VmRSS") is None


def test_the_peak_is_reset_by_writing_5_to_clear_refs(monkeypatch, tmp_path):
    refs = tmp_path / "clear_refs"
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(refs if path == "/proc/self/clear_refs"
                                                                          else path, *a, **k))
    assert hostmem._reset_peak() and refs.read_text() == "5"
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(PermissionError("no")))
    assert not hostmem._reset_peak()


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
    # the array, plus interpreter noise; less a few pages where the kernel reclaimed some of the
    # process's file-backed pages (its libraries) during the step, as it does on a loaded machine
    assert 63 * 2**20 <= got["touch"][0] < 72 * 2**20, got["touch"]
