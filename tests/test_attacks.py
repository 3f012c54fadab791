"""Tests of fl_helpers.attacks (gradient inversion, membership inference, DP bounds); notebook 05's
widget (fl_helpers.attack_widgets) is tested in tests/test_attack_widgets.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from fl_helpers import quiet

quiet.import_tensorflow()

from fl_helpers import (
    accounting,
    aggregation,
    attacks,
    audit,
    data,
    models,
    schedule,
)

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.fixture(scope="module")
def mnist():
    (x, y), _ = data.load_mnist()
    return x[:2000], y[:2000]


@pytest.fixture(scope="module")
def two_nn():
    model = models.make_2nn(seed=0)
    return [w.numpy() for w in model.weights], attacks.model_activations(model)


def distinct(y, size):
    return np.array([int(np.flatnonzero(y == d)[0]) for d in range(size)])


# -- analytic inversion ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [models.make_2nn, models.make_softmax_regression])
def test_analytic_inversion_of_one_image_is_exact(mnist, make):
    x, y = mnist
    model = make(seed=0)
    w, act = [a.numpy() for a in model.weights], attacks.model_activations(model)
    grad = attacks.gradient(w, act, x[3:4], y[3:4])
    update = [-0.1 * g for g in grad]
    candidates, units = attacks.invert_dense_layer(update[0], update[1])
    assert len(candidates) >= 1
    np.testing.assert_allclose(candidates, np.repeat(x[3].reshape(1, -1), len(candidates), 0),
                               atol=1e-4)
    np.testing.assert_allclose(attacks.invert_dense_least_squares(update[0], update[1]),
                               x[3].ravel(), atol=1e-4)
    assert attacks.ssim(candidates[0], x[3])[0] > 0.9999


def test_analytic_inversion_is_scale_free(mnist, two_nn):
    """Clipping (a positive scale) and the learning rate cancel in the ratio."""
    x, y = mnist
    w, act = two_nn
    grad = attacks.gradient(w, act, x[:1], y[:1])
    clipped = attacks.clip_and_noise([-g for g in grad], clipping_norm=1e-3, noise_multiplier=0,
                                     rng=np.random.default_rng(0))
    a, _ = attacks.invert_dense_layer(grad[0], grad[1])
    b, _ = attacks.invert_dense_layer(clipped[0], clipped[1])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_batch_candidates_are_mixtures_of_the_batch(mnist, two_nn):
    """Every candidate lies in the span of the batch's images; most images come out exactly."""
    x, y = mnist
    w, act = two_nn
    idx = distinct(y, 8)
    grad = attacks.gradient(w, act, x[idx], y[idx])
    candidates, _ = attacks.invert_dense_layer(grad[0], grad[1])
    basis = x[idx].reshape(8, -1).astype(np.float64).T
    coef, *_ = np.linalg.lstsq(basis, candidates.T, rcond=None)
    residual = np.abs(basis @ coef - candidates.T).max()
    assert residual < 1e-3
    _, scores = attacks.match_to_originals(candidates, x[idx])
    assert np.sum(scores > 0.999) >= 5  # not vacuous: a random image has SSIM near 0
    assert attacks.ssim(x[idx[0]], x[idx[1]])[0] < 0.5


def test_least_squares_beats_one_unit_under_noise(mnist, two_nn):
    x, y = mnist
    w, act = two_nn
    update = [-0.1 * g for g in attacks.gradient(w, act, x[:1], y[:1])]
    one, many = [], []
    for seed in range(5):
        noisy = attacks.clip_and_noise(update, clipping_norm=0.1, noise_multiplier=0.003,
                                       rng=np.random.default_rng(seed))
        one.append(attacks.ssim(attacks.invert_dense_layer(noisy[0], noisy[1])[0][0], x[0])[0])
        many.append(attacks.ssim(attacks.invert_dense_least_squares(noisy[0], noisy[1]),
                                 x[0])[0])
    assert np.mean(many) > np.mean(one)


def test_clip_and_noise_clips_and_noises():
    update = [np.full((3, 4), 2.0), np.full(4, 2.0)]
    out = attacks.clip_and_noise(update, clipping_norm=1.0, noise_multiplier=0.0,
                                 rng=np.random.default_rng(0))
    assert math.isclose(math.sqrt(sum(float(np.sum(o * o)) for o in out)), 1.0, rel_tol=1e-12)
    noisy = attacks.clip_and_noise([np.zeros(200_000)], clipping_norm=0.5, noise_multiplier=2.0,
                                   rng=np.random.default_rng(0))
    assert abs(noisy[0].std() - 1.0) < 0.01


# -- DLG / iDLG ------------------------------------------------------------------------------


def test_idlg_labels_are_always_right(mnist, two_nn):
    x, y = mnist
    w, act = two_nn
    for i in range(20):
        grad = attacks.gradient(w, act, x[i:i + 1], y[i:i + 1])
        assert attacks.idlg_labels(grad[-1], 1)[0] == y[i]
    idx = distinct(y, 8)
    grad = attacks.gradient(w, act, x[idx], y[idx])
    assert sorted(attacks.idlg_labels(grad[-1], 8)) == sorted(y[idx])


def test_dlg_reconstructs_one_image(mnist, two_nn):
    x, y = mnist
    w, act = two_nn
    update = [-0.1 * g for g in attacks.gradient(w, act, x[:1], y[:1])]
    start, _ = attacks.dlg_attack(w, act, update, batch_size=1, num_steps=1, step_size=1e-9)
    images, labels = attacks.dlg_attack(w, act, update, batch_size=1, num_steps=150)
    assert labels[0] == y[0]
    assert attacks.ssim(start, x[:1])[0] < 0.2  # the start is noise
    assert attacks.ssim(images, x[:1])[0] > 0.6
    assert images.min() >= 0 and images.max() <= 1


# -- image metrics ---------------------------------------------------------------------------


def test_ssim_and_psnr_closed_forms(mnist):
    x, _ = mnist
    assert attacks.ssim(x[:3], x[:3]) == pytest.approx([1.0, 1.0, 1.0])
    assert np.all(np.isinf(attacks.psnr(x[:2], x[:2])))
    assert attacks.psnr(np.full((28, 28), 0.1), np.zeros((28, 28)))[0] == pytest.approx(20.0)
    assert attacks.ssim(x[0], 1 - x[0])[0] < 0


def test_match_to_originals_recovers_a_permutation(mnist):
    x, _ = mnist
    perm = np.array([3, 0, 2, 1])
    index, scores = attacks.match_to_originals(x[:4][perm], x[:4])
    np.testing.assert_array_equal(perm[index], np.arange(4))
    assert scores == pytest.approx(np.ones(4))


# -- membership inference --------------------------------------------------------------------


def test_roc_auc_is_the_mann_whitney_statistic():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 20, 300), rng.integers(0, 15, 200)  # many ties
    fpr, tpr = attacks.roc_curve(pos, neg)
    greater = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert attacks.auc(fpr, tpr) == pytest.approx(greater, abs=1e-12)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_tpr_at_fpr():
    fpr, tpr = attacks.roc_curve([5, 4, 1], [3, 2, 0, -1])
    assert attacks.tpr_at_fpr(fpr, tpr, 0.1) == pytest.approx(2 / 3)
    assert attacks.tpr_at_fpr(fpr, tpr, 0.25) == pytest.approx(2 / 3)
    assert attacks.tpr_at_fpr(fpr, tpr, 1.0) == 1.0


def test_logit_confidence_and_losses():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 2])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    py = p[[0, 1], labels]
    np.testing.assert_allclose(attacks.logit_confidence(logits, labels), np.log(py / (1 - py)))
    np.testing.assert_allclose(attacks.per_example_losses(logits, labels), -np.log(py))
    huge = np.array([[1000.0, 0.0]])
    assert np.isfinite(attacks.logit_confidence(huge, [0])).all()


def test_lira_offline_is_the_out_z_score():
    rng = np.random.default_rng(0)
    shadows = rng.normal(size=(6, 4))
    members = np.array([[1, 0, 0, 1]] * 3 + [[0, 1, 0, 0]] * 3, dtype=bool)
    target = np.array([0.5, -1.0, 2.0, 0.0])
    scores = attacks.lira_offline_scores(target, shadows, members)
    for i in range(4):
        out = shadows[~members[:, i], i]
        assert scores[i] == pytest.approx((target[i] - out.mean()) / out.std(ddof=1))


def test_lira_separates_a_planted_signal():
    rng = np.random.default_rng(1)
    members = np.stack([rng.permutation(np.arange(16) < 8) for _ in range(500)], axis=1)
    conf = rng.normal(size=(16, 500)) * rng.uniform(0.5, 3, 500) + 0.8 * members
    scores = attacks.lira_offline_scores(conf[0], conf[1:], members[1:])
    fpr, tpr = attacks.roc_curve(scores[members[0]], scores[~members[0]])
    assert attacks.auc(fpr, tpr) > 0.6


# -- DP bounds -------------------------------------------------------------------------------


def test_dp_tpr_bound_closed_form():
    fpr = np.array([0.0, 0.01, 0.5, 1.0])
    bound = attacks.dp_tpr_bound(fpr, epsilon=1.0, delta=0.01)
    expected = np.minimum(np.e * fpr + 0.01, 1 - np.exp(-1) * (1 - 0.01 - fpr))
    np.testing.assert_allclose(bound, np.clip(expected, 0, 1))
    assert attacks.dp_tpr_bound(fpr, epsilon=0.0, delta=0.0) == pytest.approx(fpr)


@pytest.mark.parametrize("z", [0.8, 2.0])
def test_tradeoff_bound_is_the_gaussian_curve_for_one_step(z):
    """q = 1, T = 1: the exact trade-off is Phi(Phi^-1(FPR) + 1/z) (Dong, Roth, Su, Eq. 6)."""
    fpr = np.array([1e-4, 1e-3, 1e-2, 0.1, 0.5])
    exact = scipy.stats.norm.cdf(scipy.stats.norm.ppf(fpr) + 1 / z)
    bound = attacks.tradeoff_tpr_bound(fpr, noise_multiplier=z, sampling_probability=1.0,
                                       num_rounds=1, epsilons=np.linspace(0, 15, 1500))
    assert np.all(bound >= exact - 1e-9)  # valid
    np.testing.assert_allclose(bound, exact, atol=0.01)  # and tight


def test_tradeoff_bound_is_under_the_accountants_line():
    z, q, rounds, delta = 1.1, 0.5, 20, 1e-4
    eps = accounting.dp_fedavg_epsilon(noise_multiplier=z, sampling_probability=q,
                                       num_rounds=rounds, target_delta=delta)
    fpr = np.logspace(-4, 0, 30)
    envelope = attacks.tradeoff_tpr_bound(fpr, noise_multiplier=z, sampling_probability=q,
                                          num_rounds=rounds)
    line = attacks.dp_tpr_bound(fpr, epsilon=eps, delta=delta)
    assert np.all(envelope <= line + 1e-3)
    assert envelope[5] < 0.5 * line[5]  # much tighter at small FPR


# -- the empirical ROC lies under the DP bound (fixed seeds), and the check can fail ---------


def _canary_roc(rule_class, z=2.0):
    rng = np.random.default_rng(0)
    shapes = [(784, 10), (10,)]
    others = [audit.canary_update(shapes, norm=0.5, rng=rng) for _ in range(3)]
    canary = audit.canary_update(shapes, norm=10.0, rng=rng)
    rule = rule_class(clipping_norm=1.0, noise_multiplier=z, expected_clients=10.0)
    with pytest.warns(UserWarning, match="reproducible"):
        randomness = schedule.PrivateRandomness.reproducible(3)
    ins, outs = audit.canary_scores(rule, others, canary, num_trials=1500,
                                    randomness=randomness, num_clients=100)
    return attacks.roc_curve(ins, outs), ins.size, outs.size


class _NoiseForTheMean(aggregation.DPFedAvg):
    def noise_stddev(self, num_sampled):
        return super().noise_stddev(num_sampled) / self.expected_clients


def test_canary_attack_roc_lies_under_the_tradeoff_curve():
    (fpr, tpr), n_in, n_out = _canary_roc(aggregation.DPFedAvg)
    ok = attacks.roc_under_bound(
        fpr, tpr, num_members=n_in, num_nonmembers=n_out,
        bound=lambda f: attacks.tradeoff_tpr_bound(f, noise_multiplier=2.0,
                                                   sampling_probability=1.0, num_rounds=1))
    assert ok.all()
    assert attacks.auc(fpr, tpr) > 0.55  # the attack works: the check is not vacuous


def test_bound_check_fails_for_a_broken_mechanism():
    (fpr, tpr), n_in, n_out = _canary_roc(_NoiseForTheMean)
    ok = attacks.roc_under_bound(
        fpr, tpr, num_members=n_in, num_nonmembers=n_out,
        bound=lambda f: attacks.tradeoff_tpr_bound(f, noise_multiplier=2.0,
                                                   sampling_probability=1.0, num_rounds=1))
    assert not ok.all()


def test_stored_membership_rocs_lie_under_their_bounds():
    stored = json.loads((RESULTS / "attacks_membership.json").read_text())
    s, fpr = stored["setting"], np.array(stored["fpr_grid"])
    checked = 0
    for key, r in stored["settings"].items():
        if r["noise_multiplier"] is None:
            continue
        eps_line = lambda f, e=float(key): attacks.dp_tpr_bound(  # noqa: E731
            f, epsilon=e, delta=s["target_delta"])
        envelope = lambda f, z=r["noise_multiplier"]: attacks.tradeoff_tpr_bound(  # noqa: E731
            f, noise_multiplier=z, sampling_probability=s["sampling_probability"],
            num_rounds=s["num_rounds"])
        for name in ("example_loss", "example_lira", "client_loss", "client_lira"):
            a = r[name]
            for bound in (eps_line, envelope):
                assert attacks.roc_under_bound(
                    fpr, np.array(a["roc_tpr"]), num_members=a["num_members"],
                    num_nonmembers=a["num_nonmembers"], bound=bound).all(), (key, name)
                checked += 1
    assert checked >= 24
    # Without DP the attack beats the epsilon = 1 curve: the bound is not trivially loose.
    none = stored["settings"]["none"]["example_lira"]
    z1 = stored["settings"]["1"]["noise_multiplier"]
    assert not attacks.roc_under_bound(
        fpr, np.array(none["roc_tpr"]), num_members=none["num_members"],
        num_nonmembers=none["num_nonmembers"],
        bound=lambda f: attacks.tradeoff_tpr_bound(
            f, noise_multiplier=z1, sampling_probability=s["sampling_probability"],
            num_rounds=s["num_rounds"])).all()


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("call, match", [
    (lambda: attacks.ssim(np.zeros((2, 28, 28)), np.zeros((3, 28, 28))), "same shape"),
    (lambda: attacks.ssim(np.full((28, 28), np.nan), np.zeros((28, 28))), "finite"),
    (lambda: attacks.clip_and_noise([np.ones(3)], clipping_norm=0, noise_multiplier=1,
                                    rng=np.random.default_rng(0)), "clipping_norm must be > 0"),
    (lambda: attacks.clip_and_noise([np.ones(3)], clipping_norm=1, noise_multiplier=-1,
                                    rng=np.random.default_rng(0)),
     "noise_multiplier must be >= 0"),
    (lambda: attacks.invert_dense_layer(np.ones((4, 3)), np.zeros(3)), "bias_update"),
    (lambda: attacks.invert_dense_layer(np.ones((4, 3)), np.ones(2)), "kernel_update"),
    (lambda: attacks.idlg_labels(np.ones(10), 0), "batch_size must be >= 1"),
    (lambda: attacks.roc_curve([], [1.0]), "non-empty"),
    (lambda: attacks.roc_curve([np.nan], [1.0]), "finite"),
    (lambda: attacks.tpr_at_fpr([0, 1], [0, 1], 0.0), "target_fpr must be in"),
    (lambda: attacks.dp_tpr_bound([0.1], epsilon=1, delta=1.0), "delta must be in"),
    (lambda: attacks.dp_tpr_bound([0.1], epsilon=-1, delta=0.0), "epsilon must be >= 0"),
    (lambda: attacks.lira_offline_scores(np.zeros(2), np.zeros((2, 2)),
                                         np.ones((2, 2), bool)), ">= 2 shadow models"),
    (lambda: attacks.tradeoff_tpr_bound([0.1], noise_multiplier=0, sampling_probability=1,
                                        num_rounds=1), "noise_multiplier must be > 0"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_dlg_rejects_mismatched_update(two_nn):
    w, act = two_nn
    with pytest.raises(ValueError, match="observed_update"):
        attacks.dlg_attack(w, act, [np.zeros(3)], batch_size=1)
    with pytest.raises(ValueError, match="labels must hold"):
        attacks.dlg_attack(w, act, [np.zeros_like(a) for a in w], batch_size=2, labels=[1])


def test_model_activations_rejects_the_cnn():
    with pytest.raises(ValueError, match="Dense stack"):
        attacks.model_activations(models.make_cnn(seed=0))


