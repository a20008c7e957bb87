"""backends/stbp/neuron_linear.py: a neuron and the linear layer it feeds in one node."""

import pytest

torch = pytest.importorskip("torch")

from backends.stbp import multistep  # noqa: E402
from tests.stbp_cases import KINDS, T, needs_numba  # noqa: E402


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("static", [False, True], ids=["time-major", "static"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("membrane", [True, False], ids=["membranes-kept", "membranes-recomputed"])
def test_neuron_linear_equals_the_layers_apart(kind, static, dtype, membrane):
    """The fused node (hidden neurons, linear layer, output neurons of the next kind) against
    the three layers apart; without the membranes asked for, the node keeps a static input
    and its backward pass computes them again.  The loss reads the output spikes and
    membranes (and the hidden membranes where they come out)."""
    from backends.stbp.neuron_linear import neuron_linear

    p, scale = KINDS[kind]
    out_kind = list(KINDS)[(list(KINDS).index(kind) + 1) % len(KINDS)]
    out_p = KINDS[out_kind][0]
    # K = 6: one block of four rows of W and two rows on their own; B = 5: one group
    # of four samples for W's gradient and one cut short
    B, N, K = 5, 33, 6
    gen = torch.Generator().manual_seed(1)
    x0 = (torch.rand((B, N) if static else (T, B, N), generator=gen, dtype=dtype) * 2 - 0.5) * scale
    w0 = torch.randn(K, N, generator=gen, dtype=dtype) * 0.3 * KINDS[out_kind][1]
    b0 = torch.randn(K, generator=gen, dtype=dtype) * 0.3
    gs_out, gm_out = torch.randn(T, B, K, generator=gen, dtype=dtype), torch.randn(T, B, K, generator=gen, dtype=dtype)
    gm = torch.randn(T, B, N, generator=gen, dtype=dtype)
    results = []
    for fused in (False, True):
        x, w, b = (t.clone().requires_grad_(True) for t in (x0, w0, b0))
        if fused:
            s, m, s_out, m_out = neuron_linear(kind, x, p, w, b, out_kind, out_p, T if static else None,
                                               record=membrane)
            assert s.dtype == torch.uint8 and (m is None) == (static and not membrane)
            s = s.to(dtype)
        else:
            s, m = multistep.neuron(kind, x, p, False, T if static else None, "torch")
            s_out, m_out = multistep.neuron(out_kind, torch.nn.functional.linear(s, w, b), out_p, True, None, "torch")
        loss = (s_out * gs_out).sum() + (m_out * gm_out).sum()
        if membrane:
            loss = loss + (m * gm).sum()
        loss.backward()
        results.append((s.detach(), s_out.detach(), m_out.detach(), x.grad, w.grad, b.grad, m))
    want, got = results
    assert 0.05 < want[0].mean() < 0.95 and 0.01 < want[1].mean() < 0.99  # (some output neurons fire)
    assert torch.equal(got[0], want[0]) and (not membrane or torch.equal(got[-1], want[-1]))
    # float32: the linear layer's sums in another order than F.linear's reach the output
    # neurons' surrogates and, through them, every gradient (float64 shows the equations agree)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for a, b in zip(got[1:-1], want[1:-1]):
        torch.testing.assert_close(a, b, **tol)


@needs_numba
@pytest.mark.parametrize("static", [False, True], ids=["time-major", "static"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_neuron_linear_recomputed_membranes_give_the_same_gradients_to_the_bit(kind, static):
    """The node's backward pass from the input (membranes computed again) against the same
    pass from the membranes the forward wrote: the same spikes, outputs and input and bias
    gradients, bitwise; W's gradient is summed in another order (four samples' steps at a time)."""
    from backends.stbp import cpu_kernels

    p, scale = KINDS[kind]
    B, N, K = 13, 37, 6
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand((B, N) if static else (T, B, N), generator=gen) * 2 - 0.5) * scale
    w, b = torch.randn(K, N, generator=gen) * 0.3, torch.randn(K, generator=gen)
    steps = T if static else None
    kept = cpu_kernels.torch_neuron_linear_forward(kind, x, p, steps, w, b, True, kind, p)
    s8, none, s_out, m_out = cpu_kernels.torch_neuron_linear_forward(kind, x, p, steps, w, b, False, kind, p)
    assert none is None and all(torch.equal(a, c) for a, c in zip((s8, s_out, m_out), kept[:1] + kept[2:]))
    gs_out, gm_out = torch.randn(m_out.shape, generator=gen), torch.randn(m_out.shape, generator=gen)
    from_m = cpu_kernels.torch_neuron_linear_backward(kind, kept[1], p, w, m_out, kind, p, gs_out, gm_out, static)
    from_x = cpu_kernels.torch_neuron_linear_backward(kind, x, p, w, m_out, kind, p, gs_out, gm_out, static, T)
    assert torch.equal(from_m[0], from_x[0]) and torch.equal(from_m[2], from_x[2])
    torch.testing.assert_close(from_x[1], from_m[1], rtol=1e-5, atol=1e-5)
