"""Exact integer noise: the discrete Gaussian and integer grids (numpy only).

The one home of the course's vectorised exact sampler (notebook 01's scalar samplers in
:mod:`fl_helpers.privacy` teach the same algorithms one draw at a time, on the same bit source).
Exact noise is an integer drawn from uniform integers only (no floating point), added to an
integer sum, so the floating-point attack of Mironov 2012 ("On Significance of the Least
Significant Bits for Differential Privacy") has nothing to read:

* the randomness is a :class:`fl_helpers.schedule.PrivateRandomness` (secret by default;
  ``PrivateRandomness.reproducible(seed)`` for tests and stored outputs only, **not private**,
  with a warning); its private bit source turns a ChaCha20 keystream (RFC 8439) into exactly
  uniform integers;
* :func:`discrete_gaussian`: Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for
  Differential Privacy", Algorithms 1-3 (Bernoulli(exp(-gamma)), the discrete Laplace, then
  rejection), on int64 arrays. Any integer variance up to :data:`MAX_VARIANCE`; beyond it, up to
  :data:`MAX_LARGE_VARIANCE`, variances of the form ``t (t - 1)`` (:func:`exact_variance_at_least`
  rounds a wanted variance up to one), for which every quantity of the algorithm fits int64.
* :func:`clip_to_integer_grid` and :func:`integer_outer_sum`: clipped updates as integer vectors
  whose L2 bound is checked exactly, and their exact sums (the latter from the rank-one factors
  of one-example updates, without forming them).

Used by secure aggregation's distributed noise (:mod:`fl_helpers.distributed_dp`) and by the
exact noise of DP-FedAvg (:class:`fl_helpers.aggregation.DPFedAvg`), DP-SGD
(:func:`fl_helpers.dp_sgd.train`) and cross-silo DP-SGD (:func:`fl_helpers.cross_silo.
dp_sgd_update`), all with ``noise="exact"``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import schedule

#: Longest vector a function here draws noise for: 2^27 entries (1 GiB of int64), far above the
#: course's largest model.
MAX_SIZE = 2**27
#: Largest integer magnitude that float64 holds exactly.
MAX_EXACT_INT = 2**53


def _check_size(name: str, size: Any) -> int:
    """A vector length in 0..:data:`MAX_SIZE`."""
    return v.check_int(name, size, minimum=0, maximum=MAX_SIZE)


def _check_integer_array(name: str, values: Any, *, max_abs: int | None = None) -> np.ndarray:
    """A flat array of integers (not bool), at most :data:`MAX_SIZE` long, with entries of
    magnitude at most ``max_abs`` (default: anything int64 holds)."""
    if values is None or isinstance(values, (str, bytes, numbers.Number, np.generic)):
        raise TypeError(f"{name} must be a flat integer array, got {type(values).__name__} "
                        f"{v._fmt(values)}.")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError, OverflowError) as error:  # ragged lists, ints beyond int64
        raise TypeError(f"{name} must be a flat integer array, got {type(values).__name__}."
                        ) from error
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}.")
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat (1-D) array, got shape {array.shape}.")
    _check_size(f"the length of {name}", array.size)
    if max_abs is not None and array.size:
        largest = max(abs(int(array.max())), abs(int(array.min())))
        if largest > max_abs:
            raise ValueError(f"{name} must hold integers of magnitude <= {max_abs}, got "
                             f"{v._fmt(largest)}.")
    return array


# --------------------------------------------------------------------------------------------
# The exact discrete Gaussian (Canonne, Kamath, Steinke 2020), vectorised on integers
# --------------------------------------------------------------------------------------------


def _bernoulli_exp_minus_fraction(num: np.ndarray, den: int, bits: schedule._Bits) -> np.ndarray:
    """Bernoulli(exp(-num/den)) for ``0 <= num <= den`` (CKS 2020, Algorithm 1, gamma <= 1).

    Draw Bernoulli(gamma / k) for k = 1, 2, ... until the first failure; the answer is whether
    that failure came at an odd k. Every entry still drawing is at the same k, so each round is
    one comparison of uniform integers below ``k den`` with ``num``.
    """
    result = np.zeros(num.shape, dtype=bool)
    active = np.arange(num.size)
    remaining = num.astype(np.uint64)
    k = 1
    while active.size:
        success = bits.below_one(k * den, (active.size,)) < remaining
        if k % 2 == 1:
            result[active[~success]] = True
        active = active[success]
        remaining = remaining[success]
        k += 1
    return result


def _bernoulli_exp_minus(num: np.ndarray, den: int, bits: schedule._Bits) -> np.ndarray:
    """Bernoulli(exp(-num/den)) for any ``num >= 0``: floor(gamma) exp(-1) coins, then the rest."""
    whole = num // den
    alive = np.ones(num.shape, dtype=bool)
    step = 0
    while True:
        idx = np.flatnonzero(alive & (whole > step))
        if idx.size == 0:
            break
        alive[idx] = _bernoulli_exp_minus_fraction(np.ones(idx.size, dtype=np.int64), 1, bits)
        step += 1
    idx = np.flatnonzero(alive)
    alive[idx] = _bernoulli_exp_minus_fraction(num[idx] - whole[idx] * den, den, bits)
    return alive


def _discrete_laplace(scale: int, size: int, bits: schedule._Bits) -> np.ndarray:
    """``size`` draws of P(y) proportional to exp(-|y| / scale) (CKS 2020, Algorithm 2, s = 1)."""
    # Accepted draws are i.i.d. from the target, so each pass draws more candidates than still
    # needed (a pass accepts about 63 %) and keeps the first accepted ones: fewer, larger passes.
    accepted: list[np.ndarray] = []
    missing = size
    while missing:
        n = max(16, int(missing * 1.7))
        u = bits.below_one(scale, (n,)).astype(np.int64)
        keep = _bernoulli_exp_minus(u, scale, bits)
        u = u[keep]
        geometric = np.zeros(u.size, dtype=np.int64)
        going = np.arange(u.size)
        while going.size:  # the number of exp(-1) successes before the first failure
            hit = _bernoulli_exp_minus_fraction(np.ones(going.size, dtype=np.int64), 1, bits)
            geometric[going[hit]] += 1
            going = going[hit]
        magnitude = u + scale * geometric
        negative = (bits.words(u.size) & np.uint64(1)).astype(bool)
        valid = ~(negative & (magnitude == 0))  # -0 is rejected so that 0 is not counted twice
        signed = np.where(negative, -magnitude, magnitude)[valid][:missing]
        accepted.append(signed)
        missing -= signed.size
    return np.concatenate(accepted) if accepted else np.zeros(0, dtype=np.int64)


#: Largest variance :func:`discrete_gaussian` accepts as any integer (so that its integer
#: arithmetic fits int64).
MAX_VARIANCE = 5 * 10**7
#: Largest variance :func:`discrete_gaussian` accepts in the form ``t (t - 1)`` (t up to about
#: 3.2e7, sigma up to 3.2e7).
MAX_LARGE_VARIANCE = 10**15


def exact_variance_at_least(variance: float) -> int:
    """The smallest variance :func:`discrete_gaussian` draws that is at least ``variance``.

    An integer (the ceiling) up to :data:`MAX_VARIANCE`; beyond it the smallest ``t (t - 1)``
    with that property, which adds less than ``2 sigma`` to the variance (a relative ``2 / sigma``
    of it): more noise, never less.

    Args:
        variance: The wanted ``sigma^2``, in (0, :data:`MAX_LARGE_VARIANCE`].
    """
    variance = v.check_positive("variance", variance)
    if variance > MAX_LARGE_VARIANCE:
        raise ValueError(f"variance must be <= {MAX_LARGE_VARIANCE:.0e}, got {v._fmt(variance)}.")
    if variance <= MAX_VARIANCE:
        return max(1, math.ceil(variance))
    t = math.isqrt(math.ceil(variance)) + 1
    while (t - 1) * (t - 2) >= variance:
        t -= 1
    while t * (t - 1) < variance:
        t += 1
    return t * (t - 1)


def discrete_gaussian(variance: int, size: int, *, randomness: schedule.PrivateRandomness,
                      round_index: int | None = None) -> np.ndarray:
    """``size`` i.i.d. draws from the discrete Gaussian N_Z(0, variance), exactly.

    P(y) is proportional to ``exp(-y^2 / (2 variance))`` on the integers. Canonne, Kamath,
    Steinke 2020, Algorithm 3: draw ``y`` from a discrete Laplace of scale ``t = floor(sigma) + 1``
    and keep it with probability ``exp(-(|y| - sigma^2/t)^2 / (2 sigma^2))``. Every step is an
    integer comparison against uniform integers from ``randomness`` (no floating point), so no
    Mironov-style low-order-bit leak exists. For ``variance = t (t - 1)`` the acceptance
    exponent is ``x^2 / (2 t (t - 1))`` with the integer ``x = |y| - (t - 1)``, which keeps every
    quantity within int64 for variances up to 10^15; :func:`exact_variance_at_least` rounds a
    wanted variance to one the sampler takes.

    Args:
        variance: ``sigma^2``: an integer in 1..5 * 10^7, or ``t (t - 1)`` up to 10^15 (an exact
            integer: floats, and so integers beyond 2^53 rounded through float64, are refused).
        size: Number of draws in 0..2^27.
        randomness: A :class:`fl_helpers.schedule.PrivateRandomness`:
            ``PrivateRandomness.secret()`` for privacy; ``PrivateRandomness.reproducible(seed)``
            for tests and stored outputs only (NOT private).
        round_index: ``None`` (default): draw from the object's release stream, which every
            call continues. An integer ``t`` >= 0: draw round ``t``'s exact noise, the noise a
            private run's rule adds in round ``t`` (from the start of that round's stream; a
            secret object hands a round's noise out once, :class:`fl_helpers.schedule.
            NoiseReuseError`).

    Returns:
        int64 array of shape ``(size,)``.
    """
    variance = v.check_int("variance", variance, minimum=1, maximum=MAX_LARGE_VARIANCE)
    scale = math.isqrt(variance) + 1
    pronic = scale * (scale - 1) == variance
    if variance > MAX_VARIANCE and not pronic:
        raise ValueError(f"variance must be at most {MAX_VARIANCE} or of the form t (t - 1), got "
                         f"{variance}; round it with exact_variance_at_least().")
    size = _check_size("size", size)
    bits = _bits_of(randomness, round_index)
    return _discrete_gaussian(variance, size, bits)


def _discrete_gaussian(variance: int, size: int, bits: schedule._Bits) -> np.ndarray:
    """:func:`discrete_gaussian` from a checked variance and size and a private bit source."""
    scale = math.isqrt(variance) + 1
    pronic = scale * (scale - 1) == variance
    accepted: list[np.ndarray] = []
    missing = size
    while missing:  # as in _discrete_laplace: oversample, keep the first accepted draws
        y = _discrete_laplace(scale, max(16, int(missing * 1.6)), bits)
        if pronic:
            gap = np.abs(y) - (scale - 1)
            denominator = 2 * scale * (scale - 1)
        else:
            gap = scale * np.abs(y) - variance
            denominator = 2 * variance * scale * scale
        if np.any(np.abs(gap) > 2**31):  # |y| beyond 2^31 / scale or 2^31: below e^-200
            raise RuntimeError("discrete_gaussian: a discrete Laplace draw too far in the tail "
                               "for int64 arithmetic; this should never happen.")
        keep = _bernoulli_exp_minus(gap * gap, denominator, bits)
        chosen = y[keep][:missing]
        accepted.append(chosen)
        missing -= chosen.size
    return np.concatenate(accepted) if accepted else np.zeros(0, dtype=np.int64)


def _check_randomness(randomness: Any) -> schedule.PrivateRandomness:
    if not isinstance(randomness, schedule.PrivateRandomness):
        raise TypeError(f"randomness must be a PrivateRandomness, got {type(randomness).__name__} "
                        f"{v._fmt(randomness)}. Pass randomness=PrivateRandomness.secret().")
    return randomness


def _bits_of(randomness: Any, round_index: Any = None) -> schedule._Bits:
    """The checked ``randomness``'s bits: its release stream, or round ``round_index``'s."""
    randomness = _check_randomness(randomness)
    if round_index is None:
        return randomness._exact_bits()
    return randomness._exact_bits(v.check_index("round_index", round_index))


def discrete_gaussian_pmf(values: np.ndarray, variance: float) -> np.ndarray:
    """The probabilities of N_Z(0, variance) at the integers ``values`` (normalised numerically).

    Args:
        values: Integers (an integer array, or integral floats), of magnitude at most 2^53 so
            that float64 holds them exactly (larger ones are refused, not rounded).
        variance: ``sigma^2`` in (0, 5 * 10^7].

    Returns:
        float64 array like ``values``.
    """
    array = _check_pmf_values(values)
    variance = v.check_positive("variance", variance)
    if variance > MAX_VARIANCE:
        raise ValueError(f"variance must be <= {MAX_VARIANCE}, got {v._fmt(variance)}.")
    span = int(math.ceil(40 * math.sqrt(variance))) + 1
    support = np.arange(-span, span + 1, dtype=np.float64)
    norm = math.fsum(np.exp(-support**2 / (2 * variance)))
    return np.exp(-array**2 / (2 * variance)) / norm


def _check_pmf_values(values: Any) -> np.ndarray:
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"values must be an array of integers, got {type(values).__name__}.")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"values must be an array of integers, got {type(values).__name__}."
                        ) from error
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"values must be an array of integers, got dtype {array.dtype}.")
    _check_size("the size of values", array.size)
    if array.size == 0:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("values must be finite, got NaN or inf.")
        if np.any(array != np.round(array)):
            raise ValueError("values must be integers (the discrete Gaussian lives on Z), got "
                             "non-integral floats.")
    largest = max(abs(int(np.max(array))), abs(int(np.min(array))))
    if largest > MAX_EXACT_INT:
        raise ValueError(f"values must have magnitude <= 2**53 (float64 holds no larger integer "
                         f"exactly), got {v._fmt(largest)}.")
    return array.astype(np.float64)




# --------------------------------------------------------------------------------------------
# Updates on an integer grid, clipped exactly
# --------------------------------------------------------------------------------------------

#: Grid steps per clipping norm of :func:`clip_to_integer_grid` in DP-FedAvg: an update clipped to
#: ``C`` becomes an integer vector of L2 norm at most 2^16, each step ``C / 2^16``. The rounding
#: adds about ``sqrt(d / 12) / 2^16`` of ``C`` per client (0.04 % for d = 7,850).
GRID_STEPS = 2**16


def clip_to_integer_grid(updates: np.ndarray, *, clipping_norm: float, steps: int) -> np.ndarray:
    """Each row clipped to L2 norm ``clipping_norm`` and rounded to the grid ``clipping_norm /
    steps``, as integers whose L2 norm is at most ``steps`` **exactly**.

    The scaling and rounding are done in float64: each row is scaled to the grid (``x steps /
    C``) and, if longer, shortened to ``steps - sqrt(d) / 2`` grid steps, which leaves room for
    the rounding (at most half a step per coordinate); then ``rint``. Every row's squared norm is
    then computed exactly (in float64 while its partial sums stay below 2^53, else in int64), and
    a row above ``steps^2`` (possible only when ``d`` is so large that there was no room) is
    scaled by a factor a little below ``steps / norm`` and rounded again, until the exact check
    holds. So the sensitivity of a sum of such rows is ``steps`` grid steps, whatever floating
    point did before.

    Args:
        updates: ``(m, d)`` finite floats, one flattened update per row.
        clipping_norm: ``C`` > 0.
        steps: Grid steps per ``C``, an integer in 1..2^24.

    Returns:
        ``(m, d)`` int64.
    """
    if updates is None or isinstance(updates, (str, bytes)):
        raise TypeError(f"updates must be a 2-D array of floats, got {type(updates).__name__}.")
    try:
        rows = np.asarray(updates, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"updates must be a 2-D array of floats, got {type(updates).__name__}."
                        ) from error
    if rows.ndim != 2:
        raise ValueError(f"updates must be a 2-D array (one row per client), got shape "
                         f"{rows.shape}.")
    if not np.isfinite(rows).all():
        raise ValueError("updates must be finite, got NaN or inf.")
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    steps = v.check_int("steps", steps, minimum=1, maximum=2**24)
    if rows.shape[1] * (steps + 1) ** 2 >= 2**62:
        raise ValueError(f"updates of {rows.shape[1]} values with {steps} steps would overflow "
                         "int64 norms.")
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    # Rounding moves a row by at most sqrt(d) / 2 grid steps, so a row scaled to at most
    # steps - sqrt(d) / 2 always passes the exact check below: no second rounding is needed.
    # (For d = 7,850 that shrinks a clipped update by 0.07 %; for the 2NN's 199,210, 0.34 %.)
    room = steps - math.sqrt(rows.shape[1]) / 2
    target = room if room > steps / 2 else float(steps)
    with np.errstate(divide="ignore", over="ignore"):  # a zero row: inf, then steps / C
        scale = np.minimum(steps / clipping_norm,
                           target / np.maximum(norms, np.finfo(np.float64).tiny))
    grid = rows * scale[:, None]
    np.rint(grid, out=grid)
    limit = steps * steps
    # The rounded rows hold integers of norm at most steps + sqrt(d) / 2. While every partial
    # sum of their squares stays below 2^53, float64 computes the squared norms exactly (each
    # square and each partial sum is an integer it represents), and far faster than int64.
    if (steps + math.sqrt(rows.shape[1]) / 2 + 1) ** 2 < 2.0**52:
        squared = np.einsum("ij,ij->i", grid, grid)
        if not (squared > limit).any():
            return grid.astype(np.int64)
    ints = grid.astype(np.int64)
    for attempt in range(64):
        squared = np.einsum("ij,ij->i", ints, ints)
        over = squared > limit
        if not over.any():
            return ints
        # Scale down a little more at every attempt and round again; the exact check decides.
        shrink = steps / np.sqrt(squared[over].astype(np.float64)) * (1.0 - 2.0**(attempt - 24))
        ints[over] = np.rint(ints[over] * shrink[:, None]).astype(np.int64)
    raise RuntimeError("clip_to_integer_grid: could not bring a row within the bound; this "
                       "should never happen.")  # pragma: no cover


#: Grid steps per clipping norm of :func:`integer_outer_sum` (one-example clients): finer than
#: :data:`GRID_STEPS`, because each factor of a rank-one update is rounded on its own.
FACTOR_GRID_STEPS = 2**22


def integer_outer_sum(layers: list[tuple[np.ndarray, np.ndarray]], *, clipping_norm: float,
                      steps: int = FACTOR_GRID_STEPS) -> list[np.ndarray]:
    """The exact integer sum of rank-one updates, each clipped to ``steps`` grid steps exactly.

    A client with one example takes one step: for every Dense layer its update is the outer
    product of the layer's input ``a`` (with a 1 appended for the bias) and a scaled output
    gradient ``w``, ``(a, 1) (x) w``. Rounding each factor instead of the product keeps the work
    at ``m (d_in + d_out)`` per layer instead of ``m d_in d_out``: ``A = rint((a, 1) 2^p / ||(a,
    1)||)`` and ``D = rint(w ||(a, 1)|| steps / (C 2^p))`` with ``2^p = sqrt(steps)``, so
    ``A (x) D`` is the update in grid steps of ``C / steps``. The client's squared norm
    ``sum_layers ||A||^2 ||D||^2`` is computed in int64, exactly, and a client above
    ``steps^2`` has its ``D`` scaled down and rounded again until it is not. The sums
    ``sum_k A_k (x) D_k`` are float64 matrix products of integers whose partial sums stay below
    2^53, hence exact.

    Args:
        layers: Per Dense layer, ``(a, w)``: ``(m, d_in)`` inputs and ``(m, d_out)`` scaled
            output gradients of the ``m`` clients (the update is ``(a, 1) (x) w``).
        clipping_norm: ``C`` > 0.
        steps: Grid steps per ``C``, a power of four in 4..2^26.

    Returns:
        Per layer, the kernel sum ``(d_in, d_out)`` and the bias sum ``(d_out,)``, int64.
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    steps = v.check_int("steps", steps, minimum=4, maximum=2**26)
    root = math.isqrt(steps)
    if root * root != steps or root & (root - 1):
        raise ValueError(f"steps must be a power of four, got {steps}.")
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"layers must be a non-empty list of (inputs, output gradients) pairs, "
                        f"got {type(layers).__name__}.")
    checked: list[list[np.ndarray]] = []
    for i, pair in enumerate(layers):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"layers[{i}] must be a pair (inputs, output gradients), got "
                            f"{type(pair).__name__}.")
        arrays = []
        for name, value in zip(("inputs", "output gradients"), pair, strict=True):
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise TypeError(f"layers[{i}] {name} must be a 2-D float array, got "
                                f"{type(value).__name__}.") from error
            if array.ndim != 2 or not np.isfinite(array).all():
                raise ValueError(f"layers[{i}] {name} must be a finite 2-D array (one row per "
                                 f"client), got shape {array.shape}.")
            arrays.append(array)
        clients = len(checked[0][0]) if checked else len(arrays[0])
        if len(arrays[0]) != clients or len(arrays[1]) != clients:
            raise ValueError(f"layers[{i}] must have one row per client in both arrays, as every "
                             "layer, got " + " and ".join(str(len(x)) for x in arrays) + " rows.")
        checked.append(arrays)
    factors = []
    for a, w in checked:
        augmented = np.concatenate([a, np.ones((len(a), 1), np.float64)], axis=1)
        length = np.sqrt(np.einsum("ij,ij->i", augmented, augmented))
        big_a = np.rint(augmented * (root / length)[:, None]).astype(np.int64)
        scaled_w = w * (length * (steps / (clipping_norm * root)))[:, None]
        factors.append((big_a, scaled_w))
    count = len(factors[0][0]) if factors else 0
    limit = steps * steps
    # Clip in floating point first (the factors' norms), so that the integers below stay far
    # from int64's range; the exact check after rounding is what the guarantee rests on.
    approximate = np.sqrt(sum(np.einsum("ij,ij->i", big_a, big_a).astype(np.float64)
                              * np.einsum("ij,ij->i", scaled, scaled)
                              for big_a, scaled in factors)) if factors else np.zeros(0)
    # Rounding D moves A (x) D by at most ||A|| sqrt(d_out) / 2 per layer: a client shortened to
    # steps minus that (and one step more, for the float estimate) passes the exact check
    # without a second rounding (for the headline's perceptron: 0.25 % of a clipped update).
    margin = np.sqrt(sum(np.einsum("ij,ij->i", big_a, big_a).astype(np.float64)
                         * scaled.shape[1] / 4 for big_a, scaled in factors)) + 1.0
    target = np.where(margin < steps / 2, steps - margin, float(steps))
    shrink = np.minimum(1.0, target / np.maximum(approximate, np.finfo(np.float64).tiny))
    for attempt in range(64):
        big_d = [np.rint(scaled * shrink[:, None]).astype(np.int64) for _, scaled in factors]
        parts = [(np.einsum("ij,ij->i", big_a, big_a), np.einsum("ij,ij->i", d, d))
                 for (big_a, _), d in zip(factors, big_d, strict=True)]
        # Products of int64 norms overflow beyond 2^63: decide those in float64 (far over).
        rough = sum(na.astype(np.float64) * nd.astype(np.float64) for na, nd in parts)
        safe = rough < 2.0**61
        squared = sum(np.where(safe, na, 0) * np.where(safe, nd, 0) for na, nd in parts)
        over = ~safe | (squared > limit)
        if not np.any(over):
            break
        shrink[over] *= steps / np.sqrt(np.maximum(rough[over], 1.0)) \
            * (1.0 - 2.0**(attempt - 24))
    else:  # pragma: no cover
        raise RuntimeError("integer_outer_sum: could not bring a client within the bound.")
    sums = []
    for (big_a, _), d in zip(factors, big_d, strict=True):
        if count * root * (steps // root + 1) * 2 >= 2**53:
            raise ValueError(f"{count} clients would overflow the exact float64 sums.")
        product = big_a.T.astype(np.float64) @ d.astype(np.float64)  # exact: integers < 2^53
        sums += [product[:-1].astype(np.int64), product[-1].astype(np.int64)]
    return sums
