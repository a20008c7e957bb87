"""The reference's equations against values worked out by hand."""

import math

import numpy as np
import pytest

from tasks import reference as ref
from tasks.data import Batch
from tasks.specs import get_spec
from tasks.weights import initial_weights


def col(*values):
    """A [T, 1] input: one neuron, one sample."""
    return np.array(values, dtype=np.float64).reshape(-1, 1)


def test_exponential_synapse_by_hand():
    out = ref.exponential_synapse(col(1.0, 0.0, 2.0), 0.5)
    np.testing.assert_allclose(out[:, 0], [1.0, 0.5, 2.25])


def test_soft_reset_lif_by_hand():
    a, vth = 0.5, 1.0
    s, v = ref.soft_reset_lif(col(4.0, 4.0, 0.0), a, vth)
    # t1: V = 0.5*0 + 0.5*4 = 2 > 1 -> spike
    # t2: V = 0.5*(2 - 1) + 0.5*4 = 2.5 -> spike
    # t3: V = 0.5*(2.5 - 1) + 0 = 0.75 -> none
    np.testing.assert_allclose(v[:, 0], [2.0, 2.5, 0.75])
    np.testing.assert_array_equal(s[:, 0], [1, 1, 0])


def test_subtractive_lif_resets_from_the_previous_step():
    s, u = ref.subtractive_lif(col(1.5, 0.0, 0.0, 2.0), beta=0.5, v_th=1.0)
    # t1: U = 1.5 -> spike (reset applied at t2)
    # t2: U = 0.75 + 0 - 1 = -0.25
    # t3: U = -0.125 (no reset: U[t-1] < 1)
    # t4: U = -0.0625 + 2 = 1.9375 -> spike
    np.testing.assert_allclose(u[:, 0], [1.5, -0.25, -0.125, 1.9375])
    np.testing.assert_array_equal(s[:, 0], [1, 0, 0, 1])


@pytest.mark.parametrize("neuron, x, args", [
    (ref.soft_reset_lif, 2.0, (0.5, 1.0)),  # V = (1 - a) x = 1.0
    (ref.subtractive_lif, 1.0, (0.5, 1.0)),  # U = x
    (ref.hard_reset_lif, 0.8, (2.0, 0.4)),  # H = x / tau = 0.4
    (ref.stbp_lif, 0.4, (0.25, 0.4)),  # U = x
])
def test_a_membrane_exactly_at_the_threshold_does_not_spike_nor_reset(neuron, x, args):
    """H(0) = 0 for every kind: a membrane at the threshold neither spikes nor resets;
    one ulp above it does."""
    v_th = args[1]
    s, m = neuron(col(x, 0.0), *args)
    assert m[0, 0] == v_th and s[:, 0].tolist() == [0, 0]
    decay = {ref.soft_reset_lif: 0.5, ref.subtractive_lif: 0.5, ref.hard_reset_lif: 0.5, ref.stbp_lif: 0.25}[neuron]
    assert m[1, 0] == pytest.approx(decay * v_th, rel=1e-15)  # kept, decayed: no reset took any of it
    s, m = neuron(col(np.nextafter(x, 2 * x), 0.0), *args)
    assert m[0, 0] > v_th and s[0, 0] == 1 and m[1, 0] < decay * v_th  # above: a spike, and a reset


def test_hard_reset_lif_by_hand():
    s, h = ref.hard_reset_lif(col(3.0, 3.0, 3.0), tau=2.0, v_th=1.0)
    # t1: H = 0 + (3 - 0)/2 = 1.5 -> spike, V = 0
    # t2: H = 1.5 again -> spike, V = 0
    np.testing.assert_allclose(h[:, 0], [1.5, 1.5, 1.5])
    np.testing.assert_array_equal(s[:, 0], [1, 1, 1])
    s, h = ref.hard_reset_lif(col(1.0, 1.0, 1.0), tau=2.0, v_th=0.7)
    # t1: H = 0.5; t2: H = 0.5 + 0.25 = 0.75 -> spike; t3: H = 0.5
    np.testing.assert_allclose(h[:, 0], [0.5, 0.75, 0.5])
    np.testing.assert_array_equal(s[:, 0], [0, 1, 0])


def test_stbp_neuron_multiplicative_reset_by_hand():
    s, u = ref.stbp_lif(col(0.3, 0.3, 0.5, 0.1), tau=0.25, v_th=0.4)
    # t1: U = 0.3; t2: U = 0.075 + 0.3 = 0.375; t3: 0.09375 + 0.5 = 0.59375 -> spike
    # t4: U = 0.25 * 0.59375 * 0 + 0.1 = 0.1
    np.testing.assert_allclose(u[:, 0], [0.3, 0.375, 0.59375, 0.1])
    np.testing.assert_array_equal(s[:, 0], [0, 0, 1, 0])


def test_conv2d_matches_a_direct_sum():
    gen = np.random.default_rng(0)
    x = gen.standard_normal((2, 3, 6, 6))
    w = gen.standard_normal((4, 3, 3, 3))
    for stride in (1, 2):
        out = ref.conv2d(x, w, stride, 1)
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        size = (6 - 1) // stride + 1
        assert out.shape == (2, 4, size, size)
        for n, o, i, j in [(0, 0, 0, 0), (1, 3, size - 1, size - 1), (1, 2, 1, 2)]:
            patch = xp[n, :, i * stride:i * stride + 3, j * stride:j * stride + 3]
            assert out[n, o, i, j] == pytest.approx(float((patch * w[o]).sum()))


def test_tdbn_by_hand():
    x = np.array([1.0, 3.0, 5.0, 7.0]).reshape(2, 2, 1, 1, 1)  # T=2, B=2, C=1, 1x1
    w = {"bn.weight": np.array([2.0]), "bn.bias": np.array([0.5]),
         "bn.running_mean": np.array([1.0]), "bn.running_var": np.array([4.0])}
    y, mean, var = ref.tdbn(x, w, "bn", alpha=0.5, v_th=0.4, eps=0.0, batch_statistics=True)
    assert mean[0] == 4.0 and var[0] == 5.0  # biased variance over all T*B*H*W values
    np.testing.assert_allclose(y.ravel(), 2.0 * 0.5 * 0.4 * (np.array([1, 3, 5, 7]) - 4) / math.sqrt(5) + 0.5)
    y, _, _ = ref.tdbn(x, w, "bn", alpha=0.5, v_th=0.4, eps=0.0, batch_statistics=False)
    np.testing.assert_allclose(y.ravel(), 0.4 * (np.array([1, 3, 5, 7]) - 1) / 2 + 0.5)
    rm, rv = ref.updated_running_stats(np.array([1.0]), np.array([4.0]), mean, var, n=4, momentum=0.1)
    assert rm[0] == pytest.approx(0.9 * 1 + 0.1 * 4) and rv[0] == pytest.approx(0.9 * 4 + 0.1 * 5 * 4 / 3)


def test_losses_by_hand():
    logits = np.array([[0.0, math.log(3.0)]])
    assert ref.cross_entropy(logits, np.array([1])) == pytest.approx(-math.log(0.75))
    poisson = get_spec("fc_mnist_poisson")
    spikes = np.zeros((4, 1, 10))
    spikes[:2, 0, 3] = 1  # rate 0.5 on class 3
    loss, scores = ref.loss_and_scores(poisson, spikes, spikes, np.array([3]))
    assert loss == pytest.approx(0.25 / 10) and scores[0, 3] == 2
    fc = get_spec("fc_mnist")
    u = np.zeros((3, 1, 10))
    loss, _ = ref.loss_and_scores(fc, u, np.zeros_like(u), np.array([0]))
    assert loss == pytest.approx(3 * math.log(10))


def test_dsrn_forward_shapes_and_running_stats():
    spec = get_spec("dsrn_tdbn", T=2, batch_size=3, width=1 / 16)
    w = initial_weights(spec)
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    out = ref.forward(spec, w, Batch(x, np.array([0, 1, 2]), static=True))
    assert [out.spikes[l.name].shape[2:] for l in spec.layers()] == [l.shape for l in spec.layers()]
    assert out.readout.shape == (2, 3, 10) and out.scores.shape == (3, 10)
    assert set(out.running) == {k for k in w if k.endswith(("running_mean", "running_var"))}
    # a static image is fed at every step: the stem's input current is the same at t=0 and t=1
    first = out.membranes["stem.lif"][0]
    second_input = out.membranes["stem.lif"][1] - spec.tau * first * (1 - out.spikes["stem.lif"][0])
    np.testing.assert_allclose(first, second_input, atol=1e-12)
