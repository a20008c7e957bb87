"""tasks/machine.py: a machine's identity is what its timings depend on, so two kinds of
machine with one model name are told apart, and two of one kind are not."""

from __future__ import annotations

import io
import json

import pytest

from tasks import cpu, machine

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse2 avx fma avx2 sha_ni vaes
bogomips\t: 4890.80
"""
ZEN4 = ZEN3.replace("model\t\t: 1", "model\t\t: 17").replace(
    "avx2 sha_ni", "avx2 avx512f avx512bw avx512_vnni avx512_bf16 sha_ni")


@pytest.fixture
def serve(monkeypatch):
    """This machine as ``cpuinfo`` text, with 2 threads, 24 GiB and ``gpus``."""
    def set_up(text, gpus=()):
        monkeypatch.setattr(cpu, "open", lambda path, *a, **k: io.StringIO(text), raising=False)
        monkeypatch.setattr(machine, "_threads", lambda: 2)
        monkeypatch.setattr(machine, "_memory_gib", lambda: 24)
        monkeypatch.setattr(machine, "_gpus", lambda: list(gpus))
        cpu.cpuinfo.cache_clear()
        machine.machine.cache_clear()
    yield set_up
    cpu.cpuinfo.cache_clear()
    machine.machine.cache_clear()


def test_two_vms_of_one_model_name_with_and_without_avx512_are_two_machines(serve):
    serve(ZEN3)
    zen3, zen3_fp = machine.machine(), machine.this_machine()
    assert zen3 == {"cpu": "AMD EPYC", "vendor": "AuthenticAMD", "cpu_family": "25", "model": "1",
                    "isa": ["avx", "avx2", "fma"], "threads": 2, "memory_gib": 24, "gpus": []}
    assert machine.describe(zen3) == "AMD EPYC (family 25, model 1), 2 threads, 24 GiB, avx avx2 fma; no GPU"
    serve(ZEN4)
    assert machine.machine()["isa"] == ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"]
    assert machine.this_machine() != zen3_fp and len(zen3_fp) == 12


def test_what_timings_do_not_depend_on_leaves_the_machine_as_it_was(serve):
    serve(ZEN3)
    before = machine.this_machine()
    serve(ZEN3.replace("4890.80", "4900.02").replace("sha_ni", "sha_ni rdpid"))  # bogomips, an unrelated flag
    assert machine.this_machine() == before
    serve(ZEN3, gpus=["NVIDIA H100 80GB HBM3"])  # a GPU: another machine
    assert machine.this_machine() != before
    assert machine.describe(machine.machine()).endswith("; 1x NVIDIA H100 80GB HBM3")


def test_the_identity_is_plain_json():
    identity = machine.machine()
    assert json.loads(json.dumps(identity)) == identity and machine.fingerprint(identity) == machine.this_machine()


def test_a_point_pinned_to_some_cores_is_on_the_same_machine():
    """--jobs and --gpus pin each point to a share of the cores, Slurm a job: one edition still."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from tasks.machine import this_machine; print(this_machine())")
    pinned = subprocess.run([sys.executable, "-c", code],
                            capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert pinned == machine.this_machine() and len(os.sched_getaffinity(0)) >= 1
