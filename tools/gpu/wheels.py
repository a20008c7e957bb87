"""The wheels a GPU machine without network needs: ``python -m tools.gpu.wheels``.

Prints one ``name==version`` per line: spikebench's own dependencies, every
registered backend's pyproject extra (and the asv, report and test extras), with everything they need,
resolved from the distributions installed here and pinned to their versions,
less what the GPU image already holds (tools/gpu/image-packages.txt).  A new
backend's framework is carried by registering it; nothing here is edited.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from packaging.requirements import Requirement  # noqa: E402

import backends  # noqa: E402  (the registry; no framework is imported)

TOOL_EXTRAS = ("asv", "report", "test")
GPU_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
               "platform_python_implementation": "CPython", "os_name": "posix"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> set[str]:
    lines = (ROOT / "tools" / "gpu" / "image-packages.txt").read_text().splitlines()
    return {canonical(l.strip()) for l in lines if l.strip() and not l.startswith("#")}


def requirements(extras: list[str]) -> list[str]:
    """The project's dependencies and those of ``extras``, for the GPU machine's platform."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    out = []
    for text in project.get("dependencies", []) + [t for extra in extras for t in optional.get(extra, [])]:
        req = Requirement(text)
        if req.name != "spikebench" and (req.marker is None or req.marker.evaluate(GPU_MARKERS)):
            out.append(req.name)
    return out


def requirement_name(text: str) -> str:
    return canonical(re.split(r"[\s<>=!~;\[(]", text.strip(), maxsplit=1)[0])


def closure(roots: list[str], skip: set[str]) -> dict[str, str]:
    """name -> installed version, for ``roots`` and what they need (extras and markers
    of the dependencies ignored: only their plain requirements), less ``skip``."""
    found: dict[str, str] = {}
    todo = [requirement_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found or name in skip:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"tools.gpu.wheels: {name} is not installed here (pip install -e \".[all]\" first)")
        found[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            # the GPU machine's Python and platform; a dependency's own extras are not wanted
            if req.marker is None or req.marker.evaluate({**GPU_MARKERS, "extra": ""}):
                todo.append(canonical(req.name))
    return found


def main() -> int:
    extras = sorted({e.extra for e in backends.REGISTRY.values() if e.extra}) + list(TOOL_EXTRAS)
    for name, version in sorted(closure(requirements(extras), image_packages()).items()):
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
