"""backends/stbp/fused.py: the stbp:fused backend itself (its fused CPU paths against the layers
apart, what it stages, that it takes those paths, and Triton on CUDA). Its engine's parts: tests/test_stbp_*.py."""

import pytest

torch = pytest.importorskip("torch")

from backends.stbp import multistep  # noqa: E402
from tasks.parity import parity_case  # noqa: E402
from tests.stbp_cases import fused_variant, needs_numba  # noqa: E402


def test_cuda_without_triton_is_unavailable(monkeypatch):
    from backends.stbp.fused import FusedSTBPBackend
    from tasks.specs import get_spec
    from tasks.weights import initial_weights

    monkeypatch.setattr(multistep, "triton_installed", lambda: False)
    spec = get_spec("lif_layer", neurons=8, T=4)
    with pytest.raises(NotImplementedError, match="Triton"):
        FusedSTBPBackend(spec, initial_weights(spec), device="cuda")


# ------------------------------------------------------------------ the fused CPU paths beyond the neuron
@needs_numba
@pytest.mark.parametrize("task,flags", [
    ("synthetic", dict(fuse_synthetic=False)),
    ("fc_mnist", dict(fuse_fc=False)),
    ("fc_mnist_poisson", dict(fuse_fc=False, spike_linear=False)),
    ("dsrn_tdbn", dict(spike_bytes=False)),
    ("dsrn_tdbn", dict(fuse_tdbn=False)),
    ("dsrn_tdbn", dict(channels_last_cpu=False)),
], ids=["synthetic-one-node", "fc-neuron+linear", "poisson-spike-linear", "dsrn-spike-bytes", "dsrn-tdbn+neuron",
        "dsrn-channels-last"])
def test_fused_cpu_paths_equal_the_layers_apart(task, flags):
    """Each fused CPU path gives the gradients and loss of the layers run apart (float64)."""
    fused, case = fused_variant(task)
    apart, _ = fused_variant(task, **flags)
    batch = case.batches[0]
    want, got = apart.gradients(batch), fused.gradients(batch)
    for name in want:
        torch.testing.assert_close(torch.from_numpy(got[name]), torch.from_numpy(want[name]), rtol=1e-10, atol=1e-12)
    assert abs(fused.train_step(batch) - apart.train_step(batch)) <= 1e-12 * abs(apart.train_step(batch)) + 1e-12


@needs_numba
def test_fused_backend_stages_binary_spikes_in_one_byte():
    import dataclasses

    backend, case = fused_variant("synthetic", "fp32")
    batch = case.batches[0]
    assert backend.stage(batch).x.dtype == torch.uint8
    assert backend.stage(dataclasses.replace(batch, x=batch.x * 0.5)).x.dtype == torch.float32  # not spikes
    assert fused_variant("synthetic", "fp32", spike_input_bytes=False)[0].stage(batch).x.dtype == torch.float32
    assert fused_variant("synthetic", "bf16")[0].stage(batch).x.dtype == torch.float32  # autocast: the layers apart
    poisson, poisson_case = fused_variant("fc_mnist_poisson", "fp32")  # spikes into a dense product: floats
    assert poisson.stage(poisson_case.batches[0]).x.dtype == torch.float32


@needs_numba
def test_fused_paths_are_taken_in_training(monkeypatch):
    from backends.stbp import cpu_kernels, spike_linear

    # whatever the parity case's input density (the density rule has its own test)
    monkeypatch.setattr(spike_linear, "MAX_DENSITY", 1.0)
    calls = []
    from backends.stbp import cpu_tdbn

    for module, name in ((cpu_kernels, "torch_synaptic_forward"), (cpu_kernels, "torch_neuron_linear_forward"),
                         (cpu_kernels, "torch_spike_linear"), (cpu_tdbn, "torch_tdbn_neuron_forward")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _n=name, **k: (calls.append(_n), _o(*a, **k))[1])
    for task in ("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn"):
        backend, case = fused_variant(task, "fp32")
        backend.train_step(case.batches[0])
        backend.evaluate(case.batches[0])  # no gradient: the layers apart (spike linear layers accumulate)
    assert calls.count("torch_synaptic_forward") == 1
    assert calls.count("torch_neuron_linear_forward") == 2
    assert calls.count("torch_spike_linear") == 2  # fc_mnist_poisson's fc1: 196 outputs fed by input spikes
    dsrn = parity_case("dsrn_tdbn").spec
    assert calls.count("torch_tdbn_neuron_forward") == 2 * len(dsrn.blocks())  # both tdBNs of every block
