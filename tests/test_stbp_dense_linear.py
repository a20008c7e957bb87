"""backends/stbp/dense_linear.py: oneDNN's products."""

import pytest

torch = pytest.importorskip("torch")

from tests.stbp_cases import fused_variant  # noqa: E402


needs_onednn = pytest.mark.skipif(not __import__("backends.stbp.dense_linear", fromlist=["x"]).available(),
                                  reason="this PyTorch build has no oneDNN")


@needs_onednn
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("input_grad", [True, False], ids=["input-grad", "weights-only"])
def test_dense_linear_equals_a_float64_product(bias, input_grad):
    """oneDNN's float32 products (forward, input and weight gradients) are float32-accurate
    against float64, on strided views too: no reduced-precision path."""
    from backends.stbp.dense_linear import DenseLinear, matmul_nt, onednn_applies

    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(6)  # the layer's initial weights
    linear = torch.nn.Linear(300, 130, bias=bias)
    x = torch.randn(2, 700, 300, generator=gen).requires_grad_(input_grad)
    g = torch.randn(2, 700, 130, generator=gen)
    dense = DenseLinear.like(linear)
    assert onednn_applies(x, dense.weight)
    y = dense(x)
    y.backward(g)
    x64, w64 = x.detach().double(), linear.weight.detach().double()
    want_y = x64 @ w64.T + (linear.bias.detach().double() if bias else 0)
    tol = dict(rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(y.detach().double(), want_y, **tol)
    g64 = g.double().reshape(-1, 130)
    torch.testing.assert_close(linear.weight.grad.double(), g64.T @ x64.reshape(-1, 300), **tol)
    if bias:
        torch.testing.assert_close(linear.bias.grad.double(), g64.sum(0), **tol)
    if input_grad:
        torch.testing.assert_close(x.grad.double(), (g64 @ w64).reshape(2, 700, 300), **tol)
    else:
        assert x.grad is None
    a = torch.randn(64, 90, generator=gen)
    torch.testing.assert_close(matmul_nt(a.T, a.T).double(), a.T.double() @ a.double(), **tol)  # both strided


def test_dense_linear_leaves_other_dtypes_to_torch():
    """float64 (parity), bfloat16 autocast (the precision policy) and empty inputs take F.linear."""
    from backends.stbp.dense_linear import DenseLinear, onednn_applies

    torch.manual_seed(4)  # the layer's initial weights
    linear = torch.nn.Linear(6, 3).double()
    x = torch.rand(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert not onednn_applies(x, linear.weight)
    torch.testing.assert_close(DenseLinear.like(linear)(x), linear(x), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn_applies(x.float(), linear.weight.float())
        assert DenseLinear.like(linear.float())(x.float()).dtype == torch.bfloat16
    assert DenseLinear.like(linear.float())(torch.empty(0, 6)).shape == (0, 3)


@needs_onednn
def test_dense_products_and_allocator_are_taken_and_recorded():
    """On the CPU the lif_layer's linear layer is a DenseLinear, and the record says what ran."""
    from backends.stbp import allocator
    from backends.stbp.dense_linear import DenseLinear

    backend, case = fused_variant("lif_layer", "fp32", onednn_linear=True)
    assert type(backend.model.fc) is DenseLinear
    info = backend.device_info()
    assert info["dense_products"].startswith("oneDNN") and "fp32_precision" in info["dense_products"]
    assert info["host_allocator"] == allocator.policy()
    off, _ = fused_variant("lif_layer", "fp32", onednn_linear=False)
    assert type(off.model.fc) is torch.nn.Linear and off.device_info()["dense_products"] == "torch.mm"
    poisson, _ = fused_variant("fc_mnist_poisson", "fp32", onednn_linear=False)
    assert poisson.model.fc1.onednn is False  # a spike layer's dense fallback follows the switch too
    torch.testing.assert_close(torch.from_numpy(backend.gradients(case.batches[0])["fc.weight"]),
                               torch.from_numpy(off.gradients(case.batches[0])["fc.weight"]), rtol=1e-4, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("vendor,onednn", [("AuthenticAMD", True), ("GenuineIntel", False), (None, True)])
def test_dense_products_go_to_onednn_where_mkl_is_not_at_its_best(monkeypatch, vendor, onednn):
    from backends.stbp.dense_linear import DenseLinear
    from tasks import cpu

    monkeypatch.setattr(cpu, "vendor", lambda: vendor)
    backend, _ = fused_variant("lif_layer", "fp32")
    assert (type(backend.model.fc) is DenseLinear) is onednn
    assert backend.device_info()["dense_products"].startswith("oneDNN" if onednn else "torch.mm")
