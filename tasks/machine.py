"""Which machine a record was taken on: the identity that keeps an edition of
results to one machine.

Cloud machines of different generations report the same model name ("AMD
EPYC" on two 2-core VMs, one with AVX-512 and one without, whose fp32
matrix products ran at 179 and at 58-126 GFLOP/s), so the identity is what
the timings depend on: the CPU's model name, family and model numbers, the
vector and matrix extensions it offers, its logical CPUs, the memory, and
the GPUs.
Two machines with the same identity are the same kind of machine, and an
edition may span them (a session's machine is replaced by another of its
kind); anything else makes another edition.  No framework is imported here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from typing import Any

from .cpu import cpuinfo, model_name, vendor

# the extensions that decide which kernels oneDNN, XLA, inductor and numba pick
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_bf16", "asimd", "sve", "sve2")


def _memory_gib() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gpus() -> list[str]:
    """The NVIDIA GPUs' names as ``nvidia-smi`` lists them (empty without it)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def _threads() -> int | None:
    # the machine's, not this process's share: the suite pins points run side by side
    # (--jobs, --gpus) and a Slurm job to some of the cores; the record's device says how many
    return os.cpu_count()


@functools.cache
def machine() -> dict[str, Any]:
    """This machine's identity (a dict of plain values, the same on every machine of its kind)."""
    info = cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    numbers = {key.replace(" ", "_"): info[key]
               for key in ("cpu family", "model", "CPU implementer", "CPU part") if key in info}
    return {"cpu": model_name(), "vendor": vendor(), **numbers,
            "isa": [flag for flag in ISA_FLAGS if flag in flags], "threads": _threads(),
            "memory_gib": _memory_gib(), "gpus": _gpus()}


def fingerprint(identity: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of an identity."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def this_machine() -> str:
    """This machine's fingerprint."""
    return fingerprint(machine())


def describe(identity: dict[str, Any]) -> str:
    """One line for a reader: "AMD EPYC (family 25, model 1), 2 threads, 24 GiB, avx2 fma; no GPU"."""
    numbers = ", ".join(f"{key.replace('_', ' ').removeprefix('cpu ')} {identity[key]}"
                        for key in ("cpu_family", "model", "CPU_implementer", "CPU_part") if key in identity)
    parts = [f"{identity.get('cpu', '?')}" + (f" ({numbers})" if numbers else "")]
    if identity.get("threads"):
        parts.append(f"{identity['threads']} threads")
    if identity.get("memory_gib"):
        parts.append(f"{identity['memory_gib']} GiB")
    if identity.get("isa"):
        parts.append(" ".join(identity["isa"]))
    gpus = identity.get("gpus") or []
    gpu_text = "no GPU" if not gpus else ", ".join(f"{gpus.count(g)}x {g}" for g in sorted(set(gpus)))
    return ", ".join(parts) + "; " + gpu_text
