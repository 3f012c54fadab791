"""The cryptography of secure aggregation (numpy and ``cryptography`` only).

The primitives of Bonawitz et al. 2017 ("Practical Secure Aggregation for Privacy-Preserving
Machine Learning", Sections 3 and 4), each usable and testable on its own; the protocol that
combines them is :mod:`fl_helpers.secagg_protocol`, the distributed noise that rides on it
:mod:`fl_helpers.distributed_dp`.

* **Masks** (:func:`prg_mask`): ``PRG(seed)``, the ChaCha20 stream cipher keyed by
  HKDF-SHA256(seed), read as integers mod ``2^b``; :func:`to_modular` and :func:`from_modular`
  move signed integers in and out of that ring.
* **Secret sharing** (:func:`shamir_share`, :func:`shamir_reconstruct`): Shamir's ``t``-of-``n``
  sharing over the prime field ``GF(2^130 - 5)``, coefficients from OS entropy.
* **Key agreement** (:func:`pairwise_mask_sum`): X25519 + HKDF-SHA256 gives every pair of
  clients a shared seed; one adds the pair's mask, the other subtracts it, so the masks cancel
  in the sum. The shares a client sends to another are encrypted with ChaCha20-Poly1305 under
  the pair's key (:class:`fl_helpers.secagg_protocol.SecAggClient`).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fl_helpers import _validation as v
from fl_helpers import discrete_noise, schedule

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
    size = discrete_noise._check_size("size", size)
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
    stream = schedule._chacha20(_derive(seed, "mask")).update(bytes(width * size))
    words = np.frombuffer(stream, dtype="<u4" if width == 4 else "<u8").astype(np.uint64)
    return words & np.uint64(2**bits - 1)


def check_modulus_bits(modulus_bits: Any) -> int:
    """``modulus_bits`` as an int in 1..62."""
    return v.check_int("modulus_bits", modulus_bits, minimum=1, maximum=MAX_MODULUS_BITS)



def to_modular(values: np.ndarray, modulus_bits: int) -> np.ndarray:
    """Signed integers as residues mod ``2^b`` (uint64, two's complement low bits).

    Args:
        values: A flat integer array (any integer dtype; not bool, not float: a float would be
            truncated silently), at most 2^27 long.
        modulus_bits: ``b`` in 1..62.
    """
    array = discrete_noise._check_integer_array("values", values)
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
    array = discrete_noise._check_integer_array("residues", residues)
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
# Key agreement and pairwise masks (Bonawitz et al. 2017, Section 4)
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
    size = discrete_noise._check_size("size", size)
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
