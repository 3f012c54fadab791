"""The reproducibility contract, and where private randomness comes from (numpy only).

Every trainer of the course (the per-client loop of :mod:`fl_helpers.client` and the fast engine
of :mod:`fl_helpers.engine`) takes its randomness from here, so that they agree exactly:

* the batch order of one client's local training is :func:`client_batches`, drawn from
  ``np.random.default_rng(client_seed(seed, t, k))`` for client ``k`` in round ``t``;
* plain FedAvg samples a fixed number of clients per round with :func:`sample_clients`
  (``np.random.default_rng([seed, t])``): reproducible, and not a privacy mechanism;
* DP-FedAvg samples each client independently with probability ``q``
  (:func:`sample_clients_poisson`) and adds Gaussian noise. Both are part of the privacy mechanism, so they draw from a
  :class:`PrivateRandomness`, which is **secret by default**.

Why secret: the privacy guarantee of DP-FedAvg holds against an observer who does not know the
noise. If the noise were a function of a public seed, anyone who knows the seed could regenerate
it and subtract it from the released model, recovering the noiseless sum of clipped updates;
and amplification by sampling assumes the observer does not know who was sampled. A
:class:`PrivateRandomness` made with :meth:`PrivateRandomness.secret` holds 128 bits of operating
system entropy (``np.random.SeedSequence()`` without a seed, which reads ``os.urandom``) that are
never returned, printed or stored. :meth:`PrivateRandomness.reproducible` derives everything from
a seed instead: useful for teaching, tests and stored notebook outputs, and labelled as
**not private** wherever it is used.

What holds and what does not: the streams are expanded by numpy's PCG64 generator, which is fast
and statistically excellent but not a cryptographic generator; someone who saw many *raw* draws
could in principle reconstruct its state. In DP-FedAvg the raw draws are never released (only
their sum with the clipped updates), so an observer of the models cannot do so. The noise is
sampled and added in floating point, which leaks through the low-order bits (Mironov 2012, "On
significance of the least significant bits for differential privacy"); notebook 06 shows the
discrete route (integers and a discrete Gaussian under secure aggregation) that closes this gap.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fl_helpers import _validation as v

#: Stream tags mixed into the seed material, so that sampling, noise and batches never overlap.
_SAMPLING_STREAM = 0x53616D706C65  # "Sample"
_NOISE_STREAM = 0x4E6F697365  # "Noise"


def client_batches(num_examples: int, *, local_epochs: int, batch_size: int | None,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """The batch order of one client's local training.

    Every epoch draws a fresh permutation of ``range(num_examples)`` from ``rng`` and cuts it into
    ``ceil(num_examples / batch_size)`` consecutive batches; the last batch of an epoch is smaller
    when ``batch_size`` does not divide ``num_examples``. Every example is therefore used exactly
    once per epoch. All trainers in the course (the GradientTape loop, Keras ``fit``, the fast
    engine) take their batches from here, so they see the same examples in the same order.

    Args:
        num_examples: The client's number of examples ``n_k`` (>= 1).
        local_epochs: Passes over the data ``E`` (>= 1).
        batch_size: Examples per step ``B`` (>= 1; values above ``num_examples`` give one batch
            per epoch), or ``None`` for full-batch steps (McMahan et al.'s ``B = inf``).
        rng: Source of the permutations; the same generator state gives the same batches.

    Returns:
        ``local_epochs * ceil(num_examples / batch_size)`` int64 index arrays, in training order.

    Raises:
        TypeError, ValueError: An argument is out of range (the message names it).
    """
    num_examples = v.check_int("num_examples", num_examples, minimum=1)
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
    batch_size = check_batch_size(batch_size)
    rng = v.check_rng("rng", rng)
    return client_batches_unchecked(num_examples, local_epochs, batch_size, rng)


def client_batches_unchecked(num_examples: int, local_epochs: int, batch_size: int | None,
                             rng: np.random.Generator) -> list[np.ndarray]:
    """:func:`client_batches` without the argument checks, for trainers that checked once."""
    step = num_examples if batch_size is None else min(batch_size, num_examples)
    batches: list[np.ndarray] = []
    for _ in range(local_epochs):
        order = rng.permutation(num_examples).astype(np.int64)
        batches.extend(order[start:start + step] for start in range(0, num_examples, step))
    return batches


def check_batch_size(batch_size: Any) -> int | None:
    """``batch_size`` as an int >= 1, or ``None`` (full batch)."""
    if batch_size is None:
        return None
    return v.check_int("batch_size", batch_size, minimum=1)


def client_seed(seed: int, round_index: int, client: int) -> list[int]:
    """The local-training seed of client ``client`` in round ``round_index``: ``[seed, t, k]``."""
    return [int(seed), int(round_index), int(client)]


def sample_clients(num_clients: int, clients_per_round: int, *, seed: int,
                   round_index: int) -> np.ndarray:
    """FedAvg's sampling: ``m`` distinct clients, uniformly, from rng ``[seed, t]``, sorted.

    McMahan et al. 2017, Algorithm 1 samples ``m = max(C K, 1)`` clients per round; this course
    calls that fraction ``q`` and ``C`` is kept for the clipping norm. This schedule is public
    and reproducible: it is not part of any privacy guarantee.

    Args:
        num_clients: ``N`` >= 1.
        clients_per_round: ``m`` in 1..N.
        seed: The run's seed (>= 0).
        round_index: ``t``, 0-based.

    Returns:
        Sorted int64 array of ``clients_per_round`` distinct client ids in ``0..N-1``.
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=1,
                                    maximum=num_clients)
    seed = v.check_int("seed", seed, minimum=0)
    round_index = v.check_int("round_index", round_index, minimum=0)
    rng = np.random.default_rng([seed, round_index])
    return np.sort(rng.choice(num_clients, size=clients_per_round, replace=False)).astype(np.int64)


def sample_clients_poisson(num_clients: int, *, sampling_probability: float,
                           rng: np.random.Generator) -> np.ndarray:
    """Poisson sampling: each client joins the round independently with probability ``q``.

    One uniform draw per client from ``rng``; client ``k`` joins if its draw is below ``q``. For
    a private run, ``rng`` is :meth:`PrivateRandomness.sampling_rng` (secret by default).

    Args:
        num_clients: ``N`` >= 1.
        sampling_probability: ``q`` in (0, 1].
        rng: The round's sampling generator.

    Returns:
        Sorted int64 ids of the sampled clients (possibly empty; ``q N`` on average).
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    sampling_probability = v.check_probability("sampling_probability", sampling_probability)
    rng = v.check_rng("rng", rng)
    return np.flatnonzero(rng.random(num_clients) < sampling_probability).astype(np.int64)


def busiest_client_counts(schedule: list[np.ndarray], num_clients: int) -> np.ndarray:
    """Reports sent so far by the most frequently sampled client, after each round.

    Args:
        schedule: The sampled client ids of each round, in order.
        num_clients: ``N`` >= 1.

    Returns:
        int64 array with one entry per round, non-decreasing: entry ``t`` is the largest number
        of rounds among ``0 .. t`` that any one client took part in.
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    seen = np.zeros(num_clients, dtype=np.int64)
    busiest = np.empty(len(schedule), dtype=np.int64)
    for t, sampled in enumerate(schedule):
        seen[np.asarray(sampled, dtype=np.int64)] += 1
        busiest[t] = seen.max()
    return busiest


class PrivateRandomness:
    """The source of a private run's client sampling and noise: secret unless asked otherwise.

    Make one with :meth:`secret` (the default everywhere: 128 bits of OS entropy that are never
    exposed) or :meth:`reproducible` (derived from a seed: the same seed gives the same noise,
    so the run is **not private** against anyone who knows the seed; a warning says so).
    Each round gets its own independent streams, fixed for the object's lifetime, so a caller
    that needs the schedule before training (local-DP accounting) sees the schedule training will
    use.
    """

    __slots__ = ("_entropy", "_seed")

    def __init__(self, *, _entropy: int, _seed: int | None) -> None:
        self._entropy = _entropy
        self._seed = _seed

    @classmethod
    def secret(cls) -> PrivateRandomness:
        """Fresh secret randomness from the operating system (``os.urandom``)."""
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)  # a fresh SeedSequence draws one int from os.urandom
        return cls(_entropy=entropy, _seed=None)

    @classmethod
    def reproducible(cls, seed: int, *, warn: bool = True) -> PrivateRandomness:
        """Randomness derived from ``seed``: reproducible, so NOT private.

        Args:
            seed: Integer >= 0.
            warn: Emit a ``UserWarning`` saying that the run's epsilon does not hold against
                anyone who knows the seed (default ``True``).
        """
        seed = v.check_int("seed", seed, minimum=0)
        if warn:
            warnings.warn(
                f"reproducible noise from seed {seed}: the noise and the client sampling can be "
                "regenerated by anyone who knows the seed, so the reported epsilon does not hold "
                "against them. Use it for teaching and tests only.", UserWarning, stacklevel=2)
        return cls(_entropy=seed, _seed=seed)

    @property
    def is_reproducible(self) -> bool:
        """``True`` if derived from a seed (not private), ``False`` if secret."""
        return self._seed is not None

    def __repr__(self) -> str:
        if self._seed is None:
            return "PrivateRandomness.secret()"
        return f"PrivateRandomness.reproducible({self._seed})"

    def _sequence(self, round_index: int, stream: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self._entropy, int(round_index), stream])

    def sampling_rng(self, round_index: int) -> np.random.Generator:
        """The generator of round ``round_index``'s client sampling."""
        return np.random.default_rng(self._sequence(round_index, _SAMPLING_STREAM))

    def noise_rng(self, round_index: int) -> np.random.Generator:
        """The generator of round ``round_index``'s noise (independent of the sampling)."""
        return np.random.default_rng(self._sequence(round_index, _NOISE_STREAM))

    def poisson_schedule(self, num_clients: int, *, sampling_probability: float,
                         num_rounds: int) -> list[np.ndarray]:
        """The Poisson-sampled clients of rounds ``0 .. num_rounds - 1``."""
        num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
        return [sample_clients_poisson(num_clients, sampling_probability=sampling_probability,
                                       rng=self.sampling_rng(t)) for t in range(num_rounds)]


def gaussian_noise(shapes: list[tuple[int, ...]], *, stddev: float,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """I.i.d. ``N(0, stddev^2)`` float32 arrays of the given shapes, drawn in order from ``rng``.

    Drawn as one flat vector and split, so the draw does not depend on how the parameters are
    cut into layers.
    """
    sizes = [int(np.prod(shape)) for shape in shapes]
    flat = rng.standard_normal(sum(sizes), dtype=np.float32) * np.float32(stddev)
    pieces = np.split(flat, np.cumsum(sizes)[:-1])
    return [piece.reshape(shape) for piece, shape in zip(pieces, shapes, strict=True)]
