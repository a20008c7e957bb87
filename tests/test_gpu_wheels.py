"""tools/gpu: what the GPU machine's call carries (wheels, data) and whether it fits; no network."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import backends
from tasks.idx import read_idx, write_idx
from tools.gpu import data as gpu_data
from tools.gpu import wheels

MIB = wheels.MIB


# ------------------------------------------------------------------ the list

def test_every_backend_framework_is_carried_at_its_installed_version_unless_the_image_has_it():
    image = wheels.image_packages()
    wanted = {wheels.canonical(n) for n in wheels.requirements(wheels.run_extras())} - set(image)
    installed = {wheels.canonical(d.metadata["Name"]) for d in metadata.distributions()}
    pins = wheels.pins()
    assert {"torch", "jax", "triton", "numpy", "numba", "llvmlite"} <= set(image) and not set(image) & set(pins)
    assert wanted & installed <= set(pins)
    for extra in wheels.run_extras():
        assert extra in {e.extra for e in backends.REGISTRY.values()}
    for name, version in pins.items():
        assert metadata.version(name) == version


def test_the_placeholder_samna_is_left_out_though_sinabs_asks_for_it():
    sinabs_needs = {wheels.requirement_name(r) for r in metadata.requires("sinabs") or []}
    assert "samna" in sinabs_needs  # the premise: sinabs declares it
    assert "samna" in wheels.NOT_CARRIED and "samna" not in wheels.pins()
    assert "sinabs" in wheels.pins()


def test_the_tools_extras_do_not_travel():
    # asv, plotly and asv's own needs are installed here for the asv suite and the report
    pins = wheels.pins()
    assert not {"asv", "asv-runner", "plotly", "virtualenv", "pympler"} & set(pins)
    assert not set(wheels.TOOL_EXTRAS) & set(wheels.run_extras())


def test_the_image_versions_read_there_are_kept_and_the_rest_named():
    image = wheels.image_packages()
    assert image["torch"] == "2.11.0" and image["jax"] == "0.11.2" and image["triton"] == "3.6.0"
    assert "scipy" in image and image["scipy"] is None
    needs = wheels.image_needs()
    # the stand-in the rehearsal builds: the image's packages the frameworks use, none that travels
    assert {"torch", "jax", "jaxlib", "numpy", "flax", "optax", "numba"} <= set(needs)
    assert not set(needs) & set(wheels.pins()) and set(needs) <= set(image)


def test_a_dependency_for_another_platform_is_not_carried():
    # loguru asks for colorama and win32-setctime on Windows only
    assert "win32-setctime" not in wheels.closure(["loguru"], set())


@pytest.mark.parametrize("wheel, ok", [
    ("norse-1.1.0-py3-none-any.whl", True),
    ("grain-0.2.18-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl", True),
    ("array_record-0.8.6-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
    ("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl", False),  # another Python
    ("thing-1.0-cp312-cp312-linux_x86_64.whl", False),  # built here: not manylinux
    ("thing-1.0-cp312-cp312-macosx_11_0_arm64.whl", False),
    ("thing-1.0-cp312-cp312-manylinux_2_40_x86_64.whl", False),  # newer than the machine's glibc
])
def test_which_wheels_install_on_the_gpu_machine(wheel, ok):
    assert wheels.installs_on_gpu(wheel) is ok


# ------------------------------------------------------------------ fetching, with a stand-in for pip

class FakePip:
    """pip as seen by fetch: ``wheels`` maps a pin to the wheel PyPI has for 3.12
    (absent: sdist only), ``built`` to what building its sdist gives here."""

    def __init__(self, wheels_for_312: dict[str, str], built: dict[str, str] | None = None, error: str = ""):
        self.wheels, self.built, self.error, self.calls = wheels_for_312, built or {}, error, []

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        spec, verb = args[-1], args[0]
        dest = Path(args[args.index("-d" if verb == "download" else "-w") + 1])
        if self.error:
            return subprocess.CompletedProcess(args, 1, "", f"ERROR: {self.error}\n")
        got = (self.wheels if verb == "download" else self.built).get(spec)
        if got is None:
            msg = (f"ERROR: Could not find a version that satisfies the requirement {spec}\n"
                   f"ERROR: No matching distribution found for {spec}\n") if verb == "download" else \
                "ERROR: Failed building wheel\n"
            return subprocess.CompletedProcess(args, 1, "", msg)
        (dest / got).write_bytes(b"PK")
        return subprocess.CompletedProcess(args, 0, "", "")


def test_a_pin_published_as_an_sdist_only_is_built_here_into_a_pure_wheel(tmp_path):
    pip = FakePip({"snntorch==1.0.0": "snntorch-1.0.0-py2.py3-none-any.whl"},
                  built={"norse==1.1.0": "norse-1.1.0-py3-none-any.whl"})
    got = wheels.fetch({"snntorch": "1.0.0", "norse": "1.1.0"}, tmp_path, pip)
    assert [(f.name, f.how) for f in got] == [("norse", "built from the sdist"), ("snntorch", "downloaded")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["norse-1.1.0-py3-none-any.whl",
                                                          "snntorch-1.0.0-py2.py3-none-any.whl"]
    download = next(c for c in pip.calls if c[0] == "download")
    assert "--only-binary=:all:" in download and download[download.index("--python-version") + 1] == "3.12"
    build = next(c for c in pip.calls if c[0] == "wheel")
    assert "--no-deps" in build and build[build.index("--no-binary") + 1] == "norse"


def test_an_sdist_that_builds_a_compiled_wheel_stops_the_fetch(tmp_path):
    pip = FakePip({}, built={"thing==1.0": "thing-1.0-cp311-cp311-linux_x86_64.whl"})
    with pytest.raises(wheels.FetchError, match=r"thing==1.0: .*not pure Python"):
        wheels.fetch({"thing": "1.0"}, tmp_path, pip)
    assert not list(tmp_path.glob("*.whl"))


def test_a_pin_neither_published_as_a_wheel_nor_buildable_stops_the_fetch(tmp_path):
    with pytest.raises(wheels.FetchError, match=r"thing==1.0: no wheel for Python 3.12 on PyPI, and its sdist did not build"):
        wheels.fetch({"thing": "1.0"}, tmp_path, FakePip({}))


def test_a_network_failure_is_not_taken_for_a_missing_wheel(tmp_path):
    pip = FakePip({}, error="Could not install packages due to an OSError: Connection reset")
    with pytest.raises(wheels.FetchError, match="pip download failed: ERROR: Could not install packages"):
        wheels.fetch({"thing": "1.0"}, tmp_path, pip)
    assert [c[0] for c in pip.calls] == ["download"]


def test_a_wheel_of_another_version_is_not_taken_for_the_pin(tmp_path):
    pip = FakePip({"thing==1.0": "thing-1.1-py3-none-any.whl"})
    with pytest.raises(wheels.FetchError, match="left 0 wheels of it"):
        wheels.fetch({"thing": "1.0"}, tmp_path, pip)


def test_a_fetch_starts_from_an_empty_folder(tmp_path):
    (tmp_path / "stale-0.1-py3-none-any.whl").write_bytes(b"PK")
    wheels.fetch({"thing": "1.0"}, tmp_path, FakePip({"thing==1.0": "thing-1.0-py3-none-any.whl"}))
    assert [p.name for p in tmp_path.glob("*.whl")] == ["thing-1.0-py3-none-any.whl"]


# ------------------------------------------------------------------ the size of one call

def test_the_budget_counts_the_tree_and_the_carried_folders_against_64_mib(tmp_path):
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / ".gitignore").write_text("/.whl/\n/.data/\n/junk/\n")
    (tmp_path / "tracked.txt").write_bytes(b"x" * 1000)
    (tmp_path / "untracked.txt").write_bytes(b"y" * 500)
    git("add", ".gitignore", "tracked.txt")
    for folder, size in ((".whl", 3 * MIB), (".data", 2 * MIB), ("junk", 50 * MIB)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "f").write_bytes(b"\0" * size)
    b = wheels.budget([".whl", ".data"], root=tmp_path)
    assert b.tree == 1000 + 500 + len("/.whl/\n/.data/\n/junk/\n")  # ignored junk does not travel
    assert b.carried == {".whl": 3 * MIB, ".data": 2 * MIB}
    assert b.fits and "to spare" in b.lines()[-1]
    assert not wheels.Budget(tree=14 * MIB, carried={".whl": 15 * MIB, ".data": 30 * MIB}).fits  # 59 + 8 > 64
    assert wheels.Budget(tree=14 * MIB, carried={".whl": 15 * MIB, ".data": 25 * MIB}).fits


def test_the_budget_command_fails_loudly_when_a_call_would_not_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(wheels, "budget", lambda paths: wheels.Budget(tree=20 * MIB, carried={".data": 40 * MIB}))
    assert wheels.main(["budget", ".data"]) == 1
    err = capsys.readouterr().err
    assert "60.0 MiB, more than 56 MiB" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ the data

def _idx_folder(root: Path, gz: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 20, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5, dtype=np.uint8)}
    root.mkdir(parents=True)
    for stem, a in arrays.items():
        write_idx(root / (stem + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_the_data_travels_in_xz_and_unpacks_to_the_same_idx_files(tmp_path, gz):
    arrays = _idx_folder(tmp_path / "src", gz)
    assert gpu_data.pack(tmp_path / "src", tmp_path / "carried") is True
    assert sorted(p.name for p in (tmp_path / "carried").iterdir()) == sorted(
        [f"{s}.xz" for s in gpu_data.STEMS] + ["SHA256SUMS"])
    assert gpu_data.pack(tmp_path / "src", tmp_path / "carried") is False  # already packed: kept
    gpu_data.unpack(tmp_path / "carried", tmp_path / "there")
    for stem, a in arrays.items():
        np.testing.assert_array_equal(read_idx(tmp_path / "there" / stem), a)


def test_a_damaged_or_missing_data_file_stops_the_unpacking(tmp_path):
    _idx_folder(tmp_path / "src", True)
    carried = tmp_path / "carried"
    gpu_data.pack(tmp_path / "src", carried)
    other = gpu_data.lzma.compress(b"not the packed bytes")
    (carried / "t10k-labels-idx1-ubyte.xz").write_bytes(other)
    with pytest.raises(gpu_data.DataError, match="t10k-labels-idx1-ubyte.xz does not hold the bytes packed"):
        gpu_data.unpack(carried, tmp_path / "there")
    (carried / "t10k-labels-idx1-ubyte.xz").write_bytes(b"garbage")
    with pytest.raises(gpu_data.DataError, match="cannot read .*t10k-labels-idx1-ubyte.xz"):
        gpu_data.unpack(carried, tmp_path / "there")
    (carried / "SHA256SUMS").unlink()
    with pytest.raises(gpu_data.DataError, match="SHA256SUMS is missing"):
        gpu_data.unpack(carried, tmp_path / "there")
    with pytest.raises(gpu_data.DataError, match="has neither train-images-idx3-ubyte nor"):
        gpu_data.pack(tmp_path / "empty", carried)


# ------------------------------------------------------------------ the rehearsal's verdict

def _record(path: Path, pt, status: str, location: str = "", **kw) -> None:
    from tasks.result import Result

    path.parent.mkdir(parents=True, exist_ok=True)
    Result(task=pt.task, backend=pt.backend, kind="measurement", status=status, precision=pt.precision,
           config={"task": pt.expected_task, "run": {"device": pt.device, "precision": pt.precision}},
           extra={"measures": ["throughput", "memory"]},
           data={"dataset": "fashion-mnist", "location": location} if location else {}, **kw).save(path)


def test_the_check_fails_a_backend_whose_framework_did_not_import(tmp_path, capsys):
    from tasks.profiles import get_profile, points
    from tools.gpu import check

    profile = get_profile("smoke")
    pts = [p for p in points(profile, backends.installable_names(), ["timing"]) if p.task == "fc_mnist"]
    ran = next(p for p in pts if p.backend == "stbp")
    gone = next(p for p in pts if p.backend == "norse")
    out, data = tmp_path / "smoke", tmp_path / "data"
    _record(out / ran.key, ran, "ok", location=str(data / "fashion-mnist"))
    # what tasks.measure writes when the framework does not import: no capabilities (the suite lets it pass)
    _record(out / gone.key, gone, "unavailable", message="norse not installed")
    assert check.status(ran, out / ran.key) == "ok"
    assert check.status(gone, out / gone.key) == "not imported"
    assert check.status(pts[-1], out / "nothing.json") == "missing"
    assert check.main(["smoke", str(out), "timing", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not finished" in err
    # a record that read its data elsewhere is named (the suite's first point comes first)
    assert pts[0] == ran
    _record(out / ran.key, ran, "ok", location="/usr/share/datasets/fashion-mnist")
    assert check.main(["smoke", str(out), "timing", "--data", str(data)]) == 1
    captured = capsys.readouterr()
    assert "1 not imported" in captured.out
    assert "read its data from /usr/share/datasets/fashion-mnist, not from" in captured.err
