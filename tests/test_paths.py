"""fl_helpers.paths: the one helper that finds the shipped data and the stored results."""

from __future__ import annotations

import pytest

from fl_helpers import data, paths


def test_the_checkout_holds_the_data_the_results_and_the_app():
    assert (paths.data_dir("mnist") / "train-images-idx3-ubyte.gz").is_file()
    assert (paths.results_dir() / "privacy_utility_sweep.json").is_file()
    assert (paths.app_dir() / "pyproject.toml").is_file()
    assert data.default_data_dir() == paths.data_dir("mnist")
    assert data.heart_disease_dir() == paths.data_dir("heart_disease")


def test_environment_variables_move_the_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("FL_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("FL_RESULTS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("FL_APP_DIR", str(tmp_path / "a"))
    assert paths.data_dir("mnist") == tmp_path / "d" / "mnist"
    assert data.default_data_dir() == tmp_path / "d" / "mnist"
    assert paths.results_dir() == tmp_path / "r"
    assert paths.app_dir() == tmp_path / "a"


def test_an_install_outside_the_checkout_says_which_variable_to_set(monkeypatch, tmp_path):
    for name in ("FL_DATA_DIR", "FL_RESULTS_DIR", "FL_APP_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(paths, "CHECKOUT", tmp_path)  # as if installed into site-packages
    with pytest.raises(FileNotFoundError, match=r"set \$FL_RESULTS_DIR"):
        paths.results_dir()
    with pytest.raises(FileNotFoundError, match=r"set \$FL_DATA_DIR"):
        paths.data_dir("mnist")
    with pytest.raises(FileNotFoundError, match=r"set \$FL_APP_DIR"):
        paths.app_dir()


@pytest.mark.parametrize("name", ["", "../data", ".", "..", 3, None])
def test_a_bad_dataset_name_is_refused(name):
    with pytest.raises(ValueError, match="name must be a dataset folder name"):
        paths.data_dir(name)
