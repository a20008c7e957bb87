"""What the CPU is: its model name (the device records) and its maker.

Read from ``/proc/cpuinfo`` on Linux, from :mod:`platform` elsewhere.  No
framework is imported here, so every layer may use it.
"""

from __future__ import annotations

import functools
import platform


@functools.cache
def cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if not line.strip():
                    break  # the first processor's block ends here
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), " ".join(value.split()))
    except OSError:
        pass
    return fields


def model_name() -> str:
    """The CPU's model name, e.g. "AMD EPYC 7B13" (the machine's architecture where unknown)."""
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def vendor() -> str | None:
    """The CPU's maker as the CPU reports it (GenuineIntel, AuthenticAMD, ...), None where unknown."""
    return cpuinfo().get("vendor_id")
