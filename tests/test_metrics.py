"""tasks.metrics: accuracy with ties, firing rates and the accumulator by hand, and what mutation
testing found untested (docs/testing.md): sums kept in float64, one sample, the
accumulator's spike counts, rates and activity."""

import numpy as np
import pytest

from tasks.metrics import EvalAccumulator, accuracy_with_ties, firing_rates
from tasks.specs import get_spec

BIG = np.float32(2**24)  # float32 cannot add 1 to it: a sum kept in float32 loses the 1


def test_one_sample_is_scored_and_none_is_refused():
    assert accuracy_with_ties(np.array([[0.2, 0.7]]), np.array([1]))["accuracy"] == 1.0
    with pytest.raises(ValueError, match="^no samples to score$"):
        accuracy_with_ties(np.zeros((0, 2)), np.zeros(0, int))


def test_firing_rates_sum_float32_counts_in_float64():
    spec = get_spec("lif_layer", T=1, neurons=2)
    rates = firing_rates(spec, {"lif": np.array([BIG, 1.0], dtype=np.float32)}, samples=1)
    assert rates["overall"] * 2 == 2**24 + 1 and rates["layers"]["lif"] == rates["overall"] == rates["mean"]


def _accumulated(*counts):
    spec = get_spec("lif_layer", T=1, neurons=2)
    acc = EvalAccumulator(spec)
    for c in counts:
        acc.add(0.5, np.array([[1.0, 0.0]]), np.array([0]), {"lif": np.asarray(c)})
    return acc


def test_the_accumulator_adds_spike_counts_in_float64():
    acc = _accumulated(np.array([BIG, 0], np.float32), np.array([1, 3], np.float32))
    assert acc.spike_counts["lif"].dtype == np.float64 and acc.spike_counts["lif"].tolist() == [2**24 + 1, 3]
    assert acc.samples == 2 and acc.loss == 0.5


def test_the_summary_reports_the_firing_rates():
    spec = get_spec("fc_mnist", T=2)
    acc = EvalAccumulator(spec)
    acc.add(1.0, np.eye(10)[:2], np.array([0, 3]), {"lif1": np.full(1000, 1.0), "lif2": np.full(10, 4.0)})
    s = acc.summary()
    # per layer: lif1 1000 spikes over 1000 x 2 x 2 slots = 0.25, lif2 40 over 40 = 1.0
    assert s["firing_rate_mean"] == pytest.approx(0.625) and s["firing_rate_overall"] == pytest.approx(1040 / 4040)
    assert s["accuracy"] == 0.5 and acc.layer_rates() == {"lif1": pytest.approx(0.25), "lif2": pytest.approx(1.0)}


def test_activity_counts_synaptic_operations_from_the_accumulated_inputs_and_spikes():
    """test_neuro's hand-worked count, through the accumulator: input counts added in two
    parts, spikes of two samples (784 -> 196 -> 10, spikes in: accumulates only)."""
    from tasks import neuro

    spec = get_spec("fc_mnist_poisson", T=2)
    acc = EvalAccumulator(spec)
    first, second = np.zeros(784), np.zeros(784)
    first[:2], second[1] = [1, 1], 1  # 3 input spikes: 1 at 0, 2 at 1
    acc.add_inputs(first)
    acc.add_inputs(second)
    lif1 = np.zeros(196)
    lif1[5] = 4
    acc.add(0.0, np.eye(10)[:2], np.array([0, 1]), {"lif1": lif1, "lif2": np.zeros(10)})
    got = acc.activity()
    assert acc.input_counts.tolist()[:3] == [1, 2, 0]
    assert got["synops_ac"] == pytest.approx((3 * 196 + 4 * 10) / 2) and got["synops_mac"] == 0
    assert got["activation_sparsity"] == pytest.approx(1 - 4 / ((196 + 10) * 2 * 2))
    assert got["dense_mac"] == neuro.dense_operations(spec) > 0
    assert got["per_layer"] == neuro.synaptic_operations(spec, acc.spike_counts, acc.input_counts, 2)["per_layer"]


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
