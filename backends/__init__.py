"""Backend registry: names to ``"module:Class"`` strings.

A backend's framework is imported only when that backend is loaded, so a
missing framework makes its backend *unavailable* without touching the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field

from tasks.errors import BackendUnavailable, UsageError


@dataclass(frozen=True)
class BackendEntry:
    name: str
    target: str  # "package.module:Class"
    requires: tuple[str, ...]  # top-level modules that must be importable
    description: str
    # the pyproject extra that installs it (pip install "spikebench[EXTRA]")
    extra: str = ""
    # its colour in every table and figure: a framework takes the next unused
    # colour of Okabe-Ito's palette, then of Paul Tol's "muted" one (both safe
    # for colour-blind readers; spyx #332288 and rockpool #882255 are Tol's;
    # sinabs's #8C564B, matplotlib's brown, predates the rule); a variant shares
    # its framework's hue, lighter.  tests/test_registry.py checks that every
    # colour stays distinct from the others and readable on the white page.
    color: str = ""
    # Environment variables that must be set before the framework is imported
    # (the variant then needs a process of its own).
    env: dict[str, str] = field(default_factory=dict)
    # For a compiled variant: the eager backend whose networks it compiles (the report
    # sets their steps side by side: what compiling gained).
    compiles: str = ""
    # The devices it can run on at all, known without importing it (a profile for
    # another device leaves it out): CUDA graphs exist on CUDA only.
    devices: tuple[str, ...] = ("cpu", "cuda")
    # Set for a framework that cannot be a backend at all (it cannot be
    # installed): why, shown wherever availability is asked; such an entry has
    # no backend folder, no target and no extra.
    unavailable_reason: str = ""


REGISTRY: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry(
            "stbp",
            "backends.stbp.backend:STBPBackend",
            ("torch",),
            "our STBP/tdBN code in plain PyTorch, written from the equations",
            "stbp",
            "#0072B2",
        ),
        BackendEntry(
            "stbp:fused",
            "backends.stbp.fused:FusedSTBPBackend",
            ("torch",),
            "our STBP/tdBN networks with fused multi-step neurons (Triton kernels on CUDA, numba on the CPU)",
            "fused",
            "#56B4E9",
        ),
        BackendEntry(
            "stbp:compile",
            "backends.stbp.backend:STBPCompiledBackend",
            ("torch",),
            "our STBP/tdBN code in plain PyTorch, network, loss and Adam under torch.compile (inductor)",
            "stbp",
            "#00A3FE",
            compiles="stbp",
        ),
        BackendEntry(
            "stbp:cudagraphs",
            "backends.stbp.backend:STBPCudaGraphsBackend",
            ("torch",),
            "our STBP/tdBN code in plain PyTorch under torch.compile with CUDA graphs (CUDA only)",
            "stbp",
            "#00314C",
            compiles="stbp",
            devices=("cuda",),
        ),
        BackendEntry(
            "snntorch",
            "backends.snntorch.backend:SnnTorchBackend",
            ("torch", "snntorch"),
            "snnTorch (snn.Leaky and its surrogates) on PyTorch",
            "snntorch",
            "#E69F00",
        ),
        BackendEntry(
            "snntorch:compile",
            "backends.snntorch.backend:SnnTorchCompiledBackend",
            ("torch", "snntorch"),
            "snnTorch, network, loss and Adam under torch.compile (inductor)",
            "snntorch",
            "#D4AD54",
            compiles="snntorch",
        ),
        BackendEntry(
            "snntorch:cudagraphs",
            "backends.snntorch.backend:SnnTorchCudaGraphsBackend",
            ("torch", "snntorch"),
            "snnTorch under torch.compile with CUDA graphs (CUDA only)",
            "snntorch",
            "#805800",
            compiles="snntorch",
            devices=("cuda",),
        ),
        BackendEntry(
            "spikingjelly",
            "backends.spikingjelly.backend:SpikingJellyBackend",
            ("torch", "spikingjelly"),
            "SpikingJelly 2.x activation_based, multi-step, the library's default kernel for the device",
            "spikingjelly",
            "#009E73",
        ),
        BackendEntry(
            "spikingjelly:torch",
            "backends.spikingjelly.backend:SpikingJellyTorchBackend",
            ("torch", "spikingjelly"),
            "SpikingJelly 2.x with its pure-PyTorch LIF kernel",
            "spikingjelly",
            "#5CC8A6",
            env={"SJ_LIF_CUDA_IMPLEMENTATION": "torch"},
        ),
        BackendEntry(
            # darker, not lighter: spikingjelly:torch holds the lighter green
            "spikingjelly:compile",
            "backends.spikingjelly.backend:SpikingJellyTorchCompiledBackend",
            ("torch", "spikingjelly"),
            "SpikingJelly 2.x with its pure-PyTorch LIF kernel, network, loss and Adam under torch.compile (inductor)",
            "spikingjelly",
            "#00664A",
            env={"SJ_LIF_CUDA_IMPLEMENTATION": "torch"},
            compiles="spikingjelly:torch",
        ),
        BackendEntry(
            "spikingjelly:cudagraphs",
            "backends.spikingjelly.backend:SpikingJellyTorchCudaGraphsBackend",
            ("torch", "spikingjelly"),
            "SpikingJelly 2.x, its pure-PyTorch LIF kernel, under torch.compile with CUDA graphs (CUDA only)",
            "spikingjelly",
            "#003829",
            env={"SJ_LIF_CUDA_IMPLEMENTATION": "torch"},
            compiles="spikingjelly:torch",
            devices=("cuda",),
        ),
        BackendEntry(
            "brainstate",
            "backends.brainstate.backend:BrainstateBackend",
            ("jax", "brainstate", "brainpy", "braintools"),
            "brainstate + brainpy.state + braintools on JAX, whole step jit-compiled",
            "brainstate",
            "#CC79A7",
            env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
        ),
        BackendEntry(
            "spyx",
            "backends.spyx.backend:SpyxBackend",
            ("jax", "flax", "spyx", "optax"),
            "Spyx 1.0 (Flax NNX neurons, spyx.axn surrogates, spyx.fn losses) on JAX, whole step jit-compiled",
            "spyx",
            "#332288",
            env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
        ),
        BackendEntry(
            "norse",
            "backends.norse.backend:NorseBackend",
            ("torch", "norse"),
            "Norse (norse.torch LIFBoxCell, its threshold methods and reset hooks) on PyTorch",
            "norse",
            "#D55E00",
        ),
        BackendEntry(
            "norse:compile",
            "backends.norse.backend:NorseCompiledBackend",
            ("torch", "norse"),
            "Norse, network, loss and Adam under torch.compile (inductor)",
            "norse",
            "#AE652C",
            compiles="norse",
        ),
        BackendEntry(
            "norse:cudagraphs",
            "backends.norse.backend:NorseCudaGraphsBackend",
            ("torch", "norse"),
            "Norse under torch.compile with CUDA graphs (CUDA only)",
            "norse",
            "#703200",
            compiles="norse",
            devices=("cuda",),
        ),
        BackendEntry(
            "sinabs",
            "backends.sinabs.backend:SinabsBackend",
            ("torch", "sinabs"),
            "Sinabs 3 (sinabs.layers.LIF / ExpLeak, its spike_fn / reset_fn / surrogate_grad_fn) on PyTorch",
            "sinabs",
            "#8C564B",
        ),
        BackendEntry(
            "sinabs:compile",
            "backends.sinabs.backend:SinabsCompiledBackend",
            ("torch", "sinabs"),
            "Sinabs 3, network, loss and Adam under torch.compile (inductor)",
            "sinabs",
            "#C0897F",
            compiles="sinabs",
        ),
        BackendEntry(
            "sinabs:cudagraphs",
            "backends.sinabs.backend:SinabsCudaGraphsBackend",
            ("torch", "sinabs"),
            "Sinabs 3 under torch.compile with CUDA graphs (CUDA only)",
            "sinabs",
            "#492D27",
            compiles="sinabs",
            devices=("cuda",),
        ),
        BackendEntry(
            "rockpool",
            "backends.rockpool.backend:RockpoolBackend",
            ("torch", "rockpool"),
            "Rockpool's Torch modules (LIFTorch with its synaptic current, ExpSynTorch) on PyTorch",
            "rockpool",
            "#882255",
        ),
        BackendEntry(
            "rockpool:compile",
            "backends.rockpool.backend:RockpoolCompiledBackend",
            ("torch", "rockpool"),
            "Rockpool's Torch modules, network, loss and Adam under torch.compile (inductor)",
            "rockpool",
            "#E61B80",
            compiles="rockpool",
        ),
        BackendEntry(
            "lava-dl",
            "",
            ("lava",),
            "Intel's lava-dl (SLAYER) deep-learning library for Lava",
            unavailable_reason=(
                "lava-dl cannot be installed: every release needs Python < 3.11, spikebench needs >= 3.11 "
                "(on Python 3.11, pip install --dry-run lava-dl: \"Ignored the following versions that require "
                "a different python version: 0.4.0 Requires-Python >=3.8,<3.11; 0.5.0 Requires-Python >=3.8,<3.11; "
                "0.6.0 Requires-Python >=3.10,<3.11\" and \"No matching distribution found for lava-dl\")"
            ),
        ),
    )
}


def names() -> list[str]:
    return list(REGISTRY)


def installable_names(device: str | None = None) -> list[str]:
    """The registered backends, less those that cannot be installed at all and, given a
    ``device``, those that cannot run on it (a profile's "all": a point of a framework
    that cannot exist, or not there, measures nothing)."""
    return [name for name, e in REGISTRY.items()
            if not e.unavailable_reason and (device is None or device in e.devices)]


def entry(name: str) -> BackendEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}; valid backends: {', '.join(REGISTRY)}") from None


def availability(name: str) -> tuple[bool, str]:
    """Whether the modules ``name`` needs are installed, without importing them."""
    e = entry(name)
    if e.unavailable_reason:
        return False, e.unavailable_reason
    module_file = e.target.split(":")[0]
    if importlib.util.find_spec(module_file.rsplit(".", 1)[0]) is None:
        return False, f"module {module_file} is missing"
    missing = [m for m in e.requires if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"{', '.join(missing)} not installed (pip install \"spikebench[{e.extra or e.name.split(':')[0]}]\")"
    return True, "available"


def load(name: str):
    """Import and return the backend class of ``name``.

    Sets the entry's environment variables first; they only take effect if the
    framework has not been imported yet in this process, which is why the
    command line runs each backend of a comparison in a process of its own.
    """
    e = entry(name)
    ok, why = availability(name)
    if not ok:
        raise BackendUnavailable(f"backend {name} is unavailable: {why}")
    for key, value in e.env.items():
        os.environ[key] = value
    module_name, class_name = e.target.split(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name} is unavailable: {exc}") from None
    except Exception as exc:  # a broken install raises anything at import; it must not break the others
        text = " ".join(str(exc).split())[:300]
        raise BackendUnavailable(
            f"backend {name} is unavailable: importing it failed ({type(exc).__name__}: {text})"
        ) from None
