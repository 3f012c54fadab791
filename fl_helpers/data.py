"""The course's shipped data (MNIST, UCI Heart Disease, UCI credit-card default), checked by
SHA-256, and ways to split MNIST across clients.

Nothing here touches the network: the four IDX files ship with the course, and their SHA-256
checksums are verified the first time a process loads them (later calls reuse the parsed arrays),
so a truncated or altered file fails loudly instead of training on garbage.

The three partitions follow the papers the course reproduces:

* :func:`partition_iid` -- every client gets a uniformly random, equally sized slice.
* :func:`partition_shards` -- the "pathological non-IID" split of McMahan et al. 2017,
  "Communication-Efficient Learning of Deep Networks from Decentralized Data", Section 3: sort by
  label, cut into equal shards, deal each client ``shards_per_client`` shards.
* :func:`partition_dirichlet` -- label proportions per client drawn from Dirichlet(alpha), as in
  Hsu, Qi & Brown 2019, "Measuring the Effects of Non-Identical Data Distribution for Federated
  Visual Classification", Section 3.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import paths

NUM_CLASSES = 10

#: SHA-256 of each shipped ``.gz`` file (see ``data/README.md``).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
}

# IDX magic numbers: 0x00000801 for a uint8 vector, 0x00000803 for a uint8 3-D array.
_IDX_MAGIC = {1: 2049, 3: 2051}


def default_data_dir() -> Path:
    """The folder holding the MNIST files.

    ``$FL_DATA_DIR/mnist`` if that environment variable is set, otherwise ``data/mnist`` in the
    course checkout that this package was installed from (``pip install -e .``).
    """
    return paths.data_dir("mnist")


def _read_verified(path: Path, expected_sha256: str, *, what: str, folder: str) -> bytes:
    """The bytes of a shipped data file, after checking it exists and its SHA-256.

    Raises:
        FileNotFoundError: The file is missing (the message names it and where it belongs).
        ValueError: Its checksum differs from ``expected_sha256``.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} is missing: expected it at {path}. The data ships with the course in "
            f"data/{folder}/; restore it with `git checkout data/`.")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise ValueError(f"{what} is corrupted: its SHA-256 is {digest}, expected "
                         f"{expected_sha256}. Restore it with `git checkout data/`.")
    return raw


def _read_idx(path: Path, expected_sha256: str, ndim: int) -> np.ndarray:
    raw = _read_verified(path, expected_sha256, what=f"MNIST file {path.name}", folder="mnist")
    try:
        buffer = gzip.decompress(raw)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"MNIST file {path.name} is not a valid gzip file: {error}.") from error
    header = 4 + 4 * ndim
    if len(buffer) < header:
        raise ValueError(
            f"MNIST file {path.name} is truncated: {len(buffer)} bytes, shorter than its "
            f"{header}-byte IDX header."
        )
    magic = int.from_bytes(buffer[0:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise ValueError(
            f"MNIST file {path.name} has IDX magic {magic}, expected {_IDX_MAGIC[ndim]}."
        )
    shape = tuple(int.from_bytes(buffer[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(buffer, dtype=np.uint8, offset=header)
    if array.size != int(np.prod(shape)):
        raise ValueError(
            f"MNIST file {path.name} holds {array.size} values, its header promises {shape}."
        )
    return array.reshape(shape)


def _data_folder(data_dir: Any, default: Any) -> Path:
    """``data_dir`` as a folder, or ``default()`` for ``None``; a ``TypeError`` for a non-path."""
    if data_dir is None:
        return default()
    if isinstance(data_dir, bool) or not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path (str or os.PathLike) or None, got "
                        f"{type(data_dir).__name__} {v._fmt(data_dir)}.")
    return Path(data_dir)


@functools.lru_cache(maxsize=4)
def _load_raw(data_dir: str) -> tuple[np.ndarray, ...]:
    folder = Path(data_dir)
    return tuple(
        _read_idx(folder / name, sha, ndim=3 if "images" in name else 1)
        for name, sha in MNIST_FILES.items()
    )


def load_mnist(data_dir: str | os.PathLike | None = None) -> tuple[
        tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the shipped MNIST set, checking every file's checksum.

    Args:
        data_dir: Folder with the four ``*-ubyte.gz`` files; defaults to
            :func:`default_data_dir`.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: images as float32 in [0, 1] of shape
        ``(60000, 28, 28)`` and ``(10000, 28, 28)``, labels as int64 in 0..9. Fresh arrays on every
        call, so changing them in place changes nothing for the next caller.

    Raises:
        FileNotFoundError: A file is missing (the message names it).
        ValueError: A file's checksum or IDX header is wrong (the message names it).
        TypeError: ``data_dir`` is not a path.
    """
    folder = _data_folder(data_dir, default_data_dir)
    train_images, train_labels, test_images, test_labels = _load_raw(str(folder.resolve()))
    scale = np.float32(1.0 / 255.0)
    return (
        (train_images.astype(np.float32) * scale, train_labels.astype(np.int64)),
        (test_images.astype(np.float32) * scale, test_labels.astype(np.int64)),
    )


#: Limits that keep every allocation below a few GB (a clear error instead of a MemoryError or
#: an overflow): examples to split, label classes, and the Dirichlet concentration (beyond 1e6
#: a Dirichlet split is an IID split, and near 1e308 numpy's sampler overflows).
MAX_NUM_EXAMPLES = 2**31 - 1
MAX_NUM_CLASSES = 10**6
MAX_DIRICHLET_ALPHA = 1e6


def _check_array(name: str, value: object) -> np.ndarray:
    """``value`` as a numpy array with at least one dimension, or a TypeError naming it."""
    if value is None or isinstance(value, (str, bytes, bool, int, float, complex, np.generic)):
        raise TypeError(f"{name} must be an array, got {type(value).__name__} {v._fmt(value)}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise TypeError(f"{name} must be an array, got {type(value).__name__}.") from error
    if array.ndim == 0:
        raise TypeError(f"{name} must be an array, got a 0-d {type(value).__name__}.")
    return array


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = _check_array("labels", labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {labels.shape}.")
    if labels.size == 0:
        raise ValueError("labels must not be empty, got 0 labels.")
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must hold integers, got dtype {labels.dtype}.")
    return labels


def _check_partitions(partitions: object, num_examples: int) -> list[np.ndarray]:
    """Each client's index array: 1-D integers in 0..num_examples - 1, no example twice."""
    if isinstance(partitions, np.ndarray) and partitions.dtype != object:
        raise TypeError(f"partitions must be a list of index arrays (one per client), got a "
                        f"{partitions.ndim}-D array of dtype {partitions.dtype}.")
    if not isinstance(partitions, (list, tuple, np.ndarray)):
        raise TypeError(f"partitions must be a list of index arrays (one per client), got "
                        f"{type(partitions).__name__} {v._fmt(partitions)}.")
    if len(partitions) == 0:
        raise ValueError("partitions must hold at least one client's index array, got 0.")
    return [v.check_ids(f"partitions[{k}]", part, num=num_examples, unique=True)
            for k, part in enumerate(partitions)]


def _check_num_clients(num_clients: int, num_examples: int) -> int:
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    if num_clients > num_examples:
        raise ValueError(
            f"num_clients must be <= the number of examples ({num_examples}), got {num_clients}."
        )
    return num_clients


def partition_iid(num_examples: int, num_clients: int, *,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Splits ``range(num_examples)`` into ``num_clients`` random slices of (nearly) equal size.

    Args:
        num_examples: How many examples to split (>= num_clients).
        num_clients: How many clients (>= 1).
        rng: Source of randomness; the same generator state gives the same split.

    Returns:
        One sorted int64 index array per client; disjoint, together covering every example.
        Sizes differ by at most one.
    """
    num_examples = v.check_int("num_examples", num_examples, minimum=1,
                               maximum=MAX_NUM_EXAMPLES)
    num_clients = _check_num_clients(num_clients, num_examples)
    rng = v.check_rng("rng", rng)
    order = rng.permutation(num_examples)
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, num_clients)]


def partition_shards(labels: np.ndarray, num_clients: int, *, shards_per_client: int = 2,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """The pathological non-IID split of McMahan et al. 2017 (Section 3).

    The examples are sorted by label, cut into ``num_clients * shards_per_client`` shards of equal
    size, and each client is dealt ``shards_per_client`` shards at random. With MNIST's 60,000
    training examples and 100 clients this gives 200 shards of 300, so most clients see only two
    digits (a shard can straddle a label boundary and bring a third).

    Args:
        labels: 1-D integer labels of every example.
        num_clients: How many clients (>= 1).
        shards_per_client: Shards dealt to each client (>= 1).
        rng: Source of randomness; the same generator state gives the same split.

    Returns:
        One sorted int64 index array per client; disjoint, together covering every example.

    Raises:
        ValueError: The number of examples is not divisible into
            ``num_clients * shards_per_client`` equal shards.
    """
    labels = _check_labels(labels)
    num_clients = _check_num_clients(num_clients, labels.size)
    shards_per_client = v.check_int("shards_per_client", shards_per_client, minimum=1)
    rng = v.check_rng("rng", rng)
    num_shards = num_clients * shards_per_client
    if labels.size % num_shards != 0:
        raise ValueError(
            f"shards_per_client={shards_per_client} with num_clients={num_clients} gives "
            f"{num_shards} shards, which do not divide {labels.size} examples evenly. "
            "Choose values whose product divides the number of examples."
        )
    # A stable sort keeps the original order within a label, so the split depends only on rng.
    by_label = np.argsort(labels, kind="stable")
    shards = by_label.reshape(num_shards, -1)
    dealt = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(shards[row].ravel()).astype(np.int64) for row in dealt]


def partition_dirichlet(labels: np.ndarray, num_clients: int, *, alpha: float,
                        rng: np.random.Generator) -> list[np.ndarray]:
    """Label-skewed split with Dirichlet(alpha) proportions (after Hsu et al. 2019, Section 3).

    For each class, a vector of client shares is drawn from a symmetric Dirichlet(alpha) and the
    class's examples are dealt out in those proportions. This is the per-class variant used by
    Yurochkin et al. 2019 ("Bayesian Nonparametric Federated Learning of Neural Networks") and
    Wang et al. 2020 ("Federated Learning with Matched Averaging") in their experiments;
    Hsu et al. instead draw each client's label mix from Dirichlet(alpha * prior) and give
    every client the same number of examples. Both make alpha the knob for label skew: on MNIST
    with 100 clients, ``alpha=0.1`` gives clients whose data is mostly one or two digits (the
    largest digit is about 2/3 of a client's data on average), while ``alpha=1000`` is close to
    an IID split. Client sizes vary.
    Every client gets at least one example: a client left empty takes one example from the
    largest client, so that the split stays disjoint and complete.

    Args:
        labels: 1-D integer labels of every example.
        num_clients: How many clients (>= 1, <= number of examples).
        alpha: Dirichlet concentration (> 0).
        rng: Source of randomness; the same generator state gives the same split.

    Returns:
        One sorted int64 index array per client; disjoint, together covering every example.
    """
    labels = _check_labels(labels)
    num_clients = _check_num_clients(num_clients, labels.size)
    alpha = v.check_positive("alpha", alpha)
    if alpha > MAX_DIRICHLET_ALPHA:
        raise ValueError(f"alpha must be <= {MAX_DIRICHLET_ALPHA:g}, got {v._fmt(alpha)}. Such "
                         "an alpha gives an IID split: use partition_iid.")
    rng = v.check_rng("rng", rng)
    owner = np.empty(labels.size, dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(members.size)]
        shares = rng.dirichlet(np.full(num_clients, alpha))
        cuts = np.round(np.cumsum(shares)[:-1] * members.size).astype(np.int64)
        for client, part in enumerate(np.split(members, cuts)):
            owner[part] = client
    counts = np.bincount(owner, minlength=num_clients)
    for empty in np.flatnonzero(counts == 0):
        donor = int(np.argmax(counts))
        moved = int(np.flatnonzero(owner == donor)[rng.integers(counts[donor])])
        owner[moved] = empty
        counts[donor] -= 1
        counts[empty] += 1
    order = np.argsort(owner, kind="stable")
    return [part.astype(np.int64) for part in np.split(order, np.cumsum(counts)[:-1])]


def client_datasets(x: np.ndarray, y: np.ndarray,
                    partitions: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cuts ``(x, y)`` into one ``(x_k, y_k)`` pair per client from a partition's index arrays.

    Args:
        x: Inputs, one row per example (numeric array, at least 1-D).
        y: Labels or targets, one per example (numeric array of the same length as ``x``).
        partitions: One index array per client, as the ``partition_*`` functions return: 1-D
            integers in ``0..len(x) - 1``, no index twice within a client (negative indices,
            which numpy would count from the end, bool masks and floats are rejected).

    Returns:
        ``[(x_k, y_k), ...]``, new arrays (copies), one pair per client.

    Raises:
        ValueError: Lengths differ, ``x`` is empty, or an index is out of range or repeated.
        TypeError: An argument is not a numeric array (or list of index arrays).
    """
    x = _check_array("x", x)
    y = _check_array("y", y)
    for name, array in (("x", x), ("y", y)):
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                         or array.dtype == np.bool_):
            raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}.")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
    if len(x) == 0:
        raise ValueError("x must hold at least one example, got 0.")
    return [(x[idx], y[idx]) for idx in _check_partitions(partitions, len(x))]


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Averages every ``factor x factor`` block of pixels: 28 x 28 MNIST digits become 14 x 14.

    A fixed transformation that looks at one image at a time and depends on no data, so a
    client can apply it to its own images before training at no privacy cost. Fewer inputs mean
    fewer first-layer weights, hence less noise in DP training (the noise's norm grows with the
    square root of the number of parameters).

    Args:
        images: Float array ``(n, height, width)`` with finite values; ``height`` and ``width``
            must be multiples of ``factor``.
        factor: Block side, an int >= 1 (1 returns a float32 copy).

    Returns:
        Float32 array ``(n, height // factor, width // factor)``.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    array = _check_array("images", images)
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"images must be a float array of shape (n, height, width), got dtype "
                         f"{array.dtype} and shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError("images must hold finite values, got NaN or inf.")
    factor = v.check_int("factor", factor, minimum=1)
    count, height, width = array.shape
    if height % factor or width % factor:
        raise ValueError(f"factor must divide the images' height and width {height} x {width}, "
                         f"got {factor}.")
    blocks = array.reshape(count, height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def label_counts(labels: np.ndarray, partitions: list[np.ndarray],
                 num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts the examples of each label that every client holds.

    Returns:
        A ``(num_clients, num_classes)`` int array.

    Raises:
        ValueError: A label lies outside ``0..num_classes - 1`` (without this check ``np.bincount``
            would silently widen the table, or fail with an unrelated message).
    """
    labels = _check_labels(labels)
    num_classes = v.check_int("num_classes", num_classes, minimum=1, maximum=MAX_NUM_CLASSES)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"labels must be in 0..{num_classes - 1}, got values from {low} to {high}. "
            f"Labels run from 0 to num_classes - 1 (num_classes={num_classes})."
        )
    parts = _check_partitions(partitions, labels.size)
    return np.stack([np.bincount(labels[idx], minlength=num_classes) for idx in parts])


# --- UCI Heart Disease: four hospitals, one file each (notebook 08) ---------------------------

#: The four hospitals in the order FLamby numbers its centres (0 Cleveland, 1 Hungary,
#: 2 Switzerland, 3 VA Long Beach), with the shipped file and its SHA-256 (see data/README.md).
HEART_DISEASE_FILES: dict[str, tuple[str, str]] = {
    "cleveland": ("processed.cleveland.data",
                  "a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8"),
    "hungary": ("processed.hungarian.data",
                "d1ad108f785768cd3d7e82dc522e6f5a61eea93cccfb3a46ee8076f73fc3d796"),
    "switzerland": ("processed.switzerland.data",
                    "834a405ccf5b66ab4056bb77794adc8df0b7125186454c0a1d002d33c6c3b314"),
    "va": ("processed.va.data",
           "e7c93d8d0d2acdadfa4c5e8de768e2191e7f618b952e29623f1f0d5949ff6b8f"),
}
HOSPITALS: tuple[str, ...] = tuple(HEART_DISEASE_FILES)
NUM_HOSPITALS = len(HOSPITALS)

#: The 14 columns of the UCI files; ``num`` is the diagnosis (0 none, 1-4 disease).
HEART_DISEASE_COLUMNS: tuple[str, ...] = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
    "slope", "ca", "thal", "num",
)


def heart_disease_dir() -> Path:
    """The folder holding the four heart-disease files.

    ``$FL_DATA_DIR/heart_disease`` if that environment variable is set, otherwise
    ``data/heart_disease`` in the course checkout.
    """
    return paths.data_dir("heart_disease")


def hospital_name(hospital: int | str) -> str:
    """The name (``"cleveland"``, ...) of a hospital given by id 0..3 or by name."""
    if isinstance(hospital, str):
        if hospital not in HEART_DISEASE_FILES:
            raise ValueError(f"hospital must be one of {list(HOSPITALS)}, got {hospital!r}.")
        return hospital
    index = v.check_int("hospital", hospital, minimum=0, maximum=NUM_HOSPITALS - 1)
    return HOSPITALS[index]


def load_heart_disease(hospital: int | str,
                       data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Loads one hospital's raw UCI Heart Disease table, checking the file's SHA-256 first.

    Missing values (``?`` in the file) become ``NaN``; nothing is imputed or dropped here, because
    how to fill a gap is a modelling choice that each hospital must make with its *own* data (see
    ``fl_helpers.cross_silo``). The label column ``num`` is returned as stored: 0-4 for
    Cleveland, Switzerland and VA, but only 0/1 for Hungary, whose file already collapsed 1-4
    into 1; the binary task ``num > 0`` is the same for all four.

    Args:
        hospital: 0..3 or one of :data:`HOSPITALS`.
        data_dir: Folder with the four ``processed.*.data`` files; defaults to
            :func:`heart_disease_dir`.

    Returns:
        Float64 array of shape ``(rows, 14)``, columns as in :data:`HEART_DISEASE_COLUMNS`.

    Raises:
        FileNotFoundError: The hospital's file is missing (the message names it).
        ValueError: ``hospital`` is unknown or out of range, or the file's checksum or format is
            wrong (the message names the file).
    """
    name = hospital_name(hospital)
    filename, expected = HEART_DISEASE_FILES[name]
    path = _data_folder(data_dir, heart_disease_dir) / filename
    raw = _read_verified(path, expected, what=f"Heart-disease file {filename} ({name})",
                         folder="heart_disease")
    rows = []
    for number, line in enumerate(raw.decode("ascii").splitlines(), start=1):
        fields = line.strip().split(",")
        if len(fields) != len(HEART_DISEASE_COLUMNS):
            raise ValueError(f"{filename} line {number} has {len(fields)} fields, expected 14.")
        rows.append([np.nan if f == "?" else float(f) for f in fields])
    return np.asarray(rows, dtype=np.float64)


# --- UCI "Default of credit card clients": one bank's 30,000 customers (notebook 09) ----------

#: The shipped file and its SHA-256 (see data/credit_default/README.md).
CREDIT_DEFAULT_FILE = ("default_of_credit_card_clients.csv",
                       "023eb2c3ad9efd15e7869616fa50a0143f25223105c7069ba632431530afdb61")

#: UCI's names of the 23 feature columns X1..X23, in the file's order.
CREDIT_DEFAULT_FEATURES: tuple[str, ...] = (
    "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE",
    "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6",
    *(f"BILL_AMT{k}" for k in range(1, 7)), *(f"PAY_AMT{k}" for k in range(1, 7)),
)
CREDIT_DEFAULT_ROWS = 30_000


@dataclasses.dataclass(frozen=True)
class CreditDefault:
    """The credit-card table as arrays (Yeh & Lien 2009; UCI dataset 350).

    Attributes:
        ids: Customer ids 1..30,000 (int64, distinct, in the file's order).
        features: Float64 ``(30000, 23)``, the raw integers of X1..X23, columns as in
            ``feature_names``.
        feature_names: :data:`CREDIT_DEFAULT_FEATURES`.
        labels: Int64 ``(30000,)``, 1 if the customer defaulted the next month, else 0.
    """

    ids: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]
    labels: np.ndarray


def credit_default_dir() -> Path:
    """The folder holding the credit-card file: ``$FL_DATA_DIR/credit_default`` if that
    variable is set, otherwise ``data/credit_default`` in the course checkout."""
    return paths.data_dir("credit_default")


@functools.lru_cache(maxsize=2)
def _load_credit_default(folder: str) -> CreditDefault:
    filename, expected = CREDIT_DEFAULT_FILE
    raw = _read_verified(Path(folder) / filename, expected,
                         what=f"Credit-default file {filename}", folder="credit_default")
    lines = raw.decode("ascii").splitlines()
    header = ",".join(["ID", *(f"X{k}" for k in range(1, 24)), "Y"])
    if not lines or lines[0].strip() != header:
        raise ValueError(f"{filename} must start with the header {header!r}.")
    if len(lines) != CREDIT_DEFAULT_ROWS + 1:
        raise ValueError(f"{filename} has {len(lines) - 1} rows, expected "
                         f"{CREDIT_DEFAULT_ROWS}.")
    # Spreadsheet exports write some cells as 5.00E+05: parse as float, all are integers.
    table = np.array([line.split(",") for line in lines[1:]], dtype=np.float64)
    if table.shape[1] != 25 or not np.array_equal(table, np.round(table)):
        raise ValueError(f"{filename} must hold 25 integer columns.")
    ids, labels = table[:, 0].astype(np.int64), table[:, -1].astype(np.int64)
    if not np.array_equal(np.sort(ids), np.arange(1, CREDIT_DEFAULT_ROWS + 1)) \
            or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{filename} must hold the ids 1..{CREDIT_DEFAULT_ROWS} and 0/1 labels.")
    features = np.ascontiguousarray(table[:, 1:-1])
    for array in (ids, features, labels):
        array.flags.writeable = False
    return CreditDefault(ids=ids, features=features, feature_names=CREDIT_DEFAULT_FEATURES,
                         labels=labels)


def load_credit_default(data_dir: str | os.PathLike | None = None) -> CreditDefault:
    """Loads the 30,000 credit-card customers, checking the file's SHA-256 first.

    The table is read as shipped: no scaling, no recoding of UCI's undocumented category codes
    (EDUCATION 0, 5, 6; MARRIAGE 0); how to encode features is each data holder's choice
    (``fl_helpers.vertical``). Later calls reuse the parsed, read-only arrays.

    Args:
        data_dir: Folder with ``default_of_credit_card_clients.csv``; defaults to
            :func:`credit_default_dir`.

    Returns:
        A :class:`CreditDefault`.

    Raises:
        FileNotFoundError: The file is missing (the message names it).
        ValueError: Its checksum or format is wrong (the message names the file).
    """
    folder = _data_folder(data_dir, credit_default_dir)
    return _load_credit_default(str(folder.resolve()))
