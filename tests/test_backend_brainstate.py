"""The brainstate backend (brainstate + brainpy.state + braintools on JAX): CPU only, tiny shapes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("brainstate")
pytest.importorskip("brainpy")
pytest.importorskip("braintools")

import backends as registry  # noqa: E402
from tasks import parity, reference, rng  # noqa: E402
from tasks.data import Batch, make_data  # noqa: E402
from tasks.idx import FILES, write_idx  # noqa: E402
from tasks.runner import RunConfig, run  # noqa: E402
from tasks.specs import get_spec  # noqa: E402
from tasks.weights import initial_weights  # noqa: E402

TASK_NAMES = ("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn", "lif_layer")
TRAINED = tuple(t for t in TASK_NAMES if get_spec(t).trainable)  # lif_layer is measured, never trained


@pytest.fixture(scope="module")
def cls():
    """The backend class, loaded through the registry (as the command line does)."""
    return registry.load("brainstate")


def _rel(a, b) -> float:
    return parity._rel(np.asarray(a), np.asarray(b))


def _small(task: str, **extra):
    overrides = {
        "synthetic": {"T": 20, "batch_size": 8, "input_probability": 0.1},
        "fc_mnist": {"T": 5, "batch_size": 6},
        "fc_mnist_poisson": {"T": 6, "batch_size": 6},
        # 8 x 8 images: the same 19 spiking layers, less arithmetic
        "dsrn_tdbn": {"T": 2, "batch_size": 3, "width": 1 / 16, "image_size": 8},
        "lif_layer": {"T": 12, "batch_size": 3, "neurons": 16},
    }[task]
    overrides.update(extra)
    spec = get_spec(task).with_overrides(**overrides)
    weights = initial_weights(spec)
    gains = parity.CASES[task][1]
    for name, gain in gains.items():
        weights[name] = weights[name] * gain
    gen = rng.stream(1, f"test-brainstate-{task}")
    if task == "dsrn_tdbn":
        size = spec.image_size
        batches = [Batch(gen.standard_normal((spec.batch_size, 1, size, size)).astype(np.float32),
                         gen.integers(0, spec.n_classes, size=spec.batch_size), static=True) for _ in range(3)]
    else:
        batches = [parity.random_batch(spec, gen) for _ in range(3)]
    return spec, weights, batches


@pytest.fixture(scope="module")
def dsrn(cls):
    """One small fp64 ResNet backend shared by the tests below (each compiled function is
    built once); tests that train restore the weights they started from."""
    spec, weights, batches = _small("dsrn_tdbn")
    return spec, weights, batches, cls(spec, weights, precision="fp64")


# ---------------------------------------------------------------- parity (fp64)
@pytest.mark.parametrize("task", TASK_NAMES)
def test_parity(task):
    row = parity.check_backend(task, "brainstate")
    assert row.status == "ok", row.message
    assert row.precision == "fp64"
    assert row.spike_mismatches == 0 and row.spikes_compared > 0
    assert row.membrane_rel < 1e-12 and row.gradient_rel < 1e-10 and row.loss_curve_rel < 1e-10
    assert not row.documented_difference


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
    gen = np.random.default_rng(3)
    new = {k: v + 0.01 * gen.standard_normal(v.shape) for k, v in weights.items()}
    new = {k: (np.abs(v) + 0.5 if k.endswith("running_var") else v) for k, v in new.items()}
    backend.set_weights(new)
    back = backend.get_weights()
    assert set(back) == set(new)
    for k in new:
        assert back[k].shape == new[k].shape and back[k].dtype == np.float64
        np.testing.assert_array_equal(back[k], new[k])
    conv = backend.weight_map["layer1.0.conv1.weight"][0].value["weight"]
    np.testing.assert_array_equal(np.asarray(conv), new["layer1.0.conv1.weight"].transpose(2, 3, 1, 0))
    for batch_statistics in (True, False):
        ref = reference.forward(spec, new, batches[0], batch_statistics=batch_statistics)
        out = backend.evaluate(batches[0], record=True, batch_statistics=batch_statistics)
        assert abs(out.loss - ref.loss) < 1e-10
        for layer in spec.layer_names():
            np.testing.assert_array_equal(out.spikes[layer], ref.spikes[layer])
    with pytest.raises(ValueError):
        backend.set_weights({k: v for k, v in new.items() if k != "fc1.weight"})
    with pytest.raises(ValueError):
        backend.set_weights({**new, "stem.conv.weight": new["stem.conv.weight"][:, :, :2]})
    backend.set_weights(weights)


def test_running_statistics(dsrn):
    """train_step moves tdBN's running statistics exactly as the reference says (unbiased
    variance, momentum 0.1); evaluate(batch_statistics=True) and gradients leave them alone."""
    spec, weights, batches, backend = dsrn
    before = backend.get_weights()
    backend.evaluate(batches[0], record=True, batch_statistics=True)
    backend.gradients(batches[0])
    after = backend.get_weights()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    expected = reference.forward(spec, before, batches[0], batch_statistics=True).running
    backend.train_step(batches[0])
    trained = backend.get_weights()
    assert expected
    for k, v in expected.items():
        assert _rel(trained[k], v) < 1e-12, k
        assert not np.array_equal(trained[k], before[k])
    backend.set_weights(weights)


# ---------------------------------------------------------------- forward + backward
def test_forward_backward_lif_layer(cls):
    """forward_backward: gradients() on the device, compiled once, weights and Adam untouched."""
    import jax

    spec, weights, batches = _small("lif_layer")
    backend = cls(spec, weights, precision="fp64")
    staged = backend.stage(batches[0])
    assert backend.forward_backward(staged) is None
    backend.synchronize()
    compiled = backend.compile_count
    backend.forward_backward(staged)
    backend.forward_backward(batches[0])  # an unstaged batch of the same shape: the same function
    backend.synchronize()
    assert backend.compile_count == compiled
    grads, loss = backend._last
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves((grads, loss)))
    got = backend.shared_gradients(grads)
    for name, value in backend.get_weights().items():
        np.testing.assert_array_equal(value, weights[name])
    want = backend.gradients(batches[0])
    assert set(got) == set(want) == {"fc.weight"} and np.abs(want["fc.weight"]).max() > 0
    np.testing.assert_allclose(got["fc.weight"], want["fc.weight"], rtol=1e-13, atol=0)
    ref = reference.forward(spec, weights, batches[0])
    assert 0 < ref.spikes["lif"].mean() < 1 and float(loss) == pytest.approx(ref.loss, rel=1e-12)
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
    backend = cls(spec, weights, precision="fp64")
    stbp = registry.load("stbp")(spec, weights, precision="fp64")
    for i, batch in enumerate(batches):
        lr = spec.lr * (0.5 ** i)
        backend.set_learning_rate(lr)
        stbp.set_learning_rate(lr)
        assert abs(backend.train_step(batch) - stbp.train_step(batch)) < 1e-9
    got, want = backend.get_weights(), stbp.get_weights()
    assert max(_rel(got[k] - weights[k], want[k] - weights[k]) for k in want) < 1e-8
    compiled = backend.compile_count
    backend.set_learning_rate(0.0)
    backend.train_step(batches[0])
    assert backend.compile_count == compiled
    for k, v in backend.get_weights().items():
        np.testing.assert_array_equal(v, got[k])


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
    staged = backend.stage(batches[0])
    loss = backend.train_step(staged)
    assert np.isfinite(loss)
    backend.infer(staged)
    backend.synchronize()
    small = Batch(batches[1].x[:, :4], batches[1].y[:4], static=False)
    out = backend.evaluate(small)
    assert out.scores.shape == (4, spec.n_classes)
    assert out.spike_counts["lif1"].shape == (spec.n_hidden,)
    assert backend.peak_memory_bytes() is None  # CPU
    assert backend.device_info()["type"] == "cpu"
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


def test_out_of_memory_is_recognised(cls):
    spec, weights, _ = _small("synthetic")
    backend = cls(spec, weights, precision="fp32")
    assert backend.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not backend.is_out_of_memory(ValueError("shapes do not match"))


def test_capabilities(cls):
    caps = cls.capabilities()
    assert set(caps.tasks) == set(TASK_NAMES)
    assert {"fp32", "tf32", "bf16", "fp64"} <= set(caps.precisions)
    assert not caps.differences and not caps.parity_tolerances
    for part in ("neuron:synthetic", "neuron:fc_mnist", "neuron:fc_mnist_poisson", "neuron:dsrn_tdbn",
                 "neuron:lif_layer", "surrogate:lif_layer", "tdbn"):
        assert caps.components[part].split(":")[0] in ("library", "custom")


# ---------------------------------------------------------------- end to end
def _write_images(directory, n_train: int, n_test: int) -> None:
    """A tiny learnable MNIST-format data set (class k: a bright bar at row 2 + 2k)."""
    gen = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = gen.integers(0, 50, size=(n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 + 2 * int(k): 4 + 2 * int(k), 4:24] = 230
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    for key, stem in FILES.items():
        write_idx(directory / stem, arrays[key])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("brainstate-data")
    _write_images(root / "fashion-mnist", 40, 20)
    return root


@pytest.mark.parametrize("task", TRAINED)
def test_runner_end_to_end(task, data_dir):
    overrides = {
        "synthetic": {"T": 30, "batch_size": 16, "steps": 12, "eval_every_steps": 6},
        "fc_mnist": {"T": 4, "batch_size": 8, "dataset": "fashion-mnist"},
        "fc_mnist_poisson": {"T": 4, "batch_size": 8, "epochs": 2, "dataset": "fashion-mnist"},
        "dsrn_tdbn": {"T": 1, "batch_size": 8, "epochs": 2, "width": 1 / 16, "dataset": "fashion-mnist",
                      "validation_size": 16},
    }[task]
    spec = get_spec(task, **overrides)
    data = make_data(spec, data_dir=data_dir, allow_download=False) if task != "synthetic" else None
    result = run(spec, RunConfig(backend="brainstate", progress=False, data_dir=str(data_dir),
                                 allow_download=False), data=data)
    assert result.status == "ok", result.message + result.extra.get("traceback", "")
    losses = result.curves["train_loss"].y
    assert len(losses) == result.metrics["steps"].value > 0
    assert all(np.isfinite(losses))
    assert 0.0 <= result.metrics["accuracy"].value <= 1.0
    assert [layer.name for layer in result.layers] == spec.layer_names()
    assert result.versions["brainstate"] and result.device["type"] == "cpu"
    if task == "synthetic":
        assert losses[-1] < losses[0]  # fitting the one batch
    if task == "dsrn_tdbn":
        assert len(result.curves["val_loss"].y) == result.metrics["epochs"].value
