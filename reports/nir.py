"""The "NIR fidelity" section: each NIR graph through each framework's own reader, against the float64
reference (records of ``python -m tasks.nir fidelity``; docs/nir.md)."""

from __future__ import annotations

from typing import Any

from .keys import backend_sort_key
from .load import Collection


def _cell(r: dict) -> dict[str, Any]:
    """One graph x framework cell: its state, the figure shown and everything behind it."""
    if r.get("status") == "unavailable":
        return {"state": "unavailable", "text": "unavailable", "detail": r.get("reason", "")}
    s, v = r.get("spikes", {}), r.get("membrane", {})
    if r.get("status") == "failed":
        return {"state": "failed", "text": "failed", "detail": r.get("problem", "")}
    state = "exact" if s["mismatches"] == 0 else "drift"
    membrane = (f"membrane after each step: max |diff| {v['max_abs_diff']:.3g} (largest |v| {v['max_abs_reference']:.3g}) "
                f"over {v['nodes']} neuron node(s)" if v.get("ok") else f"membrane not measured: {v.get('problem', '')}")
    first = f", first at step {s['first_mismatch_step']}" if s.get("first_mismatch_step") is not None else ""
    return {"state": state, "text": f"{s['mismatches']} / {s['elements']}",
            "detail": f"{s['spikes']} spikes against the reference's {s['reference_spikes']}{first}; {membrane}"}


def nir_view(collection: Collection) -> dict[str, Any] | None:
    """The matrix (frameworks x graphs) and the rows behind it; None when there are no records."""
    if not collection.nir:
        return None
    latest: dict[tuple[str, str], tuple[str, dict]] = {}
    for path, r in collection.nir:
        latest[(r["graph"], r["framework"])] = (path, r)
    graphs = sorted({g for g, _ in latest})
    frameworks = sorted({f for _, f in latest}, key=backend_sort_key)
    matrix = [{"framework": fw, "cells": [_cell(latest[(g, fw)][1]) if (g, fw) in latest else None for g in graphs]}
              for fw in frameworks]
    rows = []
    for (g, fw), (path, r) in sorted(latest.items(), key=lambda kv: (kv[0][0], backend_sort_key(kv[0][1]))):
        rows.append({"graph": g, "framework": fw, "version": r.get("version", ""), "path": path,
                     "cell": _cell(r), "differences": r.get("differences", []),
                     "setting": f"T = {r['T']}, batch {r['batch']}, seed {r['seed']}, dt = {r['dt']:g} s"})
    return {"graphs": graphs, "matrix": matrix, "rows": rows}
