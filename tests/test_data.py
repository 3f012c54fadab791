"""Tests of fl_helpers.data: the shipped MNIST files and the three client partitions."""

from __future__ import annotations

import gzip
import hashlib
import re
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


def test_truncated_file_fails_its_checksum(tmp_path):
    folder = _copy_data(tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz is corrupted"):
        data.load_mnist(folder)


def _idx(magic: int, shape: tuple[int, ...], payload: int) -> bytes:
    """An IDX buffer: magic, the dimensions its header promises, and ``payload`` bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + bytes(payload)


IMAGES = "train-images-idx3-ubyte.gz"  # read first, so the other files are never needed


@pytest.mark.parametrize(("raw", "pattern"), [
    # A well-formed gzip whose IDX header has the labels' magic instead of the images'.
    (gzip.compress(_idx(2049, (2, 28, 28), 2 * 28 * 28)), r"has IDX magic 2049, expected 2051"),
    # The header promises 60,000 images, the file holds 10.
    (gzip.compress(_idx(2051, (60000, 28, 28), 10 * 28 * 28)),
     r"holds 7840 values, its header promises \(60000, 28, 28\)"),
    # Shorter than the 16-byte header itself.
    (gzip.compress(b"\x00\x00\x08"), r"truncated: 3 bytes, shorter than its 16-byte IDX header"),
    # Not gzip at all, or a gzip stream cut short.
    (b"plain bytes, not gzip", r"not a valid gzip file"),
    (gzip.compress(_idx(2051, (1, 28, 28), 784))[:30], r"not a valid gzip file"),
], ids=["labels-magic", "fewer-values", "short-header", "not-gzip", "cut-gzip"])  # (gzip's bytes
# hold the time, and test ids must be the same in every pytest-xdist worker)
def test_idx_header_checks(tmp_path, monkeypatch, raw, pattern):
    # The checksum is what normally catches a damaged file, so these checks of the IDX format
    # are only reachable for a file whose checksum matches: register the crafted file's own.
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / IMAGES).write_bytes(raw)
    monkeypatch.setitem(data.MNIST_FILES, IMAGES, hashlib.sha256(raw).hexdigest())
    with pytest.raises(ValueError, match=rf"MNIST file {re.escape(IMAGES)} .*{pattern}"):
        data.load_mnist(folder)


def test_idx_reader_accepts_a_small_valid_file(tmp_path, monkeypatch):
    # The same route with a well-formed 2-image file gets past the images (the labels file is
    # then missing): the checks above reject only what is wrong.
    raw = gzip.compress(_idx(2051, (2, 28, 28), 2 * 28 * 28))
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / IMAGES).write_bytes(raw)
    monkeypatch.setitem(data.MNIST_FILES, IMAGES, hashlib.sha256(raw).hexdigest())
    with pytest.raises(FileNotFoundError, match=r"train-labels-idx1-ubyte\.gz is missing"):
        data.load_mnist(folder)


@pytest.mark.parametrize("data_dir", [3, 2.5, True, ["data"], b"data"])
def test_data_dir_must_be_a_path(data_dir):
    with pytest.raises(TypeError, match=r"^data_dir must be a path"):
        data.load_mnist(data_dir)


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
    (lambda rng: data.partition_iid(2**64, 5, rng=rng), ValueError,
     r"num_examples must be <= 2147483647, got 18446744073709551616"),
    (lambda rng: data.partition_iid(100, 2**64, rng=rng), ValueError,
     r"num_clients must be <= 9223372036854775807 .*got 18446744073709551616"),
    (lambda rng: data.partition_iid(100, True, rng=rng), TypeError,
     r"num_clients must be an integer, got bool True"),
    (lambda rng: data.partition_dirichlet(LABELS, 5, alpha=1e308, rng=rng), ValueError,
     r"alpha must be <= 1e\+06, got 1e\+308"),
    (lambda rng: data.partition_dirichlet(LABELS, 5, alpha=5e-324, rng=rng), ValueError,
     r"alpha must be >= 2\.2250738585072014e-308"),
    (lambda rng: data.partition_dirichlet(LABELS, 5, alpha=10**400, rng=rng), ValueError,
     r"alpha must be finite, got an integer of about 401 digits"),
    (lambda rng: data.partition_shards(LABELS > 4, 5, rng=rng), TypeError,
     r"labels must hold integers, got dtype bool"),
    (lambda rng: data.partition_shards(None, 5, rng=rng), TypeError,
     r"labels must be an array, got NoneType None"),
    (lambda rng: data.partition_shards("0123", 2, rng=rng), TypeError,
     r"labels must be an array, got str '0123'"),
    (lambda rng: data.label_counts(LABELS, [np.arange(5)], num_classes=2**64), ValueError,
     r"num_classes must be <= 1000000, got 18446744073709551616"),
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


# ---------------------------------------------------------------------------- index arrays

X = np.arange(20.0).reshape(10, 2)
Y = np.arange(10)


@pytest.mark.parametrize(("partitions", "error", "pattern"), [
    # -1 used to select the last example silently (numpy counts negative indices from the end).
    ([np.array([-1])], ValueError, r"partitions\[0\] must hold ids in 0\.\.9, got values from -1"),
    ([np.array([0, 1]), np.array([10])], ValueError, r"partitions\[1\] must hold ids in 0\.\.9"),
    ([np.array([True, False])], TypeError, r"partitions\[0\] must hold integer ids, got a bool"),
    ([np.array([1.0, 2.0])], TypeError, r"partitions\[0\] must hold integer ids, got dtype float"),
    ([np.array([3, 3])], ValueError, r"partitions\[0\] must not repeat an id, got 3 2 times"),
    ([np.array([[0, 1]])], ValueError, r"partitions\[0\] must be a 1-D array of ids"),
    ([5], TypeError, r"partitions\[0\] must be a 1-D array of integer ids, got int 5"),
    ([], ValueError, r"partitions must hold at least one client's index array, got 0"),
    (np.arange(3), TypeError, r"partitions must be a list of index arrays"),
    (None, TypeError, r"partitions must be a list of index arrays .*got NoneType None"),
])
def test_partitions_checked(partitions, error, pattern):
    with pytest.raises(error, match=pattern):
        data.client_datasets(X, Y, partitions)
    with pytest.raises(error, match=pattern):
        data.label_counts(Y, partitions)


def test_client_datasets_valid_lists_and_empty_clients():
    clients = data.client_datasets(X, Y, [[0, 9], np.array([], dtype=np.int64), (4,)])
    assert [c[1].tolist() for c in clients] == [[0, 9], [], [4]]
    assert clients[0][0].shape == (2, 2)
    clients[0][0][0, 0] = -1.0  # copies, not views of x
    assert X[0, 0] == 0.0
    counts = data.label_counts(Y, [[0, 9], [4]])
    assert counts.sum(axis=1).tolist() == [2, 1] and counts[0, 9] == 1


@pytest.mark.parametrize(("x", "y", "error", "pattern"), [
    (None, Y, TypeError, r"^x must be an array, got NoneType None"),
    (X, "labels", TypeError, r"^y must be an array, got str 'labels'"),
    (3.0, Y, TypeError, r"^x must be an array, got float 3\.0"),
    (np.array(["a"] * 10), Y, TypeError, r"^x must be a numeric array, got dtype <U1"),
    (X[:0], Y[:0], ValueError, r"^x must hold at least one example, got 0"),
    (X[:9], Y, ValueError, r"^x and y must have the same length, got 9 and 10"),
])
def test_client_datasets_checks_x_and_y(x, y, error, pattern):
    with pytest.raises(error, match=pattern):
        data.client_datasets(x, y, [np.array([0])])


def test_downsample_averages_blocks():
    images = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    small = data.downsample(images, 2)
    assert small.shape == (2, 2, 3) and small.dtype == np.float32
    assert small[0, 0, 0] == np.mean([0, 1, 6, 7])
    np.testing.assert_array_equal(data.downsample(images, 1), images)
    with pytest.raises(ValueError, match="factor must divide"):
        data.downsample(images, 4)
    with pytest.raises(ValueError, match="finite"):
        data.downsample(np.full((1, 2, 2), np.nan, np.float32), 2)
