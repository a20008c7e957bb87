"""The layers go one way (docs/architecture.md): the framework-neutral spec
imports no backend and no harness; backends stand on the spec and import no
harness; the harness stands on both."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

# tasks/ holds two layers: the spec (what is computed, framework-neutral) and the
# harness (what drives backends: the commands and their helpers)
SPEC = ("catalogue", "cpu", "data", "errors", "idx", "machine", "malloc", "metrics", "neuro", "nir_graph", "profiles",
        "provenance", "reference", "reference_grad", "result", "rng", "specs", "taskspec", "weights")
HARNESS = ("calibrate", "child", "cli", "executors", "floor", "hostmem", "measure", "nir", "orchestrate", "parity", "progress",
           "run", "runner", "slurm", "suite", "sweep")
FRAMEWORKS = ("torch", "jax", "jaxlib", "snntorch", "spikingjelly", "brainstate", "brainpy", "braintools", "triton",
              "norse", "sinabs", "spyx", "rockpool", "numba", "flax", "haiku")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (function bodies too), as absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                found |= {module} | {f"{module}.{a.name}" for a in node.names}
            else:
                found.add(node.module or "")
    return found


def test_every_module_of_tasks_is_placed_in_a_layer():
    modules = {p.stem for p in (ROOT / "tasks").glob("*.py") if p.stem != "__init__"}
    assert modules == set(SPEC) | set(HARNESS), "place the new module in SPEC or HARNESS (docs/architecture.md)"
    assert not set(SPEC) & set(HARNESS)


# the task modules (tasks/workloads/) are spec too
WORKLOADS = sorted(f"workloads/{p.stem}" for p in (ROOT / "tasks" / "workloads").glob("*.py"))


@pytest.mark.parametrize("name", SPEC + tuple(WORKLOADS))
def test_the_spec_imports_no_backend_no_harness_and_no_framework(name):
    bad = sorted(m for m in imports(ROOT / "tasks" / f"{name}.py")
                 if m.split(".")[0] in ("backends", "benchmarks", "reports") + FRAMEWORKS
                 or any(m == f"tasks.{h}" or m.startswith(f"tasks.{h}.") for h in HARNESS))
    assert not bad, f"tasks/{name}.py (spec layer) imports {bad}"


def test_no_backend_imports_the_harness():
    offenders = {}
    for path in (ROOT / "backends").rglob("*.py"):
        bad = sorted(m for m in imports(path)
                     if m.split(".")[0] in ("benchmarks", "reports")
                     or any(m == f"tasks.{h}" or m.startswith(f"tasks.{h}.") for h in HARNESS))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, offenders


# the modules several backends share, and the only frameworks each may import: a backend
# then runs with just its own framework installed (jax_common: no brainstate, no Spyx or Flax)
SHARED = {"jax_common": ("jax",), "torch_common": ("torch",), "torch_networks": ("torch",), "torch_nir": ("torch",),
          "torch_surrogates": ("torch",)}


def test_every_shared_backend_module_is_listed():
    modules = {p.stem for p in (ROOT / "backends").glob("*.py")} - {"__init__", "base"}
    assert modules == set(SHARED), "list the new shared module in SHARED with the frameworks it may import"


@pytest.mark.parametrize("name", SHARED)
def test_a_shared_backend_module_imports_only_its_own_framework_and_no_backend(name):
    folders = {p.name for p in (ROOT / "backends").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    bad = sorted(m for m in imports(ROOT / "backends" / f"{name}.py")
                 if (m.split(".")[0] in FRAMEWORKS and m.split(".")[0] not in SHARED[name])
                 or (m.startswith("backends.") and m.split(".")[1] in folders))
    assert not bad, f"backends/{name}.py, shared by several backends, imports {bad}"


def test_the_report_does_not_import_the_training_command():
    for path in (ROOT / "reports").glob("*.py"):
        assert "tasks.run" not in imports(path), f"{path.name} imports tasks.run; the CLI pieces are in tasks.cli"


@pytest.mark.parametrize("name", HARNESS)
def test_the_harness_imports_nothing_of_the_layer_above(name):
    """The report and asv stand on the harness; the suite runs ``python -m reports.build`` as a command."""
    bad = sorted(m for m in imports(ROOT / "tasks" / f"{name}.py") if m.split(".")[0] in ("reports", "benchmarks"))
    assert not bad, f"tasks/{name}.py (harness) imports {bad}"
