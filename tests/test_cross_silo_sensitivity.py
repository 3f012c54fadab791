"""Patient-level sensitivity of notebook 08's DP-SGD: removing one patient of a hospital's
training split must move that hospital's sum of clipped per-example gradients by at most the
clipping norm C, the sensitivity the accountant assumes.

The attack's view: the adversary knows every other patient and compares the two neighbouring
training sets (with and without the target). With ``preprocessing="local"`` (FLamby's: the
hospital's own median, mean and standard deviation) the target's presence moves every other
patient's features, and the sum moves by up to 2.1 C over Switzerland's split: the broken variant.
With ``preprocessing="public"`` each row depends on that patient alone, and the sum moves by the
target's own clipped gradient, at most C."""

from __future__ import annotations

import numpy as np
import pytest

from fl_helpers import cross_silo, data

CLIP = 1.0


def _raw_split(hospital_id):
    raw = data.load_heart_disease(hospital_id)
    y = (raw[:, -1] > 0).astype(np.float64)
    train, test = cross_silo.split_train_test(
        y, train_fraction=0.66, rng=np.random.default_rng([43, hospital_id]))
    return raw[train], y[train], raw[test]


def _clipped_sum(params, x, y):
    return cross_silo.clip_rows(cross_silo.per_example_gradients(params, x, y), CLIP).sum(axis=0)


def max_shift(hospital_id, preprocessing, params):
    """max over training patients i of |S(D) - S(D - i)| / C, where S is the sum of clipped
    per-example gradients at ``params`` of the training set prepared as ``preprocessing``."""
    raw_train, y, raw_test = _raw_split(hospital_id)
    x_full = cross_silo.preprocess(raw_train, raw_test, preprocessing=preprocessing)[0]
    full = _clipped_sum(params, x_full, y)
    worst = 0.0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        x_without = cross_silo.preprocess(raw_train[keep], raw_test,
                                          preprocessing=preprocessing)[0]
        shift = np.linalg.norm(full - _clipped_sum(params, x_without, y[keep]))
        worst = max(worst, shift / CLIP)
    return worst


@pytest.fixture(scope="module")
def models():
    """Zero parameters and the non-private FedAvg model (where DP-SGD's steps happen)."""
    trained, _ = cross_silo.run_fedavg(cross_silo.load_federation(preprocessing="public"),
                                       cross_silo.TrainingConfig())
    return {"zero": cross_silo.init_params(), "trained": trained}


@pytest.mark.parametrize("hospital_id", range(data.NUM_HOSPITALS),
                         ids=list(data.HOSPITALS))
def test_public_preparation_keeps_the_sensitivity_at_c(hospital_id, models):
    for name, params in models.items():
        shift = max_shift(hospital_id, "public", params)
        print(f"\n{data.HOSPITALS[hospital_id]}, {name} params: max shift {shift:.3f} C (public)")
        assert shift <= 1.0 + 1e-12


def test_local_statistics_break_the_sensitivity(models):
    """The control: the same measurement on FLamby's local preparation exceeds C."""
    shift = max(max_shift(2, "local", params) for params in models.values())
    print(f"\nswitzerland: max shift {shift:.3f} C (local statistics)")
    assert shift > 1.5


def test_a_public_row_depends_on_that_patient_alone():
    raw_train, _, raw_test = _raw_split(3)
    x_full = cross_silo.preprocess(raw_train, raw_test, preprocessing="public")[0]
    x_rows = np.concatenate([cross_silo.preprocess(raw_train[i:i + 1], raw_test,
                                                   preprocessing="public")[0]
                             for i in range(len(raw_train))])
    np.testing.assert_array_equal(x_full, x_rows)
    assert np.isfinite(x_full).all() and np.abs(x_full).max() <= 2.0
