"""Noise mechanisms for differential privacy, their calibration, and L2 clipping.

Everything the course adds noise with lives here:

* :func:`laplace_mechanism` -- epsilon-DP for a query with L1 sensitivity ``sensitivity``
  (Dwork & Roth 2014, "The Algorithmic Foundations of Differential Privacy", Section 3.3,
  Definition 3.3 and Theorem 3.6): Laplace noise of scale ``sensitivity / epsilon``.
* :func:`gaussian_mechanism` with :func:`gaussian_sigma` -- (epsilon, delta)-DP for a query with L2
  sensitivity ``sensitivity``, calibrated exactly with the analytic Gaussian mechanism of
  Balle & Wang 2018, "Improving the Gaussian Mechanism for Differential Privacy: Analytical
  Calibration and Optimal Denoising", Theorem 8. It is valid for every epsilon > 0.
  :func:`classic_gaussian_sigma` is the textbook bound (Dwork & Roth 2014, Theorem A.1), which
  is only proven for epsilon < 1; it is kept to show that pitfall.
* :func:`clip_by_l2_norm` -- bounds the L2 sensitivity of a sum of vectors (or of model updates)
  by scaling each one down to norm at most ``clipping_norm``.

Plus the plain functions the notebook widget and the tests share (:func:`noise_scale`,
:func:`noise_pdf`, :func:`expected_absolute_error`, :func:`error_interval_half_width`,
:func:`noisy_answer_summary`) and a small empirical audit (:func:`clopper_pearson_interval`,
:func:`empirical_epsilon_lower_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special, stats

from fl_helpers import _validation as v

#: The mechanisms :func:`noise_scale` and friends know, by the name the widget uses.
MECHANISMS: tuple[str, ...] = ("laplace", "gaussian")


# --------------------------------------------------------------------------------------------
# Laplace mechanism
# --------------------------------------------------------------------------------------------

def laplace_scale(*, sensitivity: float, epsilon: float) -> float:
    """The Laplace scale ``b = sensitivity / epsilon`` that makes a query epsilon-DP.

    Dwork & Roth 2014, Theorem 3.6: adding Laplace(b) noise with ``b = Delta_1 / epsilon`` to a
    query of L1 sensitivity ``Delta_1`` gives epsilon-differential privacy.

    Args:
        sensitivity: L1 sensitivity of the query, >= 0 (same units as the answer).
        epsilon: Privacy parameter, > 0.

    Returns:
        The scale ``b`` (the noise has standard deviation ``sqrt(2) * b``).

    Raises:
        ValueError: If ``sensitivity`` is negative or not finite, or ``epsilon`` <= 0 or not finite.
        TypeError: If an argument is not a real number.
    """
    sensitivity = v.check_non_negative("sensitivity", sensitivity)
    epsilon = v.check_positive("epsilon", epsilon)
    return sensitivity / epsilon


def laplace_mechanism(value: float | np.ndarray, *, sensitivity: float, epsilon: float,
                      rng: np.random.Generator) -> float | np.ndarray:
    """Releases ``value`` with epsilon-DP by adding independent Laplace noise to every element.

    The noise scale is ``sensitivity / epsilon`` (Dwork & Roth 2014, Definition 3.3 and
    Theorem 3.6), where ``sensitivity`` is the L1 sensitivity of the whole (vector) query.

    Args:
        value: The exact answer: a real number or a numpy array of them.
        sensitivity: L1 sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0.
        rng: Source of randomness, e.g. ``np.random.default_rng(0)``.

    Returns:
        A float if ``value`` is a scalar, otherwise a float64 array of the same shape.

    Raises:
        ValueError: If ``sensitivity`` < 0, ``epsilon`` <= 0, either is not finite, or ``value``
            holds NaN or inf.
        TypeError: If ``rng`` is not a ``numpy.random.Generator`` or ``value`` is not numeric.
    """
    scale = laplace_scale(sensitivity=sensitivity, epsilon=epsilon)
    rng = v.check_rng("rng", rng)
    array = _check_value(value)
    noisy = array + rng.laplace(loc=0.0, scale=scale, size=array.shape)
    return float(noisy) if array.ndim == 0 else noisy


def _check_value(value: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"value must be a real number or a numeric array, got {type(value).__name__}."
        ) from error
    if not np.all(np.isfinite(array)):
        raise ValueError("value must be finite, got an entry that is NaN or inf.")
    return array


# --------------------------------------------------------------------------------------------
# Gaussian mechanism
# --------------------------------------------------------------------------------------------

def classic_gaussian_sigma(*, sensitivity: float, epsilon: float, delta: float) -> float:
    """The textbook bound ``sigma = sqrt(2 ln(1.25 / delta)) * sensitivity / epsilon``.

    Dwork & Roth 2014, Theorem A.1. Pitfall: that theorem is only proven for epsilon < 1. For
    larger epsilon this sigma can be too small (for epsilon = 10, delta = 1e-5 the mechanism is
    only (10, 2.3e-5)-DP), and for small epsilon it adds more noise than needed. Use
    :func:`gaussian_sigma` instead; this function exists to show the difference.

    Args:
        sensitivity: L2 sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0 (the bound is only valid below 1).
        delta: Privacy parameter in (0, 1).

    Returns:
        The classic noise standard deviation.

    Raises:
        ValueError: If an argument is outside its range or not finite.
    """
    sensitivity = v.check_non_negative("sensitivity", sensitivity)
    epsilon = v.check_positive("epsilon", epsilon)
    delta = v.check_open_unit("delta", delta)
    return math.sqrt(2.0 * math.log(1.25 / delta)) * sensitivity / epsilon


def _log_gaussian_delta(sigma: float, sensitivity: float, epsilon: float) -> float:
    """log of the exact delta of the Gaussian mechanism (Balle & Wang 2018, Theorem 8).

    delta(sigma) = Phi(D/(2 s) - e s / D) - exp(e) * Phi(-D/(2 s) - e s / D), with D the
    sensitivity, s = sigma and e = epsilon. Computed as log Phi(a) + log1p(-exp(t)) with
    t = e + log Phi(-b) - log Phi(a) <= 0, so the difference keeps its relative precision even
    when both terms are tiny and nearly equal, and exp(epsilon) never overflows.
    """
    ratio = sensitivity / sigma
    a = 0.5 * ratio - epsilon / ratio
    b = 0.5 * ratio + epsilon / ratio
    log_first = float(special.log_ndtr(a))
    log_second = epsilon + float(special.log_ndtr(-b))
    if log_second >= log_first:  # only by rounding: the exact difference is >= 0
        return -math.inf
    return log_first + math.log1p(-math.exp(log_second - log_first))


def gaussian_delta(*, sigma: float, sensitivity: float, epsilon: float) -> float:
    """The smallest delta for which Gaussian noise of std ``sigma`` is (epsilon, delta)-DP.

    Balle & Wang 2018, Theorem 8: adding N(0, sigma^2 I) to a query of L2 sensitivity D is
    (epsilon, delta)-DP if and only if
    ``Phi(D / (2 sigma) - epsilon sigma / D) - e^epsilon Phi(-D / (2 sigma) - epsilon sigma / D)
    <= delta``, with ``Phi`` the standard normal CDF. This returns the left-hand side.

    Args:
        sigma: Noise standard deviation, > 0.
        sensitivity: L2 sensitivity, >= 0 (0 gives delta = 0).
        epsilon: Privacy parameter, >= 0.

    Returns:
        delta in [0, 1].

    Raises:
        ValueError: If an argument is outside its range or not finite.
    """
    sigma = v.check_positive("sigma", sigma)
    sensitivity = v.check_non_negative("sensitivity", sensitivity)
    epsilon = v.check_non_negative("epsilon", epsilon)
    if sensitivity == 0:
        return 0.0
    return math.exp(_log_gaussian_delta(sigma, sensitivity, epsilon))


def gaussian_sigma(*, sensitivity: float, epsilon: float, delta: float) -> float:
    """The smallest noise std that makes the Gaussian mechanism (epsilon, delta)-DP.

    The analytic Gaussian mechanism of Balle & Wang 2018 (Theorem 8; Algorithm 1 solves the same
    equation in another parametrisation): ``delta(sigma)`` of :func:`gaussian_delta` falls
    strictly as sigma grows, so bisection on ``log sigma`` finds the sigma where it equals
    ``delta``. The bracket is grown until it holds the root, and the upper end is returned, so
    ``gaussian_delta(sigma=result, ...) <= delta`` always holds (relative precision 1e-12).
    Valid for every epsilon > 0, unlike :func:`classic_gaussian_sigma`.

    Args:
        sensitivity: L2 sensitivity of the query, >= 0 (0 needs no noise and returns 0.0).
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1).

    Returns:
        The noise standard deviation sigma (same units as the answer).

    Raises:
        ValueError: If an argument is outside its range or not finite.
    """
    sensitivity = v.check_non_negative("sensitivity", sensitivity)
    epsilon = v.check_positive("epsilon", epsilon)
    delta = v.check_open_unit("delta", delta)
    if sensitivity == 0:
        return 0.0
    # Work with sensitivity 1 (sigma scales linearly with the sensitivity).
    log_target = math.log(delta)

    def too_small(sigma: float) -> bool:  # True when sigma gives a delta above the target
        return _log_gaussian_delta(sigma, 1.0, epsilon) > log_target

    low = high = max(classic_gaussian_sigma(sensitivity=1.0, epsilon=epsilon, delta=delta), 1e-300)
    while not too_small(low):
        low /= 2.0
    while too_small(high):
        high *= 2.0
    log_low, log_high = math.log(low), math.log(high)
    while log_high - log_low > 1e-12:
        log_mid = 0.5 * (log_low + log_high)
        if too_small(math.exp(log_mid)):
            log_low = log_mid
        else:
            log_high = log_mid
    return math.exp(log_high) * sensitivity


def gaussian_mechanism(value: float | np.ndarray, *, sensitivity: float, epsilon: float,
                       delta: float, rng: np.random.Generator) -> float | np.ndarray:
    """Releases ``value`` with (epsilon, delta)-DP by adding Gaussian noise to every element.

    The std is :func:`gaussian_sigma` (analytic calibration of Balle & Wang 2018, Theorem 8), so
    the guarantee holds for every epsilon > 0. ``sensitivity`` is the L2 sensitivity of the whole
    (vector) query.

    Args:
        value: The exact answer: a real number or a numpy array of them.
        sensitivity: L2 sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1).
        rng: Source of randomness, e.g. ``np.random.default_rng(0)``.

    Returns:
        A float if ``value`` is a scalar, otherwise a float64 array of the same shape.

    Raises:
        ValueError: If an argument is outside its range or not finite, or ``value`` holds NaN/inf.
        TypeError: If ``rng`` is not a ``numpy.random.Generator`` or ``value`` is not numeric.
    """
    sigma = gaussian_sigma(sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    rng = v.check_rng("rng", rng)
    array = _check_value(value)
    noisy = array + rng.normal(loc=0.0, scale=sigma, size=array.shape)
    return float(noisy) if array.ndim == 0 else noisy


# --------------------------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------------------------

def clip_by_l2_norm(tensors: np.ndarray | Sequence[np.ndarray], clipping_norm: float
                    ) -> tuple[np.ndarray | list[np.ndarray], float]:
    """Scales ``tensors`` down so that their global L2 norm is at most ``clipping_norm``.

    All arrays are treated as one long vector (the "flat clipping" of Abadi et al. 2016, "Deep
    Learning with Differential Privacy", Section 3.1, and of McMahan et al. 2018, "Learning
    Differentially Private Recurrent Language Models", Algorithm 1): each is multiplied by
    ``min(1, clipping_norm / global_norm)``. A vector already inside the ball, the zero vector
    included, is returned unchanged, and the norm never increases. After clipping, adding or
    removing one person's vector changes a sum by at most ``clipping_norm`` in L2.

    Args:
        tensors: One numpy array, or a list/tuple of arrays (e.g. a model's weights).
        clipping_norm: The bound C on the L2 norm, > 0.

    Returns:
        ``(clipped, global_norm_before)``: ``clipped`` has the same structure as ``tensors``
        (one float64 array, or a list of float64 arrays of the same shapes), new arrays that
        never alias the input; ``global_norm_before`` is the L2 norm before clipping.

    Raises:
        ValueError: If ``clipping_norm`` <= 0 or not finite, the list is empty, or an entry is
            NaN or inf.
        TypeError: If ``tensors`` is not numeric.
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    single = isinstance(tensors, np.ndarray) or np.isscalar(tensors)
    arrays = [tensors] if single else list(tensors)
    if not arrays:
        raise ValueError("tensors must hold at least one array, got an empty list.")
    arrays = [_check_value(array) for array in arrays]
    # Sum of squares in float64, scaled by the largest entry so huge values do not overflow.
    largest = max((float(np.max(np.abs(array))) if array.size else 0.0) for array in arrays)
    if largest == 0.0:
        norm = 0.0
    else:
        norm = largest * math.sqrt(sum(float(np.sum(np.square(array / largest)))
                                       for array in arrays))
    factor = 1.0 if norm <= clipping_norm else clipping_norm / norm
    clipped = [array * factor for array in arrays]
    return (clipped[0] if single else clipped), norm


# --------------------------------------------------------------------------------------------
# What the widget shows: noise scale, density, expected error
# --------------------------------------------------------------------------------------------

def _check_mechanism(mechanism: Any) -> str:
    if not isinstance(mechanism, str) or mechanism.lower() not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}.")
    return mechanism.lower()


def noise_scale(mechanism: str, *, sensitivity: float, epsilon: float,
                delta: float | None = None) -> float:
    """The scale parameter of the noise a mechanism adds.

    Args:
        mechanism: ``"laplace"`` (epsilon-DP, L1 sensitivity) or ``"gaussian"``
            ((epsilon, delta)-DP, L2 sensitivity, analytic calibration).
        sensitivity: Sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1); required for ``"gaussian"``, ignored for Laplace.

    Returns:
        The Laplace scale ``b`` or the Gaussian standard deviation ``sigma``.

    Raises:
        ValueError: For an unknown mechanism, a missing delta, or an argument out of range.
    """
    mechanism = _check_mechanism(mechanism)
    if mechanism == "laplace":
        return laplace_scale(sensitivity=sensitivity, epsilon=epsilon)
    if delta is None:
        raise ValueError("delta must be given for the Gaussian mechanism, got None.")
    return gaussian_sigma(sensitivity=sensitivity, epsilon=epsilon, delta=delta)


def noise_pdf(x: np.ndarray, mechanism: str, *, sensitivity: float, epsilon: float,
              delta: float | None = None) -> np.ndarray:
    """Probability density of the noise (noisy answer minus true answer) at the points ``x``.

    Laplace: ``exp(-|x| / b) / (2 b)``; Gaussian: the normal density with std sigma. For zero
    sensitivity (no noise) the density is a point mass and this raises.

    Args:
        x: Points at which to evaluate, any shape.
        mechanism: ``"laplace"`` or ``"gaussian"``.
        sensitivity: Sensitivity of the query, > 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1), for ``"gaussian"``.

    Returns:
        Densities, same shape as ``x``.

    Raises:
        ValueError: For an unknown mechanism, zero sensitivity, or an argument out of range.
    """
    v.check_positive("sensitivity", sensitivity)
    scale = noise_scale(mechanism, sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    x = _check_value(x)
    if _check_mechanism(mechanism) == "laplace":
        return np.exp(-np.abs(x) / scale) / (2.0 * scale)
    return stats.norm.pdf(x, scale=scale)


def expected_absolute_error(mechanism: str, *, sensitivity: float, epsilon: float,
                            delta: float | None = None) -> float:
    """Expected absolute error ``E|noisy answer - true answer|`` of one release.

    Laplace(b): ``E|X| = b = sensitivity / epsilon``. Gaussian N(0, sigma^2):
    ``E|X| = sigma * sqrt(2 / pi)``.

    Args:
        mechanism: ``"laplace"`` or ``"gaussian"``.
        sensitivity: Sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1), for ``"gaussian"``.

    Returns:
        The expected absolute error, in the units of the answer.

    Raises:
        ValueError: For an unknown mechanism or an argument out of range.
    """
    scale = noise_scale(mechanism, sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    if _check_mechanism(mechanism) == "laplace":
        return scale
    return scale * math.sqrt(2.0 / math.pi)


def error_interval_half_width(mechanism: str, *, sensitivity: float, epsilon: float,
                              delta: float | None = None, level: float = 0.95) -> float:
    """Half-width ``h``: the noisy answer is within ``h`` of the truth with probability ``level``.

    Laplace(b): ``P(|X| > h) = exp(-h / b)``, so ``h = b ln(1 / (1 - level))``.
    Gaussian: ``h = sigma * Phi^{-1}((1 + level) / 2)``.

    Args:
        mechanism: ``"laplace"`` or ``"gaussian"``.
        sensitivity: Sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1), for ``"gaussian"``.
        level: Coverage probability in (0, 1).

    Returns:
        The half-width, in the units of the answer.

    Raises:
        ValueError: For an unknown mechanism or an argument out of range.
    """
    scale = noise_scale(mechanism, sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    level = v.check_open_unit("level", level)
    if _check_mechanism(mechanism) == "laplace":
        return scale * -math.log1p(-level)
    return scale * float(special.ndtri(0.5 * (1.0 + level)))


def noisy_answer_summary(true_answer: float, mechanism: str, *, sensitivity: float,
                         epsilon: float, delta: float | None = None) -> dict[str, float]:
    """What a reader should know about one noisy release: scale, typical error, 95% interval.

    Args:
        true_answer: The exact answer of the query.
        mechanism: ``"laplace"`` or ``"gaussian"``.
        sensitivity: Sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1), for ``"gaussian"``.

    Returns:
        A dict with ``"scale"`` (Laplace b or Gaussian sigma), ``"std"`` (standard deviation of
        the noise), ``"expected_absolute_error"``, and ``"low"`` / ``"high"``, the central 95%
        range of the noisy answer.

    Raises:
        ValueError: For an unknown mechanism or an argument out of range.
    """
    true_answer = v.check_real("true_answer", true_answer)
    mechanism = _check_mechanism(mechanism)
    scale = noise_scale(mechanism, sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    half_width = error_interval_half_width(mechanism, sensitivity=sensitivity, epsilon=epsilon,
                                           delta=delta)
    return {
        "scale": scale,
        "std": scale * math.sqrt(2.0) if mechanism == "laplace" else scale,
        "expected_absolute_error": expected_absolute_error(
            mechanism, sensitivity=sensitivity, epsilon=epsilon, delta=delta),
        "low": true_answer - half_width,
        "high": true_answer + half_width,
    }


# --------------------------------------------------------------------------------------------
# Empirical audit
# --------------------------------------------------------------------------------------------

def clopper_pearson_interval(successes: int, trials: int, *, confidence: float = 0.95
                             ) -> tuple[float, float]:
    """Exact (Clopper & Pearson 1934) two-sided confidence interval for a binomial proportion.

    The bounds are Beta quantiles: ``low = Beta^{-1}(alpha/2; k, n - k + 1)`` and
    ``high = Beta^{-1}(1 - alpha/2; k + 1, n - k)``, with ``alpha = 1 - confidence``
    (``low = 0`` when ``k = 0`` and ``high = 1`` when ``k = n``).

    Args:
        successes: Number of successes k, 0 <= k <= trials.
        trials: Number of trials n >= 1.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: If the counts or the confidence are out of range.
    """
    trials = v.check_int("trials", trials, minimum=1)
    successes = v.check_int("successes", successes, minimum=0, maximum=trials)
    alpha = 1.0 - v.check_open_unit("confidence", confidence)
    low = 0.0 if successes == 0 else float(
        special.betaincinv(successes, trials - successes + 1, alpha / 2))
    high = 1.0 if successes == trials else float(
        special.betaincinv(successes + 1, trials - successes, 1 - alpha / 2))
    return low, high


def empirical_epsilon_lower_bound(outputs_0: np.ndarray, outputs_1: np.ndarray, *,
                                  threshold: float, delta: float = 0.0,
                                  confidence: float = 0.95) -> float:
    """A statistical lower bound on epsilon from samples of a mechanism on neighbouring inputs.

    The attacker guesses "input 1" when the output exceeds ``threshold``. If the mechanism is
    (epsilon, delta)-DP, then ``P[M(1) > t] <= e^epsilon P[M(0) > t] + delta`` for every t (and
    the same with 0 and 1 swapped, for the event ``output <= t``). Replacing each probability by
    the conservative end of its Clopper-Pearson interval gives
    ``epsilon >= ln((p1_low - delta) / p0_high)``, which holds with probability >= ``confidence``
    (two one-sided bounds of level ``(1 + confidence) / 2`` each, union bound). Both events are
    tried and the larger bound is returned; 0 if neither gives evidence. The threshold must be
    fixed before looking at the samples, otherwise the confidence statement is void.

    Args:
        outputs_0: Outputs of the mechanism on input 0 (1-D, at least one).
        outputs_1: Outputs of the mechanism on the neighbouring input 1.
        threshold: The attacker's decision threshold t, fixed in advance.
        delta: The delta the mechanism claims (0 for pure DP), in [0, 1).
        confidence: Probability that the bound is valid, in (0, 1).

    Returns:
        The lower bound on epsilon (>= 0).

    Raises:
        ValueError: For empty samples or arguments out of range.
    """
    outputs_0 = _check_value(outputs_0).ravel()
    outputs_1 = _check_value(outputs_1).ravel()
    if outputs_0.size == 0 or outputs_1.size == 0:
        raise ValueError("outputs_0 and outputs_1 must hold at least one sample each.")
    threshold = v.check_real("threshold", threshold)
    delta = v.check_non_negative("delta", delta)
    if delta >= 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}.")
    confidence = v.check_open_unit("confidence", confidence)
    # p_b = P[M(b) > t]. Both events below use only p0_high and p1_low (the event "output <= t"
    # has probabilities 1 - p_b), so two one-sided bounds of level (1 + confidence) / 2 suffice:
    # exactly the ends of the two-sided intervals at level `confidence`.
    _, p0_high = clopper_pearson_interval(int(np.sum(outputs_0 > threshold)), outputs_0.size,
                                          confidence=confidence)
    p1_low, _ = clopper_pearson_interval(int(np.sum(outputs_1 > threshold)), outputs_1.size,
                                         confidence=confidence)
    bound = 0.0
    # Event "output > t": P[M(1) > t] <= e^eps P[M(0) > t] + delta.
    if p1_low - delta > 0 and p0_high > 0:
        bound = max(bound, math.log((p1_low - delta) / p0_high))
    # Event "output <= t": P[M(0) <= t] <= e^eps P[M(1) <= t] + delta.
    if (1.0 - p0_high) - delta > 0 and p1_low < 1:
        bound = max(bound, math.log(((1.0 - p0_high) - delta) / (1.0 - p1_low)))
    return bound
