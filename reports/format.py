"""Numbers with their units, for people.

A table column has one display unit for all its cells (so a column reads
top to bottom), chosen from the largest value in it: ``column_scale`` picks
it and ``scaled`` writes a value in it.  Everything else here formats one
value on its own (hover texts, captions, the header).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MiB = 2**20
GiB = 2**30


@dataclass(frozen=True)
class Scale:
    """How a column shows its values: ``value / divisor`` in ``unit``."""

    unit: str
    divisor: float = 1.0
    percent: bool = False  # fractions shown as percentages


def significant(value: float, digits: int = 3) -> str:
    """``value`` with about ``digits`` significant digits, thousands separated,
    never in exponent notation for numbers people read in tables."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    if abs(value) < 1e-4:
        return f"{value:.{digits - 1}e}"
    return f"{value:,.{decimals}f}"


def column_scale(unit: str, values: list[float]) -> Scale:
    """The display unit of a column holding ``values`` (in ``unit``)."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0)
    if unit == "fraction":
        return Scale("%", 0.01, percent=True)
    if unit == "bytes":
        return Scale("GiB", GiB) if top >= GiB else Scale("MiB", MiB)
    if unit == "s":
        if top and top < 1:
            return Scale("ms", 1e-3)
        return Scale("s")
    return Scale(unit)


def scaled(value: float | None, scale: Scale) -> str:
    """``value`` in the column's unit, without the unit (it is in the header)."""
    if value is None or not math.isfinite(value):
        return "—"
    shown = value / scale.divisor
    if scale.percent:
        return f"{shown:.2f}"
    if scale.unit == "samples/s" or scale.unit in ("MiB",):
        return f"{shown:,.0f}" if shown >= 100 else significant(shown, 3)
    return significant(shown, 3)


def human(value: float | None, unit: str) -> str:
    """One value with its unit, scaled to read well (``1.23 GiB``, ``12.3 ms``)."""
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "fraction":
        return f"{value * 100:.2f} %"
    if unit == "bytes":
        if value >= GiB:
            return f"{value / GiB:.2f} GiB"
        if value >= MiB:
            return f"{value / MiB:,.1f} MiB"
        return f"{value / 1024:,.1f} KiB"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.3g} µs"
        if value < 1:
            return f"{value * 1e3:.3g} ms"
        if value < 600:
            return f"{value:.3g} s"
        return f"{value / 60:.3g} min"
    if unit == "samples/s":
        return f"{significant(value, 3)} samples/s"
    if unit in ("", "1"):
        return significant(value, 4)
    return f"{significant(value, 3)} {unit}"


def ratio_text(ratio: float) -> str:
    """``×0.52``, ``×0.999``, ``×3.1``: a value's ratio to the best of its
    column.  Rounded away from 1, so a value that is not the best never
    reads ``×1``."""
    if ratio >= 100:
        return f"×{ratio:,.0f}"
    if ratio >= 2:
        return f"×{ratio:.3g}"
    if ratio >= 0.1:
        rounded = math.ceil(ratio * 1000) / 1000 if ratio > 1 else math.floor(ratio * 1000) / 1000
        return "×" + f"{rounded:.3f}".rstrip("0").rstrip(".")
    return f"×{ratio:.2g}"


def nice_log_ticks(low: float, high: float, max_ticks: int = 7) -> list[float]:
    """Tick values for a log axis from ``low`` to ``high``: 1-2-5 steps, or
    decades only when that would be too many."""
    if not (low > 0 and high > 0 and math.isfinite(low) and math.isfinite(high)):
        return []
    if high < low:
        low, high = high, low
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = []
        for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
            for m in mantissas:
                v = m * 10.0**exponent
                if low <= v <= high:
                    ticks.append(v)
        if 2 <= len(ticks) <= max_ticks:
            return ticks
        if len(ticks) < 2:
            break
    # decades are still too many: every other decade
    if len(ticks) > max_ticks:
        step = math.ceil(len(ticks) / max_ticks)
        return ticks[::step]
    # fewer than two round values in range: the ends, rounded
    return [float(f"{low:.2g}"), float(f"{high:.2g}")]


def tick_text(value: float) -> str:
    """A tick label: 2,000 / 50k / 0.05."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e4:
        return f"{value / 1e3:g}k"
    if value >= 1:
        return f"{value:,.0f}" if value == int(value) else f"{value:g}"
    return f"{value:g}"


def spread_text(spread: float) -> str:
    """max/min of the repeats, e.g. ``spread ×1.04``."""
    if not math.isfinite(spread):
        return "spread unknown"
    return f"spread ×{spread:.2f}"
