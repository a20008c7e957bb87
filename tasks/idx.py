"""MNIST-format (idx) files: finding, downloading, verifying and reading them.

Both MNIST and Fashion-MNIST ship as four idx files, optionally gzipped.
Where a data set is looked for, in order:

1. ``--data-dir`` (the directory itself, or its ``<name>`` subdirectory);
2. ``$SPIKEBENCH_DATA`` (likewise);
3. the standard cache directory (``~/.cache/spikebench/<name>`` on Linux);
4. ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``).

When none has the files, they are downloaded into the cache directory and
checked against the published MD5 checksums (with pooch).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Where each data set is published, and the MD5 of each published .gz file.
SOURCES = {
    "mnist": {
        "urls": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        "md5": {
            "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
            "test_images": "9fb629c4189551a2d022fa330f9573f3",
            "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion-mnist": {
        "urls": [
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        "md5": {
            "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
            "test_images": "bef4ecab320f06d8554ea6380940ec79",
            "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 ``[N, H, W]`` and labels as int64 ``[N]``."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    location: str


def cache_dir() -> Path:
    """The standard per-user cache directory for downloads."""
    try:
        import pooch

        return Path(pooch.os_cache("spikebench"))
    except ImportError:  # pooch is a dependency, but keep locating files without it
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "spikebench"


def candidate_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Directories searched for ``name``, in order."""
    if data_dir:
        # an explicit --data-dir is used alone: falling back silently would
        # train on data the user did not name
        return [Path(data_dir) / name, Path(data_dir)]
    roots: list[Path] = []
    env = os.environ.get("SPIKEBENCH_DATA")
    if env:
        roots.append(Path(env))
    out: list[Path] = []
    for root in roots:
        out += [root / name, root]
    out.append(cache_dir() / name)
    out.append(SYSTEM_DATA_DIR / name)
    return out


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_files(name: str, data_dir: str | os.PathLike | None) -> dict[str, Path] | None:
    """The four idx files of ``name`` from the first directory that has all of them."""
    for directory in candidate_dirs(name, data_dir):
        found = {key: _find_file(directory, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def _missing_in_data_dir(name: str, data_dir: str | os.PathLike) -> str:
    """Why ``data_dir`` does not hold ``name``: what is missing where."""
    root = Path(data_dir)
    if not root.is_dir():
        return f"--data-dir {root} {'is not a directory' if root.exists() else 'does not exist'}"
    best = min(candidate_dirs(name, root), key=lambda d: sum(_find_file(d, s) is None for s in FILES.values()))
    missing = [stem for stem in FILES.values() if _find_file(best, stem) is None]
    return (f"--data-dir {root} does not hold data set {name}: {best} lacks {', '.join(missing)} "
            f"(each may be gzipped; looked in {root / name} and {root})")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (raw or gzipped); a bad file raises :class:`DataError` naming it."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:  # zlib: a corrupt deflate body
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) < 4:
        raise DataError(f"corrupt idx file {path}: only {len(data)} bytes")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"corrupt idx file {path}: bad header")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"truncated idx file {path}: header cut short")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[dtype_code])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a huge header cannot overflow
    if len(data) - header != expected:
        raise DataError(
            f"truncated or corrupt idx file {path}: expected {expected} data bytes for shape "
            f"{shape}, found {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def download(name: str) -> dict[str, Path]:
    """Download ``name`` into the cache directory, verifying MD5 checksums."""
    source = SOURCES[name]
    try:
        import pooch
    except ImportError:
        raise DataError(_missing_message(name, "pooch is not installed, so it cannot be downloaded")) from None
    target = cache_dir() / name
    out: dict[str, Path] = {}
    for key, stem in FILES.items():
        last_error: Exception | None = None
        for base in source["urls"]:
            try:
                path = pooch.retrieve(
                    url=base + stem + ".gz",
                    known_hash="md5:" + source["md5"][key],
                    fname=stem + ".gz",
                    path=target,
                    progressbar=False,
                )
                out[key] = Path(path)
                break
            except ValueError as exc:  # pooch: checksum mismatch
                last_error = exc
                raise DataError(f"checksum mismatch downloading {stem}.gz for {name}: {exc}") from None
            except Exception as exc:  # network errors of every kind
                last_error = exc
        else:
            raise DataError(_missing_message(name, f"download failed ({_one_line(last_error)})"))
    return out


def _one_line(exc: Exception | None) -> str:
    text = str(exc) if exc is not None else "unknown error"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _missing_message(name: str, reason: str) -> str:
    hint = (
        " or `apt-get install dataset-fashion-mnist`" if name == "fashion-mnist" else ""
    )
    return (
        f"data set {name} not found and {reason}; put its four idx files in --data-dir or "
        f"$SPIKEBENCH_DATA{hint}, or connect to the internet to download it into {cache_dir() / name}"
    )


_LOADED: dict[tuple[str, str], ImageDataset] = {}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> ImageDataset:
    """Find (or download) and read data set ``name``; cached per process."""
    if name not in SOURCES:
        raise DataError(f"unknown data set {name!r}; choose from {', '.join(SOURCES)}")
    files = find_files(name, data_dir)
    if files is None:
        if data_dir:
            raise DataError(_missing_in_data_dir(name, data_dir))
        if not allow_download:
            raise DataError(_missing_message(name, "downloading is switched off"))
        files = download(name)
    key = (name, str(files["train_images"].parent))
    if key not in _LOADED:
        arrays = {k: read_idx(p) for k, p in files.items()}
        for split in ("train", "test"):
            check_split(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                        files[f"{split}_images"], files[f"{split}_labels"])
        _LOADED[key] = ImageDataset(
            name=name,
            train_images=arrays["train_images"],
            train_labels=arrays["train_labels"].astype(np.int64),
            test_images=arrays["test_images"],
            test_labels=arrays["test_labels"].astype(np.int64),
            location=str(files["train_images"].parent),
        )
    return _LOADED[key]


# What every task expects of an MNIST-format data set.
IMAGE_SIZE = (28, 28)
N_CLASSES = 10


def check_split(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path) -> None:
    """The contents of one split are what the tasks read; a bad one is named.

    Checked here, once, so that no backend meets a label out of range (an
    IndexError in one framework, a NaN loss in another) or an image of the
    wrong size."""
    if images.dtype != np.uint8:
        raise DataError(f"{images_path} holds {images.dtype} values; MNIST-format images are unsigned bytes (0-255)")
    if images.ndim != 3 or images.shape[1:] != IMAGE_SIZE:
        raise DataError(f"{images_path} holds images of shape {images.shape[1:]}; the tasks read "
                        f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} images ([N, 28, 28])")
    if len(images) == 0:
        raise DataError(f"{images_path} holds no images")
    if labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{images_path} and {labels_path} do not match: images {images.shape}, labels {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path} holds {labels.dtype} values; labels are integers 0-{N_CLASSES - 1}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= N_CLASSES:
        raise DataError(f"{labels_path} holds labels from {low} to {high}; the classes are 0-{N_CLASSES - 1}")


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an idx file (gzipped when the name ends in .gz); used by tests and tools."""
    array = np.ascontiguousarray(array)
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
    if array.dtype not in codes:
        raise ValueError("write_idx writes uint8 or int8 arrays")
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
