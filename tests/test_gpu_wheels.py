"""tools/gpu/wheels.py: the GPU machine's wheels come from the registry and the installed versions."""

from __future__ import annotations

from importlib import metadata

import backends
from tools.gpu import wheels


def test_every_backend_framework_is_carried_at_its_installed_version_unless_the_image_has_it():
    image = wheels.image_packages()
    extras = sorted({e.extra for e in backends.REGISTRY.values() if e.extra}) + list(wheels.TOOL_EXTRAS)
    wanted = {wheels.canonical(n) for n in wheels.requirements(extras)} - image
    installed = {wheels.canonical(d.metadata["Name"]) for d in metadata.distributions()}
    pins = wheels.closure(sorted(wanted & installed), image)
    assert {"torch", "jax", "triton", "numpy"} <= image and not image & set(pins)
    assert wanted & installed <= set(pins)
    for name, version in pins.items():
        assert metadata.version(name) == version


def test_a_dependency_for_another_platform_is_not_carried():
    # loguru asks for colorama and win32-setctime on Windows only
    assert "win32-setctime" not in wheels.closure(["loguru"], set())
