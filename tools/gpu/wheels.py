"""The wheels a GPU machine without network needs, and how they are fetched.

    python -m tools.gpu.wheels                 # the pins: one name==version a line
    python -m tools.gpu.wheels --image         # the image's packages the pins stand on (for a rehearsal)
    python -m tools.gpu.wheels fetch DEST      # download (or build) every pin into DEST, for Python 3.12
    python -m tools.gpu.wheels budget PATH...  # what one device call carries: the tree and PATHs, against 64 MiB

What the GPU run needs is what ``tools/gpu/run.sh`` runs: ``python -m
tasks.suite --no-report``, so spikebench's own dependencies and every registered
backend's pyproject extra, with everything they need, resolved from the
distributions installed here and pinned to their versions.  Left out: the
packages the GPU image already holds (tools/gpu/image-packages.txt), the tool
extras (asv, report, test: the GPU run builds no report, runs no asv and no
pytest), and the packages of ``NOT_CARRIED`` (each with its reason).  A new
backend's framework is carried by registering it; nothing here is edited.

``fetch`` downloads each pin as a wheel for CPython 3.12 on manylinux x86_64;
a pin published as an sdist only (Norse 1.1.0, Rockpool 3.1.0) is built into a
wheel here (``pip wheel --no-deps``), which must come out pure Python
(``py3-none-any``): anything else stops the fetch with a one-line error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from packaging import tags  # noqa: E402
from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import parse_wheel_filename  # noqa: E402

import backends  # noqa: E402  (the registry; no framework is imported)

# The extras of the tools (not carried: see the module's docstring); kept as a
# name for the tests, which check that none of their packages travels.
TOOL_EXTRAS = ("asv", "report", "test")
# Installed here with the frameworks, never wanted on the GPU machine.
NOT_CARRIED = {
    "samna": "a dependency of sinabs for its hardware back ends; the samna 0.48.6 on PyPI is a placeholder whose "
             "import runs pip install from another index, and spikebench keeps it from being imported "
             "(backends/rockpool/neurons.py) and records its version only where installed (backends/sinabs)",
}
GPU_PYTHON = (3, 12)
GPU_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
               "platform_python_implementation": "CPython", "os_name": "posix"}
# manylinux wheels the GPU machine (glibc 2.39, Python 3.12.3) installs; pip matches each N exactly
PLATFORMS = tuple(f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)) + (
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
MIB = 1024 * 1024
CALL_LIMIT = 64 * MIB  # what one device-tool call carries: working tree and carried paths together
SPARE = 8 * MIB        # left free for the tree's growth (results, the report) between fetch and the run


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> dict[str, str | None]:
    """name -> the image's version where it was read (``name==version`` lines), else None."""
    out: dict[str, str | None] = {}
    for line in (ROOT / "tools" / "gpu" / "image-packages.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version.strip() or None
    return out


def run_extras() -> list[str]:
    """The extras the GPU run installs: every registered backend's."""
    return sorted({e.extra for e in backends.REGISTRY.values() if e.extra})


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


def closure(roots: list[str], skip: set[str] | dict) -> dict[str, str]:
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


def pins() -> dict[str, str]:
    """What travels: name -> version."""
    return closure(requirements(run_extras()), set(image_packages()) | set(NOT_CARRIED))


def image_needs() -> dict[str, str | None]:
    """The image's packages that the run's frameworks stand on (name -> the image's
    version where known): what a rehearsal off the GPU machine installs beside the pins."""
    image = image_packages()
    every = closure(requirements(run_extras()), set(NOT_CARRIED))
    return {name: image[name] for name in sorted(every) if name in image}


# ------------------------------------------------------------------ fetching

def gpu_tags() -> set[tags.Tag]:
    interpreter = f"cp{GPU_PYTHON[0]}{GPU_PYTHON[1]}"
    return (set(tags.cpython_tags(GPU_PYTHON, platforms=PLATFORMS))
            | set(tags.compatible_tags(GPU_PYTHON, interpreter=interpreter, platforms=PLATFORMS)))


def installs_on_gpu(wheel: str) -> bool:
    """Whether a wheel file of this name installs on the GPU machine's Python 3.12."""
    return bool(parse_wheel_filename(wheel)[3] & gpu_tags())


@dataclass
class Fetched:
    name: str
    version: str
    wheel: str
    how: str  # "downloaded" or "built from the sdist"


class FetchError(Exception):
    """One line: what could not be provided, and why."""


Pip = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def run_pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def _pip_error(proc: subprocess.CompletedProcess[str]) -> str:
    """pip's ERROR lines (all of them, joined), else its last line of output."""
    lines = [l.strip() for l in (proc.stderr or "").splitlines() if l.strip().startswith("ERROR")]
    if not lines:
        lines = ((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-1:] or [f"pip exit status {proc.returncode}"]
    return " / ".join(lines)[:400]


def _new_wheel(dest: Path, before: set[str], name: str, version: str) -> str:
    new = [w for w in sorted({p.name for p in dest.glob("*.whl")} - before)
           if canonical(parse_wheel_filename(w)[0]) == name and str(parse_wheel_filename(w)[1]) == version]
    if len(new) != 1:
        raise FetchError(f"{name}=={version}: pip reported success but left {len(new)} wheels of it in {dest}")
    return new[0]


def fetch_one(name: str, version: str, dest: Path, pip: Pip = run_pip) -> Fetched:
    """Download ``name==version`` for the GPU machine, or build it here from its sdist."""
    spec = f"{name}=={version}"
    before = {p.name for p in dest.glob("*.whl")}
    platform_args = [a for p in PLATFORMS + ("any",) for a in ("--platform", p)]
    proc = pip(["download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
                f"{GPU_PYTHON[0]}.{GPU_PYTHON[1]}", "--implementation", "cp", *platform_args, "-d", str(dest), spec])
    if proc.returncode == 0:
        return Fetched(name, version, _new_wheel(dest, before, name, version), "downloaded")
    err = _pip_error(proc)
    if "No matching distribution" not in err and "Could not find a version" not in err:
        raise FetchError(f"{spec}: pip download failed: {err}")
    # no wheel for 3.12: build one here from the sdist; only a pure-Python one can travel
    proc = pip(["wheel", "-q", "--no-deps", "--no-binary", name, "-w", str(dest), spec])
    if proc.returncode != 0:
        raise FetchError(f"{spec}: no wheel for Python 3.12 on PyPI, and its sdist did not build: {_pip_error(proc)}")
    wheel = _new_wheel(dest, before, name, version)
    if not installs_on_gpu(wheel):
        (dest / wheel).unlink()
        raise FetchError(f"{spec}: no wheel for Python 3.12 on PyPI, and its sdist builds {wheel}, "
                         "which is not pure Python: it cannot be built here for the GPU machine")
    return Fetched(name, version, wheel, "built from the sdist")


def fetch(pinned: dict[str, str], dest: Path, pip: Pip = run_pip) -> list[Fetched]:
    """Every pin into ``dest`` (emptied of wheels first); the first failure raises FetchError."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    out = [fetch_one(name, version, dest, pip) for name, version in sorted(pinned.items())]
    extra = sorted({p.name for p in dest.glob("*.whl")} - {f.wheel for f in out})
    if extra:
        raise FetchError(f"{dest} holds wheels no pin asked for: {', '.join(extra)}")
    return out


# ------------------------------------------------------------------ the size of a call

def tree_files(root: Path = ROOT) -> list[Path]:
    """What a device call sends of the repository itself: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=root, capture_output=True, text=True, check=True).stdout
    return [root / p for p in listed.split("\0") if p and (root / p).is_file() and not (root / p).is_symlink()]


def bytes_under(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class Budget:
    tree: int
    carried: dict[str, int]
    limit: int = CALL_LIMIT
    spare: int = SPARE

    @property
    def total(self) -> int:
        return self.tree + sum(self.carried.values())

    @property
    def fits(self) -> bool:
        return self.total + self.spare <= self.limit

    def lines(self) -> list[str]:
        out = [f"  {'working tree (tracked + untracked)':40s} {self.tree / MIB:6.1f} MiB"]
        out += [f"  {name:40s} {size / MIB:6.1f} MiB" for name, size in self.carried.items()]
        out.append(f"  {'one device call carries':40s} {self.total / MIB:6.1f} MiB of {self.limit / MIB:.0f} "
                   f"({(self.limit - self.total) / MIB:.1f} MiB to spare; {self.spare / MIB:.0f} MiB asked)")
        return out


def budget(carried: Iterable[str | Path], root: Path = ROOT) -> Budget:
    paths = [Path(p) for p in carried]
    inside = {p.resolve() for p in paths}
    tree = sum(f.stat().st_size for f in tree_files(root)
               if not any(f.resolve().is_relative_to(c) for c in inside))
    return Budget(tree, {str(p): bytes_under(root / p) for p in paths})


# ------------------------------------------------------------------ command line

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        for name, version in sorted(pins().items()):
            print(f"{name}=={version}")
        return 0
    if argv == ["--image"]:
        for name, version in image_needs().items():
            print(f"{name}=={version}" if version else name)
        return 0
    if argv[0] == "fetch" and len(argv) == 2:
        dest = Path(argv[1])
        try:
            got = fetch(pins(), dest)
        except FetchError as exc:
            print(f"tools.gpu.wheels: error: {exc}", file=sys.stderr)
            return 1
        for f in got:
            print(f"  {f.wheel:70s} {f.how}")
        left = ", ".join(f"{n} ({why.split(';')[0]})" for n, why in NOT_CARRIED.items())
        print(f"{len(got)} wheels in {dest}; left out: the image's packages (tools/gpu/image-packages.txt), "
              f"the tool extras ({', '.join(TOOL_EXTRAS)}), {left}")
        return 0
    if argv[0] == "budget" and len(argv) >= 2:
        b = budget(argv[1:])
        print("\n".join(b.lines()))
        if not b.fits:
            print(f"tools.gpu.wheels: error: one device call would carry {b.total / MIB:.1f} MiB, more than "
                  f"{(b.limit - b.spare) / MIB:.0f} MiB ({b.limit / MIB:.0f} less {b.spare / MIB:.0f} to spare): "
                  "carry less, or split the backends over calls (tasks.suite --backend)", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m tools.gpu.wheels [--image | fetch DEST | budget PATH...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
