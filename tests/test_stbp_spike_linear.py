"""backends/stbp/spike_linear.py: the product of one-byte spikes and a weight."""

import pytest

torch = pytest.importorskip("torch")

from tests.stbp_cases import needs_numba  # noqa: E402


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape,density,bias", [((300, 100, 4), 0.01, True), ((64, 784, 196), 0.13, False),
                                                ((7, 13, 40), 0.5, True)])
def test_spike_linear_equals_linear(shape, density, bias, dtype):
    from backends.stbp.spike_linear import SpikeLinear

    R, J, K = shape
    gen = torch.Generator().manual_seed(4)
    x = (torch.rand(3, R, J, generator=gen, dtype=dtype) < density).to(dtype).requires_grad_(True)
    torch.manual_seed(6)  # the layer's initial weights
    linear = torch.nn.Linear(J, K, bias=bias).to(dtype)
    g = torch.randn(3, R, K, generator=gen, dtype=dtype)
    results = []
    for module in (linear, SpikeLinear.like(linear)):
        linear.zero_grad(set_to_none=True)
        x.grad = None
        y = module(x)
        y.backward(g)
        results.append((y.detach(), x.grad.clone(), linear.weight.grad.clone(),
                        linear.bias.grad.clone() if bias else None))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-4)
    for want, got in zip(*results):
        if want is not None:
            torch.testing.assert_close(got, want, **tol)


@needs_numba
def test_spike_linear_on_inputs_that_are_not_spikes_is_a_dense_product():
    from backends.stbp.spike_linear import SpikeLinear

    torch.manual_seed(2)  # the layer's initial weights
    linear = torch.nn.Linear(6, 3).double()
    x = torch.rand(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    y = SpikeLinear.like(linear)(x)
    torch.testing.assert_close(y, linear(x), rtol=1e-14, atol=1e-14)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, linear.weight.sum(0).expand(5, 6), rtol=1e-14, atol=1e-14)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the precision policy's bfloat16 product
        assert SpikeLinear.like(linear.float())(x.float().round()).dtype == torch.bfloat16


@needs_numba
def test_spike_linear_multiplies_densely_above_its_density_bound(monkeypatch):
    from backends.stbp import cpu_kernels
    from backends.stbp.spike_linear import MAX_DENSITY, SpikeLinear

    calls = []
    original = cpu_kernels.torch_spike_linear
    monkeypatch.setattr(cpu_kernels, "torch_spike_linear", lambda *a: (calls.append(1), original(*a))[1])
    torch.manual_seed(6)  # the layer's initial weights
    linear = torch.nn.Linear(100, 64)
    gen = torch.Generator().manual_seed(0)
    for density, accumulated in ((MAX_DENSITY / 2, True), (min(1.0, MAX_DENSITY * 2), False)):
        calls.clear()
        x = (torch.rand(50, 128, 100, generator=gen) < density).float()
        torch.testing.assert_close(SpikeLinear.like(linear)(x), linear(x), rtol=1e-5, atol=1e-5)
        assert bool(calls) == accumulated, density
