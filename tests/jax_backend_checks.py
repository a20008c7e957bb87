"""What the JAX backends' tests (tests/test_backend_brainstate.py, tests/test_backend_spyx.py) share:
the small cases, checks every JAX backend passes the same way, and a tiny data set.

No framework is imported at module level (a test file skips before importing this when its
framework is missing); the checks take the backend objects they test.
"""

from __future__ import annotations

import numpy as np
import pytest

from tasks import parity, reference, rng
from tasks.data import Batch
from tasks.idx import FILES, write_idx
from tasks.specs import TASKS, get_spec
from tasks.weights import initial_weights

# small shapes of the fully connected tasks and lif_layer (dsrn_tdbn: each test file's own)
SMALL = {
    "synthetic": {"T": 20, "batch_size": 8, "input_probability": 0.1},
    "fc_mnist": {"T": 5, "batch_size": 6},
    "fc_mnist_poisson": {"T": 6, "batch_size": 6},
    "lif_layer": {"T": 12, "batch_size": 3, "neurons": 16},
}

# the runner end to end, on the data set of write_bar_images
RUN_OVERRIDES = {
    "synthetic": {"T": 30, "batch_size": 16, "steps": 12, "eval_every_steps": 6},
    "fc_mnist": {"T": 4, "batch_size": 8, "dataset": "fashion-mnist"},
    "fc_mnist_poisson": {"T": 4, "batch_size": 8, "epochs": 2, "dataset": "fashion-mnist"},
    "dsrn_tdbn": {"T": 1, "batch_size": 8, "epochs": 2, "width": 1 / 16, "dataset": "fashion-mnist",
                  "validation_size": 16},
}


def rel(a, b) -> float:
    return parity._rel(np.asarray(a), np.asarray(b))


def parity_weights(spec) -> dict[str, np.ndarray]:
    """The shared initial weights with the parity case's gains (so that neurons spike)."""
    weights = initial_weights(spec)
    for name, gain in spec.workload.PARITY_GAINS.items():
        weights[name] = weights[name] * gain
    return weights


def small_case(task: str, label: str, **extra):
    """(spec, weights, three random batches) of ``task`` at the small shapes of :data:`SMALL`;
    ``label`` names the batches' random stream (``test-<label>-<task>``)."""
    spec = get_spec(task).with_overrides(**{**SMALL[task], **extra})
    weights = parity_weights(spec)
    gen = rng.stream(1, f"test-{label}-{task}")
    return spec, weights, [parity.random_batch(spec, gen) for _ in range(3)]


def set_perturbed_weights(backend, weights) -> dict[str, np.ndarray]:
    """Load weights near ``weights`` (running variances kept positive) and check that they come
    back unchanged, in the shared names and layouts, as float64; returns them."""
    gen = np.random.default_rng(3)
    new = {k: v + 0.01 * gen.standard_normal(v.shape) for k, v in weights.items()}
    new = {k: (np.abs(v) + 0.5 if k.endswith("running_var") else v) for k, v in new.items()}
    backend.set_weights(new)
    back = backend.get_weights()
    assert set(back) == set(new)
    for k in new:
        assert back[k].shape == new[k].shape and back[k].dtype == np.float64
        np.testing.assert_array_equal(back[k], new[k])
    return new


def check_bad_weights_rejected(backend, weights) -> None:
    """A missing trainable weight and a weight of the wrong shape are refused (DSRN weights)."""
    with pytest.raises(ValueError):
        backend.set_weights({k: v for k, v in weights.items() if k != "fc1.weight"})
    with pytest.raises(ValueError):
        backend.set_weights({**weights, "stem.conv.weight": weights["stem.conv.weight"][:, :, :2]})


def check_running_statistics(backend, spec, batch) -> None:
    """evaluate(batch_statistics=True) and gradients leave tdBN's running statistics (and every
    weight) alone; train_step moves them exactly as the reference says (unbiased variance,
    momentum 0.1)."""
    before = backend.get_weights()
    backend.evaluate(batch, record=True, batch_statistics=True)
    backend.gradients(batch)
    for k, v in backend.get_weights().items():
        np.testing.assert_array_equal(v, before[k])
    expected = reference.forward(spec, before, batch, batch_statistics=True).running
    backend.train_step(batch)
    trained = backend.get_weights()
    assert expected
    for k, v in expected.items():
        assert rel(trained[k], v) < 1e-12, k
        assert not np.array_equal(trained[k], before[k])


def check_staged_and_partial_batches(backend, spec, batches) -> None:
    """A staged batch trains and infers; a smaller last batch evaluates (its own compiled shape);
    on the CPU there is no device-memory peak; out-of-memory errors are recognised."""
    staged = backend.stage(batches[0])
    assert np.isfinite(backend.train_step(staged))
    backend.infer(staged)
    backend.synchronize()
    small = Batch(batches[1].x[:, :4], batches[1].y[:4], static=False)
    out = backend.evaluate(small, record=True)
    assert out.scores.shape == (4, spec.n_classes) and out.spike_counts["lif1"].shape == (spec.n_hidden,)
    assert out.membranes["lif1"].shape == (spec.T, 4, spec.n_hidden)
    assert backend.peak_memory_bytes() is None and backend.device_info()["type"] == "cpu"
    assert backend.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not backend.is_out_of_memory(ValueError("shapes do not match"))


def check_capabilities(caps) -> None:
    """Every task and precision, no documented difference, and each task's neuron and surrogate
    and tdBN said to be the library's or custom."""
    assert set(caps.tasks) == set(TASKS)
    assert {"fp32", "tf32", "bf16", "fp64"} <= set(caps.precisions)
    assert not caps.differences and not caps.parity_tolerances
    for task in caps.tasks:
        for part in ("neuron", "surrogate"):
            assert caps.components[f"{part}:{task}"].split(":")[0] in ("library", "custom")
    assert caps.components["tdbn"].split(":")[0] in ("library", "custom")


def check_adam_against_torch(backend, stbp, spec, weights, batches) -> None:
    """Three Adam steps give torch.optim.Adam's weights (``stbp``, fp64); changing the learning
    rate takes effect without recompiling; lr 0 leaves the weights where they are."""
    for i, batch in enumerate(batches):
        lr = spec.lr * (0.5 ** i)
        backend.set_learning_rate(lr)
        stbp.set_learning_rate(lr)
        assert abs(backend.train_step(batch) - stbp.train_step(batch)) < 1e-9
    got, want = backend.get_weights(), stbp.get_weights()
    assert max(rel(got[k] - weights[k], want[k] - weights[k]) for k in want) < 1e-8
    compiled = backend.compile_count
    backend.set_learning_rate(0.0)
    backend.train_step(batches[0])
    assert backend.compile_count == compiled
    for k, v in backend.get_weights().items():
        np.testing.assert_array_equal(v, got[k])


def check_forward_backward_on_device(backend, spec, weights, batches) -> None:
    """lif_layer's forward_backward: (gradients, loss) left on the device, those of gradients()
    and the reference's loss; compiled once for staged and unstaged batches; weights untouched."""
    import jax

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


def write_bar_images(directory, n_train: int, n_test: int) -> None:
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


def check_end_to_end(result, spec) -> list[float]:
    """A training run through the runner finished with finite losses, an accuracy and every layer
    on the CPU; returns its training losses."""
    assert result.status == "ok", result.message + result.extra.get("traceback", "")
    losses = result.curves["train_loss"].y
    assert len(losses) == result.metrics["steps"].value > 0
    assert all(np.isfinite(losses))
    assert 0.0 <= result.metrics["accuracy"].value <= 1.0
    assert [layer.name for layer in result.layers] == spec.layer_names()
    assert result.device["type"] == "cpu"
    if spec.name == "synthetic":
        assert losses[-1] < losses[0]  # fitting the one batch
    return losses
