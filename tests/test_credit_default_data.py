"""The shipped credit-card file (notebook 09): checksum, the README's sanity facts, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fl_helpers import data


def test_sanity_facts_of_the_readme():
    # data/credit_default/README.md: 30,000 rows, 6,636 defaults (22.12 %), and these means.
    table = data.load_credit_default()
    assert table.features.shape == (30_000, 23)
    assert table.feature_names == data.CREDIT_DEFAULT_FEATURES
    np.testing.assert_array_equal(table.ids, np.arange(1, 30_001))
    assert int(table.labels.sum()) == 6_636
    names = {name: i for i, name in enumerate(table.feature_names)}
    means = table.features.mean(axis=0)
    assert means[names["LIMIT_BAL"]] == pytest.approx(167_484.3227, abs=1e-4)
    assert means[names["AGE"]] == pytest.approx(35.4855, abs=1e-4)
    assert means[names["BILL_AMT1"]] == pytest.approx(51_223.3309, abs=1e-4)


def test_scientific_notation_cells_are_exact_integers():
    # 4,150 LIMIT_BAL cells are written like 5.00E+05; they must load as the integer 500000.
    raw = (data.credit_default_dir() / data.CREDIT_DEFAULT_FILE[0]).read_text()
    assert raw.count("E+") >= 4_150
    table = data.load_credit_default()
    np.testing.assert_array_equal(table.features, np.round(table.features))
    assert table.features[:, 0].min() == 10_000 and table.features[:, 0].max() == 1_000_000


def test_arrays_are_read_only():
    table = data.load_credit_default()
    with pytest.raises(ValueError):
        table.labels[0] = 1


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="default_of_credit_card_clients.csv"):
        data.load_credit_default(tmp_path)


@pytest.mark.parametrize("damage", ["altered", "truncated"])
def test_damaged_file_names_it(tmp_path, damage):
    source = data.credit_default_dir() / data.CREDIT_DEFAULT_FILE[0]
    raw = bytearray(source.read_bytes())
    if damage == "altered":
        raw[100] = ord("9") if raw[100] != ord("9") else ord("8")
    else:
        raw = raw[: len(raw) // 2]
    (tmp_path / source.name).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="default_of_credit_card_clients.csv.*corrupted"):
        data.load_credit_default(tmp_path)


def test_data_dir_that_is_not_a_path():
    with pytest.raises(TypeError, match="data_dir"):
        data.load_credit_default(3)


def test_a_copy_elsewhere_loads(tmp_path):
    source = data.credit_default_dir() / data.CREDIT_DEFAULT_FILE[0]
    shutil.copy(source, tmp_path / source.name)
    np.testing.assert_array_equal(data.load_credit_default(tmp_path).labels,
                                  data.load_credit_default().labels)
