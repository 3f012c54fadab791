"""Four hospitals, one model: cross-silo federated logistic regression in numpy (notebook 08).

Everything here is numpy only, on purpose: the same :func:`client_update` runs in the notebook's
in-process simulation and inside Flower's ``ClientApp`` (``flower_app/``), where every message
starts a fresh process and importing TensorFlow would cost seconds per message.

The data protocol follows FLamby's Fed-Heart-Disease (Ogier du Terrail et al. 2022, "FLamby:
Datasets and Benchmarks for Cross-Silo Federated Learning in Realistic Healthcare Settings",
NeurIPS Datasets & Benchmarks; its ``fed_heart_disease/dataset.py``): the columns ``slope``,
``ca`` and ``thal`` are dropped (mostly missing outside Cleveland), ``cp`` and ``restecg`` are
one-hot encoded without their first level (13 features), each hospital is split 66 % / 34 %
into train and test (stratified by label when each class has more than two patients), the label
is ``num > 0``, and each hospital standardises its features with the mean and standard deviation
of its *own* training split. FLamby then drops every row with a remaining gap
(``missing="drop"``: 740 patients); ``missing="impute"`` instead fills each remaining gap with
the median of that column in the hospital's own training split (920 patients). Both statistics
are computed locally on purpose: pooled imputation or pooled standardisation would need every
hospital's raw values in one place, which is exactly what federated learning avoids (and a pooled
median computed from patients of another hospital leaks about them).

Privacy: the unit is the *patient*; two data sets are neighbours when one patient's record is
added to or removed from one hospital's training split. Each hospital is trusted with its own
records; the observer is everyone who sees what a hospital sends (the server, the other
hospitals, anyone holding the final model). :func:`dp_sgd_update` is example-level DP-SGD (Abadi
et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1): each local step
Poisson-samples patients with probability ``sampling_probability``, clips each patient's gradient
to L2 norm ``clipping_norm``, sums, adds Gaussian noise of std ``noise_multiplier *
clipping_norm`` and divides by the public ``expected_batch_size``. Sampling and noise come from
the operating system's entropy (a secret :class:`fl_helpers.schedule.PrivateRandomness`) unless
the caller passes ``randomness=PrivateRandomness.reproducible(seed)`` (then the run is
reproducible and NOT private).

That guarantee needs every other input of the mechanism to be independent of the patient, so a
private run differs from FLamby's protocol in three places:

* ``preprocessing="public"`` (:data:`PUBLIC_FEATURES`): each record is imputed, clipped and
  scaled with fixed clinical constants written down below, never with statistics of the
  hospital's patients. With the local median, mean and standard deviation, removing one patient
  moves every other patient's features and so their clipped gradients: over Switzerland's split
  the clipped gradient sum moved by up to 2.1 C, while the accounting assumes C
  (``tests/test_cross_silo_sensitivity.py``). Private training refuses locally prepared
  hospitals.
* The sampling probability, the divisor and the FedAvg weight of a hospital come from its public
  size (:func:`public_train_size`: the published patient count of its file), not from the
  number of rows it holds, which changes when a patient is added or removed.
* What a hospital sends in a private run is its noised model and its id: no count (the public
  weight instead) and no test metrics (``flower_app/``; test metrics are an explicit opt-in that
  epsilon does not cover).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import aggregation, data, discrete_noise, schedule

#: Raw columns kept as they are (FLamby's order: the plain columns first, then the one-hot ones).
_PLAIN_COLUMNS = (0, 1, 3, 4, 5, 7, 8, 9)
#: One-hot encoded raw columns and the levels that get an indicator (the first level is dropped).
_ONE_HOT = ((2, (2.0, 3.0, 4.0)), (6, (1.0, 2.0)))
_KEPT_COLUMNS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)

FEATURE_NAMES: tuple[str, ...] = (
    "age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak",
    "cp=2", "cp=3", "cp=4", "restecg=1", "restecg=2",
)
NUM_FEATURES = len(FEATURE_NAMES)
MISSING_MODES = ("impute", "drop")
PREPROCESSING_MODES = ("local", "public")


@dataclasses.dataclass(frozen=True)
class PublicFeature:
    """Fixed, public constants for one raw column (never computed from any patient).

    A value is clipped to ``[low, high]``, a gap is filled with ``reference`` and the result is
    scaled to ``(x - centre) / scale`` with ``centre = (low + high) / 2`` and
    ``scale = (high - low) / 4`` (so the plausible range maps onto [-2, 2]).
    """

    low: float
    high: float
    reference: float
    source: str

    @property
    def centre(self) -> float:
        return (self.low + self.high) / 2.0

    @property
    def scale(self) -> float:
        return (self.high - self.low) / 4.0


#: Clinically plausible ranges and reference values per raw column, from published clinical
#: conventions (not from these data): they make a record's features a function of that record
#: alone, which patient-level DP needs. Binary and categorical columns use their coding.
PUBLIC_FEATURES: dict[str, PublicFeature] = {
    "age": PublicFeature(20.0, 80.0, 55.0,
                         "adult cardiology patients; the UCI documentation's coding (years)"),
    "sex": PublicFeature(0.0, 1.0, 0.0, "coding 0 = female, 1 = male"),
    "cp": PublicFeature(1.0, 4.0, 4.0,
                        "chest-pain coding 1-4; gap = 4, asymptomatic (no chest pain reported)"),
    "trestbps": PublicFeature(80.0, 200.0, 120.0,
                              "resting systolic blood pressure, mm Hg; 120 = upper limit of "
                              "normal (Whelton et al. 2018, ACC/AHA hypertension guideline)"),
    "chol": PublicFeature(100.0, 600.0, 200.0,
                          "serum cholesterol, mg/dl; 200 = 'desirable' limit (NCEP ATP III, "
                          "2002)"),
    "fbs": PublicFeature(0.0, 1.0, 0.0,
                         "fasting blood sugar > 120 mg/dl; gap = 0, the normal value"),
    "restecg": PublicFeature(0.0, 2.0, 0.0, "resting ECG coding 0-2; gap = 0, normal"),
    "thalach": PublicFeature(60.0, 220.0, 165.0,
                             "maximum heart rate achieved, beats/min; gap = 165, the "
                             "age-predicted maximum 220 - age (Fox, Naughton & Haskell 1971) at "
                             "the reference age 55"),
    "exang": PublicFeature(0.0, 1.0, 0.0, "exercise-induced angina; gap = 0, none"),
    "oldpeak": PublicFeature(-3.0, 7.0, 0.0, "ST depression, mm; gap = 0, none"),
}
#: Raw columns in which 0 is a missing-value code (physiologically impossible): Switzerland
#: records cholesterol 0 for every patient, VA for 49 patients and one blood pressure of 0.
ZERO_MEANS_MISSING = ("trestbps", "chol")

#: Published patient counts per file, in FLamby's hospital order. ``"impute"`` keeps every row:
#: the counts of the UCI Machine Learning Repository's Heart Disease page (Cleveland 303,
#: Hungarian 294, Switzerland 123, Long Beach VA 200). ``"drop"`` keeps complete rows: FLamby's
#: README (train/test 199/104, 172/89, 30/16, 85/45).
PUBLISHED_PATIENTS: dict[str, tuple[int, ...]] = {"impute": (303, 294, 123, 200),
                                                  "drop": (303, 261, 46, 130)}


def _check_name(name: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {v._fmt(value)}.")
    return value


def _check_labels(name: str, value: Any, size: int | None = None) -> np.ndarray:
    """A 1-D float array of labels in [0, 1] (``size`` of them, if given)."""
    labels = v.check_float_array(name, value, ndim=1)
    if size is not None and labels.size != size:
        raise ValueError(f"{name} must hold one label per row of x ({size}), got {labels.size}.")
    if labels.min() < 0 or labels.max() > 1:
        raise ValueError(f"{name} must hold labels in [0, 1], got values from {labels.min()} to "
                         f"{labels.max()}.")
    return labels


_NO_LABELS = object()


def _check_model(params: Any, x: Any, y: Any = _NO_LABELS
                 ) -> tuple[np.ndarray, np.ndarray, Any]:
    """``params`` (1-D, ``[w, b]``), ``x`` (2-D, one column per weight) and, if given, ``y``."""
    params = v.check_float_array("params", params, ndim=1, min_size=2)
    x = v.check_float_array("x", x, ndim=2)
    if x.shape[1] != params.size - 1:
        raise ValueError(f"x must have {params.size - 1} columns (one per weight in params), got "
                         f"shape {x.shape}.")
    return params, x, (None if y is _NO_LABELS else _check_labels("y", y, len(x)))


def _check_config(config: Any) -> TrainingConfig:
    if not isinstance(config, TrainingConfig):
        raise TypeError(f"config must be a cross_silo.TrainingConfig, got "
                        f"{type(config).__name__} {v._fmt(config)}.")
    return config


def _check_hospitals(hospitals: Any) -> list[Hospital]:
    if isinstance(hospitals, (str, bytes)) or not isinstance(hospitals, Sequence) \
            or not hospitals or not all(isinstance(h, Hospital) for h in hospitals):
        raise TypeError(f"hospitals must be a non-empty list of cross_silo.Hospital (e.g. from "
                        f"load_federation()), got {type(hospitals).__name__} "
                        f"{v._fmt(hospitals)}.")
    return list(hospitals)


def _check_raw(name: str, value: Any) -> np.ndarray:
    """Raw rows of the heart-disease file: 2-D, its columns, reals; NaN marks a gap."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D array of raw rows, got {type(value).__name__} "
                        f"{v._fmt(value)}.")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a 2-D array of raw rows, got a ragged "
                        f"{type(value).__name__}.") from error
    if raw.dtype == np.bool_ or raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {raw.dtype}.")
    columns = len(data.HEART_DISEASE_COLUMNS)
    if raw.ndim != 2 or raw.shape[1] != columns or not len(raw):
        raise ValueError(f"{name} must be a non-empty 2-D array with the file's {columns} "
                         f"columns, got shape {raw.shape}.")
    raw = raw.astype(np.float64)
    if np.isinf(raw).any():
        raise ValueError(f"{name} must be finite or NaN (a gap), got inf entries.")
    return raw


def public_train_size(hospital: int | str, *, missing: str = "impute",
                      train_fraction: float = 0.66) -> int:
    """The public size of a hospital's training split: ``n - ceil((1 - f) n)`` of the published
    patient count ``n`` (:data:`PUBLISHED_PATIENTS`).

    A private run derives the sampling probability, the DP-SGD divisor and the FedAvg weight of a
    hospital from this number, never from the rows it holds (that count changes when a patient is
    added or removed). With the shipped files it equals the split's actual size.
    """
    index = data.HOSPITALS.index(data.hospital_name(hospital))
    _check_name("missing", missing, MISSING_MODES)
    train_fraction = v.check_open_unit("train_fraction", train_fraction)
    n = PUBLISHED_PATIENTS[missing][index]
    return n - math.ceil((1.0 - train_fraction) * n)


def _public_raw(raw: np.ndarray) -> np.ndarray:
    """Row by row: zero codes to gaps, gaps to the reference value, values clipped to range."""
    raw = np.array(raw, dtype=np.float64)
    columns = list(data.HEART_DISEASE_COLUMNS)
    for name, feature in PUBLIC_FEATURES.items():
        j = columns.index(name)
        values = raw[:, j]
        if name in ZERO_MEANS_MISSING:
            values = np.where(values == 0.0, np.nan, values)
        values = np.where(np.isnan(values), feature.reference, values)
        raw[:, j] = np.clip(values, feature.low, feature.high)
    return raw


def _public_centre_scale() -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of each encoded feature: a numeric column's public constants; a 0/1
    column (sex, fbs, exang and the one-hot indicators) is centred at 0.5 and scaled by 0.5."""
    centre, scale = [], []
    for name in FEATURE_NAMES:
        base = name.split("=")[0]
        if "=" in name or PUBLIC_FEATURES[base].high - PUBLIC_FEATURES[base].low == 1.0:
            centre.append(0.5)
            scale.append(0.5)
        else:
            centre.append(PUBLIC_FEATURES[base].centre)
            scale.append(PUBLIC_FEATURES[base].scale)
    return np.array(centre), np.array(scale)


def preprocess(raw_train: np.ndarray, raw_test: np.ndarray, *, preprocessing: str,
               missing: str = "impute") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encodes, imputes and standardises a hospital's raw rows (the file's 14 columns).

    Args:
        raw_train, raw_test: Rows of :func:`data.load_heart_disease` (train and test split).
        preprocessing: ``"local"`` (FLamby: the median, mean and standard deviation of
            ``raw_train``; every patient's features depend on every other training patient) or
            ``"public"`` (:data:`PUBLIC_FEATURES`: each row depends on that row alone, as
            patient-level DP needs).
        missing: ``"impute"`` or ``"drop"`` (the rows were already dropped; only ``"local"``
            uses it, to skip the median).

    Returns:
        ``(x_train, x_test, x_train_raw, x_test_raw)``: standardised features and the encoded,
        imputed features before standardisation.
    """
    raw_train, raw_test = _check_raw("raw_train", raw_train), _check_raw("raw_test", raw_test)
    _check_name("preprocessing", preprocessing, PREPROCESSING_MODES)
    _check_name("missing", missing, MISSING_MODES)
    if preprocessing == "public":
        x_train, x_test = _encode(_public_raw(raw_train)), _encode(_public_raw(raw_test))
        centre, scale = _public_centre_scale()
        return ((x_train - centre) / scale, (x_test - centre) / scale, x_train, x_test)
    x_train, x_test = _encode(raw_train), _encode(raw_test)
    if missing == "impute":
        with warnings.catch_warnings():  # an all-missing column is reported just below
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(x_train, axis=0)
        if np.isnan(medians).any():
            bad = [FEATURE_NAMES[i] for i in np.flatnonzero(np.isnan(medians))]
            raise ValueError(f"no observed training value to impute {bad} from.")
        x_train = np.where(np.isnan(x_train), medians, x_train)
        x_test = np.where(np.isnan(x_test), medians, x_test)
    mean, std = _train_stats(x_train)
    return (_standardise(x_train, mean, std), _standardise(x_test, mean, std), x_train, x_test)


@dataclasses.dataclass(frozen=True)
class Hospital:
    """One hospital's train and test data, prepared by :func:`preprocess`.

    ``x_*_raw`` are the encoded (and, for ``missing="impute"``, imputed) features before
    standardisation; pooled training needs them to standardise with pooled statistics.
    ``preprocessing`` says how (``"local"`` or ``"public"``); ``public_train_size`` is the
    public size of the training split (:func:`public_train_size`), what private training uses.
    """

    hospital_id: int
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_train_raw: np.ndarray
    x_test_raw: np.ndarray
    preprocessing: str
    public_train_size: int

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def num_test(self) -> int:
        return len(self.y_test)


def split_train_test(labels: np.ndarray, *, train_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled train/test split of ``range(len(labels))``, stratified when possible.

    As in FLamby (which calls scikit-learn's ``train_test_split``): the test set has
    ``ceil((1 - train_fraction) * n)`` rows, and the split is stratified by label when both classes
    have more than two rows. The rows themselves differ from FLamby's, which come from
    scikit-learn's generator with ``random_state=43``.
    """
    labels = v.check_float_array("labels", labels, ndim=1)
    train_fraction = v.check_open_unit("train_fraction", train_fraction)
    v.check_rng("rng", rng)
    n = len(labels)
    num_test = math.ceil((1.0 - train_fraction) * n)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) > 1 and counts.min() > 2:
        # Share of each class in the test set by largest remainder, as close to n_c / n as can be.
        exact = counts * num_test / n
        share = np.floor(exact).astype(int)
        order = np.argsort(-(exact - share), kind="stable")
        share[order[: num_test - share.sum()]] += 1
        test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k]
                               for c, k in zip(classes, share, strict=True)])
    else:
        test = rng.permutation(n)[:num_test]
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _encode(raw: np.ndarray) -> np.ndarray:
    columns = [raw[:, list(_PLAIN_COLUMNS)]]
    for column, levels in _ONE_HOT:
        values = raw[:, column:column + 1]
        onehot = (values == np.asarray(levels)[None, :]).astype(np.float64)
        onehot[np.isnan(values[:, 0])] = np.nan
        columns.append(onehot)
    return np.concatenate(columns, axis=1)


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (x - mean) / std


def _train_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0, ddof=1) if len(x_train) > 1 else np.ones(x_train.shape[1])
    # A column that is constant at this hospital (e.g. a single level) carries no information
    # here: divide by 1 instead of 0.
    return mean, np.where(std > 0, std, 1.0)


def load_hospital(hospital: int | str, *, missing: str = "impute", split_seed: int = 43,
                  train_fraction: float = 0.66, preprocessing: str = "local",
                  data_dir: str | os.PathLike | None = None) -> Hospital:
    """Loads, splits, imputes and standardises one hospital's data, using only that hospital.

    Args:
        hospital: 0..3 or a name from ``data.HOSPITALS`` (0 Cleveland, 1 Hungary,
            2 Switzerland, 3 VA Long Beach, FLamby's order).
        missing: ``"impute"`` (each remaining gap is filled) or ``"drop"`` (FLamby: drop
            incomplete rows).
        split_seed: Seed of the train/test split (>= 0). The split is fixed data preparation, not
            a privacy mechanism.
        train_fraction: Share of the rows in the training split, in (0, 1); FLamby uses 0.66.
        preprocessing: ``"local"`` (FLamby: gaps filled with the median, features standardised
            with the mean and std of this hospital's training split; fine without DP) or
            ``"public"`` (fixed clinical constants, :data:`PUBLIC_FEATURES`; what private
            training requires). See :func:`preprocess`.
        data_dir: Folder with the four files (default: ``data.heart_disease_dir()``).

    Returns:
        A :class:`Hospital` with labels ``num > 0`` as float64 0/1 and 13 standardised features.

    Raises:
        ValueError, TypeError: A bad argument, or a corrupted file.
        FileNotFoundError: The hospital's file is missing.
    """
    name = data.hospital_name(hospital)
    _check_name("missing", missing, MISSING_MODES)
    _check_name("preprocessing", preprocessing, PREPROCESSING_MODES)
    v.check_open_unit("train_fraction", train_fraction)
    split_seed = v.check_int("split_seed", split_seed, minimum=0)
    raw = data.load_heart_disease(name, data_dir)
    hospital_id = data.HOSPITALS.index(name)
    kept = raw[:, list(_KEPT_COLUMNS)]
    if missing == "drop":
        raw = raw[~np.isnan(kept).any(axis=1)]
    y = (raw[:, -1] > 0).astype(np.float64)
    # The one seed list outside schedule (tests/test_schedule.py names it and says why).
    rng = np.random.default_rng([split_seed, hospital_id])
    train, test = split_train_test(y, train_fraction=train_fraction, rng=rng)
    try:
        x_train, x_test, x_train_raw, x_test_raw = preprocess(
            raw[train], raw[test], preprocessing=preprocessing, missing=missing)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    return Hospital(hospital_id, name, x_train, y[train], x_test, y[test], x_train_raw,
                    x_test_raw, preprocessing,
                    public_train_size(hospital_id, missing=missing,
                                      train_fraction=train_fraction))


def load_federation(*, missing: str = "impute", split_seed: int = 43,
                    train_fraction: float = 0.66, preprocessing: str = "local",
                    data_dir: str | os.PathLike | None = None) -> list[Hospital]:
    """All four hospitals, each prepared by :func:`load_hospital` on its own (``"local"``: with
    its own statistics; ``"public"``: with the public constants, as private training needs)."""
    _check_name("missing", missing, MISSING_MODES)
    _check_name("preprocessing", preprocessing, PREPROCESSING_MODES)
    v.check_int("split_seed", split_seed, minimum=0)
    v.check_open_unit("train_fraction", train_fraction)
    return [load_hospital(h, missing=missing, split_seed=split_seed,
                          train_fraction=train_fraction, preprocessing=preprocessing,
                          data_dir=data_dir)
            for h in range(data.NUM_HOSPITALS)]


def pooled_standardisation(hospitals: Sequence[Hospital]) -> tuple[
        tuple[np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """The pooled training set and each hospital's test set, standardised with pooled statistics.

    This is the baseline nobody may compute in practice: it needs every patient's raw features in
    one place. FLamby's pooled baseline does the same. Hospitals prepared with the public
    constants are already on one scale: their rows are concatenated unchanged.
    """
    hospitals = _check_hospitals(hospitals)
    x_train = np.concatenate([h.x_train_raw for h in hospitals])
    y_train = np.concatenate([h.y_train for h in hospitals])
    if all(h.preprocessing == "public" for h in hospitals):
        return ((np.concatenate([h.x_train for h in hospitals]), y_train),
                [(h.x_test, h.y_test) for h in hospitals])
    mean, std = _train_stats(x_train)
    tests = [(_standardise(h.x_test_raw, mean, std), h.y_test) for h in hospitals]
    return (_standardise(x_train, mean, std), y_train), tests


# --- the model: logistic regression, parameters as one vector [w_1..w_d, b] --------------------

def init_params(num_features: int = NUM_FEATURES) -> np.ndarray:
    """All-zero parameters ``[w, b]`` of shape ``(num_features + 1,)`` (the loss is convex, so
    the start does not matter for the optimum; zeros make every run start from the same point)."""
    num_features = v.check_int("num_features", num_features, minimum=1)
    return np.zeros(num_features + 1)


# The model functions check ``params`` (1-D, ``d + 1`` values), ``x`` (``n x d``) and ``y`` (``n``
# labels in [0, 1]) at their public entry; the training loops call the unchecked ``_`` versions.

def _logits(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ params[:-1] + params[-1]


def _predict_proba(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -_logits(params, x)))


def _loss(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    z = _logits(params, x)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def _per_example_gradients(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    residual = _predict_proba(params, x) - y
    return np.concatenate([residual[:, None] * x, residual[:, None]], axis=1)


def _accuracy(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((_predict_proba(params, x) > 0.5) == (y > 0.5)))


def logits(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x @ w + b`` for each row of ``x``."""
    return _logits(*_check_model(params, x)[:2])


def predict_proba(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The predicted probability of disease, ``sigmoid(x @ w + b)``."""
    return _predict_proba(*_check_model(params, x)[:2])


def loss(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy (nats), computed stably as ``log(1 + e^z) - y z``."""
    return _loss(*_check_model(params, x, y))


def per_example_gradients(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of each example's cross-entropy, shape ``(n, d + 1)``: ``(p - y) [x, 1]``."""
    return _per_example_gradients(*_check_model(params, x, y))


def gradient(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of :func:`loss` (the mean of :func:`per_example_gradients`)."""
    return _per_example_gradients(*_check_model(params, x, y)).mean(axis=0)


def accuracy(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Share of rows where ``predict_proba > 0.5`` matches the label (FLamby's metric)."""
    return _accuracy(*_check_model(params, x, y))


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties 1/2.

    Computed from midranks (the Mann-Whitney U statistic), exact for ties.

    Raises:
        ValueError: ``y`` holds only one class (the AUC is then undefined).
    """
    scores = v.check_float_array("scores", scores, ndim=1)
    y = _check_labels("y", y) > 0.5
    if len(y) != len(scores):
        raise ValueError(f"y and scores must have one entry per row, got {len(y)} labels and "
                         f"{len(scores)} scores.")
    num_pos, num_neg = int(y.sum()), int((~y).sum())
    if num_pos == 0 or num_neg == 0:
        raise ValueError(f"roc_auc needs both classes in y, got {num_pos} positive and "
                         f"{num_neg} negative labels.")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    start = 0
    while start < len(scores):  # midranks of tied groups
        stop = start
        while stop + 1 < len(scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start:stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    u = ranks[y].sum() - num_pos * (num_pos + 1) / 2.0
    return float(u / (num_pos * num_neg))


def evaluate(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``{"loss", "accuracy", "auc"}`` on ``(x, y)``; ``auc`` is NaN only when ``y`` has one
    class (stated in the key ``auc_defined``)."""
    params, x, y = _check_model(params, x, y)
    scores = _predict_proba(params, x)
    defined = 0 < y.sum() < len(y)
    return {"loss": _loss(params, x, y), "accuracy": _accuracy(params, x, y),
            "auc": roc_auc(y, scores) if defined else float("nan"),
            "auc_defined": float(defined)}


# --- local training ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The hyperparameters of one federation run (the same for the simulation and Flower).

    ``noise_multiplier = 0`` means no DP. ``sampling_probability`` is used only with DP; without
    DP each local step takes the next ``batch_size`` rows of a per-epoch shuffle.
    """

    num_rounds: int = 20
    local_steps: int = 10
    batch_size: int = 8
    client_learning_rate: float = 0.05
    noise_multiplier: float = 0.0
    clipping_norm: float = 1.0
    expected_batch_size: float = 8.0
    seed: int = 0
    #: ``"exact"`` (default) or ``"float"`` (not private; see :func:`dp_sgd_update`).
    noise: str = "exact"

    def __post_init__(self) -> None:
        v.check_int("num_rounds", self.num_rounds, minimum=1)
        v.check_int("local_steps", self.local_steps, minimum=1)
        v.check_int("batch_size", self.batch_size, minimum=1)
        v.check_positive("client_learning_rate", self.client_learning_rate)
        v.check_non_negative("noise_multiplier", self.noise_multiplier)
        v.check_positive("clipping_norm", self.clipping_norm)
        v.check_positive("expected_batch_size", self.expected_batch_size)
        v.check_int("seed", self.seed, minimum=0)
        if self.noise not in ("float", "exact"):
            raise ValueError(f"noise must be 'float' or 'exact', got {self.noise!r}.")

    @property
    def private(self) -> bool:
        return self.noise_multiplier > 0

    def sampling_probability(self, public_train_size: int) -> float:
        """Poisson sampling probability ``q = expected_batch_size / n`` of a hospital (<= 1),
        with ``n`` its *public* training size (:func:`public_train_size`)."""
        return min(1.0, self.expected_batch_size / public_train_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown TrainingConfig keys {unknown}; expected some of "
                             f"{sorted(fields)}.")
        def cast_like(default: Any, value: Any) -> Any:
            if isinstance(default, str):
                return str(value)
            return int(value) if isinstance(default, int) else float(value)

        cast: dict[str, Any] = {k: cast_like(getattr(cls, k), x) for k, x in values.items()}
        return cls(**cast)


def sgd_update(params: np.ndarray, x: np.ndarray, y: np.ndarray, *, local_steps: int,
               batch_size: int, client_learning_rate: float,
               rng: np.random.Generator) -> np.ndarray:
    """``local_steps`` steps of mini-batch SGD on the mean cross-entropy (no privacy).

    Batches are consecutive slices of a fresh permutation each epoch (the last one of an epoch
    may be smaller); a new epoch starts when the permutation is used up.
    """
    params, x, y = _check_model(params, x, y)
    v.check_int("local_steps", local_steps, minimum=1)
    v.check_int("batch_size", batch_size, minimum=1)
    v.check_positive("client_learning_rate", client_learning_rate)
    v.check_rng("rng", rng)
    n = len(y)
    order, position = rng.permutation(n), 0
    for _ in range(local_steps):
        if position >= n:
            order, position = rng.permutation(n), 0
        batch = order[position:position + batch_size]
        position += batch_size
        params -= client_learning_rate * _per_example_gradients(
            params, x[batch], y[batch]).mean(axis=0)
    return params


def clip_rows(gradients: np.ndarray, clipping_norm: float) -> np.ndarray:
    """Scales each row to L2 norm at most ``clipping_norm`` (rows already inside are unchanged)."""
    return _clip_rows(v.check_float_array("gradients", gradients, ndim=2, min_size=0),
                      v.check_positive("clipping_norm", clipping_norm))


def _clip_rows(gradients: np.ndarray, clipping_norm: float) -> np.ndarray:
    norms = np.linalg.norm(gradients, axis=1, keepdims=True)
    return gradients * np.minimum(1.0, clipping_norm / np.maximum(norms, 1e-300))


def dp_sgd_update(params: np.ndarray, x: np.ndarray, y: np.ndarray, *, local_steps: int,
                  sampling_probability: float, expected_batch_size: float, clipping_norm: float,
                  noise_multiplier: float, client_learning_rate: float,
                  randomness: schedule.PrivateRandomness | None = None,
                  noise: str = "exact") -> np.ndarray:
    """Example-level DP-SGD (Abadi et al. 2016, Algorithm 1) for logistic regression.

    Each step: include every patient independently with probability ``q``; clip each included
    patient's gradient to L2 norm ``C``; add ``N(0, (sigma C)^2)`` to each coordinate of the sum;
    divide by the public ``expected_batch_size`` (a fixed denominator, so one patient changes the
    step by at most ``C / expected_batch_size`` before noise); take a step.

    Privacy: with respect to adding or removing one patient of this hospital, the ``local_steps``
    steps of all rounds together are ``num_rounds * local_steps`` compositions of the Poisson
    subsampled Gaussian mechanism; see :func:`epsilon`. This holds only if ``x`` row ``i`` is a
    function of patient ``i``'s record alone (``preprocessing="public"``) and
    ``sampling_probability`` and ``expected_batch_size`` are public (e.g. from
    :func:`public_train_size`), never ``len(y)``.

    Args:
        sampling_probability: Poisson sampling probability ``q`` in [0, 1] (public).
        expected_batch_size: The divisor, ``q`` times the public training size (> 0).
        randomness: The sampling's and the noise's
            :class:`fl_helpers.schedule.PrivateRandomness`, as one round (round 0) of it: the
            batches from ``randomness.sampling_rng(0)``, the exact noise keyed with round 0's
            noise key (``discrete_noise.discrete_gaussian(..., randomness=randomness,
            round_index=0)`` draws the same integers), so a secret object serves one update.
            ``None`` (default): a fresh ``PrivateRandomness.secret()``; a reproducible one only
            when the update need not be private (NOT private; its warning says so). (Inside a
            run, :func:`client_update` gives every hospital and round its own stream.)
        noise: ``"exact"`` (default): each patient's clipped gradient on the integer grid
            ``C / 2^16`` (:func:`fl_helpers.discrete_noise.clip_to_integer_grid`, bound checked
            exactly), summed exactly, plus exact discrete Gaussian noise (one ChaCha20 key per
            call, all steps' noise at once); the step is
            post-processing. Accounted by the ``"discrete"`` accountant (:func:`epsilon`).
            ``"float"``: ``N(0, (sigma C)^2)`` from the sampling's stream in float64, **not
            private** against a floating-point attack (warns; the attack's control).
    """
    params, x, y = _check_model(params, x, y)
    local_steps = v.check_int("local_steps", local_steps, minimum=1)
    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    v.check_probability("sampling_probability", sampling_probability)
    denominator = v.check_positive("expected_batch_size", expected_batch_size)
    v.check_positive("clipping_norm", clipping_norm)
    v.check_positive("noise_multiplier", noise_multiplier)
    randomness = schedule.resolve_randomness(randomness)
    _check_name("noise", noise, ("float", "exact"))
    key = randomness.noise_key(0)  # taken also for float noise: one update per secret object
    return _dp_sgd_update(params, x, y, local_steps, sampling_probability, denominator,
                          clipping_norm, noise_multiplier, client_learning_rate,
                          randomness.sampling_rng(0), noise, key)


def _dp_sgd_update(params: np.ndarray, x: np.ndarray, y: np.ndarray, local_steps: int,
                   sampling_probability: float, denominator: float, clipping_norm: float,
                   noise_multiplier: float, client_learning_rate: float,
                   rng: np.random.Generator, noise: str, key: bytes | None = None
                   ) -> np.ndarray:
    """:func:`dp_sgd_update` after its checks, sampling (and drawing float noise) from ``rng``,
    a private stream of the caller's :class:`fl_helpers.schedule.PrivateRandomness`; the exact
    noise is keyed with ``key`` (default: the first 32 bytes of ``rng``, as every hospital's
    stream of a round does)."""
    if noise == "float":
        aggregation.warn_float_noise()
    n = len(y)
    steps = discrete_noise.GRID_STEPS
    # (z steps)^2 underflows to 0 for z below about 1e-150: the smallest variance, 1, is more.
    variance = (discrete_noise.exact_variance_at_least(max((noise_multiplier * steps) ** 2,
                                                           1e-300))
                if noise == "exact" else 0)
    if noise == "exact":
        # Every step's noise at once, from one ChaCha20 key taken from rng (secret when rng is;
        # the label only names the source): one call of the sampler instead of one per step.
        bits = schedule._Bits._from_key(rng.bytes(32) if key is None else key)
        all_noise = discrete_noise._discrete_gaussian(
            variance, local_steps * params.size, bits).reshape(local_steps, -1)
    for step_index in range(local_steps):
        batch = np.flatnonzero(rng.random(n) < sampling_probability)
        gradients = _per_example_gradients(params, x[batch], y[batch])
        if noise == "exact":
            # An empty Poisson batch (likely in a small hospital) sums to zero and is noised
            # like any other: a step must never fail, or the failure would tell.
            integers = (discrete_noise.clip_to_integer_grid(
                gradients.reshape(len(batch), -1), clipping_norm=clipping_norm,
                steps=steps).sum(axis=0) if len(batch) else np.zeros(params.size, np.int64))
            noised = integers + all_noise[step_index]
            # Post-processing of the exact integers.
            step = noised.astype(np.float64).reshape(params.shape) * (clipping_norm / steps)
            params -= client_learning_rate * step / denominator
            continue
        total = _clip_rows(gradients, clipping_norm).sum(axis=0)
        drawn = rng.normal(0.0, noise_multiplier * clipping_norm, size=params.shape)
        params -= client_learning_rate * (total + drawn) / denominator
    return params


def epsilon(config: TrainingConfig, public_train_size: int, *, target_delta: float) -> float:
    """Epsilon of one hospital after the whole run, from ``fl_helpers.accounting``.

    The patient-level guarantee (add/remove one patient) of a hospital whose public training
    size is ``public_train_size`` against everyone who sees its updates (the server, the other
    hospitals, the final model):
    ``accounting.dp_fedavg_epsilon`` of ``num_rounds * local_steps`` Poisson-subsampled
    (discrete) Gaussian steps with ``q = expected_batch_size / public_train_size``: the
    ``"discrete"`` accountant for exact noise, PLD for float noise.
    """
    _check_config(config)
    public_train_size = v.check_int("public_train_size", public_train_size, minimum=1)
    target_delta = v.check_open_unit("target_delta", target_delta)
    if not config.private:
        return math.inf
    return float(_accounting().dp_fedavg_epsilon(
        noise_multiplier=config.noise_multiplier,
        sampling_probability=config.sampling_probability(public_train_size),
        num_rounds=config.num_rounds * config.local_steps, target_delta=float(target_delta),
        accountant=_accountant_name(config)))


def _accountant_name(config: TrainingConfig) -> str:
    """The accountant that bounds ``config``'s noise: discrete for exact noise, PLD for float."""
    return "discrete" if config.noise == "exact" else "pld"


def _accounting() -> Any:
    """fl_helpers.accounting, imported on first use: the ClientApp never needs dp-accounting.

    The accounting functions cache their answers, so repeated settings cost nothing.
    """
    from fl_helpers import accounting

    return accounting


def client_rng(seed: int, round_index: int, hospital_id: int) -> np.random.Generator:
    """The batch-order generator of hospital ``hospital_id`` in round ``round_index``: client
    ``hospital_id``'s batch order, :func:`fl_helpers.schedule.client_seed` (the one untagged
    public stream), the same in the simulation and in every process of the Flower deployment."""
    _check_ids(seed, round_index, hospital_id)
    return np.random.default_rng(schedule.client_seed(seed, round_index, hospital_id))


def _check_ids(seed: Any, round_index: Any, hospital_id: Any) -> None:
    v.check_int("seed", seed, minimum=0)
    v.check_index("round_index", round_index)
    v.check_index("hospital_id", hospital_id)


def client_update(params: np.ndarray, x: np.ndarray, y: np.ndarray, *, config: TrainingConfig,
                  round_index: int, hospital_id: int, public_train_size: int | None = None,
                  randomness: schedule.PrivateRandomness | None = None) -> np.ndarray:
    """One hospital's local training in one round: the code the simulation and Flower share.

    Without DP: :func:`sgd_update` with batches from :func:`client_rng`. With DP:
    :func:`dp_sgd_update` with sampling probability
    ``config.sampling_probability(public_train_size)``, divisor ``q * public_train_size`` and
    the hospital's stream of this round from ``randomness`` (default: a fresh secret
    :class:`fl_helpers.schedule.PrivateRandomness`): for
    ``PrivateRandomness.reproducible(seed)`` it is ``np.random.default_rng([seed, round_index,
    hospital_id, tag])``, independent for every hospital and round; a secret object hands each
    hospital's stream of a round out once.

    Raises:
        ValueError: A private update without ``public_train_size`` (``len(y)`` is private).
    """
    _check_config(config)
    _check_ids(config.seed, round_index, hospital_id)
    if randomness is not None:
        randomness = schedule.resolve_randomness(randomness)
    if config.private:
        if public_train_size is None:
            raise ValueError("a private update needs public_train_size (the hospital's public "
                             "training size, e.g. Hospital.public_train_size); len(y) changes "
                             "when a patient is added or removed.")
        public_train_size = v.check_int("public_train_size", public_train_size, minimum=1)
        q = config.sampling_probability(public_train_size)
        params, x, y = _check_model(params, x, y)
        private = schedule.PrivateRandomness.secret() if randomness is None else randomness
        return _dp_sgd_update(params, x, y, config.local_steps, q, q * public_train_size,
                              config.clipping_norm, config.noise_multiplier,
                              config.client_learning_rate,
                              private._party_rng(round_index, hospital_id), config.noise)
    return sgd_update(params, x, y, local_steps=config.local_steps, batch_size=config.batch_size,
                      client_learning_rate=config.client_learning_rate,
                      rng=client_rng(config.seed, round_index, hospital_id))


def weighted_average(updates: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """FedAvg's aggregation rule: ``sum_k n_k theta_k / sum_k n_k``, summed in the given order
    (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
    Data", Algorithm 1). In a private run the weights are public (:func:`public_weights`)."""
    if isinstance(updates, (str, bytes)) or not isinstance(updates, Sequence) or not updates:
        raise TypeError(f"updates must be a non-empty list of parameter arrays, got "
                        f"{type(updates).__name__} {v._fmt(updates)}.")
    w = v.check_float_array("weights", weights, ndim=1)
    if len(updates) != len(w):
        raise ValueError(f"updates and weights must be of equal length, got {len(updates)} and "
                         f"{len(w)}.")
    if (w < v.MIN_NORMAL).any():
        raise ValueError(f"weights must be > 0 (and not subnormal), got {w.tolist()}.")
    arrays = [v.check_float_array(f"updates[{k}]", update, min_size=0)
              for k, update in enumerate(updates)]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"updates must all have one shape, got "
                         f"{sorted({a.shape for a in arrays})}.")
    total = np.zeros_like(arrays[0])
    for update, weight in zip(arrays, w, strict=True):
        total = total + weight * update
    return total / w.sum()


def public_weights(hospitals: Sequence[Hospital], config: TrainingConfig) -> list[float]:
    """FedAvg weights: the training counts without DP, the public training sizes with DP."""
    hospitals, config = _check_hospitals(hospitals), _check_config(config)
    return [float(h.public_train_size if config.private else h.num_train) for h in hospitals]


def check_private_preparation(hospitals: Sequence[Hospital]) -> None:
    """Raises ``ValueError`` unless every hospital was prepared with the public constants."""
    hospitals = _check_hospitals(hospitals)
    local = [h.name for h in hospitals if h.preprocessing != "public"]
    if local:
        raise ValueError(
            f"private training needs hospitals prepared with preprocessing='public', got "
            f"'local' for {local}. Load them with cross_silo.load_federation("
            "preprocessing='public'): local medians, means and standard deviations depend on "
            "every patient, so removing one patient moves the others' gradients (up to 2.1 C) "
            "while the accounting assumes C.")


def run_fedavg(hospitals: Sequence[Hospital], config: TrainingConfig, *,
               randomness: schedule.PrivateRandomness | None = None
               ) -> tuple[np.ndarray, list[dict[str, float]]]:
    """In-process FedAvg over the hospitals: every hospital takes part in every round.

    Args:
        hospitals: The federation (e.g. :func:`load_federation`).
        config: The hyperparameters; with ``noise_multiplier > 0`` each hospital runs DP-SGD.
        randomness: The DP sampling's and noise's
            :class:`fl_helpers.schedule.PrivateRandomness` (claimed by the run), from which
            every hospital draws its own stream of every round (see :func:`client_update`).
            ``None`` (default): a fresh secret one.
            ``PrivateRandomness.reproducible(config.seed)``: the streams the Flower deployment
            derives with ``reproducible-noise`` (NOT private; for the parity check).

    Returns:
        ``(params, history)``: the final global model and, per round, the weighted mean training
        loss of the global model before the round (``"train_loss"``; only without DP, since it is
        a noiseless statistic of the training data).

    Raises:
        ValueError: A private run on hospitals prepared with local statistics.
    """
    hospitals, config = _check_hospitals(hospitals), _check_config(config)
    randomness = schedule.resolve_randomness(randomness)
    if config.private:
        check_private_preparation(hospitals)
        randomness.claim("cross_silo.run_fedavg")
    params = init_params(hospitals[0].x_train.shape[1])
    history: list[dict[str, float]] = []
    weights = public_weights(hospitals, config)
    for t in range(config.num_rounds):
        updates = []
        for h in hospitals:
            updates.append(client_update(params, h.x_train, h.y_train, config=config,
                                         round_index=t, hospital_id=h.hospital_id,
                                         public_train_size=h.public_train_size,
                                         randomness=randomness))
        history.append({} if config.private else {"train_loss": float(np.average(
            [_loss(params, h.x_train, h.y_train) for h in hospitals], weights=weights))})
        params = weighted_average(updates, weights)
    return params, history


def train_alone(x: np.ndarray, y: np.ndarray, config: TrainingConfig, *,
                hospital_id: int, public_train_size: int | None = None) -> np.ndarray:
    """One data holder training on its own for as many local steps as the whole federated run
    (``num_rounds * local_steps``), with the same batch size and learning rate: the local-only
    baseline (one hospital) or the pooled baseline (all data in one place). With DP it needs
    the holder's ``public_train_size``."""
    x = v.check_float_array("x", x, ndim=2)
    y = _check_labels("y", y, len(x))
    _check_config(config)
    v.check_index("hospital_id", hospital_id)
    if public_train_size is not None:
        v.check_int("public_train_size", public_train_size, minimum=1)
    params = init_params(x.shape[1])
    for t in range(config.num_rounds):
        params = client_update(params, x, y, config=config, round_index=t,
                               hospital_id=hospital_id, public_train_size=public_train_size)
    return params


def calibrate_noise(config: TrainingConfig, public_train_size: int, *, target_epsilon: float,
                    target_delta: float) -> TrainingConfig:
    """``config`` with the noise multiplier that gives a data holder of public training size
    ``public_train_size`` exactly ``target_epsilon`` after the whole run
    (``accounting.noise_multiplier_for_epsilon``, with the accountant of ``config.noise``, as
    :func:`epsilon`).
    Holders with more patients then have a smaller epsilon (smaller sampling probability)."""
    _check_config(config)
    public_train_size = v.check_int("public_train_size", public_train_size, minimum=1)
    target_epsilon = v.check_positive("target_epsilon", target_epsilon)
    target_delta = v.check_open_unit("target_delta", target_delta)
    return dataclasses.replace(config, noise_multiplier=float(
        _accounting().noise_multiplier_for_epsilon(
            target_epsilon=float(target_epsilon), target_delta=float(target_delta),
            sampling_probability=config.sampling_probability(public_train_size),
            num_rounds=config.num_rounds * config.local_steps,
            accountant=_accountant_name(config))))


def compare_training(hospitals: Sequence[Hospital], config: TrainingConfig, *,
                     target_epsilon: float | None = None,
                     target_delta: float = 1e-4) -> list[dict[str, Any]]:
    """Local-only, FedAvg and pooled models, evaluated on each hospital's test set.

    Args:
        hospitals: The federation.
        config: The hyperparameters (its ``noise_multiplier`` is ignored when
            ``target_epsilon`` is given).
        target_epsilon: If given, every model is trained with example-level DP-SGD (secret
            noise) so that *every patient* has epsilon <= ``target_epsilon`` at
            ``target_delta``: local and FedAvg use the noise multiplier calibrated for the
            smallest hospital, the pooled model its own (calibrated for the pooled set).
            Private comparisons need hospitals prepared with ``preprocessing="public"``.

    Returns:
        One row per (method, hospital): ``{"method", "hospital", "accuracy", "auc", "loss",
        "auc_defined", "epsilon"}``. ``method`` is ``"local"`` (the hospital's own model),
        ``"fedavg"`` or ``"pooled"``; ``epsilon`` is that hospital's (inf without DP).
    """
    hospitals, config = _check_hospitals(hospitals), _check_config(config)
    if target_epsilon is not None:
        v.check_positive("target_epsilon", target_epsilon)
    v.check_open_unit("target_delta", target_delta)
    private = target_epsilon is not None or config.private
    if private:
        check_private_preparation(hospitals)
    rows = []
    (x_pool, y_pool), pooled_tests = pooled_standardisation(hospitals)
    pooled_size = sum(h.public_train_size for h in hospitals)
    # The pooled model does the work of all hospitals together: len(hospitals) times the steps.
    pooled_config = dataclasses.replace(config, local_steps=config.local_steps * len(hospitals))
    if target_epsilon is not None:
        smallest = min(h.public_train_size for h in hospitals)
        config = calibrate_noise(config, smallest, target_epsilon=target_epsilon,
                                 target_delta=target_delta)
        pooled_config = calibrate_noise(pooled_config, pooled_size,
                                        target_epsilon=target_epsilon, target_delta=target_delta)
    fed, _ = run_fedavg(hospitals, config)
    pooled = train_alone(x_pool, y_pool, pooled_config, hospital_id=len(hospitals),
                         public_train_size=pooled_size)
    for h, (x_pt, y_pt) in zip(hospitals, pooled_tests, strict=True):
        local = train_alone(h.x_train, h.y_train, config, hospital_id=h.hospital_id,
                            public_train_size=h.public_train_size)
        eps = epsilon(config, h.public_train_size, target_delta=target_delta)
        eps_pooled = epsilon(pooled_config, pooled_size, target_delta=target_delta)
        rows.append({"method": "local", "hospital": h.name, "epsilon": eps,
                     **evaluate(local, h.x_test, h.y_test)})
        rows.append({"method": "fedavg", "hospital": h.name, "epsilon": eps,
                     **evaluate(fed, h.x_test, h.y_test)})
        rows.append({"method": "pooled", "hospital": h.name, "epsilon": eps_pooled,
                     **evaluate(pooled, x_pt, y_pt)})
    return rows
