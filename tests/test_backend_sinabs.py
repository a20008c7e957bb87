"""The Sinabs backend: the Sinabs behaviours the backend relies on or works around (each custom
piece against the specification, and Sinabs's own piece against the same case; parity, the
end-to-end run against stbp's and the state reset at every forward: tests/test_backend_contract.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sinabs = pytest.importorskip("sinabs")

import sinabs.activation as sa  # noqa: E402
import sinabs.layers as sl  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from backends.sinabs import networks, neurons  # noqa: E402
from backends.sinabs.backend import SinabsBackend  # noqa: E402
from backends.stbp import neurons as stbp_neurons  # noqa: E402
from backends.stbp.backend import STBPBackend  # noqa: E402
from tasks import reference  # noqa: E402
from tasks.data import Batch  # noqa: E402
from tasks.parity import compare_forward, parity_case  # noqa: E402
from tasks.specs import get_spec  # noqa: E402

FAST_TASKS = ["synthetic", "fc_mnist", "fc_mnist_poisson", "lif_layer"]
X = [-1.2, -0.5, -0.25, 0.0, 0.2, 0.49, 0.75, 1.5]


def f64(values, grad=False):
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def stock_lif(**kwargs):
    """A Sinabs LIF as Sinabs builds it, in float64 (its constants cast along)."""
    return sl.LIF(**kwargs).double()


def run_stock(layer, inputs):
    """Time-major inputs through a stock (batch-first) Sinabs layer from zero state."""
    layer.reset_states()
    return layer(inputs.transpose(0, 1)).transpose(0, 1)


# ------------------------------------------------------------------ parity (the case itself: tests/test_backend_contract.py)
def test_dsrn_tdbn_matches_the_reference_forward_and_stbps_gradients():
    """dsrn_tdbn in float64 (the NumPy BPTT of ``tasks.parity`` is slow: stbp's
    gradients and losses stand in for it here; ``python -m tasks.parity`` runs the
    full case), with the rectangular window on the threshold and on zero."""
    case = parity_case("dsrn_tdbn")
    backend = SinabsBackend(case.spec, case.weights, precision="fp64")
    mismatches, compared, membrane = compare_forward(case, backend)
    assert mismatches == 0 and compared > 0 and membrane < 1e-12
    grads = {}
    for center in ("threshold", "zero"):
        spec = case.spec.with_overrides(surrogate_center=center)
        got = SinabsBackend(spec, case.weights, precision="fp64").gradients(case.batches[0])
        want = grads[center] = STBPBackend(spec, case.weights, precision="fp64").gradients(case.batches[0])
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-11 * np.abs(want[name]).max(),
                                       err_msg=f"{center}: {name}")
    assert any(not np.allclose(grads["threshold"][n], grads["zero"][n]) for n in grads["zero"])  # not a no-op
    stbp = STBPBackend(case.spec, case.weights, precision="fp64")
    losses = [(backend.train_step(b), stbp.train_step(b)) for b in case.batches[:2]]
    np.testing.assert_allclose(*zip(*losses), rtol=1e-12)


# ------------------------------------------------------------------ what a run records
def test_versions_name_sinabs():
    assert SinabsBackend.framework_versions()["sinabs"] == sinabs.__version__


# ------------------------------------------------------------------ the Sinabs layers used
def test_every_neuron_is_a_sinabs_layer_with_no_parameter_of_its_own():
    case = parity_case("synthetic")
    backend = SinabsBackend(case.spec, case.weights, precision="fp64")
    layers = [m for m in backend.model.modules() if isinstance(m, sl.StatefulLayer)]
    assert sorted(type(m).__name__ for m in layers) == ["ExpLeak", "ExpLeak", "LIF"]
    assert sorted(n for n, _ in backend.model.named_parameters()) == sorted(case.weights)
    lif = backend.model.hidden_lif.neuron.lif
    assert lif.norm_input and lif.min_v_mem is None and lif.tau_syn is None and not lif.train_alphas
    assert isinstance(lif.reset_fn, sa.MembraneSubtract) and type(lif.reset_fn) is sa.MembraneSubtract
    assert lif.tau_mem.dtype == torch.float64 and lif.alpha_mem_calculated.item() == pytest.approx(math.exp(-1 / 20),
                                                                                                 rel=1e-15)
    # why the constants are swapped: stock Sinabs makes them float32 parameters, tau_mem trainable
    stock = sl.LIF(tau_mem=-1 / math.log(0.95))
    assert {n: p.requires_grad for n, p in stock.named_parameters()} == {"tau_mem": True, "spike_threshold": False}
    assert stock.tau_mem.dtype == torch.float32
    drift = abs(float(torch.exp(-1 / stock.tau_mem.detach().double())) - 0.95)
    assert 1e-10 < drift < 1e-9  # float32 tau: alpha off by 3e-10, beyond float64 parity's membrane bound
    ours = networks.subtractive(0.95, 1.0, 2.0).lif
    assert abs(float(ours.alpha_mem_calculated) - 0.95) < 1e-15
    # and no buffer: Sinabs takes every buffer of a layer for neuron state
    assert [n for n, _ in ours.named_buffers()] == ["v_mem"]


@pytest.mark.parametrize("task", ["synthetic", "fc_mnist"])
def test_nothing_of_the_last_forward_stays_in_the_layers(task):
    """Sinabs's layers hold no state after a forward and a train step (that every forward starts
    from zero: tests/test_backend_contract.py)."""
    case = parity_case(task)
    backend = SinabsBackend(case.spec, case.weights, precision="fp64")
    backend.evaluate(case.batches[0], record=True)
    backend.train_step(case.batches[1])
    for module in backend.model.modules():
        if isinstance(module, sl.StatefulLayer):
            assert not module.is_state_initialised()
            assert all(buf.numel() == 0 for buf in module.buffers())


def test_stock_sinabs_keeps_the_state_between_calls():
    """Why the glue clears the state: a stock layer continues from the last call, and on
    a smaller batch draws the state of random earlier samples."""
    layer = stock_lif(tau_mem=20.0, spike_fn=neurons.StrictSpike, record_states=True)
    x = torch.rand(4, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    layer(x)
    first = layer.recordings["v_mem"].clone()
    layer(x)
    assert (layer.recordings["v_mem"] - first).abs().min() > 0  # started from the last state
    layer(x[:2])
    assert (layer.recordings["v_mem"][:, 0] - first[:2, 0]).abs().max() > 0
    layer.reset_states()
    layer(x)
    torch.testing.assert_close(layer.recordings["v_mem"], first, rtol=0, atol=0)


# ------------------------------------------------------------------ spike_fn
def test_strict_spike_fires_above_the_threshold_only_and_keeps_the_dtype():
    v = f64([0.5, 1.0, 1.0 + 1e-12, 2.5])
    assert sa.SingleSpike.apply(v, 1.0, neurons.ArcTan(2.0)).tolist() == [0, 1, 1, 1]  # Sinabs: v >= V_th
    assert sa.SingleSpike.apply(v, 1.0, neurons.ArcTan(2.0)).dtype == torch.float32
    ours = neurons.StrictSpike.apply(v, 1.0, neurons.ArcTan(2.0))
    assert ours.tolist() == [0, 0, 1, 1] and ours.dtype == torch.float64
    assert neurons.StrictSpike.apply(v.float(), 1.0, neurons.ArcTan(2.0)).dtype == torch.float32
    # Sinabs's default MultiSpike emits floor(v / V_th) spikes
    assert sa.MultiSpike.apply(v, 1.0, neurons.ArcTan(2.0)).tolist() == [0, 1, 1, 2]
    # the backward pass is Sinabs's: grad * surrogate_grad_fn(v, V_th)
    for fn in (sa.SingleSpike, neurons.StrictSpike):
        x = f64(X, grad=True)
        fn.apply(x, 0.4, neurons.Rectangular(0.5, 0.0)).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), (np.abs(np.array(X) - 0.4) < 0.5) / 1.0)


def test_lif_layer_neuron_at_exactly_the_threshold():
    """X = 2 gives H = alpha 0 + (1 - alpha) 2 = V_th exactly at the first step: no spike."""
    spec = get_spec("lif_layer", neurons=8, T=5)
    backend = SinabsBackend(spec, {"fc.weight": np.eye(8)}, precision="fp64")
    lif = backend.model.lif.lif
    assert isinstance(lif, sl.LIF) and float(lif.alpha_mem_calculated) == pytest.approx(0.5, rel=1e-15)
    x = np.linspace(0.5, 4.0, 8)[None, None].repeat(5, axis=0).repeat(2, axis=1)
    out = backend.evaluate(Batch(x, np.zeros(2, np.int64), static=False), record=True)
    want_s, want_h = reference.hard_reset_lif(x, spec.tau, spec.v_th)
    assert want_h[0, 0, 3] == 1.0 and want_s[0, 0, 3] == 0.0 and 0 < want_s.sum() < want_s.size
    np.testing.assert_array_equal(out.spikes["lif"], want_s)
    np.testing.assert_allclose(out.membranes["lif"], want_h, rtol=1e-15, atol=0)


# ------------------------------------------------------------------ resets
def test_soft_reset_is_sinabs_membrane_subtract_with_the_spike_gradient():
    """synthetic: stock Sinabs (norm_input, MembraneSubtract), the membrane driven above 2 V_th."""
    current = torch.tensor([[60.0], [0.0], [0.0], [30.0], [0.0], [0.0]], dtype=torch.float64)
    a_s, a_m = math.exp(-1 / 10), math.exp(-1 / 20)
    drive = reference.exponential_synapse(current.numpy(), a_s)
    want_s, want_v = reference.soft_reset_lif(drive, a_m, 1.0)
    assert want_v.max() > 2.0 and want_s.sum() >= 2
    neuron = networks.soft(a_m, 1.0, 0.3, 1.0).double()
    s, v = neuron(torch.from_numpy(drive), True)
    np.testing.assert_array_equal(s.numpy(), want_s)
    np.testing.assert_allclose(v.numpy(), want_v, rtol=1e-14, atol=1e-14)
    # the gradient through the reset is kept, as the reference's
    drive = (torch.from_numpy(drive) * 0.03).requires_grad_(True)
    _, v = neuron(drive, True)
    (g,) = torch.autograd.grad(v[-1].sum(), drive)
    _, v_ref = stbp_neurons.soft_reset_lif(drive, a_m, 1.0, 0.3, 1.0, record=True)
    (g_ref,) = torch.autograd.grad(v_ref[-1].sum(), drive)
    torch.testing.assert_close(g, g_ref, rtol=1e-13, atol=1e-15)
    assert torch.count_nonzero(g).item() > 0


def test_delayed_subtract_is_fc_mnists_reset_and_sinabs_subtract_is_not():
    beta = 0.5
    inp = f64([[1.5], [0.2], [0.0], [1.0], [0.6]], grad=True)
    want_s, want_u = reference.subtractive_lif(inp.detach().numpy(), beta, 1.0)
    assert want_s.sum() >= 2
    s, u = networks.subtractive(beta, 1.0, 2.0).double()(inp, True)
    np.testing.assert_array_equal(s.detach().numpy(), want_s)
    np.testing.assert_allclose(u.detach().numpy(), want_u, rtol=1e-15, atol=1e-15)
    (g,) = torch.autograd.grad(s[2].sum() + u.sum(), inp)
    s_ref, u_ref = stbp_neurons.subtractive_lif(inp, beta, 1.0, 2.0, record=True)
    (g_ref,) = torch.autograd.grad(s_ref[2].sum() + u_ref.sum(), inp)
    torch.testing.assert_close(g, g_ref, rtol=1e-14, atol=1e-15)
    # stock MembraneSubtract: reset at once, decayed by beta at the next step (and not detached)
    stock = stock_lif(tau_mem=neurons.tau_of_decay(beta), norm_input=False, spike_fn=neurons.StrictSpike,
                      reset_fn=sa.MembraneSubtract(), record_states=True)
    s_stock = run_stock(stock, inp.detach())
    u_stock = stock.recordings["v_mem"].transpose(0, 1) + s_stock  # add back the reset to get the compared membrane
    # after the first spike (t = 0) the next membrane is off by (1 - beta) V_th
    assert float(u_stock[1, 0].detach() - want_u[1, 0]) == pytest.approx((1 - beta) * 1.0, rel=1e-6)  # float32 tau


def test_zero_reset_keeps_the_spike_gradient_where_membrane_reset_drops_it():
    # dsrn_tdbn: U = tau U (1 - S) + X; U2 depends on X1 through the reset: -tau U1 h(U1)
    inp = f64([[0.6], [0.5], [0.1]], grad=True)
    neuron = networks.stbp(0.25, 0.4, 0.5, 0.0).double()
    s, u = neuron(inp, True)
    (g,) = torch.autograd.grad(u[1].sum(), inp)
    assert g[0, 0].item() == pytest.approx(0.25 * (1.0 - 1.0) - 0.25 * 0.6 * 1.0)
    s_ref, u_ref = stbp_neurons.stbp_lif(inp, 0.25, 0.4, 0.5, 0.0, record=True)
    torch.testing.assert_close(u, u_ref, rtol=0, atol=0)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=0)
    # the reset itself, stock LIF with either reset_fn: v after the spike at t = 1
    grads = {}
    for reset in (neurons.ZeroResetWithGradient(), sa.MembraneReset()):
        stock = stock_lif(tau_mem=neurons.tau_of_decay(0.25), norm_input=False, spike_threshold=0.4,
                          spike_fn=neurons.StrictSpike, reset_fn=reset,
                          surrogate_grad_fn=neurons.Rectangular(0.5, 0.0), record_states=True)
        run_stock(stock, inp)
        v_after = stock.recordings["v_mem"][0, 0]
        assert v_after.item() == 0.0
        (grads[type(reset).__name__],) = torch.autograd.grad(v_after, inp)
    # ours: d(U1 (1 - S1))/dX1 = (1 - S1) - U1 h(U1) = -0.6; Sinabs's MembraneReset drops the second term
    assert grads["ZeroResetWithGradient"][0, 0].item() == pytest.approx(-0.6, rel=1e-12)
    assert grads["MembraneReset"].abs().max().item() == 0.0


def test_poisson_neuron_is_norm_input_with_alpha_one_minus_one_over_tau():
    inp = f64([[150.0], [20.0], [50.0], [0.0]], grad=True)
    s, h = networks.hard(100.0, 1.0, 4.0).double()(inp, True)
    s_ref, h_ref = stbp_neurons.hard_reset_lif(inp, 100.0, 1.0, 4.0, record=True)
    assert s[0, 0].item() == 1.0
    torch.testing.assert_close(h, h_ref, rtol=1e-15, atol=1e-15)
    (g,) = torch.autograd.grad(h[1].sum() + s.sum(), inp)
    (g_ref,) = torch.autograd.grad(h_ref[1].sum() + s_ref.sum(), inp)
    torch.testing.assert_close(g, g_ref, rtol=1e-13, atol=0)


def test_exp_leak_is_the_synapse_and_lif_tau_syn_is_not():
    x = f64([[1.0], [0.0], [2.0], [0.5]])
    a_s = math.exp(-1 / 10)
    want = reference.exponential_synapse(x.numpy(), a_s)
    np.testing.assert_allclose(neurons.SinabsSynapse(a_s).double()(x).numpy(), want, rtol=1e-15)
    # LIF(tau_syn): i_syn = a_s (i_syn + x), the spec's current times a_s
    stock = stock_lif(tau_mem=20.0, tau_syn=10.0, spike_fn=neurons.StrictSpike, record_states=True)
    run_stock(stock, x)
    i_syn = stock.recordings["i_syn"].detach().transpose(0, 1).numpy()
    np.testing.assert_allclose(i_syn, a_s * want, rtol=1e-6)  # float32 tau_syn
    assert np.abs(i_syn - want).max() > 0.09


def test_recorded_membrane_is_the_one_compared_not_sinabss_record():
    inp = f64([[1.5], [0.2], [0.0]])
    neuron = networks.stbp(0.25, 0.4, 0.5, 0.0).double()
    _, u = neuron(inp, True)
    np.testing.assert_array_equal(u.numpy(), reference.stbp_lif(inp.numpy(), 0.25, 0.4)[1])
    stock = stock_lif(tau_mem=neurons.tau_of_decay(0.25), norm_input=False, spike_threshold=0.4,
                      spike_fn=neurons.StrictSpike, reset_fn=neurons.ZeroResetWithGradient(), record_states=True)
    run_stock(stock, inp)
    assert stock.recordings["v_mem"][0, 0].item() == 0.0 and u[0, 0].item() == 1.5  # Sinabs keeps it after reset


# ------------------------------------------------------------------ surrogates
def _surrogate(fn, x, v_th):
    return fn(f64(x) + v_th, v_th).numpy()


def test_surrogates_are_the_specified_formulas():
    x = np.array(X)
    np.testing.assert_allclose(_surrogate(neurons.ArcTan(2.0), X, 1.0), 1 / (1 + (math.pi * x) ** 2), rtol=1e-14)
    sig = 1 / (1 + np.exp(-4 * x))
    np.testing.assert_allclose(_surrogate(neurons.Sigmoid(4.0), X, 1.0), 4 * sig * (1 - sig), rtol=1e-13)
    np.testing.assert_allclose(_surrogate(neurons.Triangle(0.3, 1.0), X, 1.0), 0.3 * np.maximum(0, 1 - np.abs(x)),
                               rtol=1e-14)
    # S = H((V - V_th) / V_th): dS/dV = h((V - V_th) / V_th) / V_th
    np.testing.assert_allclose(_surrogate(neurons.Triangle(0.3, 1.0), X, 2.0),
                               0.3 * np.maximum(0, 1 - np.abs(x / 2)) / 2, rtol=1e-14)
    np.testing.assert_array_equal(_surrogate(neurons.Rectangular(0.5, 0.0), X, 0.4), (np.abs(x) < 0.5) / 1.0)
    np.testing.assert_array_equal(_surrogate(neurons.Rectangular(0.5, -0.4), X, 0.4), (np.abs(x + 0.4) < 0.5) / 1.0)
    # Sinabs's nearest ones are other functions: Heaviside(window) is one-sided and scaled by 1/V_th
    heaviside = _surrogate(sa.Heaviside(window=0.5), X, 0.4)
    assert heaviside[-1] == pytest.approx(1 / 0.4) and not np.array_equal(
        heaviside, _surrogate(neurons.Rectangular(0.5, 0.0), X, 0.4))


def test_sigmoid_surrogate_does_not_overflow_in_float32():
    v = torch.tensor([-30.0, -23.0, -5.0, 0.0, 3.0]) + 1.0
    g = neurons.Sigmoid(4.0)(v, 1.0)
    assert torch.isfinite(g).all() and g[:2].abs().max() < 1e-30 and g[3].item() == pytest.approx(1.0)


def test_sinabs_loop_indexes_each_step():
    """components['time']: Sinabs's loop takes input[:, t]; the backward of each index
    writes a zero-filled gradient of the whole input (T of them)."""
    neuron = networks.hard(2.0, 1.0, 4.0)
    x = torch.rand(12, 3, 5, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    s, _ = neuron(x, False)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        s.sum().backward()
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("aten::select_backward") == 12
