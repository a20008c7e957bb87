"""tasks/cpu.py: the CPU's model name and maker, from the first processor of /proc/cpuinfo."""

from __future__ import annotations

import io
import platform

import pytest

from tasks import cpu

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC   7B13 64-Core Processor
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: another
"""


@pytest.fixture
def cpuinfo(monkeypatch):
    """Serve ``text`` as /proc/cpuinfo (None: the file cannot be read)."""
    def serve(text):
        def fake_open(path, *args, **kwargs):
            assert path == "/proc/cpuinfo"
            if text is None:
                raise FileNotFoundError(path)
            return io.StringIO(text)
        monkeypatch.setattr(cpu, "open", fake_open, raising=False)
        cpu.cpuinfo.cache_clear()
    yield serve
    cpu.cpuinfo.cache_clear()


def test_the_first_processors_fields_with_their_spaces_collapsed(cpuinfo):
    cpuinfo(CPUINFO)
    assert cpu.model_name() == "AMD EPYC 7B13 64-Core Processor"
    assert cpu.vendor() == "AuthenticAMD"


def test_without_cpuinfo_the_model_is_platforms_and_the_maker_unknown(cpuinfo):
    cpuinfo(None)
    assert cpu.vendor() is None
    assert cpu.model_name() == (platform.processor() or platform.machine())


def test_a_cpuinfo_without_a_model_name_falls_back_to_platform(cpuinfo):
    cpuinfo("processor\t: 0\nvendor_id\t: GenuineIntel\n")
    assert cpu.vendor() == "GenuineIntel"
    assert cpu.model_name() == (platform.processor() or platform.machine())
