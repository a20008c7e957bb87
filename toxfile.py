"""tox environments from the backend registry (tox >= 4.29 loads this file).

One environment per pyproject extra of a registered backend, installing only
that extra (and the test tools): each backend's tests, its contract and its
parity must pass with only its own framework installed.  Adding a framework
(one folder, one registry entry, one extra) adds its environment here without
an edit; `tox.ini` holds only what every environment shares.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tox.config.loader.memory import MemoryLoader
from tox.config.types import Command, EnvList
from tox.plugin import impl

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import backends  # noqa: E402  (the registry: names and requirements, no framework is imported)

# the shared pieces every backend environment also tests
FOUNDATION = ["tests/test_specs.py", "tests/test_workloads.py", "tests/test_data.py", "tests/test_idx.py",
              "tests/test_reference.py", "tests/test_reference_grad.py", "tests/test_metrics.py", "tests/test_result.py",
              "tests/test_weights.py", "tests/test_run.py", "tests/test_cli.py", "tests/test_layers.py"]


def environments() -> dict[str, list[backends.BackendEntry]]:
    """extra -> the registered backends it installs that run on the CPU (an entry that cannot be
    installed has none; the CUDA-graph variants run on CUDA only)."""
    out: dict[str, list[backends.BackendEntry]] = {}
    for entry in backends.REGISTRY.values():
        if entry.extra and not entry.unavailable_reason and "cpu" in entry.devices:
            out.setdefault(entry.extra, []).append(entry)
    return out


def settings(extra: str, entries: list[backends.BackendEntry]) -> dict:
    names = [e.name for e in entries]
    own_tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob(f"test_backend_{extra}*.py"))
    contract = ["tests/test_backend_contract.py", "--backend", ",".join(names)]
    uses_torch = any("torch" in e.requires for e in entries)
    commands = [Command(["python", "-m", "pytest", *FOUNDATION, *own_tests]),
                Command(["python", "-m", "pytest", *contract]),
                Command(["python", "-m", "tasks.parity", "--backend", ",".join(names)])]
    return {
        "description": f"{', '.join(names)} alone (pip install \"spikebench[{extra}]\")",
        "extras": [extra, "test"],
        # the CPU build of PyTorch first, only where the backend runs on it
        "commands_pre": [Command(["python", "-m", "pip", "install", "-q", "torch==2.13.0"])] if uses_torch else [],
        "commands": commands,
    }


@impl
def tox_extend_envs():
    return tuple(environments())


@impl
def tox_add_core_config(core_conf, state) -> None:
    # plain `tox` runs every backend's environment after the whole suite
    core_conf.loaders.insert(0, MemoryLoader(env_list=EnvList(["test", *environments()])))


@impl
def tox_add_env_config(env_conf, state) -> None:
    entries = environments().get(env_conf.name)
    if entries:
        env_conf.loaders.insert(0, MemoryLoader(**settings(env_conf.name, entries)))
