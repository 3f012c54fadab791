"""Tests of fl_helpers.privacy: noise scales, analytic Gaussian calibration, clipping, an audit.

Statistical tests use a fixed seed and enough draws that the tolerance is several standard
errors wide (so they do not flake) yet far narrower than the error they must catch (a scale that
forgets the sensitivity, or is off by a factor of two).
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from scipy import stats

from fl_helpers import privacy

# --------------------------------------------------------------------------------------------
# Laplace mechanism
# --------------------------------------------------------------------------------------------

NUM_DRAWS = 200_000


def test_laplace_noise_has_scale_sensitivity_over_epsilon():
    # b = 2 / 0.5 = 4, variance 2 b^2 = 32. Relative standard error of the sample variance of
    # Laplace noise is sqrt(5 / n) = 0.5% here; the tolerance of 3% is six of them, while the
    # "1 / epsilon" pitfall (b = 2, variance 8) is off by a factor of 4.
    rng = np.random.default_rng(1)
    noisy = privacy.laplace_mechanism(np.full(NUM_DRAWS, 10.0), sensitivity=2.0, epsilon=0.5,
                                      rng=rng)
    noise = noisy - 10.0
    assert np.var(noise) == pytest.approx(32.0, rel=0.03)
    assert np.mean(np.abs(noise)) == pytest.approx(4.0, rel=0.02)  # E|X| = b
    assert abs(np.mean(noise)) < 5 * math.sqrt(32.0 / NUM_DRAWS)
    # The whole distribution, not just two moments.
    assert stats.kstest(noise, stats.laplace(scale=4.0).cdf).pvalue > 0.001


def test_laplace_mechanism_scalar_and_array_shapes_and_seed():
    scalar = privacy.laplace_mechanism(3, sensitivity=1.0, epsilon=1.0,
                                       rng=np.random.default_rng(0))
    assert isinstance(scalar, float)
    array = privacy.laplace_mechanism(np.zeros((2, 3)), sensitivity=1.0, epsilon=1.0,
                                      rng=np.random.default_rng(0))
    assert array.shape == (2, 3)
    again = privacy.laplace_mechanism(np.zeros((2, 3)), sensitivity=1.0, epsilon=1.0,
                                      rng=np.random.default_rng(0))
    np.testing.assert_array_equal(array, again)
    # Independent noise on every element.
    assert len(np.unique(array)) == 6
    # Zero sensitivity: nothing to hide, no noise.
    assert privacy.laplace_mechanism(2.5, sensitivity=0.0, epsilon=1.0,
                                     rng=np.random.default_rng(0)) == 2.5


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
    # Relative standard error of the sample variance is sqrt(2 / n) = 0.32%; tolerance 2%.
    sigma = privacy.gaussian_sigma(sensitivity=2.0, epsilon=1.0, delta=1e-5)
    noisy = privacy.gaussian_mechanism(np.zeros(NUM_DRAWS), sensitivity=2.0, epsilon=1.0,
                                       delta=1e-5, rng=np.random.default_rng(2))
    assert np.var(noisy) == pytest.approx(sigma**2, rel=0.02)
    assert stats.kstest(noisy, stats.norm(scale=sigma).cdf).pvalue > 0.001
    again = privacy.gaussian_mechanism(np.zeros(NUM_DRAWS), sensitivity=2.0, epsilon=1.0,
                                       delta=1e-5, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(noisy, again)
    assert isinstance(privacy.gaussian_mechanism(1.0, sensitivity=1.0, epsilon=1.0, delta=1e-5,
                                                 rng=np.random.default_rng(0)), float)


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
    return privacy.empirical_epsilon_lower_bound(outputs_0, outputs_1, threshold=AUDIT_THRESHOLD,
                                                 confidence=AUDIT_CONFIDENCE)


def test_audit_does_not_refute_correct_laplace_mechanism():
    # The mechanism itself, to make sure the helper's noise is what is audited.
    rng = np.random.default_rng(4)
    outputs_0 = privacy.laplace_mechanism(np.zeros(AUDIT_DRAWS), sensitivity=1.0,
                                          epsilon=AUDIT_EPSILON, rng=rng)
    outputs_1 = privacy.laplace_mechanism(np.ones(AUDIT_DRAWS), sensitivity=1.0,
                                          epsilon=AUDIT_EPSILON, rng=rng)
    bound = privacy.empirical_epsilon_lower_bound(outputs_0, outputs_1, threshold=AUDIT_THRESHOLD,
                                                  confidence=AUDIT_CONFIDENCE)
    # Not vacuous: at this threshold the true ratio is exactly e^eps, so the bound comes close.
    assert 0.9 < bound <= AUDIT_EPSILON
    assert 0.9 < _audit(1.0, seed=5) <= AUDIT_EPSILON


def test_audit_flags_mechanism_with_halved_noise_scale():
    bound = _audit(0.5, seed=6)  # really 2-DP while claiming 1-DP
    assert bound > AUDIT_EPSILON
    assert bound == pytest.approx(2.0, abs=0.1)


def test_audit_of_gaussian_mechanism_with_delta():
    epsilon, delta = 1.0, 1e-5
    sigma = privacy.gaussian_sigma(sensitivity=1.0, epsilon=epsilon, delta=delta)
    rng = np.random.default_rng(7)
    threshold = 5.0  # fixed in advance, in the tail where the likelihood ratio is large
    correct = privacy.empirical_epsilon_lower_bound(
        rng.normal(0.0, sigma, AUDIT_DRAWS), rng.normal(1.0, sigma, AUDIT_DRAWS),
        threshold=threshold, delta=delta)
    broken = privacy.empirical_epsilon_lower_bound(
        rng.normal(0.0, sigma / 2, AUDIT_DRAWS), rng.normal(1.0, sigma / 2, AUDIT_DRAWS),
        threshold=threshold, delta=delta)
    assert correct <= epsilon
    assert broken > epsilon


def test_clopper_pearson_matches_scipy_exact_interval():
    for successes, trials in [(0, 10), (3, 10), (10, 10), (1234, 100_000), (50, 51)]:
        expected = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.9,
                                                                     method="exact")
        low, high = privacy.clopper_pearson_interval(successes, trials, confidence=0.9)
        assert low == pytest.approx(expected.low, abs=1e-12)
        assert high == pytest.approx(expected.high, abs=1e-12)


# --------------------------------------------------------------------------------------------
# What the widget shows
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_expected_error_and_interval_match_simulation(mechanism):
    kwargs = {"sensitivity": 2.0, "epsilon": 0.7, "delta": 1e-5}
    rng = np.random.default_rng(8)
    if mechanism == "laplace":
        noise = privacy.laplace_mechanism(np.zeros(NUM_DRAWS), sensitivity=2.0, epsilon=0.7,
                                          rng=rng)
    else:
        noise = privacy.gaussian_mechanism(np.zeros(NUM_DRAWS), rng=rng, **kwargs)
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
    sigma = privacy.gaussian_sigma(sensitivity=1.0, epsilon=0.1, delta=1e-5)
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

RNG = np.random.default_rng(0)
BAD_EPSILON = [0.0, -1.0, float("nan"), float("inf")]
BAD_SENSITIVITY = [-1.0, float("nan"), float("inf")]
BAD_DELTA = [0.0, 1.0, -0.1, 1.5, float("nan")]


@pytest.mark.parametrize("epsilon", BAD_EPSILON)
def test_bad_epsilon_rejected_everywhere(epsilon):
    calls = [
        lambda: privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=epsilon, rng=RNG),
        lambda: privacy.gaussian_mechanism(1.0, sensitivity=1.0, epsilon=epsilon, delta=1e-5,
                                           rng=RNG),
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
        lambda: privacy.laplace_mechanism(1.0, sensitivity=sensitivity, epsilon=1.0, rng=RNG),
        lambda: privacy.gaussian_mechanism(1.0, sensitivity=sensitivity, epsilon=1.0,
                                           delta=1e-5, rng=RNG),
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
        privacy.gaussian_mechanism(0.0, sensitivity=1.0, epsilon=1.0, delta=delta, rng=RNG)


@pytest.mark.parametrize("clipping_norm", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_clipping_norm_rejected(clipping_norm):
    with pytest.raises(ValueError, match=r"clipping_norm must be"):
        privacy.clip_by_l2_norm(np.ones(3), clipping_norm)


def test_error_messages_name_argument_and_value():
    with pytest.raises(ValueError, match=r"^epsilon must be > 0, got 0.0\.$"):
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=0, rng=RNG)
    with pytest.raises(ValueError, match=r"^delta must be in \(0, 1\), got 1.0\.$"):
        privacy.gaussian_sigma(sensitivity=1.0, epsilon=1.0, delta=1)


def test_other_bad_inputs():
    with pytest.raises(TypeError, match="rng"):
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon=1.0, rng=0)
    with pytest.raises(TypeError, match="epsilon"):
        privacy.laplace_mechanism(1.0, sensitivity=1.0, epsilon="1", rng=RNG)
    with pytest.raises(ValueError, match="value must be finite"):
        privacy.laplace_mechanism(np.array([1.0, np.nan]), sensitivity=1.0, epsilon=1.0, rng=RNG)
    with pytest.raises(ValueError, match="finite"):
        privacy.clip_by_l2_norm(np.array([np.inf]), 1.0)
    with pytest.raises(ValueError, match="at least one"):
        privacy.clip_by_l2_norm([], 1.0)
    with pytest.raises(ValueError, match="mechanism must be one of"):
        privacy.noise_scale("exponential", sensitivity=1.0, epsilon=1.0)
    with pytest.raises(ValueError, match="delta must be given"):
        privacy.noise_scale("gaussian", sensitivity=1.0, epsilon=1.0)
    with pytest.raises(ValueError, match="successes must be <= 10"):
        privacy.clopper_pearson_interval(11, 10)
