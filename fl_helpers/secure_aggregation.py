"""Secure aggregation with distributed discrete Gaussian noise: the server learns only the sum.

What this module builds, step by step (notebook 06 writes each step by hand first):

1. **Quantise** (:func:`quantize`): clip each update to L2 norm ``C``, multiply by a public scale
   ``s`` and round every coordinate *stochastically* to a neighbouring integer (unbiased). The
   rounded vector has L2 norm at most ``s C + sqrt(d)`` (each coordinate moves by less than 1),
   a deterministic bound that is the sensitivity the accountant uses. Kairouz, Liu, Steinke 2021
   ("The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation",
   Section 4) first rotate the vector with a random Hadamard transform and round conditionally,
   so that every coordinate is small and ``b`` = 16-18 bits suffice; we do **not** rotate, so a
   whole update may sit in one coordinate and the modulus must hold ``m (s C + 1)`` plus noise in
   every coordinate (``modulus_bits=32`` by default).
2. **Mask** (:class:`SecAggClient`, :class:`SecAggServer`, :func:`secure_sum`): the protocol of
   Bonawitz et al. 2017 ("Practical Secure Aggregation for Privacy-Preserving Machine Learning",
   Section 4, Figure 4, honest-but-curious version): every pair of clients agrees on a seed by
   X25519 key agreement + HKDF-SHA256, expands it with the ChaCha20 stream cipher into a mask
   vector mod ``2^b``; one of the pair adds it, the other subtracts it, so the masks cancel in
   the sum. Every client also adds a *self mask* from a seed of its own (double masking).
3. **Dropouts**: each client splits its mask key and its self-mask seed into ``n`` Shamir shares
   (threshold ``t``, over the prime field ``GF(2^130 - 5)``), encrypted for each other client
   with ChaCha20-Poly1305 and relayed by the server, which cannot read them. If a client drops
   after sharing, ``t`` survivors give the server the shares of its mask key, and the server
   removes its pairwise masks; for every client whose masked input arrived, they give the
   shares of its self-mask seed instead. An honest client never reveals both for the same
   client (:meth:`SecAggClient.reveal_shares` refuses), which is why the self mask is needed:
   without it, a "dropped" client's late masked input minus its reconstructed pairwise masks is
   its raw update. Every :class:`SecAggClient` is single-use: it shares its keys once, masks
   one input once (a second input under the same masks would give the server the difference of
   the two inputs; :class:`MaskReuseError`) and answers the unmasking request once.
   **The threshold** must satisfy ``2 <= t <= n`` and ``t > n / 2`` (:func:`check_threshold`):
   with ``t = 1`` every single share *is* the secret, so any one client (or the server after
   one answer) holds every seed; with ``t <= n / 2`` a server that tells two disjoint halves of
   the clients different stories about who dropped collects ``t`` shares of both seeds of one
   client. With ``t > n / 2`` any two groups of ``t`` answering clients overlap, and a client in
   the overlap answers only once. Bonawitz et al. prove honest-but-curious security for ``t``
   above the number of colluding clients (Section 6.2); with ``c`` clients colluding with an
   equivocating server the overlap argument needs ``t > (n + c) / 2``, and the paper's actively
   secure variant uses ``t`` of about ``2 n / 3`` (Section 6.3), the default here.
4. **Distributed noise** (:func:`discrete_gaussian`, :class:`DistributedDPSecAgg`): each of the
   ``m`` clients adds discrete Gaussian noise of variance ``ceil(sigma^2 / m)`` (an exact
   sampler: Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy",
   Algorithms 1-3, on integers only, fed by a ChaCha20 stream keyed with 32 bytes of OS entropy).
   The securely aggregated sum carries variance at least ``sigma^2``; its privacy is accounted
   by :func:`fl_helpers.accounting.ddg_rho` (Kairouz et al. 2021, Theorem 1) and
   :func:`fl_helpers.accounting.ddg_epsilon`.

Threat model of what is built (no more is claimed): an **honest-but-curious** server that follows
the protocol and sees every message, and up to ``t - 1`` clients colluding with it or each
other, learn nothing about an individual client's update beyond the sum of the clients whose
input was included (Bonawitz et al. 2017, Theorem 6.2). A *malicious* server that lies about who
dropped can ask different clients for different sets; the paper's actively secure variant adds
signatures and a consistency-check round (Section 4, Figure 4, round 3), which this module does
not implement. Nothing here authenticates clients: a public-key infrastructure is assumed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import secrets
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fl_helpers import _validation as v
from fl_helpers import aggregation, discrete_noise, privacy
from fl_helpers.discrete_noise import (  # noqa: F401 (the sampler's names, re-exported)
    MAX_VARIANCE,
    NoiseSource,
    _chacha20,
    _check_integer_array,
    _check_size,
    _check_source,
    discrete_gaussian,
    discrete_gaussian_pmf,
)

Weights = list[np.ndarray]

#: The prime of the Shamir field: 2^130 - 5 (the Poly1305 prime); every secret is 16 bytes.
FIELD_PRIME = 2**130 - 5
#: Bytes of a secret seed (a mask key's seed, a self-mask seed): 128 bits.
SEED_BYTES = 16
#: Bytes of an X25519 public key.
PUBLIC_KEY_BYTES = 32
#: Bytes of one Shamir share on the wire (an element of GF(2^130 - 5)).
SHARE_BYTES = 17
#: Bytes of one encrypted share message: two ids, two shares, the Poly1305 tag.
ENCRYPTED_SHARE_BYTES = 4 + 4 + 2 * SHARE_BYTES + 16
#: Largest modulus: masked vectors are uint64 arrays.
MAX_MODULUS_BITS = 62
#: Most clients in one run of the protocol, and the largest client id (Shamir x-coordinate):
#: 2^14, the largest ``n`` Bonawitz et al. 2017 analyse (Section 7). The simulation is
#: O(n^2) key agreements, so far fewer are practical here.
MAX_CLIENTS = 2**14
#: Longest vector any function here masks, quantises or draws noise for (see discrete_noise).
MAX_SIZE = discrete_noise.MAX_SIZE
#: Largest integer magnitude that float64 holds exactly: integer inputs above it are refused
#: where they would pass through float64 (:func:`quantize`, :func:`discrete_gaussian_pmf`).
MAX_EXACT_INT = discrete_noise.MAX_EXACT_INT


class ProtocolAbort(ValueError):
    """An honest party refuses a protocol step that would reveal an individual input."""


class MaskReuseError(ProtocolAbort):
    """A :class:`SecAggClient` was asked to mask a second input (or to run a step twice).

    Both inputs would carry the same self mask and pairwise masks, so the server would learn
    their difference ``y - y' = x - x' mod 2^b``. A client object serves one round: make a new
    one (fresh keys, fresh seeds) for the next input.
    """


# --------------------------------------------------------------------------------------------
# Cryptographic pseudo-randomness
# --------------------------------------------------------------------------------------------


def _derive(secret: bytes, label: str) -> bytes:
    """A 32-byte key from ``secret`` by HKDF-SHA256 (RFC 5869), separated by ``label``."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"fl-course secagg v1 {label}".encode()).derive(secret)


def prg_mask(seed: bytes, size: int, *, modulus_bits: int) -> np.ndarray:
    """``size`` pseudo-random integers mod ``2^modulus_bits``: ChaCha20 keyed by HKDF(seed).

    Bonawitz et al. 2017's ``PRG(seed)``. Each entry takes 4 bytes of keystream when
    ``modulus_bits <= 32``, else 8, masked to its low ``modulus_bits`` bits, so the entries are
    uniform mod ``2^modulus_bits`` as long as ChaCha20 is a secure stream cipher.

    Args:
        seed: The shared or self-mask seed (bytes, at least 16).
        size: Number of entries ``d`` in 0..2^27.
        modulus_bits: ``b`` in 1..62.

    Returns:
        uint64 array of shape ``(size,)``, entries in ``0 .. 2^b - 1``.
    """
    seed = _check_seed_bytes("seed", seed)
    size = _check_size("size", size)
    bits = check_modulus_bits(modulus_bits)
    return _prg(seed, size, bits)


def _check_seed_bytes(name: str, seed: Any) -> bytes:
    if not isinstance(seed, bytes):
        raise TypeError(f"{name} must be bytes (at least {SEED_BYTES}), got "
                        f"{type(seed).__name__}.")
    if len(seed) < SEED_BYTES:
        raise ValueError(f"{name} must be at least {SEED_BYTES} bytes, got {len(seed)}.")
    return seed


def _check_round_tag(round_tag: Any) -> bytes:
    if not isinstance(round_tag, bytes):
        raise TypeError(f"round_tag must be bytes, got {type(round_tag).__name__} "
                        f"{v._fmt(round_tag)}.")
    if len(round_tag) > 1024:
        raise ValueError(f"round_tag must be at most 1024 bytes, got {len(round_tag)}.")
    return round_tag


def _prg(seed: bytes, size: int, bits: int) -> np.ndarray:
    width = 4 if bits <= 32 else 8
    stream = _chacha20(_derive(seed, "mask")).update(bytes(width * size))
    words = np.frombuffer(stream, dtype="<u4" if width == 4 else "<u8").astype(np.uint64)
    return words & np.uint64(2**bits - 1)


# --------------------------------------------------------------------------------------------
# Quantisation
# --------------------------------------------------------------------------------------------


def check_modulus_bits(modulus_bits: Any) -> int:
    """``modulus_bits`` as an int in 1..62."""
    return v.check_int("modulus_bits", modulus_bits, minimum=1, maximum=MAX_MODULUS_BITS)


def quantize(update: np.ndarray, *, clipping_norm: float, scale: float,
             source: NoiseSource) -> np.ndarray:
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
        source: Randomness for the rounding.

    Returns:
        int64 array like ``update``.

    Raises:
        TypeError: ``update`` not a flat numeric array, ``source`` not a :class:`NoiseSource`.
        ValueError: NaN or inf, an integer beyond 2^53, ``C`` or ``s`` not > 0, ``s C > 2^53``.
    """
    array = _check_update("update", update)
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    scale = _check_scale(scale, clipping_norm)
    _check_source(source)
    return _quantize(array, clipping_norm, scale, source)


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
    _check_size(f"the length of {name}", array.size)
    if is_int:
        if array.size and max(abs(int(array.max())), abs(int(array.min()))) > MAX_EXACT_INT:
            raise ValueError(f"{name} must hold integers of magnitude <= 2**53 (float64 rounds "
                             "larger ones, which would change the sensitivity), got "
                             f"{v._fmt(max(abs(int(array.max())), abs(int(array.min()))))}.")
    elif not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got NaN or inf values.")
    return array.astype(np.float64)


def _check_scale(scale: Any, clipping_norm: float) -> float:
    scale = v.check_positive("scale", scale)
    if scale * clipping_norm > MAX_EXACT_INT:
        raise ValueError(f"scale * clipping_norm must be <= 2**53 so that rounding is exact, got "
                         f"scale={v._fmt(scale)} and clipping_norm={v._fmt(clipping_norm)}.")
    return scale


def _quantize(flat: np.ndarray, clipping_norm: float, scale: float,
              source: NoiseSource) -> np.ndarray:
    clipped, _ = privacy.clip_by_l2_norm(flat, clipping_norm)
    scaled = np.asarray(clipped, dtype=np.float64) * scale
    low = np.floor(scaled)
    return (low + (source._uniform(scaled.size) < scaled - low)).astype(np.int64)


def quantized_norm_bound(*, clipping_norm: float, scale: float, dimension: int) -> float:
    """``s C + sqrt(d)``: the largest L2 norm :func:`quantize` can return (the sensitivity).

    Args:
        clipping_norm: ``C`` > 0.
        scale: ``s`` > 0 with ``s C <= 2^53``.
        dimension: ``d`` in 1..2^27.
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    scale = _check_scale(scale, clipping_norm)
    dimension = v.check_int("dimension", dimension, minimum=1, maximum=MAX_SIZE)
    return _norm_bound(clipping_norm, scale, dimension)


def _norm_bound(clipping_norm: float, scale: float, dimension: int) -> float:
    return scale * clipping_norm + math.sqrt(dimension)


def to_modular(values: np.ndarray, modulus_bits: int) -> np.ndarray:
    """Signed integers as residues mod ``2^b`` (uint64, two's complement low bits).

    Args:
        values: A flat integer array (any integer dtype; not bool, not float: a float would be
            truncated silently), at most 2^27 long.
        modulus_bits: ``b`` in 1..62.
    """
    array = _check_integer_array("values", values)
    return _to_modular(array, check_modulus_bits(modulus_bits))


def _to_modular(values: np.ndarray, modulus_bits: int) -> np.ndarray:
    return np.asarray(values).astype(np.int64).view(np.uint64) & np.uint64(2**modulus_bits - 1)


def from_modular(residues: np.ndarray, modulus_bits: int) -> np.ndarray:
    """Residues mod ``2^b`` as signed integers in ``[-2^(b-1), 2^(b-1))`` (int64).

    Args:
        residues: A flat integer array with entries in ``0 .. 2^b - 1``.
        modulus_bits: ``b`` in 1..62.
    """
    bits = check_modulus_bits(modulus_bits)
    array = _check_integer_array("residues", residues)
    if array.size and (int(array.min()) < 0 or int(array.max()) >= 2**bits):
        raise ValueError(f"residues must lie in 0..2**{bits} - 1, got values from "
                         f"{int(array.min())} to {int(array.max())}.")
    return _from_modular(array, bits)


def _from_modular(residues: np.ndarray, modulus_bits: int) -> np.ndarray:
    signed = np.asarray(residues, dtype=np.uint64).astype(np.int64)
    return np.where(signed >= 2**(modulus_bits - 1), signed - 2**modulus_bits, signed)


# --------------------------------------------------------------------------------------------
# Shamir's t-of-n secret sharing over GF(2^130 - 5)
# --------------------------------------------------------------------------------------------


def shamir_share(secret: int, *, num_shares: int, threshold: int) -> list[tuple[int, int]]:
    """Splits ``secret`` into ``num_shares`` points of a random polynomial of degree ``t - 1``.

    Shamir 1979, "How to Share a Secret": ``f(x) = secret + a_1 x + ... + a_{t-1} x^{t-1}`` over
    GF(p), ``p = 2^130 - 5``, with ``a_i`` uniform from ``secrets`` (OS entropy); share ``i`` is
    ``(i, f(i))`` for ``i = 1..n``. Any ``t`` shares determine ``f`` and so ``f(0)``; any
    ``t - 1`` are uniformly distributed whatever the secret.

    Args:
        secret: Integer in ``0 .. p - 1``.
        num_shares: ``n`` in 2..2^14.
        threshold: ``t`` in 2..n (``t = 1`` would make every share equal to the secret).

    Returns:
        ``[(1, f(1)), ..., (n, f(n))]``.
    """
    secret = v.check_int("secret", secret, minimum=0, maximum=FIELD_PRIME - 1)
    num_shares = v.check_int("num_shares", num_shares, minimum=2, maximum=MAX_CLIENTS)
    threshold = _check_shamir_threshold(threshold, num_shares)
    return _share(secret, num_shares, threshold)


def _check_shamir_threshold(threshold: Any, num_clients: int) -> int:
    """``2 <= threshold <= num_clients``: one share must never be the secret itself."""
    if isinstance(threshold, (int, np.integer)) and not isinstance(threshold, bool) \
            and int(threshold) > num_clients:
        raise ValueError(f"threshold must be <= the number of clients ({num_clients}), got "
                         f"{v._fmt(int(threshold))}.")
    threshold = v.check_int("threshold", threshold, minimum=1, maximum=num_clients)
    if threshold < 2:
        raise ValueError(f"threshold must be >= 2, got {threshold}: with threshold 1 every "
                         "single share is the secret, so any one party can read it.")
    return threshold


def check_threshold(threshold: Any, num_clients: Any) -> int:
    """The protocol's threshold: ``2 <= t <= n`` and ``t > n / 2``.

    ``t = 1`` hands every secret to whoever holds one share. ``t <= n / 2`` lets a server that
    tells two disjoint groups of clients different stories about who dropped collect ``t``
    shares of both seeds of one client (and so its input); with ``t > n / 2`` the two groups
    share a client, who answers only once (:meth:`SecAggClient.reveal_shares`). See the module
    docstring for what Bonawitz et al. 2017 require (Sections 6.2 and 6.3).

    Args:
        threshold: ``t``, an integer.
        num_clients: ``n`` in 2..2^14, the clients that take part (advertise keys).

    Returns:
        ``t`` as an int.

    Raises:
        TypeError: Not integers.
        ValueError: ``n < 2``, ``t < 2``, ``t > n`` or ``2 t <= n``.
    """
    n = v.check_int("num_clients", num_clients, minimum=2, maximum=MAX_CLIENTS)
    t = _check_shamir_threshold(threshold, n)
    return _check_majority(t, n)


def _check_majority(t: int, n: int) -> int:
    if 2 * t <= n:
        raise ValueError(f"threshold must be > num_clients / 2 = {n / 2:g}, got {t}: with "
                         f"t <= n / 2 a server could ask two disjoint halves of the clients for "
                         "the two seeds of one client and unmask its input. Use at least "
                         f"{n // 2 + 1} (the default is ceil(2 n / 3) = {math.ceil(2 * n / 3)}).")
    return t


def _share(secret: int, num_shares: int, threshold: int) -> list[tuple[int, int]]:
    coefficients = [secret] + [secrets.randbelow(FIELD_PRIME) for _ in range(threshold - 1)]
    shares = []
    for x in range(1, num_shares + 1):
        y = 0
        for c in reversed(coefficients):  # Horner's rule
            y = (y * x + c) % FIELD_PRIME
        shares.append((x, y))
    return shares


def shamir_reconstruct(shares: Sequence[tuple[int, int]], *, threshold: int) -> int:
    """``f(0)`` from at least ``threshold`` shares, by Lagrange interpolation at 0.

    Args:
        shares: ``(x, y)`` pairs of integers, ``x`` in 1..2^14, ``y`` in ``0 .. p - 1``.
        threshold: ``t`` in 2..2^14.

    Raises:
        TypeError: ``shares`` not a sequence of integer pairs.
        ValueError: Fewer than ``threshold`` distinct shares (the secret is then information-
            theoretically hidden, so no answer is returned), or a repeated x.
    """
    threshold = v.check_int("threshold", threshold, minimum=2, maximum=MAX_CLIENTS)
    points = _check_shares(shares)
    xs = [x for x, _ in points]
    if len(set(xs)) != len(xs):
        raise ValueError(f"shares must have distinct x, got {sorted(xs)}.")
    if len(points) < threshold:
        raise ValueError(f"reconstruction needs at least threshold={threshold} shares, got "
                         f"{len(points)}: with fewer the secret is hidden (too many clients "
                         "dropped out).")
    points = points[:threshold]
    weights = _lagrange_at_zero(tuple(int(x) for x, _ in points))
    return sum(int(y) * w for (_, y), w in zip(points, weights, strict=True)) % FIELD_PRIME


def _check_shares(shares: Any) -> list[tuple[int, int]]:
    if isinstance(shares, (str, bytes, np.ndarray)) or not isinstance(shares, Sequence):
        raise TypeError(f"shares must be a list of (x, y) integer pairs, got "
                        f"{type(shares).__name__}.")
    if len(shares) > MAX_CLIENTS:
        raise ValueError(f"shares must hold at most {MAX_CLIENTS} pairs, got {len(shares)}.")
    points = []
    for k, pair in enumerate(shares):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"shares[{k}] must be an (x, y) pair, got {type(pair).__name__}.")
        points.append((v.check_int(f"shares[{k}] x", pair[0], minimum=1, maximum=MAX_CLIENTS),
                       v.check_int(f"shares[{k}] y", pair[1], minimum=0,
                                   maximum=FIELD_PRIME - 1)))
    return points


@functools.lru_cache(maxsize=64)
def _lagrange_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    """``l_j(0) = prod_{m != j} x_m / (x_m - x_j)`` mod p (cached: one holder set per round)."""
    weights = []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = num * xm % FIELD_PRIME
                den = den * (xm - xj) % FIELD_PRIME
        weights.append(num * pow(den, -1, FIELD_PRIME) % FIELD_PRIME)
    return tuple(weights)


# --------------------------------------------------------------------------------------------
# The protocol (Bonawitz et al. 2017, Figure 4, honest-but-curious)
# --------------------------------------------------------------------------------------------


def _private_key(seed: bytes) -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.from_private_bytes(_derive(seed, "x25519 key"))


def _public_bytes(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def _agree(key: x25519.X25519PrivateKey, peer: bytes, label: str) -> bytes:
    return _derive(key.exchange(x25519.X25519PublicKey.from_public_bytes(peer)), label)


def _nonce(sender: int, receiver: int) -> bytes:
    return sender.to_bytes(4, "big") + receiver.to_bytes(4, "big") + bytes(4)


def pairwise_mask_sum(mask_key_seed: bytes, me: int, public_keys: dict[int, bytes], size: int,
                      modulus_bits: int, round_tag: bytes) -> np.ndarray:
    """``sum_{v > me} PRG(s_me,v) - sum_{v < me} PRG(s_me,v)`` mod ``2^b`` over ``public_keys``.

    ``s_uv`` is HKDF of the X25519 shared secret of ``me``'s mask key and ``v``'s public key,
    so ``me`` and ``v`` derive the same seed; the signs make the pair's masks cancel.

    Args:
        mask_key_seed: ``me``'s mask-key seed (bytes, at least 16).
        me: The client id in 1..2^14.
        public_keys: Client id -> that client's 32-byte public mask key.
        size: ``d`` in 0..2^27.
        modulus_bits: ``b`` in 1..62.
        round_tag: Bytes mixed into every pair's seed (at most 1024).
    """
    seed = _check_seed_bytes("mask_key_seed", mask_key_seed)
    me = _check_client_id("me", me)
    keys = _check_key_map("public_keys", public_keys, lambda name, key: _check_public_key(
        name, key))
    size = _check_size("size", size)
    bits = check_modulus_bits(modulus_bits)
    return _pairwise_mask_sum(seed, me, keys, size, bits, _check_round_tag(round_tag))


def _pairwise_mask_sum(mask_key_seed: bytes, me: int, public_keys: dict[int, bytes], size: int,
                       modulus_bits: int, round_tag: bytes) -> np.ndarray:
    key = _private_key(mask_key_seed)
    total = np.zeros(size, dtype=np.uint64)
    for other, public in public_keys.items():
        if other == me:
            continue
        mask = _prg(_agree(key, public, "pairwise") + round_tag, size, modulus_bits)
        total = total + mask if other > me else total - mask
    return total & np.uint64(2**modulus_bits - 1)


def _check_client_id(name: str, value: Any) -> int:
    return v.check_int(name, value, minimum=1, maximum=MAX_CLIENTS)


def _check_public_key(name: str, key: Any) -> bytes:
    if not isinstance(key, bytes):
        raise TypeError(f"{name} must be {PUBLIC_KEY_BYTES} bytes, got {type(key).__name__}.")
    if len(key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"{name} must be {PUBLIC_KEY_BYTES} bytes, got {len(key)}.")
    return key


def _check_key_pair(name: str, keys: Any) -> tuple[bytes, bytes]:
    if not isinstance(keys, (tuple, list)) or len(keys) != 2:
        raise TypeError(f"{name} must be a pair (channel key, mask key) of "
                        f"{PUBLIC_KEY_BYTES}-byte public keys, got {type(keys).__name__}.")
    return (_check_public_key(f"{name}[0]", keys[0]), _check_public_key(f"{name}[1]", keys[1]))


def _check_key_map(name: str, mapping: Any, check_value: Any) -> dict[int, Any]:
    """A dict from client ids (1..2^14) to values that ``check_value(name, value)`` accepts."""
    if not isinstance(mapping, dict):
        raise TypeError(f"{name} must be a dict from client ids to values, got "
                        f"{type(mapping).__name__}.")
    if len(mapping) > MAX_CLIENTS:
        raise ValueError(f"{name} must have at most {MAX_CLIENTS} entries, got {len(mapping)}.")
    return {_check_client_id(f"a client id in {name}", u): check_value(f"{name}[{u}]", value)
            for u, value in mapping.items()}


def _check_bytes(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}.")
    return value


def _check_ids_list(name: str, ids: Any) -> list[int]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, set, frozenset)):
        raise TypeError(f"{name} must be a list of client ids, got {type(ids).__name__}.")
    if len(ids) > MAX_CLIENTS:
        raise ValueError(f"{name} must hold at most {MAX_CLIENTS} ids, got {len(ids)}.")
    out = [_check_client_id(f"{name}[{k}]", u) for k, u in enumerate(ids)]
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat an id, got {sorted(out)}.")
    return out


class SecAggClient:
    """One client of the protocol, for **one** round: its keys, its shares of others' secrets,
    its masked input.

    Single-use: :meth:`share_keys`, :meth:`masked_input` and :meth:`reveal_shares` each run at
    most once, in that order; a second call raises :class:`MaskReuseError` (a second masked
    input would carry the same masks, and the server would learn the difference of the two
    inputs). Use a new client object, with fresh keys and seeds, for every round.

    Args:
        client_id: Its id ``u`` in 1..2^14 (Shamir x-coordinates are the ids).
        threshold: ``t`` in 2..2^14; :meth:`share_keys` checks ``t > n / 2`` once it knows the
            ``n`` clients that advertised keys (:func:`check_threshold`).
        modulus_bits: ``b`` in 1..62.
        round_tag: Bytes (at most 1024) that make this round's masks differ from any other
            round's.
        double_masking: Add a self mask (default ``True``; ``False`` only to show the attack).
    """

    def __init__(self, client_id: int, *, threshold: int, modulus_bits: int,
                 round_tag: bytes = b"", double_masking: bool = True) -> None:
        self.client_id = _check_client_id("client_id", client_id)
        self.threshold = _check_shamir_threshold(threshold, MAX_CLIENTS)
        self.modulus_bits = check_modulus_bits(modulus_bits)
        self.round_tag = _check_round_tag(round_tag)
        self.double_masking = v.check_flag("double_masking", double_masking)
        self._channel_key = x25519.X25519PrivateKey.generate()
        self._mask_seed = secrets.token_bytes(SEED_BYTES)
        self._self_seed = secrets.token_bytes(SEED_BYTES)
        self._public_keys: dict[int, tuple[bytes, bytes]] = {}
        self._held: dict[int, tuple[int, int]] = {}  # owner -> (share of mask seed, of self seed)
        self._channels: dict[int, bytes] = {}  # other -> key of the encrypted channel with it
        self._done: set[str] = set()  # the single-use steps already taken

    def _step(self, name: str, *, after: str | None = None) -> None:
        """Refuses a step taken twice (the masks would be reused) or out of order."""
        if name in self._done:
            raise MaskReuseError(
                f"client {self.client_id} refuses a second {name}() in one round: its masks "
                "would be used twice, and the difference of two masked inputs is the difference "
                "of the inputs. Make a new SecAggClient (fresh keys) for a new round.")
        if after is not None and after not in self._done:
            raise ProtocolAbort(f"client {self.client_id}: {name}() must come after {after}().")
        self._done.add(name)

    # Round 0 ----------------------------------------------------------------------------
    def advertise_keys(self) -> tuple[bytes, bytes]:
        """The two public keys: for the encrypted channel, and for the pairwise masks."""
        return _public_bytes(self._channel_key), _public_bytes(_private_key(self._mask_seed))

    # Round 1 ----------------------------------------------------------------------------
    def share_keys(self, public_keys: dict[int, tuple[bytes, bytes]]) -> dict[int, bytes]:
        """Shamir-shares both seeds: one encrypted message per other client (server-relayed).

        Args:
            public_keys: Client id -> its two advertised public keys; must include this
                client's own, unchanged.

        Raises:
            ProtocolAbort: Fewer than ``t`` clients, or ``t <= n / 2`` for the ``n`` listed
                (a server could then unmask an input, see :func:`check_threshold`), or this
                client's own keys missing or altered.
            MaskReuseError: A second call.
        """
        keys = _check_key_map("public_keys", public_keys, _check_key_pair)
        if len(keys) < self.threshold:
            raise ProtocolAbort(f"only {len(keys)} clients advertised keys, fewer than "
                                f"threshold={self.threshold}: the protocol aborts.")
        try:
            _check_majority(self.threshold, len(keys))
        except ValueError as error:
            raise ProtocolAbort(f"client {self.client_id} aborts: {error}") from None
        if keys.get(self.client_id) != self.advertise_keys():
            raise ProtocolAbort(f"client {self.client_id} aborts: public_keys must list its own "
                                "advertised keys unchanged.")
        self._step("share_keys")
        return self._share_keys(keys)

    def _share_keys(self, public_keys: dict[int, tuple[bytes, bytes]]) -> dict[int, bytes]:
        self._public_keys = dict(public_keys)
        ids = sorted(public_keys)
        mask_shares = dict(_share(int.from_bytes(self._mask_seed, "big"), max(ids),
                                  self.threshold))
        self_shares = dict(_share(int.from_bytes(self._self_seed, "big"), max(ids),
                                  self.threshold))
        messages = {}
        for other in ids:
            plain = (self.client_id.to_bytes(4, "big") + other.to_bytes(4, "big")
                     + mask_shares[other].to_bytes(SHARE_BYTES, "big")
                     + self_shares[other].to_bytes(SHARE_BYTES, "big"))
            if other == self.client_id:
                self._held[other] = (mask_shares[other], self_shares[other])
                continue
            key = self._channels[other] = _agree(self._channel_key, public_keys[other][0],
                                                 "channel")
            messages[other] = ChaCha20Poly1305(key).encrypt(
                _nonce(self.client_id, other), plain, self.round_tag)
        return messages

    # Round 2 ----------------------------------------------------------------------------
    def masked_input(self, values: np.ndarray, inbox: dict[int, bytes]) -> np.ndarray:
        """``y_u = x_u + PRG(b_u) + pairwise masks`` mod ``2^b`` (after storing its shares).

        Args:
            values: A flat integer array, entries of magnitude below ``2^(b-1)``.
            inbox: Sender id -> the encrypted share message it sent this client.

        Raises:
            MaskReuseError: A second call (the same masks would hide two inputs).
            ProtocolAbort: Called before :meth:`share_keys`; a message from a client that
                advertised no keys, or naming the wrong sender or receiver.
        """
        array = _check_integer_array("values", values,
                                     max_abs=2**(self.modulus_bits - 1) - 1)  # no wrap-around
        messages = _check_key_map("inbox", inbox, _check_bytes)
        self._step("masked_input", after="share_keys")
        return self._masked_input(array, messages)

    def _masked_input(self, values: np.ndarray, inbox: dict[int, bytes]) -> np.ndarray:
        """:meth:`masked_input` without its checks (tests use it to show the mask-reuse leak)."""
        for sender, ciphertext in inbox.items():
            if sender not in self._channels:
                raise ProtocolAbort(f"client {self.client_id}: a share message from client "
                                    f"{sender}, which advertised no keys; the protocol aborts.")
            plain = ChaCha20Poly1305(self._channels[sender]).decrypt(
                _nonce(sender, self.client_id), ciphertext, self.round_tag)
            if int.from_bytes(plain[:4], "big") != sender or \
                    int.from_bytes(plain[4:8], "big") != self.client_id:
                raise ProtocolAbort(f"client {self.client_id}: a share message names the wrong "
                                    "sender or receiver; the protocol aborts.")
            self._held[sender] = (int.from_bytes(plain[8:8 + SHARE_BYTES], "big"),
                                  int.from_bytes(plain[8 + SHARE_BYTES:], "big"))
        bits = self.modulus_bits
        masked = _to_modular(values, bits)
        masked = masked + _pairwise_mask_sum(
            self._mask_seed, self.client_id, {k: pk[1] for k, pk in self._public_keys.items()},
            masked.size, bits, self.round_tag)
        if self.double_masking:
            masked = masked + _prg(self._self_seed + self.round_tag, masked.size, bits)
        return masked & np.uint64(2**bits - 1)

    # Round 4 ----------------------------------------------------------------------------
    def reveal_shares(self, included: Sequence[int], dropped: Sequence[int]
                      ) -> dict[int, tuple[str, int]]:
        """Shares of the self-mask seed of every ``included`` client, of the mask seed of every
        ``dropped`` one. Answered once per round.

        Args:
            included: Ids whose masked input the server says it holds (this client among
                them, at least ``t`` of them).
            dropped: Ids the server says dropped after sharing their keys.

        Raises:
            ProtocolAbort: A client is in both lists (the server is asking for both secrets of
                one client, which would unmask its input): an honest client refuses. Also:
                fewer than ``t`` included, this client not included, an id that advertised no
                keys, or a call before :meth:`masked_input`.
            MaskReuseError: A second call: a server that asked again with other lists could
                collect both seeds of one client from two overlapping groups.
        """
        included = _check_ids_list("included", included)
        dropped = _check_ids_list("dropped", dropped)
        overlap = sorted(set(included) & set(dropped))
        if overlap:
            raise ProtocolAbort(f"client {self.client_id} refuses to unmask: clients {overlap} "
                                "are listed both as included and as dropped (that would reveal "
                                "their inputs).")
        unknown = sorted(set(included + dropped) - set(self._public_keys))
        if unknown:
            raise ProtocolAbort(f"client {self.client_id} refuses to unmask: clients {unknown} "
                                "never advertised keys in this round.")
        if len(included) < self.threshold or self.client_id not in included:
            raise ProtocolAbort(
                f"client {self.client_id} refuses to unmask: included must list at least "
                f"threshold={self.threshold} clients, this one among them, got {included}.")
        self._step("reveal_shares", after="masked_input")
        return self._reveal_shares(included, dropped)

    def _reveal_shares(self, included: Sequence[int], dropped: Sequence[int]
                       ) -> dict[int, tuple[str, int]]:
        """:meth:`reveal_shares` without its checks (tests use it to show the attacks)."""
        shares = {u: ("self", self._held[u][1]) for u in included if u in self._held}
        shares.update({u: ("mask", self._held[u][0]) for u in dropped if u in self._held})
        return shares


class SecAggServer:
    """The server: relays messages, collects masked inputs, unmasks only their sum.

    It stores public keys, ciphertexts it cannot read, masked vectors and, at the end, shares;
    never an individual client's unmasked input. What it could compute from all of that (its
    whole view) is what ``tests/test_secure_aggregation.py`` attacks.

    Args:
        threshold: ``t`` in 2..2^14 (``t > n / 2`` is checked by :meth:`unmask`).
        modulus_bits: ``b`` in 1..62.
        size: ``d`` in 0..2^27, the length of every masked vector.
        round_tag: Bytes (at most 1024), as the clients use.
        double_masking: As the clients use.
    """

    def __init__(self, *, threshold: int, modulus_bits: int, size: int,
                 round_tag: bytes = b"", double_masking: bool = True) -> None:
        self.threshold = _check_shamir_threshold(threshold, MAX_CLIENTS)
        self.modulus_bits = check_modulus_bits(modulus_bits)
        self.size = _check_size("size", size)
        self.round_tag = _check_round_tag(round_tag)
        self.double_masking = v.check_flag("double_masking", double_masking)
        self.public_keys: dict[int, tuple[bytes, bytes]] = {}
        self.masked_inputs: dict[int, np.ndarray] = {}
        self.bytes_received: dict[int, int] = {}

    def receive_keys(self, client_id: int, keys: tuple[bytes, bytes]) -> None:
        """Round 0: a client's two public keys."""
        client_id = _check_client_id("client_id", client_id)
        keys = _check_key_pair("keys", keys)
        if client_id in self.public_keys:
            raise ValueError(f"client_id {client_id} already advertised keys in this round.")
        self.public_keys[client_id] = keys
        self.bytes_received[client_id] = sum(len(k) for k in keys)

    def route(self, outboxes: dict[int, dict[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Round 1: the encrypted shares, regrouped by receiver (opaque to the server)."""
        boxes = _check_key_map("outboxes", outboxes, lambda name, box: _check_key_map(
            name, box, _check_bytes))
        unknown = sorted(set(boxes) - set(self.public_keys))
        if unknown:
            raise ValueError(f"outboxes must come from clients that advertised keys, got "
                             f"{unknown}.")
        inboxes: dict[int, dict[int, bytes]] = {u: {} for u in boxes}
        for sender, messages in boxes.items():
            self.bytes_received[sender] += sum(len(c) for c in messages.values())
            for receiver, ciphertext in messages.items():
                if receiver in inboxes:
                    inboxes[receiver][sender] = ciphertext
        return inboxes

    def receive_masked(self, client_id: int, masked: np.ndarray) -> None:
        """Round 2: a client's masked vector (uint64 residues mod ``2^b``, length ``size``)."""
        client_id = _check_client_id("client_id", client_id)
        array = _check_integer_array("masked", masked)
        if array.size != self.size:
            raise ValueError(f"masked must have size {self.size}, got {array.size}.")
        if array.size and (int(array.min()) < 0 or int(array.max()) >= 2**self.modulus_bits):
            raise ValueError(f"masked must hold residues in 0..2**{self.modulus_bits} - 1.")
        if client_id not in self.public_keys:
            raise ValueError(f"client_id {client_id} never advertised keys in this round.")
        if client_id in self.masked_inputs:
            raise ValueError(f"client_id {client_id} already sent a masked input.")
        self.masked_inputs[client_id] = array.astype(np.uint64)
        self.bytes_received[client_id] += int(math.ceil(array.size * self.modulus_bits / 8))

    def unmask(self, responses: dict[int, dict[int, tuple[str, int]]]) -> np.ndarray:
        """Round 4: the sum of the masked inputs, with every mask removed.

        Args:
            responses: For each surviving client, its :meth:`SecAggClient.reveal_shares`.

        Raises:
            ValueError: Fewer than ``threshold`` clients answered; ``t <= n / 2``
                (:func:`check_threshold`); a malformed response.
        """
        answers = _check_key_map("responses", responses, _check_response)
        if len(answers) < self.threshold:
            raise ValueError(f"unmasking needs at least threshold={self.threshold} surviving "
                             f"clients, got {len(answers)}: too many clients dropped out, "
                             "the round's sum cannot be recovered.")
        _check_majority(self.threshold, len(self.public_keys))
        return self._unmask(answers)

    def _unmask(self, responses: dict[int, dict[int, tuple[str, int]]]) -> np.ndarray:
        bits = self.modulus_bits
        total = np.zeros(self.size, dtype=np.uint64)
        for masked in self.masked_inputs.values():
            total = total + masked
        dropped = sorted(set(self.public_keys) - set(self.masked_inputs))
        for u in dropped:  # remove the pairwise masks the survivors shared with u
            seed = self._secret(u, "mask", responses)
            survivors = {k: self.public_keys[k][1] for k in self.masked_inputs}
            total = total + _pairwise_mask_sum(seed, u, survivors, self.size, bits,
                                               self.round_tag)
        if self.double_masking:
            for u in self.masked_inputs:
                total = total - _prg(self._secret(u, "self", responses) + self.round_tag,
                                     self.size, bits)
        return total & np.uint64(2**bits - 1)

    def _secret(self, owner: int, kind: str, responses: dict[int, dict[int, tuple[str, int]]]
                ) -> bytes:
        shares = [(holder, answer[owner][1]) for holder, answer in responses.items()
                  if owner in answer and answer[owner][0] == kind]
        value = shamir_reconstruct(shares, threshold=self.threshold)
        return value.to_bytes(SEED_BYTES, "big")


def _check_response(name: str, response: Any) -> dict[int, tuple[str, int]]:
    def check_share(entry_name: str, entry: Any) -> tuple[str, int]:
        if not isinstance(entry, tuple) or len(entry) != 2 or entry[0] not in ("self", "mask"):
            raise TypeError(f"{entry_name} must be a pair ('self' or 'mask', share), got "
                            f"{v._fmt(entry)}.")
        return entry[0], v.check_int(entry_name, entry[1], minimum=0, maximum=FIELD_PRIME - 1)
    return _check_key_map(name, response, check_share)


@dataclasses.dataclass(eq=False)
class SecureSumResult:
    """What one run of the protocol gave the server.

    Attributes:
        total: The sum mod ``2^b`` of the included clients' inputs, as signed integers (int64).
        included: Ids (0-based, as the inputs were given) whose inputs are in the sum.
        bytes_sent: Bytes each client sent (keys, encrypted shares, masked vector, shares).
        server: The server object after the round (for inspection: it holds no unmasked input).
        client_seconds: Each client's compute time over all its steps (on this machine).
        server_seconds: The server's compute time (routing and unmasking).
    """

    total: np.ndarray
    included: list[int]
    bytes_sent: dict[int, int]
    server: SecAggServer
    client_seconds: dict[int, float]
    server_seconds: float


def secure_sum(inputs: Sequence[np.ndarray], *, modulus_bits: int, threshold: int | None = None,
               dropped_before_masking: Sequence[int] = (),
               dropped_before_unmasking: Sequence[int] = (), round_tag: bytes = b"",
               double_masking: bool = True) -> SecureSumResult:
    """Runs the secure aggregation protocol among ``n = len(inputs)`` simulated clients.

    Rounds of Bonawitz et al. 2017, Figure 4 (honest-but-curious): advertise keys, share keys,
    masked input collection, unmasking. Clients in ``dropped_before_masking`` share their keys
    and then vanish (their pairwise masks are reconstructed; their input is not in the sum);
    clients in ``dropped_before_unmasking`` send their masked input and then vanish (their input
    is in the sum, and the others' shares remove their self mask).

    Args:
        inputs: One flat integer array per client (``n`` in 2..2^14 clients), all of the same
            length (at most 2^27); signed values.
        modulus_bits: ``b`` in 1..62: the sum is computed mod ``2^b`` and must fit in
            ``[-2^(b-1), 2^(b-1))``.
        threshold: ``t`` with ``2 <= t <= n`` and ``t > n / 2`` (:func:`check_threshold`;
            default ``ceil(2 n / 3)``: up to a third may drop).
        dropped_before_masking, dropped_before_unmasking: 0-based client indices.
        round_tag: Bytes (at most 1024) mixed into every mask seed (e.g. the round number).
        double_masking: Add self masks (default ``True``).

    Returns:
        A :class:`SecureSumResult`.

    Raises:
        TypeError: Inputs that are not integer arrays; arguments of the wrong type.
        ValueError: Fewer than 2 clients; ``t`` outside the range above; ``b`` outside 1..62
            or too small for the largest possible sum; fewer than ``t`` clients left to unmask.
    """
    arrays = _check_inputs(inputs)
    n = len(arrays)
    bits = check_modulus_bits(modulus_bits)
    t = check_threshold(math.ceil(2 * n / 3) if threshold is None else threshold, n)
    largest = sum(int(np.max(np.abs(a), initial=0)) for a in arrays)
    if largest >= 2**(bits - 1):
        raise ValueError(f"modulus_bits={bits} is too small for the sum: the inputs' largest "
                         f"possible |sum| is {largest}, which needs modulus_bits >= "
                         f"{largest.bit_length() + 1}.")
    early = set(v.check_ids("dropped_before_masking", dropped_before_masking, num=n).tolist())
    late = set(v.check_ids("dropped_before_unmasking", dropped_before_unmasking, num=n).tolist())
    round_tag = _check_round_tag(round_tag)
    double_masking = v.check_flag("double_masking", double_masking)
    clock = _Clock()
    total, server, included = _run_protocol(arrays, t, bits, early, late, round_tag,
                                            double_masking, clock)
    return SecureSumResult(total=_from_modular(total, bits), included=included,
                           bytes_sent=dict(server.bytes_received), server=server,
                           client_seconds=clock.clients, server_seconds=clock.server)


class _Clock:
    """Compute seconds per party of one simulated protocol run."""

    def __init__(self) -> None:
        self.clients: dict[int, float] = {}
        self.server = 0.0

    def client(self, u: int, step: Any, *args: Any) -> Any:
        start = time.perf_counter()
        out = step(*args)
        self.clients[u] = self.clients.get(u, 0.0) + time.perf_counter() - start
        return out

    def on_server(self, step: Any, *args: Any) -> Any:
        start = time.perf_counter()
        out = step(*args)
        self.server += time.perf_counter() - start
        return out


def _check_inputs(inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence) or not inputs:
        raise TypeError(f"inputs must be a non-empty list of integer arrays, got "
                        f"{type(inputs).__name__}.")
    if len(inputs) < 2:
        raise ValueError(f"inputs must hold at least 2 clients' arrays, got {len(inputs)}: the "
                         "sum of one input is that input.")
    if len(inputs) > MAX_CLIENTS:
        raise ValueError(f"inputs must hold at most {MAX_CLIENTS} arrays, got {len(inputs)}.")
    arrays = []
    for k, x in enumerate(inputs):
        try:
            a = np.asarray(x)
        except (TypeError, ValueError, OverflowError) as error:
            raise TypeError(f"inputs[{k}] must be a flat integer array, got "
                            f"{type(x).__name__}.") from error
        if not np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            raise TypeError(f"inputs[{k}] must hold integers, got dtype {a.dtype}. Quantise "
                            "float updates first (secure_aggregation.quantize).")
        if a.ndim != 1 or a.shape != np.shape(inputs[0]):
            raise ValueError(f"inputs[{k}] must be flat with the shape of inputs[0] "
                             f"{np.shape(inputs[0])}, got {a.shape}.")
        _check_size(f"the length of inputs[{k}]", a.size)
        if a.size and max(abs(int(a.max())), abs(int(a.min()))) >= 2**62:
            raise ValueError(f"inputs[{k}] must hold integers of magnitude < 2**62, got "
                             f"{v._fmt(max(abs(int(a.max())), abs(int(a.min()))))}.")
        arrays.append(a.astype(np.int64))
    return arrays


def _run_protocol(arrays: list[np.ndarray], threshold: int, bits: int, early: set[int],
                  late: set[int], round_tag: bytes, double_masking: bool, clock: _Clock
                  ) -> tuple[np.ndarray, SecAggServer, list[int]]:
    ids = list(range(1, len(arrays) + 1))  # Shamir x-coordinates must be non-zero
    clients = {u: SecAggClient(u, threshold=threshold, modulus_bits=bits, round_tag=round_tag,
                               double_masking=double_masking) for u in ids}
    server = SecAggServer(threshold=threshold, modulus_bits=bits, size=arrays[0].size,
                          round_tag=round_tag, double_masking=double_masking)
    for u, c in clients.items():
        server.receive_keys(u, clock.client(u, c.advertise_keys))
    outboxes = {u: clock.client(u, c.share_keys, server.public_keys) for u, c in clients.items()}
    inboxes = clock.on_server(server.route, outboxes)
    senders = [u for u in ids if u - 1 not in early]
    for u in senders:
        server.receive_masked(u, clock.client(u, clients[u].masked_input, arrays[u - 1],
                                              inboxes[u]))
    survivors = [u for u in senders if u - 1 not in late]
    dropped = [u for u in ids if u not in server.masked_inputs]
    responses = {u: clock.client(u, clients[u].reveal_shares, sorted(server.masked_inputs),
                                 dropped) for u in survivors}
    for u, answer in responses.items():
        server.bytes_received[u] += len(answer) * SHARE_BYTES
    return clock.on_server(server.unmask, responses), server, [u - 1 for u in senders]


# --------------------------------------------------------------------------------------------
# The aggregation rule
# --------------------------------------------------------------------------------------------


class DistributedDPSecAgg(aggregation.AggregationRule):
    """Secure aggregation with distributed discrete Gaussian noise, as an aggregation rule.

    Every sampled client clips its update to ``C``, quantises it with scale ``s``
    (:func:`quantize`), adds N_Z(0, ceil(sigma^2 / m)) noise (:func:`discrete_gaussian`) with
    ``sigma = noise_multiplier * Delta`` and ``Delta = s C + sqrt(d)`` (:meth:`sensitivity`),
    and takes part in :func:`secure_sum` mod ``2^b``. The server receives only the sum, divides
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
            2/3; :func:`check_threshold` explains why ``t`` must exceed ``m / 2``).
        source: Randomness for rounding and noise (default: a fresh ``NoiseSource.secret()``).

    A round with fewer than 2 clients cannot hide an input in a sum, and aborting it would tell
    an observer that the secret sample was that small. It is released with the whole noise
    instead: a lone client adds N_Z(0, ceil(sigma^2)) to its own quantised update (it is then
    as private as the sum, and masking is pointless); a round without clients releases that
    noise alone (:meth:`aggregate_empty`).
    """

    name = "SecAgg + distributed DP"

    def __init__(self, *, clipping_norm: float, expected_clients: float,
                 noise_multiplier: float = 0.0, scale: float | None = None,
                 modulus_bits: int = 32, threshold_fraction: float = 2 / 3,
                 source: NoiseSource | None = None) -> None:
        self.clipping_norm = v.check_positive("clipping_norm", clipping_norm)
        self.expected_clients = v.check_positive("expected_clients", expected_clients)
        self.noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
        self.scale = 2.0**12 / self.clipping_norm if scale is None \
            else _check_scale(scale, self.clipping_norm)
        self.modulus_bits = check_modulus_bits(modulus_bits)
        self.threshold_fraction = v.check_probability("threshold_fraction", threshold_fraction)
        if self.threshold_fraction <= 0.5:
            raise ValueError(f"threshold_fraction must be > 1/2, got "
                             f"{v._fmt(self.threshold_fraction)}: the threshold must exceed "
                             "half of the round's clients (see check_threshold).")
        if source is not None and not isinstance(source, NoiseSource):
            raise TypeError(f"source must be a NoiseSource or None, got "
                            f"{type(source).__name__}.")
        self.source = NoiseSource.secret() if source is None else source
        self.rounds_aggregated = 0

    def sensitivity(self, dimension: int) -> float:
        """``Delta = s C + sqrt(d)`` in integer units (``d`` in 1..2^27)."""
        dimension = v.check_int("dimension", dimension, minimum=1, maximum=MAX_SIZE)
        return _norm_bound(self.clipping_norm, self.scale, dimension)

    def client_variance(self, dimension: int, num_clients: int) -> int:
        """Each client's integer noise variance ``ceil((z Delta)^2 / m)`` (0 without noise)."""
        num_clients = v.check_int("num_clients", num_clients, minimum=1, maximum=MAX_CLIENTS)
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
            x = _quantize(flat, self.clipping_norm, self.scale, self.source)
            if variance:
                x = x + discrete_gaussian(variance, d, source=self.source)
            inputs.append(x)
        bound = m * (self.scale * self.clipping_norm + 1) + 40 * math.sqrt(m * variance)
        if bound >= 2**(self.modulus_bits - 1):
            raise ValueError(
                f"modulus_bits={self.modulus_bits} is too small for the sum of {m} clients "
                f"(up to about {bound:.3g} per coordinate); raise modulus_bits or lower scale.")
        if m == 1:  # nothing to hide it among: the lone client's input carries the whole noise
            total = inputs[0]
        else:
            total = secure_sum(inputs, modulus_bits=self.modulus_bits,
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
        total = discrete_gaussian(variance, d, source=self.source) if variance \
            else np.zeros(d, dtype=np.int64)
        self.rounds_aggregated += 1
        return self._scaled(total, list(shapes))

    def _scaled(self, total: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> Weights:
        """Post-processing of the integer sum: divide by ``s`` and by ``q N``."""
        flat_update = total.astype(np.float64) / (self.scale * self.expected_clients)
        pieces = np.split(flat_update, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
        return [p.reshape(s).astype(np.float32) for p, s in zip(pieces, shapes, strict=True)]


# --------------------------------------------------------------------------------------------
# Communication cost (Bonawitz et al. 2017, Section 7.1)
# --------------------------------------------------------------------------------------------


def client_bits(*, num_clients: int, dimension: int, value_bits: int, key_bits: int = 256,
                share_bits: int = 256) -> int:
    """Bits one client sends and receives in the protocol (Bonawitz et al. 2017, Section 7.1).

    ``2 n a_K + (5 n - 4) a_S + d R`` with ``R = value_bits + ceil(log2 n)`` bits per masked
    entry (so that the sum of ``n`` inputs of ``value_bits`` bits cannot wrap): two public keys
    sent and ``2 (n - 1)`` received; ``2 (n - 1)`` encrypted shares sent, as many received,
    ``n`` shares sent to unmask; the masked vector.

    Args:
        num_clients: ``n`` >= 2.
        dimension: ``d`` >= 1.
        value_bits: Bits of each input entry, 1..1024.
        key_bits: ``a_K``, bits of a public key (256 for X25519), 1..2^16.
        share_bits: ``a_S``, bits of one secret share as sent, 1..2^16.
    """
    n = v.check_int("num_clients", num_clients, minimum=2)
    d = v.check_int("dimension", dimension, minimum=1)
    value_bits = v.check_int("value_bits", value_bits, minimum=1, maximum=1024)
    key_bits = v.check_int("key_bits", key_bits, minimum=1, maximum=2**16)
    share_bits = v.check_int("share_bits", share_bits, minimum=1, maximum=2**16)
    r = value_bits + math.ceil(math.log2(n))
    return 2 * n * key_bits + (5 * n - 4) * share_bits + d * r


def expansion_factor(*, num_clients: int, dimension: int, value_bits: int,
                     key_bits: int = 256, share_bits: int = 256) -> float:
    """:func:`client_bits` over the ``d * value_bits`` bits of sending the input in the clear."""
    return client_bits(num_clients=num_clients, dimension=dimension, value_bits=value_bits,
                       key_bits=key_bits, share_bits=share_bits) / (dimension * value_bits)
