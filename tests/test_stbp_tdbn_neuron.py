"""backends/stbp/tdbn_neuron.py (and cpu_tdbn, cpu_tdbn_node): tdBN and the neuron it feeds in one
node."""

import contextlib

import pytest

torch = pytest.importorskip("torch")

from backends.stbp import multistep  # noqa: E402
from backends.torch_networks import FoldedTdBN  # noqa: E402
from tests.stbp_cases import KINDS, needs_numba  # noqa: E402


def _tdbn_case(kind, residual, dtype, seed=0):
    """x, the residual (None, spikes, floats, or the input of a tdBN of its own), the spikes'
    gradient and the two tdBN modules (weights and biases away from 1 and 0)."""
    T_, B, C, H, W = 3, 4, 5, 6, 7
    gen = torch.Generator().manual_seed(seed)
    p, scale = KINDS[kind]
    x = torch.randn(T_, B, C, H, W, generator=gen, dtype=dtype) * 2 * scale + 0.3
    shape = (T_, B, C, H, W)
    r = {"none": None, "spikes": (torch.rand(shape, generator=gen, dtype=dtype) < 0.3).to(dtype),
         "floats": torch.randn(shape, generator=gen, dtype=dtype), "tdbn": torch.randn(shape, generator=gen, dtype=dtype) * 3 - 1}[residual]
    gs = torch.randn(shape, generator=gen, dtype=dtype)
    bns = []
    for alpha, lo, hi in ((0.7, 0.5, 1.5), (0.5, 1.5, 0.3)):
        bn = FoldedTdBN(C, alpha, p[1], 1e-5, 0.1).to(dtype)
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(lo, hi, C, dtype=dtype))
            bn.bias.copy_(torch.linspace(-0.2 * lo, 0.3 * hi, C, dtype=dtype))
        bns.append(bn)
    return p, x, r, gs, bns


def _channels_last_steps(t):
    """``t`` [T, B, C, H, W] with every step channels-last (the same values)."""
    out = t.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    assert not out.is_contiguous()
    return out


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("residual", ["none", "spikes", "floats", "tdbn"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("cores_share", [False, True], ids=["one-task", "tasks"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_tdbn_neuron_equals_the_layers_apart(monkeypatch, kind, residual, dtype, cores_share, channels_last):
    """tdBN (+ residual, or + the residual's own tdBN) and the neuron as one node: the same
    spikes, input, residual, weight and bias gradients and running statistics as tdBN, the
    sum and the torch engine's neuron run apart -- on NCHW steps and on channels-last ones,
    whose layout the node's spikes and gradients keep."""
    from backends.stbp import cpu_kernels, cpu_tdbn
    from backends.stbp.tdbn_neuron import tdbn_neuron

    if cores_share:  # threaded; a sample's 5 channels (NCHW) or 42 positions (channels-last) cut into
        monkeypatch.setattr(cpu_kernels, "PARALLEL_MIN", 1)  # tasks, the last cut short
        monkeypatch.setattr(cpu_tdbn, "TASK_VALUES", 2 * 42)
    layout = _channels_last_steps if channels_last else (lambda t: t)
    results = []
    for fused in (False, True):
        p, x0, r0, gs, (bn, rbn) = _tdbn_case(kind, residual, dtype)
        x0, gs = layout(x0), layout(gs)
        r0 = None if r0 is None else layout(r0)
        rbn = rbn if residual == "tdbn" else None
        x = x0.clone().requires_grad_(True)
        r = None if r0 is None else r0.clone().requires_grad_(True)
        if fused:
            s = tdbn_neuron(bn, kind, p, x, r, rbn)
        else:
            y = bn(x) + (0 if r is None else rbn(r) if rbn is not None else r)
            s, _ = multistep.neuron(kind, y, p, False, None, "torch")
        (s * gs).sum().backward()
        if fused:
            assert s.stride() == x.grad.stride() == x0.stride()
        got = [s.detach(), x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var]
        if r is not None:
            got.append(r.grad)
        if rbn is not None:
            got += [rbn.weight.grad, rbn.bias.grad, rbn.running_mean, rbn.running_var]
        results.append(got)
    want, got = results
    assert 0.02 < want[0].mean() < 0.98 and torch.equal(got[0], want[0])
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    for a, b in zip(got[1:], want[1:]):
        torch.testing.assert_close(a, b, **tol)


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_static_tdbn_running_statistics_from_the_kernel(monkeypatch, dtype, channels_last):
    """The stem's tdBN on a static batch standing for T steps: with the node's statistics kernel,
    the same output, gradients and running statistics (over T B H W values) as FoldedTdBN's
    ``var_mean`` -- and the kernel, not ``var_mean``, is what ran."""
    from backends.stbp.tdbn_neuron import NumbaStatisticsTdBN

    steps, C = 5, 6
    x0 = torch.randn(4, C, 7, 7, generator=torch.Generator().manual_seed(2), dtype=dtype) * 1.5 + 0.3
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    results = []
    for cls in (FoldedTdBN, NumbaStatisticsTdBN):
        bn = cls(C, 0.7, 0.5, 1e-5, 0.1).to(dtype)
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(0.5, 1.5, C, dtype=dtype))
            bn.running_var.fill_(0.8)
        calls = []
        monkeypatch.setattr(torch, "var_mean", lambda *a, _f=torch.var_mean, **k: calls.append(1) or _f(*a, **k))
        x = x0.clone().requires_grad_(True)
        y = bn(x, steps=steps)
        (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).view_as(y)).sum().backward()
        monkeypatch.undo()
        assert len(calls) == (1 if cls is FoldedTdBN else 0)
        results.append([y.detach(), x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var])
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, **tol)


@needs_numba
def test_tdbn_neuron_keeps_its_input_and_the_residual_spikes_in_one_byte():
    """What the fused node saves for its backward pass: tdBN's input (4 bytes a value),
    the residual spikes' one-byte copy and tdBN's constants per channel -- no membrane,
    no normalised input."""
    from backends.stbp.tdbn_neuron import tdbn_neuron

    p, x0, _, _, (bn, _) = _tdbn_case("stbp", "none", torch.float32)
    saved = []

    def pack(t):
        packed = multistep.spike_bytes._pack(t)
        saved.append(t.numel() * t.element_size() if packed is t else packed[1].numel())
        return packed

    with multistep.spike_bytes.saving(), torch.autograd.graph.saved_tensors_hooks(pack, multistep.spike_bytes._unpack):
        x = x0.clone().requires_grad_(True)
        spikes, _ = multistep.neuron("stbp", x, p, False, None, "numba")  # a layer's spikes, registered
        saved.clear()
        tdbn_neuron(bn, "stbp", p, x0.clone().requires_grad_(True), spikes)
    C = x0.shape[2]
    assert sum(saved) == x0.numel() * 4 + x0.numel() + 5 * C * 4  # x, r in bytes, tdBN's [5, C] constants


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_tdbn_neuron_reads_residual_spikes_from_their_bytes_bitwise(monkeypatch, kind, dtype):
    """A residual of registered spikes is read (forward and backward) from its one-byte copy:
    the same spikes and gradients, to the bit, as the same residual given as plain floats."""
    from backends.stbp import cpu_tdbn
    from backends.stbp.tdbn_neuron import tdbn_neuron

    read = []
    original = cpu_tdbn._residual
    monkeypatch.setattr(cpu_tdbn, "_residual", lambda x, r, scale: read.append(r.dtype) or original(x, r, scale))
    results = []
    for registered in (False, True):
        p, x0, _, gs, (bn, _) = _tdbn_case(kind, "none", dtype)
        v = (torch.rand(x0.shape, generator=torch.Generator().manual_seed(3), dtype=dtype) * 2 - 0.5) * 0.6
        v.requires_grad_(True)
        x = x0.clone().requires_grad_(True)
        with multistep.spike_bytes.saving() if registered else contextlib.nullcontext():
            spikes, _ = multistep.neuron("stbp", v, KINDS["stbp"][0], False, None, "numba")
            residual = spikes if registered else spikes.detach().clone().requires_grad_(True)
            s = tdbn_neuron(bn, kind, p, x, residual)
        assert 0.05 < residual.detach().mean() < 0.95
        (s * gs).sum().backward(inputs=[x, residual, bn.weight, bn.bias])
        results.append([s.detach(), x.grad, residual.grad, bn.weight.grad, bn.bias.grad])
        assert read == [torch.uint8 if registered else dtype] * 2  # forward, backward
        read.clear()
    for a, b in zip(*results):
        assert torch.equal(a, b)
