
import numpy as np

from tasks.data import make_data
from tasks.specs import get_spec


# ---------------------------------------------------------------- idx files
# ---------------------------------------------------------------- batches
def _batches(spec, data_root, epoch=0):
    return list(make_data(spec, data_root).train_batches(epoch))


def test_batches_are_identical_across_constructions_and_differ_across_epochs(data_root):
    spec = get_spec("fc_mnist_poisson", T=5, batch_size=16)
    a, b = _batches(spec, data_root), _batches(spec, data_root)
    assert len(a) == 96 // 16
    for x, y in zip(a, b):
        assert np.array_equal(x.x, y.x) and np.array_equal(x.y, y.y)
    c = _batches(spec, data_root, epoch=1)
    assert not np.array_equal(a[0].y, c[0].y)


def test_training_drops_the_last_partial_batch_and_test_keeps_it(data_root):
    spec = get_spec("fc_mnist", batch_size=40)
    data = make_data(spec, data_root)
    assert [b.size for b in data.train_batches(0)] == [40, 40]
    assert [b.size for b in data.eval_batches("test")] == [40, 8]
    first = next(data.train_batches(0))
    assert first.static and first.x.shape == (40, 784) and first.x.max() <= 1.0 and first.x.min() >= 0.0


def test_poisson_spikes_follow_pixel_intensity(data_root):
    spec = get_spec("fc_mnist_poisson", T=400, batch_size=8)
    data = make_data(spec, data_root)
    batch = next(data.eval_batches("test"))
    p = data.dataset.test_images[:8].reshape(8, -1) / 255.0
    rate = batch.x.mean(axis=0)
    assert batch.x.shape == (400, 8, 784) and set(np.unique(batch.x)) <= {0.0, 1.0}
    assert np.abs(rate - p).max() < 0.12
    assert np.all(rate[p == 0] == 0)


def test_validation_split_is_disjoint_and_seeded(data_root):
    spec = get_spec("dsrn_tdbn", validation_size=20, batch_size=8)
    data = make_data(spec, data_root)
    assert len(data.val_index) == 20 and len(data.train_index) == 76
    assert not set(data.val_index) & set(data.train_index)
    again = make_data(spec, data_root)
    assert np.array_equal(again.val_index, data.val_index)
    other = make_data(spec.with_overrides(seed=1), data_root)
    assert not np.array_equal(other.val_index, data.val_index)


def test_augmentation_is_a_padded_crop_then_a_flip(data_root):
    spec = get_spec("dsrn_tdbn", batch_size=8)
    data = make_data(spec, data_root)
    images = data.dataset.train_images[:8].astype(np.float32) / 255.0
    gen = np.random.default_rng(3)
    out = data.augment(images, gen)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4)))
    for i in range(8):
        matches = [
            (dy, dx, flip)
            for dy in range(9) for dx in range(9) for flip in (False, True)
            if np.array_equal(out[i], (padded[i, dy:dy + 28, dx:dx + 28])[:, ::-1] if flip
                              else padded[i, dy:dy + 28, dx:dx + 28])
        ]
        assert matches, f"sample {i} is not a crop of the padded image"


def test_evaluation_batches_are_normalised_and_not_augmented(data_root):
    spec = get_spec("dsrn_tdbn", batch_size=8, validation_size=16)
    data = make_data(spec, data_root)
    batch = next(data.eval_batches("test"))
    expected = (data.dataset.test_images[:8].astype(np.float32) / 255.0 - 0.1307) / 0.3082
    assert batch.x.shape == (8, 1, 28, 28)
    np.testing.assert_allclose(batch.x[:, 0], expected, rtol=1e-6)


def test_synthetic_batch_is_fixed_and_sparse():
    spec = get_spec("synthetic")
    data = make_data(spec)
    first, second = next(data.train_batches(0)), list(data.train_batches(0))[-1]
    assert first is second and first.x.shape == (200, 256, 100)
    assert abs(first.x.mean() - 0.005) < 0.001
    assert 0.4 < first.y.mean() < 0.6
    assert data.n_train_batches() == 3000
