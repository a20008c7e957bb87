import json
import math
import os

import numpy as np
import pytest

from tasks.metrics import EvalAccumulator, accuracy_with_ties, firing_rates
from tasks.result import Curve, LayerStat, Result, write_atomic
from tasks.specs import get_spec
from tasks.weights import initial_weights, trainable_names


def test_accuracy_counts_ties_as_a_fraction():
    scores = np.array([
        [2, 0, 0],  # clear hit (label 0)
        [1, 1, 0],  # tie of two, label among them -> 1/2
        [1, 1, 1],  # tie of three, label 2 -> 1/3; first-index argmax says 0 -> miss
        [0, 3, 0],  # clear miss (label 0)
    ], dtype=float)
    labels = np.array([0, 1, 2, 0])
    acc = accuracy_with_ties(scores, labels)
    assert acc["accuracy"] == pytest.approx((1 + 0.5 + 1 / 3 + 0) / 4)
    assert acc["tie_rate"] == 0.5
    assert acc["accuracy_first_index"] == 0.25


def test_firing_rates_per_layer_mean_and_overall():
    spec = get_spec("fc_mnist", T=10)
    counts = {"lif1": np.full(1000, 2.0), "lif2": np.full(10, 10.0)}  # over 4 samples
    rates = firing_rates(spec, counts, samples=4)
    assert rates["layers"] == {"lif1": pytest.approx(0.05), "lif2": pytest.approx(0.25)}
    assert rates["mean"] == pytest.approx(0.15)
    assert rates["overall"] == pytest.approx((2000 + 100) / (1010 * 40))
    with pytest.raises(ValueError, match="lif2"):
        firing_rates(spec, {"lif1": counts["lif1"], "lif2": np.ones(3)}, 4)


def test_accumulator_weights_losses_by_batch_size():
    spec = get_spec("fc_mnist", T=1)
    acc = EvalAccumulator(spec)
    zero = {"lif1": np.zeros(1000), "lif2": np.zeros(10)}
    acc.add(1.0, np.eye(10)[:3], np.array([0, 1, 2]), zero)
    acc.add(4.0, np.eye(10)[:1], np.array([5]), zero)
    s = acc.summary()
    assert s["loss"] == pytest.approx((3 * 1 + 4) / 4) and s["accuracy"] == 0.75


def test_initial_weights_are_seeded_and_shaped():
    for name in ("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn"):
        spec = get_spec(name)
        a, b = initial_weights(spec), initial_weights(spec)
        c = initial_weights(spec.with_overrides(seed=1))
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert any(not np.array_equal(a[k], c[k]) for k in trainable_names(a) if a[k].std() > 0)
    fc = initial_weights(get_spec("fc_mnist"))
    assert fc["fc1.weight"].shape == (1000, 784) and np.abs(fc["fc1.weight"]).max() <= 1 / math.sqrt(784)
    assert "fc1.bias" not in initial_weights(get_spec("fc_mnist_poisson"))
    d = initial_weights(get_spec("dsrn_tdbn"))
    w = d["layer2.1.conv1.weight"]  # Kaiming normal, fan_out = 256 * 9
    assert w.std() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)
    assert np.all(d["stem.bn.weight"] == 1) and np.all(d["stem.bn.running_var"] == 1)
    syn = initial_weights(get_spec("synthetic"))
    assert syn["fc1.weight"].std() == pytest.approx(math.sqrt(7 * (1 - math.exp(-1)) / 100), rel=0.15)


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
