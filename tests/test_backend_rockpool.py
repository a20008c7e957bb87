"""The Rockpool backend: the Rockpool behaviours the backend relies on or works around, and why
the other tasks are left out (parity, the end-to-end run against stbp's and the state reset at
every forward: tests/test_backend_contract.py)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("rockpool") is None:
    pytest.skip("rockpool is not installed", allow_module_level=True)

# imported through the backend: it keeps Rockpool's import from importing samna (see test below)
from backends.rockpool import neurons  # noqa: E402
from backends.rockpool.backend import RockpoolBackend  # noqa: E402
from backends.rockpool.networks import NOT_EXPRESSIBLE, RockpoolBlocks  # noqa: E402
from backends.stbp import neurons as stbp_neurons  # noqa: E402
from tasks.parity import parity_case  # noqa: E402
from tasks.specs import TASKS, get_spec  # noqa: E402
from tests.conftest import ROOT, subprocess_env  # noqa: E402

from rockpool.nn.modules import ExpSynTorch, LIFNeuronTorch, LIFTorch  # noqa: E402
from rockpool.nn.modules.torch.lif_torch import StepPWL  # noqa: E402
from rockpool.parameters import Constant  # noqa: E402

SYN = get_spec("synthetic")
A_M, A_S, V_TH = SYN.a_mem, SYN.a_syn, SYN.v_th
F64 = torch.float64


def lif(n=3, spike=None, **kw):
    """A stock LIFTorch as the backend builds it (Constants), Torch API."""
    args = dict(leak_mode="decays", alpha=Constant(A_M), beta=Constant(A_S), threshold=Constant(V_TH),
                bias=Constant(0.0), max_spikes_per_dt=1.0, dt=1.0)
    args.update(kw)
    if spike is not None:
        args["spike_generation_fn"] = spike
    return LIFTorch((n,), **args).to_torch()


def spec_synaptic_lif(u, record=True):
    """The spec, from our readable neurons: I = a_s I + u; soft-reset LIF fed I (time-major)."""
    current = stbp_neurons.exponential_synapse(u, A_S)
    return stbp_neurons.soft_reset_lif(current, A_M, V_TH, SYN.surrogate_alpha, SYN.surrogate_width, record)


def drive(T=40, B=3, N=5, seed=0, scale=3.0):
    """Inputs strong enough to fire often, some steps far above threshold (V > 2 V_th)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((T, B, N), generator=gen, dtype=F64) * scale
    kicks = torch.rand((T, B, N), generator=gen, dtype=F64) < 0.05
    return (x + 100.0 * kicks).requires_grad_(True)


# ------------------------------------------------------------------ parity (the case itself: tests/test_backend_contract.py)
def test_the_parity_case_makes_the_hidden_layer_fire():
    case = parity_case("synthetic")
    out = RockpoolBackend(case.spec, case.weights, precision="fp64").evaluate(case.batches[0], record=True)
    rate = out.spikes["hidden"].mean()
    assert 0.01 < rate < 0.9


def test_synaptic_lif_is_the_specs_synapse_and_soft_reset_neuron():
    """LIFTorch fed (1 - a_m)/a_s u: spikes, membranes and input gradients of the spec,
    also above 2 V_th (one spike, one V_th subtracted), in float64 and float32."""
    u = drive()
    layer = neurons.SynapticLIF(A_S, *SYN.neuron_params())
    s, v = layer(u, True)
    want_s, want_v = spec_synaptic_lif(u)
    assert s.dtype == v.dtype == F64
    assert 0.1 < float(want_s.detach().mean()) < 0.9 and float(want_v.detach().max()) > 3 * V_TH
    assert torch.equal(s, want_s)
    torch.testing.assert_close(v, want_v, rtol=1e-13, atol=1e-13)
    gen = torch.Generator().manual_seed(1)
    r1, r2 = (torch.rand(t.shape, dtype=t.dtype, generator=gen) for t in (s, v))
    (g,) = torch.autograd.grad((s * r1).sum() + (v * r2).sum(), u)
    (want_g,) = torch.autograd.grad((want_s * r1).sum() + (want_v * r2).sum(), u)
    assert float(g.abs().max()) > 0
    torch.testing.assert_close(g, want_g, rtol=1e-12, atol=1e-12)
    # float32: the same spikes
    u32 = u.detach().float()
    layer32 = neurons.SynapticLIF(A_S, *SYN.neuron_params()).float()
    s32, _ = layer32(u32, False)
    assert s32.dtype == torch.float32 and torch.equal(s32, spec_synaptic_lif(u32, False)[0])


def test_the_readout_synapse_is_the_specs_exponential_synapse():
    u = drive(seed=1)
    out = neurons.Synapse(A_S)(u)
    want = stbp_neurons.exponential_synapse(u, A_S)
    assert out.dtype == F64
    torch.testing.assert_close(out, want, rtol=1e-14, atol=1e-14)


# ------------------------------------------------------------------ Rockpool's own formulas
def test_liftorch_decays_its_synapse_after_adding_the_input():
    """Why the input is scaled: fed u itself, LIFTorch's I_syn is a_s I (not I), so its
    first membrane is a_s u[1] where the spec's (1 - a_m) I[1] = (1 - a_m) u[1]."""
    spike = neurons.CapturingSpike(neurons.triangle(0.3))
    cell = lif(1, spike=spike, threshold=Constant(100.0)).to(F64)
    u = torch.tensor([[[0.5], [0.0], [0.0]]], dtype=F64)  # [B, T, N]
    spike.keep = kept = []
    with neurons.default_dtype(F64):
        cell(u)
    v = torch.stack(kept).flatten()
    a_m, a_s = float(cell.alpha), float(cell.beta)
    want = [a_s * 0.5, a_m * a_s * 0.5 + a_s ** 2 * 0.5, 0.0]
    want[2] = a_m * want[1] + a_s ** 3 * 0.5
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-6)  # float32 constants: see below


def test_stock_steppwl_fires_several_spikes_at_or_above_threshold_with_a_step_surrogate():
    """Rockpool's default spike function is not synthetic's: floor(V/V_th) spikes (up to
    max_spikes_per_dt = 2^16 by default) at V >= V_th, float32, surrogate 1/V_th on
    V >= V_th - window; ours: one spike at V > V_th, in V's dtype, triangle 0.3 max(0, 1 - |x|)."""
    v = torch.tensor([0.4, 0.6, 1.0, 1.5, 2.3, 3.7], dtype=F64, requires_grad=True)
    th, window = torch.tensor(1.0, dtype=F64), torch.tensor(0.5, dtype=F64)
    stock = StepPWL.apply(v, th, window, torch.tensor(2.0 ** 16))
    assert stock.dtype == torch.float32
    assert stock.tolist() == [0, 0, 1, 1, 2, 3]
    (stock_g,) = torch.autograd.grad(stock.sum(), v)
    assert stock_g.tolist() == [0, 1, 1, 1, 1, 1]
    capped = StepPWL.apply(v, th, window, torch.tensor(1.0))
    assert capped.tolist() == [0, 0, 1, 1, 1, 1]  # max_spikes_per_dt = 1 caps it, still >=
    ours = neurons.triangle(0.3).apply(v, th, torch.tensor(1.0, dtype=F64), torch.tensor(1.0))
    assert ours.dtype == F64 and ours.tolist() == [0, 0, 0, 1, 1, 1]
    (ours_g,) = torch.autograd.grad(ours.sum(), v)
    x = (v.detach() - 1.0) / 1.0
    np.testing.assert_allclose(ours_g.numpy(), (0.3 * np.clip(1 - np.abs(x.numpy()), 0, None)), rtol=1e-15)
    assert ours_g.tolist()[4:] == [0.0, 0.0] and ours_g[2] == pytest.approx(0.3)


def test_triangle_surrogate_divides_by_the_threshold():
    v = torch.tensor([0.3, 0.45], dtype=F64, requires_grad=True)  # x = (V - 0.4) / 0.4 = -0.25, 0.125
    th = torch.tensor(0.4, dtype=F64)
    s = neurons.triangle(0.3).apply(v, th, torch.tensor(1.0, dtype=F64), torch.tensor(1.0))
    (g,) = torch.autograd.grad(s.sum(), v)
    np.testing.assert_allclose(g.numpy(), [0.3 * 0.75 / 0.4, 0.3 * 0.875 / 0.4], rtol=1e-14)


def test_stock_liftorch_fails_in_float64():
    """StepPWL's float32 spikes meet the float64 recurrent matrix at the second step."""
    cell = lif(3).to(F64)
    with pytest.raises(RuntimeError, match="dtype"):
        with neurons.default_dtype(F64):
            cell(torch.rand(2, 4, 3, dtype=F64, generator=torch.Generator().manual_seed(2)) * 3)


def test_rockpool_allocates_its_output_in_the_default_dtype():
    """Without the default-dtype glue, a float64 LIFTorch returns float32 spikes (its output
    buffer is torch.zeros(...) in the default dtype): every gradient through them rounded."""
    x = torch.rand(2, 4, 3, dtype=F64, generator=torch.Generator().manual_seed(3)) * 3
    cell = lif(3, spike=neurons.CapturingSpike(neurons.triangle(0.3))).to(F64)
    assert cell(x).dtype == torch.float32
    cell.reset_state()
    with neurons.default_dtype(F64):
        assert cell(x).dtype == F64
    syn = ExpSynTorch((3,), tau=Constant(10.0), dt=1.0).to_torch().to(F64)
    assert syn(x).dtype == torch.float32


def test_constants_are_buffers_not_parameters():
    """Rockpool's Constant(...) keeps decays, threshold and bias out of nn.Parameters;
    without it LIFTorch would add four trainable tensors."""
    trainable = LIFTorch((3,), leak_mode="decays", alpha=A_M, beta=A_S, threshold=V_TH, bias=0.0).to_torch()
    assert sorted(n for n, _ in trainable.named_parameters()) == ["alpha", "beta", "bias", "threshold"]
    assert list(lif(3).named_parameters()) == []
    assert list(ExpSynTorch((2,), tau=10.0).to_torch().named_parameters())  # tau trainable by default
    assert list(ExpSynTorch((2,), tau=Constant(10.0)).to_torch().named_parameters()) == []
    backend = RockpoolBackend(SYN, parity_case("synthetic").weights, precision="fp64")
    names = sorted(n for n, _ in backend.model.named_parameters())
    assert names == ["fc1.bias", "fc1.weight", "readout.bias", "readout.weight"]
    cells = [m for m in backend.model.modules() if isinstance(m, (LIFTorch, ExpSynTorch))]
    assert [type(c) for c in cells] == [LIFTorch, ExpSynTorch]
    assert float(cells[0].threshold) == V_TH and cells[0].size_out == SYN.n_hidden and cells[1].size_out == 2


def test_rockpool_casts_constants_to_float32_and_the_backend_refills_them():
    stock = lif(3).to(F64)
    assert stock.alpha.dtype == F64
    err = abs(float(stock.alpha) - A_M) / A_M
    assert 1e-8 < err < 1e-7  # float32(exp(-1/20)), 2.9e-8
    layer = neurons.SynapticLIF(A_S, *SYN.neuron_params())
    layer(torch.zeros(1, 1, 3), False)  # built in float32
    layer.to(F64)
    assert float(layer.cell.alpha) == A_M and float(layer.cell.beta) == A_S
    syn = neurons.Synapse(A_S)
    syn(torch.zeros(1, 1, 2))
    syn.double()
    assert float(syn.cell.tau) == -1.0 / math.log(A_S)
    # ExpSynTorch's exp(-dt / tau) gives the decay back to rounding
    assert abs(math.exp(-1.0 / float(syn.cell.tau)) - A_S) < 4e-16


def test_rockpool_keeps_the_last_state_and_the_backend_resets_it():
    """A stock Rockpool module starts the next call from the final state of the first
    sample; the backend's layers start every call from zero and keep no state."""
    # a fixed input that does not drive every neuron to spike at every step (drawn from the
    # global generator at up to 3, about one draw in ten did, and the two calls then agreed)
    x = torch.rand(2, 6, 3, dtype=F64, generator=torch.Generator().manual_seed(0)) * 1.5
    cell = lif(3, spike=neurons.CapturingSpike(neurons.triangle(0.3))).to(F64)
    with neurons.default_dtype(F64):
        first = cell(x)
        assert float(cell.vmem.abs().sum()) > 0
        second = cell(x)
    assert not torch.equal(first, second)
    layer = neurons.SynapticLIF(A_S, *SYN.neuron_params()).to(F64)
    u = x.transpose(0, 1)
    a, _ = layer(u, False)
    b, _ = layer(u, True)
    assert torch.equal(a, b)
    for name in ("vmem", "isyn", "spikes"):
        assert float(getattr(layer.cell, name).abs().sum()) == 0.0
    assert layer.cell._record_dict == {} and layer.spike.keep is None


def test_rockpools_own_record_holds_the_membrane_after_the_reset():
    """Why the membrane is taken from the spike function: Rockpool's record is V - V_th S."""
    spike = neurons.CapturingSpike(neurons.triangle(0.3))
    cell = lif(3, spike=spike).to(F64)
    x = torch.rand(2, 6, 3, dtype=F64, generator=torch.Generator().manual_seed(4)) * 3
    spike.keep = kept = []
    spikes, _, record = cell.evolve(x, record=True)  # Rockpool's own API, default dtype float32
    before = torch.stack(kept).transpose(0, 1)
    assert spikes.sum() > 0
    assert record["vmem"].dtype == torch.float32 and record["vmem"].device.type == "cpu"
    torch.testing.assert_close(record["vmem"].double(), before - V_TH * spikes, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ what cannot be expressed
def test_rockpool_lif_neurons_reset_by_subtraction_before_the_decay():
    """The reason fc_mnist, fc_mnist_poisson, lif_layer and dsrn_tdbn are left out: a spike
    at V leaves V - V_th (not 0: no hard or multiplicative reset), and the next step decays
    that, so fc_mnist's beta U + X - V_th becomes beta (U - V_th) + X."""
    beta = 0.95
    spike = neurons.CapturingSpike(StepPWL)  # Rockpool's own spike function, its membrane kept
    cell = LIFNeuronTorch((1,), tau_mem=Constant(-1.0 / math.log(beta)), threshold=Constant(1.0),
                          bias=Constant(0.0), dt=1.0, max_spikes_per_dt=1.0, spike_generation_fn=spike).to_torch()
    x = torch.tensor([[[1.5], [0.2]]])  # U[1] = 1.5 spikes
    spike.keep = kept = []
    spikes = cell(x)
    assert spikes.flatten().tolist() == [1.0, 0.0]
    u2 = float(kept[1])
    hard = 0.2  # a reset to zero
    fc_mnist = beta * 1.5 + 0.2 - 1.0
    assert u2 == pytest.approx(beta * (1.5 - 1.0) + 0.2, rel=1e-6)
    assert abs(u2 - hard) > 0.4 and u2 - fc_mnist == pytest.approx(1 - beta, rel=1e-5)


def test_blocks_refuse_the_kinds_rockpool_cannot_express():
    blocks = RockpoolBlocks()
    for kind in ("subtractive", "hard", "stbp"):
        with pytest.raises(NotImplementedError, match="rockpool"):
            blocks.neuron(kind, (1.0, 1.0, 1.0))
        assert "reset" in NOT_EXPRESSIBLE[kind]
    with pytest.raises(NotImplementedError):
        blocks.synaptic_neuron("hard", 0.5, (1.0, 1.0, 1.0))


def test_capabilities_list_synthetic_only_and_say_why():
    caps = RockpoolBackend.capabilities()
    assert caps.tasks == ("synthetic",) and "fp64" in caps.precisions
    for task in TASKS:
        if task != "synthetic":
            assert task in caps.notes
    assert caps.components["neuron:synthetic"].startswith("library: LIFTorch")
    assert caps.components["surrogate:synthetic"].startswith("custom")
    assert not caps.differences and not caps.parity_tolerances
    with pytest.raises(NotImplementedError, match="does not implement"):
        RockpoolBackend(get_spec("fc_mnist"), {})


# ------------------------------------------------------------------ import and versions
def test_importing_the_backend_does_not_import_samna():
    """rockpool's backend_management imports samna at import; the PyPI samna placeholder's
    import runs pip.  The backend blocks it while Rockpool is imported, and only then."""
    code = ("import sys, backends.rockpool.backend, rockpool.utilities.backend_management as bm; "
            "print('samna' in sys.modules, bm.backend_available('torch'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True"]
    assert "pip" not in proc.stderr and "samna" not in proc.stderr


def test_versions_name_rockpool():
    assert RockpoolBackend.framework_versions()["rockpool"] == neurons.rockpool.__version__
