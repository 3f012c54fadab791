"""Distributed DP on secure aggregation: quantised updates, distributed discrete Gaussian noise.

Each client quantises its clipped update to integers and adds its share of exact discrete
Gaussian noise; :func:`fl_helpers.secagg_protocol.secure_sum` then gives the server the noised
sum only. The exact sampler is :mod:`fl_helpers.discrete_noise`'s, the accounting
(Kairouz, Liu, Steinke 2021) :mod:`fl_helpers.accounting`'s (``ddg_rho``, ``ddg_epsilon``).

1. **Quantise** (:func:`quantize`): clip each update to L2 norm ``C``, multiply by a public scale
   ``s`` and round every coordinate *stochastically* to a neighbouring integer (unbiased). The
   rounded vector has L2 norm at most ``s C + sqrt(d)`` (each coordinate moves by less than 1),
   a deterministic bound that is the sensitivity the accountant uses. Kairouz, Liu, Steinke 2021
   ("The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation",
   Section 4) first rotate the vector with a random Hadamard transform and round conditionally,
   so that every coordinate is small and ``b`` = 16-18 bits suffice; we do **not** rotate, so a
   whole update may sit in one coordinate and the modulus must hold ``m (s C + 1)`` plus noise in
   every coordinate (``modulus_bits=32`` by default).
4. **Distributed noise** (:func:`fl_helpers.discrete_noise.discrete_gaussian`,
   :class:`DistributedDPSecAgg`): each of the
   ``m`` clients adds discrete Gaussian noise of variance ``ceil(sigma^2 / m)`` (an exact
   sampler: Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy",
   Algorithms 1-3, on integers only, fed by a ChaCha20 stream keyed with 32 bytes of OS entropy).
   The securely aggregated sum carries variance at least ``sigma^2``; its privacy is accounted
   by :func:`fl_helpers.accounting.ddg_rho` (Kairouz et al. 2021, Theorem 1) and
   :func:`fl_helpers.accounting.ddg_epsilon`.

The rule describes its round to the accountant (:meth:`DistributedDPSecAgg.dp_event`, a zCDP
event whose rho holds for every round size), and :func:`run_distributed_dp` runs it on the one
training loop with secret Poisson sampling and reports epsilon after every round, accounted by
the same call as DP-FedAvg's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from fl_helpers import _validation as v
from fl_helpers import accounting, aggregation, discrete_noise, privacy, schedule, training
from fl_helpers import secagg_crypto as crypto
from fl_helpers import secagg_protocol as protocol

if TYPE_CHECKING:
    import dp_accounting

Weights = list[np.ndarray]


# --------------------------------------------------------------------------------------------
# Quantisation
# --------------------------------------------------------------------------------------------


def quantize(update: np.ndarray, *, clipping_norm: float, scale: float,
             randomness: schedule.PrivateRandomness) -> np.ndarray:
    """Clip to L2 norm ``C``, multiply by ``s`` and round stochastically to integers.

    Each coordinate ``x`` becomes ``floor(x)`` or ``floor(x) + 1``, the latter with probability
    ``x - floor(x)``: unbiased (``E[round(x)] = x``), and every coordinate moves by less than 1,
    so the result has L2 norm at most ``s C + sqrt(d)`` (:func:`quantized_norm_bound`).

    Args:
        update: A flat array (one client's update) of floats, or of integers of magnitude at
            most 2^53 (converted to float64 exactly; larger ones are refused, since float64
            would round them), at most 2^27 long.
        clipping_norm: ``C`` > 0.
        scale: ``s`` > 0, integer units per unit of the update, with ``s C <= 2^53`` so that
            every scaled coordinate, its floor and its rounding are exact.
        randomness: The rounding's :class:`fl_helpers.schedule.PrivateRandomness` (its release
            stream, which every call continues).

    Returns:
        int64 array like ``update``.

    Raises:
        TypeError: ``update`` not a flat numeric array, ``randomness`` not a
            :class:`fl_helpers.schedule.PrivateRandomness`.
        ValueError: NaN or inf, an integer beyond 2^53, ``C`` or ``s`` not > 0, ``s C > 2^53``.
    """
    array = _check_update("update", update)
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    scale = _check_scale(scale, clipping_norm)
    return _quantize(array, clipping_norm, scale, discrete_noise._bits_of(randomness))


def _check_update(name: str, update: Any) -> np.ndarray:
    """A flat float64 copy of a float array or of an integer array with |x| <= 2^53."""
    if update is None or isinstance(update, (str, bytes, numbers.Number, np.generic)):
        raise TypeError(f"{name} must be a flat float array, got {type(update).__name__} "
                        f"{v._fmt(update)}.")
    try:
        array = np.asarray(update)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"{name} must be a flat float array, got {type(update).__name__}."
                        ) from error
    is_int = np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_
    if array.ndim != 1 or not (is_int or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must be a flat float array, got dtype {array.dtype} and shape "
                        f"{array.shape}.")
    discrete_noise._check_size(f"the length of {name}", array.size)
    if is_int:
        largest = max(abs(int(array.max())), abs(int(array.min()))) if array.size else 0
        if largest > discrete_noise.MAX_EXACT_INT:
            raise ValueError(f"{name} must hold integers of magnitude <= 2**53 (float64 rounds "
                             "larger ones, which would change the sensitivity), got "
                             f"{v._fmt(largest)}.")
    elif not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got NaN or inf values.")
    return array.astype(np.float64)


def _check_scale(scale: Any, clipping_norm: float) -> float:
    scale = v.check_positive("scale", scale)
    if scale * clipping_norm > discrete_noise.MAX_EXACT_INT:
        raise ValueError(f"scale * clipping_norm must be <= 2**53 so that rounding is exact, got "
                         f"scale={v._fmt(scale)} and clipping_norm={v._fmt(clipping_norm)}.")
    return scale


def _quantize(flat: np.ndarray, clipping_norm: float, scale: float,
              bits: schedule._Bits) -> np.ndarray:
    clipped, _ = privacy.clip_by_l2_norm(flat, clipping_norm)
    scaled = np.asarray(clipped, dtype=np.float64) * scale
    low = np.floor(scaled)
    return (low + (bits.uniform(scaled.size) < scaled - low)).astype(np.int64)


def quantized_norm_bound(*, clipping_norm: float, scale: float, dimension: int) -> float:
    """``s C + sqrt(d)``: the largest L2 norm :func:`quantize` can return (the sensitivity).

    Args:
        clipping_norm: ``C`` > 0.
        scale: ``s`` > 0 with ``s C <= 2^53``.
        dimension: ``d`` in 1..2^27.
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    scale = _check_scale(scale, clipping_norm)
    dimension = v.check_int("dimension", dimension, minimum=1, maximum=discrete_noise.MAX_SIZE)
    return _norm_bound(clipping_norm, scale, dimension)


def _norm_bound(clipping_norm: float, scale: float, dimension: int) -> float:
    return scale * clipping_norm + math.sqrt(dimension)


# --------------------------------------------------------------------------------------------
# The aggregation rule
# --------------------------------------------------------------------------------------------


class DistributedDPSecAgg(aggregation.AggregationRule):
    """Secure aggregation with distributed discrete Gaussian noise, as an aggregation rule.

    Every sampled client clips its update to ``C``, quantises it with scale ``s``
    (:func:`quantize`), adds N_Z(0, ceil(sigma^2 / m)) noise
    (:func:`fl_helpers.discrete_noise.discrete_gaussian`) with
    ``sigma = noise_multiplier * Delta`` and ``Delta = s C + sqrt(d)`` (:meth:`sensitivity`),
    and takes part in :func:`fl_helpers.secagg_protocol.secure_sum` mod ``2^b``. The server
    receives only the sum, divides
    by ``s`` and by ``expected_clients`` (``q N``, as DP-FedAvg does). With
    ``noise_multiplier=0`` it is secure aggregation of clipped, quantised updates (no DP).

    Args:
        clipping_norm: ``C`` > 0.
        expected_clients: The divisor ``q N`` > 0.
        noise_multiplier: ``z`` >= 0 (noise std on the integer sum over its sensitivity).
        scale: ``s`` > 0 (default ``2^12 / C``: the sensitivity ``s C + sqrt(d)`` is then 2.2 %
            above ``s C`` for the 7,850 parameters of softmax regression; larger is finer).
        modulus_bits: ``b`` in 1..62 (default 32).
        threshold_fraction: ``t = max(2, ceil(threshold_fraction m))``, in (1/2, 1] (default
            2/3; :func:`fl_helpers.secagg_protocol.check_threshold` explains why ``t`` must
            exceed ``m / 2``).
        randomness: The rounding's and the noise's :class:`fl_helpers.schedule.PrivateRandomness`
            (default: a fresh ``PrivateRandomness.secret()``; its release stream, which every
            round continues).

    A round with fewer than 2 clients cannot hide an input in a sum, and aborting it would tell
    an observer that the secret sample was that small. It is released with the whole noise
    instead: a lone client adds N_Z(0, ceil(sigma^2)) to its own quantised update (it is then
    as private as the sum, and masking is pointless); a round without clients releases that
    noise alone (:meth:`aggregate_empty`).

    The rule describes its round to the accountant (:meth:`dp_event`): a ``rho``-zCDP release
    whose ``rho`` is the largest :func:`fl_helpers.accounting.ddg_rho` over every number of
    clients a round can hold (:meth:`round_rho`), so it needs the model's dimension and the
    federation's size, which :func:`run_distributed_dp` passes. Privacy unit: one client (its
    whole update); relation: add or remove that client; trusted: every client to add its own
    noise share, the protocol to show the server nothing but the sum (the server itself is not
    trusted with any update); observer: the server or anyone who sees the released models.
    """

    name = "SecAgg + distributed DP"

    def __init__(self, *, clipping_norm: float, expected_clients: float,
                 noise_multiplier: float = 0.0, scale: float | None = None,
                 modulus_bits: int = 32, threshold_fraction: float = 2 / 3,
                 randomness: schedule.PrivateRandomness | None = None) -> None:
        self.clipping_norm = v.check_positive("clipping_norm", clipping_norm)
        self.expected_clients = v.check_positive("expected_clients", expected_clients)
        self.noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
        self.scale = 2.0**12 / self.clipping_norm if scale is None \
            else _check_scale(scale, self.clipping_norm)
        self.modulus_bits = crypto.check_modulus_bits(modulus_bits)
        self.threshold_fraction = v.check_probability("threshold_fraction", threshold_fraction)
        if self.threshold_fraction <= 0.5:
            raise ValueError(f"threshold_fraction must be > 1/2, got "
                             f"{v._fmt(self.threshold_fraction)}: the threshold must exceed "
                             "half of the round's clients (see check_threshold).")
        if randomness is not None and not isinstance(randomness, schedule.PrivateRandomness):
            raise TypeError(f"randomness must be a PrivateRandomness or None, got "
                            f"{type(randomness).__name__}.")
        self._bits = discrete_noise._bits_of(
            schedule.PrivateRandomness.secret() if randomness is None else randomness)
        self.rounds_aggregated = 0

    def sensitivity(self, dimension: int) -> float:
        """``Delta = s C + sqrt(d)`` in integer units (``d`` in 1..2^27)."""
        dimension = v.check_int("dimension", dimension, minimum=1, maximum=discrete_noise.MAX_SIZE)
        return _norm_bound(self.clipping_norm, self.scale, dimension)

    def client_variance(self, dimension: int, num_clients: int) -> int:
        """Each client's integer noise variance ``ceil((z Delta)^2 / m)`` (0 without noise)."""
        num_clients = v.check_int("num_clients", num_clients, minimum=1, maximum=crypto.MAX_CLIENTS)
        if self.noise_multiplier == 0:
            return 0
        return math.ceil((self.noise_multiplier * self.sensitivity(dimension))**2 / num_clients)

    def round_rho(self, *, dimension: int, num_clients: int) -> float:
        """The zCDP ``rho`` that holds for every round of a run over ``N`` clients.

        A round with ``m`` clients has each add ``N_Z(0, ceil(sigma^2 / m))``
        (:meth:`client_variance`, ``sigma = z Delta``); Kairouz, Liu & Steinke 2021, Theorem 1
        bounds its rho (:func:`fl_helpers.accounting.ddg_rho`). ``m`` is secret (Poisson
        sampling) and, in the neighbouring federation with one client more, can reach
        ``N + 1``; a round without clients releases the noise of ``m = 1``. So the round's
        event takes the largest rho over ``m = 1..N + 1``
        (:func:`fl_helpers.accounting.ddg_rho_by_client_count`). With the course's noise
        ``tau`` underflows to 0 and the largest is ``m = 1``'s, ``Delta^2 / (2 ceil(sigma^2))``;
        with small per-client variances ``tau`` grows with ``m`` and a large round decides.

        Not covered by Theorem 1 as applied here: the two neighbouring rounds (with and without
        the client) plan their per-client variance for their own ``m``, so their noise totals
        ``m ceil(sigma^2 / m)`` differ by the rounding up (less than ``m + 1`` integer units on
        ``sigma^2``), where the theorem compares the same noise with and without one input.

        Args:
            dimension: ``d`` in 1..2^27, the model's number of parameters.
            num_clients: ``N`` in 1..``MAX_ACCOUNTED_CLIENTS - 1`` (10^7 - 1), the
                federation's public size.

        Raises:
            ValueError: Without noise (``noise_multiplier=0``: nothing to account), or an
                argument out of range (the message names it).
        """
        dimension = v.check_int("dimension", dimension, minimum=1, maximum=discrete_noise.MAX_SIZE)
        num_clients = v.check_int("num_clients", num_clients, minimum=1,
                                  maximum=accounting.MAX_ACCOUNTED_CLIENTS - 1)
        if self.noise_multiplier == 0:
            raise ValueError("noise_multiplier must be > 0 for a round's rho, got 0: without "
                             "noise the rule is not private (its dp_event is NonPrivateDpEvent).")
        delta = self.sensitivity(dimension)
        rhos = accounting.ddg_rho_by_client_count(
            sensitivity=delta, noise_variance=(self.noise_multiplier * delta)**2,
            max_clients=num_clients + 1, dimension=dimension)
        return float(rhos.max())

    def dp_event(self, *, sampling_probability: float, dimension: int | None = None,
                 num_clients: int | None = None) -> dp_accounting.DpEvent:
        """One round's release, for the accountant (see
        :meth:`fl_helpers.aggregation.AggregationRule.dp_event`).

        * ``PoissonSampledDpEvent(q, ZCDpEvent(rho))`` with ``rho`` = :meth:`round_rho` (a
          plain ``ZCDpEvent(rho)`` when ``q = 1``): composed over every round, amplified by
          the secret sample, against an observer of the released models who does not know who
          took part. The server runs the protocol and knows who took part: against it, ask for
          ``sampling_probability=1.0``, whose ``ZCDpEvent`` the accountant composes over the
          busiest client's rounds only.
        * ``noise_multiplier=0``: ``NonPrivateDpEvent()`` (secure aggregation without DP;
          epsilon is ``inf``), whatever ``dimension`` and ``num_clients``.

        Raises:
            ValueError: ``dimension`` or ``num_clients`` is ``None`` while the rule adds noise
                (its rho depends on both), or out of range (the message names it).
        """
        q, dimension, num_clients = aggregation._check_event_arguments(
            sampling_probability, dimension, num_clients)
        import dp_accounting  # here: the Flower ClientApp must not load dp-accounting

        if self.noise_multiplier == 0:
            return dp_accounting.NonPrivateDpEvent()
        for name, value in (("dimension", dimension), ("num_clients", num_clients)):
            if value is None:
                raise ValueError(
                    f"{name} must be given for {type(self).__name__}'s event, got None: its "
                    "rho depends on the model's dimension and on the federation's size N (a "
                    "round may hold 1..N + 1 clients). distributed_dp.run_distributed_dp "
                    "passes both; training.run_fedavg (no accounting) takes this rule only "
                    "without noise.")
        assert dimension is not None and num_clients is not None
        event = dp_accounting.ZCDpEvent(self.round_rho(dimension=dimension,
                                                       num_clients=num_clients))
        return event if q == 1.0 else dp_accounting.PoissonSampledDpEvent(q, event)

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: aggregation.RoundContext) -> Weights:
        if not len(deltas):
            raise ValueError("DistributedDPSecAgg.aggregate needs the round's updates, got none: "
                             "an empty round goes to aggregate_empty.")
        shapes = [np.shape(layer) for layer in deltas[0]]
        flats = [np.concatenate([np.ravel(np.asarray(d, dtype=np.float64)) for d in delta])
                 for delta in deltas]
        if not all(np.isfinite(flat).all() for flat in flats):
            raise ValueError("deltas must be finite, got NaN or inf in a client's update.")
        m, d = len(flats), flats[0].size
        variance = self.client_variance(d, m)
        inputs = []
        for flat in flats:  # what each client does on its own device
            x = _quantize(flat, self.clipping_norm, self.scale, self._bits)
            if variance:
                x = x + discrete_noise._discrete_gaussian(variance, d, self._bits)
            inputs.append(x)
        bound = m * (self.scale * self.clipping_norm + 1) + 40 * math.sqrt(m * variance)
        if bound >= 2**(self.modulus_bits - 1):
            raise ValueError(
                f"modulus_bits={self.modulus_bits} is too small for the sum of {m} clients "
                f"(up to about {bound:.3g} per coordinate); raise modulus_bits or lower scale.")
        if m == 1:  # nothing to hide it among: the lone client's input carries the whole noise
            total = inputs[0]
        else:
            total = protocol.secure_sum(inputs, modulus_bits=self.modulus_bits,
                                        threshold=max(2, math.ceil(self.threshold_fraction * m)),
                                        round_tag=context.round_index.to_bytes(8, "big")).total
        self.rounds_aggregated += 1
        return self._scaled(total, shapes)

    def aggregate_empty(self, shapes: Sequence[tuple[int, ...]],
                        context: aggregation.RoundContext) -> Weights:
        """A round without clients releases the whole noise N_Z(0, ceil(sigma^2)) alone, so that
        it looks like a round with clients (an observer must not learn the sample's size)."""
        d = sum(int(np.prod(s)) for s in shapes)
        variance = self.client_variance(d, 1)
        total = discrete_noise._discrete_gaussian(variance, d, self._bits) if variance \
            else np.zeros(d, dtype=np.int64)
        self.rounds_aggregated += 1
        return self._scaled(total, list(shapes))

    def _scaled(self, total: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> Weights:
        """Post-processing of the integer sum: divide by ``s`` and by ``q N``."""
        flat_update = total.astype(np.float64) / (self.scale * self.expected_clients)
        pieces = np.split(flat_update, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
        return [p.reshape(s).astype(np.float32) for p, s in zip(pieces, shapes, strict=True)]


# --------------------------------------------------------------------------------------------
# The accounted run
# --------------------------------------------------------------------------------------------

#: The accountant named in the history of :func:`run_distributed_dp`: the round's zCDP bound as
#: RDP, Zhu & Wang's subsampling bound, dp-accounting's conversion
#: (:func:`fl_helpers.accounting.epsilon_per_round_of_event`).
ACCOUNTANT = "zcdp-rdp"


def run_distributed_dp(model_fn: Callable[[], keras.Model],
                       client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *,
                       num_rounds: int, sampling_probability: float, local_epochs: int,
                       batch_size: int | None, client_learning_rate: float,
                       clipping_norm: float, noise_multiplier: float, expected_clients: float,
                       target_delta: float, scale: float | None = None, modulus_bits: int = 32,
                       server_learning_rate: float = 1.0,
                       test_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
                       progress: bool = True, engine: str | training.Engine = "auto",
                       callback: training.Callback | None = None,
                       randomness: schedule.PrivateRandomness | None = None
                       ) -> training.DPHistory:
    """DP-FedAvg with secure aggregation and distributed discrete Gaussian noise, accounted.

    Round ``t``: Poisson-sample clients with probability ``q`` (secret, from ``randomness``),
    train each locally, then :class:`DistributedDPSecAgg`: each client clips, quantises and
    noises its own update, ``secure_sum`` gives the server the sum only, which is divided by
    ``s`` and ``expected_clients``; ``ServerSGD(server_learning_rate)`` steps. The loop is
    :func:`fl_helpers.training.run_private_schedule` (the one training loop); the epsilon after
    each round is what the rule describes
    (:meth:`DistributedDPSecAgg.dp_event` at the model's dimension and ``N =
    len(client_datasets)``) composed over the run by
    :func:`fl_helpers.accounting.epsilon_per_round_of_event`, the same call that accounts
    DP-FedAvg in :func:`fl_helpers.training.run_dp_fedavg`.

    What the epsilon means: client-level DP (add or remove one client with all its data)
    against anyone who sees the released models but not who took part; the clients are
    trusted to add their noise, the server only to run the protocol (it sees the noised sum,
    never an update). Against the server, which knows who took part, there is no amplification
    by sampling: account ``dp_event(sampling_probability=1.0, ...)`` over the schedule it saw
    (the busiest client's rounds). Not covered: runs with
    ``randomness=PrivateRandomness.reproducible(seed)``, and the rounding of the per-client
    variance described in :meth:`DistributedDPSecAgg.round_rho`.

    Args:
        model_fn, client_datasets, local_epochs, batch_size, client_learning_rate, test_data,
            seed, progress, engine, callback: As :func:`fl_helpers.training.run_dp_fedavg`.
        num_rounds: ``T`` in 1..10^7.
        sampling_probability: ``q`` in (0, 1].
        clipping_norm, noise_multiplier, expected_clients, scale, modulus_bits: The rule's
            (:class:`DistributedDPSecAgg`); ``noise_multiplier`` > 0.
        target_delta: delta in (0, 1) of the epsilon reported after each round.
        server_learning_rate: ``eta_s`` > 0.
        randomness: The sampling's, rounding's and noise's
            :class:`fl_helpers.schedule.PrivateRandomness` (default: a fresh secret one).

    Returns:
        A :class:`fl_helpers.training.DPHistory` (``accountant`` is :data:`ACCOUNTANT`,
        ``noise`` ``"exact"``; ``noise_placement`` is ``CENTRAL`` in that the released sum
        carries the whole noise, though each client adds a share of it).

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    randomness = schedule.resolve_randomness(randomness)
    q = accounting.check_sampling_probability(sampling_probability)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1, maximum=10**7)
    target_delta = v.check_open_unit("target_delta", target_delta)
    noise_multiplier = v.check_positive("noise_multiplier", noise_multiplier)
    num_clients = v.check_client_datasets("client_datasets", client_datasets)
    rule = DistributedDPSecAgg(clipping_norm=clipping_norm, expected_clients=expected_clients,
                               noise_multiplier=noise_multiplier, scale=scale,
                               modulus_bits=modulus_bits, randomness=randomness)
    if isinstance(model_fn, keras.Model) or not callable(model_fn):
        raise TypeError(f"model_fn must be a function that builds a keras.Model, got "
                        f"{type(model_fn).__name__}.")
    model = model_fn()
    if not isinstance(model, keras.Model):
        raise TypeError(f"model_fn must return a keras.Model, got {type(model).__name__}.")
    dimension = sum(int(np.size(w)) for w in model.get_weights())
    rounds = randomness.poisson_schedule(num_clients, sampling_probability=q,
                                         num_rounds=num_rounds)
    # The rule describes its round; the accountant composes it, as for DP-FedAvg.
    epsilons = accounting.epsilon_per_round_of_event(
        rule.dp_event(sampling_probability=q, dimension=dimension, num_clients=num_clients),
        schedule=rounds, num_clients=num_clients, target_delta=target_delta)
    fields = training.run_private_schedule(
        model_fn, client_datasets, rounds=rounds, aggregation_rule=rule, randomness=randomness,
        epsilons=epsilons, local_epochs=local_epochs, batch_size=batch_size,
        client_learning_rate=client_learning_rate, server_learning_rate=server_learning_rate,
        test_data=test_data, seed=seed, progress=progress, engine=engine, callback=callback)
    done = len(fields["rounds"])
    return training.DPHistory(
        **fields, noise_multiplier=rule.noise_multiplier, clipping_norm=rule.clipping_norm,
        sampling_probability=q, target_delta=target_delta, accountant=ACCOUNTANT,
        reproducible_noise=randomness.is_reproducible, expected_clients=rule.expected_clients,
        noise="exact", clipping_norms=np.full(done, rule.clipping_norm),
        update_noise_multiplier=rule.noise_multiplier)
