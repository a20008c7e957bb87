"""The report's plotly figures.

Every function returns a ``plotly.graph_objects.Figure`` (or ``None`` when
there is nothing to draw); :func:`to_spec` turns one into the JSON the page
draws with the single inline copy of plotly.js.  One colour per backend
throughout the page; a variant shares its framework's hue.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots
from plotly.utils import PlotlyJSONEncoder

from tasks.catalogue import RATE_UNIT
from tasks.result import Result

from .format import GiB, MiB, human, nice_log_ticks, tick_text
from .frame import column, records_frame, throughput_with_range
from .groups import Sweep, TrainingGroup
from .keys import (
    AXIS_LABELS,
    STATUS_TEXT,
    backend_color,
    backend_sort_key,
    task_sort_key,
)
from .load import Parity

FONT = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
GRID = "#E6E9EF"
AXIS = "#5B6472"
MAX_POINTS = 2500  # longer training-loss curves are averaged over windows of steps

FAILED_SYMBOLS = {"oom": "x-thin-open", "error": "diamond-open", "diverged": "star-triangle-up-open"}
FAILED_LABELS = {"oom": "OOM", "error": "error", "diverged": "diverged"}

PARITY_STATES = [
    ("ok", "#2E8B57", "white"),
    ("ok, documented difference", "#7DB8A0", "#12352A"),
    ("fail", "#D1495B", "white"),
    ("error", "#7A1F3D", "white"),
    ("unavailable", "#D5D9E0", "#3B4350"),
]


def _template() -> go.layout.Template:
    """plotly_white with the page's fonts and quieter axes, for every figure
    (axis defaults set once here cost nothing per axis)."""
    template = go.layout.Template(pio.templates["plotly_white"])
    axis = dict(showline=True, linecolor="#B8BFCB", gridcolor=GRID, zeroline=False, ticks="outside",
                tickcolor="#B8BFCB", title=dict(font=dict(size=12, color=AXIS)), tickfont=dict(color=AXIS))
    template.layout.xaxis.update(axis)
    template.layout.yaxis.update(axis)
    template.layout.font = dict(family=FONT, size=12.5, color="#263040")
    template.layout.hoverlabel = dict(font=dict(family=FONT, size=12))
    return template


# The template goes into each figure's JSON as it is written (to_spec):
# validating it on every figure would cost more than drawing the rest.
TEMPLATE_JSON = _template().to_plotly_json()


def new_figure(cols: int = 1, titles: list[str] | tuple[str, ...] | None = None, spacing: float = 0.08) -> go.Figure:
    """A figure (with ``cols`` subplots in a row when ``titles`` is given)."""
    blank = go.Figure(layout=dict(template={}))
    if titles is None:
        return blank
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=spacing, figure=blank)
    title_font = dict(size=13.5, color="#263040", family=FONT)
    fig.layout.annotations = [{**a.to_plotly_json(), "font": title_font} for a in fig.layout.annotations]
    return fig


def base_layout(height: int = 360, **extra: Any) -> dict[str, Any]:
    layout = dict(
        height=height,
        autosize=True,
        margin=dict(l=64, r=24, t=64, b=56),
        legend=dict(orientation="h", yanchor="bottom", y=1.1, xanchor="left", x=0, font=dict(size=12),
                    itemclick="toggle", itemdoubleclick="toggleothers"),
        paper_bgcolor="white",
        plot_bgcolor="white",
    )
    layout.update(extra)
    return layout


def to_spec(fig: go.Figure) -> str:
    """The figure as JSON (with the page's template), safe to place inside a
    ``<script>`` element."""
    spec = fig.to_plotly_json()
    spec["layout"]["template"] = TEMPLATE_JSON
    text = json.dumps(spec, cls=PlotlyJSONEncoder, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def _dash(name: str) -> str:
    return "dot" if ":" in name else "solid"


# ------------------------------------------------------------------- curves
def _window_mean(x: list[float], y: list[float | None]) -> tuple[list[float], list[float | None], int]:
    """Average a long curve over windows so it stays readable; returns the window."""
    if len(x) <= MAX_POINTS:
        return x, y, 1
    k = math.ceil(len(x) / MAX_POINTS)
    xs, ys = [], []
    for i in range(0, len(x), k):
        chunk = [v for v in y[i : i + k] if v is not None]
        xs.append(x[min(i + k, len(x)) - 1])
        ys.append(sum(chunk) / len(chunk) if chunk else None)
    return xs, ys, k


def curves_figure(group: TrainingGroup) -> go.Figure | None:
    """Training loss per step; evaluation loss and accuracy (test solid,
    validation dashed) per epoch or step; one colour per backend."""
    runs = sorted(group.runs.items(), key=lambda kv: backend_sort_key(kv[0]))
    curves = {n: l.result.curves for n, l in runs if l.result.curves}
    if not any(c.get("train_loss") and c["train_loss"].x for c in curves.values()) and not any(
            c.get("test_accuracy") and c["test_accuracy"].x for c in curves.values()):
        return None
    eval_x = next((c[k].x_name for c in curves.values() for k in ("test_accuracy", "test_loss", "val_loss")
                   if k in c), "epoch")
    window = 1
    for c in curves.values():
        if c.get("train_loss"):
            window = max(window, _window_mean(c["train_loss"].x, c["train_loss"].y)[2])
    train_title = "Training loss" + (f" (mean of every {window} steps)" if window > 1 else "")
    fig = new_figure(3, (train_title, "Evaluation loss", "Evaluation accuracy"), spacing=0.075)
    has_val = False
    positive = True
    spans = []
    eval_loss: list[float | None] = []
    eval_acc: list[float | None] = []
    eval_max = 0.0
    for name, loaded in runs:
        c = loaded.result.curves
        color = backend_color(name)
        shown = False
        train = c.get("train_loss")
        if train and train.x:
            x, y, _ = _window_mean(train.x, train.y)
            finite = [v for v in y if v is not None]
            positive &= all(v > 0 for v in finite)
            if finite:
                spans.append((min(finite), max(finite)))
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines", name=name, legendgroup=name, line=dict(color=color, width=1.6, dash=_dash(name)),
                hovertemplate=f"<b>{name}</b><br>step %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
            ), row=1, col=1)
            shown = True
            if loaded.result.status == "diverged":
                last = max((i for i, v in enumerate(train.y) if v is not None), default=None)
                if last is not None:
                    fig.add_trace(go.Scatter(
                        x=[train.x[last]], y=[train.y[last]], mode="markers+text", text=["diverged"],
                        textposition="top center", textfont=dict(color=color, size=11),
                        marker=dict(symbol="x-thin-open", size=13, color=color, line=dict(width=2.5, color=color)),
                        legendgroup=name, showlegend=False,
                        hovertemplate=f"<b>{name}</b> diverged after step %{{x}}:<br>"
                                      f"{_escape(loaded.result.message)}<extra></extra>",
                    ), row=1, col=1)
        for split, dash in (("test", "solid"), ("val", "dash")):
            loss, acc = c.get(f"{split}_loss"), c.get(f"{split}_accuracy")
            if split == "val" and (loss and loss.x or acc and acc.x):
                has_val = True
            label = "test" if split == "test" else "validation"
            if loss and loss.x:
                eval_loss += loss.y
                eval_max = max(eval_max, max(loss.x))
                fig.add_trace(go.Scatter(
                    x=loss.x, y=loss.y, mode="lines+markers", name=name, legendgroup=name, showlegend=not shown,
                    line=dict(color=color, width=1.8, dash=dash), marker=dict(size=5),
                    hovertemplate=f"<b>{name}</b> {label}<br>{loss.x_name} %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
                ), row=1, col=2)
                shown = True
            if acc and acc.x:
                eval_acc += [None if v is None else 100 * v for v in acc.y]
                eval_max = max(eval_max, max(acc.x))
                fig.add_trace(go.Scatter(
                    x=acc.x, y=[None if v is None else 100 * v for v in acc.y], mode="lines+markers", name=name,
                    legendgroup=name, showlegend=not shown, line=dict(color=color, width=1.8, dash=dash),
                    marker=dict(size=5),
                    hovertemplate=f"<b>{name}</b> {label}<br>{acc.x_name} %{{x}}<br>accuracy %{{y:.2f}} %<extra></extra>",
                ), row=1, col=3)
                shown = True
    if has_val:
        for label, dash in (("test", "solid"), ("validation", "dash")):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=label,
                                     line=dict(color="#7A8494", width=1.8, dash=dash), hoverinfo="skip"),
                          row=1, col=3)
    fig.update_layout(**base_layout(380))
    fig.update_xaxes(title_text="training step", row=1, col=1)
    integer_x = eval_x == "epoch" and all(float(v).is_integer() for c in curves.values() for k in
                                          ("test_loss", "val_loss") if k in c for v in c[k].x)
    eval_ticks = dict(dtick=1, tick0=0) if integer_x and eval_max <= 15 else {}
    fig.update_xaxes(title_text=eval_x, row=1, col=2, **eval_ticks)
    fig.update_xaxes(title_text=eval_x, row=1, col=3, **eval_ticks)
    # a tiny spread (backends that agree to 1e-5) must not fill the axis:
    # at least ±2 % of the value for a loss, ±1 point for an accuracy
    for col, values, relative, absolute in ((2, eval_loss, 0.02, 1e-3), (3, eval_acc, 0.0, 1.0)):
        finite = [v for v in values if v is not None]
        if finite:
            mid = 0.5 * (max(finite) + min(finite))
            half = max(relative * abs(mid), absolute)
            if max(finite) - min(finite) < half:
                fig.update_yaxes(range=[mid - half, mid + half], row=1, col=col)
    log_loss = positive and spans and max(s[1] for s in spans) / max(min(s[0] for s in spans), 1e-300) > 30
    fig.update_yaxes(title_text="loss" + (" (log scale)" if log_loss else ""), type="log" if log_loss else "linear",
                     row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=3)
    return fig


# ------------------------------------------------------------- layer rates
def layers_figure(entries: list[tuple[str, Result]]) -> go.Figure | None:
    """Firing rate of every spiking layer, one bar per backend."""
    entries = [(n, r) for n, r in entries if r.status == "ok" and r.layers]
    if not entries or max(len(r.layers) for _, r in entries) < 2:
        return None  # one layer: the table's mean rate says it all
    order: list[str] = []
    for _, r in entries:
        for layer in r.layers:
            if layer.name not in order:
                order.append(layer.name)
    fig = new_figure()
    for name, r in entries:
        by_name = {l.name: l for l in r.layers}
        fig.add_trace(go.Bar(
            x=order,
            y=[by_name[l].firing_rate if l in by_name else None for l in order],
            name=name,
            marker=dict(color=backend_color(name), line=dict(width=0)),
            customdata=[[by_name[l].neurons if l in by_name else None] for l in order],
            hovertemplate=f"<b>{name}</b><br>%{{x}}<br>%{{y:.4g}} {RATE_UNIT}<br>%{{customdata[0]:,}} neurons<extra></extra>",
        ))
    many = len(order) > 6
    fig.update_layout(**base_layout(380 if many else 320, bargap=0.25, bargroupgap=0.06,
                                    margin=dict(l=64, r=24, t=48, b=96 if many else 56)))
    fig.update_xaxes(title_text="spiking layer (forward order)", tickangle=-40 if many else 0, type="category")
    fig.update_yaxes(title_text=f"firing rate ({RATE_UNIT})", rangemode="tozero")
    return fig


# ------------------------------------------------------------------- sweeps
def _sweep_axis(fig: go.Figure, sweep: Sweep, **where: int) -> None:
    values = sweep.values
    words = AXIS_LABELS.get(sweep.axis, (sweep.axis, sweep.axis))[1]
    fig.update_xaxes(type="log", tickvals=values, ticktext=[str(v) for v in values], title_text=f"{words} (log₂ scale)",
                     range=[math.log10(min(values)) - 0.12, math.log10(max(values)) + 0.12] if values else None,
                     minor=dict(showgrid=False), **where)


def _failed_points(fig: go.Figure, sweep: Sweep, names: list[str], top: float, col: int, legend: set[str]) -> float:
    """Mark each point that did not run (OOM, error, diverged) in a band above
    the data (log axis); returns the highest y used."""
    highest = top
    failing = [n for n in names if any(p.result.status in FAILED_SYMBOLS for (b, _), p in sweep.points.items() if b == n)]
    for k, name in enumerate(failing):
        color = backend_color(name)
        for status, symbol in FAILED_SYMBOLS.items():
            pts = sorted((v, p) for (b, v), p in sweep.points.items() if b == name and p.result.status == status)
            if not pts:
                continue
            y = top * 1.5 * 1.25**k
            highest = max(highest, y)
            fig.add_trace(go.Scatter(
                x=[T for T, _ in pts], y=[y] * len(pts), mode="markers+text",
                text=[FAILED_LABELS[status]] * len(pts),
                textposition=["middle left" if v == max(sweep.values) else "middle right" for v, _ in pts],
                textfont=dict(color=color, size=11),
                marker=dict(symbol=symbol, size=12, color=color, line=dict(width=2.4, color=color)),
                name=f"{name}: {STATUS_TEXT[status]}", legendgroup=name, showlegend=False,
                customdata=[[_escape(p.result.message)] for _, p in pts],
                hovertemplate=f"<b>{name}</b> at {sweep.symbol} = %{{x}}: {STATUS_TEXT[status]}<br>%{{customdata[0]}}<extra></extra>",
            ), row=1, col=col)
            if status not in legend:
                legend.add(status)
                fig.add_trace(go.Scatter(
                    x=[None], y=[None], mode="markers", name=STATUS_TEXT[status] + " (no value)",
                    marker=dict(symbol=symbol, size=11, color="#5B6472", line=dict(width=2.2, color="#5B6472")),
                    hoverinfo="skip", legendgroup=f"_{status}",
                ), row=1, col=col)
    return highest


def _log_axis(fig: go.Figure, low: float, high: float, **where: int) -> None:
    """A log y axis from ``low`` to ``high`` with round, fully written ticks
    (plotly's default labels only the decades and writes 2, 5 between them)."""
    if not (low > 0 and high > 0):
        fig.update_yaxes(type="log", **where)
        return
    ticks = nice_log_ticks(low / 1.1, high * 1.1)
    fig.update_yaxes(type="log", range=[math.log10(low) - 0.08, math.log10(high) + 0.08],
                     tickvals=ticks, ticktext=[tick_text(v) for v in ticks], **where)


def _timing_hover(row: Any, timing: str) -> str:
    median = row.get(f"{timing}.median", np.nan)
    if not np.isfinite(median):
        return ""
    fastest, slowest = row[f"{timing}.min"], row[f"{timing}.max"]
    return (f"<br>median {human(median, 's')}, min {human(fastest, 's')}, max {human(slowest, 's')} "
            f"({row[f'{timing}.repeats']:.0f} repeats, spread ×{slowest / fastest:.2f})")


def _sweep_panels(sweep: Sweep, panels: list[tuple[str, str, str | None]], y_title: str, divisor: float,
                  value_unit: str, height: int = 380) -> go.Figure | None:
    """One subplot per (title, metric, timing) over T, one line per backend;
    error bars from the slowest to the fastest repeat where timings exist."""
    names = sweep.backends
    frame = records_frame(sweep.points.values())
    at = {p.path: v for (_, v), p in sweep.points.items()}  # each record's value of the swept setting
    ok = frame[frame["status"] == "ok"]
    have = [p for p in panels if column(ok, p[1]).notna().any()]
    if not have:
        return None
    fig = new_figure(len(have), [p[0] for p in have], spacing=0.09)
    legend: set[str] = set()
    for col, (_, metric, timing_key) in enumerate(have, start=1):
        values = throughput_with_range(ok, metric, timing_key) / divisor
        values["x"] = ok["path"].map(at)
        values["backend"] = ok["backend"]
        values["hover"] = [_timing_hover(row, timing_key) if timing_key else "" for _, row in ok.iterrows()]
        values = values.dropna(subset=["value"]).sort_values("x")
        for name in names:
            line = values[values["backend"] == name]
            if line.empty:
                continue
            color = backend_color(name)
            error = None
            if timing_key:
                error = dict(type="data", symmetric=False, array=(line["high"] - line["value"]).tolist(),
                             arrayminus=(line["value"] - line["low"]).tolist(), thickness=1.3, width=4, color=color)
            fig.add_trace(go.Scatter(
                x=line["x"].tolist(), y=line["value"].tolist(), mode="lines+markers", name=name, legendgroup=name,
                showlegend=col == 1, error_y=error,
                line=dict(color=color, width=2, dash=_dash(name)), marker=dict(size=7, color=color),
                customdata=[[h] for h in line["hover"]],
                hovertemplate=f"<b>{name}</b> at {sweep.symbol} = %{{x}}<br>%{{y:,.4g}} {value_unit}%{{customdata[0]}}<extra></extra>",
            ), row=1, col=col)
        top = float(values["high"].max()) if len(values) else 1.0
        low = float(values["low"].min()) if len(values) else 1.0
        highest = _failed_points(fig, sweep, names, top, col, legend)
        fig.update_yaxes(title_text=y_title if col == 1 else None, row=1, col=col)
        _log_axis(fig, low, highest, row=1, col=col)
        _sweep_axis(fig, sweep, row=1, col=col)
    fig.update_layout(**base_layout(height))
    return fig


def memory_figure(sweep: Sweep) -> tuple[go.Figure | None, str]:
    """Memory versus T: the device allocator's peak (CUDA); on the CPU, the host
    memory each step needs (``*_host_memory``); failing both, the measuring
    process's peak resident memory.  Returns the figure and which it is."""
    ok = records_frame(sweep.points.values())
    for kind, panels in (
        ("device", [("Training step", "peak_device_memory"), ("Forward + backward", "peak_device_memory_forward_backward"),
                    ("Inference", "peak_device_memory_inference")]),
        # (an inference pass needs almost nothing beyond what is resident: not drawn)
        ("host-step", [("Training step", "train_step_host_memory"), ("Forward + backward", "forward_backward_host_memory")]),
    ):
        chosen = [(t, m, None) for t, m in panels]  # a panel with no value is left out
        largest = np.nanmax(np.r_[np.concatenate([column(ok, m).to_numpy() for _, m, _ in chosen]), 0.0])
        divisor, unit = (GiB, "GiB") if largest >= 4 * GiB else (MiB, "MiB")
        what = "peak device memory" if kind == "device" else "host memory of the step"
        fig = _sweep_panels(sweep, chosen, f"{what} ({unit}, log scale)", divisor, unit)
        if fig is not None:
            return fig, kind
    fig = _sweep_panels(sweep, [("Whole measurement process", "host_peak_rss", None)],
                        "host peak resident memory (MiB, log scale)", MiB, "MiB")
    return fig, "host"


def throughput_figure(sweep: Sweep) -> go.Figure | None:
    return _sweep_panels(sweep, [("Training step", "train_step_throughput", "train_step"),
                                 ("Forward + backward", "forward_backward_throughput", "forward_backward"),
                                 ("Inference", "inference_throughput", "inference")],
                         "throughput (samples/s, log scale)", 1.0, "samples/s")


# ------------------------------------------------------------------- parity
PARITY_FIGURES = ("spike_mismatches", "membrane_rel", "gradient_rel", "loss_curve_rel")


def parity_code(row: dict[str, Any]) -> int:
    status = row.get("status")
    if status == "ok" and not all(math.isfinite(row[k]) for k in PARITY_FIGURES if row.get(k) is not None):
        status = "fail"  # a record that called a NaN or an infinity ok (written before parity refused them)
    if status == "ok":
        return 1 if row.get("documented_difference") else 0
    return {"fail": 2, "error": 3}.get(status, 4)


def parity_status(row: dict[str, Any]) -> str:
    """The row's status as judged now: "fail" for a record that called a non-finite figure ok."""
    return "fail" if parity_code(row) == 2 else row.get("status", "")


def _sci(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1e}"


def parity_cell_text(row: dict[str, Any]) -> str:
    status = parity_status(row)
    if status in ("ok", "fail"):
        mism, compared = row.get("spike_mismatches"), row.get("spikes_compared")
        spikes = "—" if mism is None else f"{mism:,} / {_compact(compared)}"
        label = "ok" if status == "ok" else "FAIL"
        if status == "ok" and row.get("documented_difference"):
            label = "ok (documented)"
        return f"<b>{label}</b><br>spikes differ {spikes}<br>grad {_sci(row.get('gradient_rel'))}"
    return f"<b>{STATUS_TEXT.get(status, status)}</b>"


def _compact(n: Any) -> str:
    if n is None:
        return "—"
    n = float(n)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def _escape(text: Any) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _wrap(text: str, width: int = 70) -> str:
    words, lines, line = str(text).split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    if line:
        lines.append(line)
    return "<br>".join(_escape(l) for l in lines)


def parity_hover(row: dict[str, Any]) -> str:
    parts = [f"<b>{_escape(row.get('backend'))} · {_escape(row.get('task'))}</b> ({_escape(row.get('precision', ''))})",
             f"status: {_escape(row.get('status'))}"]
    if row.get("spikes_compared") is not None:
        parts.append(f"spike mismatches: {row.get('spike_mismatches')} of {row.get('spikes_compared'):,}")
    for key, label in (("membrane_rel", "membrane"), ("gradient_rel", "gradient"), ("loss_curve_rel", "loss curve")):
        if row.get(key) is not None:
            tol = (row.get("tolerances") or {}).get(key)
            parts.append(f"{label} rel. diff: {_sci(row.get(key))}" + (f" (tolerance {tol:g})" if tol is not None else ""))
    if row.get("message"):
        parts.append(_wrap(row["message"]))
    if row.get("documented_difference"):
        parts.append("documented difference: " + _wrap(row["documented_difference"]))
    return "<br>".join(parts)


def parity_figure(parity: Parity) -> go.Figure | None:
    rows = parity.rows
    if not rows:
        return None
    tasks = sorted({r["task"] for r in rows}, key=task_sort_key)
    backends = sorted({r["backend"] for r in rows}, key=backend_sort_key)
    # one cell per task x backend; with several precisions, the worst is shown
    cells: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["backend"], r["task"])
        if key not in cells or parity_code(r) in (2, 3) and parity_code(cells[key]) not in (2, 3):
            cells[key] = r
    z, hover = [], []
    annotations = []
    for b in backends:
        zr, hr = [], []
        for t in tasks:
            r = cells.get((b, t))
            if r is None:
                zr.append(None)
                hr.append(f"<b>{b} · {t}</b><br>not in the parity file")
                annotations.append(dict(x=t, y=b, text="not checked", showarrow=False,
                                        font=dict(color="#7A8494", size=11)))
                continue
            code = parity_code(r)
            zr.append(code)
            hr.append(parity_hover(r))
            annotations.append(dict(x=t, y=b, text=parity_cell_text(r), showarrow=False,
                                    font=dict(color=PARITY_STATES[code][2], size=11.5)))
        z.append(zr)
        hover.append(hr)
    n = len(PARITY_STATES)
    colorscale = []
    for i, (_, color, _) in enumerate(PARITY_STATES):
        colorscale += [[i / n, color], [(i + 1) / n, color]]
    fig = new_figure()
    fig.add_trace(go.Heatmap(
        x=tasks, y=backends, z=z, zmin=-0.5, zmax=n - 0.5, colorscale=colorscale, showscale=False,
        customdata=hover, hovertemplate="%{customdata}<extra></extra>", xgap=3, ygap=3,
    ))
    fig.update_layout(**base_layout(max(220, 78 * len(backends) + 90), annotations=annotations,
                                    margin=dict(l=140, r=24, t=40, b=24)))
    quiet = dict(showgrid=False, showline=False, ticks="", tickfont=dict(size=13, color="#263040"), fixedrange=True)
    fig.update_xaxes(side="top", **quiet)
    fig.update_yaxes(autorange="reversed", ticksuffix="  ", **quiet)
    return fig
