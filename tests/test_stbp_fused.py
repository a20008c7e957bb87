"""stbp:fused: the hand-written multi-step backward, the Triton kernels (run by
Triton's interpreter on the CPU), the numba CPU kernels and the fallback
without numba, the one-call tdBN, and what the backward keeps."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.stbp import multistep, neurons  # noqa: E402
from backends.torch_networks import FoldedTdBN, TdBN  # noqa: E402
from tasks import reference  # noqa: E402
from tasks.parity import check_backend, parity_case  # noqa: E402
from tasks.specs import TASKS  # noqa: E402
from tests.backend_contract import assert_parity  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

# Parameters of each neuron kind (multistep's order) and an input scale that
# makes it fire often enough for resets and surrogates to matter.
KINDS = {
    "soft": ((0.5, 1.0, 0.3, 1.0), 3.0),
    "subtractive": ((0.9, 1.0, 2.0), 1.0),
    "hard": ((2.0, 1.0, 4.0), 2.0),
    "stbp": ((0.25, 0.4, 0.5, 0.0), 0.6),
}
T, SHAPE = 9, (4, 6)
# the same neurons in tasks.reference, with KINDS' parameters
REFERENCE_NEURONS = {"soft": "soft_reset_lif", "subtractive": "subtractive_lif", "hard": "hard_reset_lif",
                     "stbp": "stbp_lif"}
REFERENCE_ARGS = {"soft": (0.5, 1.0), "subtractive": (0.9, 1.0), "hard": (2.0, 1.0), "stbp": (0.25, 0.4)}


def _inputs(kind, static, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scale = KINDS[kind][1]
    shape = SHAPE if static else (T,) + SHAPE
    x = (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 0.5) * scale
    gs = torch.randn((T,) + SHAPE, generator=gen, dtype=dtype)
    gm = torch.randn((T,) + SHAPE, generator=gen, dtype=dtype)
    return x, gs, gm


def _clear(kind, x, p, static):
    xs = x.unsqueeze(0).expand((T,) + tuple(x.shape)) if static else x
    return {"soft": neurons.soft_reset_lif, "subtractive": neurons.subtractive_lif,
            "hard": neurons.hard_reset_lif, "stbp": neurons.stbp_lif}[kind](xs, *p, record=True)


def _run(fn, x, gs, gm):
    """Spikes, membranes and the input gradient of sum(s * gs + m * gm)."""
    x = x.clone().requires_grad_(True)
    s, m = fn(x)
    (s * gs + m * gm).sum().backward()
    return s.detach(), m.detach(), x.grad


@pytest.mark.parametrize("static", [False, True], ids=["time-major", "static"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_hand_written_backward_equals_autograd_of_the_clear_neuron(kind, static):
    p = KINDS[kind][0]
    x, gs, gm = _inputs(kind, static)
    want = _run(lambda v: _clear(kind, v, p, static), x, gs, gm)
    got = _run(lambda v: multistep.neuron(kind, v, p, True, T if static else None, "torch"), x, gs, gm)
    assert 0.05 < want[0].mean() < 0.95, "the case must fire, and not always"
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[2], want[2], rtol=1e-10, atol=1e-12)


def test_synapse_backward_equals_autograd():
    x, g, _ = _inputs("soft", False)
    want = _run(lambda v: (neurons.exponential_synapse(v, 0.9), v), x, g, torch.zeros_like(g))
    got = _run(lambda v: (multistep.synapse(v, 0.9, "torch"), v), x, g, torch.zeros_like(g))
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[2], want[2], rtol=1e-12, atol=1e-12)


def _saved_bytes(fn, x):
    """Bytes autograd keeps for the backward pass of ``fn(x)``."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.clone().requires_grad_(True))
    return sum(saved)


def test_backward_keeps_only_the_membrane():
    p = KINDS["stbp"][0]
    x, _, _ = _inputs("stbp", False, torch.float32)
    fused = _saved_bytes(lambda v: multistep.neuron("stbp", v, p, False, None, "torch"), x)
    clear = _saved_bytes(lambda v: neurons.stbp_lif(v, *p, record=False), x)
    assert fused == x.numel() * 4  # one float32 membrane [T, ...]
    assert clear >= 2 * fused


def test_static_input_is_not_repeated_in_memory():
    p = KINDS["subtractive"][0]
    x, _, _ = _inputs("subtractive", True, torch.float32)
    s, m = multistep.neuron("subtractive", x.requires_grad_(True), p, True, T, "torch")
    assert s.shape == (T,) + SHAPE
    (g,) = torch.autograd.grad(s.sum() + m.sum(), x)
    assert g.shape == SHAPE  # summed over time in the backward pass itself


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


@pytest.mark.parametrize("task", list(TASKS))
def test_fused_backend_parity(task):
    row = check_backend(task, "stbp:fused")
    assert row.precision == "fp64"
    assert_parity(row)


# ------------------------------------------------------------------ the Triton kernels
def test_triton_kernels_under_the_interpreter():
    """tests/kernels_interpreted.py, in a fresh process: Triton reads
    TRITON_INTERPRET when it is first imported, which here has happened already."""
    pytest.importorskip("triton")
    here = os.path.dirname(__file__)
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(here, "kernels_interpreted.py")],
                          cwd=os.path.dirname(here), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout


def test_engine_choice():
    x = torch.zeros(2, 3)
    cpu = "numba" if multistep.numba_installed() else "torch"  # CPU: no Triton kernel
    assert multistep.engine_for(x) == cpu
    assert multistep.engine_for(x.double()) == cpu
    assert multistep.engine_for(x.half()) == "torch"
    assert multistep.engine(True, torch.float64) == "torch"
    assert multistep.engine_for(x, "triton") == "triton"
    with pytest.raises(KeyError):
        multistep.neuron("nope", x, (1.0, 1.0, 1.0), False)


def test_without_numba_the_cpu_runs_the_torch_engine(monkeypatch):
    monkeypatch.setattr(multistep, "numba_installed", lambda: False)
    x = torch.zeros(2, 3)
    assert multistep.engine_for(x) == "torch"
    assert multistep.engine_for(x.double()) == "torch"
    from backends.stbp.fused import FusedSTBPBackend
    from tasks.specs import get_spec
    from tasks.weights import initial_weights

    spec = get_spec("lif_layer", neurons=8, T=4)
    backend = FusedSTBPBackend(spec, initial_weights(spec))
    info = backend.device_info()
    assert info["neuron_engine"] == "torch" and "numba_threads" not in info


def test_numba_that_does_not_import_falls_back_in_a_fresh_process():
    """numba absent (its import fails): stbp:fused still trains on the CPU, with the torch engine."""
    here = os.path.dirname(os.path.dirname(__file__))
    code = "\n".join([
        "import sys",
        "sys.modules['numba'] = None  # 'import numba' now raises ImportError",
        "from backends.stbp import multistep",
        "from backends.stbp.fused import FusedSTBPBackend",
        "from tasks.parity import parity_case",
        "case = parity_case('fc_mnist')",
        "backend = FusedSTBPBackend(case.spec, case.weights)",
        "assert not multistep.numba_installed()",
        "assert backend.device_info()['neuron_engine'] == 'torch'",
        "loss = backend.train_step(case.batches[0])",
        "assert loss == loss and 'backends.stbp.cpu_kernels' not in sys.modules",
        "print('ok')",
    ])
    proc = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-2000:]


# ------------------------------------------------------------------ the numba kernels
needs_numba = pytest.mark.skipif(not multistep.numba_installed(), reason="numba is not installed")


def _exact(kind, dtype):
    """Bit-identical to the torch engine, except the sigmoid surrogate's exp (a rounding apart)."""
    if kind != "hard":
        return dict(rtol=0.0, atol=0.0)
    return dict(rtol=1e-13, atol=1e-15) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("static", [False, True], ids=["time-major", "static"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_numba_kernels_equal_the_torch_engine(kind, static, dtype):
    p = KINDS[kind][0]
    x, gs, gm = _inputs(kind, static, dtype, seed=5)
    steps = T if static else None
    want = _run(lambda v: multistep.neuron(kind, v, p, True, steps, "torch"), x, gs, gm)
    got = _run(lambda v: multistep.neuron(kind, v, p, True, steps, "numba"), x, gs, gm)
    assert 0.05 < want[0].mean() < 0.95, "the case must fire, and not always"
    assert got[0].dtype == got[1].dtype == got[2].dtype == dtype
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    torch.testing.assert_close(got[2], want[2], **_exact(kind, dtype))
    # only the spikes used: no membrane gradient reaches the backward
    want = _run(lambda v: multistep.neuron(kind, v, p, False, steps, "torch"), x, gs, torch.zeros_like(gm))
    got = _run(lambda v: multistep.neuron(kind, v, p, False, steps, "numba"), x, gs, torch.zeros_like(gm))
    torch.testing.assert_close(got[2], want[2], **_exact(kind, dtype))
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
        torch.testing.assert_close(got[2], want[2], **_exact(kind, torch.float32))


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_numba_synapse_equals_the_torch_engine(dtype):
    x, g, _ = _inputs("soft", False, dtype)
    want = _run(lambda v: (multistep.synapse(v, 0.9, "torch"), v), x, g, torch.zeros_like(g))
    got = _run(lambda v: (multistep.synapse(v, 0.9, "numba"), v), x, g, torch.zeros_like(g))
    assert torch.equal(got[0], want[0]) and torch.equal(got[2], want[2])


@needs_numba
def test_numba_backward_keeps_only_the_membrane():
    p = KINDS["stbp"][0]
    x, _, _ = _inputs("stbp", False, torch.float32)
    assert _saved_bytes(lambda v: multistep.neuron("stbp", v, p, False, None, "numba"), x) == x.numel() * 4


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


def test_cuda_without_triton_is_unavailable(monkeypatch):
    from backends.stbp.fused import FusedSTBPBackend
    from tasks.specs import get_spec
    from tasks.weights import initial_weights

    monkeypatch.setattr(multistep, "triton_installed", lambda: False)
    spec = get_spec("lif_layer", neurons=8, T=4)
    with pytest.raises(NotImplementedError, match="Triton"):
        FusedSTBPBackend(spec, initial_weights(spec), device="cuda")


# ------------------------------------------------------------------ the fused CPU paths beyond the neuron
def _backend(task, precision="fp64", **flags):
    from backends.stbp.fused import FusedSTBPBackend

    case = parity_case(task)
    cls = type("Variant", (FusedSTBPBackend,), flags)
    return cls(case.spec, case.weights, precision=precision), case


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
    fused, case = _backend(task)
    apart, _ = _backend(task, **flags)
    batch = case.batches[0]
    want, got = apart.gradients(batch), fused.gradients(batch)
    for name in want:
        torch.testing.assert_close(torch.from_numpy(got[name]), torch.from_numpy(want[name]), rtol=1e-10, atol=1e-12)
    assert abs(fused.train_step(batch) - apart.train_step(batch)) <= 1e-12 * abs(apart.train_step(batch)) + 1e-12


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


@needs_numba
def test_fused_backend_stages_binary_spikes_in_one_byte():
    import dataclasses

    backend, case = _backend("synthetic", "fp32")
    batch = case.batches[0]
    assert backend.stage(batch).x.dtype == torch.uint8
    assert backend.stage(dataclasses.replace(batch, x=batch.x * 0.5)).x.dtype == torch.float32  # not spikes
    assert _backend("synthetic", "fp32", spike_input_bytes=False)[0].stage(batch).x.dtype == torch.float32
    assert _backend("synthetic", "bf16")[0].stage(batch).x.dtype == torch.float32  # autocast: the layers apart
    poisson, poisson_case = _backend("fc_mnist_poisson", "fp32")  # spikes into a dense product: floats
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
        backend, case = _backend(task, "fp32")
        backend.train_step(case.batches[0])
        backend.evaluate(case.batches[0])  # no gradient: the layers apart (spike linear layers accumulate)
    assert calls.count("torch_synaptic_forward") == 1
    assert calls.count("torch_neuron_linear_forward") == 2
    assert calls.count("torch_spike_linear") == 2  # fc_mnist_poisson's fc1: 196 outputs fed by input spikes
    dsrn = parity_case("dsrn_tdbn").spec
    assert calls.count("torch_tdbn_neuron_forward") == 2 * len(dsrn.blocks())  # both tdBNs of every block


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


def test_channels_last_adam_is_fused_adam_to_the_bit(monkeypatch):
    """stbp:fused's Adam hands PyTorch's fused kernel channels-last weights as the contiguous
    permutation of their memory: the same parameters and moments, to the bit, as
    ``torch.optim.Adam(fused=True)``, the weights still channels-last."""
    from backends.stbp import adam

    assert adam._KNOWN  # the PyTorch this runs on has the private method it extends
    seen = []
    fused = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda params, *a, **k: seen.append(
        [t.is_contiguous() for t in params]) or fused(params, *a, **k))
    results = []
    for cls in (torch.optim.Adam, adam.ChannelsLastAdam):
        g = torch.Generator().manual_seed(1)
        weight = torch.nn.Parameter(torch.randn(6, 4, 3, 3, generator=g).contiguous(memory_format=torch.channels_last))
        bias = torch.nn.Parameter(torch.randn(6, generator=g))
        opt = cls([weight, bias], lr=0.01, fused=True)
        for _ in range(3):
            weight.grad = torch.randn(weight.shape, generator=g).contiguous(memory_format=torch.channels_last)
            bias.grad = torch.randn(6, generator=g)
            opt.step()
        assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
        state = opt.state[weight]
        results.append([weight.detach().clone(), bias.detach().clone(), state["exp_avg"], state["exp_avg_sq"]])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    assert seen[:3] == [[False, True]] * 3 and seen[3:] == [[True, True]] * 3


def test_adam_calls_the_fused_kernel_itself_once_every_parameter_has_state():
    """After the first step (which makes the state) stbp:fused's Adam calls the fused kernel
    without Optimizer.step's wrappers -- the same parameters, moments and step counts to the
    bit as ``torch.optim.Adam(fused=True)`` over steps that change the learning rate; a hook,
    a closure or a parameter without a gradient sends a step the ordinary way (the hook runs)."""
    from backends.stbp import adam

    results, ordinary = [], []
    for cls in (torch.optim.Adam, adam.ChannelsLastAdam):
        g = torch.Generator().manual_seed(2)
        w1 = torch.nn.Parameter(torch.randn(7, 5, generator=g))
        w2 = torch.nn.Parameter(torch.randn(3, generator=g))
        opt = cls([{"params": [w1]}, {"params": [w2], "lr": 0.05}], lr=0.01, betas=(0.8, 0.99),
                  weight_decay=0.1, fused=True)
        if cls is adam.ChannelsLastAdam:
            original = opt._ordinary_step
            opt._ordinary_step = lambda closure: ordinary.append(closure) or original(closure)
        hooked = []
        for step in range(6):
            w1.grad = torch.randn(w1.shape, generator=g)
            w2.grad = None if step == 3 else torch.randn(w2.shape, generator=g)
            opt.param_groups[0]["lr"] = 0.01 * (step + 1)
            if step == 4:
                handle = opt.register_step_pre_hook(lambda *a: hooked.append(1))
            opt.step()
            if step == 4:
                handle.remove()
        assert hooked == [1]
        assert opt.step(lambda: torch.tensor(1.0)) == 1.0
        results.append([w1.detach().clone(), w2.detach().clone()]
                       + [opt.state[w][k] for w in (w1, w2) for k in ("exp_avg", "exp_avg_sq", "step")])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    # the ordinary path: the first step (no state yet), the step without w2's gradient, the hook's, the closure's
    assert len(ordinary) == 4 and ordinary[-1] is not None


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


@needs_numba
def test_spikes_saved_for_a_convolution_are_kept_in_one_byte():
    p = KINDS["stbp"][0]
    torch.manual_seed(3)  # the convolution's initial weights
    x = (torch.rand(T, 2, 3, 6, 6) * 2 - 0.5) * 0.6
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    results = []
    for in_bytes in (False, True):
        saved = []

        def step():
            v = x.clone().requires_grad_(True)
            s, _ = multistep.neuron("stbp", v, p, False, None, "numba")
            y = conv(s.flatten(0, 1))
            return v, y

        def pack(t, saved=saved, in_bytes=in_bytes):  # the innermost hooks are the ones autograd calls
            packed = multistep.spike_bytes._pack(t) if in_bytes else t
            saved.append(t.numel() * t.element_size() if packed is t else packed[1].numel())
            return packed

        def context(in_bytes=in_bytes):
            return multistep.spike_bytes.saving() if in_bytes else contextlib.nullcontext()

        with context():
            v, y = step()
        conv.zero_grad()
        (y * y).sum().backward()
        results.append((v.grad, conv.weight.grad.clone()))
        with context(), torch.autograd.graph.saved_tensors_hooks(pack, multistep.spike_bytes._unpack):
            step()
        if in_bytes:
            assert multistep.spike_bytes._by_id == {}  # nothing outlives the pass
        results[-1] += (sum(saved),)
    (g0, w0, floats), (g1, w1, one_byte) = results
    assert torch.equal(g0, g1) and torch.equal(w0, w1)
    assert floats - one_byte == 3 * x.numel()  # the conv's input: 1 byte per spike instead of 4


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


# ------------------------------------------------------------------ oneDNN products and the host allocator
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

    backend, case = _backend("lif_layer", "fp32", onednn_linear=True)
    assert type(backend.model.fc) is DenseLinear
    info = backend.device_info()
    assert info["dense_products"].startswith("oneDNN") and "fp32_precision" in info["dense_products"]
    assert info["host_allocator"] == allocator.policy()
    off, _ = _backend("lif_layer", "fp32", onednn_linear=False)
    assert type(off.model.fc) is torch.nn.Linear and off.device_info()["dense_products"] == "torch.mm"
    poisson, _ = _backend("fc_mnist_poisson", "fp32", onednn_linear=False)
    assert poisson.model.fc1.onednn is False  # a spike layer's dense fallback follows the switch too
    torch.testing.assert_close(torch.from_numpy(backend.gradients(case.batches[0])["fc.weight"]),
                               torch.from_numpy(off.gradients(case.batches[0])["fc.weight"]), rtol=1e-4, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("vendor,onednn", [("AuthenticAMD", True), ("GenuineIntel", False), (None, True)])
def test_dense_products_go_to_onednn_where_mkl_is_not_at_its_best(monkeypatch, vendor, onednn):
    from backends.stbp.dense_linear import DenseLinear
    from tasks import cpu

    monkeypatch.setattr(cpu, "vendor", lambda: vendor)
    backend, _ = _backend("lif_layer", "fp32")
    assert (type(backend.model.fc) is DenseLinear) is onednn
    assert backend.device_info()["dense_products"].startswith("oneDNN" if onednn else "torch.mm")


def test_the_host_memory_measure_refuses_stbp_fused_allocator_policy():
    """In the measuring process (its malloc thresholds held from the start), stbp:fused's
    keeping of freed blocks is refused: a block freed inside a step goes back to the
    kernel and is not counted once more by the next allocation."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    code = (
        "import numpy as np\n"
        "from tasks import hostmem\n"
        "if HELD: assert hostmem.hold_thresholds()\n"
        "from backends.stbp import allocator\n"
        "assert allocator.keep_freed_memory() is not HELD\n"
        "print(allocator.policy())\n"
        "def step():\n"
        "    a = np.ones(2**24)  # 128 MiB, freed before the next one\n"
        "    del a\n"
        "    return np.ones(2**23).sum()  # 64 MiB\n"
        "step()\n"
        "value, why = hostmem.step_memory(step, lambda: None)\n"
        "print(value)\n"
    )
    seen = {}
    for held in (False, True):
        out = subprocess.run([sys.executable, "-c", f"HELD = {held}\n" + code], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stderr
        policy, value = out.stdout.split("\n")[-3:-1]
        seen[held] = int(value)
        assert ("defaults" in policy) is held
    assert 120 * 2**20 <= seen[True] < 140 * 2**20  # the 128 MiB block, then 64 MiB once it is gone


# ------------------------------------------------------------------ the threshold edge
def edge_inputs(kind, dtype=torch.float64):
    """[3, 3] inputs (time, neuron) that put the membrane of neuron 0 exactly at the threshold at
    t = 0 (no spike, and for the subtractive kind no reset at t = 1), of neuron 1 one ulp above
    (a spike) and of neuron 2 one ulp below.  At t = 0 the state is 0, so each kind's membrane is
    an exact product of the input: soft 0.5 x, subtractive x, hard x / 2, stbp x."""
    v_th = torch.tensor(KINDS[kind][0][1], dtype=dtype)
    at = v_th * {"soft": 2.0, "subtractive": 1.0, "hard": 2.0, "stbp": 1.0}[kind]
    first = torch.stack([at, torch.nextafter(at, at * 2), torch.nextafter(at, at * 0)])
    return torch.cat([first[None], torch.zeros(2, 3, dtype=dtype)])


def _edge_membranes(kind, x):
    _, m = _clear(kind, x, KINDS[kind][0], static=False)
    return m


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_membrane_exactly_at_the_threshold_does_not_spike_in_any_engine(kind, dtype):
    x = edge_inputs(kind, dtype)
    v_th = KINDS[kind][0][1]
    m = _edge_membranes(kind, x)
    assert m[0, 0] == torch.tensor(v_th, dtype=dtype) and m[0, 1] > m[0, 0] > m[0, 2]  # the edge is hit
    engines = ["torch"] + (["numba"] if multistep.numba_installed() else [])
    gen = torch.Generator().manual_seed(3)
    gs, gm = (torch.randn(3, 3, generator=gen, dtype=dtype) for _ in range(2))
    want = None
    for engine in engines:
        s, m, g = _run(lambda v: multistep.neuron(kind, v, KINDS[kind][0], True, None, engine), x, gs, gm)
        assert s[0].tolist() == [0.0, 1.0, 0.0], (engine, s[0])
        if dtype == torch.float64:  # the float64 reference agrees, reset included
            ref_s, ref_m = getattr(reference, REFERENCE_NEURONS[kind])(x.numpy(), *REFERENCE_ARGS[kind])
            assert s.numpy().tolist() == ref_s.tolist() and np.array_equal(m.numpy(), ref_m), engine
        if want is None:
            want = (s, m, g)
        else:  # the numba backward decides spikes from the kept membrane: the same edge
            assert torch.equal(s, want[0]) and torch.equal(m, want[1])
            torch.testing.assert_close(g, want[2], **_exact(kind, dtype))
