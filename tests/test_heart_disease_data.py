"""The shipped UCI Heart Disease files: checksums, counts from data/README.md, clear errors, and
the per-hospital preparation (FLamby's split sizes, local imputation and standardisation)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fl_helpers import cross_silo, data

# From data/heart_disease/README.md (counted from the files).
ROWS = {"cleveland": 303, "hungary": 294, "switzerland": 123, "va": 200}
MISSING = {"cleveland": 6, "hungary": 782, "switzerland": 273, "va": 698}
LABELS = {"cleveland": [164, 55, 36, 35, 13], "hungary": [188, 106],
          "switzerland": [8, 48, 32, 30, 5], "va": [51, 56, 41, 42, 10]}
# FLamby's README: "Records per center | Train/Test: 199/104, 172/89, 30/16, 85/45".
FLAMBY_SIZES = [(199, 104), (172, 89), (30, 16), (85, 45)]


@pytest.mark.parametrize("hospital", data.HOSPITALS)
def test_counts_match_the_readme(hospital):
    table = data.load_heart_disease(hospital)
    assert table.shape == (ROWS[hospital], 14)
    assert int(np.isnan(table).sum()) == MISSING[hospital]
    assert np.bincount(table[:, -1].astype(int)).tolist() == LABELS[hospital]


def test_ids_and_names_agree():
    for index, name in enumerate(data.HOSPITALS):
        np.testing.assert_array_equal(data.load_heart_disease(index),
                                      data.load_heart_disease(name))


@pytest.mark.parametrize("bad, error", [(4, ValueError), (-1, ValueError), ("zurich", ValueError),
                                        (1.0, TypeError)])
def test_bad_hospital(bad, error):
    with pytest.raises(error, match="hospital"):
        data.load_heart_disease(bad)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="processed.va.data"):
        data.load_heart_disease("va", tmp_path)


def test_corrupted_file_names_it(tmp_path):
    source = data.heart_disease_dir() / "processed.switzerland.data"
    target = tmp_path / source.name
    raw = bytearray(source.read_bytes())
    raw[10] = ord("9") if raw[10] != ord("9") else ord("8")
    target.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="processed.switzerland.data.*corrupted"):
        data.load_heart_disease("switzerland", tmp_path)


def test_flamby_split_sizes():
    hospitals = cross_silo.load_federation(missing="drop")
    assert [(h.num_train, h.num_test) for h in hospitals] == FLAMBY_SIZES
    assert sum(h.num_train + h.num_test for h in hospitals) == 740


def test_impute_keeps_every_patient_and_leaves_no_gap():
    hospitals = cross_silo.load_federation(missing="impute")
    assert [h.num_train + h.num_test for h in hospitals] == list(ROWS.values())
    for h in hospitals:
        assert h.x_train.shape[1] == cross_silo.NUM_FEATURES
        assert np.isfinite(h.x_train).all() and np.isfinite(h.x_test).all()
        assert set(np.unique(h.y_train)) <= {0.0, 1.0}


def test_labels_are_num_greater_than_zero():
    h = cross_silo.load_hospital("cleveland", missing="drop", train_fraction=0.5)
    table = data.load_heart_disease("cleveland")
    assert h.y_train.sum() + h.y_test.sum() == (table[:, -1] > 0).sum() == 139


def test_split_is_stratified():
    h = cross_silo.load_hospital("cleveland")
    assert abs(h.y_train.mean() - h.y_test.mean()) < 0.02


def test_standardised_with_own_training_statistics():
    for h in cross_silo.load_federation():
        varying = h.x_train_raw.std(axis=0) > 0
        np.testing.assert_allclose(h.x_train.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(h.x_train.std(axis=0, ddof=1)[varying], 1.0, rtol=1e-12)


def test_imputation_uses_the_hospitals_own_training_median():
    h = cross_silo.load_hospital("va")
    raw = data.load_heart_disease("va")
    # trestbps is raw column 3 and feature 2; VA has 56 gaps there.
    rng = np.random.default_rng([43, 3])
    train, _ = cross_silo.split_train_test((raw[:, -1] > 0).astype(float), train_fraction=0.66,
                                           rng=rng)
    median = np.nanmedian(raw[train, 3])
    filled = np.isnan(raw[train, 3])
    assert filled.sum() > 0
    np.testing.assert_array_equal(h.x_train_raw[filled, 2], median)


def test_a_hospital_reads_only_its_own_file(tmp_path):
    """Cleveland prepared from a folder holding only its own file equals the usual preparation."""
    name = data.HEART_DISEASE_FILES["cleveland"][0]
    shutil.copy(data.heart_disease_dir() / name, tmp_path / name)
    alone = cross_silo.load_hospital(0, data_dir=tmp_path)
    usual = cross_silo.load_hospital(0)
    np.testing.assert_array_equal(alone.x_train, usual.x_train)
    np.testing.assert_array_equal(alone.y_test, usual.y_test)


def test_bad_missing_mode():
    with pytest.raises(ValueError, match="missing must be one of"):
        cross_silo.load_hospital(0, missing="mean")


def test_public_preparation_uses_the_written_constants():
    """preprocessing="public": zero codes and gaps get the reference value, values are clipped
    to the plausible range, and the scaling is (x - centre) / scale from PUBLIC_FEATURES."""
    h = cross_silo.load_hospital("switzerland", preprocessing="public")
    chol = cross_silo.FEATURE_NAMES.index("chol")
    # Switzerland records cholesterol 0 for every patient: a missing-value code.
    assert (h.x_train_raw[:, chol] == cross_silo.PUBLIC_FEATURES["chol"].reference).all()
    feature = cross_silo.PUBLIC_FEATURES["chol"]
    np.testing.assert_allclose(h.x_train[:, chol], (200.0 - feature.centre) / feature.scale)
    va = cross_silo.load_hospital("va", preprocessing="public")
    trestbps = cross_silo.FEATURE_NAMES.index("trestbps")
    assert va.x_train_raw[:, trestbps].min() >= 80.0  # VA's one 0 mm Hg is a gap, not a value
    for hospital in cross_silo.load_federation(preprocessing="public"):
        assert np.isfinite(hospital.x_train).all() and np.abs(hospital.x_train).max() <= 2.0
        assert hospital.preprocessing == "public"


def test_bad_preprocessing_mode():
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        cross_silo.load_hospital(0, preprocessing="pooled")
