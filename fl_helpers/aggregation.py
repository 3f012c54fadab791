"""Aggregation rules: how the server turns one round's client updates into its update.

A rule is one small class. The training loop (:mod:`fl_helpers.training`) trains the sampled
clients, hands their updates ``delta_k = w_k - w`` to the rule, and applies what the rule returns
with a server optimizer (:class:`ServerSGD` by default: ``w <- w + server_learning_rate * update``).
The rules compose the way Flower's strategies and its DP wrappers do, and read like Opacus's
named DP steps (clip -> add noise -> scale):

* :class:`FedAvg` -- ``sum_k n_k delta_k / sum_k n_k`` (McMahan et al. 2017, Algorithm 1).
* :class:`DPFedAvg` -- clip each update to L2 norm ``C``, sum, add Gaussian noise of standard
  deviation ``z C``, divide by the expected number of clients ``q N`` (McMahan et al. 2018,
  "Learning Differentially Private Recurrent Language Models", Algorithm 1, every client weighted
  1); with ``placement=NoisePlacement.LOCAL`` every client noises its own clipped update instead.
* :class:`CoordinateMedian` -- the coordinate-wise median of the updates (Yin et al. 2018,
  "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", Section 3).
* :class:`NormBounded` -- wraps any rule: clip every update to norm ``C`` first (Sun et al. 2019,
  "Can You Really Backdoor Federated Learning?", Section 3).

:func:`update_norm` is the L2 norm of an update over all its layers, the norm that clipping
bounds (the loop reports it per client in its diagnostics).

Rules of the form ``finalize(sum_k a_k clip(delta_k, C))`` subclass :class:`LinearRule`: the fast
engine computes the clipped, weighted sum inside its compiled graph without ever holding every
update, and the per-client loop computes the same sum with :meth:`LinearRule.sum_updates`; both
then call the same :meth:`LinearRule.finalize`, which is where noise and scaling happen. Other
rules (the median) receive every update.

Adding a rule: subclass :class:`AggregationRule` and implement :meth:`AggregationRule.aggregate`
(see :class:`CoordinateMedian`, ten lines), or :class:`LinearRule` if it is a weighted sum.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import discrete_noise, privacy, schedule

Weights = list[np.ndarray]


class NoisePlacement(enum.Enum):
    """Who adds the noise of :class:`DPFedAvg`."""

    #: The server adds ``N(0, (z C)^2)`` once to the sum: central DP, trusted server.
    CENTRAL = "central"
    #: Every sampled client adds ``N(0, (z C)^2)`` to its own clipped update: local DP.
    LOCAL = "local"

    @classmethod
    def parse(cls, value: Any) -> NoisePlacement:
        """``value`` as a placement: a :class:`NoisePlacement`, ``"central"`` or ``"local"``."""
        if isinstance(value, cls):
            return value
        for member in cls:
            if value == member.value:
                return member
        raise ValueError(f"noise_placement must be 'central' or 'local', got {value!r}.")


@dataclasses.dataclass(frozen=True)
class RoundContext:
    """What a rule may know about the round it aggregates.

    Attributes:
        round_index: ``t``, 0-based.
        num_clients: ``N``, clients in the federation.
        randomness: The run's private randomness (noise), or ``None`` for a non-private run.
    """

    round_index: int
    num_clients: int
    randomness: schedule.PrivateRandomness | None = None


@dataclasses.dataclass(eq=False)
class SumResult:
    """``sum_k a_k clip(delta_k, C)`` for one round, and the norms it saw (diagnostics only).

    Attributes:
        total: The weighted sum of clipped updates, per layer (float32).
        update_norms: Each client's L2 norm over all layers before clipping.
        clipped_norms: Each client's L2 norm after clipping (``<= C``).
        num_examples: ``n_k`` of each client.
    """

    total: Weights
    update_norms: np.ndarray
    clipped_norms: np.ndarray
    num_examples: np.ndarray


def update_norm(delta: Sequence[np.ndarray]) -> float:
    """The L2 norm of an update over all its layers: ``sqrt(sum_i ||delta_i||^2)``.

    The norm that clipping bounds (``clip(delta, C)`` scales ``delta`` down to this norm ``C``,
    McMahan et al. 2018, Algorithm 1), summed in float64 with ``math.fsum``.

    Args:
        delta: The update, a list of per-layer arrays of finite real numbers.

    Returns:
        The norm, a float >= 0 (0 for an empty list).

    Raises:
        TypeError: If ``delta`` is not a list of arrays of real numbers.
        ValueError: If a layer holds NaN or inf.
    """
    if isinstance(delta, (str, bytes, np.ndarray)) or not isinstance(delta, Sequence):
        raise TypeError(f"delta must be a list of per-layer arrays, got {type(delta).__name__} "
                        f"{v._fmt(delta)}.")
    layers = []
    for i, layer in enumerate(delta):
        try:
            layer = np.asarray(layer)
        except (TypeError, ValueError) as error:  # ragged lists
            raise TypeError(f"delta[{i}] must be an array, got a ragged "
                            f"{type(layer).__name__}.") from error
        if layer.dtype == np.bool_ or layer.dtype.kind not in "iuf":
            raise TypeError(f"delta[{i}] must hold real numbers, got dtype {layer.dtype}.")
        if not np.isfinite(layer).all():
            raise ValueError(f"delta[{i}] must be finite, got NaN or inf values.")
        layers.append(layer)
    return _norm(layers)


def _norm(delta: Sequence[np.ndarray]) -> float:
    """:func:`update_norm` without the checks (for updates already checked or screened)."""
    return math.sqrt(math.fsum(float(np.sum(np.square(d, dtype=np.float64))) for d in delta))


class AggregationRule(abc.ABC):
    """Turns the updates of one round's clients into the server's update."""

    #: A short name for histories and plots.
    name = "rule"
    #: Whether the rule adds noise drawn from the run's :class:`fl_helpers.schedule.
    #: PrivateRandomness` (``RoundContext.randomness``): such a rule belongs in a private run,
    #: which samples with that randomness and accounts the noise
    #: (:func:`fl_helpers.training.run_dp_fedavg`).
    draws_run_noise: bool = False

    @abc.abstractmethod
    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: RoundContext) -> Weights:
        """The server's update from every client's ``delta_k`` (per-layer float32 arrays).

        Args:
            deltas: One update per sampled client, each a list of per-layer arrays.
            num_examples: ``n_k`` per client.
            context: The round.

        Returns:
            The update, per layer, that the server optimizer applies.
        """

    def aggregate_empty(self, shapes: Sequence[tuple[int, ...]], context: RoundContext
                        ) -> Weights:
        """The server's update for a round in which no client's update arrived (nobody was
        sampled, or every sampled client failed): zeros by default. A private rule releases
        its noise all the same, so that an empty round looks like any other."""
        return [np.zeros(shape, dtype=np.float32) for shape in shapes]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={val!r}" for k, val in vars(self).items())
        return f"{type(self).__name__}({fields})"


class LinearRule(AggregationRule):
    """A rule of the form ``finalize(sum_k a_k clip(delta_k, C))``.

    Subclasses set :attr:`clipping_norm` (``None`` for no clipping) and implement
    :meth:`client_scales` (the ``a_k``) and :meth:`finalize`.
    """

    clipping_norm: float | None = None
    #: Whether an engine may fuse clipping and summing (and hand :meth:`finalize` the float
    #: sum); ``False`` for a rule that needs every client's update (exact noise).
    fusable: bool = True
    #: Whether the rule can aggregate one-example clients from the rank-one factors of their
    #: updates (:meth:`aggregate_factors`).
    takes_factors: bool = False

    def aggregate_factors(self, layers: list[tuple[np.ndarray, np.ndarray]],
                          num_examples: np.ndarray, context: RoundContext) -> Weights:
        """The update from rank-one factors (only rules with :attr:`takes_factors`)."""
        raise NotImplementedError(f"{self.name} does not aggregate rank-one factors.")

    @abc.abstractmethod
    def client_scales(self, num_examples: np.ndarray) -> np.ndarray:
        """The weights ``a_k`` of the clients in the sum (float64)."""

    @abc.abstractmethod
    def finalize(self, total: Weights, num_examples: np.ndarray,
                 context: RoundContext) -> Weights:
        """The update from the weighted sum of clipped updates."""

    def sum_updates(self, deltas: Sequence[Weights], num_examples: np.ndarray) -> SumResult:
        """``sum_k a_k clip(delta_k, C)``, client by client (the reference for the engine)."""
        scales = self.client_scales(num_examples)
        shapes = [np.shape(layer) for layer in deltas[0]] if len(deltas) else []
        total = [np.zeros(shape, dtype=np.float64) for shape in shapes]
        norms, clipped_norms = [], []
        for delta, scale in zip(deltas, scales, strict=True):
            norm = _norm(delta)
            if self.clipping_norm is not None:
                delta = list(privacy.clip_by_l2_norm(delta, self.clipping_norm)[0])
            norms.append(norm)
            clipped_norms.append(min(norm, self.clipping_norm or math.inf))
            for t, d in zip(total, delta, strict=True):
                t += scale * np.asarray(d, dtype=np.float64)
        return SumResult(total=[t.astype(np.float32) for t in total],
                         update_norms=np.asarray(norms, dtype=np.float64),
                         clipped_norms=np.asarray(clipped_norms, dtype=np.float64),
                         num_examples=np.asarray(num_examples, dtype=np.int64))

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: RoundContext) -> Weights:
        return self.finalize(self.sum_updates(deltas, num_examples).total, num_examples,
                             context)


class FedAvg(LinearRule):
    """Weighted averaging of the updates: ``sum_k n_k delta_k / sum_k n_k``.

    McMahan et al. 2017, Algorithm 1: ``w + sum_k (n_k / n) delta_k = sum_k (n_k / n) w_k``.
    """

    name = "FedAvg"

    def client_scales(self, num_examples: np.ndarray) -> np.ndarray:
        return np.asarray(num_examples, dtype=np.float64)

    def finalize(self, total: Weights, num_examples: np.ndarray,
                 context: RoundContext) -> Weights:
        if len(num_examples) == 0:
            raise ValueError("FedAvg needs at least one client in a round, got 0.")
        count = float(np.sum(num_examples, dtype=np.float64))
        return [(t / count).astype(np.float32) for t in total]


class DPFedAvg(LinearRule):
    """DP-FedAvg's server step: clip, sum, add Gaussian noise, divide by ``q N``.

    McMahan et al. 2018, Algorithm 1 with every client weighted ``w_k = 1``: each update is
    clipped to L2 norm at most ``C`` over all layers at once, the clipped updates are summed,
    noise of standard deviation ``z C`` is added to the sum, and the result is divided by the
    fixed ``expected_clients = q N`` (the expected number of Poisson-sampled clients, not the
    realised one, so that one client changes the average by at most ``C / (q N)`` whatever the
    sample).

    Two kinds of noise:

    * ``noise="exact"`` (the default): each clipped update becomes an integer vector on the
      grid ``C / GRID_STEPS`` whose L2 norm is at most ``GRID_STEPS`` exactly
      (:func:`fl_helpers.discrete_noise.clip_to_integer_grid`); the integers are summed exactly
      and discrete Gaussian noise ``N_Z(0, sigma^2)``, ``sigma >= z GRID_STEPS``, drawn exactly
      (:func:`fl_helpers.discrete_noise.discrete_gaussian`) is added. The noised quantity is an
      integer computed exactly; only then is it scaled back and divided by ``q N`` in floating
      point (post-processing). Accounted by :attr:`fl_helpers.accounting.Accountant.DISCRETE`.
    * ``noise="float"``: ``N(0, (z C)^2)`` drawn in float32 and added to the float32 sum. **Not
      private against a floating-point attack**: with the other clients' sum known, the set of
      float32 noise values that could have produced a released weight is an interval, and in
      notebook 04's setting about 69 coordinates per round prove which neighbour was used
      (Mironov 2012's attack, ``audit.float_noise_proofs``). Kept only as the named control that
      the attack breaks; choosing it warns (:class:`FloatNoiseWarning`).

    With ``placement=NoisePlacement.LOCAL`` each of the ``m`` sampled clients adds its own noise
    to its own clipped update before sending it (local DP: no trusted server): with exact noise
    every client draws its own discrete Gaussian vector on its own integer update (``m d`` exact
    draws a round), and the server sums the noised integers; with float noise the sum's
    ``N(0, m (z C)^2 I)`` is drawn as one Gaussian of that variance (the same distribution).

    The noise comes from the run's :class:`fl_helpers.schedule.PrivateRandomness` (secret by
    default), which hands each round's noise out once.

    Args:
        clipping_norm: ``C`` > 0.
        noise_multiplier: ``z`` >= 0 (0 clips without noise: no privacy).
        expected_clients: ``q N`` > 0, a public constant.
        placement: :class:`NoisePlacement` (``CENTRAL`` by default).
        noise: ``"exact"`` (default) or ``"float"`` (not private, warns). With
            ``noise_multiplier=0`` (clipping only, no privacy) it is always ``"float"``.
    """

    name = "DP-FedAvg"
    clipping_norm: float

    def __init__(self, *, clipping_norm: float, noise_multiplier: float,
                 expected_clients: float,
                 placement: NoisePlacement = NoisePlacement.CENTRAL,
                 noise: str = "exact") -> None:
        self.clipping_norm = v.check_positive("clipping_norm", clipping_norm)
        self.noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
        self.expected_clients = v.check_positive("expected_clients", expected_clients)
        if self.noise_multiplier * self.clipping_norm > schedule.MAX_NOISE_STDDEV:
            raise ValueError(
                f"noise_multiplier * clipping_norm must be <= {schedule.MAX_NOISE_STDDEV:g} (the "
                f"float32 noise would overflow to inf), got noise_multiplier="
                f"{v._fmt(self.noise_multiplier)} and clipping_norm={v._fmt(self.clipping_norm)}.")
        if not isinstance(placement, NoisePlacement):
            raise TypeError(f"placement must be a NoisePlacement, got {type(placement).__name__} "
                            f"{v._fmt(placement)}.")
        self.placement = placement
        # Without noise (z = 0, no privacy) there is nothing to attack and no integer grid to
        # keep: the clipped updates are averaged in float.
        self.noise = check_noise(noise) if self.noise_multiplier > 0 else "float"
        self.draws_run_noise = self.noise_multiplier > 0
        if self.noise == "float" and self.noise_multiplier > 0:
            warn_float_noise()
        if self.noise == "exact":
            variance = (self.noise_multiplier * discrete_noise.GRID_STEPS) ** 2
            largest = math.sqrt(discrete_noise.MAX_LARGE_VARIANCE) / discrete_noise.GRID_STEPS
            if variance > discrete_noise.MAX_LARGE_VARIANCE:
                raise ValueError(f"noise_multiplier must be <= {largest:.0f} with noise='exact', "
                                 f"got {v._fmt(self.noise_multiplier)}.")
            #: The discrete Gaussian's variance on the integer sum of a central round.
            self.integer_variance = self._variance(discrete_noise.GRID_STEPS, 1)
            self.fusable = False
            # The factor path clips inside discrete_noise.integer_outer_sum: only for a rule
            # whose to_grid is this class's.
            self.takes_factors = type(self).to_grid is DPFedAvg.to_grid

    def client_scales(self, num_examples: np.ndarray) -> np.ndarray:
        return np.ones(len(num_examples), dtype=np.float64)

    def noise_stddev(self, num_sampled: int) -> float:
        """Standard deviation of the noise on the sum, in the updates' units: ``z C``, or
        ``z C sqrt(m)`` for local DP (``m`` reports of ``z C`` each).

        Exact noise draws integers whose variance is the smallest the sampler takes at or above
        ``(noise_stddev * steps / C)^2`` (per report for local DP), so its standard deviation is
        this one up to a relative ``1 / sigma`` above. A subclass that changes this method
        changes the noise of both kinds.
        """
        stddev = self.noise_multiplier * self.clipping_norm
        if self.placement is NoisePlacement.LOCAL:
            stddev *= math.sqrt(num_sampled)
        return stddev

    def to_grid(self, rows: np.ndarray, steps: int) -> np.ndarray:
        """Exact noise's first step: every row (one client's flattened update) clipped to L2
        norm ``C`` and put on the integer grid ``C / steps``
        (:func:`fl_helpers.discrete_noise.clip_to_integer_grid`, the norm checked exactly)."""
        return discrete_noise.clip_to_integer_grid(rows, clipping_norm=self.clipping_norm,
                                                   steps=steps)

    def _variance(self, steps: int, reports: int) -> int:
        """The integer variance of one noise draw on a grid of ``steps`` per ``C``: at least
        ``(noise_stddev * steps / C)^2``, of the sum (central) or of one report (local)."""
        per_draw = self.noise_stddev(1 if self.placement is NoisePlacement.LOCAL else reports)
        variance = (per_draw * steps / self.clipping_norm) ** 2
        return discrete_noise.exact_variance_at_least(variance) if variance > 0 else 0

    def factor_steps(self) -> int:
        """The grid of :meth:`aggregate_factors`: :data:`~fl_helpers.discrete_noise.
        FACTOR_GRID_STEPS`, or a coarser power of four if ``z`` is so large that the noise's
        variance would leave the sampler's range."""
        steps = discrete_noise.FACTOR_GRID_STEPS
        while steps > 4 and (self.noise_multiplier * steps) ** 2 \
                > discrete_noise.MAX_LARGE_VARIANCE:
            steps //= 4
        return steps

    def aggregate_factors(self, layers: list[tuple[np.ndarray, np.ndarray]],
                          num_examples: np.ndarray, context: RoundContext) -> Weights:
        """:meth:`aggregate` for clients of one example and one step, from the rank-one factors
        of their updates (:meth:`fl_helpers.engine.MultiClientEngine.clipped_factors`): the
        same mechanism on a finer grid, without forming any client's update."""
        if self.noise != "exact":
            raise ValueError("aggregate_factors is the exact-noise path: noise='exact'.")
        steps = self.factor_steps()
        sums = discrete_noise.integer_outer_sum(layers, clipping_norm=self.clipping_norm,
                                                steps=steps)
        return self._release(np.concatenate([s.ravel() for s in sums]),
                             [s.shape for s in sums], context, steps=steps,
                             reports=len(num_examples))

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: RoundContext) -> Weights:
        if self.noise != "exact":
            return super().aggregate(deltas, num_examples, context)
        if not len(deltas):
            raise ValueError("DPFedAvg.aggregate needs the round's updates (an empty round goes "
                             "to finalize with a zero total).")
        shapes = [np.shape(layer) for layer in deltas[0]]
        rows = np.stack([np.concatenate([np.asarray(layer, dtype=np.float64).ravel()
                                         for layer in delta]) for delta in deltas])
        integers = self.to_grid(rows, discrete_noise.GRID_STEPS)
        return self._release(integers.sum(axis=0), shapes, context, reports=len(deltas))

    def finalize(self, total: Weights, num_examples: np.ndarray,
                 context: RoundContext) -> Weights:
        if self.noise == "exact":
            # Only the round whose every client failed comes here: its sum is zero.
            if any(np.any(np.asarray(t) != 0) for t in total):
                raise ValueError("DPFedAvg(noise='exact') adds its noise to the exact integer sum "
                                 "of the clients' updates: call aggregate(deltas), not finalize "
                                 "with a float sum.")
            size = sum(int(np.size(t)) for t in total)
            return self._release(np.zeros(size, dtype=np.int64), [np.shape(t) for t in total],
                                 context, reports=len(num_examples))
        stddev = self.noise_stddev(len(num_examples))
        if stddev > 0:
            if context.randomness is None:
                raise ValueError("DPFedAvg needs the run's randomness to draw its noise, got "
                                 "context.randomness=None.")
            noise = schedule.gaussian_noise_unchecked(
                [t.shape for t in total], stddev=stddev,
                rng=context.randomness.noise_rng(context.round_index))
            total = [t + n for t, n in zip(total, noise, strict=True)]
        return [(t / np.float32(self.expected_clients)).astype(np.float32) for t in total]

    def aggregate_empty(self, shapes: Sequence[tuple[int, ...]], context: RoundContext
                        ) -> Weights:
        """An empty round is noised like any other (its sum is zero)."""
        return self.finalize([np.zeros(shape, dtype=np.float32) for shape in shapes],
                             np.zeros(0, dtype=np.int64), context)

    def _release(self, integer_sum: np.ndarray, shapes: list[tuple[int, ...]],
                 context: RoundContext, *, reports: int,
                 steps: int = discrete_noise.GRID_STEPS) -> Weights:
        """Adds the exact noise to the integer sum, then scales back (post-processing).

        Central placement draws one discrete Gaussian vector; local placement one per report
        (``reports`` of them: every sampled client noises its own update), summed exactly.
        """
        noised = integer_sum.astype(np.int64)
        variance = self._variance(steps, reports)
        draws = reports if self.placement is NoisePlacement.LOCAL else 1
        if variance > 0 and draws > 0:
            if context.randomness is None:
                raise ValueError("DPFedAvg needs the run's randomness to draw its noise, got "
                                 "context.randomness=None.")
            source = discrete_noise.NoiseSource.from_key(
                context.randomness.noise_key(context.round_index),
                reproducible=context.randomness.is_reproducible)
            per_call = max(1, 2**22 // max(1, noised.size))  # about 32 MiB of draws a call
            for start in range(0, draws, per_call):
                count = min(per_call, draws - start)
                noise = discrete_noise.discrete_gaussian(variance, count * noised.size,
                                                         source=source)
                noised = noised + noise.reshape(count, noised.size).sum(axis=0)
        # Everything below is post-processing of the exact integers.
        flat = noised.astype(np.float64) * (self.clipping_norm / steps / self.expected_clients)
        pieces = np.split(flat, np.cumsum([math.prod(s) for s in shapes])[:-1])
        return [piece.reshape(shape).astype(np.float32)
                for piece, shape in zip(pieces, shapes, strict=True)]


class FloatNoiseWarning(UserWarning):
    """``noise="float"`` was chosen: float32 Gaussian noise, which a floating-point attack breaks
    (the release is not differentially private whatever epsilon says)."""


def warn_float_noise() -> None:
    """Warns that float noise is not private (:class:`FloatNoiseWarning`)."""
    warnings.warn("noise='float': float32 Gaussian noise is NOT differentially private -- with "
                  "the other clients' contribution known, the released float32 weights prove "
                  "which neighbouring dataset was used (Mironov 2012; audit.float_noise_proofs). "
                  "Kept as the attack's control; use noise='exact' (the default) for privacy.",
                  FloatNoiseWarning, stacklevel=3)


#: The kinds of noise :class:`DPFedAvg` adds.
NOISE_KINDS = ("float", "exact")


def check_noise(noise: Any) -> str:
    """``noise`` checked: ``"float"`` or ``"exact"``."""
    if not isinstance(noise, str):
        raise TypeError(f"noise must be 'float' or 'exact', got {type(noise).__name__} "
                        f"{v._fmt(noise)}.")
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be 'float' or 'exact', got {v._fmt(noise)}.")
    return noise


class CoordinateMedian(AggregationRule):
    """The coordinate-wise median of the clients' updates (unweighted).

    Yin et al. 2018, Section 3: for every parameter the median over the ``m`` clients, which a
    minority of arbitrary (Byzantine) updates cannot drag far. Clients are not weighted by their
    number of examples.
    """

    name = "median"

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: RoundContext) -> Weights:
        if len(deltas) == 0:
            raise ValueError("CoordinateMedian needs at least one client in a round, got 0.")
        return [np.median(np.stack(layers), axis=0).astype(np.float32)
                for layers in zip(*deltas, strict=True)]


class NormBounded(AggregationRule):
    """Any rule applied to updates clipped to L2 norm ``clipping_norm`` first.

    Norm bounding, the defence of Sun et al. 2019, Section 3: a boosted malicious update can move
    the model by at most ``C`` times its weight. Not differential privacy by itself (no noise).

    Args:
        rule: The rule to apply to the clipped updates.
        clipping_norm: ``C`` > 0.
    """

    def __init__(self, rule: AggregationRule, *, clipping_norm: float) -> None:
        if not isinstance(rule, AggregationRule):
            raise TypeError(f"rule must be an AggregationRule, got {type(rule).__name__}.")
        self.rule = rule
        self.clipping_norm = v.check_positive("clipping_norm", clipping_norm)
        self.name = f"{rule.name} + norm bound"

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: RoundContext) -> Weights:
        clipped = [list(privacy.clip_by_l2_norm(delta, self.clipping_norm)[0]) for delta in deltas]
        return self.rule.aggregate(clipped, num_examples, context)


# --------------------------------------------------------------------------------------------
# Server optimizers: how the update is applied (Reddi et al. 2021, "Adaptive Federated
# Optimization", Algorithm 2). Noise is added before them, so they are post-processing: privacy
# is unchanged.
# --------------------------------------------------------------------------------------------


class ServerOptimizer(abc.ABC):
    """Applies the aggregated update to the global weights; may keep state across rounds."""

    @abc.abstractmethod
    def apply(self, weights: Weights, update: Weights) -> Weights:
        """The new global weights."""


class ServerSGD(ServerOptimizer):
    """``w <- w + server_learning_rate * update`` (1 is plain averaging).

    With ``momentum`` > 0 it keeps a velocity ``m <- momentum * m + update`` and steps with it
    (FedAvgM, Hsu et al. 2019, "Measuring the Effects of Non-Identical Data Distribution for
    Federated Visual Classification", Section 3).

    Args:
        server_learning_rate: ``eta_s`` > 0.
        momentum: ``beta`` in [0, 1).
    """

    def __init__(self, server_learning_rate: float = 1.0, *, momentum: float = 0.0) -> None:
        self.server_learning_rate = v.check_positive("server_learning_rate",
                                                     server_learning_rate)
        self.momentum = v.check_non_negative("momentum", momentum)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}.")
        self._velocity: Weights | None = None

    def apply(self, weights: Weights, update: Weights) -> Weights:
        step = update
        if self.momentum > 0:
            if self._velocity is None:
                self._velocity = [np.zeros_like(u) for u in update]
            self._velocity = [self.momentum * m + u for m, u in zip(self._velocity, update,
                                                                    strict=True)]
            step = self._velocity
        return [(w + np.float32(self.server_learning_rate) * s).astype(np.float32)
                for w, s in zip(weights, step, strict=True)]


class ExponentialAverage(ServerOptimizer):
    """Another server optimizer, plus an exponential moving average of the global models.

    Training is unchanged: :meth:`apply` returns what ``optimizer`` returns. Alongside, the
    average ``a <- decay * a + (1 - decay) * w`` of the global weights after every round
    (``a`` starts at the first) is kept in :attr:`averaged_weights`. In a private run the
    average is a function of the released global models only, so releasing it is
    post-processing and costs no privacy; it smooths out the noise of the last rounds (used for
    DP training by De et al. 2022, "Unlocking High-Accuracy Differentially Private Image
    Classification through Scale", Section 3.3).

    Args:
        optimizer: The optimizer that trains (e.g. :class:`ServerSGD` with momentum).
        decay: In [0, 1); ``1 / (1 - decay)`` is about the number of rounds averaged.
    """

    def __init__(self, optimizer: ServerOptimizer, *, decay: float = 0.995) -> None:
        if not isinstance(optimizer, ServerOptimizer) or isinstance(optimizer,
                                                                    ExponentialAverage):
            raise TypeError(f"optimizer must be a ServerOptimizer (not an ExponentialAverage), "
                            f"got {type(optimizer).__name__}.")
        self.optimizer = optimizer
        self.decay = v.check_non_negative("decay", decay)
        if self.decay >= 1:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}.")
        #: The average of the global weights so far (``None`` before the first round).
        self.averaged_weights: Weights | None = None

    def apply(self, weights: Weights, update: Weights) -> Weights:
        new = self.optimizer.apply(weights, update)
        if self.averaged_weights is None:
            self.averaged_weights = [np.array(w, dtype=np.float32) for w in new]
        else:
            keep = np.float32(self.decay)
            self.averaged_weights = [(keep * a + (1 - keep) * w).astype(np.float32)
                                     for a, w in zip(self.averaged_weights, new, strict=True)]
        return new


class ServerAdam(ServerOptimizer):
    """FedAdam (Reddi et al. 2021, Algorithm 2): Adam on the server with the update as gradient.

    Args:
        server_learning_rate: ``eta`` > 0.
        beta_1, beta_2: Moment decay rates in [0, 1).
        tau: The adaptivity ``tau`` > 0 (Reddi et al. use 1e-3).
    """

    def __init__(self, server_learning_rate: float = 0.01, *, beta_1: float = 0.9,
                 beta_2: float = 0.99, tau: float = 1e-3) -> None:
        self.server_learning_rate = v.check_positive("server_learning_rate",
                                                     server_learning_rate)
        self.beta_1 = v.check_non_negative("beta_1", beta_1)
        self.beta_2 = v.check_non_negative("beta_2", beta_2)
        for name, beta in (("beta_1", self.beta_1), ("beta_2", self.beta_2)):
            if beta >= 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta}.")
        self.tau = v.check_positive("tau", tau)
        self._m: Weights | None = None
        self._v: Weights | None = None

    def apply(self, weights: Weights, update: Weights) -> Weights:
        if self._m is None or self._v is None:
            self._m = [np.zeros_like(u) for u in update]
            self._v = [np.full_like(u, self.tau**2) for u in update]
        self._m = [self.beta_1 * m + (1 - self.beta_1) * u
                   for m, u in zip(self._m, update, strict=True)]
        self._v = [self.beta_2 * s + (1 - self.beta_2) * u**2
                   for s, u in zip(self._v, update, strict=True)]
        return [(w + self.server_learning_rate * m / (np.sqrt(s) + self.tau)).astype(np.float32)
                for w, m, s in zip(weights, self._m, self._v, strict=True)]


# --------------------------------------------------------------------------------------------
# The weighted average of weights (notebook 03 writes it by hand and checks it against this)
# --------------------------------------------------------------------------------------------


def fedavg(client_weights: Sequence[Sequence[np.ndarray]],
           num_examples: Sequence[float]) -> Weights:
    """The weighted average of the clients' weights: ``sum_k (n_k / n) w_k``, layer by layer.

    McMahan et al. 2017, Algorithm 1 (server step), with ``n = sum_k n_k`` over the clients given.
    The sum is accumulated in float64 and returned in the clients' dtype, so the average of
    identical clients is exactly that client.

    Args:
        client_weights: One list of per-layer arrays per client, all with the same number of
            layers and the same shapes.
        num_examples: ``n_k`` per client: finite numbers > 0 (usually example counts).

    Returns:
        The averaged per-layer arrays.

    Raises:
        ValueError: Empty input, a different number of clients and counts, mismatched layer
            counts or shapes, NaN/inf weights, or counts that are not finite and > 0 (the message
            names the client and layer).
        TypeError: A client's weights are not a list of arrays, or a count is not a number.
    """
    if isinstance(client_weights, (np.ndarray, str, bytes)) \
            or not isinstance(client_weights, Sequence):
        raise TypeError(
            f"client_weights must be a list with one list of per-layer arrays per client, got "
            f"{type(client_weights).__name__}."
        )
    if len(client_weights) == 0:
        raise ValueError("client_weights must hold at least one client, got 0.")
    if isinstance(num_examples, (str, bytes)) or not isinstance(num_examples,
                                                                (Sequence, np.ndarray)):
        raise TypeError(f"num_examples must be a sequence of counts, got "
                        f"{type(num_examples).__name__}.")
    if len(num_examples) != len(client_weights):
        raise ValueError(
            f"num_examples must have one count per client of client_weights "
            f"({len(client_weights)}), got {len(num_examples)}."
        )
    counts = [v.check_positive(f"num_examples[{k}]", n) for k, n in enumerate(num_examples)]
    total = math.fsum(counts)

    first = client_weights[0]
    if isinstance(first, np.ndarray) or not isinstance(first, Sequence) or len(first) == 0:
        raise TypeError(
            "client_weights[0] must be a non-empty list of per-layer arrays (as from "
            f"model.get_weights()), got {type(first).__name__}."
        )
    shapes = [np.shape(layer) for layer in first]
    sums = [np.zeros(shape, dtype=np.float64) for shape in shapes]
    dtypes = [np.result_type(np.asarray(layer).dtype, np.float32) for layer in first]
    for k, (weights, n_k) in enumerate(zip(client_weights, counts, strict=True)):
        for i, layer in enumerate(_check_layers(weights, shapes, f"client_weights[{k}]")):
            sums[i] += n_k * layer
    return [(s / total).astype(dtype) for s, dtype in zip(sums, dtypes, strict=True)]


def _check_layers(weights: Any, shapes: list[tuple[int, ...]], name: str) -> list[np.ndarray]:
    if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
        raise TypeError(f"{name} must be a list of per-layer arrays, got "
                        f"{type(weights).__name__}.")
    if len(weights) != len(shapes):
        raise ValueError(f"{name} must have {len(shapes)} layers like client 0, got "
                         f"{len(weights)}.")
    layers = []
    for i, layer in enumerate(weights):
        layer = np.asarray(layer)
        if layer.shape != shapes[i]:
            raise ValueError(f"{name}[{i}] must have shape {shapes[i]} like client 0, got "
                             f"{layer.shape}.")
        if not np.issubdtype(layer.dtype, np.number) or np.issubdtype(layer.dtype,
                                                                      np.complexfloating):
            raise TypeError(f"{name}[{i}] must hold real numbers, got dtype {layer.dtype}.")
        if not np.isfinite(layer).all():
            raise ValueError(f"{name}[{i}] must be finite, got NaN or inf values (did the "
                             "client's training diverge? try a smaller client_learning_rate).")
        layers.append(layer)
    return layers


def fedavg_bytes_per_round(weights: Sequence[np.ndarray], clients_per_round: int) -> int:
    """Bytes one FedAvg round moves: the model down to and back up from every sampled client.

    ``2 * clients_per_round * sum(w.nbytes)``: each of the ``m`` clients receives the global
    weights and sends its new weights, all in the arrays' own dtype (4 bytes per float32
    parameter). Headers, compression and secure-aggregation overhead are not counted.

    Args:
        weights: The model's per-layer arrays (e.g. ``History.final_weights``).
        clients_per_round: ``m`` >= 1.

    Returns:
        The number of bytes, up plus down.

    Raises:
        TypeError, ValueError: ``clients_per_round`` is not an integer >= 1.
    """
    if isinstance(weights, (str, bytes, np.ndarray)) or not isinstance(weights, Sequence) \
            or len(weights) == 0:
        raise TypeError(f"weights must be a non-empty list of per-layer arrays (as from "
                        f"model.get_weights()), got {type(weights).__name__} {v._fmt(weights)}.")
    layers = []
    for i, layer in enumerate(weights):
        if not isinstance(layer, np.ndarray) or not np.issubdtype(layer.dtype, np.number):
            raise TypeError(f"weights[{i}] must be a numeric numpy array, got "
                            f"{type(layer).__name__} {v._fmt(layer)}.")
        layers.append(layer)
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=1)
    return 2 * clients_per_round * sum(int(layer.nbytes) for layer in layers)
