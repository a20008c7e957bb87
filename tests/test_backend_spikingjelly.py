"""The spikingjelly backend (SpikingJelly 2.x, activation_based, multi-step): CPU only, tiny shapes (parity,
the end-to-end run against stbp's and the state reset at every forward: tests/test_backend_contract.py)."""

from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

import torch  # noqa: E402
from spikingjelly.activation_based import surrogate  # noqa: E402

import backends as registry  # noqa: E402
from tasks import parity, reference  # noqa: E402
from tasks.data import make_data  # noqa: E402
from tasks.specs import get_spec  # noqa: E402
from tasks.weights import initial_weights, trainable_names  # noqa: E402

TASK_NAMES = ("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn", "lif_layer")


@pytest.fixture(scope="module")
def sj():
    """The backend module, loaded through the registry (as the command line does)."""
    registry.load("spikingjelly")
    from backends.spikingjelly import backend

    return backend


def _rel(a, b) -> float:
    return parity._rel(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------- parity (fp64)
# The library's surrogates (Sigmoid, Rect) fire at U == V_th (heaviside x >= 0), the spec's H
# does not: lif_layer keeps the library's Sigmoid (its fused kernel is what that benchmark
# measures; a documented difference) and fails at the parity case's edge; dsrn_tdbn fires at >
# through StrictRect (Rect has no fused kernel to lose).  Parity itself: tests/test_backend_contract.py.
FIRES_AT_THE_THRESHOLD = ("lif_layer",)


@pytest.mark.parametrize("name", ["spikingjelly", "spikingjelly:torch"])
def test_lif_layers_library_sigmoid_fires_at_the_threshold_and_fails_parity_there(name):
    """A documented difference, shown where it is: the one spike of the edge sample, in both
    evaluation modes (the later differences follow from it).  Glue that fires at x > 0 (as
    StrictATan does for fc_mnist) makes this test fail: then parity passes and this test goes."""
    assert surrogate.Sigmoid(alpha=4.0)(torch.zeros(1, dtype=torch.float64)).item() == 1.0
    row = parity.check_backend("lif_layer", name)
    assert row.status == "fail" and row.where["spike_mismatches"] == "lif (batch statistics): 1, lif (running statistics): 1"
    assert "parity's edge case" in registry.load(name).capabilities().differences["lif_layer"]  # said where it is


def test_dsrn_tdbn_fires_above_the_threshold_only_with_rects_gradient():
    import backends.spikingjelly.surrogates as sg

    x = torch.tensor([-0.6, -0.2, 0.0, 0.2, 0.6], dtype=torch.float64, requires_grad=True)
    library, strict = surrogate.Rect(alpha=1.0), sg.StrictRect(alpha=1.0)
    assert library(x).tolist() == [0, 0, 1, 1, 1] and strict(x).tolist() == [0, 0, 0, 1, 1]
    (g_library,) = torch.autograd.grad(library(x).sum(), x)
    (g_strict,) = torch.autograd.grad(strict(x).sum(), x)
    assert torch.equal(g_library, g_strict)  # the library's gradient, unchanged
    shifted = sg.ShiftedRect(alpha=1.0, center=-0.4)
    assert shifted(torch.tensor([0.0, 1e-12])).tolist() == [0, 1]


def _forward_and_gradients(backend, case, precision):
    mismatches, compared, membrane = parity.compare_forward(case, backend)
    stbp = registry.load("stbp")(case.spec, case.weights, device="cpu", precision=precision)
    got, want = backend.gradients(case.batches[0]), stbp.gradients(case.batches[0])
    return mismatches, membrane, max(_rel(got[k], want[k]) for k in want)


@pytest.mark.parametrize("task", ("fc_mnist_poisson", "lif_layer"))
def test_fused_lif_operator_fp32(sj, task):
    """float32 takes LIFNode's registered sj_lif operator (float64 does not): check it runs and is exact
    (on CUDA the same operator is SpikingJelly's fused kernel).  Without the threshold edge, where
    lif_layer's library Sigmoid fires (its own test above)."""
    case = parity.parity_case(task, edge=False)
    backend = sj.SpikingJellyBackend(case.spec, case.weights, device="cpu", precision="fp32")
    mismatches, membrane, gradient = _forward_and_gradients(backend, case, "fp32")
    assert mismatches == 0
    assert membrane < 1e-5 and gradient < 1e-4
    with torch.profiler.profile() as prof:
        backend.train_step(case.batches[1])
    assert any(e.name == "sj_lif::forward" for e in prof.events())
    assert "sj_lif operator" in backend.device_info()["spikingjelly_lif"]


def test_float64_takes_the_reference_path(sj):
    case = parity.parity_case("fc_mnist_poisson")
    backend = sj.SpikingJellyBackend(case.spec, case.weights, device="cpu", precision="fp64")
    with torch.profiler.profile() as prof:
        backend.train_step(case.batches[1])
    assert not any("sj_lif" in e.name for e in prof.events())
    assert "Torch reference" in backend.device_info()["spikingjelly_lif"]


@pytest.mark.parametrize("task", ("synthetic", "fc_mnist_poisson", "dsrn_tdbn", "lif_layer"))
def test_simple_lif_path(sj, task):
    """The SimpleLIFNode neurons spikingjelly:torch uses on CUDA compute the same (forced here on the CPU)."""

    class Simple(sj.SpikingJellyTorchBackend):
        def lif_kind(self):
            return "simple"

    case = parity.parity_case(task, edge=task not in FIRES_AT_THE_THRESHOLD)
    backend = Simple(case.spec, case.weights, device="cpu", precision="fp64")
    assert any(type(m).__name__ == "ChargeSimpleLIFNode" for m in backend.model.modules())
    mismatches, membrane, gradient = _forward_and_gradients(backend, case, "fp64")
    assert mismatches == 0
    assert membrane < parity.FP64_LIMIT and gradient < parity.FP64_LIMIT


def test_torch_variant_neuron_choice(sj):
    def kind(task, device, precision):
        fake = types.SimpleNamespace(spec=get_spec(task), device=device, precision=precision)
        return sj.SpikingJellyTorchBackend.lif_kind(fake)

    assert kind("fc_mnist_poisson", "cuda", "fp32") == "lif"  # Sigmoid: the forced Torch kernel
    assert kind("fc_mnist_poisson", "cuda", "fp64") == "simple"
    assert kind("lif_layer", "cuda", "bf16") == "lif"
    assert kind("lif_layer", "cuda", "fp64") == "simple"
    assert kind("dsrn_tdbn", "cuda", "bf16") == "simple"  # Rect has no fused kernel
    assert kind("synthetic", "cuda", "fp32") == "simple"
    assert kind("dsrn_tdbn", "cpu", "fp32") == "lif"


def test_lif_layer_network(sj):
    """lif_layer: a bias-free layer.Linear, then fc_mnist_poisson's LIFNode with tau = 2, Sigmoid(4)."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    spec = get_spec("lif_layer", neurons=8, T=4)
    model = sj.SpikingJellyBackend(spec, initial_weights(spec), device="cpu", precision="fp32").model
    assert isinstance(model.fc, layer.Linear) and model.fc.bias is None
    lif = model.lif
    assert isinstance(lif, neuron.LIFNode) and lif.tau == 2.0 and lif.decay_input and lif.v_reset == 0.0
    assert not lif.detach_reset and lif.v_threshold == 1.0
    assert type(lif.surrogate_function) is surrogate.Sigmoid and lif.surrogate_function.alpha == 4.0


# ---------------------------------------------------------------- kernel setting on CUDA
def test_kernel_setting_checks(sj, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # spikingjelly:torch refuses a process whose LIF operator was imported without the variable
    monkeypatch.setattr(sj, "lif_cuda_request", lambda: "auto")
    monkeypatch.setattr(sj, "lif_kernel", lambda device: "triton")
    with pytest.raises(NotImplementedError, match="SJ_LIF_CUDA_IMPLEMENTATION=torch"):
        sj.SpikingJellyTorchBackend.check_kernel_setting("cuda")
    sj.SpikingJellyBackend.check_kernel_setting("cuda")
    sj.SpikingJellyTorchBackend.check_kernel_setting("cpu")  # the variable does nothing on the CPU
    # ... and runs when it was in effect; the default variant then refuses
    monkeypatch.setattr(sj, "lif_cuda_request", lambda: "torch")
    monkeypatch.setattr(sj, "lif_kernel", lambda device: "torch")
    sj.SpikingJellyTorchBackend.check_kernel_setting("cuda")
    with pytest.raises(NotImplementedError, match="spikingjelly:torch"):
        sj.SpikingJellyBackend.check_kernel_setting("cuda")


def test_kernel_read_from_spikingjelly(sj):
    assert sj.lif_kernel("cpu") == "torch-reference"
    assert sj.lif_cuda_request() in ("auto", "cuda", "triton", "torch")
    caps = sj.SpikingJellyBackend.capabilities()
    assert caps.components["lif kernel:cpu"].startswith("torch-reference")
    assert f"SJ_LIF_CUDA_IMPLEMENTATION={sj.lif_cuda_request()}" in caps.components["lif kernel:cuda"]
    assert set(caps.differences) == {"lif_layer"} and not caps.parity_tolerances  # fp64 parity is exact
    torch_caps = registry.load("spikingjelly:torch").capabilities()
    assert torch_caps.differences == caps.differences
    assert "SimpleLIFNode" in torch_caps.components["lif kernel:cuda"]


# ---------------------------------------------------------------- neuron details
def test_membrane_is_the_charge_before_reset(sj):
    """v_seq is post-reset; the recorded membrane is H[t] (>= V_th wherever a spike fires)."""
    case = parity.parity_case("fc_mnist_poisson")
    backend = sj.SpikingJellyBackend(case.spec, case.weights, device="cpu", precision="fp32")
    out = backend.evaluate(case.batches[0], record=True)
    s, h = out.spikes["lif1"], out.membranes["lif1"]
    assert s.sum() > 0 and (h[s == 1] >= case.spec.v_th).all() and (h[s == 0] < case.spec.v_th).all()
    # without record the nodes run LIFNode unchanged and keep nothing
    backend.evaluate(case.batches[0])
    for node in (backend.model.lif1, backend.model.lif2):
        assert not node.store_v_seq and node.v_seq is None and node.h_seq is None
        assert isinstance(node.v, float)  # reset after the pass: no state kept


def test_a_forward_leaves_no_trace_in_reset_nets_process_wide_cache(sj):
    """Every forward resets the network's own nodes, not through ``functional.reset_net``'s
    cache: torch.compile guards on that weak dictionary's contents, which other networks'
    lifetimes change, so the compiled variant recompiled (or failed building its guards)
    depending on what the process had run before."""
    net_config = pytest.importorskip("spikingjelly.activation_based.functional.net_config")
    case = parity.parity_case("fc_mnist")
    backend = sj.SpikingJellyBackend(case.spec, case.weights, device="cpu", precision="fp32")
    backend.evaluate(case.batches[0])
    backend.train_step(case.batches[0])
    assert backend.model not in net_config._RESET_MODULE_CACHE


def test_lif_equals_hard_reset_reference(sj):
    """fc_mnist_poisson's LIFNode against the reference's hard_reset_lif, one layer, float64."""
    from backends.spikingjelly.networks import lif_surrogate, make_lif

    spec = get_spec("fc_mnist_poisson")
    x = torch.from_numpy(np.random.default_rng(1).normal(1.0, 60.0, size=(40, 3, 7)))
    node = make_lif("lif", tau=spec.tau, decay_input=True, v_threshold=spec.v_th, v_reset=0.0,
                    surrogate_function=lif_surrogate(spec), detach_reset=False)
    node.record_charge = True
    s = node(x)
    want_s, want_h = reference.hard_reset_lif(x.numpy(), spec.tau, spec.v_th)
    assert 0 < want_s.sum() < want_s.size
    np.testing.assert_array_equal(s.numpy(), want_s)
    np.testing.assert_array_equal(node.h_seq.numpy(), want_h)  # bit for bit: the same expression


def test_heaviside_at_an_exact_tie(sj):
    """SpikingJelly fires at H == V_th (x >= 0); the spec and StrictATan do not.  Only exact ties differ."""
    from backends.spikingjelly.networks import lif_surrogate, make_lif
    from backends.spikingjelly.surrogates import StrictATan

    spec = get_spec("fc_mnist_poisson")
    node = make_lif("lif", tau=spec.tau, decay_input=True, v_threshold=1.0, v_reset=0.0,
                    surrogate_function=lif_surrogate(spec), detach_reset=False)
    x = torch.tensor([[[100.0, 99.99, 100.01]]])  # H[1] = X / 100: exactly 1.0, below, above
    assert node(x).tolist() == [[[1.0, 0.0, 1.0]]]
    assert reference.hard_reset_lif(x.double().numpy(), spec.tau, 1.0)[0].tolist() == [[[0.0, 0.0, 1.0]]]
    z = torch.tensor([0.0, -1e-7, 1e-7], requires_grad=True)
    assert StrictATan(alpha=2.0)(z).tolist() == [0.0, 0.0, 1.0]
    StrictATan(alpha=2.0)(z).sum().backward()
    want = 1.0 / (1.0 + (np.pi * z.detach().numpy()) ** 2)  # h(x) = 1 / (1 + (pi x)^2)
    np.testing.assert_allclose(z.grad.numpy(), want, rtol=1e-6)


def test_bf16_lif_layer_differs_only_from_exact_ties(sj):
    """lif_layer under bf16: H = V + (X - V)/2 with a bfloat16 X hits V_th exactly; SpikingJelly fires
    there (the documented difference) and every neuron's first spike that differs from stbp's is at a tie."""
    spec = get_spec("lif_layer", neurons=512, T=30, batch_size=16)
    weights = initial_weights(spec)
    batch = make_data(spec).batch
    got = sj.SpikingJellyBackend(spec, weights, device="cpu", precision="bf16").evaluate(batch, record=True)
    want = registry.load("stbp")(spec, weights, device="cpu", precision="bf16").evaluate(batch, record=True)
    s, s_ref, h_ref = got.spikes["lif"], want.spikes["lif"], want.membranes["lif"]
    ties = h_ref == spec.v_th
    assert ties.sum() > 0 and s_ref[ties].sum() == 0 and s[ties].sum() > 0
    differ = s != s_ref
    assert differ.any()
    first = differ.argmax(axis=0)  # per neuron-sample: the step of the first difference
    b, n = np.nonzero(differ.any(axis=0))
    assert ties[first[b, n], b, n].all()


def test_bf16_fc_mnist_first_step_ties(sj):
    """Under bf16, U[1] = W x + b is a bfloat16 number and may equal V_th exactly: same spikes as stbp."""
    case = parity.parity_case("fc_mnist")
    x = torch.from_numpy(case.batches[0].x)
    w = torch.from_numpy(case.weights["fc1.weight"]).float()
    b = torch.from_numpy(case.weights["fc1.bias"]).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u1 = torch.nn.functional.linear(x, w, b)
    assert int((u1.float() == 1.0).sum()) > 0  # ties happen in this case...
    mine = registry.load("spikingjelly")(case.spec, case.weights, device="cpu", precision="bf16")
    stbp = registry.load("stbp")(case.spec, case.weights, device="cpu", precision="bf16")
    got, want = mine.evaluate(case.batches[0], record=True), stbp.evaluate(case.batches[0], record=True)
    for layer in case.spec.layer_names():  # ...and fire as the spec says
        np.testing.assert_array_equal(got.spikes[layer], want.spikes[layer])


def test_surrogates():
    from spikingjelly.activation_based import surrogate

    from backends.spikingjelly.surrogates import ScaledTriangle, ShiftedRect

    x = torch.tensor([-0.9, -0.5, -0.49, 0.0, 0.3, 0.49, 0.5, 0.7], dtype=torch.float64, requires_grad=True)
    surrogate.Rect(alpha=1.0)(x).sum().backward()  # dsrn: a = 0.5, height 1/(2a) = 1 on |x| < a
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    x.grad = None
    ShiftedRect(alpha=1.0, center=-0.4)(x).sum().backward()  # window centred on U = 0, i.e. x = -0.4
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    x.grad = None
    ScaledTriangle(alpha=0.3, width=1.0, scale=2.0)(x).sum().backward()
    want = 0.3 * np.maximum(0.0, 1.0 - np.abs(x.detach().numpy() / 2.0)) / 2.0
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-15)


def test_surrogate_center_zero(sj):
    case = parity.parity_case("dsrn_tdbn")
    stbp_cls = registry.load("stbp")
    zero = case.spec.with_overrides(surrogate_center="zero")
    got = sj.SpikingJellyBackend(zero, case.weights, device="cpu", precision="fp64").gradients(case.batches[0])
    want = stbp_cls(zero, case.weights, device="cpu", precision="fp64").gradients(case.batches[0])
    centred = sj.SpikingJellyBackend(case.spec, case.weights, device="cpu", precision="fp64").gradients(case.batches[0])
    assert max(_rel(got[k], want[k]) for k in want) < 1e-6
    assert max(_rel(centred[k], want[k]) for k in want) > 1e-2  # the setting changes the gradients


# ---------------------------------------------------------------- tdBN
def test_tdbn_weight_scale_and_adam(sj):
    """The module stores gamma = alpha V_th lambda; weights, gradients and Adam are those of lambda."""
    case = parity.parity_case("dsrn_tdbn")
    spec = case.spec
    weights = dict(case.weights)
    rng = np.random.default_rng(3)
    for name in weights:
        if name.endswith("bn2.weight") or name == "stem.bn.weight":
            weights[name] = rng.uniform(0.5, 1.5, size=weights[name].shape)
    backend = sj.SpikingJellyBackend(spec, weights, device="cpu", precision="fp64")
    state = backend.model.state_dict()
    np.testing.assert_allclose(state["stem.bn.weight"].numpy(), weights["stem.bn.weight"] * spec.v_th, rtol=1e-15)
    name = "layer1.0.bn2.weight"
    np.testing.assert_allclose(state[name].numpy(), weights[name] * spec.v_th * spec.block_alpha, rtol=1e-15)
    back = backend.get_weights()
    assert max(_rel(back[k], weights[k]) for k in weights) < 1e-15
    # gradients and three Adam steps as stbp's, which trains lambda itself
    stbp = registry.load("stbp")(spec, weights, device="cpu", precision="fp64")
    got, want = backend.gradients(case.batches[0]), stbp.gradients(case.batches[0])
    assert max(_rel(got[k], want[k]) for k in want) < 1e-9
    for batch in case.batches[:3]:
        backend.train_step(batch)
        stbp.train_step(batch)
    got, want = backend.get_weights(), stbp.get_weights()
    moved = max(_rel(want[k], weights[k]) for k in want if k.endswith(".weight") and ".bn" in k)
    assert moved > 1e-4
    assert max(_rel(got[k], want[k]) for k in want) < 1e-9


# ---------------------------------------------------------------- weights
@pytest.mark.parametrize("task", TASK_NAMES)
def test_weights_round_trip(sj, task):
    spec = parity.parity_case(task).spec
    weights = initial_weights(spec)
    rng = np.random.default_rng(7)
    changed = {k: v + rng.normal(0.0, 0.1, size=v.shape) for k, v in weights.items()}
    for k in changed:
        if k.endswith("running_var"):
            changed[k] = np.abs(changed[k]) + 0.5
    backend = sj.SpikingJellyBackend(spec, weights, device="cpu", precision="fp64")
    backend.set_weights(changed)
    back = backend.get_weights()
    assert set(back) == set(changed)
    for k in changed:
        np.testing.assert_allclose(back[k], changed[k], rtol=1e-14, atol=1e-15, err_msg=k)
    grads = backend.gradients(parity.parity_case(task).batches[0])
    assert set(grads) == set(trainable_names(weights))
    with pytest.raises(ValueError):
        backend.set_weights({**changed, trainable_names(weights)[0]: np.zeros(3)})


def test_bf16_train_steps(sj):
    for task in TASK_NAMES:
        case = parity.parity_case(task)
        backend = sj.SpikingJellyBackend(case.spec, case.weights, device="cpu", precision="bf16")
        losses = [backend.train_step(b) for b in case.batches[:2]]
        assert np.isfinite(losses).all(), task
