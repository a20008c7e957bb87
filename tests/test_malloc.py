"""tasks/malloc.py: the one way to mallopt, and the host memory measure's hold on it
(on a fake C library: the real one's effect is measured in tests/test_hostmem.py)."""

from __future__ import annotations

import pytest

from tasks import malloc


class FakeLibc:
    def __init__(self, accepts=True):
        self.calls, self.accepts = [], accepts

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1 if self.accepts else 0

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(malloc, "_libc", lambda: fake)
    monkeypatch.setattr(malloc, "_held", [False])
    return fake


def test_set_thresholds_sets_mmap_then_trim(libc):
    assert malloc.set_thresholds(1 << 20, 2 << 20)
    assert libc.calls == [(malloc.M_MMAP_THRESHOLD, 1 << 20), (malloc.M_TRIM_THRESHOLD, 2 << 20)]


def test_held_thresholds_refuse_a_later_setting(libc):
    assert not malloc.held()
    assert malloc.hold_thresholds(0, 0) and malloc.held()
    libc.calls.clear()
    assert not malloc.set_thresholds(1 << 30, 1 << 30)
    assert libc.calls == []


def test_a_refusing_or_missing_mallopt_is_false(monkeypatch, libc):
    libc.accepts = False
    assert not malloc.set_thresholds(1, 1)
    assert not malloc.hold_thresholds(1, 1) and not malloc.held()
    monkeypatch.setattr(malloc, "_libc", lambda: None)
    assert not malloc.set_thresholds(1, 1)
    malloc.trim()  # nothing to call: no error


def test_trim_gives_back_what_is_free(libc):
    malloc.trim()
    assert libc.calls == [("trim", 0)]
