"""The backend registry (backends/__init__.py): what a new framework's entry must get right."""

from __future__ import annotations

import itertools
import re

import pytest

import backends

COLOURED = {name: e.color for name, e in backends.REGISTRY.items() if not e.unavailable_reason}
# two colours closer than this in CIELAB (delta E 1976) are hard to tell apart in a legend;
# a framework's variant, its hue lighter, is the closest pair today (about 18)
MIN_DISTANCE = 15.0
# contrast with the white page (WCAG's ratio): Okabe-Ito's orange is 2.25, its yellow 1.3 (unreadable)
MIN_CONTRAST = 2.0


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(_linear(int(colour[i:i + 2], 16)) for i in (1, 3, 5))  # type: ignore[return-value]


def luminance(colour: str) -> float:
    r, g, b = _rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_with_white(colour: str) -> float:
    return 1.05 / (luminance(colour) + 0.05)


def lab(colour: str) -> tuple[float, float, float]:
    r, g, b = _rgb(colour)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def distance(a: str, b: str) -> float:
    return sum((p - q) ** 2 for p, q in zip(lab(a), lab(b))) ** 0.5


def test_the_measures_tell_colours_apart_as_a_reader_would():
    assert contrast_with_white("#000000") == pytest.approx(21.0)
    assert contrast_with_white("#F0E442") < MIN_CONTRAST  # Okabe-Ito's yellow on white
    assert distance("#0072B2", "#0072B2") == 0.0
    assert distance("#0072B2", "#0073B3") < 1 < MIN_DISTANCE < distance("#0072B2", "#D55E00")


@pytest.mark.parametrize("name", list(COLOURED))
def test_every_backend_has_a_colour_readable_on_the_page(name):
    colour = COLOURED[name]
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", colour), f"{name}: colour {colour!r} is not #RRGGBB"
    assert contrast_with_white(colour) >= MIN_CONTRAST, f"{name}: {colour} is too light on white"


def test_registry_colours_are_distinct():
    close = [(a, b, round(distance(COLOURED[a], COLOURED[b]), 1))
             for a, b in itertools.combinations(COLOURED, 2) if distance(COLOURED[a], COLOURED[b]) < MIN_DISTANCE]
    assert not close, f"colours too close to tell apart (delta E < {MIN_DISTANCE}): {close}"


@pytest.mark.parametrize("name", [n for n in backends.names() if backends.availability(n)[0]])
def test_a_compiled_variant_is_named_so_and_names_the_eager_backend_it_compiles(name):
    """The profiles tell a compiled variant by its name (they import no backend) and the report
    sets it beside the backend in ``compiles``: name, entry and class must agree."""
    from tasks.profiles import is_compiled_variant

    cls = backends.load(name)
    compiles = getattr(cls, "compile_mode", None) is not None
    entry = backends.entry(name)
    assert is_compiled_variant(name) == compiles == bool(entry.compiles), name
    if compiles:
        eager = backends.load(entry.compiles)
        assert issubclass(cls, eager) and getattr(eager, "compile_mode", None) is None, name
        assert cls.__mro__[1] is eager, f"{name} compiles {cls.__mro__[1].__name__}, not {entry.compiles}"
