"""Noise mechanisms for differential privacy, their calibration, and L2 clipping.

Everything the course adds noise with lives here:

* :func:`laplace_mechanism` -- epsilon-DP for a query with L1 sensitivity ``sensitivity``
  (Dwork & Roth 2014, "The Algorithmic Foundations of Differential Privacy", Section 3.3,
  Definition 3.3 and Theorem 3.6), released as *discrete* Laplace noise on a fine grid.
* :func:`gaussian_mechanism` -- (epsilon, delta)-DP for a query with L2 sensitivity
  ``sensitivity``, released as *discrete* Gaussian noise on the same kind of grid.
* :func:`gaussian_sigma` -- the analytic calibration of the continuous Gaussian mechanism
  (Balle & Wang 2018, "Improving the Gaussian Mechanism for Differential Privacy: Analytical
  Calibration and Optimal Denoising", Theorem 8), valid for every epsilon > 0;
  :func:`classic_gaussian_sigma` is the textbook bound (Dwork & Roth 2014, Theorem A.1), only
  proven for epsilon < 1 and kept to show that pitfall.
* :func:`clip_by_l2_norm` -- bounds the L2 sensitivity of a sum of vectors (or of model updates)
  by scaling each one down to norm at most ``clipping_norm``.
* The rest of the toolbox (notebook 01's last section), all sampled exactly:
  :func:`randomized_response` (local DP, Warner 1965) and its estimator,
  :func:`group_privacy` (the (epsilon, delta) of a group of k units),
  :func:`exponential_mechanism` (McSherry & Talwar 2007) and :func:`private_quantile` (the
  exponential mechanism on a public grid of candidates).

Floating-point safety (why the mechanisms are discrete)
-------------------------------------------------------
Adding a floating-point Laplace or Gaussian sample to a float answer is *not* differentially
private: the set of floats the sum can take depends on the true answer, so some outputs are
possible for one input and impossible for its neighbour, and an observer tells them apart with
certainty (Mironov 2012, "On Significance of the Least Significant Bits for Differential
Privacy"). :func:`mironov_impossible_outputs` performs that attack.

The mechanisms here therefore follow Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for
Differential Privacy" (NeurIPS 2020):

1. **Grid.** Answers are rounded to the grid ``granularity * Z`` with ``granularity = 2**k`` and
   ``k = floor(log2(sensitivity)) - 40`` (:func:`grid_granularity`), so the grid is 2^40 to
   2^41 times finer than the sensitivity. Rounding is exact (integer arithmetic on the float's
   exact binary value).
2. **Noise.** An integer is drawn from the discrete Laplace or discrete Gaussian distribution,
   exactly, with integer and rational arithmetic only (CKS 2020, Algorithms 1-3:
   Bernoulli(exp(-gamma)), discrete Laplace, discrete Gaussian by rejection). No logarithm,
   exponential or float rounding touches the noise.
3. **Output.** ``(rounded answer + noise) * granularity`` converted to the nearest float. Every
   grid point is possible under every input (the noise has full support on the integers), and
   the float conversion is a fixed function of the private integer, i.e. post-processing.

What is private with respect to what: two inputs are neighbours when the exact answers differ by
at most ``sensitivity`` (L1 for Laplace, L2 for Gaussian) -- the caller's neighbouring relation
(add/remove or replace-one) decides that sensitivity. Rounding two such answers to the grid can
move each coordinate by up to half a step, so the mechanisms calibrate to the rounded answers'
worst-case distance: ``sensitivity / granularity + d`` grid steps in L1 and
``sensitivity / granularity + sqrt(d)`` in L2 for ``d`` released numbers (a relative increase
of at most ``d * 2**-40``). With that, the guarantees are exact, not approximations:

* Laplace: the discrete Laplace with ``P[z] ~ exp(-|z| / t)`` and ``t = m / epsilon`` grid steps
  (``m`` the integer bound above) is exactly ``epsilon``-DP for integer shifts of L1 norm ``<= m``
  (the ratio of the two probabilities of any output is at most ``exp(m / t)``). The epsilon the
  release satisfies is the requested one; :func:`laplace_mechanism_spec` reports it.
* Gaussian: the discrete Gaussian with parameter ``sigma`` satisfies the same Renyi-divergence
  bound as the continuous one, ``D_alpha <= alpha * Delta^2 / (2 sigma^2)`` for integer shifts of
  L2 norm ``Delta`` (CKS 2020, their Renyi / concentrated-DP analysis of the multivariate
  discrete Gaussian).
  That is converted to (epsilon, delta) with the conversion of CKS 2020, Proposition 12 (the one
  ``dp_accounting.rdp`` uses), minimised over the order alpha, and sigma is chosen by bisection
  so that the *computed* delta is at most the requested one (:func:`zcdp_delta`,
  :func:`gaussian_mechanism_spec`). This route is proven for vectors, but it is 6-11% more noise
  than the analytic continuous sigma (:func:`gaussian_sigma`) at delta = 1e-5: the price of a
  guarantee that holds for the numbers a computer can actually release.

Why our own samplers rather than a library: OpenDP's ``make_laplace`` / ``make_gaussian`` also
discretise and sample exactly, but draw only from OS entropy, so the notebooks' stored outputs
(which must be reproducible, labelled as not private) would need a second code path with
different maths; diffprivlib fails to import with scikit-learn 1.9; Google's ``python-dp`` adds
a C++ dependency for two functions. The samplers here are ~150 lines, one code path for both
sources of randomness, and checked in ``tests/test_privacy.py`` against the closed-form pmfs, an
empirical audit and the Mironov replay.

Randomness: secret by default
-----------------------------
By default the noise comes from the operating system's entropy (a fresh
``schedule.PrivateRandomness.secret()``: a ChaCha20 stream keyed with 128 secret bits), so nobody
can regenerate it. Passing ``randomness=schedule.PrivateRandomness.reproducible(seed)`` draws the
*same* exact sampler's random bits from ``np.random.default_rng(seed)`` instead (one generator
that successive releases with the same object continue): the output is reproducible, for
teaching and tests, and it is **not private** against anyone who knows or can guess the seed
(they can subtract the noise); ``reproducible`` warns so.

Plus the plain functions the notebook widget and the tests share (:func:`noise_scale`,
:func:`noise_pdf`, :func:`expected_absolute_error`, :func:`error_interval_half_width`,
:func:`noisy_answer_summary`). The empirical audit of a mechanism's outputs
(:func:`fl_helpers.audit.empirical_epsilon_lower_bound`) and the Clopper-Pearson interval live in
:mod:`fl_helpers.audit`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from fl_helpers import _validation as v
from fl_helpers import discrete_noise, schedule

#: The mechanisms :func:`noise_scale` and friends know, by the name the widget uses.
MECHANISMS: tuple[str, ...] = ("laplace", "gaussian")

#: The grid is ``2**GRID_BITS`` to ``2**(GRID_BITS + 1)`` times finer than the sensitivity.
GRID_BITS = 40

#: The samplers :func:`mironov_impossible_outputs` can replay.
SAMPLERS: tuple[str, ...] = ("naive", "helper")

_MAX_INT64 = 2**63 - 1


# --------------------------------------------------------------------------------------------
# Argument checks (on top of fl_helpers._validation: huge ints, results that overflow)
# --------------------------------------------------------------------------------------------

def _real(name: str, value: Any) -> float:
    """A finite real number as a float (the shared check; huge ints get a named ValueError)."""
    try:
        return v.check_real(name, value)
    except OverflowError as error:  # e.g. 10**400, if the shared check let it through
        raise ValueError(f"{name} must be finite, got an integer of "
                         f"{abs(int(value)).bit_length()} bits (too large for float64).") from error


def _positive(name: str, value: Any) -> float:
    """> 0 and normal: the shared check, which also rejects subnormal scales (< 2.2e-308)."""
    _real(name, value)
    return v.check_positive(name, value)


def _non_negative(name: str, value: Any) -> float:
    _real(name, value)
    return v.check_non_negative(name, value)


def _open_unit(name: str, value: Any) -> float:
    _real(name, value)
    return v.check_open_unit(name, value)


def _count(name: str, value: Any, *, minimum: int, maximum: int = _MAX_INT64) -> int:
    """An integer in [minimum, maximum] (the shared check: bools and huge ints rejected)."""
    return v.check_int(name, value, minimum=minimum, maximum=maximum)


def _finite_result(result: float, message: str) -> float:
    if not math.isfinite(result):
        raise ValueError(message)
    return result


#: The largest integer magnitude the mechanisms take: every integer up to 2**53 is exact in
#: float64, so neighbouring integer answers stay exactly ``sensitivity`` apart (the exact
#: samplers' bound, :data:`fl_helpers.discrete_noise.MAX_EXACT_INT`).
MAX_EXACT_INTEGER = discrete_noise.MAX_EXACT_INT


def _describe_integer(n: int) -> str:
    digits = str(abs(n))
    return str(n) if len(digits) <= 24 else f"an integer of {len(digits)} digits"


def _check_value(value: Any, name: str = "value") -> np.ndarray:
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real number or a numeric array, "
                        f"got {type(value).__name__} {value!r}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"{name} must be a real number or a numeric array, "
                        f"got {type(value).__name__}.") from error
    if array.dtype == bool or array.dtype.kind not in "iufO":
        raise TypeError(f"{name} must be a real number or a numeric array, got an array "
                        f"of dtype {array.dtype}.")
    if array.dtype.kind in "iuO":  # integers (huge Python ints arrive as objects)
        entries = array.ravel().tolist()
        if array.dtype.kind == "O" and not all(
                isinstance(e, (int, float, np.integer, np.floating)) and not isinstance(e, bool)
                for e in entries):
            raise TypeError(f"{name} must be a real number or a numeric array, got an entry "
                            "that is not a real number.")
        too_big = [e for e in entries if isinstance(e, (int, np.integer))
                   and abs(int(e)) > MAX_EXACT_INTEGER]
        if too_big:
            raise ValueError(
                f"{name} must hold integers of magnitude at most 2**53, got "
                f"{_describe_integer(int(too_big[0]))}: "
                "larger integers are not exact in float64, and rounding them can move two "
                "neighbouring answers apart by up to 2**(k-53) times the sensitivity (2**60: "
                "256 times the epsilon). Scale the query down or release it in parts.")
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(f"{name} must hold finite real numbers, got an entry that is "
                             "not a real number or too large for float64.") from error
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got an entry that is NaN or inf.")
    return array


def _bits(randomness: Any) -> schedule._Bits:
    """The bits of one release: secret (a fresh ``PrivateRandomness.secret()``) by default."""
    if randomness is None:
        return schedule.PrivateRandomness.secret()._mechanism_bits()
    if not isinstance(randomness, schedule.PrivateRandomness):
        raise TypeError(
            "randomness must be None (secret noise from OS entropy, the private default) or a "
            "PrivateRandomness (PrivateRandomness.reproducible(seed): reproducible, NOT "
            f"private), got {type(randomness).__name__} {v._fmt(randomness)}.")
    return randomness._mechanism_bits()


def _bernoulli_exp_minus_at_most_1(numerator: int, denominator: int, bits) -> bool:
    """Bernoulli(exp(-gamma)) for gamma = numerator / denominator in [0, 1] (CKS Algorithm 1)."""
    k = 1
    while bits.below(denominator * k) < numerator:  # Bernoulli(gamma / k)
        k += 1
    return k % 2 == 1


def _bernoulli_exp_minus(numerator: int, denominator: int, bits) -> bool:
    """Bernoulli(exp(-numerator / denominator)), exactly, for any gamma >= 0."""
    if numerator <= denominator:
        return _bernoulli_exp_minus_at_most_1(numerator, denominator, bits)
    whole, remainder = divmod(numerator, denominator)
    for _ in range(whole):  # exp(-gamma) = exp(-1)^floor(gamma) * exp(-frac(gamma))
        if not _bernoulli_exp_minus_at_most_1(1, 1, bits):
            return False
    return _bernoulli_exp_minus_at_most_1(remainder, denominator, bits)


def _discrete_laplace(scale_num: int, scale_den: int, bits) -> int:
    """One draw with P[z] proportional to exp(-|z| den / num) (CKS 2020, Algorithm 2)."""
    while True:
        u = bits.below(scale_num)
        if not _bernoulli_exp_minus(u, scale_num, bits):
            continue
        geometric = 0
        while _bernoulli_exp_minus_at_most_1(1, 1, bits):
            geometric += 1
        magnitude = (u + scale_num * geometric) // scale_den
        negative = bits.below(2) == 1
        if negative and magnitude == 0:
            continue
        return -magnitude if negative else magnitude


def _discrete_gaussian(sigma_sq: Fraction, bits) -> int:
    """One draw with P[z] proportional to exp(-z^2 / (2 sigma^2)) (CKS 2020, Algorithm 3)."""
    s_num, s_den = sigma_sq.numerator, sigma_sq.denominator
    t = math.isqrt(s_num // s_den) + 1  # floor(sigma) + 1
    while True:
        y = _discrete_laplace(t, 1, bits)
        # Accept with probability exp(-(|y| - sigma^2 / t)^2 / (2 sigma^2)).
        numerator = (abs(y) * t * s_den - s_num) ** 2
        denominator = 2 * t * t * s_den * s_num
        if _bernoulli_exp_minus(numerator, denominator, bits):
            return y


# --------------------------------------------------------------------------------------------
# The grid and the mechanisms described as data
# --------------------------------------------------------------------------------------------

def grid_granularity(*, sensitivity: float) -> float:
    """The power of two the mechanisms round answers to: ``2**(floor(log2(sensitivity)) - 40)``.

    Args:
        sensitivity: Sensitivity of the query, > 0.

    Returns:
        The granularity (a power of two, e.g. ``2**-40`` for sensitivity 1).

    Raises:
        ValueError: If ``sensitivity`` is not a finite number > 0.
        TypeError: If it is not a real number.
    """
    sensitivity = _positive("sensitivity", sensitivity)
    _, exponent = math.frexp(sensitivity)  # sensitivity = m * 2**exponent, 0.5 <= m < 1
    # Never below the smallest float (2**-1074), so a subnormal sensitivity gets a coarser grid.
    return math.ldexp(1.0, max(exponent - 1 - GRID_BITS, -1074))


@dataclasses.dataclass(frozen=True)
class DiscretisedMechanism:
    """What one call of :func:`laplace_mechanism` / :func:`gaussian_mechanism` guarantees.

    Attributes:
        name: ``"discrete laplace"`` or ``"discrete gaussian"``.
        granularity: Grid step, a power of two, in the answer's units.
        size: How many numbers are released together.
        sensitivity: The sensitivity the caller claimed (L1 or L2), in the answer's units.
        sensitivity_on_grid: Worst-case distance of the *rounded* neighbouring answers, in grid
            steps (rounding included), that the noise is calibrated to.
        noise_scale: Laplace scale ``t`` or Gaussian ``sigma``, in the answer's units.
        epsilon: The epsilon the release satisfies (computed, never above the requested one).
        delta: The delta it satisfies (0 for Laplace; computed for the Gaussian).
    """

    name: str
    granularity: float
    size: int
    sensitivity: float
    sensitivity_on_grid: float
    noise_scale: float
    epsilon: float
    delta: float


def laplace_mechanism_spec(*, sensitivity: float, epsilon: float,
                           size: int = 1) -> DiscretisedMechanism:
    """The grid, noise scale and exact epsilon of :func:`laplace_mechanism` for ``size`` numbers.

    The discrete Laplace scale is ``t = m / epsilon`` grid steps, with
    ``m = ceil(sensitivity / granularity) + size`` (rounding each of the ``size`` numbers to the
    grid can add one step to the L1 distance of neighbouring answers). Integer shifts of L1 norm
    ``<= m`` change any output's probability by a factor ``<= exp(m / t) = exp(epsilon)``, so the
    release is exactly epsilon-DP (Dwork & Roth 2014, Theorem 3.6, on the integers).

    Args:
        sensitivity: L1 sensitivity of the whole query, > 0.
        epsilon: Privacy parameter, > 0.
        size: Number of released numbers, >= 1.

    Returns:
        A :class:`DiscretisedMechanism` with ``delta = 0``.

    Raises:
        ValueError: If an argument is out of range, or the scale overflows float64.
        TypeError: If an argument has the wrong type.
    """
    sensitivity = _positive("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    size = _count("size", size, minimum=1)
    granularity = grid_granularity(sensitivity=sensitivity)
    steps = math.ceil(Fraction(sensitivity) / Fraction(granularity)) + size
    try:
        scale = float(Fraction(steps) * Fraction(granularity) / Fraction(epsilon))
    except OverflowError:
        scale = math.inf
    _finite_result(scale, f"epsilon={epsilon} is too small for sensitivity={sensitivity}: the "
                          "Laplace scale sensitivity / epsilon overflows float64.")
    return DiscretisedMechanism("discrete laplace", granularity, size, sensitivity, float(steps),
                                scale, epsilon, 0.0)


def zcdp_delta(*, rho: float, epsilon: float) -> float:
    """delta of (epsilon, delta)-DP implied by ``D_alpha <= alpha * rho`` for every alpha > 1.

    Canonne, Kamath & Steinke 2020, Proposition 12 (also used by ``dp_accounting.rdp``):
    ``delta = inf_{alpha > 1} exp((alpha - 1)(alpha rho - epsilon)) / alpha
    * (1 - 1/alpha)^(alpha - 1)``, minimised here over a continuous alpha.

    Args:
        rho: Concentrated-DP parameter, > 0 (``Delta^2 / (2 sigma^2)`` for Gaussian noise).
        epsilon: Privacy parameter, >= 0.

    Returns:
        delta in (0, 1].

    Raises:
        ValueError: If an argument is out of range or not finite.
    """
    rho = _positive("rho", rho)
    epsilon = _non_negative("epsilon", epsilon)

    def log_delta(log_alpha_minus_1: float) -> float:
        alpha = 1.0 + math.exp(log_alpha_minus_1)
        return ((alpha - 1.0) * (alpha * rho - epsilon + math.log1p(-1.0 / alpha))
                - math.log(alpha))

    # The optimum is near alpha = 1 + epsilon / (2 rho) (where alpha rho - epsilon changes sign).
    guess = min(math.log(max(epsilon / (2.0 * rho), 1e-6)), 690.0)
    result = optimize.minimize_scalar(log_delta, bounds=(min(guess, 0.0) - 20.0,
                                                         min(guess + 5.0, 700.0)),
                                      method="bounded", options={"xatol": 1e-10})
    return math.exp(min(0.0, result.fun, log_delta(guess)))


@functools.lru_cache(maxsize=256)
def _gaussian_multiplier(epsilon: float, delta: float) -> float:
    """Smallest z (sigma / sensitivity) with zcdp_delta(rho = 1 / (2 z^2), epsilon) <= delta."""
    def too_small(z: float) -> bool:
        return zcdp_delta(rho=0.5 / (z * z), epsilon=epsilon) > delta

    low = high = max(classic_gaussian_sigma(sensitivity=1.0, epsilon=epsilon, delta=delta),
                     1e-150)
    for _ in range(2100):
        if not too_small(low):
            low /= 2.0
        elif too_small(high):
            high *= 2.0
        else:
            break
    if not (math.isfinite(high) and high < 1e150 and low > 0):
        raise ValueError(f"epsilon={epsilon} and delta={delta} need a noise multiplier outside "
                         "[1e-150, 1e150]; choose a less extreme privacy budget.")
    # Bisection on log z, to relative precision 1e-12 (about 51 steps from the widest bracket).
    return _bisect(too_small, low, high, middle=lambda a, b: math.sqrt(a * b),
                   close=lambda a, b: math.log(b) - math.log(a) <= 1e-12)


def _bisect(too_small: Callable[[float], bool], low: float, high: float, *,
            middle: Callable[[float, float], float], close: Callable[[float, float], bool]
            ) -> float:
    """The package's one bisection: the upper end of ``[low, high]`` once ``close(low, high)``.

    ``too_small(x)`` must be True at ``low``, False at ``high`` and monotone in between (the
    noise ``x`` is still too small for the budget), so the returned upper end always meets the
    budget. ``middle`` picks the split point (arithmetic, geometric or in ``log z``) and
    ``close`` the precision; each caller states both. Used by the calibrations here and in
    :mod:`fl_helpers.accounting`.
    """
    while not close(low, high):
        split = middle(low, high)
        low, high = (split, high) if too_small(split) else (low, split)
    return high


def gaussian_mechanism_spec(*, sensitivity: float, epsilon: float, delta: float,
                            size: int = 1) -> DiscretisedMechanism:
    """The grid, sigma and computed (epsilon, delta) of :func:`gaussian_mechanism`.

    The L2 distance of the rounded neighbouring answers is at most
    ``Delta_g = sensitivity / granularity + sqrt(size)`` grid steps. The discrete Gaussian with
    ``sigma_g = z * Delta_g`` grid steps satisfies ``D_alpha <= alpha / (2 z^2)`` for such shifts
    (CKS 2020), and ``z`` is the smallest multiplier whose :func:`zcdp_delta` is at most
    ``delta``. The reported ``delta`` is recomputed from the sigma actually used.

    Args:
        sensitivity: L2 sensitivity of the whole query, > 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1).
        size: Number of released numbers, >= 1.

    Returns:
        A :class:`DiscretisedMechanism`.

    Raises:
        ValueError: If an argument is out of range, or sigma overflows float64.
        TypeError: If an argument has the wrong type.
    """
    sensitivity = _positive("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    delta = _open_unit("delta", delta)
    size = _count("size", size, minimum=1)
    granularity = grid_granularity(sensitivity=sensitivity)
    # Rounded up, so that float rounding never shrinks the bound or sigma.
    steps = math.nextafter(sensitivity / granularity + math.sqrt(size), math.inf)
    z = _gaussian_multiplier(epsilon, delta)
    sigma = z * steps * granularity * (1.0 + 2.0**-40)
    _finite_result(sigma, f"epsilon={epsilon} is too small for sensitivity={sensitivity}: the "
                          "Gaussian sigma overflows float64.")
    computed = zcdp_delta(rho=0.5 * (steps * granularity / sigma) ** 2, epsilon=epsilon)
    return DiscretisedMechanism("discrete gaussian", granularity, size, sensitivity, steps,
                                sigma, epsilon, computed)


def _release(array: np.ndarray, granularity: float, draw, scale: float) -> np.ndarray:
    """Rounds every entry to the grid exactly, adds ``draw()`` grid steps, returns floats."""
    grid = Fraction(granularity)
    out = np.empty(array.size, dtype=np.float64)
    for i, entry in enumerate(array.ravel().tolist()):
        steps = round(Fraction(entry) / grid) + draw()
        try:
            out[i] = float(steps * grid)
        except OverflowError as error:
            raise ValueError(
                f"value plus noise overflows float64 (noise scale {scale:g}): epsilon is too "
                "small or value too close to the float64 limit.") from error
    return out.reshape(array.shape)


def _value_and_bits(value: Any, randomness: Any) -> tuple[np.ndarray, Any]:
    """The checked value and the source of random bits: secret unless reproducible is asked."""
    bits = _bits(randomness)
    return _check_value(value), bits


def laplace_mechanism(value: float | np.ndarray, *, sensitivity: float, epsilon: float,
                      randomness: schedule.PrivateRandomness | None = None
                      ) -> float | np.ndarray:
    """Releases ``value`` with epsilon-DP: exact discrete Laplace noise on a fine grid.

    Each entry is rounded to the grid of :func:`grid_granularity` and gets independent discrete
    Laplace noise of scale ``t`` (:func:`laplace_mechanism_spec`: ``t`` is ``sensitivity /
    epsilon`` up to a relative ``size * 2**-40``), sampled exactly (Canonne, Kamath & Steinke
    2020, Algorithms 1-2), so the release is epsilon-DP for answers whose L1 distance between
    neighbours is at most ``sensitivity``, and immune to the floating-point attack of Mironov 2012
    (see the module docstring). Zero sensitivity needs no noise and returns ``value`` unchanged.

    Args:
        value: The exact answer: a real number or a numpy array of them.
        sensitivity: L1 sensitivity of the whole (vector) query, >= 0.
        epsilon: Privacy parameter, > 0.
        randomness: ``None`` (default): secret noise from OS entropy, the private mode.
            ``schedule.PrivateRandomness.reproducible(seed)``: the same sampler fed by
            ``np.random.default_rng(seed)``, reproducible and **not private** against anyone who
            knows the seed -- for stored notebook outputs and tests only.

    Returns:
        A float if ``value`` is a scalar, otherwise a float64 array of the same shape.

    Raises:
        ValueError: If ``sensitivity`` < 0, ``epsilon`` <= 0, either is not finite, ``value``
            holds NaN or inf, or the result overflows float64.
        TypeError: If ``randomness`` is not ``None`` or a ``PrivateRandomness``, or ``value`` is not
            numeric.
    """
    sensitivity = _non_negative("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    array, bits = _value_and_bits(value, randomness)
    if sensitivity == 0 or array.size == 0:
        return float(array) if array.ndim == 0 else array.copy()
    spec = laplace_mechanism_spec(sensitivity=sensitivity, epsilon=epsilon, size=array.size)
    ratio = Fraction(int(spec.sensitivity_on_grid)) / Fraction(epsilon)  # t in grid steps
    num, den = ratio.numerator, ratio.denominator
    noisy = _release(array, spec.granularity, lambda: _discrete_laplace(num, den, bits),
                     spec.noise_scale)
    return float(noisy) if array.ndim == 0 else noisy


def gaussian_mechanism(value: float | np.ndarray, *, sensitivity: float, epsilon: float,
                       delta: float, randomness: schedule.PrivateRandomness | None = None
                       ) -> float | np.ndarray:
    """Releases ``value`` with (epsilon, delta)-DP: exact discrete Gaussian noise on a fine grid.

    Each entry is rounded to the grid of :func:`grid_granularity` and gets independent discrete
    Gaussian noise whose sigma (:func:`gaussian_mechanism_spec`) makes the computed delta at most
    ``delta`` for answers whose L2 distance between neighbours is at most ``sensitivity``
    (Canonne, Kamath & Steinke 2020: their Renyi-DP bound for the privacy, Algorithm 3 for
    exact sampling).
    Its sigma is 6-11% above the continuous analytic :func:`gaussian_sigma` for delta = 1e-5.
    Zero sensitivity needs no noise and returns ``value`` unchanged.

    Args:
        value: The exact answer: a real number or a numpy array of them.
        sensitivity: L2 sensitivity of the whole (vector) query, >= 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1).
        randomness: ``None`` (default): secret noise from OS entropy, the private mode.
            ``PrivateRandomness.reproducible(seed)``: reproducible and **not private** (see
            :func:`laplace_mechanism`).

    Returns:
        A float if ``value`` is a scalar, otherwise a float64 array of the same shape.

    Raises:
        ValueError: If an argument is outside its range or not finite, or ``value`` holds NaN/inf.
        TypeError: If ``randomness`` is not ``None`` or a ``PrivateRandomness``, or ``value`` is not
            numeric.
    """
    sensitivity = _non_negative("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    delta = _open_unit("delta", delta)
    array, bits = _value_and_bits(value, randomness)
    if sensitivity == 0 or array.size == 0:
        return float(array) if array.ndim == 0 else array.copy()
    spec = gaussian_mechanism_spec(sensitivity=sensitivity, epsilon=epsilon, delta=delta,
                                   size=array.size)
    sigma_steps = Fraction(spec.noise_scale) / Fraction(spec.granularity)
    sigma_sq = sigma_steps * sigma_steps
    noisy = _release(array, spec.granularity, lambda: _discrete_gaussian(sigma_sq, bits),
                     spec.noise_scale)
    return float(noisy) if array.ndim == 0 else noisy


# --------------------------------------------------------------------------------------------
# The continuous Gaussian mechanism's calibration (the theory the notebook teaches)
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
        ValueError: If ``sensitivity`` is negative or not finite, ``epsilon`` <= 0 or not finite,
            or the scale overflows float64.
        TypeError: If an argument is not a real number.
    """
    sensitivity = _non_negative("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    return _finite_result(sensitivity / epsilon,
                          f"epsilon={epsilon} is too small for sensitivity={sensitivity}: the "
                          "Laplace scale sensitivity / epsilon overflows float64.")


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
        ValueError: If an argument is outside its range or not finite, or sigma overflows.
    """
    sensitivity = _non_negative("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    delta = _open_unit("delta", delta)
    return _finite_result(math.sqrt(2.0 * math.log(1.25 / delta)) * sensitivity / epsilon,
                          f"epsilon={epsilon} is too small: the classic sigma overflows float64.")


def _log_gaussian_delta(sigma: float, sensitivity: float, epsilon: float) -> float:
    """log of the exact delta of the Gaussian mechanism (Balle & Wang 2018, Theorem 8).

    delta(sigma) = Phi(D/(2 s) - e s / D) - exp(e) * Phi(-D/(2 s) - e s / D), with D the
    sensitivity, s = sigma and e = epsilon. Computed as log Phi(a) + log1p(-exp(t)) with
    t = e + log Phi(-b) - log Phi(a) <= 0, so the difference keeps its relative precision even
    when both terms are tiny and nearly equal, and exp(epsilon) never overflows.
    """
    ratio = sensitivity / sigma
    with np.errstate(all="ignore"):
        a = 0.5 * ratio - epsilon / ratio
        b = 0.5 * ratio + epsilon / ratio
    if math.isnan(a) or math.isnan(b):  # inf - inf: ratio overflowed; no noise to speak of
        return 0.0
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
    <= delta``, with ``Phi`` the standard normal CDF. This returns the left-hand side. It is
    also ``E[(1 - exp(epsilon - L))_+]`` for the privacy loss ``L ~ N(mu, 2 mu)``,
    ``mu = D^2 / (2 sigma^2)``.

    Args:
        sigma: Noise standard deviation, > 0.
        sensitivity: L2 sensitivity, >= 0 (0 gives delta = 0).
        epsilon: Privacy parameter, >= 0.

    Returns:
        delta in [0, 1].

    Raises:
        ValueError: If an argument is outside its range or not finite.
    """
    sigma = _positive("sigma", sigma)
    sensitivity = _non_negative("sensitivity", sensitivity)
    epsilon = _non_negative("epsilon", epsilon)
    if sensitivity == 0:
        return 0.0
    return math.exp(_log_gaussian_delta(sigma, sensitivity, epsilon))


def gaussian_sigma(*, sensitivity: float, epsilon: float, delta: float) -> float:
    """The smallest noise std that makes the continuous Gaussian mechanism (epsilon, delta)-DP.

    The analytic Gaussian mechanism of Balle & Wang 2018 (Theorem 8; Algorithm 1 solves the same
    equation in another parametrisation): ``delta(sigma)`` of :func:`gaussian_delta` falls
    strictly as sigma grows, so bisection on ``log sigma`` finds the sigma where it equals
    ``delta``. The bracket is grown until it holds the root, and the upper end is returned, so
    ``gaussian_delta(sigma=result, ...) <= delta`` always holds (relative precision 1e-12).
    Valid for every epsilon > 0, unlike :func:`classic_gaussian_sigma`. This is the theory of a
    continuous mechanism; the release :func:`gaussian_mechanism` uses a discrete Gaussian with a
    slightly larger sigma (:func:`gaussian_mechanism_spec`).

    Args:
        sensitivity: L2 sensitivity of the query, >= 0 (0 needs no noise and returns 0.0).
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1).

    Returns:
        The noise standard deviation sigma (same units as the answer).

    Raises:
        ValueError: If an argument is outside its range or not finite, or sigma overflows.
    """
    sensitivity = _non_negative("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    delta = _open_unit("delta", delta)
    if sensitivity == 0:
        return 0.0
    # Work with sensitivity 1 (sigma scales linearly with the sensitivity).
    log_target = math.log(delta)

    def too_small(sigma: float) -> bool:  # True when sigma gives a delta above the target
        return _log_gaussian_delta(sigma, 1.0, epsilon) > log_target

    start = math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon
    low = high = min(max(start, 1e-300), 1e300)
    for _ in range(4200):  # at most ~2000 halvings or doublings span the float range
        if not too_small(low) and low > 1e-300:
            low /= 2.0
        elif too_small(high) and high < 1e300:
            high *= 2.0
        else:
            break
    if too_small(high):
        raise ValueError(f"epsilon={epsilon} is too small for delta={delta}: the noise std "
                         "overflows float64.")
    log_high = _bisect(lambda log_sigma: too_small(math.exp(log_sigma)), math.log(low),
                       math.log(high), middle=lambda a, b: 0.5 * (a + b),
                       close=lambda a, b: b - a <= 1e-12)
    return _finite_result(math.exp(log_high) * sensitivity,
                          f"epsilon={epsilon} is too small for sensitivity={sensitivity}: the "
                          "noise std overflows float64.")


# --------------------------------------------------------------------------------------------
# The Mironov 2012 floating-point attack
# --------------------------------------------------------------------------------------------

_TWO_TO_53 = 2**53


def _naive_output(j: int, true_answer: float, scale: float) -> float:
    """numpy's ``true_answer + Generator.laplace(0.0, scale)`` for the uniform draw j / 2**53."""
    u = j * (1.0 / 9007199254740992.0)  # numpy: next_double = (next_uint64 >> 11) * 2**-53
    if u >= 0.5:
        noise = 0.0 - scale * math.log(2.0 - u - u)
    else:
        noise = 0.0 + scale * math.log(u + u)
    return true_answer + noise


def _naive_can_output(output: float, true_answer: float, scale: float) -> bool:
    """Whether some uniform draw j in [1, 2**53) makes the naive sampler print ``output``.

    The output is non-decreasing in j, so bisection finds the first j whose output reaches
    ``output``; the output is possible exactly when that j hits it.
    """
    low, high = 1, _TWO_TO_53 - 1
    if _naive_output(high, true_answer, scale) < output:
        return False
    while low < high:
        mid = (low + high) // 2
        if _naive_output(mid, true_answer, scale) < output:
            low = mid + 1
        else:
            high = mid
    return _naive_output(low, true_answer, scale) == output


def mironov_impossible_outputs(outputs: np.ndarray, *, other_input: float, sensitivity: float,
                               epsilon: float, sampler: str) -> np.ndarray:
    """Which released outputs the mechanism could *not* have produced from ``other_input``.

    The attack of Mironov 2012 ("On Significance of the Least Significant Bits for Differential
    Privacy"): the attacker knows the sampler's code and replays it. An output that is
    impossible under the neighbouring input proves that the neighbour was not the input -- a
    privacy loss of infinity, which no epsilon allows.

    * ``sampler="naive"``: ``true_answer + rng.laplace(0.0, sensitivity / epsilon)`` with a
      numpy ``Generator`` (the from-scratch sampler of notebook 01): numpy draws ``u = j / 2**53``
      and returns ``scale * log(2u)`` or ``-scale * log(2 - 2u)``. For each output the replay
      bisects over all 2**53 - 1 values of j (the output is monotone in j).
    * ``sampler="helper"``: :func:`laplace_mechanism`. Its outputs are floats of grid points
      ``k * granularity``, and every integer k is possible from every input, so an output is
      impossible only if it is not (the float of) a grid point.

    Args:
        outputs: Released values (1-D or any shape), finite.
        other_input: The neighbouring true answer to test against.
        sensitivity: The sensitivity the mechanism was run with, > 0.
        epsilon: The epsilon it was run with, > 0.
        sampler: ``"naive"`` or ``"helper"``.

    Returns:
        A boolean array of the shape of ``outputs``: True where the output is impossible.

    Raises:
        ValueError: For an unknown sampler or an argument out of range.
        TypeError: For arguments of the wrong type.
    """
    outputs = _check_value(outputs, "outputs")
    other_input = _real("other_input", other_input)
    sensitivity = _positive("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
    flat = outputs.ravel().tolist()
    if sampler == "naive":
        scale = laplace_scale(sensitivity=sensitivity, epsilon=epsilon)
        impossible = [not _naive_can_output(y, other_input, scale) for y in flat]
    else:
        grid = Fraction(grid_granularity(sensitivity=sensitivity))
        impossible = [float(round(Fraction(y) / grid) * grid) != y for y in flat]
    return np.array(impossible, dtype=bool).reshape(outputs.shape)


# --------------------------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------------------------

# The course's one L2 norm of an update (an unchecked internal fast path, deliberately public
# like schedule.client_batches_unchecked): clip_by_l2_norm, aggregation.update_norm (and so the
# rules' reported and adaptive-clipping norms) and attacks.clip_and_noise all call it. The
# bad-input fuzz lists it in its UNCHECKED allow-list; the checked entry points are fuzzed.
def l2_norm_unchecked(arrays: Sequence[np.ndarray], *, dtype: Any = None) -> float:
    """The global L2 norm ``sqrt(sum_i ||a_i||^2)`` of finite real arrays, without overflow or
    underflow.

    Every entry is divided by the largest magnitude before it is squared, so the squares lie in
    [0, 1] and the sum cannot overflow (entries near 1e200) nor vanish (entries near 1e-200),
    where the naive ``sqrt(sum(a * a))`` gives inf or 0; the result is scaled back at the end.
    Each array is summed by numpy's pairwise summation, in its own float precision (``dtype``
    ``None``: float32 arrays in float32, as :func:`clip_by_l2_norm` clips them) or in ``dtype``
    (:func:`aggregation.update_norm <fl_helpers.aggregation.update_norm>` asks for float64), and
    the arrays' sums are added in order as Python floats. One scratch array per layer, squared
    in place: the same bits as ``np.sum(np.square(a / largest))``, without the extra copies.

    It is :func:`aggregation.update_norm <fl_helpers.aggregation.update_norm>` without the
    argument checks (the checked, fuzzed version), for callers that checked their inputs once.

    Args:
        arrays: Finite real arrays (not checked: callers check their inputs once).
        dtype: The precision of the scaled squares (``None``: each array's own).

    Returns:
        The norm, a float >= 0 (0 for no arrays or all zeros).
    """
    largest = 0.0
    for array in arrays:
        if np.size(array):
            largest = max(largest, float(np.max(array)), -float(np.min(array)))
    if largest == 0.0:
        return 0.0
    total = 0.0
    for array in arrays:
        scaled = np.divide(array, largest, dtype=dtype)
        np.multiply(scaled, scaled, out=scaled)
        total += float(np.sum(scaled))
    return largest * math.sqrt(total)


def clip_by_l2_norm(tensors: np.ndarray | Sequence[np.ndarray], clipping_norm: float
                    ) -> tuple[np.ndarray | list[np.ndarray], float]:
    """Scales ``tensors`` down so that their global L2 norm is at most ``clipping_norm``.

    All arrays are treated as one long vector (the "flat clipping" of Abadi et al. 2016, "Deep
    Learning with Differential Privacy", Section 3.1, and of McMahan et al. 2018, "Learning
    Differentially Private Recurrent Language Models", Algorithm 1): each is multiplied by
    ``min(1, clipping_norm / global_norm)``. A vector already inside the ball, the zero vector
    included, is returned unchanged, and the norm never increases. After clipping, adding or
    removing one person's vector changes a sum by at most ``clipping_norm`` in L2 (replacing one
    changes it by at most ``2 * clipping_norm``).

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
    clipping_norm = _positive("clipping_norm", clipping_norm)
    single = isinstance(tensors, np.ndarray) or np.isscalar(tensors)
    arrays: list[Any]
    try:
        arrays = [tensors] if single else list(tensors)
    except TypeError as error:
        raise TypeError("tensors must be a numpy array or a list of arrays, got "
                        f"{type(tensors).__name__} {tensors!r}.") from error
    if not arrays:
        raise ValueError("tensors must hold at least one array, got an empty list.")
    arrays = [np.asarray(_check_value(array, "tensors")) for array in arrays]
    norm = l2_norm_unchecked(arrays)
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
    """The scale parameter of the noise the helper's mechanism adds to one number.

    Args:
        mechanism: ``"laplace"`` (epsilon-DP, L1 sensitivity: ``sensitivity / epsilon``) or
            ``"gaussian"`` ((epsilon, delta)-DP, L2 sensitivity: the sigma of
            :func:`gaussian_mechanism` for one number, :func:`gaussian_mechanism_spec`).
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
    sensitivity = _non_negative("sensitivity", sensitivity)
    if sensitivity == 0:
        _positive("epsilon", epsilon)
        _open_unit("delta", delta)
        return 0.0
    return gaussian_mechanism_spec(sensitivity=sensitivity, epsilon=epsilon,
                                   delta=delta).noise_scale


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
    _positive("sensitivity", sensitivity)
    scale = noise_scale(mechanism, sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    x = _check_value(x, "x")
    with np.errstate(all="ignore"):
        if _check_mechanism(mechanism) == "laplace":
            density = np.exp(-np.abs(x) / scale) / (2.0 * scale)
        else:
            density = stats.norm.pdf(x, scale=scale)
    if not np.all(np.isfinite(density)):
        raise ValueError(f"sensitivity={sensitivity} and epsilon={epsilon} give a noise scale of "
                         f"{scale:g}, too small for its density to be a float64.")
    return density


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
    level = _open_unit("level", level)
    if _check_mechanism(mechanism) == "laplace":
        half_width = scale * -math.log1p(-level)
    else:
        half_width = scale * float(special.ndtri(0.5 * (1.0 + level)))
    return _finite_result(half_width, f"epsilon={epsilon} is too small: the {level:.0%} interval "
                                      "of the noise overflows float64.")


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
    true_answer = _real("true_answer", true_answer)
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
# The rest of the toolbox: randomized response, group privacy, the exponential mechanism and a
# private quantile (Dwork & Roth 2014, Sections 2.3, 3.2 and 3.4). Exact samplers only: every
# probability is a rational number or exp(-rational), drawn with the bits above.
# --------------------------------------------------------------------------------------------

def _truth_probability(value: Any) -> float:
    p = _real("truth_probability", value)
    if not 0.5 < p < 1:
        raise ValueError(f"truth_probability must be in (0.5, 1), got {v._fmt(p)}: 0.5 answers "
                         "at random (no information), 1 answers truthfully (no privacy).")
    return p


def randomized_response_epsilon(*, truth_probability: float) -> float:
    """The epsilon of randomized response: ``ln(p / (1 - p))`` for truthful probability ``p``.

    Each person reports their true bit with probability ``p`` and the other bit otherwise, so
    the probability of any report changes by a factor of at most ``p / (1 - p)`` when the true
    bit changes (Warner 1965; Dwork & Roth 2014, Section 3.2, Claim 3.5 for ``p = 3/4``).

    Args:
        truth_probability: ``p`` in (0.5, 1).

    Returns:
        epsilon > 0, e.g. ``ln 3 = 1.0986`` for ``p = 0.75``.

    Raises:
        ValueError: If ``truth_probability`` is not a real number in (0.5, 1).
        TypeError: If it is not a real number.
    """
    p = _truth_probability(truth_probability)
    return math.log(p) - math.log1p(-p)


def _check_bits(name: str, value: Any) -> np.ndarray:
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D array of 0s and 1s, got "
                        f"{type(value).__name__} {value!r}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a 1-D array of 0s and 1s, got a ragged "
                        f"{type(value).__name__}.") from error
    if array.dtype != np.bool_ and array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold 0s and 1s (integers or booleans), got dtype "
                        f"{array.dtype}.")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}.")
    array = array.astype(np.int64)
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0s and 1s, got "
                         f"{int(array[~np.isin(array, (0, 1))][0])}.")
    return array


def randomized_response(answers: np.ndarray, *, truth_probability: float,
                        randomness: schedule.PrivateRandomness | None = None) -> np.ndarray:
    """Each person's yes/no answer, kept with probability ``p`` and flipped otherwise.

    Randomized response (S. L. Warner, "Randomized Response: A Survey Technique for Eliminating
    Evasive Answer Bias", JASA 1965; Dwork & Roth 2014, Section 3.2) is **local** DP: the unit
    is one person's bit, the relation replace-one (the bit changes), and nobody needs to be
    trusted -- each person randomises before anything leaves their device, so every observer,
    the collecting server included, sees only the reports. Each report is
    :func:`randomized_response_epsilon` ``= ln(p / (1 - p))``-DP. The coin is exact: ``p`` is a
    float, i.e. a dyadic rational ``a / 2**k``, and a report is truthful iff a uniform integer
    below ``2**k`` is below ``a``.

    Args:
        answers: The true bits, a non-empty 1-D array of 0/1 integers or booleans (one person
            each).
        truth_probability: ``p`` in (0.5, 1), the probability of reporting the truth.
        randomness: ``None`` (default): secret coins from OS entropy, the private mode.
            ``PrivateRandomness.reproducible(seed)``: reproducible and **not private** against
            anyone who knows the seed -- for stored notebook outputs and tests only.

    Returns:
        The reports, an int64 array of 0s and 1s of the same length.

    Raises:
        ValueError: If ``answers`` is empty, not 1-D or holds values other than 0 and 1, or
            ``truth_probability`` is not in (0.5, 1).
        TypeError: If ``answers`` is not an integer or boolean array, ``truth_probability`` not
            a real number, or ``randomness`` neither ``None`` nor a ``PrivateRandomness``.
    """
    truth = _check_bits("answers", answers)
    p = Fraction(_truth_probability(truth_probability))
    bits = _bits(randomness)
    keep = np.array([bits.below(p.denominator) < p.numerator for _ in range(truth.size)])
    return np.where(keep, truth, 1 - truth).astype(np.int64)


def randomized_response_estimate(reports: np.ndarray, *, truth_probability: float) -> float:
    """The unbiased estimate of the share of 1s behind randomized-response reports.

    A report is 1 with probability ``pi = p s + (1 - p)(1 - s)`` for true share ``s``, so
    ``(mean(reports) - (1 - p)) / (2p - 1)`` has expectation ``s`` (Warner 1965). It is
    post-processing of the reports, so it costs no privacy; it can fall outside [0, 1] and is
    not clipped, because clipping would bias it.

    Args:
        reports: The reports, a non-empty 1-D array of 0s and 1s.
        truth_probability: The ``p`` the reports were made with, in (0.5, 1).

    Returns:
        The estimated share of true 1s (a float, unbiased, possibly outside [0, 1]).

    Raises:
        ValueError: If ``reports`` is empty, not 1-D or not 0/1, or ``truth_probability`` is
            not in (0.5, 1).
        TypeError: If ``reports`` is not an integer or boolean array, or ``truth_probability``
            not a real number.
    """
    array = _check_bits("reports", reports)
    p = _truth_probability(truth_probability)
    return (float(array.mean()) - (1 - p)) / (2 * p - 1)


def group_privacy(*, epsilon: float, delta: float, group_size: int) -> tuple[float, float]:
    """The guarantee an (epsilon, delta)-DP mechanism gives a group of ``k`` units.

    Datasets that differ in ``k`` units are joined by a chain of ``k`` neighbours; applying the
    definition along it gives ``(k epsilon, delta (1 + e^eps + ... + e^((k-1) eps)))``, and the
    second entry is at most ``k e^((k-1) eps) delta`` (Dwork & Roth 2014, Theorem 2.2 for
    ``delta = 0``; the delta term by the same chain). Use it when one person holds ``k``
    records of a record-level guarantee.

    Args:
        epsilon: The per-unit epsilon, >= 0.
        delta: The per-unit delta, in [0, 1).
        group_size: ``k``, the number of units in the group, >= 1.

    Returns:
        ``(k * epsilon, delta_k)``; ``delta_k`` is capped at 1 (a delta of 1 promises nothing).

    Raises:
        ValueError: If an argument is out of range, or ``k * epsilon`` overflows.
        TypeError: If an argument has the wrong type.
    """
    epsilon = _non_negative("epsilon", epsilon)
    delta = _non_negative("delta", delta)
    if delta >= 1:
        raise ValueError(f"delta must be in [0, 1), got {v._fmt(delta)}.")
    k = _count("group_size", group_size, minimum=1)
    group_epsilon = _finite_result(k * epsilon, f"group_size * epsilon overflows float64 "
                                   f"(group_size {k}, epsilon {epsilon:g}).")
    if delta == 0 or k == 1:
        return group_epsilon, delta
    # delta * sum_{j < k} e^(j eps) = delta * expm1(k eps) / expm1(eps), in logs to stay finite
    if epsilon == 0:
        log_sum = math.log(k)
    else:
        log_sum = (group_epsilon + math.log(-math.expm1(-group_epsilon))
                   - epsilon - math.log(-math.expm1(-epsilon)))
    log_delta = math.log(delta) + log_sum
    return group_epsilon, 1.0 if log_delta >= 0 else math.exp(log_delta)


def _check_scores(name: str, value: Any) -> np.ndarray:
    return v.check_float_array(name, value, ndim=1)


def _exponential_choice(scores: Sequence[Fraction], scale: Fraction, bits: Any) -> int:
    """Index ``i`` with probability proportional to ``exp(scale * scores[i])``, exactly.

    Rejection from the uniform proposal: accept ``i`` with probability
    ``exp(-scale (max - scores[i]))`` (CKS 2020's Bernoulli(exp(-gamma)) for rational gamma).
    The best score is always accepted, so at most ``len(scores)`` proposals are expected.
    """
    top = max(scores)
    while True:
        i = bits.below(len(scores))
        gamma = scale * (top - scores[i])
        if _bernoulli_exp_minus(gamma.numerator, gamma.denominator, bits):
            return i


def _exponential_scale(sensitivity: Any, epsilon: Any) -> Fraction:
    sensitivity = _positive("sensitivity", sensitivity)
    epsilon = _positive("epsilon", epsilon)
    return Fraction(epsilon) / (2 * Fraction(sensitivity))


def exponential_mechanism(scores: np.ndarray, *, sensitivity: float, epsilon: float,
                          randomness: schedule.PrivateRandomness | None = None) -> int:
    """Chooses an index with probability proportional to ``exp(epsilon score / (2 sensitivity))``.

    The exponential mechanism (McSherry & Talwar 2007, "Mechanism Design via Differential
    Privacy", FOCS; Dwork & Roth 2014, Section 3.4, Theorem 3.10) is epsilon-DP when
    every score moves by at most ``sensitivity`` between neighbouring datasets (the caller's
    relation decides it: counts move by 1 under add/remove). Sampled **exactly**: the scores and
    epsilon are floats, hence rationals, and :func:`_exponential_choice` accepts a uniform
    proposal with probability ``exp(-rational)`` by CKS 2020's Algorithm 1 -- no logarithm, no
    Gumbel noise, no float softmax. Adding Gumbel noise to the scaled scores and reporting the
    argmax ("report noisy max" with Gumbel noise) samples the same distribution.

    Args:
        scores: One finite score per candidate (higher is better), a non-empty 1-D array.
        sensitivity: How much any score can move between neighbours, > 0.
        epsilon: Privacy parameter, > 0.
        randomness: ``None`` (default): secret randomness, the private mode.
            ``PrivateRandomness.reproducible(seed)``: reproducible and **not private** -- for
            stored notebook outputs and tests only.

    Returns:
        The chosen index (an int in ``[0, len(scores))``).

    Raises:
        ValueError: If ``scores`` is empty, not 1-D or not finite, or ``sensitivity`` or
            ``epsilon`` is not > 0.
        TypeError: If an argument has the wrong type.
    """
    array = _check_scores("scores", scores)
    scale = _exponential_scale(sensitivity, epsilon)
    bits = _bits(randomness)
    return _exponential_choice([Fraction(s) for s in array.tolist()], scale, bits)


def exponential_mechanism_probabilities(scores: np.ndarray, *, sensitivity: float,
                                        epsilon: float) -> np.ndarray:
    """The closed-form output distribution of :func:`exponential_mechanism` (a softmax).

    Args:
        scores: One finite score per candidate, a non-empty 1-D array.
        sensitivity: How much any score can move between neighbours, > 0.
        epsilon: Privacy parameter, > 0.

    Returns:
        ``P[i] = exp(epsilon s_i / (2 sensitivity)) / sum_j exp(epsilon s_j / (2 sensitivity))``,
        a float64 array summing to 1.

    Raises:
        ValueError: If ``scores`` is empty, not 1-D or not finite, or ``sensitivity`` or
            ``epsilon`` is not > 0.
        TypeError: If an argument has the wrong type.
    """
    array = _check_scores("scores", scores)
    _exponential_scale(sensitivity, epsilon)  # checks
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.float64(epsilon) / (2 * np.float64(sensitivity))  # may be inf: gaps * inf
        gaps = array - array.max()  # <= 0; -inf where the difference overflows
        logits = np.where(gaps == 0, 0.0, gaps * scale)
    return special.softmax(logits)


def private_quantile(values: np.ndarray, *, quantile: float, candidates: np.ndarray,
                     epsilon: float, randomness: schedule.PrivateRandomness | None = None
                     ) -> float:
    """An epsilon-DP ``quantile`` of ``values``, chosen from a public grid of ``candidates``.

    The exponential mechanism with the score ``u(g) = -|#{x_i <= g} - quantile * n|`` of each
    candidate ``g`` (the rank error; Smith 2011, "Privacy-Preserving Statistical Estimation with
    Optimal Convergence Rates", STOC, uses the intervals between data points). One record moves
    the count by at most 1 and, under add/remove, ``quantile * n`` by ``quantile``, so every
    score moves by at most 1 under either relation: sensitivity 1. The unit is one value (one
    record), the curator holding ``values`` is trusted, and the observer sees the chosen
    candidate. The grid must be public (fixed before looking at the data); the answer is only
    as fine as the grid. Adding Laplace noise to the exact median would need its global
    sensitivity, the whole range of the data. Scores are computed exactly (rationals) and
    sampled exactly (:func:`exponential_mechanism`).

    Args:
        values: The private values, a non-empty 1-D array of finite reals.
        quantile: In (0, 1); 0.5 is the median.
        candidates: The public grid, a 1-D strictly increasing array of finite reals.
        epsilon: Privacy parameter, > 0.
        randomness: ``None`` (default): secret randomness, the private mode.
            ``PrivateRandomness.reproducible(seed)``: reproducible and **not private** -- for
            stored notebook outputs and tests only.

    Returns:
        The chosen candidate (a float).

    Raises:
        ValueError: If an array is empty, not 1-D or not finite, ``candidates`` is not strictly
            increasing, ``quantile`` is not in (0, 1) or ``epsilon`` not > 0.
        TypeError: If an argument has the wrong type.
    """
    data = v.check_float_array("values", values, ndim=1)
    grid = v.check_float_array("candidates", candidates, ndim=1)
    if grid.size > 1 and not np.all(np.diff(grid) > 0):
        raise ValueError("candidates must be strictly increasing, got a grid that is not.")
    q = Fraction(_open_unit("quantile", quantile))
    scale = _exponential_scale(1.0, epsilon)
    bits = _bits(randomness)
    counts = np.searchsorted(np.sort(data), grid, side="right").tolist()  # #{x_i <= g}
    target = q * data.size
    scores = [-abs(count - target) for count in counts]
    return float(grid[_exponential_choice(scores, scale, bits)])
