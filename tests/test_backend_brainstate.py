"""The brainstate backend (brainstate + brainpy.state + braintools on JAX): CPU only, tiny shapes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("brainstate")
pytest.importorskip("brainpy")
pytest.importorskip("braintools")

import backends as registry  # noqa: E402
from tasks import reference, rng  # noqa: E402
from tasks.data import Batch, make_data  # noqa: E402
from tasks.runner import RunConfig, run  # noqa: E402
from tasks.specs import get_spec  # noqa: E402
from tests import jax_backend_checks as checks  # noqa: E402
from tests.jax_backend_checks import rel as _rel  # noqa: E402

TASK_NAMES = ("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn", "lif_layer")
TRAINED = tuple(t for t in TASK_NAMES if get_spec(t).trainable)  # lif_layer is measured, never trained


@pytest.fixture(scope="module")
def cls():
    """The backend class, loaded through the registry (as the command line does)."""
    return registry.load("brainstate")


def _small(task: str, **extra):
    if task != "dsrn_tdbn":
        return checks.small_case(task, "brainstate", **extra)
    # 8 x 8 images: the same 19 spiking layers, less arithmetic
    spec = get_spec(task).with_overrides(**{"T": 2, "batch_size": 3, "width": 1 / 16, "image_size": 8, **extra})
    weights = checks.parity_weights(spec)
    gen = rng.stream(1, f"test-brainstate-{task}")
    size = spec.image_size
    batches = [Batch(gen.standard_normal((spec.batch_size, 1, size, size)).astype(np.float32),
                     gen.integers(0, spec.n_classes, size=spec.batch_size), static=True) for _ in range(3)]
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


# ---------------------------------------------------------------- weights
def test_weights_round_trip_and_layout(dsrn):
    """Shared PyTorch layouts go in and come back unchanged (conv kernels are stored
    [kh, kw, in, out] inside), and the forward with the new weights is the reference's."""
    spec, weights, batches, backend = dsrn
    new = checks.set_perturbed_weights(backend, weights)
    conv = backend.weight_map["layer1.0.conv1.weight"][0].value["weight"]
    np.testing.assert_array_equal(np.asarray(conv), new["layer1.0.conv1.weight"].transpose(2, 3, 1, 0))
    for batch_statistics in (True, False):
        ref = reference.forward(spec, new, batches[0], batch_statistics=batch_statistics)
        out = backend.evaluate(batches[0], record=True, batch_statistics=batch_statistics)
        assert abs(out.loss - ref.loss) < 1e-10
        for layer in spec.layer_names():
            np.testing.assert_array_equal(out.spikes[layer], ref.spikes[layer])
    checks.check_bad_weights_rejected(backend, new)
    backend.set_weights(weights)


def test_running_statistics(dsrn):
    """train_step moves tdBN's running statistics exactly as the reference says (unbiased
    variance, momentum 0.1); evaluate(batch_statistics=True) and gradients leave them alone."""
    spec, weights, batches, backend = dsrn
    checks.check_running_statistics(backend, spec, batches[0])
    backend.set_weights(weights)


# ---------------------------------------------------------------- forward + backward
def test_forward_backward_lif_layer(cls):
    """forward_backward: gradients() on the device, compiled once, weights and Adam untouched."""
    spec, weights, batches = _small("lif_layer")
    backend = cls(spec, weights, precision="fp64")
    checks.check_forward_backward_on_device(backend, spec, weights, batches)
    # no optimiser update was made: the first train step still starts from the initial weights
    stbp = registry.load("stbp")(spec, weights, precision="fp64")
    backend.train_step(batches[0])
    stbp.train_step(batches[0])
    assert _rel(backend.get_weights()["fc.weight"], stbp.get_weights()["fc.weight"]) < 1e-12


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


# ---------------------------------------------------------------- optimiser
def test_adam_matches_torch_and_learning_rate_is_traced(cls):
    """Three Adam steps give torch.optim.Adam's weights (stbp, fp64); changing the learning
    rate takes effect without recompiling; lr 0 leaves the weights where they are."""
    spec, weights, batches = _small("fc_mnist")
    stbp = registry.load("stbp")(spec, weights, precision="fp64")
    checks.check_adam_against_torch(cls(spec, weights, precision="fp64"), stbp, spec, weights, batches)


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


def test_partial_batch_stage_infer_and_fp32_after_fp64(cls):
    """A smaller last batch evaluates (its own compiled shape), staged batches train and infer,
    and an fp32 backend after an fp64 one keeps float32 state."""
    spec, weights, batches = _small("fc_mnist_poisson")
    cls(spec, weights, precision="fp64").gradients(batches[0])  # switches x64 on in this process
    backend = cls(spec, weights, precision="fp32")
    assert {str(np.asarray(s.value["weight"]).dtype) for s in backend.params.values()} == {"float32"}
    checks.check_staged_and_partial_batches(backend, spec, batches)
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


def test_capabilities(cls):
    caps = cls.capabilities()
    checks.check_capabilities(caps)
    assert set(caps.tasks) == set(TASK_NAMES)


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("brainstate-data")
    checks.write_bar_images(root / "fashion-mnist", 40, 20)
    return root


@pytest.mark.parametrize("task", TRAINED)
def test_runner_end_to_end(task, data_dir):
    spec = get_spec(task, **checks.RUN_OVERRIDES[task])
    data = make_data(spec, data_dir=data_dir, allow_download=False) if task != "synthetic" else None
    result = run(spec, RunConfig(backend="brainstate", progress=False, data_dir=str(data_dir),
                                 allow_download=False), data=data)
    checks.check_end_to_end(result, spec)
    assert result.versions["brainstate"]
    if task == "dsrn_tdbn":
        assert len(result.curves["val_loss"].y) == result.metrics["epochs"].value
