"""Auditing DP-FedAvg with canary clients: an empirical lower bound on its epsilon.

A DP guarantee is a claim about *every* membership test. An audit runs one strong test and
turns its success into a lower bound ``epsilon_LB`` that holds with a stated confidence: if the
implementation really is ``(epsilon, delta)``-DP then ``epsilon_LB <= epsilon`` (up to the
confidence level), so ``epsilon_LB > epsilon`` proves a bug (Jagielski, Ullman, Oprea 2020,
"Auditing Differentially Private Machine Learning: How Private is Private SGD?", Section 3;
Nasr et al. 2021, "Adversary Instantiation: Lower Bounds for Differentially Private Machine
Learning", Section 4).

The canary here is a client whose update is a crafted direction ``u`` with norm far above the
clipping norm ``C`` (after clipping it contributes exactly ``C u``, the largest change one client
may make). :func:`canary_audit` runs one aggregation round many times with the canary and many
times without, through the aggregation rule's own code path (its clipping, its noise, its
randomness), and scores each released update by its projection on ``u``. The neighbouring
relation is the one DP-FedAvg's epsilon is stated for: the same round with and without one
client. :func:`epsilon_lower_bound` then picks a threshold on half of the trials and bounds the
false-positive and false-negative rates of that test on the other half with Clopper-Pearson
intervals; ``(epsilon, delta)``-DP requires ``FPR + e^eps FNR >= 1 - delta`` and
``FNR + e^eps FPR >= 1 - delta`` (Kairouz, Oh, Viswanath 2015, Theorem 2.1), which gives the
bound. With ``n`` trials a side the bound cannot exceed about ``log(n / 3)``: an audit can only
catch implementations that leak a lot more than they claim.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.special

from fl_helpers import _validation as v
from fl_helpers import aggregation, schedule

Weights = list[np.ndarray]

#: Most values a canary update may have in all (a model far beyond the course's, 400 MB).
MAX_CANARY_SIZE = 10**8


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """The outcome of an audit.

    Attributes:
        epsilon_lower_bound: ``epsilon_LB`` >= 0, valid with probability >= ``confidence``.
        threshold: The test's threshold ("score >= threshold" means "the canary was there").
        false_positive_rate: Measured on the evaluation half.
        false_negative_rate: Measured on the evaluation half.
        fpr_upper: Clopper-Pearson upper bound on the false-positive rate.
        fnr_upper: Clopper-Pearson upper bound on the false-negative rate.
        trials_per_side: Trials with (and without) the canary used for the bound.
        delta: The ``delta`` the bound is for.
        confidence: Joint confidence of both rate bounds.
    """

    epsilon_lower_bound: float
    threshold: float
    false_positive_rate: float
    false_negative_rate: float
    fpr_upper: float
    fnr_upper: float
    trials_per_side: int
    delta: float
    confidence: float


def _check_counts(name: str, value: Any) -> np.ndarray:
    """Integer counts (an int, or a list or array of them; integral floats too), as float64."""
    if isinstance(value, (list, tuple, np.ndarray)):
        array = v.check_float_array(name, value, min_size=0)
    else:
        array = np.asarray(v.check_real(name, value))
    if np.any(array != np.round(array)):
        raise TypeError(f"{name} must hold integers, got {v._fmt(value)}.")
    return array


def clopper_pearson(successes: Any, trials: Any, *, confidence: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided binomial confidence interval (Clopper & Pearson 1934) for a rate.

    The bounds are Beta quantiles: ``lower = Beta^{-1}(alpha/2; k, n - k + 1)`` and
    ``upper = Beta^{-1}(1 - alpha/2; k + 1, n - k)``, with ``alpha = 1 - confidence``
    (``lower = 0`` where ``k = 0`` and ``upper = 1`` where ``k = n``). The course's one
    implementation: the audits here and :func:`fl_helpers.attacks.roc_under_bound` use it.

    Args:
        successes: Counts ``k``, integers in ``0..trials`` (an int or an array; integral floats
            too).
        trials: Counts ``n >= 1`` (an int or an array broadcasting with ``successes``).
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(lower, upper)``, float64 arrays (0-d for scalar counts): each covers the true rate
        with probability >= ``confidence`` (and each one-sided bound with probability
        >= ``(1 + confidence) / 2``).

    Raises:
        TypeError, ValueError: If the counts or the confidence are out of range.
    """
    confidence = v.check_open_unit("confidence", confidence)
    k = _check_counts("successes", successes)
    n = _check_counts("trials", trials)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n) or np.any(k != np.round(k)):
        raise ValueError(f"successes must be integers in 0..trials and trials >= 1, got "
                         f"{successes!r} of {trials!r}.")
    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):
        lower = np.where(k == 0, 0.0, scipy.special.betaincinv(k, n - k + 1, alpha / 2))
        upper = np.where(k == n, 1.0, scipy.special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return lower, upper


def _epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """``max(log((1 - delta - FNR) / FPR), log((1 - delta - FPR) / FNR), 0)``, elementwise.

    The one conversion of a test's error rates into a lower bound on epsilon (Kairouz, Oh,
    Viswanath 2015, Theorem 2.1), used by both audits here.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.log(np.maximum(1 - delta - fnr, 0) / fpr)
        second = np.log(np.maximum(1 - delta - fpr, 0) / fnr)
    return np.nan_to_num(np.maximum(np.maximum(first, second), 0), nan=0.0, posinf=0.0)


def empirical_epsilon_lower_bound(outputs_0: Any, outputs_1: Any, *, threshold: float,
                                  delta: float = 0.0, confidence: float = 0.95) -> float:
    """A statistical lower bound on epsilon from samples of a mechanism on neighbouring inputs.

    The attacker guesses "input 1" when the output exceeds ``threshold``. If the mechanism is
    (epsilon, delta)-DP, then ``P[M(1) > t] <= e^epsilon P[M(0) > t] + delta`` for every t (and
    the same with 0 and 1 swapped, for the event ``output <= t``). Replacing each probability by
    the conservative end of its Clopper-Pearson interval gives
    ``epsilon >= ln((p1_low - delta) / p0_high)``, which holds with probability >= ``confidence``
    (two one-sided bounds of level ``(1 + confidence) / 2`` each, union bound). Both events are
    tried and the larger bound is returned; 0 if neither gives evidence. This is the bound of
    :func:`epsilon_lower_bound` for the test "output > t" (false-positive rate ``p0``,
    false-negative rate ``1 - p1``). The threshold must be fixed before looking at the samples,
    otherwise the confidence statement is void.

    Args:
        outputs_0: Outputs of the mechanism on input 0 (at least one).
        outputs_1: Outputs of the mechanism on the neighbouring input 1.
        threshold: The attacker's decision threshold t, fixed in advance.
        delta: The delta the mechanism claims (0 for pure DP), in [0, 1).
        confidence: Probability that the bound is valid, in (0, 1).

    Returns:
        The lower bound on epsilon (>= 0).

    Raises:
        TypeError, ValueError: For empty samples or arguments out of range.
    """
    outputs_0 = v.check_float_array("outputs_0", outputs_0).ravel()
    outputs_1 = v.check_float_array("outputs_1", outputs_1).ravel()
    threshold = v.check_real("threshold", threshold)
    delta = v.check_in_range("delta", delta, 0, 1, high_open=True)
    confidence = v.check_open_unit("confidence", confidence)
    # p_b = P[M(b) > t]. Both events use only p0_high and p1_low (the event "output <= t" has
    # probabilities 1 - p_b), so two one-sided bounds of level (1 + confidence) / 2 suffice:
    # exactly the ends of the two-sided intervals at level `confidence`.
    _, p0_high = clopper_pearson(int(np.sum(outputs_0 > threshold)), outputs_0.size,
                                 confidence=confidence)
    p1_low, _ = clopper_pearson(int(np.sum(outputs_1 > threshold)), outputs_1.size,
                                confidence=confidence)
    return float(_epsilon_from_rates(p0_high, 1.0 - p1_low, delta))


def epsilon_lower_bound(in_scores: Any, out_scores: Any, *, delta: float,
                        confidence: float = 0.95) -> AuditResult:
    """A lower bound on epsilon from scores of runs with (``in``) and without (``out``) a canary.

    The first half of each side chooses the threshold (the one whose bound, computed the same
    way on that half, is largest); the second half, untouched by that choice, measures the
    test's error rates, bounded above with Clopper-Pearson at joint confidence ``confidence``
    (each side at ``(1 + confidence) / 2``). The bound is ``max(log((1 - delta - FNR_up) / FPR_up),
    log((1 - delta - FPR_up) / FNR_up), 0)``.

    Args:
        in_scores: Scores of the runs with the canary (larger means "canary present").
        out_scores: Scores of the runs without it.
        delta: The ``delta`` of the guarantee being audited, in [0, 1).
        confidence: In (0, 1).

    Returns:
        An :class:`AuditResult`.
    """
    ins = v.check_float_array("in_scores", in_scores).reshape(-1)
    outs = v.check_float_array("out_scores", out_scores).reshape(-1)
    if ins.size < 4 or outs.size < 4:
        raise ValueError(f"in_scores and out_scores need >= 4 scores each, got {ins.size} and "
                         f"{outs.size}.")
    delta = v.check_in_range("delta", delta, 0, 1, high_open=True)
    confidence = v.check_open_unit("confidence", confidence)
    half_in, half_out = ins.size // 2, outs.size // 2
    pick_in, eval_in = ins[:half_in], ins[half_in:]
    pick_out, eval_out = outs[:half_out], outs[half_out:]
    thresholds = np.unique(np.concatenate([pick_in, pick_out]))
    # On the first half, the bound each threshold would give (counts penalised the same way).
    fp = pick_out.size - np.searchsorted(np.sort(pick_out), thresholds, side="left")
    fn = np.searchsorted(np.sort(pick_in), thresholds, side="left")
    _, fp_up = clopper_pearson(fp, pick_out.size, confidence=confidence)
    _, fn_up = clopper_pearson(fn, pick_in.size, confidence=confidence)
    threshold = float(thresholds[int(np.argmax(_epsilon_from_rates(fp_up, fn_up, delta)))])
    false_pos = int(np.count_nonzero(eval_out >= threshold))
    false_neg = int(np.count_nonzero(eval_in < threshold))
    _, fpr_up = clopper_pearson(false_pos, eval_out.size, confidence=confidence)
    _, fnr_up = clopper_pearson(false_neg, eval_in.size, confidence=confidence)
    bound = float(_epsilon_from_rates(np.asarray(fpr_up), np.asarray(fnr_up), delta))
    return AuditResult(epsilon_lower_bound=bound, threshold=threshold,
                       false_positive_rate=false_pos / eval_out.size,
                       false_negative_rate=false_neg / eval_in.size,
                       fpr_upper=float(fpr_up), fnr_upper=float(fnr_up),
                       trials_per_side=int(min(eval_in.size, eval_out.size)), delta=delta,
                       confidence=confidence)


def canary_update(shapes: Sequence[tuple[int, ...]], *, norm: float,
                  rng: np.random.Generator) -> Weights:
    """A crafted update: a random unit direction (drawn from ``rng``, public) times ``norm``."""
    norm = v.check_positive("norm", norm)
    rng = v.check_rng("rng", rng)
    shapes = _check_shapes(shapes)
    sizes = [math.prod(shape) for shape in shapes]
    direction = rng.standard_normal(sum(sizes))
    direction *= norm / np.linalg.norm(direction)
    pieces = np.split(direction.astype(np.float32), np.cumsum(sizes)[:-1])
    return [p.reshape(shape) for p, shape in zip(pieces, shapes, strict=True)]


def _check_shapes(shapes: Any) -> list[tuple[int, ...]]:
    if isinstance(shapes, (str, bytes, np.ndarray)) or not isinstance(shapes, Sequence) \
            or not shapes:
        raise TypeError(f"shapes must be a non-empty list of array shapes (tuples of ints), got "
                        f"{type(shapes).__name__} {v._fmt(shapes)}.")
    checked = []
    for i, shape in enumerate(shapes):
        if not isinstance(shape, tuple):
            raise TypeError(f"shapes[{i}] must be a tuple of ints, got {type(shape).__name__} "
                            f"{v._fmt(shape)}.")
        checked.append(tuple(v.check_int(f"shapes[{i}][{j}]", n, minimum=0)
                             for j, n in enumerate(shape)))
    total = sum(math.prod(shape) for shape in checked)
    if not 1 <= total <= MAX_CANARY_SIZE:
        raise ValueError(f"shapes must hold 1 to {MAX_CANARY_SIZE} values in all, got {total}.")
    return checked


def _check_update(name: str, update: Any) -> list[np.ndarray]:
    """One client's update: a non-empty list of finite float arrays (one per layer)."""
    if isinstance(update, (str, bytes, np.ndarray)) or not isinstance(update, Sequence) \
            or not update:
        raise TypeError(f"{name} must be a non-empty list of arrays (one per layer), got "
                        f"{type(update).__name__} {v._fmt(update)}.")
    return [v.check_float_array(f"{name}[{i}]", layer, min_size=0)
            for i, layer in enumerate(update)]


def _flat_layers(name: str, update: Any) -> np.ndarray:
    """:func:`_check_update`, then the layers as one flat float32 vector."""
    return np.concatenate([layer.astype(np.float32).ravel()
                           for layer in _check_update(name, update)])


def _flat(update: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(u, dtype=np.float64).ravel() for u in update])


def canary_scores(rule: aggregation.AggregationRule, other_updates: Sequence[Weights],
                  canary: Weights, *, num_trials: int, randomness: schedule.PrivateRandomness,
                  num_clients: int) -> tuple[np.ndarray, np.ndarray]:
    """The canary's projection score in ``num_trials`` rounds with it and ``num_trials`` without.

    Every round is ``rule.aggregate`` (the implementation under audit, with its clipping and
    noise) on the other clients' updates, plus the canary's on the "in" side. Round ``i`` with
    the canary uses round index ``2 i`` of ``randomness`` and without it ``2 i + 1``, so every
    round's noise is a fresh draw.

    Returns:
        ``(in_scores, out_scores)``: ``<released update, canary / ||canary||>`` per round.
    """
    if not isinstance(rule, aggregation.AggregationRule):
        raise TypeError(f"rule must be an AggregationRule, got {type(rule).__name__}.")
    if not isinstance(randomness, schedule.PrivateRandomness):
        raise TypeError(f"randomness must be a PrivateRandomness, got "
                        f"{type(randomness).__name__}.")
    num_trials = v.check_int("num_trials", num_trials, minimum=4, maximum=10**7)
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    canary = _check_update("canary", canary)
    if isinstance(other_updates, (str, bytes, np.ndarray)) \
            or not isinstance(other_updates, Sequence):
        raise TypeError(f"other_updates must be a list of updates (lists of arrays), got "
                        f"{type(other_updates).__name__} {v._fmt(other_updates)}.")
    others = [_check_update(f"other_updates[{k}]", u) for k, u in enumerate(other_updates)]
    shapes = [layer.shape for layer in canary]
    for k, update in enumerate(others):
        if [layer.shape for layer in update] != shapes:
            raise ValueError(f"other_updates[{k}] must have the canary's shapes {shapes}, got "
                             f"{[layer.shape for layer in update]}.")
    randomness.claim("canary_scores")
    direction = _flat(canary)
    length = np.linalg.norm(direction)
    if not math.isfinite(length) or length == 0:
        raise ValueError(f"canary must be a finite non-zero update, got norm {length}.")
    direction /= length
    sizes_out = np.ones(len(others), dtype=np.int64)
    sizes_in = np.ones(len(others) + 1, dtype=np.int64)
    scores = np.empty((2, num_trials))
    for i in range(num_trials):
        for side, (deltas, sizes) in enumerate(((others + [list(canary)], sizes_in),
                                                (others, sizes_out))):
            context = aggregation.RoundContext(round_index=2 * i + side,
                                               num_clients=num_clients, randomness=randomness)
            scores[side, i] = _flat(rule.aggregate(deltas, sizes, context)) @ direction
    return scores[0], scores[1]


def canary_audit(rule: aggregation.AggregationRule, other_updates: Sequence[Weights],
                 canary: Weights, *, num_trials: int, randomness: schedule.PrivateRandomness,
                 num_clients: int, delta: float, confidence: float = 0.95) -> AuditResult:
    """:func:`canary_scores`, then :func:`epsilon_lower_bound`: ``epsilon_LB`` of one round.

    Compare the result with the epsilon the rule claims for one round with the canary present
    or absent (no subsampling): ``accounting.dp_fedavg_epsilon(noise_multiplier=z,
    sampling_probability=1.0, num_rounds=1, target_delta=delta)``.
    """
    ins, outs = canary_scores(rule, other_updates, canary, num_trials=num_trials,
                              randomness=randomness, num_clients=num_clients)
    return epsilon_lower_bound(ins, outs, delta=delta, confidence=confidence)


# --------------------------------------------------------------------------------------------
# The floating-point attack on float noise (Mironov 2012, applied to DP-FedAvg's release)
# --------------------------------------------------------------------------------------------


def _float32_order(values: np.ndarray) -> np.ndarray:
    """float32 values as int64 keys in the same order (``-0.0`` and ``0.0`` alike)."""
    bits = values.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _float32_from_order(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys < 0, (-keys) | 0x80000000, keys).astype(np.uint32)
    return bits.view(np.float32)


def _float64_order(values: np.ndarray) -> np.ndarray:
    """float64 values as int64 keys in the same order (``-0.0`` and ``0.0`` alike)."""
    bits = np.asarray(values, dtype=np.float64).view(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFFFFFFFFFF), bits)


def _float64_from_order(keys: np.ndarray) -> np.ndarray:
    magnitude = np.abs(keys).astype(np.uint64)
    bits = np.where(keys < 0, magnitude | np.uint64(1 << 63), magnitude)
    return bits.view(np.float64)


def unexplained_coordinates(released: np.ndarray, release: Any, *, noise: str) -> int:
    """How many released coordinates no noise value explains: the interval attack's count.

    ``release(noise_array)`` recomputes the released vector from a noise vector under the
    attacker's hypothesis, with the mechanism's own arithmetic; it must be monotone in the
    noise, coordinate by coordinate (every step of a noisy sum, a division and a step is). For
    each coordinate the attack bisects over all float32 numbers (``noise="float32"``), all
    float64 numbers (``noise="float64"``) or all integers up to 2^52 (``noise="integer"``) for a
    noise value that gives exactly the released value; a coordinate with none proves the
    hypothesis wrong.

    Args:
        released: The released vector (flat float32 or float64, the mechanism's own type).
        release: The mechanism under the hypothesis, as above.
        noise: ``"float32"``, ``"float64"`` or ``"integer"``.

    Returns:
        The number of coordinates that are impossible under the hypothesis.
    """
    if not callable(release):
        raise TypeError(f"release must be a function of a noise array, got "
                        f"{type(release).__name__} {v._fmt(release)}.")
    v.check_float_array("released", released)
    target = np.asarray(released).ravel()
    if target.dtype not in (np.float32, np.float64):
        target = target.astype(np.float64 if noise == "float64" else np.float32)
    if noise == "float32":
        largest = int(_float32_order(np.array([np.finfo(np.float32).max]))[0])
        decode = _float32_from_order
        halvings = 40  # 2^33 float32 values
    elif noise == "float64":
        largest = int(_float64_order(np.array([np.finfo(np.float64).max]))[0])
        decode = _float64_from_order
        halvings = 66  # 2^64 float64 values
    elif noise == "integer":
        largest = 2**52
        decode = lambda keys: keys  # noqa: E731
        halvings = 60
    else:
        raise ValueError(f"noise must be 'float32', 'float64' or 'integer', got {noise!r}.")
    low = np.full(target.size, -largest, dtype=np.int64)
    high = np.full(target.size, largest, dtype=np.int64)

    def released_by(keys: np.ndarray) -> np.ndarray:
        value = np.asarray(release(decode(keys)))
        if value.dtype == np.bool_ or value.dtype.kind not in "iuf" \
                or value.shape != target.shape:
            raise ValueError(f"release must return {target.size} real numbers like released, "
                             f"got dtype {value.dtype} and shape {value.shape}.")
        return value

    increasing = released_by(high) >= released_by(low)
    for _ in range(halvings):
        middle = (low >> 1) + (high >> 1) + (low & high & 1)  # (low + high) // 2, no overflow
        value = released_by(middle)
        reaches = np.where(increasing, value >= target, value <= target)
        high = np.where(reaches, middle, high)
        low = np.where(reaches, low, middle + 1)
    explained = released_by(high) == target
    return int(np.count_nonzero(~explained))


def float_noise_proofs(released: Sequence[np.ndarray], *, previous: Sequence[np.ndarray],
                       noiseless_sum: Sequence[np.ndarray], expected_clients: float,
                       server_learning_rate: float = 1.0) -> int:
    """How many coordinates of a float-noise DP-FedAvg release no float32 noise can explain.

    The attack of the second audit (issue 24): DP-FedAvg with float noise releases
    ``w1 = fl(w0 + eta fl(fl(S + n) / fl(q N)))``, every operation monotone in the float32 noise
    ``n``. An adversary who knows everything but whether the target took part -- the previous
    model ``w0``, the other clients' updates and so the noiseless sum ``S`` under each
    hypothesis, the public settings, the code -- finds for each coordinate, by bisection over
    the float32 numbers, the noise values that give exactly the released ``w1``. Rounding makes
    that set empty for some coordinates under a wrong hypothesis: each such coordinate *proves*
    the other one, whatever the noise's scale (Mironov 2012, "On Significance of the Least
    Significant Bits for Differential Privacy", applied to the sum instead of the sampler).

    Args:
        released: The released weights ``w1``, per layer (float32).
        previous: The weights ``w0`` before the round.
        noiseless_sum: The clipped sum ``S`` under the hypothesis tested.
        expected_clients: The public divisor ``q N``.
        server_learning_rate: ``eta`` of plain server SGD.

    Returns:
        The number of coordinates that are impossible under the hypothesis (0: consistent).
    """
    w1, w0, total = (_flat_layers(name, layers) for name, layers in (
        ("released", released), ("previous", previous), ("noiseless_sum", noiseless_sum)))
    if not (w1.shape == w0.shape == total.shape):
        raise ValueError(f"released, previous and noiseless_sum must have the same shapes, got "
                         f"{w1.shape}, {w0.shape} and {total.shape}.")
    divisor = np.float32(v.check_positive("expected_clients", expected_clients))
    rate = np.float32(v.check_positive("server_learning_rate", server_learning_rate))

    def release(noise: np.ndarray) -> np.ndarray:  # DPFedAvg.finalize, then ServerSGD.apply
        update = ((total + noise) / divisor).astype(np.float32)
        return (w0 + rate * update).astype(np.float32)

    return unexplained_coordinates(w1, release, noise="float32")


def exact_noise_proofs(released: Sequence[np.ndarray], *, previous: Sequence[np.ndarray],
                       integer_sum: np.ndarray, clipping_norm: float, expected_clients: float,
                       steps: int, server_learning_rate: float = 1.0) -> int:
    """:func:`float_noise_proofs` against exact noise: how many coordinates no noise explains.

    With ``noise="exact"`` the release is ``w1 = fl(w0 + eta fl((K + n) C / (steps q N)))``
    with ``K`` the integer sum of the clipped updates and ``n`` integer noise. The same
    adversary bisects over the integers for a noised sum ``K + n`` that gives each released
    weight, then reads off ``n = (K + n) - K`` under its hypothesis. The noised sum exists (the
    release was made from one), and ``n`` is an integer under either hypothesis, which the
    discrete Gaussian can always draw: the count is 0 for every release and every hypothesis,
    which is what an exact mechanism must give.

    Args:
        released, previous: The weights after and before the round, per layer.
        integer_sum: The clipped updates' integer sum ``K`` under the hypothesis tested (flat).
        clipping_norm, expected_clients, steps: ``C``, ``q N`` and the grid's steps per ``C``.
        server_learning_rate: ``eta`` of plain server SGD.

    Returns:
        The number of coordinates that are impossible under the hypothesis.
    """
    w1 = _flat_layers("released", released)
    w0 = _flat_layers("previous", previous)
    if integer_sum is None or isinstance(integer_sum, (str, bytes)) \
            or np.asarray(integer_sum).dtype == np.bool_ \
            or not np.issubdtype(np.asarray(integer_sum).dtype, np.integer):
        raise TypeError(f"integer_sum must be an integer array, got {type(integer_sum).__name__} "
                        f"{v._fmt(integer_sum)}.")
    integer_sum = np.asarray(integer_sum)
    if w1.shape != w0.shape or integer_sum.shape != w1.shape:
        raise ValueError(f"released, previous and integer_sum must have the same size, got "
                         f"{w1.size}, {w0.size} and {integer_sum.size}.")
    scale = (v.check_positive("clipping_norm", clipping_norm)
             / v.check_int("steps", steps, minimum=1) / v.check_positive("expected_clients",
                                                                         expected_clients))
    rate = np.float32(v.check_positive("server_learning_rate", server_learning_rate))

    # A noised sum K + n explains w1; then n = (K + n) - K is an integer, a value the noise can
    # take, whichever hypothesis gives K: the count is over noised sums.
    del integer_sum  # the hypothesis only shifts n by an integer
    return unexplained_coordinates(w1, lambda noised: (
        w0 + rate * (noised.astype(np.float64) * scale).astype(np.float32)).astype(np.float32),
        noise="integer")
