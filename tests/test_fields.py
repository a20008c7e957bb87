"""reports/fields.py: the fields of a record the report reads, with safe defaults."""

from __future__ import annotations

from reports import fields
from tasks.result import Result


def record(**kw) -> Result:
    return Result(task="fc_mnist", backend="stbp", framework="stbp", **kw)


def test_the_settings_a_record_was_run_with():
    r = record(config={"task": {"T": 25.0, "neurons": 512}, "run": {"device": "cuda", "precision": "bf16"}},
               device={"type": "cpu", "name": "H100"}, precision="")
    assert fields.T_of(r) == 25 and isinstance(fields.T_of(r), int) and fields.axis_value(r, "neurons") == 512
    assert fields.device_type(r) == "cuda"  # what the run asked for, before what it found
    assert fields.device_name(r) == "H100" and fields.precision_of(r) == "bf16"


def test_a_record_missing_or_mangling_them_gets_defaults():
    r = record(config={"task": "not a dict", "run": ["nor", "this"]}, device={}, precision="")
    assert fields.task_config(r) == {} and fields.run_config(r) == {}
    assert fields.T_of(r) is None and fields.axis_value(r, "neurons") is None
    assert fields.device_type(r) == "unknown" and fields.device_name(r) is None and fields.precision_of(r) == "unknown"
    assert fields.axis_value(record(config={"task": {"T": "25"}}), "T") is None  # not a number
    assert fields.device_type(record(device={"type": "cpu"})) == "cpu" and fields.precision_of(record(precision="fp32")) == "fp32"
