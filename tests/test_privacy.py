"""Tests of fl_helpers.privacy: noise scales, analytic Gaussian calibration, clipping, an audit.

Statistical tests use a fixed seed and enough draws that the tolerance is several standard
errors wide (so they do not flake) yet far narrower than the error they must catch (a scale that
forgets the sensitivity, or is off by a factor of two).
"""

from __future__ import annotations

import functools
import math

import dp_accounting
import numpy as np
import pytest
from scipy import stats

from fl_helpers import audit, privacy, schedule


def _rep(seed: int) -> schedule.PrivateRandomness:
    """Reproducible randomness for the tests (NOT private; no warning)."""
    return schedule.PrivateRandomness.reproducible(seed, warn=False)

# --------------------------------------------------------------------------------------------
# Laplace mechanism
# --------------------------------------------------------------------------------------------

NUM_DRAWS = 200_000


def test_laplace_noise_has_scale_sensitivity_over_epsilon():
    # b = 2 / 0.5 = 4, variance 2 b^2 = 32. Relative standard error of the sample variance of
    # Laplace noise is sqrt(5 / n) = 0.5% here; the tolerance of 3% is six of them, while the
    # "1 / epsilon" pitfall (b = 2, variance 8) is off by a factor of 4.
    rng = _rep(1)
    noisy = privacy.laplace_mechanism(np.full(NUM_DRAWS, 10.0), sensitivity=2.0, epsilon=0.5,
                                      randomness=rng)
    noise = noisy - 10.0
    assert np.var(noise) == pytest.approx(32.0, rel=0.03)
    assert np.mean(np.abs(noise)) == pytest.approx(4.0, rel=0.02)  # E|X| = b
    assert abs(np.mean(noise)) < 5 * math.sqrt(32.0 / NUM_DRAWS)
    # The whole distribution, not just two moments.
    assert stats.kstest(noise, stats.laplace(scale=4.0).cdf).pvalue > 0.001


def test_laplace_mechanism_scalar_and_array_shapes_and_seed():
    scalar = privacy.laplace_mechanism(3, sensitivity=1.0, epsilon=1.0,
                                       randomness=_rep(0))
    assert isinstance(scalar, float)
    array = privacy.laplace_mechanism(np.zeros((2, 3)), sensitivity=1.0, epsilon=1.0,
                                      randomness=_rep(0))
    assert array.shape == (2, 3)
    again = privacy.laplace_mechanism(np.zeros((2, 3)), sensitivity=1.0, epsilon=1.0,
                                      randomness=_rep(0))
    np.testing.assert_array_equal(array, again)
    # Independent noise on every element.
    assert len(np.unique(array)) == 6
    # Zero sensitivity: nothing to hide, no noise.
    assert privacy.laplace_mechanism(2.5, sensitivity=0.0, epsilon=1.0,
                                     randomness=_rep(0)) == 2.5


def test_laplace_scale_equals_sensitivity_over_epsilon():
    assert privacy.laplace_scale(sensitivity=3.0, epsilon=0.25) == 12.0
    assert privacy.noise_scale("laplace", sensitivity=3.0, epsilon=0.25) == 12.0


# --------------------------------------------------------------------------------------------
# Gaussian mechanism and its calibration
# --------------------------------------------------------------------------------------------

def closed_form_delta(sigma: float, sensitivity: float, epsilon: float) -> float:
    """Balle & Wang 2018, Theorem 8, written directly with scipy.stats (independent of the
    implementation under test)."""
    a = sensitivity / (2 * sigma) - epsilon * sigma / sensitivity
    b = sensitivity / (2 * sigma) + epsilon * sigma / sensitivity
    return stats.norm.cdf(a) - math.exp(epsilon) * stats.norm.cdf(-b)


GRID = [(eps, delta, sens) for eps in (0.01, 0.1, 0.5, 1.0, 3.0, 10.0, 40.0)
        for delta in (1e-9, 1e-5, 1e-2) for sens in (1.0, 3.0)]


@pytest.mark.parametrize(("epsilon", "delta", "sensitivity"), GRID)
def test_gaussian_sigma_solves_the_balle_wang_equation(epsilon, delta, sensitivity):
    sigma = privacy.gaussian_sigma(sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    # delta(sigma) equals the target (the closed form loses a few digits to cancellation).
    assert closed_form_delta(sigma, sensitivity, epsilon) == pytest.approx(delta, rel=1e-6)
    assert privacy.gaussian_delta(sigma=sigma, sensitivity=sensitivity,
                                  epsilon=epsilon) <= delta
    # ... and sigma is the smallest that does: a little less noise breaks the guarantee.
    assert closed_form_delta(sigma * (1 - 1e-6), sensitivity, epsilon) > delta
    # Agrees with dp-accounting's own analytic calibration (for sensitivity 1).
    reference = dp_accounting.get_sigma_gaussian(epsilon, delta) * sensitivity
    assert sigma == pytest.approx(reference, rel=1e-9)


def test_gaussian_sigma_scales_linearly_with_sensitivity():
    one = privacy.gaussian_sigma(sensitivity=1.0, epsilon=2.0, delta=1e-6)
    assert privacy.gaussian_sigma(sensitivity=7.0, epsilon=2.0, delta=1e-6) == pytest.approx(
        7.0 * one, rel=1e-12)
    assert privacy.gaussian_sigma(sensitivity=0.0, epsilon=2.0, delta=1e-6) == 0.0


def test_classic_bound_pitfall_fails_for_large_epsilon_and_wastes_noise_for_small():
    # epsilon = 10, delta = 1e-5: the textbook sigma is too small; the real delta is 2.3e-5.
    classic = privacy.classic_gaussian_sigma(sensitivity=1.0, epsilon=10.0, delta=1e-5)
    assert classic == pytest.approx(math.sqrt(2 * math.log(1.25e5)) / 10, rel=1e-12)
    assert closed_form_delta(classic, 1.0, 10.0) == pytest.approx(2.265e-5, rel=1e-3)
    assert closed_form_delta(classic, 1.0, 10.0) > 1e-5
    assert classic < privacy.gaussian_sigma(sensitivity=1.0, epsilon=10.0, delta=1e-5)
    # For epsilon < 1 (where Dwork & Roth's Theorem A.1 applies) it is valid but wasteful.
    for epsilon in (0.05, 0.2, 0.5, 0.9):
        classic = privacy.classic_gaussian_sigma(sensitivity=1.0, epsilon=epsilon, delta=1e-5)
        analytic = privacy.gaussian_sigma(sensitivity=1.0, epsilon=epsilon, delta=1e-5)
        assert closed_form_delta(classic, 1.0, epsilon) <= 1e-5
        assert classic > 1.2 * analytic


def test_gaussian_noise_has_calibrated_std():
    # Relative standard error of the sample variance is sqrt(2 / n) = 0.45%; tolerance 2%.
    # The release is a discrete Gaussian whose sigma is the spec's (a little above the analytic
    # continuous sigma), on a grid 2^40 times finer than the sensitivity.
    sigma = privacy.gaussian_mechanism_spec(sensitivity=2.0, epsilon=1.0, delta=1e-5).noise_scale
    assert sigma > privacy.gaussian_sigma(sensitivity=2.0, epsilon=1.0, delta=1e-5)
    noisy = privacy.gaussian_mechanism(np.zeros(NUM_DRAWS // 2), sensitivity=2.0, epsilon=1.0,
                                       delta=1e-5, randomness=_rep(2))
    assert np.var(noisy) == pytest.approx(sigma**2, rel=0.02)
    assert stats.kstest(noisy, stats.norm(scale=sigma).cdf).pvalue > 0.001
    again = privacy.gaussian_mechanism(np.zeros(NUM_DRAWS // 2), sensitivity=2.0, epsilon=1.0,
                                       delta=1e-5, randomness=_rep(2))
    np.testing.assert_array_equal(noisy, again)
    assert isinstance(privacy.gaussian_mechanism(1.0, sensitivity=1.0, epsilon=1.0, delta=1e-5,
                                                 randomness=_rep(0)), float)


# --------------------------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------------------------

def test_clip_never_increases_norm_and_caps_it():
    rng = np.random.default_rng(3)
    for _ in range(200):
        scale = 10.0 ** rng.uniform(-3, 3)
        vector = rng.normal(size=int(rng.integers(1, 50))) * scale
        clipping_norm = float(10.0 ** rng.uniform(-2, 2))
        clipped, norm_before = privacy.clip_by_l2_norm(vector, clipping_norm)
        assert norm_before == pytest.approx(np.linalg.norm(vector), rel=1e-12)
        norm_after = np.linalg.norm(clipped)
        assert norm_after <= norm_before * (1 + 1e-12)
        assert norm_after <= clipping_norm * (1 + 1e-12)
        assert norm_after == pytest.approx(min(norm_before, clipping_norm), rel=1e-12)
        # Direction is kept: clipping only rescales.
        np.testing.assert_allclose(clipped * norm_before, vector * norm_after, rtol=1e-10,
                                   atol=1e-300)


def test_clip_inside_ball_and_zero_vector_unchanged():
    vector = np.array([0.3, -0.4])
    clipped, norm = privacy.clip_by_l2_norm(vector, 1.0)
    np.testing.assert_array_equal(clipped, vector)
    assert norm == pytest.approx(0.5)
    assert clipped is not vector
    zero, norm = privacy.clip_by_l2_norm(np.zeros((3, 2)), 1.0)
    assert norm == 0.0 and zero.shape == (3, 2) and not np.any(zero)
    assert np.all(np.isfinite(zero))


def test_clip_list_of_arrays_uses_the_global_norm():
    weights = [np.full((2, 2), 3.0), np.array([4.0, 0.0, 0.0, 0.0]), np.zeros(0)]
    clipped, norm = privacy.clip_by_l2_norm(weights, 2.5)
    assert norm == pytest.approx(math.sqrt(4 * 9 + 16))
    assert [c.shape for c in clipped] == [(2, 2), (4,), (0,)]
    flat = np.concatenate([c.ravel() for c in clipped])
    assert np.linalg.norm(flat) == pytest.approx(2.5, rel=1e-12)
    factor = 2.5 / norm
    np.testing.assert_allclose(clipped[0], weights[0] * factor)
    np.testing.assert_allclose(clipped[1], weights[1] * factor)
    # Huge entries do not overflow the norm.
    big, norm = privacy.clip_by_l2_norm([np.array([1e200, 1e200])], 1.0)
    assert norm == pytest.approx(math.sqrt(2) * 1e200)
    assert np.linalg.norm(big[0]) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Empirical privacy audit
# --------------------------------------------------------------------------------------------

AUDIT_DRAWS = 100_000
AUDIT_EPSILON = 1.0
AUDIT_THRESHOLD = 1.0  # fixed before sampling: for t >= 1 the Laplace likelihood ratio is e^eps
AUDIT_CONFIDENCE = 0.95


def _audit(scale_factor: float, seed: int) -> float:
    """Runs the Laplace mechanism on the neighbouring answers 0 and 1 (sensitivity 1), with its
    noise scale multiplied by ``scale_factor`` (1 = correct, 0.5 = broken)."""
    rng = np.random.default_rng(seed)
    scale = scale_factor * privacy.laplace_scale(sensitivity=1.0, epsilon=AUDIT_EPSILON)
    outputs_0 = 0.0 + rng.laplace(scale=scale, size=AUDIT_DRAWS)
    outputs_1 = 1.0 + rng.laplace(scale=scale, size=AUDIT_DRAWS)
    return audit.empirical_epsilon_lower_bound(outputs_0, outputs_1, threshold=AUDIT_THRESHOLD,
                                                 confidence=AUDIT_CONFIDENCE)


def test_audit_does_not_refute_correct_laplace_mechanism():
    # The mechanism itself, to make sure the helper's noise is what is audited.
    rng = _rep(4)
    outputs_0 = privacy.laplace_mechanism(np.zeros(AUDIT_DRAWS), sensitivity=1.0,
                                          epsilon=AUDIT_EPSILON, randomness=rng)
    outputs_1 = privacy.laplace_mechanism(np.ones(AUDIT_DRAWS), sensitivity=1.0,
                                          epsilon=AUDIT_EPSILON, randomness=rng)
    bound = audit.empirical_epsilon_lower_bound(outputs_0, outputs_1, threshold=AUDIT_THRESHOLD,
                                                  confidence=AUDIT_CONFIDENCE)
    # Not vacuous: at this threshold the true ratio is exactly e^eps, so the bound comes close.
    assert 0.9 < bound <= AUDIT_EPSILON
    assert 0.9 < _audit(1.0, seed=5) <= AUDIT_EPSILON


def test_audit_flags_mechanism_with_halved_noise_scale():
    bound = _audit(0.5, seed=6)  # really 2-DP while claiming 1-DP
    assert bound > AUDIT_EPSILON
    assert bound == pytest.approx(2.0, abs=0.1)


def test_audit_flags_helper_laplace_told_the_wrong_sensitivity():
    # The same audit of the helper's own mechanism, misused: it is told sensitivity 0.5 while
    # the neighbouring answers differ by 1, so it is really 2-DP. The audit must catch it.
    rng = _rep(9)
    outputs_0 = privacy.laplace_mechanism(np.zeros(AUDIT_DRAWS), sensitivity=0.5,
                                          epsilon=AUDIT_EPSILON, randomness=rng)
    outputs_1 = privacy.laplace_mechanism(np.ones(AUDIT_DRAWS), sensitivity=0.5,
                                          epsilon=AUDIT_EPSILON, randomness=rng)
    bound = audit.empirical_epsilon_lower_bound(outputs_0, outputs_1, threshold=AUDIT_THRESHOLD,
                                                  confidence=AUDIT_CONFIDENCE)
    assert bound > AUDIT_EPSILON
    assert bound == pytest.approx(2.0, abs=0.1)


GAUSS_EPSILON, GAUSS_DELTA = 1.0, 1e-5


def _gaussian_audit(claimed_sensitivity: float, threshold: float, seed: int) -> float:
    """Thresholds are fixed in advance, in the tail (likelihood ratio exp((2t - 1)/(2 s^2)))."""
    rng = _rep(seed)
    kwargs = {"sensitivity": claimed_sensitivity, "epsilon": GAUSS_EPSILON,
              "delta": GAUSS_DELTA, "randomness": rng}
    outputs_0 = privacy.gaussian_mechanism(np.zeros(AUDIT_DRAWS), **kwargs)
    outputs_1 = privacy.gaussian_mechanism(np.ones(AUDIT_DRAWS), **kwargs)
    return audit.empirical_epsilon_lower_bound(outputs_0, outputs_1, threshold=threshold,
                                                 delta=GAUSS_DELTA, confidence=AUDIT_CONFIDENCE)


def test_audit_of_helper_gaussian_mechanism_with_delta():
    correct = _gaussian_audit(1.0, threshold=8.0, seed=7)
    # The best this threshold attack can show: sigma = 4.05, ratio at t = 8 is exp(15 / 32.7),
    # about 0.46 nats. The bound must stay below the claim, and not be vacuous (> 0.2).
    assert 0.2 < correct <= GAUSS_EPSILON
    # The helper told a quarter of the true sensitivity (sigma 4x too small) is caught.
    broken = _gaussian_audit(0.25, threshold=3.0, seed=8)
    assert broken > GAUSS_EPSILON


# --------------------------------------------------------------------------------------------
# What the widget shows
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_expected_error_and_interval_match_simulation(mechanism):
    kwargs = {"sensitivity": 2.0, "epsilon": 0.7, "delta": 1e-5}
    rng = _rep(8)
    if mechanism == "laplace":
        noise = privacy.laplace_mechanism(np.zeros(NUM_DRAWS), sensitivity=2.0, epsilon=0.7,
                                          randomness=rng)
    else:
        noise = privacy.gaussian_mechanism(np.zeros(NUM_DRAWS), **kwargs,
                                             randomness=rng)
    error = privacy.expected_absolute_error(mechanism, **kwargs)
    assert np.mean(np.abs(noise)) == pytest.approx(error, rel=0.01)
    half_width = privacy.error_interval_half_width(mechanism, **kwargs)
    assert np.mean(np.abs(noise) <= half_width) == pytest.approx(0.95, abs=0.003)
    summary = privacy.noisy_answer_summary(100.0, mechanism, **kwargs)
    assert summary["expected_absolute_error"] == error
    assert summary["low"] == pytest.approx(100.0 - half_width)
    assert summary["high"] == pytest.approx(100.0 + half_width)
    assert summary["std"] == pytest.approx(np.std(noise), rel=0.02)


def test_expected_error_closed_forms():
    assert privacy.expected_absolute_error("laplace", sensitivity=1.0, epsilon=0.1) == 10.0
    # The Gaussian's scale is the sigma the helper's (discrete) mechanism really uses.
    sigma = privacy.gaussian_mechanism_spec(sensitivity=1.0, epsilon=0.1, delta=1e-5).noise_scale
    assert privacy.noise_scale("gaussian", sensitivity=1.0, epsilon=0.1, delta=1e-5) == sigma
    assert privacy.expected_absolute_error("Gaussian", sensitivity=1.0, epsilon=0.1,
                                           delta=1e-5) == pytest.approx(sigma * 0.7978845608)


@pytest.mark.parametrize(("mechanism", "reference"), [
    ("laplace", lambda x, s: stats.laplace.pdf(x, scale=s)),
    ("gaussian", lambda x, s: stats.norm.pdf(x, scale=s)),
])
def test_noise_pdf_matches_scipy(mechanism, reference):
    x = np.linspace(-30, 30, 2001)
    kwargs = {"sensitivity": 1.5, "epsilon": 0.4, "delta": 1e-5}
    scale = privacy.noise_scale(mechanism, **kwargs)
    pdf = privacy.noise_pdf(x, mechanism, **kwargs)
    np.testing.assert_allclose(pdf, reference(x, scale), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

RNG = _rep(0)
BAD_EPSILON = [0.0, -1.0, float("nan"), float("inf")]
BAD_SENSITIVITY = [-1.0, float("nan"), float("inf")]
BAD_DELTA = [0.0, 1.0, -0.1, 1.5, float("nan")]


@pytest.mark.parametrize("epsilon", BAD_EPSILON)
def test_bad_epsilon_rejected_everywhere(epsilon):
    calls = [
        lambda: privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=epsilon,
                                          randomness=RNG),
        lambda: privacy.gaussian_mechanism(1.0, sensitivity=1.0, epsilon=epsilon, delta=1e-5,
                                           randomness=RNG),
        lambda: privacy.gaussian_sigma(sensitivity=1.0, epsilon=epsilon, delta=1e-5),
        lambda: privacy.classic_gaussian_sigma(sensitivity=1.0, epsilon=epsilon, delta=1e-5),
        lambda: privacy.expected_absolute_error("laplace", sensitivity=1.0, epsilon=epsilon),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"epsilon must be"):
            call()


@pytest.mark.parametrize("sensitivity", BAD_SENSITIVITY)
def test_bad_sensitivity_rejected_everywhere(sensitivity):
    calls = [
        lambda: privacy.laplace_mechanism(1.0, sensitivity=sensitivity, epsilon=1.0,
                                          randomness=RNG),
        lambda: privacy.gaussian_mechanism(1.0, sensitivity=sensitivity, epsilon=1.0,
                                           delta=1e-5, randomness=RNG),
        lambda: privacy.gaussian_sigma(sensitivity=sensitivity, epsilon=1.0, delta=1e-5),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"sensitivity must be"):
            call()


@pytest.mark.parametrize("delta", BAD_DELTA)
def test_bad_delta_rejected(delta):
    with pytest.raises(ValueError, match=r"delta must be"):
        privacy.gaussian_sigma(sensitivity=1.0, epsilon=1.0, delta=delta)
    with pytest.raises(ValueError, match=r"delta must be"):
        privacy.gaussian_mechanism(0.0, sensitivity=1.0, epsilon=1.0, delta=delta,
                                   randomness=RNG)


@pytest.mark.parametrize("clipping_norm", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_clipping_norm_rejected(clipping_norm):
    with pytest.raises(ValueError, match=r"clipping_norm must be"):
        privacy.clip_by_l2_norm(np.ones(3), clipping_norm)


def test_error_messages_name_argument_and_value():
    with pytest.raises(ValueError, match=r"^epsilon must be > 0, got 0.0\.$"):
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=0, randomness=RNG)
    with pytest.raises(ValueError, match=r"^delta must be in \(0, 1\), got 1.0\.$"):
        privacy.gaussian_sigma(sensitivity=1.0, epsilon=1.0, delta=1)


def test_other_bad_inputs():
    with pytest.raises(TypeError, match="randomness must be None"):
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=1.0, randomness=0)
    with pytest.raises(TypeError, match="reproducible_rng"):  # the old name is gone too
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=1.0,
                                  reproducible_rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):  # the old name is gone: no silent fallback
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=1.0, rng=RNG)
    with pytest.raises(TypeError, match="epsilon"):
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon="1", randomness=RNG)
    with pytest.raises(ValueError, match="value must be finite"):
        privacy.laplace_mechanism(np.array([1.0, np.nan]), sensitivity=1.0, epsilon=1.0,
                                  randomness=RNG)
    with pytest.raises(ValueError, match="finite"):
        privacy.clip_by_l2_norm(np.array([np.inf]), 1.0)
    with pytest.raises(ValueError, match="at least one"):
        privacy.clip_by_l2_norm([], 1.0)
    with pytest.raises(ValueError, match="mechanism must be one of"):
        privacy.noise_scale("exponential", sensitivity=1.0, epsilon=1.0)
    with pytest.raises(ValueError, match="delta must be given"):
        privacy.noise_scale("gaussian", sensitivity=1.0, epsilon=1.0)


# --------------------------------------------------------------------------------------------
# Exact samplers, the grid, secret randomness by default
# --------------------------------------------------------------------------------------------

SAMPLER_DRAWS = 40_000


def _bits(seed: int):
    return _rep(seed)._mechanism_bits()


def _assert_frequencies_match(draws: np.ndarray, pmf: dict[int, float]) -> None:
    """Every listed value's frequency is within 5 binomial standard errors of its pmf."""
    for value, probability in pmf.items():
        observed = np.mean(draws == value)
        tolerance = 5 * math.sqrt(probability * (1 - probability) / draws.size) + 1e-12
        assert abs(observed - probability) <= tolerance, (value, observed, probability)


@pytest.mark.parametrize(("numerator", "denominator"), [(0, 1), (3, 10), (1, 1), (5, 2)])
def test_bernoulli_exp_minus_is_exact(numerator, denominator):
    bits = _bits(10)
    draws = np.array([privacy._bernoulli_exp_minus(numerator, denominator, bits)
                      for _ in range(SAMPLER_DRAWS)])
    _assert_frequencies_match(draws.astype(int), {1: math.exp(-numerator / denominator)})


@pytest.mark.parametrize(("scale_num", "scale_den"), [(1, 1), (5, 2), (7, 3)])
def test_discrete_laplace_matches_its_closed_form_pmf(scale_num, scale_den):
    # P[z] = (1 - e^(-1/t)) / (1 + e^(-1/t)) * e^(-|z|/t) with t = num / den.
    t = scale_num / scale_den
    bits = _bits(11)
    draws = np.array([privacy._discrete_laplace(scale_num, scale_den, bits)
                      for _ in range(SAMPLER_DRAWS)])
    norm = (1 - math.exp(-1 / t)) / (1 + math.exp(-1 / t))
    _assert_frequencies_match(draws, {z: norm * math.exp(-abs(z) / t) for z in range(-6, 7)})


@pytest.mark.parametrize("sigma_sq", [privacy.Fraction(1, 4), privacy.Fraction(2),
                                      privacy.Fraction(9)])
def test_discrete_gaussian_matches_its_closed_form_pmf(sigma_sq):
    bits = _bits(12)
    draws = np.array([privacy._discrete_gaussian(sigma_sq, bits) for _ in range(SAMPLER_DRAWS)])
    support = np.arange(-60, 61)
    weights = np.exp(-support.astype(float) ** 2 / (2 * float(sigma_sq)))
    pmf = weights / weights.sum()
    _assert_frequencies_match(draws, {int(z): p for z, p in zip(support, pmf, strict=True)
                                      if abs(z) <= 6})


def test_outputs_lie_on_the_power_of_two_grid():
    granularity = privacy.grid_granularity(sensitivity=1.0)
    assert granularity == 2.0**-40
    assert privacy.grid_granularity(sensitivity=3.0) == 2.0**-39
    outputs = privacy.gaussian_mechanism(np.full(200, 0.1), sensitivity=1.0, epsilon=1.0,
                                         delta=1e-5, randomness=_rep(0))
    steps = outputs / granularity
    np.testing.assert_array_equal(steps, np.round(steps))


def test_noise_is_secret_by_default_and_reproducible_only_on_request(monkeypatch):
    first = privacy.laplace_mechanism(np.zeros(5), sensitivity=1.0, epsilon=1.0)
    second = privacy.laplace_mechanism(np.zeros(5), sensitivity=1.0, epsilon=1.0)
    assert not np.array_equal(first, second)  # probability of equality: about 2^-200
    # The default draws from a fresh secret PrivateRandomness (OS entropy), and from nowhere
    # else.
    calls = []
    original = schedule.PrivateRandomness.secret
    monkeypatch.setattr(schedule.PrivateRandomness, "secret",
                        classmethod(lambda cls: calls.append(1) or original()))
    np.random.seed(0)  # noqa: NPY002 -- the legacy global state must stay untouched
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    privacy.gaussian_mechanism(np.zeros(3), sensitivity=1.0, epsilon=1.0, delta=1e-5)
    assert calls
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    calls.clear()
    a = privacy.gaussian_mechanism(np.zeros(3), sensitivity=1.0, epsilon=1.0, delta=1e-5,
                                   randomness=_rep(5))
    b = privacy.gaussian_mechanism(np.zeros(3), sensitivity=1.0, epsilon=1.0, delta=1e-5,
                                   randomness=_rep(5))
    np.testing.assert_array_equal(a, b)
    assert not calls


def test_laplace_spec_epsilon_is_exact_and_sensitivity_includes_rounding():
    spec = privacy.laplace_mechanism_spec(sensitivity=1.0, epsilon=0.5, size=10)
    assert spec.granularity == 2.0**-40 and spec.delta == 0.0 and spec.epsilon == 0.5
    assert spec.sensitivity_on_grid == 2**40 + 10  # rounding adds one grid step per entry
    assert spec.noise_scale == pytest.approx(2.0 * (1 + 10 * 2.0**-40), rel=1e-15)
    # Worst case over neighbouring rounded answers: ratio exp(m / t) = exp(epsilon).
    t = spec.noise_scale / spec.granularity
    assert spec.sensitivity_on_grid / t == pytest.approx(0.5, rel=1e-12)


def test_zcdp_delta_matches_dp_accounting_conversion():
    from dp_accounting.rdp import rdp_privacy_accountant as rdp

    orders = np.concatenate([1 + np.geomspace(1e-3, 1e3, 4000)])
    for rho, epsilon in [(0.03, 1.0), (0.5, 2.0), (0.001, 0.1), (2.0, 10.0)]:
        ours = privacy.zcdp_delta(rho=rho, epsilon=epsilon)
        reference, _ = rdp.compute_delta(orders, orders * rho, epsilon)
        assert ours <= reference * (1 + 1e-9)  # a continuous optimum is never worse
        assert ours == pytest.approx(reference, rel=1e-3)


@pytest.mark.parametrize(("epsilon", "delta"), [(0.1, 1e-5), (1.0, 1e-5), (10.0, 1e-9),
                                                (2.0, 1e-2)])
def test_gaussian_spec_delta_is_computed_and_sigma_is_the_rdp_accountant_one(epsilon, delta):
    spec = privacy.gaussian_mechanism_spec(sensitivity=1.0, epsilon=epsilon, delta=delta)
    assert 0 < spec.delta <= delta
    assert spec.delta == pytest.approx(delta, rel=1e-6)  # the smallest sigma that works
    # dp-accounting's RDP accountant for one Gaussian of the same multiplier agrees.
    z = spec.noise_scale / spec.granularity / spec.sensitivity_on_grid
    accountant = dp_accounting.rdp.RdpAccountant(
        orders=list(1 + np.geomspace(1e-3, 1e4, 3000)))
    accountant.compose(dp_accounting.GaussianDpEvent(z))
    assert accountant.get_delta(epsilon) == pytest.approx(spec.delta, rel=1e-2)
    # More noise than the continuous analytic Gaussian, but not much (the price of the proof).
    ratio = spec.noise_scale / privacy.gaussian_sigma(sensitivity=1.0, epsilon=epsilon,
                                                      delta=delta)
    assert 1.0 < ratio < 1.2


# --------------------------------------------------------------------------------------------
# The Mironov 2012 attack
# --------------------------------------------------------------------------------------------

MIRONOV_DRAWS = 3000


def test_mironov_replay_separates_naive_inputs_and_finds_nothing_on_the_helper():
    rng = np.random.default_rng(0)
    naive = 0.0 + rng.laplace(loc=0.0, scale=2.0, size=MIRONOV_DRAWS)  # notebook 01's sampler
    kwargs = {"sensitivity": 1.0, "epsilon": 0.5}
    # The replay is sound: every output is possible under the input that produced it ...
    assert not privacy.mironov_impossible_outputs(naive, other_input=0.0, sampler="naive",
                                                  **kwargs).any()
    # ... and most are impossible under the neighbour: those reveal the input with certainty.
    impossible = privacy.mironov_impossible_outputs(naive, other_input=1.0, sampler="naive",
                                                    **kwargs)
    assert impossible.sum() > MIRONOV_DRAWS // 2
    helper = privacy.laplace_mechanism(np.zeros(MIRONOV_DRAWS), randomness=_rep(0), **kwargs)
    assert not privacy.mironov_impossible_outputs(helper, other_input=1.0, sampler="helper",
                                                  **kwargs).any()
    # Not vacuous: outputs off the helper's grid are flagged.
    assert privacy.mironov_impossible_outputs(naive, other_input=1.0, sampler="helper",
                                              **kwargs).mean() > 0.99


def test_mironov_replay_reproduces_numpys_laplace_bit_for_bit():
    # Direct check of the replay model against numpy for a few draws.
    rng = np.random.default_rng(3)
    for _ in range(20):
        state = rng.bit_generator.state
        value = rng.laplace(0.0, 2.0)
        replay_rng = np.random.default_rng()
        replay_rng.bit_generator.state = state
        j = int(replay_rng.bit_generator.random_raw()) >> 11
        assert privacy._naive_output(j, 0.0, 2.0) == value


# --------------------------------------------------------------------------------------------
# Table-driven fuzz of every public function's arguments
# --------------------------------------------------------------------------------------------

_ANY_SCALAR_BAD = [float("nan"), float("inf"), float("-inf"), True, "1", None, 1 + 2j, [1.0],
                   10**400]
_BAD = {
    "positive": _ANY_SCALAR_BAD + [0.0, -1.0, -(10**400)],
    "non_negative": _ANY_SCALAR_BAD + [-1.0, -5e-324],
    "unit": _ANY_SCALAR_BAD + [0.0, 1.0, 1.5, -0.1],
    "real": _ANY_SCALAR_BAD,
    "half_open": _ANY_SCALAR_BAD + [-0.1, 1.0, 1.5],
    "count": [1.5, "3", None, True, -1, 2**64, 10**400, float("nan"), [3]],
    "array": ["abc", None, [np.nan], np.array([np.inf]), [1 + 2j], [10**400], {"a": 1},
              np.array([True])],
    "mechanism": ["exponential", None, 1, ["laplace"]],
    "sampler": ["fast", None, 1],
    "randomness": [0, "seed", np.random.RandomState(0), np.random.default_rng(0), 1.5],
    "bits": ["abc", None, [0.5], np.array([2]), [-1], [], np.zeros((2, 2), dtype=int),
             {"a": 1}, [1 + 2j]],
}
# Extreme but legal values: each call must return a finite answer or raise a clear error.
_EDGE = [1e-308, 5e-324, 2**64, 1e300, np.float32(0.5), np.int64(3)]

_SMALL = np.zeros(3)
FUZZ_TABLE = [
    (privacy.laplace_scale, {"sensitivity": 1.0, "epsilon": 1.0},
     {"sensitivity": "non_negative", "epsilon": "positive"}),
    (privacy.laplace_mechanism, {"value": _SMALL, "sensitivity": 1.0, "epsilon": 1.0},
     {"value": "array", "sensitivity": "non_negative", "epsilon": "positive",
      "randomness": "randomness"}),
    (privacy.grid_granularity, {"sensitivity": 1.0}, {"sensitivity": "positive"}),
    (privacy.laplace_mechanism_spec, {"sensitivity": 1.0, "epsilon": 1.0, "size": 3},
     {"sensitivity": "positive", "epsilon": "positive", "size": "count"}),
    (privacy.zcdp_delta, {"rho": 0.1, "epsilon": 1.0},
     {"rho": "positive", "epsilon": "non_negative"}),
    (privacy.gaussian_mechanism_spec, {"sensitivity": 1.0, "epsilon": 1.0, "delta": 1e-5},
     {"sensitivity": "positive", "epsilon": "positive", "delta": "unit", "size": "count"}),
    (privacy.gaussian_mechanism, {"value": _SMALL, "sensitivity": 1.0, "epsilon": 1.0,
                                  "delta": 1e-5},
     {"value": "array", "sensitivity": "non_negative", "epsilon": "positive", "delta": "unit",
      "randomness": "randomness"}),
    (privacy.classic_gaussian_sigma, {"sensitivity": 1.0, "epsilon": 1.0, "delta": 1e-5},
     {"sensitivity": "non_negative", "epsilon": "positive", "delta": "unit"}),
    (privacy.gaussian_delta, {"sigma": 1.0, "sensitivity": 1.0, "epsilon": 1.0},
     {"sigma": "positive", "sensitivity": "non_negative", "epsilon": "non_negative"}),
    (privacy.gaussian_sigma, {"sensitivity": 1.0, "epsilon": 1.0, "delta": 1e-5},
     {"sensitivity": "non_negative", "epsilon": "positive", "delta": "unit"}),
    (privacy.mironov_impossible_outputs, {"outputs": np.array([0.5]), "other_input": 1.0,
                                          "sensitivity": 1.0, "epsilon": 1.0,
                                          "sampler": "naive"},
     {"outputs": "array", "other_input": "real", "sensitivity": "positive",
      "epsilon": "positive", "sampler": "sampler"}),
    (privacy.clip_by_l2_norm, {"tensors": np.ones(3), "clipping_norm": 1.0},
     {"tensors": "array", "clipping_norm": "positive"}),
    (privacy.noise_scale, {"mechanism": "gaussian", "sensitivity": 1.0, "epsilon": 1.0,
                           "delta": 1e-5},
     {"mechanism": "mechanism", "sensitivity": "non_negative", "epsilon": "positive",
      "delta": "unit"}),
    (privacy.noise_pdf, {"x": np.zeros(3), "mechanism": "laplace", "sensitivity": 1.0,
                         "epsilon": 1.0},
     {"x": "array", "mechanism": "mechanism", "sensitivity": "positive",
      "epsilon": "positive"}),
    (privacy.expected_absolute_error, {"mechanism": "laplace", "sensitivity": 1.0,
                                       "epsilon": 1.0},
     {"mechanism": "mechanism", "sensitivity": "non_negative", "epsilon": "positive"}),
    (privacy.error_interval_half_width, {"mechanism": "laplace", "sensitivity": 1.0,
                                         "epsilon": 1.0, "level": 0.95},
     {"mechanism": "mechanism", "sensitivity": "non_negative", "epsilon": "positive",
      "level": "unit"}),
    (privacy.noisy_answer_summary, {"true_answer": 10.0, "mechanism": "gaussian",
                                    "sensitivity": 1.0, "epsilon": 1.0, "delta": 1e-5},
     {"true_answer": "real", "mechanism": "mechanism", "sensitivity": "non_negative",
      "epsilon": "positive", "delta": "unit"}),
    (privacy.randomized_response_epsilon, {"truth_probability": 0.75},
     {"truth_probability": "unit"}),
    (privacy.randomized_response, {"answers": np.array([0, 1]), "truth_probability": 0.75},
     {"answers": "bits", "truth_probability": "unit", "randomness": "randomness"}),
    (privacy.randomized_response_estimate, {"reports": np.array([0, 1]),
                                            "truth_probability": 0.75},
     {"reports": "bits", "truth_probability": "unit"}),
    (privacy.group_privacy, {"epsilon": 1.0, "delta": 1e-5, "group_size": 3},
     {"epsilon": "non_negative", "delta": "half_open", "group_size": "count"}),
    (privacy.exponential_mechanism, {"scores": np.array([1.0, 3.0]), "sensitivity": 1.0,
                                     "epsilon": 1.0},
     {"scores": "array", "sensitivity": "positive", "epsilon": "positive",
      "randomness": "randomness"}),
    (privacy.exponential_mechanism_probabilities, {"scores": np.array([1.0, 3.0]),
                                                   "sensitivity": 1.0, "epsilon": 1.0},
     {"scores": "array", "sensitivity": "positive", "epsilon": "positive"}),
    (privacy.private_quantile, {"values": np.array([1.0, 2.0]), "quantile": 0.5,
                                "candidates": np.linspace(0.0, 3.0, 4), "epsilon": 1.0},
     {"values": "array", "quantile": "unit", "candidates": "array", "epsilon": "positive",
      "randomness": "randomness"}),
]
_POSITIONAL = {"value", "tensors", "clipping_norm", "x", "mechanism", "true_answer",
               "outputs", "answers", "reports", "scores", "values"}


def _call(function, kwargs):
    positional = [kwargs[name] for name in function.__code__.co_varnames
                  [:function.__code__.co_argcount] if name in kwargs]
    keywords = {k: val for k, val in kwargs.items() if k not in _POSITIONAL}
    return function(*positional, **keywords)


def _fuzz_cases():
    for function, valid, arguments in FUZZ_TABLE:
        for argument, kind in arguments.items():
            for index, bad in enumerate(_BAD[kind]):
                yield pytest.param(function, valid, argument, bad,
                                   id=f"{function.__name__}-{argument}-{index}")


def test_fuzz_table_covers_every_public_function():
    public = {name for name, obj in vars(privacy).items()
              if callable(obj) and not name.startswith("_") and not isinstance(obj, type)
              and getattr(obj, "__module__", "") == privacy.__name__}
    # The one unchecked internal fast path (the norm every clip calls after its own checks),
    # listed with its reason in tests/test_bad_inputs.py's UNCHECKED.
    public -= {"l2_norm_unchecked"}
    assert public == {function.__name__ for function, _, _ in FUZZ_TABLE}


@pytest.mark.parametrize(("function", "valid", "argument", "bad"), list(_fuzz_cases()))
def test_every_bad_argument_gets_a_clear_error(function, valid, argument, bad):
    _call(function, valid)  # the valid call works
    kwargs = dict(valid, **{argument: bad})
    with pytest.raises((ValueError, TypeError)) as caught:
        _call(function, kwargs)
    assert argument in str(caught.value), f"message does not name {argument}: {caught.value}"


@pytest.mark.parametrize(("function", "valid", "arguments"), FUZZ_TABLE,
                         ids=[function.__name__ for function, _, _ in FUZZ_TABLE])
def test_extreme_legal_values_give_an_answer_or_a_clear_error(function, valid, arguments):
    for argument, kind in arguments.items():
        if kind not in ("positive", "non_negative", "real", "unit"):
            continue
        for edge in _EDGE:
            kwargs = dict(valid, **{argument: edge})
            try:
                result = _call(function, kwargs)
            except (ValueError, TypeError) as error:
                assert argument in str(error) or "epsilon" in str(error), (argument, edge, error)
                continue
            values = (result if isinstance(result, tuple) else tuple(result.values())
                      if isinstance(result, dict) else (result,))
            for value in values:
                if isinstance(value, privacy.DiscretisedMechanism):
                    value = (value.noise_scale, value.delta)
                array = np.asarray(value, dtype=float) if not isinstance(
                    value, (bool, np.bool_)) else np.asarray(0.0)
                assert np.all(np.isfinite(array)), (function.__name__, argument, edge, result)


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_integers_beyond_float64_precision_are_refused(mechanism):
    """Attack: two neighbouring counts above 2**53 (sensitivity 1). Converted to float64 they
    round apart by 2 (2**53 + 2 -> 2**53 + 2, 2**53 + 3 -> 2**53 + 4), twice the sensitivity
    the noise is calibrated to, so the release's epsilon doubles (256 times at 2**60). The
    mechanisms refuse such integers instead of rounding them."""
    low, high = 2**53 + 2, 2**53 + 3
    assert float(high) - float(low) == 2.0  # the rounding the attack exploits
    release = (privacy.laplace_mechanism if mechanism == "laplace" else
               functools.partial(privacy.gaussian_mechanism, delta=1e-6))
    for value in (high, np.int64(2**60), [0, 2**62], 10**400):
        with pytest.raises(ValueError, match=r"value must hold integers of magnitude at most "
                                             r"2\*\*53"):
            release(value, sensitivity=1.0, epsilon=1.0)
    exact = release(np.array([2**53, -(2**53)]), sensitivity=1.0, epsilon=1.0)
    assert np.all(np.abs(np.abs(exact) - 2**53) < 1e3)  # 2**53 itself is exact: accepted


# --------------------------------------------------------------------------------------------
# Randomized response, group privacy, the exponential mechanism, a private quantile
# --------------------------------------------------------------------------------------------

RR_DRAWS = 40_000


@pytest.mark.parametrize("p", [0.75, 0.7, 0.55])
def test_randomized_response_keeps_the_truth_with_probability_p(p):
    # Binomial standard error sqrt(p (1 - p) / n) <= 0.0025; tolerance 5 of them (0.0125),
    # far below the 0.05 gap between the three p's. 0.7 is not dyadic: its float is used exactly.
    truth = np.tile([0, 1], RR_DRAWS // 2)
    reports = privacy.randomized_response(truth, truth_probability=p,
                                          randomness=_rep(11))
    assert set(np.unique(reports)) <= {0, 1} and reports.dtype == np.int64
    for bit in (0, 1):
        kept = np.mean(reports[truth == bit] == bit)
        assert abs(kept - p) < 5 * math.sqrt(p * (1 - p) / (RR_DRAWS / 2))
    assert privacy.randomized_response_epsilon(truth_probability=p) == pytest.approx(
        math.log(p / (1 - p)), rel=1e-12)


def test_randomized_response_audit_refutes_a_broken_coin_and_not_the_real_one():
    """Attack: the observer sees one person's report and guesses their bit (event "report is
    1"). The audit's Clopper-Pearson lower bound on epsilon stays below ln 3 for the real
    p = 3/4 and exceeds it for a broken variant that tells the truth with probability 0.95
    while claiming p = 3/4 (its true epsilon is ln 19 = 2.94)."""
    claimed = privacy.randomized_response_epsilon(truth_probability=0.75)
    n = 20_000

    def reports(bit, p, seed):
        return privacy.randomized_response(np.full(n, bit), truth_probability=p,
                                           randomness=_rep(seed))

    real = audit.empirical_epsilon_lower_bound(reports(0, 0.75, 1), reports(1, 0.75, 2),
                                               threshold=0.5)
    broken = audit.empirical_epsilon_lower_bound(reports(0, 0.95, 3), reports(1, 0.95, 4),
                                                 threshold=0.5)
    assert 0.9 < real <= claimed  # tight: ln 3 up to the interval's width
    assert broken > claimed + 1.0


def test_randomized_response_estimate_is_unbiased_with_the_closed_form_variance():
    # 400 surveys of 500 people, true share 0.2, p = 0.75: the estimate's variance is
    # pi (1 - pi) / (n (2p - 1)^2) with pi = 0.75 * 0.2 + 0.25 * 0.8 = 0.35 (0.00364, sd 0.060).
    n, share, p, surveys = 500, 0.2, 0.75, 400
    truth = np.r_[np.ones(int(share * n), int), np.zeros(n - int(share * n), int)]
    rng = _rep(12)
    estimates = np.array([privacy.randomized_response_estimate(
        privacy.randomized_response(truth, truth_probability=p, randomness=rng),
        truth_probability=p) for _ in range(surveys)])
    pi = p * share + (1 - p) * (1 - share)
    variance = pi * (1 - pi) / (n * (2 * p - 1) ** 2)
    assert abs(estimates.mean() - share) < 4 * math.sqrt(variance / surveys)
    assert estimates.var() == pytest.approx(variance, rel=0.2)  # sd of the ratio ~ 0.07


def test_randomized_response_is_secret_by_default():
    truth = np.zeros(256, int)
    first = privacy.randomized_response(truth, truth_probability=0.75)
    second = privacy.randomized_response(truth, truth_probability=0.75)
    assert not np.array_equal(first, second)  # equal with probability (5/8)^256
    seeded = [privacy.randomized_response(truth, truth_probability=0.75,
                                          randomness=_rep(5))
              for _ in range(2)]
    np.testing.assert_array_equal(*seeded)


def test_group_privacy_matches_the_chain_bound():
    eps, delta = 1.0, 1e-5
    assert privacy.group_privacy(epsilon=eps, delta=delta, group_size=1) == (eps, delta)
    for k in (2, 3, 10):
        group_eps, group_delta = privacy.group_privacy(epsilon=eps, delta=delta, group_size=k)
        assert group_eps == k * eps
        assert group_delta == pytest.approx(delta * sum(math.exp(j * eps) for j in range(k)),
                                            rel=1e-12)
        assert group_delta <= k * math.exp((k - 1) * eps) * delta
    assert privacy.group_privacy(epsilon=0.0, delta=delta, group_size=4) == pytest.approx(
        (0.0, 4 * delta), rel=1e-12)
    assert privacy.group_privacy(epsilon=0.5, delta=0.0, group_size=7) == (3.5, 0.0)
    assert privacy.group_privacy(epsilon=5.0, delta=1e-5, group_size=100)[1] == 1.0  # capped


def test_group_privacy_is_tight_for_randomized_response_of_k_bits():
    # A person answers k questions by randomized response at p = 3/4 each (ln 3 each).
    # Flipping all k bits changes the report "all truthful" by exactly 3^k = e^(k eps).
    p, k = 0.75, 4
    eps = privacy.randomized_response_epsilon(truth_probability=p)
    ratio = (p / (1 - p)) ** k
    assert math.log(ratio) == pytest.approx(
        privacy.group_privacy(epsilon=eps, delta=0.0, group_size=k)[0], rel=1e-12)


def _max_log_ratio(p0, p1):
    return float(np.max(np.abs(np.log(p0) - np.log(p1))))


def test_exponential_mechanism_samples_its_closed_form():
    # 20,000 draws, chi-square goodness of fit against the softmax; a sampler that forgets
    # the factor 2 (epsilon s / sensitivity) puts 0.47 instead of 0.31 on the best candidate.
    scores = np.array([10.0, 12.0, 11.0, 7.0, 12.5])
    probs = privacy.exponential_mechanism_probabilities(scores, sensitivity=1.0, epsilon=0.8)
    expected = np.exp(0.4 * scores) / np.exp(0.4 * scores).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-12)
    rng = _rep(13)
    draws = [privacy.exponential_mechanism(scores, sensitivity=1.0, epsilon=0.8,
                                           randomness=rng) for _ in range(20_000)]
    observed = np.bincount(draws, minlength=scores.size)
    assert stats.chisquare(observed, 20_000 * probs).pvalue > 0.001


def test_exponential_mechanism_likelihood_ratio_attack():
    """Attack: neighbours move one score up and another down by the sensitivity (a score that
    is not monotone). The worst likelihood ratio of any output is at most e^epsilon for the
    mechanism and e^(2 epsilon) for the broken variant without the factor 2 (which is what
    passing 2 epsilon does); the sampler's empirical frequencies on both datasets match."""
    eps = 1.0
    d0 = np.array([0.0, 5.0, 5.0, 5.0, 5.0])
    d1 = d0 + np.array([1.0, -1.0, -1.0, -1.0, -1.0])
    real = _max_log_ratio(privacy.exponential_mechanism_probabilities(d0, sensitivity=1,
                                                                       epsilon=eps),
                          privacy.exponential_mechanism_probabilities(d1, sensitivity=1,
                                                                      epsilon=eps))
    broken = _max_log_ratio(privacy.exponential_mechanism_probabilities(d0, sensitivity=1,
                                                                         epsilon=2 * eps),
                            privacy.exponential_mechanism_probabilities(d1, sensitivity=1,
                                                                        epsilon=2 * eps))
    assert real <= eps + 1e-12
    assert broken > 1.5 * eps
    rng = _rep(14)
    picks = np.array([privacy.exponential_mechanism(d1, sensitivity=1, epsilon=eps,
                                                    randomness=rng)
                      for _ in range(20_000)])
    first = privacy.exponential_mechanism_probabilities(d1, sensitivity=1, epsilon=eps)[0]
    assert abs(np.mean(picks == 0) - first) < 5 * math.sqrt(first * (1 - first) / 20_000)


def test_exponential_mechanism_handles_extreme_scores_exactly():
    scores = np.array([0.0, -1e300, 1e300, -5e-324])
    rng = _rep(15)
    assert privacy.exponential_mechanism(scores, sensitivity=1.0, epsilon=1.0,
                                         randomness=rng) == 2
    probs = privacy.exponential_mechanism_probabilities(scores, sensitivity=1e-300,
                                                        epsilon=1e300)
    assert np.all(np.isfinite(probs)) and probs[2] == 1.0
    # A tie is a fair coin.
    picks = [privacy.exponential_mechanism(np.array([3.0, 3.0]), sensitivity=1.0,
                                           epsilon=50.0, randomness=rng)
             for _ in range(4000)]
    assert abs(np.mean(picks) - 0.5) < 5 * math.sqrt(0.25 / 4000)


def _quantile_probabilities(values, quantile, grid, epsilon):
    counts = np.array([(values <= g).sum() for g in grid])
    scores = -np.abs(counts - quantile * len(values))
    return privacy.exponential_mechanism_probabilities(scores, sensitivity=1.0, epsilon=epsilon)


def test_private_quantile_samples_the_exponential_mechanism_on_rank_error():
    rng = np.random.default_rng(16)
    private_rng = _rep(16)
    values = rng.normal(0.0, 1.0, 40)
    grid = np.linspace(-2.0, 2.0, 9)
    probs = _quantile_probabilities(values, 0.25, grid, 0.5)
    draws = [privacy.private_quantile(values, quantile=0.25, candidates=grid, epsilon=0.5,
                                      randomness=private_rng) for _ in range(10_000)]
    observed = np.array([np.sum(np.array(draws) == g) for g in grid])
    assert observed.sum() == 10_000
    expected = 10_000 * probs
    keep = expected > 5  # chi-square needs expected counts of 5 or more
    assert stats.chisquare(observed[keep], expected[keep] * observed[keep].sum()
                           / expected[keep].sum()).pvalue > 0.001


def test_private_quantile_has_sensitivity_one_under_both_relations():
    """Attack: every neighbour of a small dataset (one value added, removed or replaced, at the
    grid points and between them): the worst likelihood ratio of any output stays within
    e^epsilon, while a variant whose scores count ``2 * #{x <= g}`` (sensitivity 2, claimed 1)
    exceeds it."""
    eps = 1.0
    values = np.array([0.3, 1.2, 1.7, 2.5, 3.1, 3.9])
    grid = np.linspace(0.0, 4.0, 9)
    base = _quantile_probabilities(values, 0.5, grid, eps)
    worst = 0.0
    others = np.linspace(-0.5, 4.5, 21)
    neighbours = ([np.append(values, x) for x in others]
                  + [np.delete(values, i) for i in range(values.size)]
                  + [np.where(np.arange(values.size) == i, x, values)
                     for i in range(values.size) for x in others])
    for neighbour in neighbours:
        worst = max(worst, _max_log_ratio(base, _quantile_probabilities(neighbour, 0.5, grid,
                                                                        eps)))
    assert worst <= eps + 1e-12

    def doubled(data):
        counts = np.array([(data <= g).sum() for g in grid])
        return privacy.exponential_mechanism_probabilities(
            -np.abs(2 * counts - data.size), sensitivity=1.0, epsilon=eps)

    assert max(_max_log_ratio(doubled(values), doubled(n)) for n in neighbours) > eps + 0.2


def test_private_quantile_is_accurate_with_enough_data():
    rng = np.random.default_rng(17)
    private_rng = _rep(17)
    values = rng.normal(9.0, 2.0, 1000)
    grid = np.round(np.arange(0.0, 20.05, 0.1), 1)
    for quantile in (0.1, 0.5, 0.9):
        estimate = privacy.private_quantile(values, quantile=quantile, candidates=grid,
                                            epsilon=1.0, randomness=private_rng)
        assert abs(estimate - np.quantile(values, quantile)) < 0.3
    # Secret by default, and the grid must be sorted.
    assert privacy.private_quantile(values, quantile=0.5, candidates=grid, epsilon=1.0) in grid
    with pytest.raises(ValueError, match="candidates must be strictly increasing"):
        privacy.private_quantile(values, quantile=0.5, candidates=grid[::-1], epsilon=1.0)


def test_the_one_l2_norm_neither_overflows_nor_underflows_and_the_clip_stays_within_c():
    """privacy.l2_norm_unchecked is the course's one norm (issue 25): clip_by_l2_norm,
    aggregation.update_norm and attacks.clip_and_noise all use it. Where the naive
    sqrt(sum(x * x)) overflows to inf (entries near 1e200) or underflows to 0 (near 1e-200),
    it stays exact, and the clip still lands inside the ball of radius C."""
    from fl_helpers import aggregation, attacks

    for scale in (1e200, 1e-200, 1.0):
        update = [np.full(3, 3.0 * scale), np.full(4, 4.0 * scale) / 2.0]  # ||.|| = sqrt(43) s
        expected = math.sqrt(27.0 + 16.0) * scale
        naive = math.sqrt(sum(float(np.sum(u * u)) for u in update))
        if scale != 1.0:
            assert naive in (math.inf, 0.0)  # what the old attacks.clip_and_noise computed
        for norm in (privacy.l2_norm_unchecked(update), aggregation.update_norm(update),
                     privacy.clip_by_l2_norm(update, 1.0)[1]):
            assert norm == pytest.approx(expected, rel=1e-15)
        for clipping_norm in (0.5, 0.5 * scale, 100.0 * scale):
            clipped, _ = privacy.clip_by_l2_norm(update, clipping_norm)
            assert privacy.l2_norm_unchecked(clipped) <= clipping_norm * (1 + 1e-15)
            noised = attacks.clip_and_noise(update, clipping_norm=clipping_norm,
                                            noise_multiplier=0.0, rng=np.random.default_rng(0))
            for a, b in zip(noised, clipped, strict=True):
                np.testing.assert_array_equal(a, b)
            assert privacy.l2_norm_unchecked(noised) > 0  # not the zeros an inf norm gave
    assert privacy.l2_norm_unchecked([]) == 0.0
    assert privacy.l2_norm_unchecked([np.zeros(3), np.zeros((0,))]) == 0.0
