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
  1); with ``placement=NoisePlacement.LOCAL`` every client noises its own clipped update instead;
  with ``clip_on=ClipPlacement.CLIENT`` every client clips its own update before sending it.
* :class:`AdaptiveClipDPFedAvg` -- DP-FedAvg whose clipping norm follows a quantile of the update
  norms, estimated privately each round (Andrew, Thakkar, McMahan & Ramaswamy 2021,
  "Differentially Private Learning with Adaptive Clipping", Algorithm 1); configured by
  :class:`AdaptiveClipping`.
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
(see :class:`CoordinateMedian`, ten lines), or :class:`LinearRule` if it is a weighted sum. A
private rule also describes one round's release to the accountant with
:meth:`AggregationRule.dp_event` (a dp-accounting ``DpEvent``, the way dp-accounting describes a
mechanism as data): the training loop accounts whatever the rule describes and never asks which
rule it runs, and :func:`fl_helpers.training.run_fedavg`, which does not account, refuses a rule
that describes a private release.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import discrete_noise, privacy, schedule

if TYPE_CHECKING:  # dp-accounting is loaded only when a rule describes itself (dp_event)
    import dp_accounting

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
        return _parse_placement(cls, value, "noise_placement")


class ClipPlacement(enum.Enum):
    """Who clips the updates of :class:`DPFedAvg`: a question of trust, not of the result.

    Both give the same released update on the same inputs (clipping twice is clipping once; up
    to float rounding, see :meth:`DPFedAvg.client_report`), so the accounting is the same. They
    differ in who sees what:

    * ``SERVER`` (the course's default; Flower's ``DifferentialPrivacyServerSideFixedClipping``
      and ``...ServerSideAdaptiveClipping``): clients send raw updates and the server clips them.
      The server **sees every unclipped update** (and its norm); the clients trust it with
      them.
    * ``CLIENT`` (McMahan et al. 2018, "Learning Differentially Private Recurrent Language
      Models", Algorithm 1, where ``ClipFn`` runs inside ``UserUpdate``; Flower's
      ``DifferentialPrivacyClientSideFixedClipping`` with the client mod ``fixedclipping_mod``,
      ``...ClientSideAdaptiveClipping`` with ``adaptiveclipping_mod``): each client clips its own
      update (and, for adaptive clipping, computes its own bit ``1[||Delta|| <= C]``) before
      sending; the server sees only clipped updates (norms at most ``C``), never a raw one. The
      sensitivity bound then rests on the clients clipping honestly; this course's server still
      enforces it on what arrives (exact noise clips to the integer grid in any case), so a
      client that skips clipping changes nothing but its own norm's secrecy.

    Either way the server sees the clipped updates before noise (central DP); only local noise
    (:class:`NoisePlacement`) or secure aggregation removes that.
    """

    #: The server clips (it sees the raw updates).
    SERVER = "server"
    #: Every client clips its own update before sending it.
    CLIENT = "client"

    @classmethod
    def parse(cls, value: Any) -> ClipPlacement:
        """``value`` as a placement: a :class:`ClipPlacement`, ``"server"`` or ``"client"``."""
        return _parse_placement(cls, value, "clip_on")


_Placement = TypeVar("_Placement", NoisePlacement, ClipPlacement)


def _parse_placement(kind: type[_Placement], value: Any, argument: str) -> _Placement:
    """``value`` as a member of ``kind`` (the member itself or its string value)."""
    if isinstance(value, kind):
        return value
    for member in kind:
        if value == member.value:
            return member
    allowed = " or ".join(repr(member.value) for member in kind)
    raise ValueError(f"{argument} must be {allowed}, got {v._fmt(value)}.")


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
    McMahan et al. 2018, Algorithm 1): the course's one norm,
    :func:`fl_helpers.privacy.l2_norm_unchecked` (float64, scaled by the largest entry so that
    it neither overflows nor underflows), the one :func:`fl_helpers.privacy.clip_by_l2_norm`
    clips with.

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
    return privacy.l2_norm_unchecked(delta, dtype=np.float64)


def _flatten_updates(deltas: Sequence[Weights]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """The round's updates as one float64 row per client (all layers, in order), and the
    layers' shapes to split a row back: the input of the exact-noise rules' integer grid."""
    shapes = [np.shape(layer) for layer in deltas[0]]
    rows = np.stack([np.concatenate([np.asarray(layer, dtype=np.float64).ravel()
                                     for layer in delta]) for delta in deltas])
    return rows, shapes


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

    def dp_event(self, *, sampling_probability: float, dimension: int | None = None,
                 num_clients: int | None = None) -> dp_accounting.DpEvent | None:
        """What one round of this rule releases about one client, as a dp-accounting event.

        The way dp-accounting's ``DpEvent`` describes a mechanism as data: the accountant
        (:func:`fl_helpers.accounting.epsilon_per_round_of_event`) turns the event into epsilon
        without knowing which rule produced it, so the training loop never asks what kind of
        rule it runs. A ``PoissonSampledDpEvent`` is composed once per round (the observer
        cannot tell whether the client was sampled); any other event once per round in which
        the client took part (the observer may know who took part), for the busiest client.

        The event must hold for every round the run can have, before the run: a rule whose
        guarantee depends on the model's size or on how many clients a round holds (the
        distributed discrete Gaussian, :class:`fl_helpers.distributed_dp.DistributedDPSecAgg`)
        reads them from ``dimension`` and ``num_clients``, which the caller that knows them
        passes; other rules check and ignore them.

        Args:
            sampling_probability: ``q`` in (0, 1], each client's chance to join a round.
            dimension: ``d`` >= 1, the number of model parameters (one update's length), or
                ``None`` if unknown.
            num_clients: ``N`` >= 1, the federation's (public) number of clients, or ``None``.

        Returns:
            ``None`` (the default) for a rule that releases nothing it would account (no
            noise); ``NonPrivateDpEvent`` for a rule that is meant to be private but adds no
            noise (epsilon is ``inf``); otherwise the round's event.
        """
        _check_event_arguments(sampling_probability, dimension, num_clients)
        return None

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state the rule carries from round to round, as named arrays for a checkpoint
        (:func:`fl_helpers.training.run_dp_fedavg`'s ``checkpoint``): ``{}`` for a rule without
        state. Never anything secret: a checkpoint is a plain file."""
        return {}

    def restore_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Sets the state saved by :meth:`state_arrays` (a resumed run continues bit for bit).

        Raises:
            ValueError: ``arrays`` does not hold this rule's state.
        """
        if arrays:
            raise ValueError(f"arrays must be empty for {type(self).__name__} (a rule without "
                             f"state), got keys {sorted(arrays)}: the checkpoint belongs to "
                             "another rule.")

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

    With ``clip_on=ClipPlacement.CLIENT`` each client clips its own update
    (:meth:`client_report`) before the server sees it; the released update is the same (see
    :class:`ClipPlacement` for what each placement trusts). The simulation runs both parties in
    one process: :meth:`client_report` is the client's part, the rest the server's.

    The noise comes from the run's :class:`fl_helpers.schedule.PrivateRandomness` (secret by
    default), which hands each round's noise out once.

    Args:
        clipping_norm: ``C`` > 0.
        noise_multiplier: ``z`` >= 0 (0 clips without noise: no privacy).
        expected_clients: ``q N`` > 0, a public constant.
        placement: :class:`NoisePlacement` (``CENTRAL`` by default).
        noise: ``"exact"`` (default) or ``"float"`` (not private, warns). With
            ``noise_multiplier=0`` (clipping only, no privacy) it is always ``"float"``.
        clip_on: :class:`ClipPlacement` or its name: ``"server"`` (default) or ``"client"``.
    """

    name = "DP-FedAvg"
    clipping_norm: float

    def __init__(self, *, clipping_norm: float, noise_multiplier: float,
                 expected_clients: float,
                 placement: NoisePlacement = NoisePlacement.CENTRAL,
                 noise: str = "exact",
                 clip_on: ClipPlacement | str = ClipPlacement.SERVER) -> None:
        self.clipping_norm = v.check_positive("clipping_norm", clipping_norm)
        self.clip_on = ClipPlacement.parse(clip_on)
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
        if self.clip_on is ClipPlacement.CLIENT:
            # The client's own clipping runs on every update (client_report): no engine path
            # that clips inside the server's sum.
            self.fusable = False
            self.takes_factors = False

    def client_report(self, delta: Weights) -> Weights:
        """What a client sends: its update, clipped by the client itself if ``clip_on`` is
        ``CLIENT`` (to L2 norm ``C``, in float64: :func:`fl_helpers.privacy.clip_by_l2_norm`),
        unchanged if the server clips.

        The server's clipping of a report already inside the ball changes nothing but float
        rounding: with exact noise the released integers agree with server-side clipping's up
        to one grid step ``C / GRID_STEPS`` in a coordinate that rounding put on a half step
        (none in the tests), with float noise to float32 rounding.
        """
        if self.clip_on is ClipPlacement.SERVER:
            return list(delta)
        return list(privacy.clip_by_l2_norm(list(delta), self.clipping_norm)[0])

    def client_scales(self, num_examples: np.ndarray) -> np.ndarray:
        return np.ones(len(num_examples), dtype=np.float64)

    @property
    def accounted_noise_multiplier(self) -> float:
        """The ``z`` the accountant sees: the noise on the sum over its sensitivity ``C``."""
        return self.noise_multiplier

    def dp_event(self, *, sampling_probability: float, dimension: int | None = None,
                 num_clients: int | None = None) -> dp_accounting.DpEvent:
        """One round's release, for the accountant (see :meth:`AggregationRule.dp_event`;
        ``dimension`` and ``num_clients`` are checked and not needed: the event is the same
        for every model and federation size).

        * Central noise: ``PoissonSampledDpEvent(q, GaussianDpEvent(z))`` (a plain
          ``GaussianDpEvent(z)`` when ``q = 1``): one client changes the sum by at most ``C``
          (add/remove one client), the noise has std ``z C``, and the secret sample hides
          whether the client took part (McMahan et al. 2018, Section 3).
        * Local noise: ``GaussianDpEvent(z / 2)`` per report: the server sees who reports, so
          sampling does not amplify, and a report must hide the client's data against any other
          (replace-one: two clipped updates differ by up to ``2 C``).
        * ``z = 0``: ``NonPrivateDpEvent()`` (clipping without noise; epsilon is ``inf``).

        With exact noise the event's Gaussian stands for the discrete Gaussian of the same
        ``z``: :attr:`fl_helpers.accounting.Accountant.DISCRETE` bounds it.
        """
        q, _, _ = _check_event_arguments(sampling_probability, dimension, num_clients)
        import dp_accounting  # here: the Flower ClientApp must not load dp-accounting

        z = self.accounted_noise_multiplier
        if z == 0:
            return dp_accounting.NonPrivateDpEvent()
        if self.placement is NoisePlacement.LOCAL:
            return dp_accounting.GaussianDpEvent(z / 2)
        gaussian = dp_accounting.GaussianDpEvent(z)
        if q == 1.0:
            return gaussian
        return dp_accounting.PoissonSampledDpEvent(q, gaussian)

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
        if self.clip_on is ClipPlacement.CLIENT:
            deltas = [self.client_report(delta) for delta in deltas]
        if self.noise != "exact":
            return super().aggregate(deltas, num_examples, context)
        if not len(deltas):
            raise ValueError("DPFedAvg.aggregate needs the round's updates (an empty round goes "
                             "to finalize with a zero total).")
        rows, shapes = _flatten_updates(deltas)
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

    def _noise_source(self, context: RoundContext) -> schedule._Bits:
        """The round's exact-noise bits, keyed with the round's one key."""
        if context.randomness is None:
            raise ValueError("DPFedAvg needs the run's randomness to draw its noise, got "
                             "context.randomness=None.")
        return context.randomness._exact_bits(context.round_index)

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
            source = self._noise_source(context)
            per_call = max(1, 2**22 // max(1, noised.size))  # about 32 MiB of draws a call
            for start in range(0, draws, per_call):
                count = min(per_call, draws - start)
                noise = discrete_noise._discrete_gaussian(variance, count * noised.size, source)
                noised = noised + noise.reshape(count, noised.size).sum(axis=0)
        # Everything below is post-processing of the exact integers.
        flat = noised.astype(np.float64) * (self.clipping_norm / steps / self.expected_clients)
        pieces = np.split(flat, np.cumsum([math.prod(s) for s in shapes])[:-1])
        return [piece.reshape(shape).astype(np.float32)
                for piece, shape in zip(pieces, shapes, strict=True)]


# --------------------------------------------------------------------------------------------
# Adaptive clipping (Andrew, Thakkar, McMahan & Ramaswamy 2021)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AdaptiveClipping:
    """How :class:`AdaptiveClipDPFedAvg` adapts its clipping norm: the settings of Andrew et al.
    2021, "Differentially Private Learning with Adaptive Clipping", Algorithm 1.

    The defaults are TensorFlow Federated's and Flower 1.42's (both from the paper): the norm
    starts at ``C_0 = 0.1``, aims at the median (``gamma = 0.5``: half the updates unclipped),
    moves geometrically with learning rate ``eta_C = 0.2``, and the count of unclipped updates
    is noised with ``sigma_b = expected clients / 20``.

    Attributes:
        initial_clipping_norm: ``C_0`` > 0.
        target_quantile: ``gamma`` in (0, 1): the share of updates that should be *unclipped*
            (norm at most ``C``). Flower calls it ``target_clipped_quantile``, TFF
            ``target_unclipped_quantile``; it is the unclipped share in both.
        learning_rate: ``eta_C`` > 0 of ``C <- C exp(-eta_C (b_bar - gamma))``.
        count_stddev: ``sigma_b`` > 0, the std of the noise on the count of unclipped updates
            (in clients), or ``None`` for ``expected_clients / 20``.
    """

    initial_clipping_norm: float = 0.1
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_stddev: float | None = None

    def __post_init__(self) -> None:
        v.check_positive("initial_clipping_norm", self.initial_clipping_norm)
        quantile = v.check_real("target_quantile", self.target_quantile)
        if not 0 < quantile < 1:
            raise ValueError(f"target_quantile must be in (0, 1), got {v._fmt(quantile)}.")
        v.check_positive("learning_rate", self.learning_rate)
        if self.count_stddev is not None:
            v.check_positive("count_stddev", self.count_stddev)

    def count_stddev_for(self, expected_clients: float) -> float:
        """``sigma_b``: :attr:`count_stddev`, or ``expected_clients / 20`` if it is ``None``."""
        expected_clients = v.check_positive("expected_clients", expected_clients)
        return expected_clients / 20 if self.count_stddev is None else float(self.count_stddev)


def geometric_clipping_update(clipping_norm: float, *, unclipped_fraction: float,
                              target_quantile: float, learning_rate: float) -> float:
    """The next clipping norm: ``C exp(-eta_C (b_bar - gamma))``.

    Andrew et al. 2021, Algorithm 1 (the geometric update of Section 3): ``b_bar`` is the
    (noised) share of updates whose norm was at most ``C``. Too many unclipped
    (``b_bar > gamma``) shrinks ``C``; too few grows it, so ``C`` settles at the
    ``gamma``-quantile of the update norms. (Flower 1.42 feeds this update the share that *was*
    clipped, ``1 - b_bar``: the sign flips and ``C`` runs away; see
    ``docs/flower_adaptive_clipping_bug.md``.)

    Args:
        clipping_norm: ``C`` > 0, this round's norm.
        unclipped_fraction: ``b_bar``, a finite real (noise can put it outside [0, 1]).
        target_quantile: ``gamma`` in (0, 1).
        learning_rate: ``eta_C`` > 0.

    Returns:
        The next ``C`` (> 0).

    Raises:
        TypeError, ValueError: An argument is not a finite number in its range, or the next
            norm would leave the floating-point range.
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    unclipped_fraction = v.check_real("unclipped_fraction", unclipped_fraction)
    AdaptiveClipping(target_quantile=target_quantile, learning_rate=learning_rate)  # checks
    return _next_norm(clipping_norm, unclipped_fraction, float(target_quantile),
                      float(learning_rate))


def _next_norm(clipping_norm: float, unclipped_fraction: float, target_quantile: float,
               learning_rate: float) -> float:
    step = -learning_rate * (unclipped_fraction - target_quantile)
    following = clipping_norm * math.exp(step) if abs(step) < 700 else math.inf
    if not v.MIN_NORMAL <= following < math.inf:
        raise ValueError(f"the next clipping norm must stay a positive float, got "
                         f"clipping_norm={v._fmt(clipping_norm)} * exp({step:.4g}) from "
                         f"unclipped_fraction={v._fmt(unclipped_fraction)}: an unclipped share "
                         "far outside [0, 1] (too much count noise), or a norm driven to 0 by "
                         "updates of norm 0.")
    return following


def noised_unclipped_fraction(update_norms: Any, *, clipping_norm: float, count_stddev: float,
                              expected_clients: float,
                              randomness: schedule.PrivateRandomness | None) -> float:
    """The private estimate ``b_bar`` of the share of updates with norm at most ``C``.

    Andrew et al. 2021, Algorithm 1 with the centring of Section 3 (as TensorFlow Federated
    does it): every client's bit ``b_i = 1[||Delta_i|| <= C]`` enters the sum as
    ``b_i - 1/2``, so that adding or removing one client moves the sum by at most ``1/2``. Done
    exactly on integers: ``s = sum_i (2 b_i - 1)`` plus one discrete Gaussian draw of variance
    at least ``(2 sigma_b)^2`` (:func:`fl_helpers.discrete_noise.discrete_gaussian`), then,
    as post-processing, ``b_bar = (s / 2) / (q N) + 1/2``: the noise on ``sum_i (b_i - 1/2)`` has
    std ``sigma_b`` (the variance is rounded up to one the sampler takes: never less noise). The
    divisor ``q N`` is the public expected number of clients, never the realised count.

    Args:
        update_norms: Each sampled client's update norm (1-D, finite, >= 0; may be empty).
        clipping_norm: ``C`` > 0.
        count_stddev: ``sigma_b`` >= 0 (0: no noise, no privacy).
        expected_clients: ``q N`` > 0.
        randomness: The exact noise's :class:`fl_helpers.schedule.PrivateRandomness` (its
            release stream, which every call continues; ``None`` only with ``count_stddev=0``).

    Returns:
        ``b_bar`` (a float; noise can put it outside [0, 1]).

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    norms = v.check_float_array("update_norms", update_norms, ndim=1, min_size=0)
    if norms.size and (norms < 0).any():
        raise ValueError(f"update_norms must be >= 0, got {v._fmt(float(norms.min()))}.")
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    count_stddev = v.check_non_negative("count_stddev", count_stddev)
    expected_clients = v.check_positive("expected_clients", expected_clients)
    if count_stddev > 0 and not isinstance(randomness, schedule.PrivateRandomness):
        raise TypeError(f"randomness must be a PrivateRandomness when count_stddev > 0, got "
                        f"{type(randomness).__name__}. Pass "
                        "randomness=PrivateRandomness.secret().")
    bits = randomness._exact_bits() if count_stddev > 0 and randomness is not None else None
    return _unclipped_fraction(norms, clipping_norm, count_stddev, expected_clients, bits)


def _count_variance(count_stddev: float) -> int:
    """The integer variance of the noise on ``sum_i (2 b_i - 1)``: at least ``(2 sigma_b)^2``."""
    return discrete_noise.exact_variance_at_least((2 * count_stddev) ** 2) \
        if count_stddev > 0 else 0


def _unclipped_fraction(norms: np.ndarray, clipping_norm: float, count_stddev: float,
                        expected_clients: float,
                        source: schedule._Bits | None) -> float:
    """:func:`noised_unclipped_fraction` without the checks (``source``: the noise's bits)."""
    centred = int(2 * np.count_nonzero(norms <= clipping_norm)) - int(norms.size)
    variance = _count_variance(count_stddev)
    if variance:
        assert source is not None
        centred += int(discrete_noise._discrete_gaussian(variance, 1, source)[0])
    return centred / 2 / expected_clients + 0.5


class AdaptiveClipDPFedAvg(DPFedAvg):
    """DP-FedAvg with the clipping norm adapted to a quantile of the update norms.

    Andrew, Thakkar, McMahan & Ramaswamy 2021, "Differentially Private Learning with Adaptive
    Clipping", Algorithm 1 (TensorFlow Federated's default DP aggregator). Round ``t`` with
    norm ``C_t``:

    1. each sampled client's bit ``b_i = 1[||Delta_i|| <= C_t]`` (computed by the client with
       ``clip_on="client"``, by the server otherwise);
    2. the updates are clipped to ``C_t``, summed, noised with std ``z_Delta C_t`` and divided by
       ``q N`` exactly as :class:`DPFedAvg` does (exact integer noise);
    3. the centred count of unclipped updates is noised with std ``sigma_b``
       (:func:`noised_unclipped_fraction`), giving ``b_bar``;
    4. ``C_{t+1} = C_t exp(-eta_C (b_bar - gamma))`` (:func:`geometric_clipping_update`).

    ``C_t`` depends only on ``C_0`` and the noised counts of earlier rounds, so it is public
    (post-processing): :attr:`clipping_norms` lists it per round. Privacy: the round's two
    releases together are one Gaussian mechanism of the total multiplier ``z``
    (:func:`fl_helpers.accounting.adaptive_clipping_update_noise_multiplier`, which gives
    ``z_Delta``), so epsilon is the accountant's for ``z`` -- client-level, add/remove one
    client, central DP (trusted server), against whoever sees the released models and norms.
    Both draws of a round come from that round's one noise key (the update's first).

    The rule keeps state (the current norm): use one instance for one run.

    Args:
        clipping: The :class:`AdaptiveClipping` settings (default: TFF's and Flower's).
        noise_multiplier: ``z`` >= 0, the **total** (0: no noise on either release, no privacy).
        expected_clients: ``q N`` > 0, a public constant (also the default ``sigma_b``'s base).
        noise: ``"exact"`` only (float noise is the attack's control of :class:`DPFedAvg`).
        clip_on: ``"server"`` (default) or ``"client"`` (:class:`ClipPlacement`).

    Raises:
        fl_helpers.accounting.NoiseSplitError: ``z >= 2 sigma_b``.
        TypeError, ValueError: A malformed argument (named).
    """

    name = "DP-FedAvg (adaptive clipping)"

    def __init__(self, *, clipping: AdaptiveClipping | None = None, noise_multiplier: float,
                 expected_clients: float, noise: str = "exact",
                 clip_on: ClipPlacement | str = ClipPlacement.SERVER) -> None:
        clipping = AdaptiveClipping() if clipping is None else clipping
        if not isinstance(clipping, AdaptiveClipping):
            raise TypeError(f"clipping must be an AdaptiveClipping, got "
                            f"{type(clipping).__name__} {v._fmt(clipping)}.")
        if check_noise(noise) != "exact":
            raise ValueError("noise must be 'exact' for adaptive clipping, got 'float': the "
                             "count is always noised exactly, and float noise on the updates is "
                             "only the attack's control of DPFedAvg.")
        total = v.check_non_negative("noise_multiplier", noise_multiplier)
        expected_clients = v.check_positive("expected_clients", expected_clients)
        count_stddev = clipping.count_stddev_for(expected_clients)
        # Imported here: the Flower ClientApp imports this module in every message, and must
        # not pay for dp-accounting (tests/test_deploy.py::test_client_app_imports_stay_light).
        from fl_helpers import accounting

        update_multiplier = accounting.adaptive_clipping_update_noise_multiplier(
            noise_multiplier=total, count_stddev=count_stddev)
        super().__init__(clipping_norm=clipping.initial_clipping_norm,
                         noise_multiplier=update_multiplier, expected_clients=expected_clients,
                         noise=noise, clip_on=clip_on)
        self.clipping = clipping
        #: ``z``, the total the accountant sees; :attr:`noise_multiplier` is ``z_Delta``.
        self.total_noise_multiplier = total
        #: ``sigma_b`` (0 without noise).
        self.count_stddev = count_stddev if total > 0 else 0.0
        # The engine's fused sum and its factor path do not hand the rule the clients' norms
        # (the bits need them): the rule aggregates the updates itself.
        self.fusable = False
        self.takes_factors = False
        #: ``C_t`` of every round aggregated so far (public).
        self.clipping_norms: list[float] = []
        #: ``b_bar`` of every round aggregated so far (public: noised).
        self.unclipped_fractions: list[float] = []
        self._source: schedule._Bits | None = None

    @property
    def accounted_noise_multiplier(self) -> float:
        """The total ``z`` (:attr:`total_noise_multiplier`): the round's two releases together
        are one Gaussian mechanism of that multiplier (Andrew et al. 2021, Section 3.2), so
        :meth:`dp_event` describes it as DP-FedAvg's event of ``z``."""
        return self.total_noise_multiplier

    def _noise_source(self, context: RoundContext) -> schedule._Bits:
        if self._source is None:
            self._source = super()._noise_source(context)
        return self._source

    def _adapt(self, norms: np.ndarray, context: RoundContext) -> None:
        """Steps 3 and 4: the noised share of unclipped updates, and the next norm."""
        source = self._noise_source(context) if self.count_stddev > 0 else None
        fraction = _unclipped_fraction(norms, self.clipping_norm, self.count_stddev,
                                       self.expected_clients, source)
        self.clipping_norms.append(self.clipping_norm)
        self.unclipped_fractions.append(fraction)
        self.clipping_norm = _next_norm(self.clipping_norm, fraction,
                                        float(self.clipping.target_quantile),
                                        float(self.clipping.learning_rate))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The adapted norm: the next round's ``C``, and ``C_t`` and ``b_bar`` of every round so
        far. All public (post-processing of noised counts), so a checkpoint may hold them."""
        return {"clipping_norm": np.asarray(self.clipping_norm, dtype=np.float64),
                "clipping_norms": np.asarray(self.clipping_norms, dtype=np.float64),
                "unclipped_fractions": np.asarray(self.unclipped_fractions, dtype=np.float64)}

    def restore_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Sets the norm and its history from :meth:`state_arrays` (checked first)."""
        expected = {"clipping_norm", "clipping_norms", "unclipped_fractions"}
        if not isinstance(arrays, dict) or set(arrays) != expected:
            keys = sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__
            raise ValueError(f"arrays must hold exactly {sorted(expected)} (an adaptive-clipping "
                             f"checkpoint), got {keys}.")
        norm = np.asarray(arrays["clipping_norm"], dtype=np.float64)
        norms = np.asarray(arrays["clipping_norms"], dtype=np.float64)
        fractions = np.asarray(arrays["unclipped_fractions"], dtype=np.float64)
        if norm.shape != () or not (np.isfinite(norm) and norm > 0):
            raise ValueError(f"arrays['clipping_norm'] must be one finite value > 0, got "
                             f"{v._fmt(norm)}.")
        if norms.ndim != 1 or fractions.shape != norms.shape or not (
                np.isfinite(norms).all() and (norms > 0).all() and np.isfinite(fractions).all()):
            raise ValueError("arrays['clipping_norms'] and arrays['unclipped_fractions'] must be "
                             "1-D of one length, finite, the norms > 0, got shapes "
                             f"{norms.shape} and {fractions.shape}.")
        self.clipping_norm = float(norm)
        self.clipping_norms = [float(c) for c in norms]
        self.unclipped_fractions = [float(b) for b in fractions]

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: RoundContext) -> Weights:
        # Each client's bit, from its unclipped update (on the client with clip_on="client").
        norms = np.asarray([_norm(delta) for delta in deltas], dtype=np.float64)
        self._source = None
        try:
            update = super().aggregate(deltas, num_examples, context)
            self._adapt(norms, context)
        finally:
            self._source = None
        return update

    def aggregate_empty(self, shapes: Sequence[tuple[int, ...]], context: RoundContext
                        ) -> Weights:
        """An empty round releases both noises, like any other (its sums are zero)."""
        self._source = None
        try:
            update = super().aggregate_empty(shapes, context)
            self._adapt(np.zeros(0, dtype=np.float64), context)
        finally:
            self._source = None
        return update


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


def _check_sampling_probability(value: Any) -> float:
    """``q`` in (0, 1] and not subnormal (as :func:`fl_helpers.accounting.
    check_sampling_probability`, which this module does not import)."""
    q = v.check_probability("sampling_probability", value)
    if q < v.MIN_NORMAL:
        raise ValueError(f"sampling_probability must be >= {v.MIN_NORMAL} (the smallest normal "
                         f"float), got {v._fmt(q)}.")
    return q


def _check_event_arguments(sampling_probability: Any, dimension: Any, num_clients: Any
                           ) -> tuple[float, int | None, int | None]:
    """:meth:`AggregationRule.dp_event`'s arguments checked: ``q`` in (0, 1] (normal), and
    ``dimension`` in 1..2^27 and ``num_clients`` >= 1 where given (``None`` stays ``None``)."""
    q = _check_sampling_probability(sampling_probability)
    if dimension is not None:
        dimension = v.check_int("dimension", dimension, minimum=1,
                                maximum=discrete_noise.MAX_SIZE)
    if num_clients is not None:
        num_clients = v.check_int("num_clients", num_clients, minimum=1)
    return q, dimension, num_clients


def check_noise(noise: Any) -> str:
    """``noise`` checked: ``"float"`` or ``"exact"``."""
    return v.check_choice("noise", noise, NOISE_KINDS)


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
        self.momentum = v.check_in_range("momentum", momentum, 0, 1, high_open=True)
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
        self.decay = v.check_in_range("decay", decay, 0, 1, high_open=True)
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


def _check_adaptive_settings(server_learning_rate: Any, beta_1: Any, beta_2: Any,
                             tau: Any) -> tuple[float, float, float, float]:
    """The checked settings shared by the adaptive server optimizers (Adam, Yogi)."""
    learning_rate = v.check_positive("server_learning_rate", server_learning_rate)
    betas = []
    for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
        betas.append(v.check_in_range(name, beta, 0, 1, high_open=True))
    return learning_rate, betas[0], betas[1], v.check_positive("tau", tau)


class ServerAdam(ServerOptimizer):
    """FedAdam (Reddi et al. 2021, Algorithm 2): Adam on the server with the update as gradient.

    Args:
        server_learning_rate: ``eta`` > 0.
        beta_1, beta_2: Moment decay rates in [0, 1).
        tau: The adaptivity ``tau`` > 0 (Reddi et al. use 1e-3).
    """

    def __init__(self, server_learning_rate: float = 0.01, *, beta_1: float = 0.9,
                 beta_2: float = 0.99, tau: float = 1e-3) -> None:
        (self.server_learning_rate, self.beta_1, self.beta_2,
         self.tau) = _check_adaptive_settings(server_learning_rate, beta_1, beta_2, tau)
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


class ServerYogi(ServerOptimizer):
    """FedYogi (Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, Algorithm 2).

    With the aggregated update ``Delta_t`` as the (negative) pseudo-gradient:
    ``m_t = beta_1 m_{t-1} + (1 - beta_1) Delta_t``,
    ``v_t = v_{t-1} - (1 - beta_2) Delta_t^2 sign(v_{t-1} - Delta_t^2)``,
    ``w <- w + eta m_t / (sqrt(v_t) + tau)``. Unlike Adam's ``v``, which forgets its past at rate
    ``1 - beta_2`` whatever the new ``Delta_t^2``, Yogi moves ``v`` additively towards
    ``Delta_t^2``, so a burst of large updates raises it slowly (Zaheer et al. 2018). As in
    :class:`ServerAdam`, ``m`` starts at 0 and ``v`` at ``tau^2`` (Algorithm 2 asks
    ``v_{-1} >= tau^2``), with no bias correction. Flower 1.42's ``FedYogi`` starts ``v`` at 0:
    ``initial_second_moment=0`` reproduces it (``tests/test_flower_server_optimizers.py``).

    Args:
        server_learning_rate: ``eta`` > 0.
        beta_1, beta_2: Moment decay rates in [0, 1).
        tau: The adaptivity ``tau`` > 0 (Reddi et al. use 1e-3).
        initial_second_moment: ``v_{-1}`` >= 0, or ``None`` for ``tau^2``.
    """

    def __init__(self, server_learning_rate: float = 0.01, *, beta_1: float = 0.9,
                 beta_2: float = 0.99, tau: float = 1e-3,
                 initial_second_moment: float | None = None) -> None:
        (self.server_learning_rate, self.beta_1, self.beta_2,
         self.tau) = _check_adaptive_settings(server_learning_rate, beta_1, beta_2, tau)
        self.initial_second_moment = self.tau**2 if initial_second_moment is None else \
            v.check_non_negative("initial_second_moment", initial_second_moment)
        self._m: Weights | None = None
        self._v: Weights | None = None

    def apply(self, weights: Weights, update: Weights) -> Weights:
        if self._m is None or self._v is None:
            self._m = [np.zeros_like(u) for u in update]
            self._v = [np.full_like(u, self.initial_second_moment) for u in update]
        self._m = [self.beta_1 * m + (1 - self.beta_1) * u
                   for m, u in zip(self._m, update, strict=True)]
        self._v = [s - (1 - self.beta_2) * u**2 * np.sign(s - u**2)
                   for s, u in zip(self._v, update, strict=True)]
        return [(w + self.server_learning_rate * m / (np.sqrt(s) + self.tau)).astype(np.float32)
                for w, m, s in zip(weights, self._m, self._v, strict=True)]
