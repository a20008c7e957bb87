"""tasks/result.py: the result record (JSON with units, its schema, written atomically)."""

import json
import os

import pytest

import numpy as np

from tasks.result import Curve, LayerStat, Result, json_text, record_files, write_atomic


def _sample_result():
    r = Result(task="fc_mnist", backend="spikingjelly:torch", framework="spikingjelly", variant="torch",
               versions={"torch": "2.13.0"}, device={"type": "cuda", "name": "H100"}, precision="bf16", seed=3,
               config={"task": {"T": 25}}, capabilities={"tasks": ["fc_mnist"]})
    r.set_metric("accuracy", 0.9)
    r.set_metric("time_to_accuracy", float("nan"))
    r.layers = [LayerStat("lif1", 1000, 0.1)]
    r.curves["train_loss"] = Curve("step", "loss")
    r.curves["train_loss"].append(1, 2.5)
    r.curves["train_loss"].append(2, float("inf"))
    r.wall_times["total"] = 1.5
    return r


def test_result_round_trips_through_json_with_units():
    r = _sample_result()
    text = r.to_json()
    data = json.loads(text)  # standard JSON: no NaN/Infinity tokens
    assert data["metrics"]["accuracy"] == {"value": 0.9, "unit": "fraction", "description": ""}
    assert data["metrics"]["time_to_accuracy"]["value"] is None
    assert data["curves"]["train_loss"]["y"] == [2.5, None]
    assert Result.from_json(text) == r


def test_a_curve_is_one_line_and_the_rest_one_key_a_line():
    r = _sample_result()
    for step in range(3, 1000):
        r.curves["train_loss"].append(step, 1.0 / step)
    lines = r.to_json().splitlines()
    x_line = [line for line in lines if line.lstrip().startswith('"x"')]
    assert len(x_line) == 1 and x_line[0].endswith("998, 999],")
    assert '  "accuracy": {' in lines and len(lines) < 100
    nested = {"rows": [{"a": np.float32(0.5)}, {"b": np.arange(2)}], "empty": [], "none": {}, "pairs": [[1, 2]]}
    assert json.loads(json_text(nested)) == {"rows": [{"a": 0.5}, {"b": [0, 1]}], "empty": [], "none": {},
                                             "pairs": [[1, 2]]}


def test_result_rejects_unknown_status_and_newer_schema():
    with pytest.raises(ValueError):
        Result(task="x", backend="y", status="great")
    data = _sample_result().to_dict()
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="newer"):
        Result.from_dict(data)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    write_atomic(path, "old\n")

    class Boom:
        def __str__(self):
            raise RuntimeError("disk full")

    with pytest.raises(TypeError):
        write_atomic(path, Boom())  # type: ignore[arg-type]
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["r.json"]


def test_record_files_leave_out_hidden_folders_and_temporaries(tmp_path):
    for rel in ("train/a.json", "parity/b.json", "train/.a.json.x1.tmp", "train/.c.json",
                ".editions/c8f14ce3f190/train/a.json", "train/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in record_files(tmp_path)] == ["parity/b.json", "train/a.json"]
