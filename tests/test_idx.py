"""tasks/idx.py: idx files, where data sets are found, and their download."""

import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest

from tasks.errors import DataError
import tasks.idx as idx
from tests.conftest import make_images, write_dataset


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


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
