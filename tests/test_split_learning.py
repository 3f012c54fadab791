"""Split learning, the label-leakage attacks of Li et al. 2022 and the label-DP defence.

The attack tests follow the course's rule for privacy tests: the adversary is the bureau; it
knows its own features, the protocol, the code, the public batch order and the class prior,
and sees every gradient the bank returns; it does not know the labels. Its scores are run on
what it saw, and must recover the labels from plaintext split learning (the broken variant)
and fail with the exact-noise defence.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings

import dp_accounting
import numpy as np
import pytest

from fl_helpers import accounting, discrete_noise, schedule, split_learning, vertical


def _rep(seed: int) -> schedule.PrivateRandomness:
    """Reproducible randomness for the tests (NOT private; it warns so)."""
    return schedule.PrivateRandomness.reproducible(seed)

S = split_learning.GRID_STEPS


def _synthetic(n: int = 240, m: int = 80, seed: int = 3) -> split_learning.SplitData:
    """A small two-party problem whose label depends on both parties' columns."""
    rng = np.random.default_rng(seed)
    bank = rng.normal(size=(n + m, 3))
    bureau = rng.normal(size=(n + m, 4))
    logit = bank[:, 0] - bureau[:, 1] + 0.5 * bureau[:, 2] - 1.0
    labels = (rng.random(n + m) < 1 / (1 + np.exp(-2 * logit))).astype(np.int64)
    return split_learning.SplitData(bank[:n], bureau[:n], labels[:n], bank[n:], bureau[n:],
                                    labels[n:])


SMALL = _synthetic()


@pytest.fixture(scope="module")
def credit() -> split_learning.SplitData:
    return split_learning.credit_split_data(vertical.credit_parties(seed=0))


@pytest.fixture(scope="module")
def plaintext_run(credit) -> split_learning.SplitRun:
    return split_learning.train_split(credit)


# ------------------------------------------------------------------------------- the model

def _model(hidden_units: int) -> split_learning.SplitModel:
    run = split_learning.train_split(SMALL, epochs=2, batch_size=64, hidden_units=hidden_units,
                                     embedding_dim=3, learning_rate=0.05, seed=1)
    return run.model


@pytest.mark.parametrize("hidden_units", [0, 5])
def test_cut_layer_gradients_match_finite_differences(hidden_units):
    # g_i = dl_i / dh_i, each customer's own loss, by central differences on h_i.
    model = _model(hidden_units)
    x, y = SMALL.bank_train[:12], SMALL.labels_train[:12]
    h = model.embed(SMALL.bureau_train[:12])
    returned = model.cut_layer_gradients(x, h, y)

    def losses(embeddings):
        z = model.logits(x, embeddings)
        return np.logaddexp(0.0, z) - y * z

    eps = 1e-6
    numeric = np.zeros_like(h)
    for j in range(h.shape[1]):
        step = np.zeros_like(h)
        step[:, j] = eps
        numeric[:, j] = (losses(h + step) - losses(h - step)) / (2 * eps)
    np.testing.assert_allclose(returned, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("hidden_units", [0, 5])
def test_split_gradients_match_finite_differences(hidden_units):
    # The bank's half computed locally and the bureau's half from the returned g_i together
    # are the gradient of the whole model's mean loss.
    model = _model(hidden_units)
    x, u, y = SMALL.bank_train[:30], SMALL.bureau_train[:30], SMALL.labels_train[:30]
    analytic = model.gradients(x, u, y)
    params = model.parameters()
    eps = 1e-6
    for k, p in enumerate(params):
        numeric = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + eps
            up = model.loss(x, u, y)
            p[index] = saved - eps
            down = model.loss(x, u, y)
            p[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic[k], numeric, rtol=1e-5, atol=1e-8,
                                   err_msg=f"parameter {k}")


def test_training_returns_the_cut_layer_gradients():
    # One batch, one epoch, a negligible step: what the bureau received is the plaintext
    # g_i of the model (before and after that step, to 1e-6).
    n = len(SMALL.labels_train)
    run = split_learning.train_split(SMALL, epochs=1, batch_size=n, learning_rate=1e-12)
    model = run.model
    expected = model.cut_layer_gradients(SMALL.bank_train, model.embed(SMALL.bureau_train),
                                         SMALL.labels_train)
    np.testing.assert_allclose(run.returned_gradients[0], expected, rtol=1e-6, atol=1e-12)
    assert run.released_residuals is None and math.isinf(run.epsilon)


def test_same_seed_same_plaintext_run():
    a = split_learning.train_split(SMALL, epochs=2, batch_size=50)
    b = split_learning.train_split(SMALL, epochs=2, batch_size=50)
    np.testing.assert_array_equal(a.returned_gradients, b.returned_gradients)
    assert a.test_auc == b.test_auc
    c = split_learning.train_split(SMALL, epochs=2, batch_size=50, seed=1)
    assert not np.array_equal(a.returned_gradients, c.returned_gradients)


def test_every_customer_once_per_epoch():
    run = split_learning.train_split(SMALL, epochs=3, batch_size=50)
    n = len(SMALL.labels_train)
    for epoch in range(3):
        counts = np.bincount(run.batch_index[epoch], minlength=5)
        assert counts.tolist() == [50, 50, 50, 50, n - 200]
        assert np.all(np.linalg.norm(run.returned_gradients[epoch], axis=1) > 0)


def test_credit_split_data(credit):
    assert credit.bank_train.shape == (12_804, 20)
    assert credit.bureau_train.shape == (12_804, 30)
    assert credit.bank_test.shape == (3_201, 20) and credit.bureau_test.shape == (3_201, 30)
    np.testing.assert_allclose(credit.bank_train.mean(axis=0), 0.0, atol=1e-9)
    assert 0.2 < credit.labels_train.mean() < 0.24


# -------------------------------------------------------------------------------- the attack

def test_attacks_recover_labels_from_plaintext_gradients(credit, plaintext_run):
    # Broken variant: plaintext split learning. The model is as good as vertical logistic
    # regression (0.763), and the bureau reads the labels off the gradients it receives.
    assert 0.74 < plaintext_run.test_auc < 0.79
    aucs = split_learning.attack_aucs(plaintext_run, credit.labels_train)
    assert np.all(aucs["direction"] > 0.99)
    assert np.all(aucs["direction_unsupervised"] > 0.99)
    assert aucs["norm"][-1] > 0.85           # once the model has learnt the class prior
    assert aucs["norm"][-1] > aucs["norm"][0]


def test_attacks_fail_against_the_defence(credit):
    # The real mechanism at strong noise (z = 50: epsilon about 0.2 over 5 epochs): every
    # attack is at chance, within 0.05, in every epoch.
    with pytest.warns(UserWarning, match="not private"):
        run = split_learning.train_split(credit, noise_multiplier=50.0,
                                         randomness=_rep(0))
    assert run.epsilon < 0.25
    aucs = split_learning.attack_aucs(run, credit.labels_train)
    for name, values in aucs.items():
        assert np.all(np.abs(values - 0.5) < 0.05), (name, values)


def test_moderate_noise_weakens_the_attacks(credit, plaintext_run):
    # epsilon = 8 is a weak guarantee, yet the direction attack loses most of its power.
    z = split_learning.noise_multiplier_for_label_dp(target_epsilon=8.0, epochs=5,
                                                     target_delta=1e-5)
    with pytest.warns(UserWarning):
        run = split_learning.train_split(credit, noise_multiplier=z, randomness=_rep(1))
    aucs = split_learning.attack_aucs(run, credit.labels_train)
    assert np.all(aucs["direction_unsupervised"] < 0.8)
    assert np.all(np.abs(aucs["direction"] - 0.5) < 0.3)
    assert run.test_auc > 0.7


def test_attack_scores_by_hand():
    g = np.array([[1.0, 0.0], [-2.0, 0.0], [-3.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(split_learning.norm_scores(g), [1.0, 2.0, 3.0, 0.0])
    np.testing.assert_allclose(split_learning.direction_scores(g, np.array([-1.0, 0.0])),
                               [-1.0, 1.0, 1.0, 0.0])
    # Unsupervised: the minority side of the line scores positive.
    batch = np.array([[1.0, 1.0], [2.0, 2.0], [0.5, 0.5], [-3.0, -3.0]])
    np.testing.assert_allclose(split_learning.unsupervised_direction_scores(batch),
                               [-1.0, -1.0, -1.0, 1.0])


# ------------------------------------------------------------------------------ the defence

def test_residual_integers_flip_by_exactly_the_grid():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.random(10_000), [0.0, 1.0, 0.5, 0.5 / S, 1.5 / S]])
    zeros = split_learning.residual_integers(p, np.zeros(len(p), dtype=np.int64))
    ones = split_learning.residual_integers(p, np.ones(len(p), dtype=np.int64))
    assert zeros.dtype == np.int64
    np.testing.assert_array_equal(zeros - ones, S)            # the sensitivity, exactly
    assert zeros.min() >= 0 and zeros.max() <= S and ones.min() >= -S and ones.max() <= 0
    assert np.all(np.abs(zeros / S - p) <= 0.5 / S)


def test_released_values_are_integer_noise_on_the_grid():
    # The bank's noised residuals are int64 on the grid; the returned gradients are those
    # integers, scaled to floats only afterwards, times the bank's weights on the embedding
    # (the same vector for every customer of a batch with the default top model).
    z = 5.0
    with pytest.warns(UserWarning):
        run = split_learning.train_split(SMALL, epochs=3, batch_size=60, noise_multiplier=z,
                                         randomness=_rep(4))
    released = run.released_residuals
    assert released is not None and released.dtype == np.int64
    for epoch in range(3):
        for b in range(4):
            rows = np.flatnonzero(run.batch_index[epoch] == b)
            direction = run.returned_gradients[epoch, rows] / (released[epoch, rows, None] / S)
            np.testing.assert_allclose(direction, np.broadcast_to(direction[0], direction.shape),
                                       rtol=1e-12)
    # The noise has the stated spread: std of released / S within 5 % of z (|r| <= 1 adds
    # little), over 720 draws.
    assert abs(np.std(released / S) / z - 1) < 0.05


def test_noise_spread_on_the_credit_data(credit):
    # 64,020 draws: the released integers have std z S within 2 %.
    z = 20.0
    with pytest.warns(UserWarning):
        run = split_learning.train_split(credit, noise_multiplier=z, randomness=_rep(2))
    assert run.released_residuals is not None
    assert abs(np.std(run.released_residuals / S) / z - 1) < 0.02


def test_noise_is_secret_by_default():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on the private path
        a = split_learning.train_split(SMALL, epochs=2, noise_multiplier=1.0)
        b = split_learning.train_split(SMALL, epochs=2, noise_multiplier=1.0)
    assert not np.array_equal(a.released_residuals, b.released_residuals)
    assert not a.reproducible_noise and "NOT PRIVATE" not in a.privacy_statement()
    assert "label DP" in a.privacy_statement()


def test_reproducible_noise_only_when_asked_and_warned():
    with pytest.warns(UserWarning, match="not private"):
        a = split_learning.train_split(SMALL, epochs=2, noise_multiplier=1.0,
                                       randomness=_rep(7))
    with pytest.warns(UserWarning, match="not private"):
        b = split_learning.train_split(SMALL, epochs=2, noise_multiplier=1.0,
                                       randomness=_rep(7))
    np.testing.assert_array_equal(a.released_residuals, b.released_residuals)
    np.testing.assert_array_equal(a.returned_gradients, b.returned_gradients)
    assert a.reproducible_noise and "NOT PRIVATE" in a.privacy_statement()


def test_private_randomness_serves_one_run():
    randomness = schedule.PrivateRandomness.secret()
    split_learning.train_split(SMALL, epochs=1, noise_multiplier=1.0, randomness=randomness)
    with pytest.raises(ValueError, match="already used"):
        split_learning.train_split(SMALL, epochs=1, noise_multiplier=1.0, randomness=randomness)
    with pytest.raises(TypeError, match="reproducible_noise_seed"):  # the old name is gone
        split_learning.train_split(SMALL, noise_multiplier=1.0, reproducible_noise_seed=1)
    # The run draws each epoch's noise once: asking the same object again is refused.
    randomness = schedule.PrivateRandomness.secret()
    split_learning.train_split(SMALL, epochs=2, noise_multiplier=1.0, randomness=randomness)
    with pytest.raises(schedule.NoiseReuseError):
        randomness.noise_key(1)
    with pytest.raises(schedule.NoiseReuseError):
        discrete_noise.discrete_gaussian(4, 3, randomness=randomness, round_index=0)


# ----------------------------------------------------------------------------- accounting

@pytest.mark.parametrize("z, epochs", [(0.7, 1), (1.43, 5), (4.8, 5), (17.0, 5), (3.0, 20)])
def test_epsilon_matches_the_closed_form_and_dp_accounting(z, epochs):
    delta = 1e-5
    epsilon = split_learning.label_dp_epsilon(noise_multiplier=z, epochs=epochs,
                                              target_delta=delta)
    # Closed form: RDP a E / (2 z^2) at the integer orders, Canonne et al.'s conversion.
    orders = np.asarray(accounting.DISCRETE_RDP_ORDERS)
    closed = np.min(orders * epochs / (2 * z * z) + np.log1p(-1 / orders)
                    - np.log(delta * orders) / (orders - 1))
    assert epsilon == pytest.approx(max(closed, 0.0), rel=1e-9)
    # dp-accounting's continuous Gaussian: its PLD is (nearly) exact, so the discrete
    # Gaussian's bound is at least it and within 15 %; its RDP on the same orders agrees.
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), epochs)
    pld = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(event)
    exact = pld.get_epsilon(delta)
    assert exact * (1 - 1e-3) <= epsilon <= 1.15 * exact
    rdp = dp_accounting.rdp.RdpAccountant(list(accounting.DISCRETE_RDP_ORDERS))
    rdp.compose(event)
    assert epsilon == pytest.approx(rdp.get_epsilon(delta), rel=1e-6)


def test_epsilon_grows_with_epochs_and_shrinks_with_noise():
    eps = [split_learning.label_dp_epsilon(noise_multiplier=2.0, epochs=e, target_delta=1e-5)
           for e in (1, 2, 5, 10)]
    assert eps == sorted(eps) and eps[0] < eps[-1]
    assert split_learning.label_dp_epsilon(noise_multiplier=4.0, epochs=5, target_delta=1e-5) \
        < split_learning.label_dp_epsilon(noise_multiplier=2.0, epochs=5, target_delta=1e-5)
    assert math.isinf(split_learning.label_dp_epsilon(noise_multiplier=0.0, epochs=5,
                                                      target_delta=1e-5))


@pytest.mark.parametrize("target", [8.0, 2.0, 0.5])
def test_noise_multiplier_for_label_dp_inverts_epsilon(target):
    z = split_learning.noise_multiplier_for_label_dp(target_epsilon=target, epochs=5,
                                                     target_delta=1e-5)
    assert split_learning.label_dp_epsilon(noise_multiplier=z, epochs=5,
                                           target_delta=1e-5) <= target
    assert split_learning.label_dp_epsilon(noise_multiplier=z * (1 - 1e-3), epochs=5,
                                           target_delta=1e-5) > target


def test_run_reports_its_epsilon():
    run = split_learning.train_split(SMALL, epochs=3, noise_multiplier=2.0)
    assert run.epsilon == split_learning.label_dp_epsilon(noise_multiplier=2.0, epochs=3,
                                                          target_delta=1e-5)


# ----------------------------------------------------------------------------- bad inputs

RUN = split_learning.train_split(SMALL, epochs=2, batch_size=60)
G = RUN.returned_gradients[0]
NOT_ARRAYS = [None, "abc", [[1.0], [1.0, 2.0]], np.array([["a"]]), np.array([[np.nan]]),
              np.array([[True]])]
BAD_COUNTS = [None, 1.5, "3", True, 0, -1, 10**30]

#: ``(function, valid keyword arguments, {argument: [bad values]})``: every bad value must raise
#: ValueError or TypeError naming the argument.
FUZZ = [
    (split_learning.credit_split_data, {"parties": None}, {"parties": [None, 3, SMALL]}),
    (split_learning.train_split, {"data": SMALL, "epochs": 1, "batch_size": 60},
     {"data": [None, "abc", SMALL.bank_train],
      "epochs": [*BAD_COUNTS, split_learning.MAX_EPOCHS + 1],
      "batch_size": BAD_COUNTS,
      "embedding_dim": [*BAD_COUNTS, split_learning.MAX_UNITS + 1],
      "hidden_units": [None, 1.5, -1, split_learning.MAX_UNITS + 1],
      "learning_rate": [None, "0.1", 0.0, -1.0, math.nan, math.inf, True],
      "seed": [None, -1, 1.5, "0"],
      "noise_multiplier": [None, -1.0, math.nan, math.inf, "1", 1e6],
      "target_delta": [None, 0.0, 1.0, -0.1, math.nan],
      "randomness": [3, "secret", np.random.default_rng(0)]}),
    (split_learning.label_dp_epsilon,
     {"noise_multiplier": 1.0, "epochs": 5, "target_delta": 1e-5},
     {"noise_multiplier": [None, -1.0, math.nan, math.inf, "1", 1e6, True],
      "epochs": [*BAD_COUNTS, split_learning.MAX_EPOCHS + 1],
      "target_delta": [None, 0.0, 1.0, 2.0, math.nan, "1e-5"]}),
    (split_learning.noise_multiplier_for_label_dp,
     {"target_epsilon": 2.0, "epochs": 5, "target_delta": 1e-5},
     {"target_epsilon": [None, 0.0, -1.0, math.nan, math.inf, "2", 1e-9],
      "epochs": BAD_COUNTS,
      "target_delta": [None, 0.0, 1.0, math.nan]}),
    (split_learning.residual_integers,
     {"probabilities": np.array([0.2, 0.7]), "labels": np.array([0, 1])},
     {"probabilities": [None, "abc", np.array([-0.1, 0.5]), np.array([0.5, 1.1]),
                        np.array([np.nan, 0.5]), np.ones((2, 1)), np.array([])],
      "labels": [None, np.array([0, 2]), np.array([0.5, 1.0]), np.array([0, 1, 1]), "ab"]}),
    (split_learning.norm_scores, {"gradients": G}, {"gradients": [*NOT_ARRAYS, np.ones(3)]}),
    (split_learning.direction_scores, {"gradients": G, "reference": G[0]},
     {"gradients": [*NOT_ARRAYS, np.ones(3)],
      "reference": [None, "abc", np.ones(2), np.ones((1, 3)), np.array([np.inf, 0.0, 0.0])]}),
    (split_learning.unsupervised_direction_scores, {"gradients": G},
     {"gradients": [*NOT_ARRAYS, np.ones(3)]}),
    (split_learning.attack_aucs, {"run": RUN, "labels": SMALL.labels_train},
     {"run": [None, "run", G],
      "labels": [None, SMALL.labels_train[:-1], np.zeros(len(SMALL.labels_train)),
                 np.full(len(SMALL.labels_train), 2)],
      "known_positive": [-1, 1.5, len(SMALL.labels_train),
                         int(np.flatnonzero(SMALL.labels_train == 0)[0])]}),
]

CASES = [(function, kwargs, argument, bad)
         for function, kwargs, table in FUZZ
         for argument, values in table.items() for bad in values]


@pytest.mark.parametrize("function, kwargs", [(f, k) for f, k, _ in FUZZ if f is not
                                              split_learning.credit_split_data],
                         ids=lambda x: getattr(x, "__name__", ""))
def test_fuzz_valid_calls_run(function, kwargs):
    function(**kwargs)


@pytest.mark.parametrize("function, kwargs, argument, bad", CASES,
                         ids=[f"{f.__name__}-{a}-{i}" for i, (f, _, a, _) in enumerate(CASES)])
def test_bad_inputs_are_named(function, kwargs, argument, bad):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError), match=argument):
            function(**{**kwargs, argument: bad})


def test_bad_split_data_is_named():
    good = dict(bank_train=SMALL.bank_train, bureau_train=SMALL.bureau_train,
                labels_train=SMALL.labels_train, bank_test=SMALL.bank_test,
                bureau_test=SMALL.bureau_test, labels_test=SMALL.labels_test)
    bad = {"bank_train": np.ones(3), "bureau_train": SMALL.bureau_train[:-1],
           "labels_train": np.zeros(len(SMALL.labels_train)),
           "bureau_test": SMALL.bureau_test[:, :2], "labels_test": SMALL.labels_test + 1}
    for name, value in bad.items():
        with pytest.raises((ValueError, TypeError), match=name.split("_")[0]):
            split_learning.SplitData(**{**good, name: value})


def test_bad_model_inputs_are_named():
    model = RUN.model
    h = model.embed(SMALL.bureau_train[:5])
    with pytest.raises(ValueError, match="bureau_x"):
        model.embed(SMALL.bank_train[:5])
    with pytest.raises(ValueError, match="bank_x"):
        model.logits(SMALL.bureau_train[:5], h)
    with pytest.raises(ValueError, match="embeddings"):
        model.logits(SMALL.bank_train[:5], h[:4])
    with pytest.raises(ValueError, match="labels"):
        model.cut_layer_gradients(SMALL.bank_train[:5], h, np.full(5, 3))


# ------------------------------------------------ the statement in Chinese (issue 30)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")
#: The English statement's line labels and the Chinese ones (the glossary's terms).
_LABELS = [("guarantee:", "保证："), ("unit protected:", "隐私单元："),
           ("neighbouring:", "相邻关系："), ("noise:", "噪声："), ("trusted:", "受信任方："),
           ("observer sees:", "观察者看到：")]


@pytest.mark.parametrize("changes", [
    {}, {"noise_multiplier": 0.0, "epsilon": math.inf}, {"reproducible_noise": True},
    {"noise_multiplier": 12.3456789, "epsilon": 0.8765, "epochs": 20, "target_delta": 2.5e-6},
], ids=["label DP", "plaintext", "reproducible", "other figures"])
def test_privacy_statement_in_chinese_says_the_same_with_the_same_figures(changes):
    """Line by line, the Chinese statement carries the English one's numbers (ε, δ, epochs, z,
    the noise's formula) under the glossary's labels (保证, 隐私单元, 相邻关系, 受信任方, 观察者),
    with the bank (银行) trusted and the bureau (征信机构) the observer."""
    run = dataclasses.replace(RUN, **{"noise_multiplier": 2.0, "epsilon": 3.21,
                                      "reproducible_noise": False, **changes})
    english = run.privacy_statement()
    assert run.privacy_statement(language="en") == english
    chinese = run.privacy_statement(language="zh-CN")
    en_lines, zh_lines = english.splitlines(), chinese.splitlines()
    assert len(en_lines) == len(zh_lines) == len(_LABELS)
    for ours, theirs, (en, zh) in zip(zh_lines, en_lines, _LABELS, strict=True):
        assert theirs.startswith(en) and ours.startswith(zh), (theirs, ours)
        assert sorted(_NUMBER.findall(ours)) == sorted(_NUMBER.findall(theirs)), (ours, theirs)
    assert ("NOT PRIVATE" in english) == ("不是隐私的" in chinese) == (
        run.reproducible_noise and run.noise_multiplier > 0)
    assert ("label DP" in english) == ("标签差分隐私" in chinese)
    assert "银行" in zh_lines[4] and "征信机构" in zh_lines[5]
    assert not re.search(r"[A-Za-z]{4,} [a-z]{4,} [a-z]{4,}", chinese), \
        "an English phrase left in the Chinese"


@pytest.mark.parametrize("bad, error", [("zh", ValueError), ("EN", ValueError),
                                        ("", ValueError), (None, TypeError), (1, TypeError)])
def test_privacy_statement_language_is_checked(bad, error):
    with pytest.raises(error, match=r"^language must be 'en' or 'zh-CN', got "):
        RUN.privacy_statement(language=bad)
