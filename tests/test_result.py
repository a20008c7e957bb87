"""tasks/result.py: the result record (JSON with units, its schema, written atomically)."""

import json
import os

import pytest

from tasks.result import Curve, LayerStat, Result, write_atomic


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
