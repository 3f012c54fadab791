"""Tests of fl_helpers.data: the shipped MNIST files and the three client partitions."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from fl_helpers import data

TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

# MD5 of the uncompressed IDX files: the checksums published with MNIST itself, so this checks the
# data, not just our copy of it.
RAW_MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist()


@pytest.fixture(scope="module")
def train_labels(mnist):
    return mnist[0][1]


# ---------------------------------------------------------------------------- the shipped files


@pytest.mark.parametrize("name", sorted(data.MNIST_FILES))
def test_shipped_file_checksums(name):
    import gzip

    raw = (data.default_data_dir() / name).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == data.MNIST_FILES[name]
    assert hashlib.md5(gzip.decompress(raw)).hexdigest() == RAW_MD5[name]


def test_shapes_dtypes_and_ranges(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (y_train, y_test):
        assert y.min() == 0 and y.max() == 9


def test_known_labels_and_counts(mnist):
    (_, y_train), (_, y_test) = mnist
    assert y_train[0] == 5 and y_test[0] == 7
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(y_train).tolist() == TRAIN_LABEL_COUNTS
    assert np.bincount(y_test).tolist() == TEST_LABEL_COUNTS


def test_pixel_statistics(mnist):
    (x_train, _), (x_test, _) = mnist
    # The normalisation constants quoted everywhere for MNIST: mean 0.1307, std 0.3081.
    assert x_train.mean(dtype=np.float64) == pytest.approx(0.1307, abs=5e-5)
    assert x_train.std(dtype=np.float64) == pytest.approx(0.3081, abs=5e-5)
    assert x_test.mean(dtype=np.float64) == pytest.approx(0.1325, abs=5e-5)


def test_load_returns_fresh_arrays():
    (x1, y1), _ = data.load_mnist()
    x1[0, 0, 0] = 7.0
    y1[0] = 3
    (x2, y2), _ = data.load_mnist()
    assert x2[0, 0, 0] == 0.0 and y2[0] == 5


def _copy_data(tmp_path: Path) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.MNIST_FILES:
        target = folder / name
        shutil.copyfile(data.default_data_dir() / name, target)
        target.chmod(0o644)  # the shipped files may be read-only
    return folder


def test_corrupted_file_is_named(tmp_path):
    folder = _copy_data(tmp_path)
    path = folder / "train-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz.*corrupted"):
        data.load_mnist(folder)


def test_truncated_file_is_named(tmp_path):
    folder = _copy_data(tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz"):
        data.load_mnist(folder)


def test_missing_file_is_named(tmp_path):
    folder = _copy_data(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz.*missing"):
        data.load_mnist(folder)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FL_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == tmp_path / "mnist"
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        data.load_mnist()


# ---------------------------------------------------------------------------- partitions


def _partition(kind: str, labels: np.ndarray, num_clients: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "iid":
        return data.partition_iid(labels.size, num_clients, rng=rng)
    if kind == "shards":
        return data.partition_shards(labels, num_clients, rng=rng)
    return data.partition_dirichlet(labels, num_clients, alpha=0.5, rng=rng)


KINDS = ["iid", "shards", "dirichlet"]


@pytest.mark.parametrize("kind", KINDS)
def test_partition_disjoint_and_complete(kind, train_labels):
    parts = _partition(kind, train_labels, 100, seed=0)
    assert len(parts) == 100
    assert all(p.dtype == np.int64 and p.ndim == 1 and p.size > 0 for p in parts)
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted, no repeats within a client
    everything = np.concatenate(parts)
    assert everything.size == train_labels.size  # no example given twice ...
    assert np.array_equal(np.sort(everything), np.arange(train_labels.size))  # ... none left out


@pytest.mark.parametrize("kind", KINDS)
def test_partition_same_seed_same_split(kind, train_labels):
    a = _partition(kind, train_labels, 50, seed=1)
    b = _partition(kind, train_labels, 50, seed=1)
    c = _partition(kind, train_labels, 50, seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_iid_sizes_and_labels(train_labels):
    parts = data.partition_iid(train_labels.size, 7, rng=np.random.default_rng(0))
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == train_labels.size
    parts = data.partition_iid(train_labels.size, 100, rng=np.random.default_rng(0))
    counts = data.label_counts(train_labels, parts)
    assert (counts > 0).sum(axis=1).min() == 10  # 600 random examples always hold every digit


def test_shards_give_most_clients_two_labels(train_labels):
    parts = data.partition_shards(train_labels, 100, shards_per_client=2,
                                  rng=np.random.default_rng(0))
    assert all(p.size == 600 for p in parts)
    labels_per_client = (data.label_counts(train_labels, parts) > 0).sum(axis=1)
    # Two shards of 300 sorted examples: two digits, one if both shards come from the same digit,
    # or a third (rarely a fourth) when a shard straddles a label boundary.
    assert np.mean(labels_per_client == 2) >= 0.75
    assert labels_per_client.max() <= 4


def test_dirichlet_alpha_controls_skew(train_labels):
    def stats(alpha):
        parts = data.partition_dirichlet(train_labels, 100, alpha=alpha,
                                         rng=np.random.default_rng(0))
        counts = data.label_counts(train_labels, parts)
        top_share = counts.max(axis=1) / counts.sum(axis=1)
        return (counts > 0).sum(axis=1).mean(), top_share.mean()

    skewed_labels, skewed_share = stats(0.1)
    uniform_labels, uniform_share = stats(1000.0)
    # alpha = 1000: every client holds all ten digits in nearly equal shares (1/10 each).
    assert uniform_labels == 10.0
    assert uniform_share < 0.13
    # alpha = 0.1: one digit makes up most of a typical client's data.
    assert skewed_share > 0.5
    assert skewed_labels < 7.0


def test_dirichlet_every_client_non_empty():
    labels = np.repeat(np.arange(10), 5)  # 50 examples, 40 clients, very skewed
    parts = data.partition_dirichlet(labels, 40, alpha=0.01, rng=np.random.default_rng(0))
    assert min(p.size for p in parts) >= 1
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(50))


def test_client_datasets_and_label_counts(mnist):
    (x, y), _ = mnist
    parts = data.partition_shards(y, 10, shards_per_client=1, rng=np.random.default_rng(0))
    clients = data.client_datasets(x, y, parts)
    assert len(clients) == 10
    for (x_k, y_k), idx in zip(clients, parts, strict=True):
        assert x_k.shape == (idx.size, 28, 28) and np.array_equal(y_k, y[idx])
    counts = data.label_counts(y, parts)
    assert counts.shape == (10, 10)
    assert counts.sum(axis=0).tolist() == TRAIN_LABEL_COUNTS
    with pytest.raises(ValueError, match="same length"):
        data.client_datasets(x[:10], y[:11], parts)


# ---------------------------------------------------------------------------- bad arguments

LABELS = np.repeat(np.arange(10), 10)  # 100 examples


@pytest.mark.parametrize("call, error, pattern", [
    (lambda rng: data.partition_iid(100, 0, rng=rng),
     ValueError, r"num_clients must be >= 1, got 0"),
    (lambda rng: data.partition_iid(100, 101, rng=rng), ValueError, r"num_clients.*101"),
    (lambda rng: data.partition_iid(0, 1, rng=rng),
     ValueError, r"num_examples must be >= 1, got 0"),
    (lambda rng: data.partition_iid(100, 2.0, rng=rng),
     TypeError, r"num_clients must be an integer"),
    (lambda rng: data.partition_shards(LABELS, 0, rng=rng),
     ValueError, r"num_clients must be >= 1"),
    (lambda rng: data.partition_shards(LABELS, 101, rng=rng), ValueError, r"num_clients.*101"),
    (lambda rng: data.partition_shards(LABELS, 3, shards_per_client=2, rng=rng), ValueError,
     r"shards_per_client=2 with num_clients=3 gives 6 shards"),
    (lambda rng: data.partition_shards(LABELS, 5, shards_per_client=0, rng=rng), ValueError,
     r"shards_per_client must be >= 1, got 0"),
    (lambda rng: data.partition_shards(LABELS.astype(float), 5, rng=rng), TypeError,
     r"labels must hold integers"),
    (lambda rng: data.partition_dirichlet(LABELS, 0, alpha=1.0, rng=rng), ValueError,
     r"num_clients must be >= 1"),
    (lambda rng: data.partition_dirichlet(LABELS, 101, alpha=1.0, rng=rng), ValueError,
     r"num_clients.*101"),
    (lambda rng: data.partition_dirichlet(LABELS, 5, alpha=0.0, rng=rng), ValueError,
     r"alpha must be > 0, got 0.0"),
    (lambda rng: data.partition_dirichlet(LABELS, 5, alpha=-1, rng=rng), ValueError,
     r"alpha must be > 0, got -1.0"),
    (lambda rng: data.partition_dirichlet(LABELS, 5, alpha=float("nan"), rng=rng), ValueError,
     r"alpha must be finite"),
    (lambda rng: data.partition_dirichlet(LABELS.reshape(10, 10), 5, alpha=1.0, rng=rng),
     ValueError, r"labels must be a 1-D array"),
    (lambda rng: data.label_counts(np.array([0, 10]), [np.array([0, 1])]), ValueError,
     r"labels must be in 0\.\.9, got values from 0 to 10"),
])
def test_bad_arguments(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(np.random.default_rng(0))


@pytest.mark.parametrize("call", [
    lambda rng: data.partition_iid(100, 5, rng=rng),
    lambda rng: data.partition_shards(LABELS, 5, rng=rng),
    lambda rng: data.partition_dirichlet(LABELS, 5, alpha=1.0, rng=rng),
])
@pytest.mark.parametrize("rng", [0, np.random.RandomState(0), None])
def test_wrong_rng_type(call, rng):
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        call(rng)
