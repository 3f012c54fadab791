"""The Paillier cryptosystem and fixed-point encoding of reals: additively homomorphic encryption.

Paillier 1999 ("Public-Key Cryptosystems Based on Composite Degree Residuosity Classes",
EUROCRYPT '99), Scheme 1 with ``g = n + 1`` (the choice of Damgard & Jurik 2001, PKC), as
the vertical federated learning protocol of Hardy et al. 2017 (:mod:`fl_helpers.
vertical_protocol`) uses it. Notebook 09 writes each step by hand first:

* **Keys** (:func:`generate_keypair`): two primes ``p``, ``q`` of ``key_bits / 2`` bits each,
  ``n = p q``. The primes come from the ``cryptography`` package's RSA key generation (OpenSSL's
  prime generator: secret, fast, exactly half the bits each), then ``gcd(n, (p-1)(q-1)) = 1`` is
  checked. The public key is ``n``; the private key is ``p, q``.
  ``key_bits`` is 1024 (the class: fast, and too short to protect anything real), 2048 or 3072
  (what deployments use: NIST SP 800-57 Part 1 rates factoring a 2048-bit modulus at 112 bits of
  security, 3072 at 128) or 4096; 1024..4096 in steps of 256.
* **Encrypt** (:func:`encrypt`): a plaintext ``m`` in ``Z_n`` becomes
  ``c = g^m r^n mod n^2 = (1 + m n) r^n mod n^2`` with a fresh secret ``r`` in ``Z_n^*`` from
  :mod:`secrets`. The ``r^n`` factor (a full-size exponentiation) is the whole cost; no
  precomputed pool of ``r^n`` is kept, every encryption draws a new ``r``.
* **Homomorphisms**: ``E(a) E(b) mod n^2`` encrypts ``a + b mod n`` (:func:`add`);
  ``E(a) g^k = E(a) (1 + k n)`` encrypts ``a + k`` (:func:`add_plain`); ``E(a)^k`` encrypts
  ``k a mod n`` (:func:`multiply_plain`), for a negative ``k`` as ``(E(a)^{-1})^{|k|}`` so that
  the exponent stays short.
* **Decrypt** (:func:`decrypt`) with the Chinese remainder theorem (Paillier 1999, Section 7):
  ``m_p = L_p(c^{p-1} mod p^2) h_p mod p`` with ``L_p(x) = (x - 1) / p`` and
  ``h_p = L_p(g^{p-1} mod p^2)^{-1} mod p``, the same mod ``q``, then one CRT step. About four
  times faster than ``L(c^lambda mod n^2) mu mod n``.
* **Fixed-point encoding** (:func:`encode`, :func:`decode`): a real ``x`` becomes the integer
  ``round(x 2^k)`` for a public number of fractional bits ``k`` (``precision_bits``), a negative
  one ``-a`` becomes ``n - a``. Decoding reads ``[0, max_int]`` as positive and
  ``[n - max_int, n)`` as negative, with ``max_int = floor(n / 3)``: the middle third of ``Z_n``
  is a **gap** that no valid value occupies. Encoding refuses a value beyond ``max_int``
  (:class:`PlaintextOverflowError`), and so does decoding of a value in the gap: the sum of two
  valid values never wraps past the gap (``2 max_int < n - max_int``), so an overflowing
  addition is always caught; a product or a long sum that overflows lands in the gap (caught)
  or wraps further (not detectable in general: keep ``|result| 2^k`` below ``max_int``, which
  at ``k = 32`` and ``n`` of 1024 bits leaves about 2^989 of room).
  A product of two encodings carries ``2 k`` fractional bits; :class:`EncryptedVector` records
  its ``precision_bits`` so that decoding divides by the right power of two.
* **Vectors** (:func:`encrypt_vector`, :func:`decrypt_vector`, :func:`add_vectors`,
  :func:`add_plain_vector`, :func:`multiply_plain_vector`, :func:`dot_columns`): arrays of floats
  as tuples of ciphertexts; :func:`dot_columns` is ``[[M^T x]]`` for an encrypted ``x`` and a
  plaintext matrix ``M``, the encrypted gradient ``X^T d`` of the protocol.

Big-integer arithmetic uses ``gmpy2`` (GMP; LGPL, an optional accelerator, about 8 times faster)
when it is importable, Python's ``pow`` otherwise: each key records its ``backend``
(``"gmpy2"`` or ``"python"``), both give identical integers, and every public value is a
Python ``int``.

Security of what is built (no more is claimed): Paillier is semantically secure (IND-CPA) under
the decisional composite residuosity assumption, for an adversary without the private key. It
is malleable (anyone can add to or scale a ciphertext), so it protects against
honest-but-curious parties only. Nothing here is constant-time: it is a course, not a library.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric import rsa

from fl_helpers import _validation as v


def _import_gmpy2() -> Any:
    """The optional accelerator ``gmpy2`` (LGPL), or None where it is not installed."""
    try:
        return importlib.import_module("gmpy2")
    except ImportError:  # pragma: no cover - depends on the environment
        return None


gmpy2 = _import_gmpy2()

#: Smallest modulus :func:`generate_keypair` makes, in bits (the class's size).
MIN_KEY_BITS = 1024
#: Largest modulus any function here accepts, in bits (4096: bounds every exponentiation).
MAX_KEY_BITS = 4096
#: Key sizes go in steps of this many bits (two primes of equal size).
KEY_BITS_STEP = 256
#: The key size of the class.
DEFAULT_KEY_BITS = 1024
#: Fractional bits of the fixed-point encoding by default: a resolution of 2^-32 (2.3e-10).
DEFAULT_PRECISION_BITS = 32
#: Most fractional bits an encoding may carry (a product of products still fits).
MAX_PRECISION_BITS = 512
#: Longest vector (or most matrix entries) one call encrypts, multiplies or decrypts: 2^20.
MAX_SIZE = 2**20
#: Smallest modulus of a toy key (:func:`keypair_from_primes` with ``allow_insecure=True``).
MIN_TOY_BITS = 8
#: The big-integer backends: GMP through gmpy2 (if importable) and Python's own integers.
BACKENDS: tuple[str, ...] = ("gmpy2", "python")
#: The backend a key gets by default.
DEFAULT_BACKEND = "gmpy2" if gmpy2 is not None else "python"


class PlaintextOverflowError(ValueError):
    """A value does not fit the plaintext space: beyond ``max_int`` when encoded, or decoded from
    the gap between the positive and the negative range (a computation overflowed)."""


def gmpy2_available() -> bool:
    """Whether the ``gmpy2`` accelerator is importable here."""
    return gmpy2 is not None


# ------------------------------------------------------------------------------- arithmetic

def _powmod(backend: str, base: Any, exponent: Any, modulus: Any) -> Any:
    if backend == "gmpy2":
        return gmpy2.powmod(base, exponent, modulus)
    return pow(base, exponent, modulus)


def _invert(backend: str, value: Any, modulus: Any) -> Any:
    if backend == "gmpy2":
        return gmpy2.invert(value, modulus)
    return pow(value, -1, modulus)


def _big(backend: str, value: int) -> Any:
    """``value`` in the backend's integer type (``gmpy2.mpz`` or ``int``)."""
    return gmpy2.mpz(value) if backend == "gmpy2" else value


def check_backend(backend: Any) -> str:
    """Checks ``backend`` is ``"gmpy2"`` (if installed), ``"python"`` or None, and returns the
    backend's name (None: :data:`DEFAULT_BACKEND`)."""
    if backend is None:
        return DEFAULT_BACKEND
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {v._fmt(backend)}.")
    if backend == "gmpy2" and gmpy2 is None:
        raise ValueError("backend must be 'python' or None here, got 'gmpy2': gmpy2 is not "
                         "installed (pip install gmpy2==2.3.2).")
    return backend


def _check_big_int(name: str, value: Any) -> int:
    """An integer of any size (not bool, not float) as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral,
                                                                   np.integer)):
        if gmpy2 is not None and isinstance(value, type(gmpy2.mpz(0))):
            return int(value)
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} "
                        f"{v._fmt(value)}.")
    return int(value)


# ------------------------------------------------------------------------------- keys

@dataclasses.dataclass(frozen=True)
class PublicKey:
    """A Paillier public key: the modulus ``n`` (``g = n + 1`` is implied).

    Attributes:
        n: The modulus, the product of two secret primes.
        backend: ``"gmpy2"`` or ``"python"``: which big-integer arithmetic its operations use.
    """

    n: int
    backend: str = DEFAULT_BACKEND

    def __post_init__(self) -> None:
        n = _check_big_int("n", self.n)
        if n < 2**(MIN_TOY_BITS - 1) or n % 2 == 0 or n.bit_length() > MAX_KEY_BITS:
            raise ValueError(f"n must be an odd modulus of {MIN_TOY_BITS}..{MAX_KEY_BITS} bits, "
                             f"got {v._fmt(n)}.")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "backend", check_backend(self.backend))

    @property
    def g(self) -> int:
        """The generator ``n + 1``."""
        return self.n + 1

    @property
    def n_squared(self) -> int:
        """The ciphertext modulus ``n^2``."""
        return self.n * self.n

    @property
    def key_bits(self) -> int:
        """The bit length of ``n``."""
        return self.n.bit_length()

    @property
    def max_int(self) -> int:
        """The largest magnitude an encoded value may have: ``floor(n / 3)``."""
        return self.n // 3

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one ciphertext on the wire (an element of ``Z_{n^2}``)."""
        return (2 * self.key_bits + 7) // 8

    @property
    def plaintext_bytes(self) -> int:
        """Bytes of one element of ``Z_n`` on the wire (a decrypted value, the key itself)."""
        return (self.key_bits + 7) // 8


@dataclasses.dataclass(frozen=True, repr=False)
class PrivateKey:
    """A Paillier private key: the primes ``p`` and ``q`` (and CRT constants derived from them).

    Make one with :func:`generate_keypair` or :func:`keypair_from_primes`. Its ``repr`` shows
    the key size only, never the primes.
    """

    public_key: PublicKey
    p: int
    q: int
    _hp: int = dataclasses.field(default=0, compare=False)
    _hq: int = dataclasses.field(default=0, compare=False)
    _q_inverse: int = dataclasses.field(default=0, compare=False)

    def __repr__(self) -> str:
        return f"PrivateKey(<{self.public_key.key_bits}-bit, primes hidden>)"


def _is_probable_prime(candidate: int, rounds: int = 40) -> bool:
    """Miller-Rabin with ``rounds`` secret random bases (error below 4^-rounds)."""
    if candidate < 2:
        return False
    for small in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if candidate % small == 0:
            return candidate == small
    d, s = candidate - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(2 + secrets.randbelow(candidate - 3), d, candidate)
        if x in (1, candidate - 1):
            continue
        for _ in range(s - 1):
            x = x * x % candidate
            if x == candidate - 1:
                break
        else:
            return False
    return True


def _keypair(p: int, q: int, backend: str) -> tuple[PublicKey, PrivateKey]:
    """The keys of primes ``p != q`` with ``gcd(pq, (p-1)(q-1)) = 1`` (checked by callers)."""
    if p < q:
        p, q = q, p
    n = p * q
    g = n + 1

    def h(prime: int) -> int:
        square = prime * prime
        return pow((pow(g, prime - 1, square) - 1) // prime, -1, prime)

    public = PublicKey(n, backend)
    private = PrivateKey(public, p, q, h(p), h(q), pow(q, -1, p))
    return public, private


def generate_keypair(*, key_bits: int = DEFAULT_KEY_BITS,
                     backend: str | None = None) -> tuple[PublicKey, PrivateKey]:
    """Generates a Paillier key pair (Paillier 1999, Section 4) from two secret primes.

    The primes are those of a fresh RSA key of ``key_bits`` bits from the ``cryptography``
    package (OpenSSL: two primes of exactly ``key_bits / 2`` bits from the operating system's
    entropy); the RSA exponent is discarded.

    Args:
        key_bits: Bits of the modulus ``n``: 1024 (class), 2048, 3072 (deployments) or any
            multiple of 256 in 1024..4096.
        backend: ``"gmpy2"``, ``"python"`` or None (gmpy2 if importable).

    Returns:
        ``(public_key, private_key)``.

    Raises:
        ValueError: ``key_bits`` out of range or not a multiple of 256; ``backend`` unknown or
            unavailable.
    """
    key_bits = v.check_int("key_bits", key_bits, minimum=MIN_KEY_BITS, maximum=MAX_KEY_BITS)
    if key_bits % KEY_BITS_STEP:
        raise ValueError(f"key_bits must be a multiple of {KEY_BITS_STEP} (two primes of equal "
                         f"size), got {key_bits}.")
    backend = check_backend(backend)
    for _ in range(16):  # OpenSSL's n always has key_bits bits; the loop is a safeguard
        numbers_ = rsa.generate_private_key(public_exponent=65537,
                                            key_size=key_bits).private_numbers()
        p, q = numbers_.p, numbers_.q
        n = p * q
        if (p != q and n.bit_length() == key_bits
                and p.bit_length() == q.bit_length() == key_bits // 2
                and math.gcd(n, (p - 1) * (q - 1)) == 1):
            return _keypair(p, q, backend)
    raise RuntimeError("could not generate a Paillier key in 16 tries")  # pragma: no cover


def keypair_from_primes(p: int, q: int, *, backend: str | None = None,
                        allow_insecure: bool = False) -> tuple[PublicKey, PrivateKey]:
    """The Paillier key pair of two given primes (for toy examples and cross-checks).

    Args:
        p: A prime (checked with 40 rounds of Miller-Rabin).
        q: Another prime, ``q != p``, with ``gcd(pq, (p-1)(q-1)) = 1``.
        backend: ``"gmpy2"``, ``"python"`` or None (gmpy2 if importable).
        allow_insecure: Allow a modulus below :data:`MIN_KEY_BITS` bits (toy keys such as
            ``p, q = 11, 13``, which anyone can factor). Off by default.

    Returns:
        ``(public_key, private_key)``.

    Raises:
        ValueError: not primes, equal, ``gcd(n, phi) != 1``, ``n`` too large, or too small
            without ``allow_insecure``.
    """
    p = _check_big_int("p", p)
    q = _check_big_int("q", q)
    allow_insecure = v.check_flag("allow_insecure", allow_insecure)
    backend = check_backend(backend)
    for name, prime in (("p", p), ("q", q)):
        if prime < 3 or prime.bit_length() > MAX_KEY_BITS or not _is_probable_prime(prime):
            raise ValueError(f"{name} must be an odd prime of at most {MAX_KEY_BITS} bits, got "
                             f"{v._fmt(prime)}.")
    if p == q:
        raise ValueError(f"q must differ from p, got p = q = {v._fmt(p)}.")
    n = p * q
    if n.bit_length() > MAX_KEY_BITS:
        raise ValueError(f"p and q must give a modulus of at most {MAX_KEY_BITS} bits, got "
                         f"{n.bit_length()}.")
    if n.bit_length() < MIN_TOY_BITS or (n.bit_length() < MIN_KEY_BITS and not allow_insecure):
        raise ValueError(f"p and q must give a modulus of at least {MIN_KEY_BITS} bits, got "
                         f"{n.bit_length()}; pass allow_insecure=True for a toy key (at least "
                         f"{MIN_TOY_BITS} bits).")
    if math.gcd(n, (p - 1) * (q - 1)) != 1:
        raise ValueError(f"p and q must satisfy gcd(pq, (p-1)(q-1)) = 1, got p = {v._fmt(p)}, "
                         f"q = {v._fmt(q)}.")
    return _keypair(p, q, backend)


def _check_public_key(name: str, value: Any) -> PublicKey:
    if not isinstance(value, PublicKey):
        raise TypeError(f"{name} must be a paillier.PublicKey, got {type(value).__name__}.")
    return value


def _check_private_key(name: str, value: Any) -> PrivateKey:
    if not isinstance(value, PrivateKey):
        raise TypeError(f"{name} must be a paillier.PrivateKey, got {type(value).__name__}.")
    return value


def _check_ciphertext(name: str, value: Any, public_key: PublicKey) -> int:
    value = _check_big_int(name, value)
    if not 0 < value < public_key.n_squared:
        raise ValueError(f"{name} must be a ciphertext in 1..n^2 - 1, got {v._fmt(value)}.")
    return value


def _check_residue(name: str, value: Any, public_key: PublicKey) -> int:
    value = _check_big_int(name, value)
    if not 0 <= value < public_key.n:
        raise ValueError(f"{name} must be an integer in 0..n - 1 (an element of Z_n), got "
                         f"{v._fmt(value)}. Encode a real or a negative number with encode().")
    return value


def _check_multiplier(name: str, value: Any, public_key: PublicKey) -> int:
    value = _check_big_int(name, value)
    if abs(value) >= public_key.n:
        raise ValueError(f"{name} must be an integer of magnitude below n, got "
                         f"{v._fmt(value)}.")
    return value


# ------------------------------------------------------------------------------- integers

def _random_unit(n: int) -> int:
    """A secret uniform element of ``Z_n^*``."""
    while True:
        r = 1 + secrets.randbelow(n - 1)
        if math.gcd(r, n) == 1:
            return r


def _encrypt(public_key: PublicKey, plaintext: int, r: int | None = None) -> int:
    """``(1 + m n) r^n mod n^2`` for a residue ``m`` (unchecked); ``r`` secret unless given."""
    n, n2, backend = public_key.n, public_key.n_squared, public_key.backend
    if r is None:
        r = _random_unit(n)
    n2_big = _big(backend, n2)
    blinding = _powmod(backend, _big(backend, r), _big(backend, n), n2_big)
    return int((1 + plaintext * n) % n2 * blinding % n2_big)


def _decrypt(private_key: PrivateKey, ciphertext: int) -> int:
    """The residue in ``Z_n`` that ``ciphertext`` encrypts (CRT; unchecked)."""
    backend = private_key.public_key.backend
    p, q = private_key.p, private_key.q
    c = _big(backend, ciphertext)
    parts = []
    for prime, h in ((p, private_key._hp), (q, private_key._hq)):
        square = _big(backend, prime * prime)
        x = _powmod(backend, c % square, prime - 1, square)
        parts.append(int((x - 1) // prime * h % prime))
    m_p, m_q = parts
    return m_q + q * ((m_p - m_q) * private_key._q_inverse % p)


def encrypt(public_key: PublicKey, plaintext: int) -> int:
    """Encrypts an element of ``Z_n``: ``c = g^m r^n mod n^2`` with a fresh secret ``r``.

    Args:
        public_key: The :class:`PublicKey`.
        plaintext: An integer ``m`` with ``0 <= m < n`` (encode a real first with
            :func:`encode`).

    Returns:
        The ciphertext, an integer in ``1..n^2 - 1``.
    """
    public_key = _check_public_key("public_key", public_key)
    return _encrypt(public_key, _check_residue("plaintext", plaintext, public_key))


def decrypt(private_key: PrivateKey, ciphertext: int) -> int:
    """Decrypts a ciphertext to its residue ``m`` in ``Z_n`` (CRT, Paillier 1999, Section 7).

    Args:
        private_key: The :class:`PrivateKey`.
        ciphertext: An integer in ``1..n^2 - 1`` coprime to ``n``.

    Returns:
        ``m`` with ``0 <= m < n`` (:func:`decode` it for a real).
    """
    private_key = _check_private_key("private_key", private_key)
    c = _check_ciphertext("ciphertext", ciphertext, private_key.public_key)
    if math.gcd(c, private_key.public_key.n) != 1:
        raise ValueError("ciphertext must be coprime to n (no encryption shares a factor with "
                         "it), got one that is not.")
    return _decrypt(private_key, c)


def add(public_key: PublicKey, ciphertext_a: int, ciphertext_b: int) -> int:
    """``E(a) E(b) mod n^2``: an encryption of ``a + b mod n``."""
    public_key = _check_public_key("public_key", public_key)
    a = _check_ciphertext("ciphertext_a", ciphertext_a, public_key)
    b = _check_ciphertext("ciphertext_b", ciphertext_b, public_key)
    return a * b % public_key.n_squared


def add_plain(public_key: PublicKey, ciphertext: int, plaintext: int) -> int:
    """``E(a) (1 + k n) mod n^2``: an encryption of ``a + k mod n`` (``k`` in ``Z_n``), with
    the randomness of ``E(a)`` (re-randomise with :func:`rerandomize` before sending it to the
    key holder if that randomness must not link the two)."""
    public_key = _check_public_key("public_key", public_key)
    c = _check_ciphertext("ciphertext", ciphertext, public_key)
    k = _check_residue("plaintext", plaintext, public_key)
    return c * (1 + k * public_key.n) % public_key.n_squared


def multiply_plain(public_key: PublicKey, ciphertext: int, multiplier: int) -> int:
    """``E(a)^k mod n^2``: an encryption of ``k a mod n``; a negative ``k`` is computed as
    ``(E(a)^{-1})^{|k|}`` (a short exponent instead of ``n - |k|``).

    Args:
        public_key: The :class:`PublicKey`.
        ciphertext: ``E(a)``.
        multiplier: An integer ``k`` with ``|k| < n`` (negative allowed).
    """
    public_key = _check_public_key("public_key", public_key)
    c = _check_ciphertext("ciphertext", ciphertext, public_key)
    k = _check_multiplier("multiplier", multiplier, public_key)
    backend, n2 = public_key.backend, _big(public_key.backend, public_key.n_squared)
    base = _big(backend, c)
    if k < 0:
        base, k = _invert(backend, base, n2), -k
    return int(_powmod(backend, base, k, n2))


def rerandomize(public_key: PublicKey, ciphertext: int) -> int:
    """``E(a) r^n mod n^2`` for a fresh secret ``r``: the same plaintext, fresh randomness."""
    public_key = _check_public_key("public_key", public_key)
    c = _check_ciphertext("ciphertext", ciphertext, public_key)
    return c * _encrypt(public_key, 0) % public_key.n_squared


# ------------------------------------------------------------------------------- fixed point

def _check_precision(name: str, value: Any) -> int:
    return v.check_int(name, value, minimum=0, maximum=MAX_PRECISION_BITS)


def _encode_one(public_key: PublicKey, value: Any, precision_bits: int, name: str) -> int:
    """``round(value 2^k)`` as a signed Python int, refusing a magnitude above ``max_int``."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value,
                                                                            (bool, np.bool_)):
        scaled = int(value) << precision_bits  # exact for integers of any size
    else:
        real = v.check_real(name, value)
        product = real * 2.0**precision_bits  # exact: a power-of-two scaling
        if not math.isfinite(product):
            raise PlaintextOverflowError(
                f"{name} must satisfy |{name}| * 2**{precision_bits} <= max_int (about "
                f"2**{public_key.max_int.bit_length()}), got {v._fmt(real)}.")
        scaled = round(product)
    if abs(scaled) > public_key.max_int:
        raise PlaintextOverflowError(
            f"{name} must satisfy |{name}| * 2**{precision_bits} <= max_int (about "
            f"2**{public_key.max_int.bit_length()}), got {v._fmt(value)}: it overflows the "
            f"plaintext space of a {public_key.key_bits}-bit key. Use fewer precision bits or a "
            f"larger key.")
    return scaled


def _decode_one(public_key: PublicKey, residue: int, precision_bits: int, name: str) -> float:
    n, max_int = public_key.n, public_key.max_int
    if residue <= max_int:
        signed = residue
    elif residue >= n - max_int:
        signed = residue - n
    else:
        raise PlaintextOverflowError(
            f"{name} lies in the gap between the positive range [0, max_int] and the negative "
            f"range [n - max_int, n): the computation that produced it overflowed the "
            f"plaintext space (|value| * 2**{precision_bits} > max_int). Use fewer precision "
            f"bits, smaller values or a larger key.")
    try:
        return signed / 2**precision_bits  # correctly rounded
    except OverflowError:
        raise PlaintextOverflowError(
            f"{name} decodes to a value too large for a float (about 2**"
            f"{abs(signed).bit_length() - precision_bits}).") from None


def encode(public_key: PublicKey, value: float,
           *, precision_bits: int = DEFAULT_PRECISION_BITS) -> int:
    """Fixed-point encoding of a real (or an integer, exactly) as an element of ``Z_n``.

    ``round(value 2^k) mod n``: a negative value ``-a`` becomes ``n - a``.

    Args:
        public_key: The :class:`PublicKey` (its ``n``).
        value: A finite real number, or an integer of any size (encoded exactly).
        precision_bits: ``k``, the public number of fractional bits, 0..512.

    Returns:
        The residue in ``0..n - 1``.

    Raises:
        PlaintextOverflowError: ``|value| 2^k > max_int = floor(n / 3)``.
    """
    public_key = _check_public_key("public_key", public_key)
    precision_bits = _check_precision("precision_bits", precision_bits)
    return _encode_one(public_key, value, precision_bits, "value") % public_key.n


def decode(public_key: PublicKey, encoded: int,
           *, precision_bits: int = DEFAULT_PRECISION_BITS) -> float:
    """The real that :func:`encode` mapped to ``encoded``: ``[0, max_int]`` is positive,
    ``[n - max_int, n)`` negative, divided by ``2^k``.

    Raises:
        PlaintextOverflowError: ``encoded`` lies in the gap ``(max_int, n - max_int)``: the
            computation that produced it overflowed. Never returns a wrapped-around value.
    """
    public_key = _check_public_key("public_key", public_key)
    residue = _check_residue("encoded", encoded, public_key)
    precision_bits = _check_precision("precision_bits", precision_bits)
    return _decode_one(public_key, residue, precision_bits, "encoded")


# ------------------------------------------------------------------------------- vectors

@dataclasses.dataclass(frozen=True)
class EncryptedVector:
    """A vector of ciphertexts under one key, with the fixed-point precision of its values.

    Attributes:
        public_key: The key they are encrypted under.
        ciphertexts: One Python int in ``1..n^2 - 1`` per entry.
        precision_bits: Fractional bits of the encoded values (``k`` after :func:`encrypt_vector`,
            ``k + k'`` after :func:`multiply_plain_vector` or :func:`dot_columns`).
    """

    public_key: PublicKey
    ciphertexts: tuple[int, ...]
    precision_bits: int

    def __post_init__(self) -> None:
        _check_public_key("public_key", self.public_key)
        if not isinstance(self.ciphertexts, tuple):
            raise TypeError(f"ciphertexts must be a tuple of ints, got "
                            f"{type(self.ciphertexts).__name__}.")
        if len(self.ciphertexts) > MAX_SIZE:
            raise ValueError(f"ciphertexts must hold at most {MAX_SIZE} entries, got "
                             f"{len(self.ciphertexts)}.")
        n2 = self.public_key.n_squared
        for c in self.ciphertexts:
            if type(c) is not int or not 0 < c < n2:
                raise ValueError(f"ciphertexts must be ints in 1..n^2 - 1, got "
                                 f"{v._fmt(c)}.")
        _check_precision("precision_bits", self.precision_bits)

    def __len__(self) -> int:
        return len(self.ciphertexts)

    @property
    def num_bytes(self) -> int:
        """Bytes on the wire: one ciphertext of ``2 key_bits / 8`` bytes per entry."""
        return len(self.ciphertexts) * self.public_key.ciphertext_bytes


def _check_vector(name: str, value: Any) -> EncryptedVector:
    if not isinstance(value, EncryptedVector):
        raise TypeError(f"{name} must be a paillier.EncryptedVector, got "
                        f"{type(value).__name__}.")
    return value


def _check_values(name: str, values: Any, *, ndim: int = 1) -> np.ndarray:
    array = v.check_float_array(name, values, ndim=ndim, min_size=0)
    if array.size > MAX_SIZE:
        raise ValueError(f"{name} must hold at most {MAX_SIZE} values, got {array.size}.")
    return array


def _encode_array(public_key: PublicKey, array: np.ndarray, precision_bits: int,
                  name: str) -> list[int]:
    """Signed fixed-point integers of a float array (flattened, C order)."""
    with np.errstate(over="ignore"):  # an overflow to inf is refused just below
        scaled = array.ravel() * 2.0**precision_bits
    if scaled.size and not np.isfinite(scaled).all():
        index = int(np.flatnonzero(~np.isfinite(scaled))[0])
        raise PlaintextOverflowError(
            f"{name} must satisfy |{name}| * 2**{precision_bits} <= max_int (about "
            f"2**{public_key.max_int.bit_length()}), got {v._fmt(array.ravel()[index])} at "
            f"flat index {index}.")
    ints = [round(x) for x in scaled.tolist()]
    max_int = public_key.max_int
    for index, x in enumerate(ints):
        if abs(x) > max_int:
            raise PlaintextOverflowError(
                f"{name} must satisfy |{name}| * 2**{precision_bits} <= max_int (about "
                f"2**{max_int.bit_length()}), got {v._fmt(array.ravel()[index])} at flat index "
                f"{index}: it overflows the plaintext space of a {public_key.key_bits}-bit key.")
    return ints


def encrypt_vector(public_key: PublicKey, values: Any,
                   *, precision_bits: int = DEFAULT_PRECISION_BITS) -> EncryptedVector:
    """Encodes (fixed point, ``k`` fractional bits) and encrypts every entry of a 1-D array.

    Args:
        public_key: The :class:`PublicKey`.
        values: A 1-D array-like of finite reals, at most :data:`MAX_SIZE` long.
        precision_bits: ``k``, 0..512.

    Returns:
        An :class:`EncryptedVector` of ``len(values)`` fresh ciphertexts.

    Raises:
        PlaintextOverflowError: an entry with ``|x| 2^k > max_int``.
    """
    public_key = _check_public_key("public_key", public_key)
    array = _check_values("values", values)
    precision_bits = _check_precision("precision_bits", precision_bits)
    n = public_key.n
    ints = _encode_array(public_key, array, precision_bits, "values")
    return EncryptedVector(public_key, tuple(_encrypt(public_key, m % n) for m in ints),
                           precision_bits)


def decrypt_raw(private_key: PrivateKey, encrypted: EncryptedVector) -> tuple[int, ...]:
    """The residues in ``Z_n`` an :class:`EncryptedVector` encrypts, not decoded: what a key
    holder returns for a masked vector (decoding a masked value would mean nothing)."""
    private_key = _check_private_key("private_key", private_key)
    encrypted = _check_vector("encrypted", encrypted)
    n = private_key.public_key.n
    if encrypted.public_key.n != n:
        raise ValueError("encrypted must be encrypted under private_key's public key, got a "
                         "vector under another key.")
    for index, c in enumerate(encrypted.ciphertexts):
        if math.gcd(c, n) != 1:
            raise ValueError(f"encrypted must hold ciphertexts coprime to n, got one that is "
                             f"not at index {index}.")
    return tuple(_decrypt(private_key, c) for c in encrypted.ciphertexts)


def decode_vector(public_key: PublicKey, residues: Sequence[int],
                  *, precision_bits: int = DEFAULT_PRECISION_BITS) -> np.ndarray:
    """Decodes residues in ``Z_n`` to float64 (see :func:`decode`).

    Raises:
        PlaintextOverflowError: a residue in the gap (an overflowed computation).
    """
    public_key = _check_public_key("public_key", public_key)
    precision_bits = _check_precision("precision_bits", precision_bits)
    if isinstance(residues, (str, bytes)) or not isinstance(residues, (Sequence, np.ndarray)):
        raise TypeError(f"residues must be a sequence of integers, got "
                        f"{type(residues).__name__}.")
    if len(residues) > MAX_SIZE:
        raise ValueError(f"residues must hold at most {MAX_SIZE} values, got {len(residues)}.")
    checked = [_check_residue(f"residues[{i}]", r, public_key) for i, r in enumerate(residues)]
    return np.array([_decode_one(public_key, r, precision_bits, f"residues[{i}]")
                     for i, r in enumerate(checked)], dtype=np.float64)


def decrypt_vector(private_key: PrivateKey, encrypted: EncryptedVector) -> np.ndarray:
    """Decrypts and decodes an :class:`EncryptedVector` to float64.

    Raises:
        PlaintextOverflowError: an entry decrypts into the gap (an overflowed computation).
    """
    residues = decrypt_raw(private_key, encrypted)
    return decode_vector(private_key.public_key, residues,
                         precision_bits=encrypted.precision_bits)


def _rescale(encrypted: EncryptedVector, precision_bits: int) -> tuple[int, ...]:
    """The ciphertexts multiplied by ``2^(precision_bits - own)`` (more fractional bits)."""
    shift = precision_bits - encrypted.precision_bits
    if shift == 0:
        return encrypted.ciphertexts
    key = encrypted.public_key
    backend, n2 = key.backend, _big(key.backend, key.n_squared)
    factor = 1 << shift
    return tuple(int(_powmod(backend, _big(backend, c), factor, n2))
                 for c in encrypted.ciphertexts)


def _check_same_key(a: EncryptedVector, b: EncryptedVector, name: str) -> None:
    if a.public_key.n != b.public_key.n:
        raise ValueError(f"{name} must be encrypted under the same key as the first vector, got "
                         f"another key.")


def add_vectors(a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
    """``[[a + b]]`` entry by entry. The one with fewer fractional bits is first scaled up
    homomorphically (multiplied by a power of two), so the sum has the larger precision."""
    a = _check_vector("a", a)
    b = _check_vector("b", b)
    _check_same_key(a, b, "b")
    if len(a) != len(b):
        raise ValueError(f"b must have the length of a ({len(a)}), got {len(b)}.")
    precision = max(a.precision_bits, b.precision_bits)
    n2 = a.public_key.n_squared
    sums = tuple(x * y % n2 for x, y in zip(_rescale(a, precision), _rescale(b, precision),
                                              strict=True))
    return EncryptedVector(a.public_key, sums, precision)


def add_plain_vector(encrypted: EncryptedVector, values: Any) -> EncryptedVector:
    """``[[x + values]]``: each value encoded at the vector's precision, added with ``g^m``
    (no fresh randomness; see :func:`add_plain`)."""
    encrypted = _check_vector("encrypted", encrypted)
    array = _check_values("values", values)
    if array.size != len(encrypted):
        raise ValueError(f"values must have the length of encrypted ({len(encrypted)}), got "
                         f"{array.size}.")
    key = encrypted.public_key
    n, n2 = key.n, key.n_squared
    ints = _encode_array(key, array, encrypted.precision_bits, "values")
    return EncryptedVector(key, tuple(c * (1 + (m % n) * n) % n2 for c, m in
                                      zip(encrypted.ciphertexts, ints, strict=True)),
                           encrypted.precision_bits)


def _product_precision(encrypted: EncryptedVector, precision_bits: int) -> int:
    """The fractional bits of a product of ``encrypted`` and a plaintext encoded with
    ``precision_bits``, refused above :data:`MAX_PRECISION_BITS`."""
    total = encrypted.precision_bits + precision_bits
    if total > MAX_PRECISION_BITS:
        raise ValueError(f"precision_bits must keep the product's precision <= "
                         f"{MAX_PRECISION_BITS}, got {precision_bits} on top of "
                         f"{encrypted.precision_bits}.")
    return total


def multiply_plain_vector(encrypted: EncryptedVector, values: Any,
                          *, precision_bits: int = DEFAULT_PRECISION_BITS) -> EncryptedVector:
    """``[[x * values]]`` entry by entry: each value encoded with ``precision_bits`` fractional
    bits (0 for exact integers), so the result carries ``encrypted.precision_bits +
    precision_bits``."""
    encrypted = _check_vector("encrypted", encrypted)
    array = _check_values("values", values)
    precision_bits = _check_precision("precision_bits", precision_bits)
    if array.size != len(encrypted):
        raise ValueError(f"values must have the length of encrypted ({len(encrypted)}), got "
                         f"{array.size}.")
    total = _product_precision(encrypted, precision_bits)
    key = encrypted.public_key
    backend, n2 = key.backend, _big(key.backend, key.n_squared)
    ints = _encode_array(key, array, precision_bits, "values")
    products = []
    for c, k in zip(encrypted.ciphertexts, ints, strict=True):
        base = _big(backend, c)
        if k < 0:
            base, k = _invert(backend, base, n2), -k
        products.append(int(_powmod(backend, base, k, n2)))
    return EncryptedVector(key, tuple(products), total)


def _multi_exponentiate(backend: str, bases: list[Any], exponents: list[int],
                        modulus: Any) -> Any:
    """``prod_i bases[i]^exponents[i] mod modulus`` for exponents >= 0, by Pippenger's bucket
    method (Pippenger 1980, "On the evaluation of powers and monomials"): the exponents are
    cut into windows of ``w`` bits; per window, every base goes into the bucket of its digit
    and ``prod_d bucket_d^d`` costs ``2^(w+1)`` multiplications (running products), so a
    product of ``r`` powers of ``b``-bit exponents costs about ``(b / w) (r + 2^(w+1)) + b``
    multiplications instead of about ``r (b + b / 5)`` for ``r`` separate exponentiations.
    Identical to ``prod_i pow(bases[i], exponents[i], modulus)``."""
    pairs = [(base, k) for base, k in zip(bases, exponents, strict=True) if k]
    one = _big(backend, 1)
    if len(pairs) <= 4:
        result = one
        for base, k in pairs:
            result = result * _powmod(backend, base, k, modulus) % modulus
        return result
    width = 4 if len(pairs) < 64 else 5
    mask = (1 << width) - 1
    bits = max(k for _, k in pairs).bit_length()
    windows = -(-bits // width)
    result = one
    for window in range(windows - 1, -1, -1):
        if window != windows - 1:
            result = _powmod(backend, result, 1 << width, modulus)
        buckets: list[Any] = [None] * (mask + 1)
        shift = window * width
        for base, k in pairs:
            digit = (k >> shift) & mask
            if digit:
                bucket = buckets[digit]
                buckets[digit] = base if bucket is None else bucket * base % modulus
        running, total = None, None  # prod_d bucket_d^d = prod_d (prod_{e >= d} bucket_e)
        for digit in range(mask, 0, -1):
            if buckets[digit] is not None:
                running = buckets[digit] if running is None else running * buckets[digit] \
                    % modulus
            if running is not None:
                total = running if total is None else total * running % modulus
        if total is not None:
            result = result * total % modulus
    return result


def dot_columns(encrypted: EncryptedVector, matrix: Any,
                *, precision_bits: int = DEFAULT_PRECISION_BITS) -> EncryptedVector:
    """``[[M^T x]]``: the dot product of an encrypted vector with every column of a plaintext
    matrix, ``prod_i [[x_i]]^{M_ij} mod n^2`` for each column ``j``.

    The matrix is encoded with ``precision_bits`` fractional bits; negative entries are raised
    as positive powers of one inverse per column (the product of the negatively weighted
    ciphertexts is inverted once), so every exponent stays ``precision_bits + log2 |M_ij|``
    bits long. Each column's product of powers is one multi-exponentiation (Pippenger's
    method, about four times fewer multiplications than a ``pow`` per entry). The result
    carries ``encrypted.precision_bits + precision_bits``.

    Args:
        encrypted: ``[[x]]`` of length ``r``.
        matrix: Float ``(r, c)``, at most :data:`MAX_SIZE` entries.
        precision_bits: Fractional bits for the matrix's entries, 0..512.

    Returns:
        An :class:`EncryptedVector` of length ``c``.
    """
    encrypted = _check_vector("encrypted", encrypted)
    array = _check_values("matrix", matrix, ndim=2)
    precision_bits = _check_precision("precision_bits", precision_bits)
    if array.shape[0] == 0 or array.shape[0] != len(encrypted):
        raise ValueError(f"matrix must have one row per entry of encrypted ({len(encrypted)}), "
                         f"got shape {array.shape}.")
    total = _product_precision(encrypted, precision_bits)
    key = encrypted.public_key
    backend, n2 = key.backend, _big(key.backend, key.n_squared)
    rows, columns = array.shape
    ints = _encode_array(key, array.T, precision_bits, "matrix")  # column by column
    bases = [_big(backend, c) for c in encrypted.ciphertexts]
    results = []
    for j in range(columns):
        column = ints[j * rows:(j + 1) * rows]
        positive = _multi_exponentiate(backend, bases, [max(k, 0) for k in column], n2)
        negative = _multi_exponentiate(backend, bases, [max(-k, 0) for k in column], n2)
        if negative != 1:
            positive = positive * _invert(backend, negative, n2) % n2
        results.append(int(positive))
    return EncryptedVector(key, tuple(results), total)
