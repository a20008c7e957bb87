"""The Norse backend: the Norse behaviours the backend relies on, works around or extends
(every custom piece of its capability table is pinned here; parity, the end-to-end run against
stbp's and the state reset at every forward: tests/test_backend_contract.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
norse = pytest.importorskip("norse")

import norse.torch as nt  # noqa: E402
from norse.torch.functional.lif_box import lif_box_feed_forward_step  # noqa: E402
from norse.torch.functional.reset import reset_subtract, reset_value  # noqa: E402
from norse.torch.functional.threshold import threshold  # noqa: E402
from norse.torch.module.snn import SNN  # noqa: E402

from backends.norse import neurons  # noqa: E402
from backends.norse.backend import NorseBackend  # noqa: E402
from backends.stbp import neurons as stbp_neurons  # noqa: E402
from backends.stbp.backend import STBPBackend  # noqa: E402
from tasks import reference, reference_grad  # noqa: E402
from tasks.parity import compare_forward, parity_case  # noqa: E402

TASKS = ["synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn", "lif_layer"]
X = [-1.2, -0.5, -0.25, 0.0, 0.2, 0.49, 0.75, 1.5]
F64 = torch.float64


def grad_of(fn, x, dtype=F64):
    x = torch.tensor(x, dtype=dtype, requires_grad=True)
    y = fn(x)
    y.sum().backward()
    return y.detach(), x.grad


def state(x):
    return nt.LIFBoxFeedForwardState(v=torch.zeros_like(x[0]))


# ------------------------------------------------------------------ parity (the case itself: tests/test_backend_contract.py)
def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_dsrn_parity_with_the_reference_and_both_surrogate_centres():
    """dsrn_tdbn (its full 20-step parity run is python -m tasks.parity's): forward in
    both tdBN modes, gradients against the NumPy BPTT, two Adam steps, and the
    window centred on zero against stbp's."""
    case = parity_case("dsrn_tdbn")
    backend = NorseBackend(case.spec, case.weights, precision="fp64")
    mismatches, compared, membrane = compare_forward(case, backend)
    assert mismatches == 0 and compared > 0 and membrane < 1e-12
    got = backend.gradients(case.batches[0])
    want = reference_grad.gradients(case.spec, case.weights, case.batches[0])
    assert max(_rel(got[k], want[k]) for k in want) < 1e-10
    losses = [backend.train_step(b) for b in case.batches[:2]]
    np.testing.assert_allclose(losses, reference_grad.loss_curve(case.spec, case.weights, case.batches[:2]),
                               rtol=1e-10)
    spec = case.spec.with_overrides(surrogate_center="zero")
    got = NorseBackend(spec, case.weights, precision="fp64").gradients(case.batches[0])
    zero = STBPBackend(spec, case.weights, precision="fp64").gradients(case.batches[0])
    assert max(_rel(got[k], zero[k]) for k in zero) < 1e-10
    assert any(not np.allclose(zero[n], want[n]) for n in want)  # the setting is not a no-op


# ------------------------------------------------------------------ what a run records
def test_versions_name_norse():
    assert NorseBackend.framework_versions()["norse"] == norse.__version__


# ------------------------------------------------------------------ what the network is made of
def test_every_spiking_layer_is_a_norse_lifbox_cell_without_parameters():
    case = parity_case("dsrn_tdbn")
    backend = NorseBackend(case.spec, case.weights, precision="fp64")
    layers = [m for m in backend.model.modules() if isinstance(m, neurons.LIFBoxLayer)]
    assert len(layers) == 19
    for layer in layers:
        assert isinstance(layer.cell, nt.LIFBoxCell) and isinstance(layer.cell.p, nt.LIFBoxParameters)
        assert not list(layer.parameters()) and not list(layer.buffers())
        # Python-float constants: exact in float64, no tensor to move or cast
        assert all(isinstance(getattr(layer.cell.p, f), float) for f in ("tau_mem_inv", "v_th", "v_leak", "v_reset"))
    # the two tasks Norse's own surrogates cover run Norse's own step function
    for task in ("synthetic", "fc_mnist_poisson", "lif_layer"):
        c = parity_case(task)
        model = NorseBackend(c.spec, c.weights).model
        cells = [m.cell for m in model.modules() if isinstance(m, neurons.LIFBoxLayer)]
        assert cells and all(type(cell) is nt.LIFBoxCell and cell.activation is lif_box_feed_forward_step
                             for cell in cells)


def test_norse_ships_no_multi_step_lifbox_and_its_snn_wrapper_records_post_reset_states():
    """Why each layer loops over T itself: there is no LIFBox SNN module, and the
    generic SNN wrapper's recorded states are after the reset (0 at a spike), not
    the membrane compared with the threshold."""
    assert not hasattr(nt, "LIFBox")
    p = nt.LIFBoxParameters(tau_mem_inv=0.5, v_leak=0.0, v_th=1.0, v_reset=0.0, method="tanh", alpha=2.0)
    x = torch.tensor([[3.0], [0.5], [3.0]], dtype=F64)
    snn = SNN(lif_box_feed_forward_step, None, p, dt=1.0, record_states=True)
    z, states = snn(x, state(x))
    layer = neurons.hard_reset_lif(2.0, 1.0, 4.0)
    s, h = layer(x, record=True)
    torch.testing.assert_close(z, s, rtol=0, atol=0)
    assert z[0, 0] == 1 and states.v[0, 0] == 0.0 and h[0, 0] == 1.5


# ------------------------------------------------------------------ neurons
def test_hard_reset_neuron_is_norses_reset_value_with_the_spike_gradient():
    """fc_mnist_poisson / lif_layer: H = V + (X - V)/tau, V = H (1 - S), gradient through S;
    X = 2 at tau = 2 gives H = V_th exactly: no spike (strict threshold)."""
    x = torch.tensor([[150.0, 2.0], [20.0, 0.0], [50.0, 2.0]], dtype=F64, requires_grad=True)
    layer = neurons.hard_reset_lif(100.0, 1.0, 4.0)
    assert layer.cell.p.reset_method.reset is reset_value
    s, h = layer(x, record=True)
    want_s, want_h = reference.hard_reset_lif(x.detach().numpy(), 100.0, 1.0)
    np.testing.assert_array_equal(s.detach().numpy(), want_s)
    np.testing.assert_allclose(h.detach().numpy(), want_h, rtol=1e-15, atol=0)
    (g,) = torch.autograd.grad(h[1].sum(), x)
    s_ref, h_ref = stbp_neurons.hard_reset_lif(x, 100.0, 1.0, 4.0, record=True)
    (g_ref,) = torch.autograd.grad(h_ref[1].sum(), x)
    assert s[0, 0] == 1.0 and g[0, 0] != 0  # the reset's gradient reaches X[1]
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=0)
    s2, h2 = neurons.hard_reset_lif(2.0, 1.0, 4.0)(torch.full((1, 1), 2.0, dtype=F64), record=True)
    assert h2.item() == 1.0 and s2.item() == 0.0


def _soft_reset_current():
    # a current that drives V above 2 V_th at a spike
    return torch.tensor([[60.0], [0.0], [0.0], [30.0], [0.0], [0.0]], dtype=F64), math.exp(-1 / 10), math.exp(-1 / 20)


def test_soft_reset_neuron_is_norses_reset_subtract_fed_the_exp_filter():
    """synthetic: I from exp_filter_step; V = a_m (V - V_th S) + (1 - a_m) I with
    Norse's reset_subtract (one V_th per spike, also beyond 2 V_th) and the spike's
    gradient kept in the reset."""
    current, a_s, a_m = _soft_reset_current()
    drive = neurons.ExpFilterSynapse(a_s)(current)
    np.testing.assert_allclose(drive.numpy(), reference.exponential_synapse(current.numpy(), a_s), rtol=1e-15)
    layer = neurons.soft_reset_lif(a_m, 1.0, 0.3, 1.0)
    assert layer.cell.p.reset_method.reset is reset_subtract and layer.cell.p.method == "triangle"
    s, v = layer(drive, record=True)
    want_s, want_v = reference.soft_reset_lif(drive.numpy(), a_m, 1.0)
    assert want_v.max() > 2.0 and want_s.sum() >= 2
    np.testing.assert_array_equal(s.numpy(), want_s)
    np.testing.assert_allclose(v.numpy(), want_v, rtol=1e-14, atol=1e-14)
    # gradient through the reset (near-threshold current so the surrogate is non-zero)
    small = (current * 0.03).requires_grad_(True)
    _, v = layer(neurons.ExpFilterSynapse(a_s)(small), record=True)
    (g,) = torch.autograd.grad(v[-1].sum(), small)
    _, v_ref = stbp_neurons.soft_reset_lif(stbp_neurons.exponential_synapse(small, a_s), a_m, 1.0, 0.3, 1.0, True)
    (g_ref,) = torch.autograd.grad(v_ref[-1].sum(), small)
    assert torch.count_nonzero(g).item() > 0
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-15)


def test_fc_mnist_reset_is_the_custom_detached_subtract():
    """fc_mnist: U = beta U + X - V_th H(U[t-1] - V_th), detached.  Norse's reset_subtract
    as it stands (V - V_th S before the next decay, gradient kept) subtracts beta V_th
    instead: (1 - beta) V_th = 0.5 too little per spike at beta = 0.5."""
    beta = 0.5
    inp = torch.tensor([[1.0], [0.6], [1.0], [0.0], [1.5], [0.2]], dtype=F64, requires_grad=True)
    layer = neurons.subtractive_lif(beta, 1.0, 2.0)
    s, u = layer(inp, record=True)
    want_s, want_u = reference.subtractive_lif(inp.detach().numpy(), beta, 1.0)
    assert want_s.sum() >= 2 and u[0, 0].item() == pytest.approx(1.0) and s[0, 0].item() == 0.0
    np.testing.assert_array_equal(s.detach().numpy(), want_s)
    np.testing.assert_allclose(u.detach().numpy(), want_u, rtol=1e-14, atol=1e-15)
    # gradients equal the readable reference's (reset detached)
    (g,) = torch.autograd.grad(s[-1].sum() + u.sum(), inp)
    s_ref, u_ref = stbp_neurons.subtractive_lif(inp, beta, 1.0, 2.0, record=True)
    (g_ref,) = torch.autograd.grad(s_ref[-1].sum() + u_ref.sum(), inp)
    torch.testing.assert_close(g, g_ref, rtol=1e-13, atol=1e-15)
    # Norse's own reset_subtract: off by (1 - beta) V_th after each spike
    stock = neurons.LIFBoxLayer(layer.cell.p._replace(reset_method=reset_subtract), input_divisor=1 - beta,
                                spike=neurons.atan(2.0))
    _, u_stock = stock(inp.detach(), record=True)
    first = int(np.argmax(want_s[:, 0]))
    assert u_stock[first + 1, 0].item() - want_u[first + 1, 0] == pytest.approx((1 - beta) * 1.0, rel=1e-12)


def test_stbp_neuron_is_norses_reset_value_with_the_spike_gradient():
    inp = torch.tensor([[0.6], [0.5], [0.1]], dtype=F64, requires_grad=True)
    layer = neurons.stbp_lif(0.25, 0.4, 0.5, 0.0)
    assert layer.cell.p.reset_method.reset is reset_value
    s, u = layer(inp, record=True)
    (g,) = torch.autograd.grad(u[1].sum(), inp)
    # U2 = 0.25 U1 (1 - S1) + X2 with S1's surrogate 1 inside the window
    assert g[0, 0].item() == pytest.approx(-0.25 * 0.6 * 1.0)
    s_ref, u_ref = stbp_neurons.stbp_lif(inp, 0.25, 0.4, 0.5, 0.0, record=True)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=0)
    torch.testing.assert_close(u, u_ref, rtol=1e-15, atol=1e-16)


def test_static_input_equals_the_same_input_at_every_step():
    x = torch.rand(3, 5, dtype=F64, generator=torch.Generator().manual_seed(1)) * 0.6
    layer = neurons.stbp_lif(0.25, 0.4, 0.5, 0.0)
    s, u = layer(x, record=True, steps=4)
    assert 0 < s.mean() < 1 and (s[1:] < s[:-1]).any()  # spikes, and resets after them (under 0.2: none)
    s2, u2 = layer(x.expand(4, 3, 5), record=True)
    torch.testing.assert_close(s, s2, rtol=0, atol=0)
    torch.testing.assert_close(u, u2, rtol=0, atol=0)


def test_the_membrane_trace_is_dropped_after_every_forward():
    layer = neurons.hard_reset_lif(2.0, 1.0, 4.0)
    x = torch.rand(4, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(2)) * 3
    _, none = layer(x, record=False)
    assert none is None and layer.traced.trace is None
    layer(x, record=True)
    assert layer.traced.trace is None
    step, calls = layer.cell.activation, []

    def failing(*args):  # a step that fails half-way through the loop
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return step(*args)

    layer.cell.activation = failing
    with pytest.raises(RuntimeError):
        layer(x, record=True)
    assert layer.traced.trace is None


def test_float64_stays_float64_and_float32_float32():
    for dtype in (torch.float64, torch.float32):
        x = torch.rand(3, 2, 4, dtype=dtype, generator=torch.Generator().manual_seed(3)) * 3
        for layer in (neurons.hard_reset_lif(2.0, 1.0, 4.0), neurons.subtractive_lif(0.95, 1.0, 2.0),
                      neurons.soft_reset_lif(0.9, 1.0, 0.3, 1.0), neurons.stbp_lif(0.25, 0.4, 0.5, 0.0)):
            s, u = layer(x, record=True)
            assert s.dtype == dtype and u.dtype == dtype
        assert neurons.ExpFilterSynapse(0.9)(x).dtype == dtype


def test_the_neurons_refuse_parameters_norses_surrogates_cannot_express():
    with pytest.raises(ValueError):
        neurons.hard_reset_lif(2.0, 1.0, 3.0)  # tanh is the sigmoid surrogate of slope 4 only
    with pytest.raises(ValueError):
        neurons.soft_reset_lif(0.9, 2.0, 0.3, 1.0)  # Norse's triangle is on V - V_th, width 1
    with pytest.raises(ValueError):
        neurons.soft_reset_lif(0.9, 1.0, 0.3, 0.5)


# ------------------------------------------------------------------ surrogates
def test_norses_tanh_method_is_the_sigmoid_surrogate():
    """1 - tanh(2x)^2 = 4 s(4x) (1 - s(4x)): the same function, to rounding in float64."""
    x = np.linspace(-6, 6, 241)
    s, g = grad_of(lambda t: threshold(t, "tanh", 2.0), x)
    sig = 1 / (1 + np.exp(-4 * x))
    np.testing.assert_array_equal(s.numpy(), (x > 0).astype(float))
    np.testing.assert_allclose(g.numpy(), 4 * sig * (1 - sig), rtol=1e-11, atol=1e-15)


def test_norses_tanh_surrogate_in_float32_is_never_nan_and_off_by_under_1e7():
    """The capability table's statement: in float32, 1 - tanh(2x)^2 is within 1e-7 of
    4 s(4x) (1 - s(4x)) everywhere (float32 rounding, as of s (1 - s) itself), rounds
    to 0 beyond |x| > 4.51, where the sigmoid form is below 6e-8, and is never NaN."""
    x = torch.linspace(-40, 40, 16001)
    _, g = grad_of(lambda t: threshold(t, "tanh", 2.0), x.numpy(), dtype=torch.float32)
    exact = 4 * torch.sigmoid(4 * x.double()) * torch.sigmoid(-4 * x.double())
    assert torch.isfinite(g).all()
    assert (g.double() - exact).abs().max() < 1e-7
    far = x.abs() > 4.51
    assert (g[far] == 0).all() and exact[far].max() < 6e-8
    assert (g[x.abs() < 4.4] > 0).all()


def test_norses_triangle_method_is_the_synthetic_surrogate_at_unit_threshold():
    x = np.array(X)
    _, g = grad_of(lambda t: threshold(t, "triangle", 0.3), X)
    np.testing.assert_allclose(g.numpy(), 0.3 * np.maximum(0, 1 - np.abs(x)), rtol=1e-15)


def test_custom_surrogates_are_the_specified_formulas():
    x = np.array(X)
    s, g = grad_of(neurons.atan(2.0), X)
    np.testing.assert_array_equal(s.numpy(), (x > 0).astype(float))
    np.testing.assert_allclose(g.numpy(), 1.0 / (1.0 + (math.pi * x) ** 2), rtol=1e-14)
    s, g = grad_of(neurons.rectangle(0.5, 0.0), X)
    np.testing.assert_array_equal(s.numpy(), (x > 0).astype(float))
    np.testing.assert_array_equal(g.numpy(), (np.abs(x) < 0.5) / 1.0)
    np.testing.assert_array_equal(grad_of(neurons.rectangle(0.5, -0.4), X)[1].numpy(), (np.abs(x + 0.4) < 0.5) / 1.0)


def test_norses_threshold_has_no_arctangent_or_rectangle():
    """Why SurrogateLIFBoxCell exists: Norse's threshold() knows a closed list of methods."""
    x = torch.tensor(X)
    for method in ("atan", "rectangle"):
        with pytest.raises(ValueError):
            threshold(x, method, 2.0)


def test_the_custom_surrogate_cell_is_norses_lifbox_step():
    """With a Norse threshold as its spike function, SurrogateLIFBoxCell's step equals
    Norse's lif_box_feed_forward_step bit for bit, values and gradients."""
    p = nt.LIFBoxParameters(tau_mem_inv=0.05, v_leak=0.0, v_th=1.0, v_reset=0.0, method="tanh", alpha=2.0,
                            reset_method=neurons.detached_subtract(0.95))
    ours = neurons.SurrogateLIFBoxCell(p, lambda v: threshold(v, "tanh", 2.0))
    theirs = nt.LIFBoxCell(p, dt=1.0)
    x = (torch.rand(6, 3, 4, dtype=F64, generator=torch.Generator().manual_seed(4)) * 60).requires_grad_(True)
    results = []
    for cell in (ours, theirs):
        st, out = state(x), []
        for x_t in x.unbind(0):
            z, st = cell(x_t, st)
            out.append(z + st.v)
        y = torch.stack(out)
        (g,) = torch.autograd.grad(y.sum(), x)
        results.append((y, g))
    assert results[0][0].sum() > 0
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=0)
