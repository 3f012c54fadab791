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
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import aggregation, discrete_noise, privacy, schedule
from fl_helpers import secagg_crypto as crypto
from fl_helpers import secagg_protocol as protocol

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

    The rule describes no event to the accountant (:meth:`dp_event` is ``None``): its
    per-round rho (:func:`fl_helpers.accounting.ddg_rho`) depends on the round's number of
    clients and on the model's dimension, which the round does not know beforehand; account it
    with :func:`fl_helpers.accounting.ddg_rho` and :func:`fl_helpers.accounting.ddg_epsilon`
    (as ``benchmarks/secure_aggregation_costs.py`` does).
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
