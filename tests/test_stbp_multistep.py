"""backends/stbp/multistep.py: the torch engine's hand-written multi-step backward, the engine choice,
the fallback without numba, spikes kept in one byte, and the threshold edge in every engine."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.stbp import multistep, neurons  # noqa: E402
from tasks import reference  # noqa: E402
from tests.stbp_cases import KINDS, SHAPE, T, clear_neuron, exact, inputs, needs_numba, run_backward, saved_bytes  # noqa: E402


# the same neurons in tasks.reference, with KINDS' parameters
REFERENCE_NEURONS = {"soft": "soft_reset_lif", "subtractive": "subtractive_lif", "hard": "hard_reset_lif",
                     "stbp": "stbp_lif"}
REFERENCE_ARGS = {"soft": (0.5, 1.0), "subtractive": (0.9, 1.0), "hard": (2.0, 1.0), "stbp": (0.25, 0.4)}


@pytest.mark.parametrize("static", [False, True], ids=["time-major", "static"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_hand_written_backward_equals_autograd_of_the_clear_neuron(kind, static):
    p = KINDS[kind][0]
    x, gs, gm = inputs(kind, static)
    want = run_backward(lambda v: clear_neuron(kind, v, p, static), x, gs, gm)
    got = run_backward(lambda v: multistep.neuron(kind, v, p, True, T if static else None, "torch"), x, gs, gm)
    assert 0.05 < want[0].mean() < 0.95, "the case must fire, and not always"
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[2], want[2], rtol=1e-10, atol=1e-12)


def test_synapse_backward_equals_autograd():
    x, g, _ = inputs("soft", False)
    want = run_backward(lambda v: (neurons.exponential_synapse(v, 0.9), v), x, g, torch.zeros_like(g))
    got = run_backward(lambda v: (multistep.synapse(v, 0.9, "torch"), v), x, g, torch.zeros_like(g))
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[2], want[2], rtol=1e-12, atol=1e-12)


def test_backward_keeps_only_the_membrane():
    p = KINDS["stbp"][0]
    x, _, _ = inputs("stbp", False, torch.float32)
    fused = saved_bytes(lambda v: multistep.neuron("stbp", v, p, False, None, "torch"), x)
    clear = saved_bytes(lambda v: neurons.stbp_lif(v, *p, record=False), x)
    assert fused == x.numel() * 4  # one float32 membrane [T, ...]
    assert clear >= 2 * fused


def test_static_input_is_not_repeated_in_memory():
    p = KINDS["subtractive"][0]
    x, _, _ = inputs("subtractive", True, torch.float32)
    s, m = multistep.neuron("subtractive", x.requires_grad_(True), p, True, T, "torch")
    assert s.shape == (T,) + SHAPE
    (g,) = torch.autograd.grad(s.sum() + m.sum(), x)
    assert g.shape == SHAPE  # summed over time in the backward pass itself


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
    _, m = clear_neuron(kind, x, KINDS[kind][0], static=False)
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
        s, m, g = run_backward(lambda v: multistep.neuron(kind, v, KINDS[kind][0], True, None, engine), x, gs, gm)
        assert s[0].tolist() == [0.0, 1.0, 0.0], (engine, s[0])
        if dtype == torch.float64:  # the float64 reference agrees, reset included
            ref_s, ref_m = getattr(reference, REFERENCE_NEURONS[kind])(x.numpy(), *REFERENCE_ARGS[kind])
            assert s.numpy().tolist() == ref_s.tolist() and np.array_equal(m.numpy(), ref_m), engine
        if want is None:
            want = (s, m, g)
        else:  # the numba backward decides spikes from the kept membrane: the same edge
            assert torch.equal(s, want[0]) and torch.equal(m, want[1])
            torch.testing.assert_close(g, want[2], **exact(kind, dtype))
