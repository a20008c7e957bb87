"""What the results were measured on: devices, precisions, dates, commits,
versions, and the warnings a reader needs."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.machine import describe

from .fields import device_name, device_type, precision_of
from .groups import Setting
from .keys import backend_color, backend_sort_key, precision_sort_key
from .load import Collection


# ------------------------------------------------------------ environment
@dataclass
class Environment:
    devices: list[dict[str, str]]
    precisions: list[str]
    dates: str
    commits: list[str]
    fingerprints: list[str]  # of the code that wrote the records (tasks.provenance); "unrecorded" for older ones
    machines: list[tuple[str, str]]  # (fingerprint, description) of the machines the records ran on (tasks.machine)
    common_versions: list[tuple[str, str]]
    backend_versions: list[tuple[str, str, str]]  # backend, colour, "torch 2.1 · ..."
    counts: dict[str, int]
    warnings: list[str]


def _short_commit(commit: str) -> str:
    dirty = commit.endswith("-dirty")
    base = commit[: -len("-dirty")] if dirty else commit
    return base[:10] + (" (uncommitted changes)" if dirty else "")


def environment(collection: Collection, settings: list[Setting]) -> Environment:
    results = [l.result for l in collection.results]
    devices: dict[tuple[str, str], dict[str, str]] = {}
    for r in results:
        name = device_name(r)
        if not name:
            continue
        key = (device_type(r), name)
        details = []
        if r.device.get("driver"):
            details.append(f"driver {r.device['driver']}")
        if r.device.get("cuda_runtime"):
            details.append(f"CUDA runtime {r.device['cuda_runtime']}")
        if r.device.get("memory_bytes"):
            details.append(f"{r.device['memory_bytes'] / 2**30:.0f} GiB")
        if r.device.get("capability"):
            details.append(f"compute capability {r.device['capability']}")
        if key[0] == "cpu" and r.host.get("cpu_count"):
            details.append(f"{r.host['cpu_count']} logical CPUs")
        text = " · ".join(details)
        known = devices.get(key)
        if known is None or len(text) > len(known["details"]):  # the record that says most about it
            devices[key] = {"type": key[0], "name": name, "details": text}
    if not devices:
        devices[("?", "?")] = {"type": "", "name": "not recorded", "details": "no run got as far as its device"}
    precisions = sorted({precision_of(r) for r in results}, key=precision_sort_key)
    days = sorted(r.started_at[:10] for r in results if r.started_at)
    dates = "not recorded" if not days else days[0] if days[0] == days[-1] else f"{days[0]} to {days[-1]}"
    commits = sorted({_short_commit(str(r.host.get("spikebench_commit")))
                      for r in results if r.host.get("spikebench_commit")}) or ["not recorded"]
    fingerprints = sorted({str(r.host.get("code_fingerprint") or "unrecorded") for r in results})
    machines = sorted({(str(r.host.get("machine_fingerprint") or "unrecorded"),
                        describe(r.host["machine"]) if r.host.get("machine") else "not recorded") for r in results})

    common: dict[str, set[str]] = {}
    per_backend: dict[str, dict[str, set[str]]] = {}
    for r in results:
        for lib, version in r.versions.items():
            if lib in ("spikebench", "python", "numpy"):
                common.setdefault(lib, set()).add(str(version))
            elif lib != "versions_error":
                per_backend.setdefault(r.backend, {}).setdefault(lib, set()).add(str(version))
    common_versions = [(lib, ", ".join(sorted(v))) for lib, v in sorted(common.items())]
    names = sorted({r.backend for r in results}, key=backend_sort_key)
    backend_versions = []
    for name in names:
        libs = per_backend.get(name, {})
        text = " · ".join(f"{lib} {', '.join(sorted(v))}" for lib, v in sorted(libs.items()))
        backend_versions.append((name, backend_color(name), text or "not recorded (the framework did not load)"))

    warnings = []
    per_task: dict[str, list[Setting]] = {}
    for s in settings:
        per_task.setdefault(s.task, []).append(s)
    if len(devices) > 1 or len(precisions) > 1:
        what = []
        if len(devices) > 1:
            what.append(f"{len(devices)} devices")
        if len(precisions) > 1:
            what.append(f"{len(precisions)} precisions ({', '.join(precisions)})")
        warnings.append(
            f"These results come from {' and '.join(what)}. Figures are compared only within one device and one "
            "precision: each task shows a separate block per combination, with its own best marks and ratios.")
    split = [t for t, ss in per_task.items() if len(ss) > 1]
    if split and not warnings:
        warnings.append(f"{', '.join(split)}: results from more than one device or precision, shown separately.")
    if len(fingerprints) > 1:
        warnings.append(f"The results were produced by {len(fingerprints)} different states of the code (fingerprints "
                        f"{', '.join(fingerprints)}; commits {', '.join(commits)}): not one edition.")
    elif len(commits) > 1:  # one fingerprint over several commits is one edition; records without one cannot say
        if fingerprints == ["unrecorded"]:
            warnings.append(f"The results were produced by {len(commits)} different spikebench commits: "
                            f"{', '.join(commits)}.")
    if len(machines) > 1:
        warnings.append(f"The results were taken on {len(machines)} different kinds of machine ("
                        + "; ".join(f"{fp}: {text}" for fp, text in machines) + "): not one edition.")
    for rel, why in collection.skipped:
        warnings.append(f"Skipped {rel}: {why}.")
    counts = {
        "training": sum(1 for r in results if r.kind != "measurement"),
        "measurement": sum(1 for r in results if r.kind == "measurement"),
        "failed": sum(1 for r in results if r.status != "ok"),
        "parity": len(collection.parity.rows) if collection.parity else 0,
        "files": len(collection.results),
    }
    return Environment(
        devices=list(devices.values()),
        precisions=precisions,
        dates=dates,
        commits=commits,
        fingerprints=fingerprints,
        machines=machines,
        common_versions=common_versions,
        backend_versions=backend_versions,
        counts=counts,
        warnings=warnings,
    )
