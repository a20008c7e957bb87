"""The snnTorch backend: the snnTorch behaviours the backend relies on or works around (parity,
the end-to-end run against stbp's and the state reset at every forward: tests/test_backend_contract.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")

from tests.torch_backend_checks import host_reads  # noqa: E402

from backends.snntorch import neurons  # noqa: E402
from backends.snntorch.backend import SnnTorchBackend  # noqa: E402
from backends.stbp import neurons as stbp_neurons  # noqa: E402
from backends.stbp.backend import STBPBackend  # noqa: E402
from tasks import reference  # noqa: E402
from tasks.data import Batch  # noqa: E402
from tasks.parity import parity_case  # noqa: E402
from tasks.specs import get_spec  # noqa: E402

X = [-1.2, -0.5, -0.25, 0.0, 0.2, 0.49, 0.75, 1.5]


# ------------------------------------------------------------------ helpers
def spikes_of(fn, x):
    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn(x)
    y.sum().backward()
    return y, x.grad.numpy()


# ------------------------------------------------------------------ parity (the case itself: tests/test_backend_contract.py)
def test_parity_with_the_surrogate_window_centred_on_zero():
    case = parity_case("dsrn_tdbn")
    spec = case.spec.with_overrides(surrogate_center="zero")
    got = SnnTorchBackend(spec, case.weights, precision="fp64").gradients(case.batches[0])
    want = STBPBackend(spec, case.weights, precision="fp64").gradients(case.batches[0])
    centred = STBPBackend(case.spec, case.weights, precision="fp64").gradients(case.batches[0])
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12 * np.abs(want[name]).max())
    # the setting is not a no-op
    assert any(not np.allclose(want[n], centred[n]) for n in want)


# ------------------------------------------------------------------ what a run records
def test_versions_name_snntorch_and_tdbn_is_custom():
    assert SnnTorchBackend.framework_versions()["snntorch"] == snn.__version__
    assert SnnTorchBackend.capabilities().components["tdbn"].startswith("custom")


def test_lif_layer_is_fc_mnist_poissons_leaky_fed_x_over_tau():
    """lif_layer's neuron: snn.Leaky with beta = 1 - 1/tau = 0.5, zero reset, reset_delay=False;
    X = 2 gives H = V_th exactly at the first step: no spike (the spec's H(x) = [x > 0])."""
    spec = get_spec("lif_layer", neurons=8, T=5)
    backend = SnnTorchBackend(spec, {"fc.weight": np.eye(8)}, precision="fp64")
    lif = backend.model.lif.lif
    assert isinstance(lif, snn.Leaky) and float(lif.beta) == 0.5 and float(lif.threshold) == 1.0
    assert lif.reset_mechanism == "zero" and not lif.reset_delay
    x = np.linspace(0.5, 4.0, 8)[None, None].repeat(5, axis=0).repeat(2, axis=1)
    out = backend.evaluate(Batch(x, np.zeros(2, np.int64), static=False), record=True)
    want_s, want_h = reference.hard_reset_lif(x, spec.tau, spec.v_th)
    assert 0 < want_s.sum() < want_s.size and want_h[0, 0, 3] == 1.0 and want_s[0, 0, 3] == 0.0
    np.testing.assert_array_equal(out.spikes["lif"], want_s)
    np.testing.assert_allclose(out.membranes["lif"], want_h, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(out.scores, want_s.sum(axis=0))
    assert out.loss == pytest.approx(want_s.mean(), rel=1e-15)


# ------------------------------------------------------------------ weights and state
def test_weights_round_trip_and_buffers_untouched():
    case = parity_case("dsrn_tdbn")
    backend = SnnTorchBackend(case.spec, case.weights, precision="fp64")
    got = backend.get_weights()
    assert set(got) == set(case.weights)
    for name, value in case.weights.items():
        np.testing.assert_array_equal(got[name], value)
    backend.gradients(case.batches[0])
    backend.evaluate(case.batches[0], batch_statistics=True)
    after = backend.get_weights()
    assert all(np.array_equal(after[k], got[k]) for k in got)
    scaled = {k: v * 0.5 for k, v in got.items()}
    backend.set_weights(scaled)
    assert all(np.array_equal(backend.get_weights()[k], scaled[k]) for k in got)
    with pytest.raises(ValueError):
        backend.set_weights({**got, "fc1.weight": got["fc1.weight"][:, :-1]})


@pytest.mark.parametrize("task", ["synthetic", "fc_mnist"])
def test_nothing_of_the_last_step_stays_in_the_neurons(task):
    """No graph and no memory kept in snnTorch's neurons after a forward and a train step
    (that every forward starts from zero: tests/test_backend_contract.py)."""
    case = parity_case(task)
    backend = SnnTorchBackend(case.spec, case.weights, precision="fp64")
    backend.evaluate(case.batches[0], record=True)
    backend.train_step(case.batches[1])
    for module in backend.model.modules():
        if isinstance(module, snn.SpikingNeuron):
            assert module.mem.numel() == 0 and module.reset is None and module.compared is None


def test_neurons_leave_snntorchs_global_instance_list():
    before = len(snn.SpikingNeuron.instances)
    case = parity_case("dsrn_tdbn")
    backend = SnnTorchBackend(case.spec, case.weights)
    assert sum(isinstance(m, snn.SpikingNeuron) for m in backend.model.modules()) == 19
    assert len(snn.SpikingNeuron.instances) == before
    # stock snnTorch registers every neuron there
    snn.Leaky(beta=0.5)
    assert len(snn.SpikingNeuron.instances) == before + 1
    snn.SpikingNeuron.instances.pop()


# ------------------------------------------------------------------ host synchronisation
def test_stock_leaky_without_reset_delay_reads_a_tensor_every_step():
    """Why the reset mechanism is a Python int here: snnTorch's forward branches on
    the ``reset_mechanism_val`` buffer, a host sync per step once it lives on CUDA."""
    x, m = torch.rand(4, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(4, 3)
    stock = snn.Leaky(beta=0.5, reset_mechanism="zero", reset_delay=False)
    snn.SpikingNeuron.instances.remove(stock)
    ours = neurons.Leaky(beta=0.5, reset_mechanism="zero", reset_delay=False)

    def steps(neuron):
        state = m
        for _ in range(5):
            _, state = neuron(x, state)

    assert host_reads(lambda: steps(stock)).get("aten::is_nonzero", 0) >= 5
    assert host_reads(lambda: steps(ours)).get("aten::is_nonzero", 0) == 0


# ------------------------------------------------------------------ neurons
def test_fc_mnist_leaky_is_tutorial_5_with_a_strict_threshold():
    """U hits V_th exactly: no spike (H(0) = 0) and no reset at the next step."""
    lif = neurons.Leaky(beta=neurons.constant(0.5), spike_grad=neurons.atan(2.0)).double()
    inp = torch.tensor([[1.0], [0.6], [1.0], [0.0]], dtype=torch.float64)
    s, u = neurons.run(lif, inp, record=True)
    want_s, want_u = reference.subtractive_lif(inp.numpy(), 0.5, 1.0)
    np.testing.assert_array_equal(s.numpy(), want_s)
    np.testing.assert_array_equal(u.numpy(), want_u)
    assert u[0, 0].item() == 1.0 and s[0, 0].item() == 0.0 and s[1, 0].item() == 1.0
    # the reset is detached: S3 depends on X1 through the membrane only
    inp = torch.tensor([[1.5], [0.2], [0.0]], dtype=torch.float64, requires_grad=True)
    s, _ = neurons.run(lif, inp, record=False)
    (g,) = torch.autograd.grad(s[2].sum(), inp)
    s_ref, _ = stbp_neurons.subtractive_lif(inp, 0.5, 1.0, 2.0, record=False)
    (g_ref,) = torch.autograd.grad(s_ref[2].sum(), inp)
    torch.testing.assert_close(g, g_ref, rtol=1e-14, atol=0)


def _soft_reset_case():
    # a current that drives V above 2 V_th at a spike
    current = torch.tensor([[60.0], [0.0], [0.0], [30.0], [0.0], [0.0]], dtype=torch.float64)
    return current, math.exp(-1 / 10), math.exp(-1 / 20)


def test_soft_reset_synaptic_equals_the_reference_beyond_twice_the_threshold():
    current, a_s, a_m = _soft_reset_case()
    drive = reference.exponential_synapse(current.numpy(), a_s)
    want_s, want_v = reference.soft_reset_lif(drive, a_m, 1.0)
    assert want_v.max() > 2.0 and want_s.sum() >= 2
    kwargs = dict(alpha=neurons.constant(a_s), beta=neurons.constant(a_m), spike_grad=neurons.triangle(0.3, 1.0, 1.0),
                  reset_mechanism="subtract", reset_delay=False)
    ours = neurons.SoftResetSynaptic(**kwargs).double()
    s, v = neurons.run(ours, current * (1 - a_m), record=True)
    np.testing.assert_array_equal(s.numpy(), want_s)
    np.testing.assert_allclose(v.numpy(), want_v, rtol=1e-14, atol=1e-14)
    # stock snnTorch subtracts a second V_th after a spike with V > 2 V_th
    stock = neurons.Synaptic(**kwargs).double()
    s_stock, v_stock = neurons.run(stock, current * (1 - a_m), record=True)
    assert np.abs(v_stock.numpy() - want_v).max() > 0.5


def test_soft_reset_keeps_the_spike_gradient():
    current, a_s, a_m = _soft_reset_case()
    current = (current * 0.03).requires_grad_(True)  # V crosses V_th near the threshold
    kwargs = dict(alpha=neurons.constant(a_s), beta=neurons.constant(a_m), spike_grad=neurons.triangle(0.3, 1.0, 1.0),
                  reset_mechanism="subtract", reset_delay=False)
    ours = neurons.SoftResetSynaptic(**kwargs).double()
    _, v = neurons.run(ours, current * (1 - a_m), record=True)
    (g,) = torch.autograd.grad(v[-1].sum(), current)
    drive = stbp_neurons.exponential_synapse(current, a_s)
    _, v_ref = stbp_neurons.soft_reset_lif(drive, a_m, 1.0, 0.3, 1.0, record=True)
    (g_ref,) = torch.autograd.grad(v_ref[-1].sum(), current)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-15)
    assert torch.count_nonzero(g).item() > 0


def test_stbp_and_poisson_neurons_keep_the_reset_gradient():
    # dsrn_tdbn: snn.Leaky(zero reset, reset_delay=False) vs U = tau U (1 - S) + X
    inp = torch.tensor([[0.6], [0.5], [0.1]], dtype=torch.float64, requires_grad=True)
    lif = neurons.Leaky(beta=neurons.constant(0.25), threshold=neurons.constant(0.4),
                        spike_grad=neurons.rectangular(0.5, 0.0), reset_mechanism="zero", reset_delay=False).double()
    s, u = neurons.run(lif, inp, record=True)
    (g,) = torch.autograd.grad(u[1].sum(), inp)
    # U2 = 0.25 U1 (1 - S1) + X2 with S1's surrogate 1 inside the window
    assert g[0, 0].item() == pytest.approx(-0.25 * 0.6 * 1.0)
    s_ref, u_ref = stbp_neurons.stbp_lif(inp, 0.25, 0.4, 0.5, 0.0, record=True)
    torch.testing.assert_close(u, u_ref, rtol=0, atol=0)
    # fc_mnist_poisson: V = H (1 - S) with the sigmoid surrogate, fed X / tau
    inp = torch.tensor([[150.0], [20.0], [50.0]], dtype=torch.float64, requires_grad=True)
    lif = neurons.Leaky(beta=neurons.constant(0.99), spike_grad=neurons.sigmoid(4.0),
                        reset_mechanism="zero", reset_delay=False).double()
    s, h = neurons.run(lif, inp / 100.0, record=True)
    (g,) = torch.autograd.grad(h[1].sum(), inp)
    s_ref, h_ref = stbp_neurons.hard_reset_lif(inp, 100.0, 1.0, 4.0, record=True)
    (g_ref,) = torch.autograd.grad(h_ref[1].sum(), inp)
    assert s[0, 0].item() == 1.0
    torch.testing.assert_close(h, h_ref, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=0)


# ------------------------------------------------------------------ surrogates
def test_surrogates_are_the_specified_formulas():
    x = np.array(X)
    s, g = spikes_of(neurons.atan(2.0), X)
    np.testing.assert_array_equal(s.detach().numpy(), (x > 0).astype(float))
    np.testing.assert_allclose(g, 1.0 / (1.0 + (math.pi * x) ** 2), rtol=1e-14)
    sig = 1 / (1 + np.exp(-4 * x))
    np.testing.assert_allclose(spikes_of(neurons.sigmoid(4.0), X)[1], 4 * sig * (1 - sig), rtol=1e-13)
    np.testing.assert_allclose(spikes_of(neurons.triangle(0.3, 1.0, 1.0), X)[1],
                               0.3 * np.maximum(0, 1 - np.abs(x)), rtol=1e-14)
    # x = (V - V_th) / V_th: the surrogate of V - V_th is h((V - V_th) / V_th) / V_th
    np.testing.assert_allclose(spikes_of(neurons.triangle(0.3, 1.0, 2.0), X)[1],
                               0.3 * np.maximum(0, 1 - np.abs(x / 2)) / 2, rtol=1e-14)
    np.testing.assert_array_equal(spikes_of(neurons.rectangular(0.5, 0.0), X)[1], (np.abs(x) < 0.5) / 1.0)
    np.testing.assert_array_equal(spikes_of(neurons.rectangular(0.5, -0.4), X)[1], (np.abs(x + 0.4) < 0.5) / 1.0)


def test_surrogates_keep_float64_where_snntorchs_return_float32():
    x = torch.tensor(X, dtype=torch.float64)
    assert snn.surrogate.atan(2.0)(x).dtype == torch.float32  # why the subclasses exist
    for fn in (neurons.atan(2.0), neurons.sigmoid(4.0), neurons.triangle(0.3, 1.0, 1.0), neurons.rectangular(0.5, 0.0)):
        assert fn(x).dtype == torch.float64
        x32 = x.float()
        assert fn(x32).dtype == torch.float32


def test_sigmoid_surrogate_does_not_overflow_where_snntorchs_does():
    """snnTorch's sigmoid backward, slope e^(-slope x) / (e^(-slope x) + 1)^2, is
    inf / inf = NaN in float32 once slope * x < -88 (x < -22 at slope 4); ours
    is the same function written without overflow."""
    x = torch.tensor([-23.0, -30.0, -5.0, -0.3, 0.0, 0.4, 3.0])
    stock = x.clone().requires_grad_(True)
    snn.surrogate.sigmoid(slope=4)(stock).sum().backward()
    ours = x.clone().requires_grad_(True)
    neurons.sigmoid(4.0)(ours).sum().backward()
    assert torch.isnan(stock.grad[:2]).all()  # the reason for the override
    assert torch.isfinite(ours.grad).all() and ours.grad[:2].abs().max() < 1e-30
    torch.testing.assert_close(ours.grad[2:], stock.grad[2:], rtol=1e-6, atol=0)
    x64 = torch.tensor(X, dtype=torch.float64)
    stock = x64.clone().requires_grad_(True)
    snn.surrogate.sigmoid(slope=4)(stock).sum().backward()
    ours = x64.clone().requires_grad_(True)
    neurons.sigmoid(4.0)(ours).sum().backward()
    torch.testing.assert_close(ours.grad, stock.grad, rtol=1e-14, atol=0)


# ------------------------------------------------------------------ precisions
def test_bf16_keeps_neuron_state_and_tdbn_in_float32():
    case = parity_case("dsrn_tdbn")
    backend = SnnTorchBackend(case.spec, case.weights, precision="bf16")
    out = backend.evaluate(case.batches[0], record=True)
    ref = reference.forward(case.spec, case.weights, case.batches[0], batch_statistics=False)
    stem, want = out.membranes["stem.lif"][0], ref.membranes["stem.lif"][0]
    rel = np.abs(stem - want).max() / np.abs(want).max()
    assert 1e-5 < rel < 2e-2  # bf16 convolution, float32 tdBN and membrane
    assert backend.model.stem.bn.running_mean.dtype == torch.float32
