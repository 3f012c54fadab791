"""Tests of fl_helpers.transfer: federated transfer learning (Liu et al. 2020).

The gradients each party computes are those of the one joint loss (central finite differences);
the prediction is Liu et al.'s ``phi(u_B) = Phi_A . u_B`` with ``Phi_A = (1/N_A) sum y_i u_A_i``;
the same seed gives the same model; the parties receive only their own data and the protocol's
messages (signatures, a spy on the messages, and a ``CreditParties`` whose evaluator view
raises); FTL beats chance on the bureau's customers the bank does not serve; what the plaintext
message leaks (the attack the encrypted protocol exists to stop); bad inputs are named.
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from fl_helpers import cross_silo, transfer, vertical

PARTIES = vertical.credit_parties(seed=0)
NON_OVERLAP = transfer.non_overlap_ids(PARTIES)
OVERLAP_500 = transfer.overlap_sample(PARTIES, 500, seed=0)


def _toy(*, alignment_weight=0.7, source_weight=0.5, l2=0.3, seed=0, num_bank=30, num_overlap=10,
         size=3):
    """A small bank and bureau with random data (both classes), for exact checks."""
    rng = np.random.default_rng(seed)
    bank_x = rng.normal(size=(num_bank, 4))
    labels = np.arange(num_bank) % 3 == 0
    rows = rng.choice(num_bank, size=num_overlap, replace=False)
    bureau_x = rng.normal(size=(num_overlap, 5))
    bank = transfer.Bank(bank_x, labels.astype(int), rows, representation_size=size,
                         alignment_weight=alignment_weight, source_weight=source_weight, l2=l2,
                         rng=np.random.default_rng(seed + 1))
    bureau = transfer.Bureau(bureau_x, representation_size=size, l2=l2,
                             rng=np.random.default_rng(seed + 2))
    return bank, bureau, bank_x, labels.astype(float), rows, bureau_x


# ------------------------------------------------------------------------------- the formulas

def test_phi_a_is_the_label_weighted_mean_of_the_banks_representations():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(7, 3))
    labels = np.array([1, 0, 0, 1, 1, 0, 0])
    expected = sum((1.0 if y == 1 else -1.0) * u[i] for i, y in enumerate(labels)) / 7
    np.testing.assert_allclose(transfer.phi_a(u, labels), expected, rtol=1e-14)


def test_predict_is_phi_a_dot_u_b():
    rng = np.random.default_rng(1)
    phi, u = rng.normal(size=3), rng.normal(size=(5, 3))
    np.testing.assert_allclose(transfer.predict(phi, u), [phi @ row for row in u], rtol=1e-14)


def test_bureau_scores_are_liu_phi_of_its_representations():
    bank, bureau, bank_x, labels, _, _ = _toy()
    transfer.train_ftl(bank, bureau, num_steps=5)
    u_a = np.tanh(bank_x @ bank._net.weights + bank._net.bias)
    phi = transfer.phi_a(u_a, labels)
    np.testing.assert_allclose(bank.phi(), phi, rtol=1e-12)
    x = np.random.default_rng(3).normal(size=(6, 5))
    u_b = np.tanh(x @ bureau._net.weights + bureau._net.bias)
    np.testing.assert_allclose(bureau.scores(x, bank.phi()), transfer.predict(phi, u_b),
                               rtol=1e-12)


def _loss_by_hand(bank, bureau, bank_x, labels, rows, bureau_x):
    """The module docstring's loss, written out from the parameters."""
    y = 2 * labels - 1
    u_a = np.tanh(bank_x @ bank._net.weights + bank._net.bias)
    u_b = np.tanh(bureau_x @ bureau._net.weights + bureau._net.bias)
    phi = (y[:, None] * u_a).mean(axis=0)
    transfer_term = np.mean(np.log1p(np.exp(-y[rows] * (u_b @ phi))))
    alignment = np.mean(((u_a[rows] - u_b) ** 2).sum(axis=1))
    source = np.mean(np.log1p(np.exp(-y * (u_a @ phi))))
    penalty = 0.5 * bank.l2 * ((bank._net.weights ** 2).sum() + (bureau._net.weights ** 2).sum())
    return (transfer_term + bank.alignment_weight * alignment + bank.source_weight * source
            + penalty)


def test_joint_loss_is_the_documented_formula():
    bank, bureau, *data = _toy()
    transfer.train_ftl(bank, bureau, num_steps=3)
    assert transfer.joint_loss(bank, bureau) == pytest.approx(
        _loss_by_hand(bank, bureau, *data), rel=1e-12)


# ------------------------------------------------------------------------------- the gradients

def _numeric_gradient(loss, array, step=1e-6):
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        up = loss()
        array[index] = saved - step
        down = loss()
        array[index] = saved
        grad[index] = (up - down) / (2 * step)
    return grad


@pytest.mark.parametrize("alignment_weight, source_weight, l2", [
    (0.7, 0.5, 0.3), (0.0, 0.0, 0.0), (0.01, 0.0, 0.1), (2.0, 1.0, 0.0)])
def test_each_partys_gradients_are_those_of_the_joint_loss(alignment_weight, source_weight, l2):
    bank, bureau, *_ = _toy(alignment_weight=alignment_weight, source_weight=source_weight, l2=l2)
    transfer.train_ftl(bank, bureau, num_steps=4)   # away from the initial point
    message = bank.gradients(bureau.representations())
    bureau_weights, bureau_bias = bureau.gradients(message.representation_gradient)

    def loss():
        return transfer.joint_loss(bank, bureau)

    for analytic, array in [(message.weights, bank._net.weights), (message.bias, bank._net.bias),
                            (bureau_weights, bureau._net.weights),
                            (bureau_bias, bureau._net.bias)]:
        np.testing.assert_allclose(analytic, _numeric_gradient(loss, array), rtol=1e-6,
                                   atol=1e-9)


def test_the_message_is_the_gradient_of_the_loss_in_u_b():
    bank, bureau, *_ = _toy()
    u_b = bureau.representations()
    message = bank.gradients(u_b).representation_gradient
    numeric = _numeric_gradient(lambda: bank.gradients(u_b).loss, u_b)
    np.testing.assert_allclose(message, numeric, rtol=1e-6, atol=1e-9)


def test_a_step_does_not_change_the_message_it_returns_and_lowers_the_loss():
    bank, bureau, *_ = _toy()
    u_b = bureau.representations()
    expected = bank.gradients(u_b).representation_gradient
    np.testing.assert_array_equal(bank.step(u_b), expected)
    bank2, bureau2, *_ = _toy()
    losses = transfer.train_ftl(bank2, bureau2, num_steps=60)
    assert losses[-1] < losses[0]
    assert transfer.joint_loss(bank2, bureau2) < losses[0]


# ------------------------------------------------------------------------------- determinism

def test_same_seed_same_scores_other_seed_other_scores():
    ids = OVERLAP_500[:200]
    first = transfer.credit_ftl(PARTIES, ids, NON_OVERLAP[:300], seed=5, num_steps=20)
    second = transfer.credit_ftl(PARTIES, ids, NON_OVERLAP[:300], seed=5, num_steps=20)
    other = transfer.credit_ftl(PARTIES, ids, NON_OVERLAP[:300], seed=6, num_steps=20)
    np.testing.assert_array_equal(first.scores, second.scores)
    np.testing.assert_array_equal(first.losses, second.losses)
    assert not np.allclose(first.scores, other.scores)


def test_overlap_sample_is_public_and_seeded():
    a = transfer.overlap_sample(PARTIES, 300, seed=1)
    np.testing.assert_array_equal(a, transfer.overlap_sample(PARTIES, 300, seed=1))
    assert len(np.unique(a)) == 300 and np.isin(a, PARTIES.train_ids).all()
    assert not np.isin(a, PARTIES.test_ids).any()
    assert not np.array_equal(a, transfer.overlap_sample(PARTIES, 300, seed=2))


def test_non_overlap_ids_are_the_bureaus_customers_the_bank_lacks():
    assert len(NON_OVERLAP) == len(PARTIES.bureau.ids) - len(PARTIES.overlap_ids)
    assert not np.isin(NON_OVERLAP, PARTIES.bank.ids).any()
    assert np.isin(NON_OVERLAP, PARTIES.bureau.ids).all()


# ------------------------------------------------------------------------------- who sees what

def test_each_party_is_built_from_its_own_data_only():
    bank_args = set(inspect.signature(transfer.Bank).parameters)
    bureau_args = set(inspect.signature(transfer.Bureau).parameters)
    assert bank_args == {"features", "labels", "overlap_rows", "representation_size",
                         "alignment_weight", "source_weight", "l2", "learning_rate", "rng"}
    assert bureau_args == {"overlap_features", "representation_size", "l2", "learning_rate",
                           "rng"}
    # The bureau has no labels anywhere: not an argument, not a message.
    assert "labels" not in bureau_args and PARTIES.bureau.labels is None


class _Forbidden:
    """Stands in for the evaluator's table: any read raises."""

    def __getattr__(self, name):
        raise AssertionError(f"the trainer read the evaluator's view ({name})")


def test_the_story_never_reads_the_evaluators_view():
    guarded = dataclasses.replace(PARTIES, _all=_Forbidden())
    with pytest.raises(AssertionError, match="evaluator"):
        guarded.labels_of(NON_OVERLAP[:3])      # the guard works
    run = transfer.credit_ftl(guarded, OVERLAP_500, NON_OVERLAP, num_steps=5)
    assert run.scores.shape == NON_OVERLAP.shape
    transfer.labels_only_scores(guarded, OVERLAP_500, NON_OVERLAP)
    transfer.months_late_scores(guarded, NON_OVERLAP)


def test_only_the_protocols_messages_cross():
    """A spy between the parties: per step, u_B (n, d) goes to the bank and dL/du_B (n, d) comes
    back; nothing else is passed."""
    bank, bureau, *_ = _toy()
    crossed = []

    class SpyBank(transfer.Bank):
        def step(self, bureau_representations):
            crossed.append(("u_B", np.shape(bureau_representations)))
            return super().step(bureau_representations)

    class SpyBureau(transfer.Bureau):
        def step(self, representation_gradient):
            crossed.append(("dL/du_B", np.shape(representation_gradient)))
            return super().step(representation_gradient)

    bank.__class__, bureau.__class__ = SpyBank, SpyBureau
    transfer.train_ftl(bank, bureau, num_steps=3)
    assert crossed == [("u_B", (10, 3)), ("dL/du_B", (10, 3))] * 3


def test_what_the_plaintext_message_leaks_the_labels_of_the_overlap():
    """The attack the encryption of Liu et al. exists to stop. The adversary: the bureau, with
    the plaintext message dL/du_B and Phi_A. Without alignment, dL/du_B_i = s_i Phi_A with
    sign(s_i) = -y_i: the bureau reads every overlap label."""
    bank, bureau, _, labels, rows, _ = _toy(alignment_weight=0.0, source_weight=0.0)
    transfer.train_ftl(bank, bureau, num_steps=10)
    message = bank.gradients(bureau.representations()).representation_gradient
    guessed = (message @ bank.phi() < 0).astype(float)
    np.testing.assert_array_equal(guessed, labels[rows])


# ------------------------------------------------------------------------------- it learns

def test_ftl_beats_chance_on_the_bureaus_non_overlap_customers():
    truth = PARTIES.labels_of(NON_OVERLAP)
    run = transfer.credit_ftl(PARTIES, OVERLAP_500, NON_OVERLAP)
    assert np.isfinite(run.losses).all() and run.losses[-1] < run.losses[0]
    auc = cross_silo.roc_auc(truth, run.scores)
    assert auc > 0.70       # measured 0.742 (seed 0, 500 shared customers); chance is 0.5
    assert cross_silo.roc_auc(truth, transfer.labels_only_scores(PARTIES, OVERLAP_500,
                                                                  NON_OVERLAP)) > 0.70
    assert cross_silo.roc_auc(truth, transfer.months_late_scores(PARTIES, NON_OVERLAP)) > 0.70


def test_months_late_score_counts_months_late():
    ids = NON_OVERLAP[:200]
    raw = PARTIES._all.features[ids - 1]
    pay = raw[:, [PARTIES._all.feature_names.index(c) for c in vertical.BUREAU_SOURCE_COLUMNS]]
    expected = (pay == 1).sum(axis=1) + 2 * (pay >= 2).sum(axis=1)
    np.testing.assert_array_equal(transfer.months_late_scores(PARTIES, ids), expected)


def test_overlap_curve_returns_one_point_per_size():
    points = transfer.overlap_curve(PARTIES, [300, 200], num_steps=3)
    assert [p.overlap_size for p in points] == [300, 200]
    assert all(0.5 < p.labels_only_auc < 1 and 0 < p.ftl_auc < 1 and p.ftl_seconds > 0
               for p in points)


# ------------------------------------------------------------------------------- bad inputs

_RNG = np.random.default_rng(0)
_BANK, _BUREAU, _BANK_X, _LABELS, _ROWS, _BUREAU_X = _toy()
_U = _RNG.normal(size=(10, 3))
_BAD_ARRAY = [None, "abc", [[np.nan, 1.0]], np.array([[np.inf]]), [[1 + 2j]],
              np.array([[True]]), np.zeros(3)]
_BAD_INT = [None, "3", 1.5, True, -1, 0, 2**64]
_BAD_NON_NEGATIVE = [None, "x", True, -0.1, float("nan"), float("inf"), [1.0]]
_BAD_RATE = [None, "x", 0.0, -1.0, float("nan"), 1e9]
_BAD_RNG = [None, 0, np.random.RandomState(0), "seed"]
_BAD_PARTIES = [None, "parties", object(), PARTIES.bank]
_BAD_IDS = [None, "x", 3, [1.5, 2.0], [-1], np.array([True, False]), [30_001]]
_BAD_SEED = [None, "0", 1.5, -1, True]

#: (function, valid keyword arguments, {argument: [bad values]}) for tests/test_bad_inputs.py.
FUZZ = [
    (transfer.phi_a, {"representations": _U, "labels": _LABELS[:10]},
     {"representations": _BAD_ARRAY + [np.zeros((4, 3))],
      "labels": [None, "x", [0.5] * 10, np.ones(10, bool), [1] * 9, [2] * 10]}),
    (transfer.predict, {"phi": _U[0], "representations": _U},
     {"phi": [None, "x", [np.nan] * 3, np.zeros((3, 1)), np.zeros(4)],
      "representations": _BAD_ARRAY + [np.zeros((2, 4))]}),
    (transfer.Bank, {"features": _BANK_X, "labels": _LABELS, "overlap_rows": _ROWS,
                     "rng": np.random.default_rng(0)},
     {"features": _BAD_ARRAY + [np.full((30, 4), 1e7)],
      "labels": [None, [0.5] * 30, np.zeros(30), [1] * 29, np.ones(30, bool)],
      "overlap_rows": [None, "x", [], [30], [-1], [1, 1], [0.5]],
      "representation_size": _BAD_INT + [257], "alignment_weight": _BAD_NON_NEGATIVE,
      "source_weight": _BAD_NON_NEGATIVE, "l2": _BAD_NON_NEGATIVE, "learning_rate": _BAD_RATE,
      "rng": _BAD_RNG}),
    (transfer.Bureau, {"overlap_features": _BUREAU_X, "rng": np.random.default_rng(0)},
     {"overlap_features": _BAD_ARRAY + [np.full((10, 5), -1e7)],
      "representation_size": _BAD_INT + [257], "l2": _BAD_NON_NEGATIVE,
      "learning_rate": _BAD_RATE, "rng": _BAD_RNG}),
    (_BANK.gradients, {"bureau_representations": _U},
     {"bureau_representations": _BAD_ARRAY + [np.zeros((9, 3)), np.zeros((10, 4))]}),
    (_BANK.step, {"bureau_representations": _U},
     {"bureau_representations": _BAD_ARRAY + [np.zeros((10, 2))]}),
    (_BUREAU.gradients, {"representation_gradient": _U},
     {"representation_gradient": _BAD_ARRAY + [np.zeros((11, 3))]}),
    (_BUREAU.step, {"representation_gradient": _U},
     {"representation_gradient": _BAD_ARRAY + [np.zeros((10, 4))]}),
    (_BUREAU.scores, {"features": _BUREAU_X, "phi": _U[0]},
     {"features": _BAD_ARRAY + [np.zeros((2, 4)), np.full((2, 5), 1e9)],
      "phi": [None, "x", [np.inf] * 3, np.zeros(4), np.zeros((3, 1))]}),
    (transfer.train_ftl, {"bank": _BANK, "bureau": _BUREAU, "num_steps": 1},
     {"bank": [None, _BUREAU, "bank", _toy(num_overlap=9)[0], _toy(size=2)[0]],
      "bureau": [None, _BANK, 1],
      "num_steps": _BAD_INT + [transfer.MAX_STEPS + 1]}),
    (transfer.joint_loss, {"bank": _BANK, "bureau": _BUREAU},
     {"bank": [None, _BUREAU, _toy(size=2)[0]], "bureau": [None, _BANK]}),
    (transfer.overlap_sample, {"parties": PARTIES, "size": 10},
     {"parties": _BAD_PARTIES, "size": _BAD_INT + [1, len(PARTIES.train_ids) + 1],
      "seed": _BAD_SEED}),
    (transfer.non_overlap_ids, {"parties": PARTIES}, {"parties": _BAD_PARTIES}),
    (transfer.credit_ftl, {"parties": PARTIES, "overlap_ids": OVERLAP_500[:20],
                           "score_ids": NON_OVERLAP[:20], "num_steps": 1},
     {"parties": _BAD_PARTIES,
      "overlap_ids": _BAD_IDS + [[], OVERLAP_500[:1], NON_OVERLAP[:5], [OVERLAP_500[0]] * 2],
      "score_ids": _BAD_IDS + [[], np.setdiff1d(PARTIES.bank.ids, PARTIES.bureau.ids)[:3]],
      "seed": _BAD_SEED, "representation_size": _BAD_INT, "alignment_weight": _BAD_NON_NEGATIVE,
      "source_weight": _BAD_NON_NEGATIVE, "l2": _BAD_NON_NEGATIVE, "learning_rate": _BAD_RATE,
      "num_steps": _BAD_INT}),
    (transfer.labels_only_scores, {"parties": PARTIES, "overlap_ids": OVERLAP_500[:50],
                                   "score_ids": NON_OVERLAP[:20]},
     {"parties": _BAD_PARTIES, "overlap_ids": _BAD_IDS + [NON_OVERLAP[:5]],
      "score_ids": _BAD_IDS, "l2": _BAD_NON_NEGATIVE}),
    (transfer.months_late_scores, {"parties": PARTIES, "score_ids": NON_OVERLAP[:20]},
     {"parties": _BAD_PARTIES, "score_ids": _BAD_IDS + [[]]}),
    (transfer.overlap_curve, {"parties": PARTIES, "sizes": [20], "num_steps": 1},
     {"parties": _BAD_PARTIES, "sizes": [None, 20, "20", [], [1.5], [1], [10**6]],
      "seed": _BAD_SEED}),
]


def test_fuzz_covers_every_public_function():
    public = {name for name, member in inspect.getmembers(transfer)
              if not name.startswith("_") and (inspect.isfunction(member)
                                               or inspect.isclass(member))
              and getattr(member, "__module__", None) == transfer.__name__}
    data_classes = {"BankGradients", "CreditFTL", "CurvePoint"}
    covered = {getattr(f, "__name__", "") for f, _, _ in FUZZ}
    assert public - data_classes - covered == set()
