"""Which of a profile's points a run finished, backend by backend: ``python -m tools.gpu.check``.

    python -m tools.gpu.check PROFILE RESULTS [PART,...] [--data DIR]

Reads the files the suite wrote under RESULTS for every registered backend
(``tasks.suite``'s own test of a finished point: ``ok``, ``oom`` or
``diverged``, ``unavailable`` only where the backend's capabilities leave the
point out, parity without ``error`` rows) and prints one line per backend.
Exit status 1 when a point is not finished -- a framework that did not import
records ``unavailable`` without capabilities, which the suite itself lets
pass with exit status 0, so a rehearsal asks this instead.  With ``--data``,
every record that read a data set must have read it under DIR.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import backends as registry  # noqa: E402
from tasks.profiles import PARTS, get_profile, points  # noqa: E402
from tasks.result import Result  # noqa: E402
from tasks.suite import is_done  # noqa: E402


def status(point, path: Path) -> str:
    if not path.is_file():
        return "missing"
    if is_done(point, path):
        if point.part == "parity":
            return "ok"
        s = Result.load(path).status
        return "refused" if s == "unavailable" else s
    try:
        if point.part == "parity":
            rows = json.loads(path.read_text())["rows"]
            return "error" if any(r.get("status") == "error" for r in rows) else "unfinished"
        r = Result.load(path)
    except Exception:
        return "unreadable"
    return "not imported" if r.status == "unavailable" else r.status


def locations(obj) -> list[str]:
    """Every ``location`` a record holds (where a task's data set was read)."""
    if isinstance(obj, dict):
        return [v for k, v in obj.items() if k == "location" and isinstance(v, str)] + \
            [x for v in obj.values() for x in locations(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in locations(v)]
    return []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    data = None
    if "--data" in argv:
        i = argv.index("--data")
        data = Path(argv[i + 1]).resolve() if i + 1 < len(argv) else None
        del argv[i:i + 2]
        if data is None:
            print("tools.gpu.check: --data needs a directory", file=sys.stderr)
            return 2
    if len(argv) not in (2, 3):
        print("usage: python -m tools.gpu.check PROFILE RESULTS [PART,...] [--data DIR]", file=sys.stderr)
        return 2
    profile = get_profile(argv[0])
    out = Path(argv[1])
    parts = argv[2].split(",") if len(argv) == 3 else list(PARTS)
    names = profile.backend_names(registry.installable_names(profile.device))
    by_backend: dict[str, Counter] = {name: Counter() for name in names}
    bad = []
    for pt in points(profile, names, [p for p in PARTS if p in parts]):
        s = status(pt, out / pt.key)
        by_backend[pt.backend][s] += 1
        if s not in ("ok", "oom", "diverged", "refused"):
            bad.append(f"{pt.key}: {s}")
        elif data is not None and pt.part != "parity":
            for where in locations(json.loads((out / pt.key).read_text())):
                if not Path(where).resolve().is_relative_to(data):
                    bad.append(f"{pt.key}: read its data from {where}, not from {data}")
    for name, counts in by_backend.items():
        print(f"  {name:20s} " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if bad:
        print(f"tools.gpu.check: error: {len(bad)} of profile {profile.name}'s points not finished in {out}, "
              f"first {bad[0]}", file=sys.stderr)
        return 1
    print(f"profile {profile.name}: every point of {len(names)} backends finished in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
