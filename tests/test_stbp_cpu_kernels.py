"""backends/stbp/cpu_kernels.py and the numba nodes behind it (cpu_neuron_node, cpu_synaptic_node,
cpu_threads): equal to the torch engine, on PyTorch's threads."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from backends.stbp import multistep  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.stbp_cases import KINDS, T, exact, inputs, needs_numba, run_backward, saved_bytes  # noqa: E402


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("static", [False, True], ids=["time-major", "static"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_numba_kernels_equal_the_torch_engine(kind, static, dtype):
    p = KINDS[kind][0]
    x, gs, gm = inputs(kind, static, dtype, seed=5)
    steps = T if static else None
    want = run_backward(lambda v: multistep.neuron(kind, v, p, True, steps, "torch"), x, gs, gm)
    got = run_backward(lambda v: multistep.neuron(kind, v, p, True, steps, "numba"), x, gs, gm)
    assert 0.05 < want[0].mean() < 0.95, "the case must fire, and not always"
    assert got[0].dtype == got[1].dtype == got[2].dtype == dtype
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    torch.testing.assert_close(got[2], want[2], **exact(kind, dtype))
    # only the spikes used: no membrane gradient reaches the backward
    want = run_backward(lambda v: multistep.neuron(kind, v, p, False, steps, "torch"), x, gs, torch.zeros_like(gm))
    got = run_backward(lambda v: multistep.neuron(kind, v, p, False, steps, "numba"), x, gs, torch.zeros_like(gm))
    torch.testing.assert_close(got[2], want[2], **exact(kind, dtype))
    # without gradients the membrane is written only when asked for
    with torch.no_grad():
        for record in (True, False):
            s, m = multistep.neuron(kind, x, p, record, steps, "numba")
            assert torch.equal(s, want[0]) and (m is None) != record
            if record:
                assert torch.equal(m, want[1])


@needs_numba
@pytest.mark.parametrize("kind", list(KINDS))
def test_numba_kernels_on_a_layer_the_cores_share(kind):
    """Many blocks of neurons, the last one short, on the parallel path; a spike
    gradient broadcast over time (the gradient of a mean over time) read in place."""
    from backends.stbp import cpu_kernels

    steps, shape = 5, (21, 5003)  # 105 063 neurons: several blocks of any size, the last one short
    assert steps * 21 * 5003 >= cpu_kernels.PARALLEL_MIN
    p = KINDS[kind][0]
    gen = torch.Generator().manual_seed(2)
    for static in (False, True):
        x = (torch.rand(shape if static else (steps,) + shape, generator=gen) * 2 - 0.5) * KINDS[kind][1]
        n = steps if static else None
        results = []
        for engine in ("torch", "numba"):
            v = x.clone().requires_grad_(True)
            s, m = multistep.neuron(kind, v, p, False, n, engine)
            (s.mean(0).sum() + (m * m).sum()).backward()
            results.append((s.detach(), m.detach(), v.grad))
        want, got = results
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        torch.testing.assert_close(got[2], want[2], **exact(kind, torch.float32))


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_numba_synapse_equals_the_torch_engine(dtype):
    x, g, _ = inputs("soft", False, dtype)
    want = run_backward(lambda v: (multistep.synapse(v, 0.9, "torch"), v), x, g, torch.zeros_like(g))
    got = run_backward(lambda v: (multistep.synapse(v, 0.9, "numba"), v), x, g, torch.zeros_like(g))
    assert torch.equal(got[0], want[0]) and torch.equal(got[2], want[2])


@needs_numba
def test_numba_backward_keeps_only_the_membrane():
    p = KINDS["stbp"][0]
    x, _, _ = inputs("stbp", False, torch.float32)
    assert saved_bytes(lambda v: multistep.neuron("stbp", v, p, False, None, "numba"), x) == x.numel() * 4


@needs_numba
@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="counts threads in /proc, two of them")
def test_numba_kernels_run_on_pytorchs_thread_pool_in_a_fresh_process():
    """The neuron kernels' threads are PyTorch's OpenMP threads: a threaded kernel
    after a threaded PyTorch product starts no thread of its own (numba's own
    pool, workqueue, starts one per thread), and the device record says so."""
    code = "\n".join([
        "import os, torch",
        "import scipy.linalg  # numba imports it when it loads a kernel; its BLAS starts a thread",
        "count = lambda: len(os.listdir('/proc/self/task'))",
        "torch.set_num_threads(2)",
        "torch.nn.functional.linear(torch.ones(512, 512), torch.ones(512, 512))",
        "before = count()",
        "from backends.stbp import cpu_kernels as ck",
        "x = torch.rand(16, 1 << 16, generator=torch.Generator().manual_seed(0))",
        "assert 16 * (1 << 16) >= ck.PARALLEL_MIN and ck.sync_threads() == 2",
        "ck.torch_neuron_forward('hard', x, (2.0, 1.0, 4.0), None, True)",
        "info = ck.thread_info()",
        "print(before, count(), info['numba_threading_layer'], info['numba_shares_torch_threads'])",
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after, layer, shared = proc.stdout.split()
    assert (layer, shared) == ("omp", "True")
    assert after == before


@needs_numba
def test_numba_threads_follow_torch_and_are_recorded():
    from backends.stbp import cpu_kernels
    from backends.stbp.fused import FusedSTBPBackend
    from tasks.specs import get_spec
    from tasks.weights import initial_weights

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert cpu_kernels.sync_threads() == 1
        spec = get_spec("lif_layer", neurons=8, T=4)
        info = FusedSTBPBackend(spec, initial_weights(spec)).device_info()
        assert info["neuron_engine"] == "numba" and info["numba_threads"] == 1
        assert info["numba_threading_layer"]
    finally:
        torch.set_num_threads(before)
    assert cpu_kernels.sync_threads() == min(before, cpu_kernels.numba.config.NUMBA_NUM_THREADS)


@needs_numba
@pytest.mark.parametrize("cores_share", [False, True], ids=["one-task", "chunks"])
@pytest.mark.parametrize("shape", [(7, 3, 13), (20, 8, 100), (3, 1, 5)], ids=["unaligned-rows", "synthetic-rows", "tiny"])
def test_synthetic_node_reads_one_byte_spikes_as_floats(monkeypatch, shape, cores_share):
    """The synthetic node on spikes in one byte (tested 8 at a time, over rows not
    aligned to 8 bytes, cut into chunks the cores share) gives exactly what it
    gives on the same spikes as floats; a byte that is not 0 or 1 is refused."""
    from backends.stbp import cpu_kernels

    if cores_share:
        monkeypatch.setattr(cpu_kernels, "PARALLEL_MIN", 1)
    T, B, J = shape
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(shape, generator=gen) < 0.15).float()
    x[0, 0, 0] = x[-1, -1, -1] = 1.0  # the first and the last byte of the memory
    w1, b1 = torch.randn(4, J, generator=gen), torch.randn(4, generator=gen)
    w2, b2 = torch.randn(2, 4, generator=gen), torch.randn(2, generator=gen)
    p = (0.95, 1.0, 0.3, 1.0)
    want = cpu_kernels.torch_synaptic_forward(x, w1, b1, w2, b2, 0.9, p)
    got = cpu_kernels.torch_synaptic_forward(x.to(torch.uint8), w1, b1, w2, b2, 0.9, p)
    for a, b in zip(got[:3] + got[3], want[:3] + want[3]):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert len(got[3][0]) == int(x.sum())
    x8 = x.to(torch.uint8)
    x8[-1, -1, -1] = 2
    assert cpu_kernels.torch_synaptic_forward(x8, w1, b1, w2, b2, 0.9, p) is None


@needs_numba
@pytest.mark.parametrize("cores_share", [False, True], ids=["one-task", "chunks"])
def test_spikes_are_converted_to_bytes_only_when_every_input_is_0_or_1(monkeypatch, cores_share):
    from backends.stbp import cpu_kernels

    if cores_share:
        monkeypatch.setattr(cpu_kernels, "PARALLEL_MIN", 1)
    x = (torch.rand(7, 3, 13, generator=torch.Generator().manual_seed(4)) < 0.2).float()
    got = cpu_kernels.torch_spike_bytes(x)
    assert got.dtype == torch.uint8 and torch.equal(got, x.to(torch.uint8))
    for value in (2.0, -1.0, 0.5, float("nan")):
        y = x.clone()
        y[-1, -1, -1] = value
        assert cpu_kernels.torch_spike_bytes(y) is None, value
