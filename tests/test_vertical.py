"""The bank's and the bureau's data (notebook 09) and the plaintext logistic regressions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from fl_helpers import cross_silo, data, vertical


@pytest.fixture(scope="module")
def parties():
    return vertical.credit_parties(seed=0)


def test_populations(parties):
    assert len(parties.bank.ids) == 20_000 and len(parties.bureau.ids) == 24_000
    np.testing.assert_array_equal(parties.overlap_ids,
                                  np.intersect1d(parties.bank.ids, parties.bureau.ids))
    assert 15_000 <= len(parties.overlap_ids) <= 17_000  # 16,000 expected
    assert len(np.intersect1d(parties.train_ids, parties.test_ids)) == 0
    np.testing.assert_array_equal(np.union1d(parties.train_ids, parties.test_ids),
                                  parties.overlap_ids)
    assert len(parties.test_ids) == round(0.2 * len(parties.overlap_ids))
    assert parties.bank.features.shape == (20_000, len(vertical.BANK_COLUMNS)) == (20_000, 20)
    assert parties.bureau.features.shape == (24_000, len(vertical.BUREAU_COLUMNS)) == (24_000, 30)
    assert parties.bureau.labels is None


def test_the_seed_fixes_the_draw(parties):
    again = vertical.credit_parties(seed=0)
    np.testing.assert_array_equal(again.bank.ids, parties.bank.ids)
    np.testing.assert_array_equal(again.test_ids, parties.test_ids)
    other = vertical.credit_parties(seed=1)
    assert not np.array_equal(other.bank.ids, parties.bank.ids)


def test_rows_and_labels_match_the_file(parties):
    table = data.load_credit_default()
    ids = parties.test_ids[:50]
    rows = parties.bank.rows(ids)
    np.testing.assert_array_equal(parties.bank.ids[rows], ids)
    np.testing.assert_array_equal(parties.bank.labels[rows], table.labels[ids - 1])
    np.testing.assert_array_equal(parties.labels_of(ids), table.labels[ids - 1])
    np.testing.assert_array_equal(parties.bureau.features[parties.bureau.rows(ids)],
                                  vertical.encode_bureau(table.features[ids - 1]))


def test_encodings_use_no_statistic_of_the_data():
    # Public constants only: a row's encoding does not depend on the other rows.
    raw = data.load_credit_default().features[:200]
    for encode in (vertical.encode_bank, vertical.encode_bureau):
        together = encode(raw)
        alone = np.vstack([encode(raw[i:i + 1]) for i in range(len(raw))])
        np.testing.assert_array_equal(together, alone)
    bureau = vertical.encode_bureau(raw)
    np.testing.assert_array_equal(bureau.reshape(len(raw), 6, 5).sum(axis=2), 1)  # one level
    assert np.abs(vertical.encode_bank(data.load_credit_default().features)).max() <= 1.0


def test_rows_refuses_customers_of_the_other_party(parties):
    outside = np.setdiff1d(parties.bureau.ids, parties.bank.ids)[:3]
    with pytest.raises(ValueError, match="ids must all be customers of the bank"):
        parties.bank.rows(outside)
    with pytest.raises(TypeError, match="ids"):
        parties.bank.rows(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="ids"):
        parties.labels_of([0])


def test_taylor_loss_is_the_expansion():
    m = np.linspace(-0.5, 0.5, 11)
    # The error of the expansion is about m^4 / 192.
    np.testing.assert_allclose(vertical.taylor_loss(m), np.logaddexp(0, -m), atol=4e-4)
    assert vertical.taylor_loss(np.array([0.0]))[0] == pytest.approx(np.log(2))


@pytest.mark.parametrize("loss", ["logistic", "taylor"])
def test_fit_reaches_the_optimum(loss):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    labels = (x @ np.arange(1.0, 6.0) / 4 + rng.normal(size=400) > 0).astype(int)
    weights = vertical.fit_logistic(x, labels, l2=1e-2, loss=loss)
    signs = 2.0 * labels - 1
    if loss == "taylor":  # quadratic: ridge regression on the targets 2y (closed form)
        x1 = np.column_stack([x, np.ones(len(x))])
        penalty = np.diag([1e-2] * 5 + [0.0])
        exact = np.linalg.solve(x1.T @ x1 / (4 * len(x)) + penalty, x1.T @ signs / (2 * len(x)))
        np.testing.assert_allclose(weights, exact, atol=1e-5)
    else:
        def objective(w):
            z = x @ w[:-1] + w[-1]
            return np.logaddexp(0, -signs * z).mean() + 0.5e-2 * w[:-1] @ w[:-1]
        reference = scipy.optimize.minimize(objective, np.zeros(6), method="Nelder-Mead",
                                            options={"maxiter": 20_000, "xatol": 1e-8,
                                                     "fatol": 1e-12}).x
        np.testing.assert_allclose(weights, reference, atol=1e-3)


def test_joint_features_beat_the_bank_alone(parties):
    # The issue's yardstick: bank-only < vertical (both parties' columns, aligned customers)
    # ~ pooled (every column, every customer outside the test set) on the shared test set.
    bank, bureau = parties.bank, parties.bureau
    test_labels = parties.labels_of(parties.test_ids)
    own = np.setdiff1d(bank.ids, parties.test_ids)
    x_own, x_test = vertical.standardise(bank.features[bank.rows(own)],
                                         bank.features[bank.rows(parties.test_ids)])
    bank_only = cross_silo.roc_auc(test_labels, vertical.scores(
        vertical.fit_logistic(x_own, bank.labels[bank.rows(own)]), x_test))
    joint = [vertical.standardise(p.features[p.rows(parties.train_ids)],
                                  p.features[p.rows(parties.test_ids)]) for p in (bank, bureau)]
    x_train = np.hstack([joint[0][0], joint[1][0]])
    x_joint_test = np.hstack([joint[0][1], joint[1][1]])
    train_labels = bank.labels[bank.rows(parties.train_ids)]
    vfl = cross_silo.roc_auc(test_labels, vertical.scores(
        vertical.fit_logistic(x_train, train_labels), x_joint_test))
    everyone = np.setdiff1d(np.arange(1, 30_001), parties.test_ids)
    x_all, y_all = parties.pooled(everyone)
    x_all, x_all_test = vertical.standardise(x_all, parties.pooled(parties.test_ids)[0])
    pooled = cross_silo.roc_auc(test_labels, vertical.scores(
        vertical.fit_logistic(x_all, y_all), x_all_test))
    assert bank_only + 0.03 < vfl  # measured 0.710 and 0.763
    assert abs(vfl - pooled) < 0.01  # measured 0.765


@pytest.mark.parametrize("kwargs, pattern", [
    ({"bank_size": 0}, "bank_size"), ({"bureau_size": 30_001}, "bureau_size"),
    ({"bank_size": 1.5}, "bank_size"), ({"test_fraction": 1.0}, "test_fraction"),
    ({"test_fraction": "0.2"}, "test_fraction"), ({"seed": -1}, "seed"),
    ({"bank_size": 40, "bureau_size": 40}, "overlap"),
])
def test_credit_parties_bad_input(kwargs, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        vertical.credit_parties(**kwargs)


@pytest.mark.parametrize("call, pattern", [
    (lambda: vertical.encode_bank(np.zeros((3, 22))), "features"),
    (lambda: vertical.encode_bureau([[np.nan] * 23]), "features"),
    (lambda: vertical.fit_logistic(np.zeros((3, 2)), [0, 1]), "labels"),
    (lambda: vertical.fit_logistic(np.zeros((2, 2)), [0, 2]), "labels"),
    (lambda: vertical.fit_logistic(np.zeros((2, 2)), [0, 1], l2=-1), "l2"),
    (lambda: vertical.fit_logistic(np.zeros((2, 2)), [0, 1], loss="hinge"), "loss"),
    (lambda: vertical.scores(np.zeros(3), np.zeros((2, 3))), "weights"),
    (lambda: vertical.standardise(np.zeros((2, 2)), np.zeros((2, 3))), r"others\[0\]"),
    (lambda: vertical.taylor_loss("a"), "margins"),
])
def test_bad_input_named(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()
