"""backends/torch_networks.py: tdBN, and the folded tdBN stbp:fused uses."""

import pytest

torch = pytest.importorskip("torch")

from backends.torch_networks import FoldedTdBN, TdBN  # noqa: E402


@pytest.mark.parametrize("training", [True, False])
def test_fused_tdbn_equals_tdbn(training):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 4, 6, 6, generator=gen, dtype=torch.float64) * 2 + 0.3
    clear, fused = TdBN(4, 0.7, 0.4, 1e-5, 0.1).double(), FoldedTdBN(4, 0.7, 0.4, 1e-5, 0.1).double()
    for bn in (clear, fused):
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(0.5, 1.5, 4))
            bn.bias.copy_(torch.linspace(-0.2, 0.2, 4))
            bn.running_var.fill_(2.0)
        bn.train(training)
    torch.testing.assert_close(fused(x), clear(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused(x[0], steps=3), clear(x[0], steps=3), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused.running_var, clear.running_var, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused.running_mean, clear.running_mean, rtol=1e-12, atol=1e-12)


def test_static_tdbn_counts_every_step_in_the_running_variance():
    x = torch.randn(5, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    bn = TdBN(2, 1.0, 0.4, 1e-5, 0.1).double()
    bn(x, steps=4)
    n = 4 * 5 * 3 * 3
    var = x.var((0, 2, 3), unbiased=False)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var * n / (n - 1))
