"""The brainstate backend (brainstate + brainpy.state + braintools on JAX): CPU only, tiny shapes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("brainstate")
pytest.importorskip("brainpy")
pytest.importorskip("braintools")

import backends as registry  # noqa: E402
from tasks import reference  # noqa: E402
from tasks.specs import get_spec  # noqa: E402
from tests import jax_cases  # noqa: E402
from tests.jax_cases import rel as _rel  # noqa: E402


@pytest.fixture(scope="module")
def cls():
    """The backend class, loaded through the registry (as the command line does)."""
    return registry.load("brainstate")


def _small(task: str, **extra):
    if task != "dsrn_tdbn":
        return jax_cases.small_case(task, "brainstate", **extra)
    # 8 x 8 images: the same 19 spiking layers, less arithmetic
    spec = get_spec(task).with_overrides(**{"T": 2, "batch_size": 3, "width": 1 / 16, "image_size": 8, **extra})
    weights, batches = jax_cases.small_dsrn_case(spec, f"test-brainstate-{task}", n=3)
    return spec, weights, batches


@pytest.fixture(scope="module")
def dsrn(cls):
    """One small fp64 ResNet backend shared by the tests below (each compiled function is
    built once); tests that train restore the weights they started from."""
    spec, weights, batches = _small("dsrn_tdbn")
    return spec, weights, batches, cls(spec, weights, precision="fp64")


# ---------------------------------------------------------------- parity (fp64)


def test_surrogate_centered_on_zero(cls):
    """--surrogate-center zero: the rectangular window on U = 0 gives stbp's gradients, and they
    differ from the threshold-centred ones (so the setting is really used)."""
    spec, weights, batches = _small("dsrn_tdbn", surrogate_center="zero", T=1)
    got = cls(spec, weights, precision="fp64").gradients(batches[0])
    stbp = registry.load("stbp")
    want = stbp(spec, weights, precision="fp64").gradients(batches[0])
    assert max(_rel(got[k], want[k]) for k in want) < 1e-10
    centred = stbp(spec.with_overrides(surrogate_center="threshold"), weights, precision="fp64").gradients(batches[0])
    assert max(_rel(centred[k], got[k]) for k in got) > 1e-3


# ---------------------------------------------------------------- weights (the shared checks: tests/test_backend_contract.py)
def test_weights_are_stored_channels_last(dsrn):
    """Shared PyTorch layouts go in and come back unchanged; conv kernels are stored
    [kh, kw, in, out] inside, and the full network's forward is the reference's."""
    spec, weights, batches, backend = dsrn
    new = {k: v * 1.01 for k, v in weights.items()}
    backend.set_weights(new)
    conv = backend.weight_map["layer1.0.conv1.weight"][0].value["weight"]
    np.testing.assert_array_equal(np.asarray(conv), new["layer1.0.conv1.weight"].transpose(2, 3, 1, 0))
    for name, value in backend.get_weights().items():
        np.testing.assert_array_equal(value, new[name])
    ref = reference.forward(spec, new, batches[0], batch_statistics=True)
    out = backend.evaluate(batches[0], record=True, batch_statistics=True)
    assert abs(out.loss - ref.loss) < 1e-10
    for layer in spec.layer_names():
        np.testing.assert_array_equal(out.spikes[layer], ref.spikes[layer])
    backend.set_weights(weights)


# ---------------------------------------------------------------- forward + backward
def test_forward_backward_moves_running_statistics_as_a_train_step(dsrn):
    """With tdBN, forward_backward is the training step without Adam: the running statistics
    move as the reference says (as in train_step and the PyTorch backends), the weights do not."""
    spec, weights, batches, backend = dsrn
    before = backend.get_weights()
    expected = reference.forward(spec, before, batches[0], batch_statistics=True).running
    backend.forward_backward(batches[0])
    backend.synchronize()
    got = backend.shared_gradients(backend._last[0])
    after = backend.get_weights()
    for k, v in expected.items():
        assert _rel(after[k], v) < 1e-12 and not np.array_equal(after[k], before[k]), k
    for k in got:
        np.testing.assert_array_equal(after[k], before[k])
    want = backend.gradients(batches[0])
    assert max(_rel(got[k], want[k]) for k in want) < 1e-12
    backend.set_weights(weights)


# ---------------------------------------------------------------- library-specific
def test_strict_heaviside_keeps_library_gradient():
    """braintools' Heaviside fires at x = 0; ours does not (the spec's H), with the same surrogate."""
    import braintools
    import jax
    import jax.numpy as jnp

    from backends.brainstate import components as C

    x = jnp.array([-0.5, 0.0, 0.5], dtype=jnp.float32)
    lib = braintools.surrogate.ReluGrad(alpha=0.3, width=1.0)
    ours = C.ReluGradSpike(alpha=0.3, width=1.0)
    assert np.asarray(lib(x)).tolist() == [0.0, 1.0, 1.0]  # the difference is real
    assert np.asarray(ours(x)).tolist() == [0.0, 0.0, 1.0]
    g_lib = jax.grad(lambda v: jnp.sum(lib(v)))(x)
    g_ours = jax.grad(lambda v: jnp.sum(ours(v)))(x)
    np.testing.assert_allclose(np.asarray(g_ours), np.asarray(g_lib))
    np.testing.assert_allclose(np.asarray(g_ours), [0.15, 0.3, 0.15], rtol=1e-6)
    rect = C.RectangularSpike(0.5, center=-0.4)  # window on U = 0 for x = U - 0.4
    g = jax.grad(lambda v: jnp.sum(rect(v)))(jnp.array([-0.4, 0.05, 0.2], dtype=jnp.float32))
    np.testing.assert_allclose(np.asarray(g), [1.0, 1.0, 0.0])


def test_fp32_after_fp64_keeps_float32_parameters(cls):
    """An fp32 backend made after an fp64 one (which switches x64 on in the process) holds and
    trains float32 parameters; the versions name the whole brainstate stack."""
    spec, weights, batches = _small("fc_mnist_poisson")
    cls(spec, weights, precision="fp64").gradients(batches[0])
    backend = cls(spec, weights, precision="fp32")
    assert {str(np.asarray(s.value["weight"]).dtype) for s in backend.params.values()} == {"float32"}
    assert np.isfinite(backend.train_step(batches[0]))
    assert {str(np.asarray(s.value["weight"]).dtype) for s in backend.params.values()} == {"float32"}
    assert {"jax", "jaxlib", "brainstate", "brainpy", "braintools", "brainunit"} <= set(cls.versions())


@pytest.mark.parametrize("task", ["fc_mnist", "dsrn_tdbn"])
def test_precisions_run(cls, task):
    """fp32, tf32 and bf16 train (bf16: bfloat16 linear/conv operands); parameters stay float32;
    fp32 gives the reference's loss; bf16's first membranes are as far from the reference as
    stbp's under torch.autocast (bfloat16 products really used, and only them)."""
    extra = {"T": 1} if task == "dsrn_tdbn" else {}
    spec, weights, batches = _small(task, **extra)
    precisions = ("bf16",) if task == "dsrn_tdbn" else ("fp32", "tf32", "bf16")
    ref = reference.forward(spec, weights, batches[0])
    first = spec.layer_names()[0]
    for precision in precisions:
        backend = cls(spec, weights, precision=precision)
        out = backend.evaluate(batches[0], record=True, batch_statistics=True)
        assert out.membranes[first].dtype == np.float64  # returned as float64 NumPy
        membrane_rel = _rel(out.membranes[first], ref.membranes[first])
        if precision == "bf16":
            torch_out = registry.load("stbp")(spec, weights, precision="bf16").evaluate(
                batches[0], record=True, batch_statistics=True)
            torch_rel = _rel(torch_out.membranes[first], ref.membranes[first])
            assert 1e-5 < membrane_rel < 2 * torch_rel + 1e-3
        else:
            assert membrane_rel < 1e-5 and abs(out.loss - ref.loss) < 1e-5 * abs(ref.loss)
        assert np.isfinite(backend.train_step(batches[0]))
        assert {str(np.asarray(s.value["weight"]).dtype) for s in backend.params.values()} == {"float32"}
