"""``python -m reports.build RESULTS_DIR [-o report.html]``: the comparison report.

Reads every result record under RESULTS_DIR (recursively; a parity file from
``python -m tasks.parity --json`` too) and writes one self-contained HTML
page: plotly.js is inlined once and every figure is drawn from JSON embedded
in the page, so it opens offline.

Exit status: 0 when the page was written; 2 for bad input (a missing or empty
directory, no result record, an unusable option): one line on stderr and
nothing written; 1 when the page cannot be written where asked.  A file that
is not a readable record is skipped with a one-line warning naming it.  The
page is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import jinja2

from tasks.cli import OneLineParser
from tasks.result import write_atomic
from tasks.specs import TASKS

from . import figures as F
from .environment import environment
from .format import human
from .groups import Setting, Sweep, group_settings, matching_sweep, reference_value
from .keys import (
    STATUS_TEXT,
    backend_color,
    backend_sort_key,
    describe_config,
    slug,
    task_sort_key,
)
from .load import Collection, ReportError, load_results
from .nir import nir_view
from .published import published_note
from .tables import Table, build_table
from .verdict import verdict

HERE = Path(__file__).resolve().parent
ASV_CANDIDATES = ("reports/asv/index.html", "asv/index.html")


@dataclass
class Figure:
    id: str
    spec: str  # plotly JSON


@dataclass
class Block:
    table: Table
    curves: str | None = None
    layers: str | None = None
    layers_source: str = ""
    has_val: bool = False
    published: str | None = None  # the publication's accuracy beside this recipe's runs


@dataclass
class SweepView:
    id: str
    facts: list[str]
    memory: str | None
    memory_kind: str
    throughput: str | None
    symbol: str  # the swept setting: T or N
    values: list[int]
    point_rows: list[dict[str, Any]]
    not_drawn: list[str]
    superseded: list[str]
    n_points: int


@dataclass
class SettingView:
    id: str
    label: str
    device_label: str
    precision: str
    blocks: list[Block] = field(default_factory=list)
    sweeps: list[SweepView] = field(default_factory=list)


@dataclass
class TaskView:
    id: str
    name: str
    description: str
    settings: list[SettingView]


class _Figures:
    """Collects the page's figures; returns the id of each one's ``<div>``."""

    def __init__(self) -> None:
        self.items: list[Figure] = []

    def add(self, fig, name: str) -> str | None:
        if fig is None:
            return None
        fig_id = f"fig-{slug(name)}"
        self.items.append(Figure(fig_id, F.to_spec(fig)))
        return fig_id


@lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def _static(name: str) -> str:
    return (HERE / "static" / name).read_text(encoding="utf-8")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["human"] = human
    env.globals["STATUS_TEXT"] = STATUS_TEXT
    return env


def _point_rows(sweep: Sweep) -> list[dict[str, Any]]:
    rows = []
    names = sweep.backends
    for name in names:
        cells = []
        for value in sweep.values:
            p = sweep.at(name, value)
            if p is None:
                cells.append({"status": "none"})
                continue
            r = p.result
            cell: dict[str, Any] = {"status": r.status, "message": r.message, "source": p.path, "lines": []}
            if r.status == "ok":
                for label, metric, timing in (("train step", "train_step_time", "train_step"),
                                              ("forward + backward", "forward_backward_time", "forward_backward"),
                                              ("inference", "inference_time", "inference")):
                    v = r.metric(metric)
                    if v is not None:
                        t = r.timings.get(timing)
                        spread = f" (×{t.spread:.2f})" if t and t.samples and t.min > 0 else ""
                        cell["lines"].append({"label": label, "text": human(v, "s") + spread, "metric": metric,
                                              "value": v})
                for label, metric in (("peak memory", "peak_device_memory"),):
                    v = r.metric(metric)
                    if v is not None:
                        cell["lines"].append({"label": label, "text": human(v, "bytes"), "metric": metric, "value": v})
            cells.append(cell)
        rows.append({"backend": name, "color": backend_color(name), "cells": cells})
    return rows


def _not_drawn(sweep: Sweep) -> list[str]:
    """Backends of a sweep with no successful point at all, and why."""
    out = []
    for name in sweep.backends:
        pts = [p for (b, _), p in sorted(sweep.points.items()) if b == name]
        if pts and all(p.result.status != "ok" for p in pts):
            statuses = sorted({p.result.status for p in pts})
            if statuses == ["unavailable"] or len(statuses) == 1:
                out.append(f"{name} ({STATUS_TEXT.get(statuses[0], statuses[0])}: {pts[0].result.message})")
            else:
                out.append(f"{name} (no successful point: {', '.join(statuses)})")
    return out


def _sweep_view(sweep: Sweep, figs: _Figures) -> SweepView:
    mem, kind = F.memory_figure(sweep)
    facts = describe_config(sweep.config, "sweep")
    if sweep.repeats:
        facts.append(f"median of {'/'.join(str(r) for r in sorted(sweep.repeats))} repeats, error bars min to max")
    return SweepView(
        id=sweep.id,
        facts=facts,
        memory=figs.add(mem, f"{sweep.id}-memory"),
        memory_kind=kind,
        throughput=figs.add(F.throughput_figure(sweep), f"{sweep.id}-throughput"),
        symbol=sweep.symbol,
        values=sweep.values,
        point_rows=_point_rows(sweep),
        not_drawn=_not_drawn(sweep),
        superseded=sorted(sweep.superseded),
        n_points=len(sweep.points),
    )


def _setting_view(setting: Setting, figs: _Figures) -> SettingView:
    view = SettingView(id=setting.id, label=setting.label, device_label=setting.device_label,
                       precision=setting.precision)
    matched = [(group, matching_sweep(setting, group.config, group.config.get("T"))) for group in setting.trainings]
    used: set[int] = {id(sweep) for _, sweep in matched if sweep is not None}
    # a sweep no training table took (another batch or width than the training
    # runs) gets a comparison table of its own: a sweep over T at its
    # reference T, a sweep over the width one table per width
    unmatched = [(s, value) for s in setting.sweeps if id(s) not in used
                 for value in ([reference_value(setting.task, s)] if s.axis == "T" else s.values)]
    total = len(matched) + len(unmatched)
    for i, (group, sweep) in enumerate(matched, start=1):
        T = group.config.get("T")
        table = build_table(setting, group, sweep, T, i, total)
        block = Block(table, published=published_note(setting.task, group))
        block.curves = figs.add(F.curves_figure(group), f"{table.id}-curves")
        block.has_val = any("val_loss" in l.result.curves or "val_accuracy" in l.result.curves
                            for l in group.runs.values())
        entries = [(n, l.result) for n, l in group.runs.items()]
        block.layers = figs.add(F.layers_figure(sorted(entries, key=lambda e: backend_sort_key(e[0]))), f"{table.id}-layers")
        block.layers_source = "test set after training (training run)"
        view.blocks.append(block)
    for i, (sweep, value) in enumerate(unmatched, start=len(matched) + 1):
        used.add(id(sweep))
        table = build_table(setting, None, sweep, value, i, total)
        block = Block(table)
        entries = [(b, p.result) for (b, v), p in sweep.points.items() if v == value]
        block.layers = figs.add(F.layers_figure(sorted(entries, key=lambda e: backend_sort_key(e[0]))), f"{table.id}-layers")
        block.layers_source = f"test set at the initial weights (measurement point, {sweep.label(value)})"
        view.blocks.append(block)
    # a sweep of one point that is already in a table says nothing more
    view.sweeps = [_sweep_view(s, figs) for s in setting.sweeps if len(s.values) > 1 or id(s) not in used]
    return view


def _parity_view(collection: Collection, figs: _Figures) -> dict[str, Any] | None:
    parity = collection.parity
    if parity is None:
        return None
    fig_id = figs.add(F.parity_figure(parity), "parity-matrix")
    rows = sorted(parity.rows, key=lambda r: (task_sort_key(r["task"]), backend_sort_key(r["backend"]),
                                              str(r.get("precision"))))
    shown = []
    for r in rows:
        tol = r.get("tolerances") or {}
        shown.append({
            "task": r["task"], "backend": r["backend"], "precision": r.get("precision", ""),
            "status": F.parity_status(r), "code": F.parity_code(r), "message": r.get("message", ""),
            "documented": r.get("documented_difference", ""),
            "spikes": None if r.get("spike_mismatches") is None else
            f"{r['spike_mismatches']:,} / {r.get('spikes_compared') or 0:,}",
            "values": [(k, r.get(k), tol.get(k)) for k in ("membrane_rel", "gradient_rel", "loss_curve_rel")],
        })
    return {"figure": fig_id, "rows": shown, "paths": parity.paths, "tolerances": parity.tolerances,
            "states": F.PARITY_STATES}


def asv_link(report: Path, asv: str | None) -> str | None:
    """The asv pages' address relative to the report, when they exist."""
    base = report.resolve().parent
    if asv is not None:
        index = Path(asv) / "index.html"
        if not index.is_file():
            raise ReportError(f"--asv {asv}: no index.html there (build it with asv publish)")
        candidates = [index.resolve()]
    else:
        candidates = [base / c for c in ASV_CANDIDATES if (base / c).is_file()]
    if not candidates:
        return None
    try:
        return Path(os.path.relpath(candidates[0], base)).as_posix()
    except ValueError:  # another drive (Windows)
        return candidates[0].as_uri()


def render(collection: Collection, report: Path, asv: str | None = None) -> str:
    """The HTML page for ``collection`` (to be written at ``report``)."""
    settings = group_settings(collection)
    figs = _Figures()
    tasks: dict[str, list[SettingView]] = {}
    for setting in settings:
        tasks.setdefault(setting.task, []).append(_setting_view(setting, figs))
    task_views = []
    for name in sorted(tasks, key=task_sort_key):
        cls = TASKS.get(name)
        task_views.append(TaskView(id=f"task-{slug(name)}", name=name,
                                   description=cls.description if cls else "", settings=tasks[name]))
    parity = _parity_view(collection, figs)
    env = environment(collection, settings)
    template = _environment().get_template("report.html.j2")
    return template.render(
        env=env,
        verdict=verdict(settings),
        tasks=task_views,
        parity=parity,
        nir=nir_view(collection),
        asv_href=asv_link(report, asv),
        figures=figs.items,
        results_dir=str(collection.root),
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        css=_static("report.css"),
        page_js=_static("report.js"),
        plotly_js=plotly_js(),
    )


def build_report(results_dir: str | os.PathLike | Sequence[str | os.PathLike], output: str | os.PathLike = "report.html",
                 asv: str | None = None, warn=None, base: str | os.PathLike | None = None) -> Path:
    """Read ``results_dir`` (one directory or several) and write the report to ``output`` (atomically);
    the page names each record by its path relative to ``base`` (default: the directory)."""
    output = Path(output)
    if output.is_dir():
        raise ReportError(f"-o {output} is a directory; give the HTML file to write")
    collection = load_results(results_dir, warn=warn, base=base)
    html = render(collection, output, asv)
    return write_atomic(output, html)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m reports.build",
                description="Build the self-contained HTML comparison report from the result records "
                            "(and a tasks.parity --json file) under RESULTS_DIR.")
    p.add_argument("results_dir", metavar="RESULTS_DIR", nargs="+",
                   help="directories searched recursively for result JSON files")
    p.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--asv", metavar="DIR", help="asv's HTML directory to link to (default: reports/asv/ next to "
                                                "the report, when it exists)")
    p.add_argument("--base", metavar="DIR", help="name the records by their path relative to DIR "
                                                 "(default: the results directory, or several's common parent)")
    args = p.parse_args(argv)
    warn = lambda text: sys.stderr.write(f"spikebench: warning: {text}\n")  # noqa: E731
    try:
        path = build_report(args.results_dir, args.output, args.asv, warn=warn, base=args.base)
    except ReportError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return 2
    except OSError as exc:  # the report cannot be written there
        sys.stderr.write(f"spikebench: error: cannot write {args.output}: {exc.strerror or exc}\n")
        return 1
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
