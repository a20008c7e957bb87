"""reports/format.py: numbers with their units, for people (worked by hand)."""

from __future__ import annotations

import math

import pytest

from reports.format import (GiB, MiB, Scale, column_scale, human, nice_log_ticks, ratio_text, scaled, significant,
                            spread_text, tick_text)


def test_significant_digits_with_thousands_and_no_exponent_above_1e_4():
    assert significant(1234567.0) == "1,234,567"
    assert significant(0.012345) == "0.0123"
    assert significant(3.14159, 4) == "3.142"
    assert significant(0.0) == "0" and significant(math.inf) == "inf"
    assert significant(3.2e-5) == "3.20e-05"


def test_a_column_has_one_unit_chosen_from_its_largest_value():
    assert column_scale("bytes", [3 * MiB, 2 * GiB]) == Scale("GiB", GiB)
    assert column_scale("bytes", [3 * MiB, None, math.nan]) == Scale("MiB", MiB)
    assert column_scale("s", [0.002, 0.5]) == Scale("ms", 1e-3)
    assert column_scale("s", [0.5, 2.0]) == Scale("s") and column_scale("s", []) == Scale("s")
    assert column_scale("fraction", [0.9]) == Scale("%", 0.01, percent=True)
    assert column_scale("samples/s", [10.0]) == Scale("samples/s")


def test_scaled_values_are_written_in_the_columns_unit():
    assert scaled(0.9812, Scale("%", 0.01, percent=True)) == "98.12"
    assert scaled(0.0123, Scale("ms", 1e-3)) == "12.3"
    assert scaled(1234.4, Scale("samples/s")) == "1,234" and scaled(12.34, Scale("samples/s")) == "12.3"
    assert scaled(None, Scale("s")) == "—" and scaled(math.nan, Scale("s")) == "—"


@pytest.mark.parametrize("value, unit, text", [
    (0.98765, "fraction", "98.77 %"), (3 * GiB, "bytes", "3.00 GiB"), (1.5 * MiB, "bytes", "1.5 MiB"),
    (2048, "bytes", "2.0 KiB"), (2.5e-5, "s", "25 µs"), (0.0123, "s", "12.3 ms"), (12.34, "s", "12.3 s"),
    (1200, "s", "20 min"), (1234.5, "samples/s", "1,234 samples/s"), (1.23456, "", "1.235"),
    (None, "s", "—"), (math.inf, "bytes", "—"),
])
def test_one_value_with_its_unit(value, unit, text):
    assert human(value, unit) == text


def test_a_ratio_never_reads_one_unless_it_is_one():
    assert ratio_text(1.0004) == "×1.001" and ratio_text(0.9996) == "×0.999"
    assert ratio_text(0.52) == "×0.52" and ratio_text(3.14) == "×3.14" and ratio_text(1234) == "×1,234"
    assert ratio_text(0.01234) == "×0.012"


def test_log_ticks_are_1_2_5_steps_or_decades():
    assert nice_log_ticks(1, 100) == [1, 2, 5, 10, 20, 50, 100]
    assert nice_log_ticks(1, 1e6) == [1, 10, 100, 1000, 10000, 100000, 1000000]
    assert nice_log_ticks(100, 1) == nice_log_ticks(1, 100)
    assert nice_log_ticks(0, 10) == [] and nice_log_ticks(1, math.inf) == []
    assert nice_log_ticks(3.3, 3.9) == [3.3, 3.9]  # no round value in range: the ends


def test_tick_labels_and_spread():
    assert [tick_text(v) for v in (2e6, 50e3, 2000, 2.5, 0.05)] == ["2M", "50k", "2,000", "2.5", "0.05"]
    assert spread_text(1.0412) == "spread ×1.04" and spread_text(math.nan) == "spread unknown"
