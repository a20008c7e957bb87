"""The data set a GPU call carries, packed small: ``python -m tools.gpu.data``.

    python -m tools.gpu.data pack SRC DEST     # SRC's four idx files (raw or .gz) -> DEST/<stem>.xz + SHA256SUMS
    python -m tools.gpu.data unpack SRC DEST   # SRC/<stem>.xz -> DEST/<stem>, each checked against SHA256SUMS

Fashion-MNIST as Debian ships it (four .gz files) is 29.5 MiB; the same bytes
in xz (LZMA2, preset 9e) are 25.2 MiB, and what one device call carries is
64 MiB with the working tree and the wheels.  Every task that reads images
loads all four files, so the whole set travels.  ``unpack`` writes the raw idx
files (tasks/idx.py reads raw or .gz) after checking each file's SHA-256 as
recorded by ``pack`` from the decompressed source; a missing or changed file
stops it with a one-line error.  ``pack`` keeps DEST as it is when its sums
already match SRC.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import sys
from pathlib import Path

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SUMS = "SHA256SUMS"
PRESET = 9 | lzma.PRESET_EXTREME


class DataError(Exception):
    """One line: which file, and what is wrong."""


def _source(src: Path, stem: str) -> bytes:
    for path, opener in ((src / stem, Path.read_bytes), (src / f"{stem}.gz", lambda p: gzip.decompress(p.read_bytes()))):
        if path.is_file():
            try:
                return opener(path)
            except (OSError, EOFError) as exc:
                raise DataError(f"cannot read {path}: {exc}") from None
    raise DataError(f"{src} has neither {stem} nor {stem}.gz")


def read_sums(folder: Path) -> dict[str, str]:
    path = folder / SUMS
    if not path.is_file():
        raise DataError(f"{path} is missing (made by: python -m tools.gpu.data pack)")
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, stem = line.partition("  ")
        sums[stem.strip()] = digest.strip()
    if set(sums) != set(STEMS):
        raise DataError(f"{path} lists {sorted(sums)}, not the four idx files {list(STEMS)}")
    return sums


def pack(src: Path, dest: Path) -> bool:
    """Pack ``src`` into ``dest``; False when ``dest`` already held the same data."""
    raw = {stem: _source(src, stem) for stem in STEMS}
    sums = {stem: hashlib.sha256(data).hexdigest() for stem, data in raw.items()}
    try:
        if read_sums(dest) == sums and all((dest / f"{s}.xz").is_file() for s in STEMS):
            return False
    except DataError:
        pass
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.is_file():
            old.unlink()
    for stem, data in raw.items():
        (dest / f"{stem}.xz").write_bytes(lzma.compress(data, preset=PRESET))
    (dest / SUMS).write_text("".join(f"{sums[s]}  {s}\n" for s in STEMS))
    return True


def unpack(src: Path, dest: Path) -> None:
    sums = read_sums(src)
    dest.mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        path = src / f"{stem}.xz"
        try:
            data = lzma.decompress(path.read_bytes())
        except (OSError, lzma.LZMAError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != sums[stem]:
            raise DataError(f"{path} does not hold the bytes packed (SHA-256 differs from {src / SUMS})")
        (dest / stem).write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] not in ("pack", "unpack"):
        print("usage: python -m tools.gpu.data pack|unpack SRC DEST", file=sys.stderr)
        return 2
    try:
        if argv[0] == "pack":
            changed = pack(Path(argv[1]), Path(argv[2]))
            print(f"{argv[2]}: {'packed' if changed else 'already packed'} from {argv[1]}")
        else:
            unpack(Path(argv[1]), Path(argv[2]))
            print(f"{argv[2]}: four idx files unpacked and checked")
    except DataError as exc:
        print(f"tools.gpu.data: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
