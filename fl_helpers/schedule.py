"""The reproducibility contract, and where private randomness comes from (numpy only).

Every trainer of the course (the per-client loop of :mod:`fl_helpers.client` and the fast engine
of :mod:`fl_helpers.engine`) takes its randomness from here, so that they agree exactly:

* the batch order of one client's local training is :func:`client_batches`, drawn from
  ``np.random.default_rng(client_seed(seed, t, k))`` for client ``k`` in round ``t``;
* plain FedAvg samples a fixed number of clients per round with :func:`sample_clients`
  (the public stream ``"client sampling"`` of round ``t``, :func:`public_rng`): reproducible,
  and not a privacy mechanism;
* DP-FedAvg samples each client independently with probability ``q``
  (:func:`sample_clients_poisson`) and adds Gaussian noise. Both are part of the privacy
  mechanism, so they draw from a :class:`PrivateRandomness`, which is **secret by default**.

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
their sum with the clipped updates), so an observer of the models cannot do so. Noise drawn
from :meth:`PrivateRandomness.noise_rng` is float32 and added in floating point, which leaks
through rounding (Mironov 2012, "On significance of the least significant bits for differential
privacy"; ``audit.float_noise_proofs``); exact noise (DP-FedAvg's ``noise="exact"``) draws
integers from :meth:`PrivateRandomness.noise_key` instead (:mod:`fl_helpers.discrete_noise`).

The randomness contract of the whole package: :class:`PrivateRandomness` is the one type of
private randomness a caller makes, every public function that draws DP noise or a private
sample takes it as ``randomness=`` (``None``: a fresh secret one), and every exact sampler
(:mod:`fl_helpers.discrete_noise`'s vectorised discrete Gaussian, :mod:`fl_helpers.privacy`'s
scalar mechanisms) reads its bits through one private bit source, :class:`_Bits`, that only a
:class:`PrivateRandomness` hands out.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from fl_helpers import _validation as v

#: Stream tags mixed into the seed material, so that sampling, noise and batches never overlap.
_SAMPLING_STREAM = 0x53616D706C65  # "Sample"
_NOISE_STREAM = 0x4E6F697365  # "Noise"

#: The public streams derived from a run's seed, each by its name: the tag is the name's bytes
#: read as one integer (at least 9 bytes, so at least three 32-bit words), and :func:`public_rng`
#: hands them out. Exactly one family is untagged: client ``k``'s batch order in round ``t``,
#: ``np.random.default_rng([seed, t, k])`` (:func:`client_seed`), which every trainer has drawn
#: since the course began (so that full-participation runs keep their results). Every other
#: stream a module derives from a seed is named here, because numpy pads seed material with
#: zeros: an untagged ``[seed, t]`` *is* ``[seed, t, 0]`` (client 0's batch order in round
#: ``t``), and ``[seed, 2020]`` is client 0's in round 2020. Tagged streams never meet the
#: untagged family nor each other (:func:`public_rng` says why; ``tests/test_schedule.py``
#: scans the package for any other ``default_rng([...])``). Not named yet (issue 25): the
#: streams drawn from a bare scalar seed, ``default_rng(seed)`` (the generator
#: :func:`fl_helpers.reproducibility.seed_everything` returns, ``experiment.make_federation``'s
#: split, and those of ``attacks``, ``split_learning``, ``transfer`` and ``vertical``), which
#: equal ``[seed, 0, 0]``, client 0's batch order in round 0 of a run with the same seed, and
#: ``cross_silo.load_hospital``'s ``[split_seed, h]``; naming them changes every notebook's data.
PUBLIC_STREAMS: dict[str, int] = {
    name: int.from_bytes(name.encode(), "big")
    for name in (
        "client sampling",  # sample_clients: FedAvg's m clients of round t (was [seed, t])
        "attack noise",  # robust.MaliciousClients: client k's attack in round t
        "malicious clients",  # robust.malicious_ids: who the attackers are
        "poisoned data",  # robust_widgets.poison: the backdoored examples
        "synthetic federation",  # heterogeneity.synthetic_federation (was [seed, 2020])
        "stragglers",  # heterogeneity.straggler_epochs: round t's stragglers (was [seed, t, 7])
        "dirichlet split",  # heterogeneity_widgets.dirichlet_federation (was [seed, 10])
        "client availability",  # dp_ftrl.availability_schedule: round t's (was [seed, t])
    )
}

#: Most local epochs a client may run (a guard against runs that would never end).
MAX_LOCAL_EPOCHS = 10**6
#: Most batch indices one client's local training may hold, ``num_examples * local_epochs``
#: (8 GiB of int64 indices).
MAX_BATCH_INDICES = 2**30
#: Largest standard deviation :func:`gaussian_noise` draws: float32 reaches only 3.4e38, and a
#: standard normal draw beyond 340 (the margin left) has probability below 1e-25000.
MAX_NOISE_STDDEV = 1e36


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
        local_epochs: Passes over the data ``E`` (1 .. :data:`MAX_LOCAL_EPOCHS`), with
            ``num_examples * local_epochs`` at most :data:`MAX_BATCH_INDICES`.
        batch_size: Examples per step ``B`` (>= 1; values above ``num_examples`` give one batch
            per epoch), or ``None`` for full-batch steps (McMahan et al.'s ``B = inf``).
        rng: Source of the permutations; the same generator state gives the same batches.

    Returns:
        ``local_epochs * ceil(num_examples / batch_size)`` int64 index arrays, in training order.

    Raises:
        TypeError, ValueError: An argument is out of range (the message names it).
    """
    num_examples = v.check_int("num_examples", num_examples, minimum=1,
                               maximum=MAX_BATCH_INDICES)
    local_epochs = check_local_epochs(local_epochs, num_examples=num_examples)
    batch_size = check_batch_size(batch_size)
    rng = v.check_rng("rng", rng)
    return client_batches_unchecked(num_examples, local_epochs, batch_size, rng)


# An unchecked internal fast path, deliberately public: the trainers (client.LoopTrainer and
# engine.MultiClientEngine) check their arguments once per run and then call this every round.
# Not for users (call client_batches); the bad-input fuzz lists it in its UNCHECKED allow-list.
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


def check_local_epochs(local_epochs: Any, *, num_examples: int = 1) -> int:
    """``local_epochs`` as an int in 1 .. :data:`MAX_LOCAL_EPOCHS`.

    For a client of ``num_examples`` examples (the largest client, for a federation), the
    epochs' batch indices, ``num_examples * local_epochs``, must also fit in
    :data:`MAX_BATCH_INDICES`: a larger run would never finish (or run out of memory first).
    """
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1, maximum=MAX_LOCAL_EPOCHS)
    num_examples = v.check_int("num_examples", num_examples, minimum=1)
    if num_examples * local_epochs > MAX_BATCH_INDICES:
        raise ValueError(
            f"local_epochs must be <= {MAX_BATCH_INDICES // num_examples} for a client of "
            f"{num_examples} examples (at most {MAX_BATCH_INDICES} batch indices), got "
            f"{local_epochs}.")
    return local_epochs


def client_seed(seed: int, round_index: int, client: int) -> list[int]:
    """The local-training seed of client ``client`` in round ``round_index``: ``[seed, t, k]``.

    Args:
        seed: The run's seed, an integer >= 0.
        round_index: ``t`` >= 0.
        client: ``k`` >= 0.

    Raises:
        TypeError, ValueError: An argument is not an integer >= 0 (``1.5`` would silently
            become the seed of another round or client).
    """
    if type(seed) is int and type(round_index) is int and type(client) is int \
            and 0 <= min(seed, round_index, client) and max(seed, round_index, client) <= v.MAX_INT:
        return [seed, round_index, client]  # the common case, as cheap as before
    return [v.check_index("seed", seed), v.check_index("round_index", round_index),
            v.check_index("client", client)]


def public_rng(seed: int, stream: str, indices: Sequence[int] = ()) -> np.random.Generator:
    """The public stream ``stream`` of :data:`PUBLIC_STREAMS` derived from ``seed`` (and indices
    such as the round and the client): reproducible, and not a privacy mechanism.

    The generator is seeded with ``np.random.SeedSequence(seed, spawn_key=(tag, *indices))``.
    numpy turns every integer into its 32-bit words and, when there is a spawn key, pads the
    seed's words with zeros to four before appending the key's, so a tagged stream's seed
    material is at least 4 + 3 words long and has the tag in words 4 to 6 (or more). The one
    untagged family (``[seed, t, k]``, each number at most an int64, so at most 6 words) can
    therefore never share seed material with a tagged one. Nor can two tagged streams with
    different tags (no tag's words begin another's: ``tests/test_schedule.py`` checks it), or
    with the same tag and different indices below ``2**32`` (one word each; rounds and client
    ids always are), share it with each other.

    Args:
        seed: The run's seed, an integer >= 0.
        stream: A name in :data:`PUBLIC_STREAMS`.
        indices: Integers >= 0 that pick one stream of the family (e.g. ``(t, k)``).

    Raises:
        TypeError, ValueError: ``seed`` or an index is not an integer >= 0, ``indices`` is not
            a tuple or list, or ``stream`` is not a name in :data:`PUBLIC_STREAMS`.
    """
    seed = v.check_index("seed", seed)
    if not isinstance(stream, str) or stream not in PUBLIC_STREAMS:
        raise ValueError(f"stream must be one of {sorted(PUBLIC_STREAMS)}, got {v._fmt(stream)}.")
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"indices must be a tuple of integers >= 0, got {type(indices).__name__} "
                        f"{v._fmt(indices)}.")
    key = (PUBLIC_STREAMS[stream], *(v.check_index(f"indices[{i}]", index)
                                     for i, index in enumerate(indices)))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def sample_clients(num_clients: int, clients_per_round: int, *, seed: int,
                   round_index: int) -> np.ndarray:
    """FedAvg's sampling: ``m`` distinct clients, uniformly, from the public stream
    ``"client sampling"`` of round ``t`` (:func:`public_rng`), sorted.

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
    rng = public_rng(seed, "client sampling", (round_index,))
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
    if sampling_probability < v.MIN_NORMAL:
        raise ValueError(f"sampling_probability must be >= {v.MIN_NORMAL} (the smallest normal "
                         f"float), got {v._fmt(sampling_probability)}.")
    rng = v.check_rng("rng", rng)
    return np.flatnonzero(rng.random(num_clients) < sampling_probability).astype(np.int64)


def busiest_client_counts(schedule: Sequence[np.ndarray], num_clients: int) -> np.ndarray:
    """Reports sent so far by the most frequently sampled client, after each round.

    Args:
        schedule: The sampled client ids of each round, in order: a list with one 1-D array of
            distinct integer ids in ``0 .. num_clients - 1`` per round (a round may be empty).
        num_clients: ``N`` >= 1.

    Returns:
        int64 array with one entry per round, non-decreasing: entry ``t`` is the largest number
        of rounds among ``0 .. t`` that any one client took part in.

    Raises:
        TypeError, ValueError: ``schedule`` is not a list of id arrays, or a round holds a
            negative, repeated, non-integer or out-of-range id (the message names the round).
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    if isinstance(schedule, (str, bytes, np.ndarray)) or not isinstance(schedule, Sequence):
        raise TypeError(f"schedule must be a list with one array of client ids per round, got "
                        f"{type(schedule).__name__} {v._fmt(schedule)}.")
    rounds = []
    for t, sampled in enumerate(schedule):
        try:
            rounds.append(v.check_ids(f"schedule[{t}]", sampled, num=num_clients, unique=True))
        except ValueError as error:  # an id out of range may mean a wrong num_clients
            raise ValueError(f"{error} (num_clients={num_clients})") from None
    seen = np.zeros(num_clients, dtype=np.int64)
    busiest = np.empty(len(rounds), dtype=np.int64)
    for t, sampled in enumerate(rounds):
        seen[sampled] += 1
        busiest[t] = seen.max()
    return busiest


def warn_reproducible(seed: int, what: str) -> None:
    """Warns that ``what`` (e.g. "the noise") derives from ``seed``, so it protects nobody.

    The one wording every course helper uses when a caller asks for reproducible DP randomness.

    Args:
        seed: The seed, an integer >= 0.
        what: What derives from it, e.g. ``"the noise and the client sampling"``.
    """
    seed = v.check_int("seed", seed, minimum=0)
    if not isinstance(what, str):
        raise TypeError(f"what must be a string, got {type(what).__name__} {v._fmt(what)}.")
    warnings.warn(
        f"reproducible noise from seed {seed}: {what} can be regenerated by anyone who knows the "
        "seed, so the run is not private and the reported epsilon does not hold against them. "
        "Use it for teaching and tests only.", UserWarning, stacklevel=3)


def resolve_randomness(randomness: Any) -> PrivateRandomness:
    """A private run's randomness, checked: ``randomness`` if given, else a fresh secret one
    (OS entropy, never stored).

    Args:
        randomness: A :class:`PrivateRandomness` or ``None``.

    Raises:
        TypeError: ``randomness`` is neither (the message names the one not-private spelling).
    """
    if randomness is None:
        return PrivateRandomness.secret()  # OS entropy, never stored
    if not isinstance(randomness, PrivateRandomness):
        raise TypeError(
            "randomness must be a PrivateRandomness or None (secret), got "
            f"{type(randomness).__name__} {v._fmt(randomness)}. For a reproducible, NOT private "
            "run pass randomness=PrivateRandomness.reproducible(seed).")
    return randomness


def _chacha20(key: bytes) -> Any:
    """A ChaCha20 keystream generator (RFC 8439; all-zero nonce: every key here serves one
    stream): the course's one stream cipher, under :class:`_Bits` and secure aggregation's
    masks."""
    return Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()


class _Bits:
    """The one bit source under the course's exact samplers: a private view of a
    :class:`PrivateRandomness`, never made by a caller.

    Uniform bytes from a ChaCha20 keystream (RFC 8439; all-zero nonce, one stream per key) or,
    for notebook 01's mechanisms, from the bytes of a numpy generator (read 16 KiB at a time, the
    rest of a block dropped when the release is done). On them: uniform 64-bit words and exact
    uniform integers below a bound, vectorised (:mod:`fl_helpers.discrete_noise`'s sampler) or one
    Python integer of any size at a time (:mod:`fl_helpers.privacy`'s scalar samplers), both by
    rejection, so exactly uniform.
    """

    __slots__ = ("_cipher", "_rng", "_pool", "_position")
    _CHUNK = 1 << 14

    def __init__(self, *, _cipher: Any = None, _rng: np.random.Generator | None = None) -> None:
        self._cipher = _cipher
        self._rng = _rng
        self._pool = b""
        self._position = 0

    @classmethod
    def _from_key(cls, key: bytes) -> _Bits:
        return cls(_cipher=_chacha20(key))

    @classmethod
    def _from_generator(cls, rng: np.random.Generator) -> _Bits:
        return cls(_rng=rng)

    def __reduce__(self) -> Any:
        raise TypeError("the bits of a PrivateRandomness cannot be pickled or copied.")

    def _take(self, num_bytes: int) -> bytes:
        if self._cipher is not None:
            return self._cipher.update(bytes(num_bytes))
        assert self._rng is not None
        if self._position + num_bytes > len(self._pool):
            self._pool = self._pool[self._position:] + self._rng.bytes(
                max(self._CHUNK, num_bytes))
            self._position = 0
        start = self._position
        self._position += num_bytes
        return self._pool[start:self._position]

    def below(self, n: int) -> int:
        """One uniform integer in ``0 .. n - 1`` (``n`` >= 1, any size), by rejection."""
        if n == 1:
            return 0
        bits = (n - 1).bit_length()
        num_bytes = (bits + 7) // 8
        while True:  # rejection: exactly uniform on {0, ..., n - 1}
            draw = int.from_bytes(self._take(num_bytes), "little") >> (8 * num_bytes - bits)
            if draw < n:
                return draw

    def words(self, size: int) -> np.ndarray:
        """``size`` uniform uint64 words."""
        return np.frombuffer(self._take(8 * size), dtype="<u8").copy()

    def below_array(self, bounds: np.ndarray) -> np.ndarray:
        """One uniform integer in ``0 .. bounds[i] - 1`` per entry (bounds in 1..2^63 - 1).

        A word ``w`` is kept if ``w >= 2^64 mod n``: the kept range has a multiple of ``n``
        values, so ``w mod n`` is exactly uniform.
        """
        bounds = np.asarray(bounds, dtype=np.uint64)
        if bounds.size and bounds.min() == bounds.max():  # one bound: scalar arithmetic
            return self.below_one(int(bounds.flat[0]), bounds.shape)
        out = np.empty(bounds.shape, dtype=np.uint64)
        todo = np.arange(bounds.size)
        flat = bounds.reshape(-1)
        result = out.reshape(-1)
        while todo.size:
            n = flat[todo]
            w = self.words(todo.size)
            keep = w >= (np.uint64(0) - n) % n
            result[todo[keep]] = w[keep] % n[keep]
            todo = todo[~keep]
        return out

    def below_one(self, bound: int, shape: tuple[int, ...]) -> np.ndarray:
        """:meth:`below_array` with every bound equal to ``bound`` (the same rejection rule)."""
        n = np.uint64(bound)
        smallest = np.uint64((2**64 - bound) % bound)  # keep w >= 2^64 mod n
        size = math.prod(shape)
        out = np.empty(size, dtype=np.uint64)
        filled = 0
        while filled < size:
            w = self.words(size - filled)
            kept = w[w >= smallest] % n
            out[filled:filled + kept.size] = kept
            filled += kept.size
        return out.reshape(shape)

    def uniform(self, size: int) -> np.ndarray:
        """``size`` floats in [0, 1) with 53 random bits each (for stochastic rounding)."""
        return (self.words(size) >> np.uint64(11)).astype(np.float64) * 2.0**-53


class PrivateRandomness:
    """The source of a private run's client sampling and noise: secret unless asked otherwise.

    Make one with :meth:`secret` (the default everywhere: 128 bits of OS entropy that are never
    exposed) or :meth:`reproducible` (derived from a seed: the same seed gives the same noise,
    so the run is **not private** against anyone who knows the seed; a warning says so).
    Each round gets its own independent streams, so a caller that needs the schedule before
    training (local-DP accounting) sees the schedule training will use.

    A secret object never hands out the same noise twice, since two releases with the same
    noise cancel it (their difference is the difference of the noiseless sums):

    * :meth:`noise_rng` gives each round's noise stream once; a second request for the same
      round raises :class:`NoiseReuseError`;
    * a private run claims the object (:meth:`claim`); a second run with the same object is
      refused, because it would reuse both the noise and the secret client sampling (the
      accountant composes independent runs);
    * it cannot be copied or pickled (the copy would regenerate the noise bit for bit).

    A reproducible object is exempt from these rules (its noise is already public to anyone
    who knows the seed), so that tests and notebooks can replay it for parity checks.

    Its streams, each derived in one way from the secret (or, when reproducible, the seed ``s``):

    ============================== ====================================================
    round ``t``'s client sampling   ``default_rng(SeedSequence([s, t, "Sample" tag]))``
    round ``t``'s float noise       ``default_rng(SeedSequence([s, t, "Noise" tag]))``
    round ``t``'s exact noise       ChaCha20 keyed ``SHA-256("fl-course exact noise|s|t")``
    exact noise without a round     ChaCha20 keyed ``SHA-256("fl-course noise seed s")``,
                                    continued by every call (secure aggregation, counts)
    notebook 01's mechanisms        reproducible: the bytes of ``default_rng(s)``, continued
                                    by every release; secret: the ChaCha20 stream above
    party ``h`` in round ``t``      ``default_rng([s, t, h, "Noise" tag])`` (cross-silo
                                    DP-SGD: every hospital's process derives its own)
    ============================== ====================================================
    """

    __slots__ = ("_entropy", "_seed", "_noise_drawn", "_claimed_by", "_release", "_stream")

    def __init__(self, *, _entropy: int, _seed: int | None) -> None:
        self._entropy = _entropy
        self._seed = _seed
        self._noise_drawn: set[Any] = set()
        self._claimed_by: str | None = None
        self._release: _Bits | None = None
        self._stream: np.random.Generator | None = None

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
            warn_reproducible(seed, "the noise and the client sampling")
        return cls(_entropy=seed, _seed=seed)

    @property
    def is_reproducible(self) -> bool:
        """``True`` if derived from a seed (not private), ``False`` if secret."""
        return self._seed is not None

    def __repr__(self) -> str:
        if self._seed is None:
            return "PrivateRandomness.secret()"
        return f"PrivateRandomness.reproducible({self._seed})"

    def __reduce__(self) -> Any:
        raise TypeError("a PrivateRandomness cannot be pickled: a copy would regenerate its "
                        "noise. Checkpoints store the run's state, never its randomness.")

    def __copy__(self) -> PrivateRandomness:
        raise TypeError("a PrivateRandomness cannot be copied: a copy would regenerate its noise. "
                        "Make a fresh one with PrivateRandomness.secret().")

    def __deepcopy__(self, memo: dict) -> PrivateRandomness:
        return self.__copy__()

    def claim(self, run: str) -> None:
        """Marks the object as the randomness of one private run (``run`` names it).

        Raises:
            ValueError: A secret object already claimed by a run: pass a fresh
                ``PrivateRandomness.secret()`` to each run.
        """
        if self._seed is not None:
            return
        if self._claimed_by is not None:
            raise ValueError(
                f"randomness was already used by {self._claimed_by}; a second run with the same "
                "secret PrivateRandomness would reuse its noise and its client sampling (two "
                "releases with the same noise cancel it). Pass a fresh PrivateRandomness.secret() "
                f"to {run} (also to resume a run from its checkpoint).")
        self._claimed_by = run

    def _sequence(self, round_index: int, stream: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self._entropy, int(round_index), stream])

    def sampling_rng(self, round_index: int) -> np.random.Generator:
        """The generator of round ``round_index``'s client sampling."""
        return np.random.default_rng(self._sequence(round_index, _SAMPLING_STREAM))

    def noise_rng(self, round_index: int) -> np.random.Generator:
        """The generator of round ``round_index``'s noise (independent of the sampling).

        Raises:
            NoiseReuseError: A secret object asked twice for the same round's noise.
        """
        self._take_noise(int(round_index))
        return np.random.default_rng(self._sequence(round_index, _NOISE_STREAM))

    def noise_key(self, round_index: int) -> bytes:
        """Round ``round_index``'s 32-byte key for exact integer noise (the ChaCha20 key of the
        bits :func:`fl_helpers.discrete_noise.discrete_gaussian` draws with ``round_index``),
        derived with SHA-256 from the secret (or the seed) and the round. One round's noise,
        like :meth:`noise_rng`'s: a secret object hands it out once (:class:`NoiseReuseError`),
        whichever of the two is asked.
        """
        self._take_noise(int(round_index))
        material = f"fl-course exact noise|{self._entropy}|{int(round_index)}".encode()
        return hashlib.sha256(material).digest()

    def _take_noise(self, key: Any, label: str | None = None) -> None:
        if self._seed is None:
            if key in self._noise_drawn:
                raise NoiseReuseError(
                    f"the noise of {label or f'round {key}'} was already drawn from this "
                    "PrivateRandomness; it is never handed out twice (two releases with the same "
                    "noise cancel it). Use a fresh PrivateRandomness.secret() for a new release.")
            self._noise_drawn.add(key)

    # The private views below are the only way the samplers reach the randomness: one bit
    # source (:class:`_Bits`) and the numpy streams, each derived from the secret (or the seed)
    # in one documented way, so that a seed gives the draws it always gave.

    def _exact_bits(self, round_index: int | None = None) -> _Bits:
        """Exact noise's bits: round ``round_index``'s (ChaCha20 keyed with :meth:`noise_key`,
        a secret object hands it out once) or, without a round, the object's one release stream
        (ChaCha20 keyed with SHA-256 of ``"fl-course noise seed {seed}"``), which every call
        continues, so that it never repeats."""
        if round_index is not None:
            return _Bits._from_key(self.noise_key(round_index))
        if self._release is None:
            key = hashlib.sha256(f"fl-course noise seed {self._entropy}".encode()).digest()
            self._release = _Bits._from_key(key)
        return self._release

    def _mechanism_bits(self) -> _Bits:
        """The bits of one release of notebook 01's scalar mechanisms: for a reproducible object,
        the bytes of ``np.random.default_rng(seed)`` (one generator that every release continues;
        a release's unused bytes are dropped); for a secret one, the ChaCha20 release stream of
        :meth:`_exact_bits` (a cryptographic stream, so the mechanism's outputs cannot reveal
        the noise of the next)."""
        if self._seed is None:
            return self._exact_bits()
        if self._stream is None:
            self._stream = np.random.default_rng(self._seed)
        return _Bits._from_generator(self._stream)

    def _party_rng(self, round_index: int, party: int) -> np.random.Generator:
        """Party ``party``'s sampling and noise in round ``round_index`` (a hospital of the
        cross-silo deployment): ``np.random.default_rng([seed, t, party, tag])``, independent
        for every (round, party); a secret object hands each out once. Every process of a
        deployment derives its own from the same object's description: from the seed when
        reproducible, and from its own secret (never shared) when secret."""
        self._take_noise(("party", int(round_index), int(party)),
                         f"round {round_index} for party {party}")
        return np.random.default_rng([self._entropy, int(round_index), int(party),
                                      _NOISE_STREAM])

    def poisson_schedule(self, num_clients: int, *, sampling_probability: float,
                         num_rounds: int) -> list[np.ndarray]:
        """The Poisson-sampled clients of rounds ``0 .. num_rounds - 1``."""
        num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
        return [sample_clients_poisson(num_clients, sampling_probability=sampling_probability,
                                       rng=self.sampling_rng(t)) for t in range(num_rounds)]


class NoiseReuseError(RuntimeError):
    """A secret :class:`PrivateRandomness` was asked for noise it has already handed out."""


def gaussian_noise(shapes: Sequence[tuple[int, ...]], *, stddev: float,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """I.i.d. ``N(0, stddev^2)`` float32 arrays of the given shapes, drawn in order from ``rng``.

    Drawn as one flat vector and split, so the draw does not depend on how the parameters are
    cut into layers.

    Args:
        shapes: One shape (a tuple of ints >= 0) per array, e.g. ``[w.shape for w in weights]``.
        stddev: The standard deviation, >= 0 and at most :data:`MAX_NOISE_STDDEV` (a larger
            one would make the float32 draws overflow to inf).
        rng: The generator to draw from.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    if isinstance(shapes, (str, bytes, np.ndarray)) or not isinstance(shapes, Sequence):
        raise TypeError(f"shapes must be a list of array shapes (tuples of ints), got "
                        f"{type(shapes).__name__} {v._fmt(shapes)}.")
    checked = []
    for i, shape in enumerate(shapes):
        if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, np.ndarray)):
            raise TypeError(f"shapes[{i}] must be a tuple of ints, got {type(shape).__name__} "
                            f"{v._fmt(shape)}.")
        checked.append(tuple(v.check_int(f"shapes[{i}][{j}]", n, minimum=0)
                             for j, n in enumerate(shape)))
    total = sum(math.prod(shape) for shape in checked)
    if total > v.MAX_INT:
        raise ValueError(f"shapes must hold at most {v.MAX_INT} values in all, got {total}.")
    stddev = v.check_non_negative("stddev", stddev)
    if stddev > MAX_NOISE_STDDEV:
        raise ValueError(f"stddev must be <= {MAX_NOISE_STDDEV:g} (float32 noise would overflow "
                         f"to inf), got {v._fmt(stddev)}.")
    rng = v.check_rng("rng", rng)
    return gaussian_noise_unchecked(checked, stddev=stddev, rng=rng)


# An unchecked internal fast path like client_batches_unchecked: aggregation.DPFedAvg draws the
# noise of every round with it, from shapes and a stddev it checked once at construction.
def gaussian_noise_unchecked(shapes: Sequence[tuple[int, ...]], *, stddev: float,
                             rng: np.random.Generator) -> list[np.ndarray]:
    """:func:`gaussian_noise` without the checks, for the rules that draw it every round."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    flat = rng.standard_normal(sum(sizes), dtype=np.float32) * np.float32(stddev)
    pieces = np.split(flat, np.cumsum(sizes)[:-1])
    return [piece.reshape(shape) for piece, shape in zip(pieces, shapes, strict=True)]
