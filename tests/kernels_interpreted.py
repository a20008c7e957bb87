"""The Triton kernels of stbp:fused, run by Triton's interpreter on CPU tensors.

Not collected on its own (Triton must see TRITON_INTERPRET=1 before its first
import): ``tests/test_stbp_kernels.py`` runs this file in a fresh process.
Each kernel is compared with the PyTorch engine, which the other tests
compare with autograd of the clear neurons.
"""

import os

import numpy as np
import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("run by tests/test_stbp_kernels.py with TRITON_INTERPRET=1", allow_module_level=True)

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from backends.stbp import multistep  # noqa: E402
from backends.stbp.fused import FusedBlocks  # noqa: E402
from backends.stbp.networks import CLEAR  # noqa: E402
from backends.torch_networks import build_network  # noqa: E402
from tasks.parity import parity_case  # noqa: E402
from tasks.specs import TASKS  # noqa: E402
from tests.stbp_cases import KINDS, T, inputs, run_backward  # noqa: E402

@pytest.mark.parametrize("static", [False, True], ids=["time-major", "static"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_triton_kernels_equal_the_torch_engine(kind, static):
    p = KINDS[kind][0]
    x, gs, gm = inputs(kind, static, torch.float32, seed=3)
    steps = T if static else None
    want = run_backward(lambda v: multistep.neuron(kind, v, p, True, steps, "torch"), x, gs, gm)
    got = run_backward(lambda v: multistep.neuron(kind, v, p, True, steps, "triton"), x, gs, gm)
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=1e-5)
    # without gradients, the membrane is only written when asked for
    with torch.no_grad():
        s, m = multistep.neuron(kind, x, p, False, steps, "triton")
    assert m is None and torch.equal(s, want[0])


def test_triton_kernels_take_channels_last_and_gradients_of_another_layout():
    p = KINDS["stbp"][0]
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(3 * 2, 5, 4, 4, generator=gen) * 1.2 - 0.1
    x = x.contiguous(memory_format=torch.channels_last).unflatten(0, (3, 2))
    g = torch.randn(3, 2, 5, 4, 4, generator=gen)  # contiguous: not x's layout
    want = run_backward(lambda v: multistep.neuron("stbp", v, p, True, None, "torch"), x, g, g)
    got = run_backward(lambda v: multistep.neuron("stbp", v, p, True, None, "triton"), x, g, g)
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=1e-5)


def test_triton_synapse_equals_the_torch_engine():
    x, g, _ = inputs("soft", False, torch.float32)
    zero = torch.zeros_like(g)
    want = run_backward(lambda v: (multistep.synapse(v, 0.9, "torch"), v), x, g, zero)
    got = run_backward(lambda v: (multistep.synapse(v, 0.9, "triton"), v), x, g, zero)
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got[2], want[2], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("task", list(TASKS))
def test_triton_network_equals_the_clear_network(task):
    """Every task's parity case in float32: the fused network with the Triton
    kernels gives the clear network's spikes, loss gradients and tdBN statistics."""
    from backends.torch_common import task_loss

    case = parity_case(task)
    batch = case.batches[0]
    results = []
    for blocks in (CLEAR, FusedBlocks("triton")):
        model = build_network(case.spec, blocks).float()
        state = model.state_dict()
        with torch.no_grad():
            for name, value in case.weights.items():
                state[name].copy_(torch.from_numpy(np.asarray(value)))
        x = torch.from_numpy(np.ascontiguousarray(batch.x)).float()
        out = model(x, static=batch.static, record=False)
        loss, _ = task_loss(case.spec, out, torch.from_numpy(batch.y))
        loss.backward()
        grads = {k: v.grad.clone() for k, v in model.named_parameters()}
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        results.append(({k: v.detach() for k, v in out.spikes.items()}, loss.item(), grads, buffers))
    (s0, l0, g0, b0), (s1, l1, g1, b1) = results
    mismatches = sum(int((s0[k] != s1[k]).sum()) for k in s0)
    total = sum(s0[k].numel() for k in s0)
    # float32 rounding differs between the two (folded vs per-step arithmetic):
    # a spike may flip where a membrane sits within rounding of the threshold
    assert mismatches <= 1e-4 * total
    assert abs(l0 - l1) <= 1e-4 * max(abs(l0), 1e-6)
    for k in g0:
        scale = float(g0[k].abs().max())
        assert float((g0[k] - g1[k]).abs().max()) <= 1e-3 * max(scale, 1e-6), k
    for k in b0:
        torch.testing.assert_close(b1[k], b0[k], rtol=1e-4, atol=1e-5)
