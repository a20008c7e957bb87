"""tasks/neuro.py: NeuroBench-style activity counts, by hand."""

import numpy as np
import pytest

from tasks import neuro
from tasks.data import Batch
from tasks.specs import SynapseInfo, get_spec


def _valid_taps(out_index, size, kernel, stride, padding):
    start = out_index * stride - padding
    return sum(1 for k in range(kernel) if 0 <= start + k < size)


def test_coverage_counts_windows_at_the_borders():
    # 3x3 kernel, padding 1, stride 1 over 4 positions: edges are read by 2 windows, inside by 3
    np.testing.assert_array_equal(neuro.coverage(4, 4, 3, 1, 1), [2, 3, 3, 2])
    # stride 2 over 4 -> 2 outputs at starts -1 and 1: index 0 read once, 1 twice, 2 once, 3 once
    np.testing.assert_array_equal(neuro.coverage(4, 2, 3, 2, 1), [1, 2, 1, 1])
    # 1x1, stride 2, no padding: only even positions are read
    np.testing.assert_array_equal(neuro.coverage(4, 2, 1, 2, 0), [1, 0, 1, 0])


def test_conv_fan_out_times_counts_is_the_number_of_accumulates():
    syn = SynapseInfo("c", "conv", "a", (2, 4, 4), (5, 4, 4), 3, 1, 1)
    fan = neuro.fan_out(syn)
    assert fan.shape == (2, 4, 4) and fan[0, 0, 0] == 5 * 2 * 2 and fan[1, 1, 2] == 5 * 3 * 3
    # brute force: one spike at (c, i, j) reaches every output whose 3x3 window covers it
    for (c, i, j) in [(0, 0, 0), (1, 1, 2), (0, 3, 1)]:
        reached = sum(1 for oi in range(4) for oj in range(4) if abs(oi - i) <= 1 and abs(oj - j) <= 1)
        assert fan[c, i, j] == 5 * reached


def test_synaptic_operations_by_hand():
    spec = get_spec("fc_mnist_poisson", T=2)  # 784 -> 196 -> 10, spikes in, spikes between
    inputs = np.zeros(784)
    inputs[:3] = [1, 2, 0]  # 3 input spikes in total over T and 2 samples
    counts = {"lif1": np.zeros(196), "lif2": np.zeros(10)}
    counts["lif1"][5] = 4
    ops = neuro.synaptic_operations(spec, counts, inputs, samples=2)
    assert ops["ac"] == pytest.approx((3 * 196 + 4 * 10) / 2) and ops["mac"] == 0
    fc = get_spec("fc_mnist", T=3)  # real-valued input: multiply-accumulates
    ops = neuro.synaptic_operations(fc, {"lif1": np.zeros(1000), "lif2": np.zeros(10)}, np.full(784, 6.0), 2)
    assert ops["mac"] == pytest.approx(784 * 6 * 1000 / 2) and ops["ac"] == 0


def test_input_counts_of_static_and_time_varying_batches():
    spec = get_spec("fc_mnist", T=5)
    x = np.zeros((2, 784), dtype=np.float32)
    x[0, :10] = 0.5
    assert neuro.input_counts(spec, Batch(x, np.zeros(2, int), True))[:10].tolist() == [5.0] * 10
    xt = np.zeros((5, 2, 784), dtype=np.float32)
    xt[1, 0, 3] = xt[2, 1, 3] = 1
    assert neuro.input_counts(spec, Batch(xt, np.zeros(2, int), False))[3] == 2


def test_dsrn_dense_count_counts_every_in_bounds_product():
    """Counted from the outputs' side (taps that land inside the image), unlike fan_out."""
    spec = get_spec("dsrn_tdbn", width=1 / 16, T=3)
    expected = 0
    for s in spec.synapses():
        if s.kind == "linear":
            expected += s.in_shape[0] * s.out_shape[0]
            continue
        taps = sum(_valid_taps(oi, s.in_shape[1], s.kernel, s.stride, s.padding)
                   * _valid_taps(oj, s.in_shape[2], s.kernel, s.stride, s.padding)
                   for oi in range(s.out_shape[1]) for oj in range(s.out_shape[2]))
        expected += s.out_shape[0] * s.in_shape[0] * taps
    assert neuro.dense_operations(spec) == pytest.approx(3 * expected)
