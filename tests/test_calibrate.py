"""tasks/calibrate.py: the floor's CPU rates (the best GEMM per precision, a copy's bandwidth),
on fake GEMMs and a fake clock: a real calibration takes seconds of every core."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest

from tasks import calibrate
from tasks.calibrate import Calibration
from tasks.machine import machine
from tests.conftest import ROOT


def test_the_peak_is_the_fastest_gemm_of_the_precision_and_tf32_is_fp32s():
    cal = Calibration(cpu="x", threads=2, gemm={"fp32": {"torch.mm": 1e11, "oneDNN": 2e11}, "bf16": {}})
    assert cal.peak("fp32") == 2e11 and cal.peak("tf32") == 2e11
    assert cal.peak("bf16") == 0.0 and cal.peak("fp64") == 0.0


def test_a_calibration_round_trips_through_its_dict():
    cal = Calibration(cpu="AMD EPYC", threads=16, gemm={"fp32": {"torch.mm": 1.5e12}}, bandwidth=3e10)
    assert Calibration(**cal.to_dict()) == cal


def test_best_seconds_warms_up_then_keeps_the_fastest_repeat(monkeypatch):
    ticks = itertools.count()
    durations = iter([0.0, 5.0, 0.0, 2.0, 0.0, 3.0])  # start/end pairs: 5 s, 2 s, 3 s
    clock = itertools.accumulate(durations)
    monkeypatch.setattr(calibrate.time, "perf_counter", lambda: next(clock))
    calls = []
    assert calibrate.best_seconds(lambda: calls.append(next(ticks)), repeats=3) == 2.0
    assert calls == [0, 1, 2, 3]  # the warm-up, then three timed calls


def test_calibrate_keeps_the_gemms_installed_here_for_each_precision(monkeypatch):
    monkeypatch.setattr(calibrate, "GEMMS", {"fast": lambda p: {"fp32": 4e11, "bf16": 8e11}[p], "absent": lambda p: None})
    monkeypatch.setattr(calibrate, "copy_bandwidth", lambda: 2e10)
    cal = calibrate.calibrate(("fp32", "bf16"))
    assert cal.gemm == {"fp32": {"fast": 4e11}, "bf16": {"fast": 8e11}}
    assert cal.bandwidth == 2e10 and cal.threads >= 1 and cal.cpu
    assert cal.machine == machine()  # where it was taken: its floors are that machine's
    assert cal.peak("bf16") == 8e11


def test_the_fields_are_the_ones_the_committed_calibration_holds():
    committed = list((ROOT / "results").rglob("calibration*.json"))
    if not committed:
        pytest.skip("no committed calibration")
    required = {f.name for f in dataclasses.fields(Calibration)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for path in committed:  # a calibration from before it said its machine still reads
        fields = set(json.loads(path.read_text()))
        assert required <= fields <= {f.name for f in dataclasses.fields(Calibration)}, path
