"""The test run's warning filters (pyproject.toml): the frameworks' deprecations are
filtered by the module that raises them, ours show."""

from __future__ import annotations

import warnings

import pytest


def shown(module: str) -> bool:
    """Whether a DeprecationWarning raised in ``module`` gets past the filters pytest set for this test."""
    with warnings.catch_warnings(record=True) as seen:  # keeps the filters in force, records what passes them
        warnings.warn_explicit("deprecated", DeprecationWarning, f"{module.replace('.', '/')}.py", 1, module=module)
    return bool(seen)


@pytest.mark.parametrize("module", ["backends.torchscript.backend", "backends.torch_common", "tasks.run",
                                    "reports.build", "benchmarks.bench_training", "tests.test_warnings",
                                    "torch.jit._script"])  # torch.jit.script's own warning, whoever calls it
def test_a_deprecation_in_our_code_shows(module):
    assert shown(module)


@pytest.mark.parametrize("module", ["jax._src.api", "norse.torch.functional.filter", "spikingjelly.activation_based",
                                    "torch.nn.modules.module", "torch", "numba.core.errors", "importlib._bootstrap"])
def test_a_framework_s_own_deprecation_is_filtered(module):
    assert not shown(module)


def test_a_module_named_like_a_framework_is_not_taken_for_it():
    assert shown("torchscript_backend") and shown("jaxtools_of_ours")
