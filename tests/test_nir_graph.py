"""tasks/nir_graph.py: the float64 reference of a NIR graph (convolution, pooling, CubaLIF) and its
graph errors."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import reference
from tasks.nir_graph import Graph, GraphError, Node, simulate

nir = pytest.importorskip("nir")
from tasks import nir as tasks_nir  # noqa: E402  (needs the nir package)


def conv_graph():
    g = tasks_nir.conv_example()
    return g, g.nodes["conv"].weight, g.nodes["conv"].bias


def test_conv_pool_reference_against_a_direct_loop():
    g, w, b = conv_graph()
    x = (np.random.default_rng(3).random((4, 2, 1, 6, 6)) < 0.5).astype(float)
    neutral = tasks_nir.neutral(g)
    got = simulate(neutral, x, tasks_nir.DT)
    # the convolution, written out: zero padding 1, cross-correlation
    xp = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((4, 2, 2, 6, 6))
    for o in range(2):
        for i in range(6):
            for j in range(6):
                conv[:, :, o, i, j] = (xp[:, :, 0, i:i + 3, j:j + 3] * w[o, 0]).sum(axis=(-2, -1)) + b[o]
    s1, v1 = reference.hard_reset_lif(conv, tau=2.0, v_th=1.0)
    np.testing.assert_allclose(got.membranes["lif1"], v1, atol=1e-12)
    pooled = s1.reshape(4, 2, 2, 3, 2, 3, 2).sum(axis=(-3, -1))
    s2, v2 = reference.hard_reset_lif(pooled, tau=2.0, v_th=1.0)
    assert s1.sum() > 0 and s2.sum() > 0
    np.testing.assert_array_equal(got.outputs["output"], s2)


def test_avgpool_is_the_sum_over_the_window_size_and_cubalif_integrates_its_current_first():
    g = Graph({"in": Node("Input", {"shape": (1, 2, 2)}),
               "avg": Node("AvgPool2d", {"kernel_size": 2, "stride": 2}),
               "flat": Node("Flatten", {"start_dim": 0}),
               "cuba": Node("CubaLIF", {"tau_syn": 2.0, "tau_mem": 4.0, "r": 1.0, "v_threshold": 0.1}),
               "out": Node("Output", {})},
              [("in", "avg"), ("avg", "flat"), ("flat", "cuba"), ("cuba", "out")])
    x = np.ones((2, 1, 1, 2, 2))
    got = simulate(g, x, dt=1.0)
    # step 1: I = 0 + (1 - 0) / 2 = 0.5; v = 0 + (0 - 0 + 0.5) / 4 = 0.125 > 0.1: spike, reset to 0
    np.testing.assert_allclose(got.membranes["cuba"][0], [[0.125]])
    np.testing.assert_array_equal(got.outputs["out"][:, 0, 0], [1.0, 1.0])


def test_a_cycle_and_an_unchained_shape_are_graph_errors():
    cyc = Graph({"in": Node("Input", {"shape": (2,)}), "a": Node("Scale", {"scale": 1.0}),
                 "b": Node("LI", {"tau": 1.0, "r": 1.0}), "out": Node("Output", {})},
                [("in", "a"), ("a", "b"), ("b", "a"), ("b", "out")])
    with pytest.raises(GraphError, match="cycle through a, b"):
        simulate(cyc, np.zeros((1, 1, 2)), 1.0)
    bad = Graph({"in": Node("Input", {"shape": (3,)}), "fc": Node("Linear", {"weight": np.ones((2, 4))}),
                 "out": Node("Output", {})}, [("in", "fc"), ("fc", "out")])
    with pytest.raises(GraphError, match=r"node fc \(Linear\): Linear with weight \[2, 4\] gets a sample of shape \[3\]"):
        simulate(bad, np.zeros((1, 1, 3)), 1.0)
