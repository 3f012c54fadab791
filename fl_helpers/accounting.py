"""Privacy accounting with Google's ``dp-accounting`` library: epsilon after many noisy steps.

DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy") and DP-FedAvg (McMahan et
al. 2018, "Learning Differentially Private Recurrent Language Models") both repeat one step
``num_rounds`` times: Poisson-sample each example (or client) with probability
``sampling_probability``, sum the clipped contributions and add Gaussian noise of std
``noise_multiplier * clipping_norm``. Their privacy is accounted with Renyi differential privacy
(Mironov 2017, "Renyi Differential Privacy", Proposition 1 for composition) and the RDP of the
subsampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, "Renyi Differential Privacy of the
Sampled Gaussian Mechanism", Section 3), converted to (epsilon, delta) with the bound of
Canonne, Kamath & Steinke 2020 ("The Discrete Gaussian for Differential Privacy", Proposition 12),
which is what dp-accounting's ``RdpAccountant`` does.

The RDP orders are fixed in :data:`RDP_ORDERS` so every notebook gets the same numbers.
Functions here silence dp-accounting's absl warnings (e.g. "failed to converge ... Excluding this
order"), which only say that one order was dropped from the minimum.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import dp_accounting
import numpy as np
from absl import logging as absl_logging
from dp_accounting.rdp import rdp_privacy_accountant
from scipy import optimize

from fl_helpers import _validation as v

#: Renyi orders alpha at which RDP is tracked; epsilon is the minimum over them. Fine steps of
#: 0.1 between 1.1 and 10.9 (small epsilon / large noise is optimised by small orders), every
#: integer from 11 to 63, then 128, 256, 512 and 1024 (large epsilon). These are dp-accounting's
#: default orders, written out so that a change of default cannot silently change our numbers.
RDP_ORDERS: tuple[float, ...] = (
    tuple(1.0 + x / 10.0 for x in range(1, 100))
    + tuple(float(order) for order in range(11, 64))
    + (128.0, 256.0, 512.0, 1024.0)
)

#: The range :func:`noise_multiplier_for_epsilon` searches.
MIN_NOISE_MULTIPLIER = 0.01
MAX_NOISE_MULTIPLIER = 1000.0


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """Raises absl's log threshold to ERROR for the duration, then restores it."""
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(previous)


def _subsampled_gaussian_event(noise_multiplier: float, sampling_probability: float
                               ) -> dp_accounting.DpEvent:
    return dp_accounting.PoissonSampledDpEvent(
        sampling_probability, dp_accounting.GaussianDpEvent(noise_multiplier))


def _check_common(noise_multiplier: float, sampling_probability: float, num_rounds: int,
                  target_delta: float) -> tuple[float, float, int, float]:
    return (v.check_positive("noise_multiplier", noise_multiplier),
            v.check_probability("sampling_probability", sampling_probability),
            v.check_int("num_rounds", num_rounds, minimum=1),
            v.check_open_unit("target_delta", target_delta))


def dp_fedavg_epsilon(*, noise_multiplier: float, sampling_probability: float, num_rounds: int,
                      target_delta: float) -> float:
    """Epsilon of ``num_rounds`` Poisson-subsampled Gaussian steps, from dp-accounting's RDP.

    The event is ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(z)), T)``,
    composed into an ``RdpAccountant`` over :data:`RDP_ORDERS` (Mironov, Talwar & Zhang 2019).
    It serves DP-SGD (q = batch_size / num_examples, T = steps) and DP-FedAvg
    (q = clients_per_round / num_clients, T = rounds) alike; the neighbouring relation is adding
    or removing one example (DP-SGD) or one client's whole data (DP-FedAvg).

    Args:
        noise_multiplier: Noise std divided by the clipping norm (L2 sensitivity), > 0.
        sampling_probability: Poisson sampling probability q per round, in (0, 1].
        num_rounds: Number of rounds (or steps) T, >= 1.
        target_delta: The delta of the (epsilon, delta) guarantee, in (0, 1).

    Returns:
        epsilon (>= 0; ``inf`` if the accountant cannot bound it).

    Raises:
        ValueError: If an argument is outside its range or not finite.
        TypeError: If an argument has the wrong type.
    """
    noise_multiplier, sampling_probability, num_rounds, target_delta = _check_common(
        noise_multiplier, sampling_probability, num_rounds, target_delta)
    event = dp_accounting.SelfComposedDpEvent(
        _subsampled_gaussian_event(noise_multiplier, sampling_probability), num_rounds)
    with _quiet_absl():
        accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
        accountant.compose(event)
        return float(accountant.get_epsilon(target_delta))


def _single_step_rdp(event: dp_accounting.DpEvent) -> np.ndarray:
    """RDP of one ``event`` at each of :data:`RDP_ORDERS` (``inf`` where it cannot be bounded).

    dp-accounting has no public getter for the RDP curve, so this reads the accountant's
    ``_rdp`` array after composing the event once. The tests check that the curves built on it
    reproduce the accountant's public ``get_epsilon`` exactly.
    """
    with _quiet_absl():
        accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
        accountant.compose(event)
    return np.array(accountant._rdp, dtype=np.float64)


def _epsilon_after_counts(rdp_one: np.ndarray, counts: np.ndarray, delta: float) -> np.ndarray:
    """Epsilon after each number of compositions in ``counts``, vectorised over counts and orders.

    RDP composes additively (Mironov 2017, Proposition 1), so after ``t`` steps the RDP at
    order alpha is ``t * rdp_one[alpha]``. Each is converted to epsilon with Canonne, Kamath &
    Steinke 2020, Proposition 12: ``eps = rdp + log1p(-1/alpha) - log(delta * alpha) /
    (alpha - 1)``, or 0 when ``delta^2 + expm1(-rdp) > 0`` (the KL bound already gives delta),
    only for alpha > 1.01 -- the same case analysis as dp-accounting's ``compute_epsilon`` --
    and the minimum over orders is taken.
    """
    orders = np.asarray(RDP_ORDERS)
    offset = np.log1p(-1.0 / orders) - np.log(delta * orders) / (orders - 1.0)
    usable = orders > 1.01
    result = np.empty(len(counts))
    chunk = max(1, 2**21 // len(orders))  # keep the temporary matrix to ~16 MB
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, len(counts), chunk):
            rdp = counts[start:start + chunk, None] * rdp_one[None, :]
            eps = np.where(usable, rdp + offset, np.inf)
            eps = np.where(delta**2 + np.expm1(-rdp) > 0, 0.0, eps)
            eps = np.where(rdp < 0, 0.0, eps)
            result[start:start + chunk] = np.maximum(0.0, eps.min(axis=1))
    return result


def epsilon_per_round(*, noise_multiplier: float, sampling_probability: float, num_rounds: int,
                      target_delta: float) -> np.ndarray:
    """Epsilon after each round 1, 2, ..., ``num_rounds`` of the subsampled Gaussian mechanism.

    Same accounting as :func:`dp_fedavg_epsilon` (``result[-1]`` equals it), but the RDP of one
    round is computed once and scaled by the round number, so the whole curve costs about as much
    as one call: 14,062 rounds take a fraction of a second instead of minutes. Use it to plot
    epsilon round by round or to stop training when a budget is spent.

    Args:
        noise_multiplier: Noise std divided by the clipping norm, > 0.
        sampling_probability: Poisson sampling probability q per round, in (0, 1].
        num_rounds: Number of rounds T, >= 1.
        target_delta: The delta of the guarantee, in (0, 1).

    Returns:
        Float64 array of shape ``(num_rounds,)``; entry ``t - 1`` is epsilon after ``t`` rounds.

    Raises:
        ValueError: If an argument is outside its range or not finite.
        TypeError: If an argument has the wrong type.
    """
    noise_multiplier, sampling_probability, num_rounds, target_delta = _check_common(
        noise_multiplier, sampling_probability, num_rounds, target_delta)
    rdp_one = _single_step_rdp(_subsampled_gaussian_event(noise_multiplier, sampling_probability))
    counts = np.arange(1, num_rounds + 1, dtype=np.float64)
    return _epsilon_after_counts(rdp_one, counts, target_delta)


def laplace_epsilon_per_release(*, epsilon: float, num_releases: int,
                                target_delta: float) -> np.ndarray:
    """Epsilon after 1, 2, ..., ``num_releases`` Laplace releases, each epsilon-DP, by RDP.

    Uses the exact RDP of the Laplace mechanism (Mironov 2017, Proposition 6; dp-accounting's
    ``LaplaceDpEvent`` with noise multiplier ``1 / epsilon``), composed additively and converted
    to (epsilon, delta). Compare with basic composition, ``k * epsilon`` (Dwork & Roth 2014,
    Theorem 3.16): RDP is worse for a few releases (the conversion to delta costs something) and
    much better for many, growing like ``sqrt(k)`` instead of ``k``.

    Args:
        epsilon: The pure-DP epsilon of each release, > 0.
        num_releases: Number of releases k, >= 1.
        target_delta: The delta of the overall guarantee, in (0, 1).

    Returns:
        Float64 array of shape ``(num_releases,)``; entry ``k - 1`` is epsilon after ``k``.

    Raises:
        ValueError: If an argument is outside its range or not finite.
        TypeError: If an argument has the wrong type.
    """
    epsilon = v.check_positive("epsilon", epsilon)
    num_releases = v.check_int("num_releases", num_releases, minimum=1)
    target_delta = v.check_open_unit("target_delta", target_delta)
    rdp_one = _single_step_rdp(dp_accounting.LaplaceDpEvent(1.0 / epsilon))
    counts = np.arange(1, num_releases + 1, dtype=np.float64)
    return _epsilon_after_counts(rdp_one, counts, target_delta)


def noise_multiplier_for_epsilon(*, target_epsilon: float, target_delta: float,
                                 sampling_probability: float, num_rounds: int,
                                 rtol: float = 1e-4) -> float:
    """The smallest noise multiplier whose :func:`dp_fedavg_epsilon` is at most ``target_epsilon``.

    Epsilon falls as the noise multiplier grows, so a bracketed root search (Brent's method, a
    bisection safeguarded with interpolation) on ``log(noise_multiplier)`` over
    [:data:`MIN_NOISE_MULTIPLIER`, :data:`MAX_NOISE_MULTIPLIER`] finds it. The result is then
    nudged up until the guarantee is checked to hold:
    ``dp_fedavg_epsilon(noise_multiplier=result, ...) <= target_epsilon``, with ``result`` within
    ``rtol`` of the exact inverse.

    Args:
        target_epsilon: The epsilon to reach, > 0.
        target_delta: The delta of the guarantee, in (0, 1).
        sampling_probability: Poisson sampling probability q per round, in (0, 1].
        num_rounds: Number of rounds T, >= 1.
        rtol: Relative precision of the returned noise multiplier, in (0, 1).

    Returns:
        The noise multiplier (noise std / clipping norm).

    Raises:
        ValueError: If an argument is out of range, or the target cannot be met inside the
            searched range (too small an epsilon for the accountant, or so large that almost
            no noise is needed).
        TypeError: If an argument has the wrong type.
    """
    target_epsilon = v.check_positive("target_epsilon", target_epsilon)
    target_delta = v.check_open_unit("target_delta", target_delta)
    sampling_probability = v.check_probability("sampling_probability", sampling_probability)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
    rtol = v.check_open_unit("rtol", rtol)

    @functools.cache  # brentq re-evaluates the bracket ends
    def epsilon_at(noise_multiplier: float) -> float:
        return dp_fedavg_epsilon(noise_multiplier=noise_multiplier,
                                 sampling_probability=sampling_probability,
                                 num_rounds=num_rounds, target_delta=target_delta)

    # Bracket the root by doubling / halving from noise_multiplier = 1 (epsilon falls as the
    # noise grows), stopping with a clear error at the ends of the searched range.
    low = high = 1.0
    if epsilon_at(1.0) > target_epsilon:
        while epsilon_at(high) > target_epsilon:
            low, high = high, 2.0 * high
            if high > MAX_NOISE_MULTIPLIER:
                epsilon_max_noise = epsilon_at(MAX_NOISE_MULTIPLIER)
                if epsilon_max_noise > target_epsilon:
                    raise ValueError(
                        f"target_epsilon={target_epsilon} cannot be reached: even "
                        f"noise_multiplier={MAX_NOISE_MULTIPLIER} gives epsilon="
                        f"{epsilon_max_noise:.4g} with sampling_probability="
                        f"{sampling_probability}, num_rounds={num_rounds}, target_delta="
                        f"{target_delta}. Raise target_epsilon or target_delta.")
                high = MAX_NOISE_MULTIPLIER
    else:
        while epsilon_at(low) <= target_epsilon:
            low, high = 0.5 * low, low
            if low < MIN_NOISE_MULTIPLIER:
                epsilon_min_noise = epsilon_at(MIN_NOISE_MULTIPLIER)
                if epsilon_min_noise <= target_epsilon:
                    raise ValueError(
                        f"target_epsilon={target_epsilon} is met even with noise_multiplier="
                        f"{MIN_NOISE_MULTIPLIER} (epsilon={epsilon_min_noise:.4g}): such a "
                        "guarantee is meaningless. Use a smaller target_epsilon.")
                low = MIN_NOISE_MULTIPLIER
    # Brent's method (bracketed: bisection steps whenever interpolation misbehaves) on
    # log(epsilon) against log(noise_multiplier), which is close to a straight line, so it
    # needs far fewer accountant calls than plain bisection.
    log_target = math.log(target_epsilon)
    step = math.log1p(rtol)
    log_noise = optimize.brentq(
        lambda log_z: math.log(max(epsilon_at(math.exp(log_z)), 1e-300)) - log_target,
        math.log(low), math.log(high), xtol=step / 4)
    # The root is only known to within xtol: step up until the guarantee provably holds.
    while epsilon_at(math.exp(log_noise)) > target_epsilon:
        log_noise += step / 4
    return math.exp(log_noise)
