"""reports/frame.py: records as one pandas row each, and the best values and ratios of a column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.frame import ID_COLUMNS, best_and_ratios, column, records_frame
from reports.load import Loaded
from tasks.result import Result, Timing


def test_one_row_per_record_with_every_metric_and_timing():
    r = Result(task="fc_mnist", backend="stbp", config={"task": {"T": 25, "batch_size": 128}}, precision="bf16",
               device={"type": "cpu", "name": "EPYC"})
    r.set_metric("accuracy", 0.9)
    r.set_metric("time_to_accuracy", None)
    r.timings["train_step"] = Timing([0.3, 0.1, 0.2])
    frame = records_frame([Loaded(r, "a.json")])
    row = frame.iloc[0]
    assert (row["path"], row["T"], row["batch_size"], row["precision"], row["device_type"]) == ("a.json", 25, 128, "bf16", "cpu")
    assert row["accuracy"] == 0.9 and math.isnan(row["time_to_accuracy"])
    assert (row["train_step.median"], row["train_step.min"], row["train_step.max"], row["train_step.repeats"]) == (0.2, 0.1, 0.3, 3)


def test_no_record_is_an_empty_frame_with_the_id_columns():
    frame = records_frame([])
    assert list(frame.columns) == ID_COLUMNS and frame.empty
    assert column(frame, "accuracy").dtype == float


def test_a_missing_or_text_column_reads_as_nan():
    frame = pd.DataFrame({"a": ["1.5", "x"]})
    assert column(frame, "a").tolist()[0] == 1.5 and math.isnan(column(frame, "a").tolist()[1])
    assert column(frame, "b").isna().all()


def test_the_best_and_each_values_ratio_to_it():
    best, ratios, equal = best_and_ratios(pd.Series([2.0, 1.0, 4.0, np.nan]), "lower")
    assert best.tolist() == [False, True, False, False] and not equal
    assert ratios.tolist()[:3] == [2.0, 1.0, 4.0] and math.isnan(ratios.tolist()[3])
    best, ratios, _ = best_and_ratios(pd.Series([0.5, 0.8]), "higher")
    assert best.tolist() == [False, True] and ratios.tolist() == [0.625, 1.0]


def test_nothing_is_best_among_equals_a_single_value_or_non_positive_lower_figures():
    best, ratios, equal = best_and_ratios(pd.Series([3.0, 3.0]), "lower")
    assert not best.any() and ratios.isna().all() and equal
    best, _, equal = best_and_ratios(pd.Series([3.0, np.inf]), "lower")
    assert not best.any() and not equal
    best, ratios, _ = best_and_ratios(pd.Series([0.0, 2.0, 4.0]), "lower")  # a zero time has no ratio
    assert best.tolist() == [False, True, False] and math.isnan(ratios.tolist()[0])
