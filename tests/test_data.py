import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest

import tasks.idx as idx
from tasks.data import make_data
from tasks.errors import DataError
from tasks.specs import get_spec
from tests.conftest import make_images, write_dataset


# ---------------------------------------------------------------- idx files
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    images, _ = make_images(5, 0)
    idx.write_idx(tmp_path / name, images)
    back = idx.read_idx(tmp_path / name)
    assert back.dtype == np.uint8 and np.array_equal(back, images)


def test_truncated_idx_file_is_named(tmp_path):
    images, _ = make_images(5, 0)
    path = tmp_path / "train-images-idx3-ubyte"
    idx.write_idx(path, images)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated.*train-images-idx3-ubyte"):
        idx.read_idx(path)


def test_corrupt_header_and_bad_gzip_are_named(tmp_path):
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04" + bytes(20))
    with pytest.raises(DataError, match="corrupt.*t10k-labels"):
        idx.read_idx(bad)
    not_gzip = tmp_path / "x.gz"
    not_gzip.write_bytes(b"plain bytes")
    with pytest.raises(DataError, match="x.gz"):
        idx.read_idx(not_gzip)


def test_search_order_data_dir_then_env_then_cache_then_system(tmp_path, isolated_data, monkeypatch):
    for place in ("arg", "env", "system"):
        write_dataset(tmp_path / place / "mnist", n_train=20, n_test=10)
    write_dataset(tmp_path / "cache" / "spikebench" / "mnist", n_train=20, n_test=10)
    monkeypatch.setattr(idx, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setenv("SPIKEBENCH_DATA", str(tmp_path / "env"))
    assert idx.find_files("mnist", tmp_path / "arg")["train_images"].parent == tmp_path / "arg" / "mnist"
    assert idx.find_files("mnist", None)["train_images"].parent == tmp_path / "env" / "mnist"
    monkeypatch.delenv("SPIKEBENCH_DATA")
    assert idx.find_files("mnist", None)["train_images"].parent == tmp_path / "cache" / "spikebench" / "mnist"
    import shutil

    shutil.rmtree(tmp_path / "cache")
    assert idx.find_files("mnist", None)["train_images"].parent == tmp_path / "system" / "mnist"


def test_missing_dataset_offline_says_how_to_get_it(isolated_data, monkeypatch):
    import pooch

    def offline(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DataError) as info:
        idx.load_dataset("fashion-mnist", None)
    message = str(info.value)
    assert "download failed" in message and "--data-dir" in message and "dataset-fashion-mnist" in message
    assert "\n" not in message
    with pytest.raises(DataError, match="switched off"):
        idx.load_dataset("mnist", None, allow_download=False)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_verifies_checksums(tmp_path, isolated_data, monkeypatch):
    """A real download from a local server: good files load, a tampered file is refused."""
    served = tmp_path / "served"
    served.mkdir()
    write_dataset(served, n_train=30, n_test=10, gz=True)
    md5 = {key: hashlib.md5((served / f"{stem}.gz").read_bytes()).hexdigest() for key, stem in idx.FILES.items()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setitem(idx.SOURCES, "mnist", {"urls": [url], "md5": md5})
        data = idx.load_dataset("mnist", None)
        assert data.train_images.shape == (30, 28, 28) and data.test_labels.shape == (10,)
        assert (tmp_path / "cache" / "spikebench" / "mnist" / "train-images-idx3-ubyte.gz").exists()

        idx._LOADED.clear()
        tampered = dict(md5, test_labels="0" * 32)
        monkeypatch.setitem(idx.SOURCES, "fashion-mnist", {"urls": [url], "md5": tampered})
        with pytest.raises(DataError, match="checksum"):
            idx.load_dataset("fashion-mnist", None)
        assert not (tmp_path / "cache" / "spikebench" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    finally:
        server.shutdown()


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
