"""reports/columns.py: the tables' columns, each from the metric catalogue."""

from __future__ import annotations

from reports.columns import catalogue_column, measurement_columns, training_columns
from reports.format import Scale
from tasks.catalogue import CATALOGUE


def test_a_column_is_its_metrics_catalogue_entry():
    for name, metric in CATALOGUE.items():
        column = catalogue_column(name)
        assert (column.key, column.label, column.unit, column.better, column.help, column.timing, column.ranked) == (
            name, metric.label, metric.unit, metric.better, metric.description, metric.timing, metric.ranked)
    assert catalogue_column("accuracy", "Acc.").label == "Acc."


def test_the_unit_label_is_the_display_scales_once_chosen():
    column = catalogue_column("peak_device_memory")
    assert column.unit_label == "bytes"
    column.scale = Scale("MiB", 2**20)
    assert column.unit_label == "MiB"


def test_training_columns_lead_with_the_time_to_the_named_target():
    keys = [c.key for c in training_columns(0.97)]
    assert keys == ["time_to_accuracy", "accuracy", "train_throughput", "peak_device_memory", "firing_rate_mean"]
    assert training_columns(0.97)[0].label == "Time to 97\u00a0%"
    assert training_columns(None)[0].label == CATALOGUE["time_to_accuracy"].label


def test_measurement_columns_follow_the_step_and_the_device():
    assert [c.key for c in measurement_columns()] == [
        "train_step_time", "train_step_throughput", "inference_time", "peak_device_memory"]
    assert [c.key for c in measurement_columns(trainable=False)][::3] == [
        "forward_backward_time", "peak_device_memory_forward_backward"]
    assert measurement_columns(dtype="cpu")[-1].key == "train_step_host_memory"
    assert measurement_columns(trainable=False, dtype="cpu")[-1].key == "forward_backward_host_memory"
