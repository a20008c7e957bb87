"""tasks/weights.py: the shared initial weights every backend starts from, and which of them are
trained."""

import math

import numpy as np
import pytest

from tasks.specs import get_spec
from tasks.weights import initial_weights, trainable_names


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
