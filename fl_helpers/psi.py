"""Private set intersection (PSI): which customers two parties share, and nothing else.

Entity alignment for vertical federated learning (notebook 09): the bank (party **A**, the label
holder) and the credit bureau (party **B**) each hold a set of customer ids, ``X`` and ``Y``. The
protocol built here is the Diffie-Hellman PSI of Meadows 1986 ("A More Efficient Cryptographic
Matchmaking Protocol for Use in the Absence of a Continuously Available Third Party", IEEE S&P)
and Huberman, Franklin & Hogg 1999 ("Enhancing Privacy and Trust in Electronic Communities",
ACM EC, Section 3), the protocol behind Google's private join-and-compute (Ion et al. 2020, "On
Deploying Secure Computing: Private Intersection-Sum-with-Cardinality", EuroS&P, Section 3.1) and
OpenMined's ``openmined-psi``. In a group ``G`` of prime order ``q``, with a hash ``H`` from ids
onto ``G``, blinding commutes: ``(H(x)^a)^b = H(x)^(ab) = (H(x)^b)^a``.

Steps (each a method of :class:`PartyA` or :class:`PartyB`; :func:`intersect` runs them all):

1. A draws a secret ``a`` and sends ``M1 = shuffle([H(x)^a for x in X])``
   (:meth:`PartyA.blind_ids`).
2. B draws a secret ``b`` and returns ``M2 = [m^b for m in M1]``, *in A's order*, so that A can
   map each element back to its id, and ``M3 = shuffle([H(y)^b for y in Y])``
   (:meth:`PartyB.respond`).
3. A computes ``S = {m^a for m in M3} = {H(y)^(ab)}``: its id ``x_i`` is shared exactly when
   ``M2[i] = H(x_i)^(ab)`` lies in ``S`` (:meth:`PartyA.intersect`).
4. Optional (``reveal_to_b=True``): A sends the shared ids to B
   (:meth:`PartyB.receive_intersection`). By default only A, the label holder, learns them.

**What each side learns** (semi-honest parties, the decisional Diffie-Hellman (DDH) assumption in
``G`` and ``H`` modelled as a random oracle): A learns ``X ∩ Y`` and ``|Y|``; B learns ``|X|``
(and ``X ∩ Y`` only in the variant that reveals it). Everything else a party receives is, to it,
indistinguishable from random group elements: ``H(x)^a`` for an id B does not know looks like a
random element without ``a``, and ``H(y)^b`` for ``y`` outside ``X`` looks like a random element
to A, who can raise only its own ids' hashes to ``b`` (through B's reply to step 1). Each
:class:`PSIResult` carries both parties' views (:class:`PartyView`): exactly the messages each one
received, their element counts and sizes in bytes. What is *not* protected: the sizes (pad the
sets to hide them); a party that deviates from the protocol (a malicious A could put every
possible id into its set, or tell B ids it does not share); runs that reuse a secret (they are
linkable, which is why every party object serves one run, :class:`KeyReuseError`); and what the
intersection itself reveals (that a customer of the bank is also a customer of the bureau).

Two groups, the same protocol and the same intersection:

* ``"p256"`` (default), :class:`P256Group`: the NIST P-256 elliptic curve (prime order ``n``,
  about 128-bit security) through the ``cryptography`` package, whose only scalar multiplication
  is ECDH. ECDH returns the x-coordinate of the shared point, so elements are x-coordinates
  (32 bytes). x-only blinding is still commutative: to blind ``x`` we lift it to the point with
  even ``y`` (encoding ``0x02 || x``), which is ``P`` or ``-P``, and ``x([k](-P)) = x(-[k]P) =
  x([k]P)``; so ``x([b] lift(x([a]P))) = x([ab]P) = x([a] lift(x([b]P)))``. Secret scalars come
  from ``ec.generate_private_key`` (uniform in ``[1, n - 1]``, fresh for every party object).
  Hash to the curve: try-and-increment (see :class:`P256Group`).
* ``"modp2048"``, :class:`Modp2048Group`: plain integers, for teaching the maths. The 2048-bit
  MODP group of RFC 3526 (group 14, a safe prime ``p = 2q + 1``), restricted to its subgroup of
  quadratic residues, which has prime order ``q``: hash to an integer mod ``p``, then square.
  Secret exponents are 256-bit (:data:`MODP_EXPONENT_BITS`); elements are 256 bytes. Exponentiation
  uses ``gmpy2.powmod`` when ``gmpy2`` is importable (about 8x faster) and Python's ``pow``
  otherwise; both give the same numbers.

Ids are all ``int`` (``0 .. 2**63 - 1``, e.g. the course's int64 customer-id arrays) or all
``str`` in one set, encoded canonically with a type tag (:func:`encode_id`), so that ``1`` and
``"1"`` never meet; ``bool``, floats, bytes and mixed types are refused, and so are repeated ids
(see :func:`intersect`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
import secrets
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from fl_helpers import _validation as v

_gmpy2: Any
try:  # optional acceleration of the MODP group's arithmetic (LGPL; never required)
    import gmpy2

    _gmpy2 = gmpy2
except ImportError:  # pragma: no cover - depends on the environment
    _gmpy2 = None

#: Most ids in one party's set. Larger sets are refused (nothing here runs for hours): P-256
#: blinds about 10,000 ids a second on one core, so 10^6 ids take minutes.
MAX_SET_SIZE = 10**6
#: Largest integer id: the largest int64, so that integer ids fit the course's int64 arrays.
MAX_INT_ID = v.MAX_INT
#: Longest string id, in bytes of its UTF-8 encoding.
MAX_STR_ID_BYTES = 1024
#: Bit length of the secret exponents in the MODP group (see :class:`Modp2048Group`).
MODP_EXPONENT_BITS = 256
#: Tries of try-and-increment before hashing gives up. Each try succeeds with probability about
#: 1/2, so 256 failures in a row have probability 2^-256: the limit is never reached.
MAX_HASH_TRIES = 256

#: The names of the protocol's messages and what each one carries.
STEPS: dict[str, str] = {
    "blinded_a": "1. A -> B: H(x)^a for each of A's ids, shuffled",
    "reblinded_a": "2a. B -> A: (H(x)^a)^b, in the order A sent them",
    "blinded_b": "2b. B -> A: H(y)^b for each of B's ids, shuffled",
    "intersection": "4. A -> B (only with reveal_to_b): the shared ids, encoded",
}

_INT_TAG = b"I"
_STR_TAG = b"S"


class ProtocolError(RuntimeError):
    """A party received a message it cannot accept, or a step was called out of order."""


class KeyReuseError(ProtocolError):
    """A party object was asked to run a step a second time.

    Each :class:`PartyA` / :class:`PartyB` draws its secret when it is made and serves one run.
    A second run under the same secret links the runs: the same id gives the same ``H(x)^a``
    (or ``H(y)^b``) twice, so the other party learns which of the customers behind the
    elements it cannot read appear in both runs, e.g. how many of the bureau's customers
    outside the intersection stayed from one month to the next. And a B that answers again
    under the same ``b`` answers more of A's queries than the one set it agreed to intersect
    with. Make a new party object (a fresh secret) for every run.
    """


# --------------------------------------------------------------------------------------------
# Ids and their canonical encoding
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _IdSet:
    """A checked set of ids: ``kind`` is ``"int"`` or ``"str"``; ``values`` in the caller's
    order, ``encodings`` the matching :func:`encode_id` bytes."""

    kind: str
    values: list[Any]
    encodings: list[bytes]


def _encode_int(value: int) -> bytes:
    return _INT_TAG + value.to_bytes(8, "big")


def _encode_str(name: str, value: str) -> bytes:
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates such as "\ud800"
        raise ValueError(f"{name} must be text that UTF-8 can encode, got {v._fmt(value)} "
                         "(it holds a lone surrogate).") from None
    if not data:
        raise ValueError(f"{name} must be a non-empty string, got ''.")
    if len(data) > MAX_STR_ID_BYTES:
        raise ValueError(f"{name} must be at most {MAX_STR_ID_BYTES} bytes in UTF-8, got "
                         f"{len(data)} bytes.")
    return _STR_TAG + len(data).to_bytes(4, "big") + data


def _id_kind(name: str, value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a str id, got bool {value}: True would be "
                        "the id 1 to Python, so bools are refused.")
    if isinstance(value, (numbers.Integral, np.integer)):
        return "int"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (float, np.floating)):
        raise TypeError(f"{name} must be an int or a str id, got float {v._fmt(value)}: floats "
                        "are refused (1.0 and 1 would be different ids, and int64 ids above "
                        "2**53 would be rounded). Convert them with int().")
    raise TypeError(f"{name} must be an int or a str id, got {type(value).__name__} "
                    f"{v._fmt(value)}.")


def encode_id(value: Any) -> bytes:
    """The canonical byte encoding of one id, the input of the hash.

    ``b"I"`` followed by the 8-byte big-endian integer for an int id in ``0 .. 2**63 - 1``;
    ``b"S"``, the 4-byte big-endian length and the UTF-8 bytes for a str id. The type tag keeps
    ``1`` and ``"1"`` apart, and the length prefix makes every encoding a prefix-free string, so
    no two ids share an encoding and the hash input ``tag || encoding || counter`` is unambiguous.
    Strings are compared code point by code point, without Unicode normalisation: normalise both
    parties' ids the same way (e.g. ``unicodedata.normalize("NFC", s)``) before the run.

    Args:
        value: An int (not bool) in ``0 .. MAX_INT_ID`` or a non-empty str of at most
            :data:`MAX_STR_ID_BYTES` UTF-8 bytes.

    Returns:
        The encoding (9 bytes for an int, 5 + length for a str).

    Raises:
        TypeError: ``value`` is a bool, a float, bytes or anything but an int or a str.
        ValueError: An int outside ``0 .. MAX_INT_ID``; an empty, too long or unencodable str.
    """
    if _id_kind("value", value) == "int":
        return _encode_int(v.check_int("value", value, minimum=0, maximum=MAX_INT_ID))
    return _encode_str("value", str(value))


def _duplicate_error(name: str, values: Sequence[Any]) -> ValueError:
    seen: dict[Any, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            return ValueError(
                f"{name} must not repeat an id, got {v._fmt(value)} at {name}[{seen[value]}] "
                f"and {name}[{index}]. A set of ids has each id once: a repeated id would be "
                "blinded to a repeated element, which tells the other party that your list has "
                "repeats, and the intersection would be ambiguous. Pass unique ids "
                "(np.unique).")
        seen[value] = index
    raise AssertionError("no duplicate found")  # pragma: no cover


def _check_int_array(name: str, array: np.ndarray) -> _IdSet:
    if array.size and (int(array.min()) < 0 or int(array.max()) > MAX_INT_ID):
        low, high = int(array.min()), int(array.max())
        raise ValueError(f"{name} must hold ids in 0..{MAX_INT_ID}, got values from {low} to "
                         f"{high}.")
    values = [int(x) for x in array.tolist()]
    if len(np.unique(array)) != array.size:
        raise _duplicate_error(name, values)
    return _IdSet("int", values, [_encode_int(x) for x in values])


def _check_ids(name: str, ids: Any) -> _IdSet:
    """Checks a collection of ids (see :func:`intersect`) and encodes it."""
    if isinstance(ids, _IdSet):
        return ids
    if ids is None or isinstance(ids, (str, bytes, bytearray, dict, numbers.Number, np.generic)) \
            or not isinstance(ids, (Sequence, np.ndarray, set, frozenset)):
        raise TypeError(f"{name} must be a list, tuple, set or 1-D numpy array of ids (all int "
                        f"or all str), got {type(ids).__name__} {v._fmt(ids)}.")
    if len(ids) > MAX_SET_SIZE:
        raise ValueError(f"{name} must hold at most {MAX_SET_SIZE} ids, got {len(ids)}.")
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of ids, got shape {ids.shape}.")
        if ids.dtype.kind in "iu":
            return _check_int_array(name, ids)
        if ids.dtype.kind == "b":
            raise TypeError(f"{name} must hold int or str ids, got a bool array. Pass "
                            "np.flatnonzero(mask) for the ids a mask selects.")
        if ids.dtype.kind not in "UO":
            raise TypeError(f"{name} must hold int or str ids, got dtype {ids.dtype}.")
        ids = ids.tolist()
    elements = list(ids)
    if not elements:
        return _IdSet("int", [], [])
    kinds = [_id_kind(f"{name}[{i}]", x) for i, x in enumerate(elements)]
    first = kinds[0]
    for index, kind in enumerate(kinds):
        if kind != first:
            raise TypeError(f"{name} must hold ids of one type, all int or all str, got {first} "
                            f"{name}[0] = {v._fmt(elements[0])} and {kind} {name}[{index}] = "
                            f"{v._fmt(elements[index])}.")
    values: list[Any]
    if first == "int":
        values = [v.check_int(f"{name}[{i}]", x, minimum=0, maximum=MAX_INT_ID)
                  for i, x in enumerate(elements)]
        encodings = [_encode_int(x) for x in values]
    else:
        values = [str(x) for x in elements]  # np.str_ -> str
        encodings = [_encode_str(f"{name}[{i}]", x) for i, x in enumerate(values)]
    if len(set(values)) != len(values):
        raise _duplicate_error(name, values)
    return _IdSet(first, values, encodings)


def _as_output(kind: str, values: Sequence[Any]) -> np.ndarray | list[str]:
    """Sorted ids: an int64 array for int ids, a list of str for str ids."""
    if kind == "int":
        return np.array(sorted(values), dtype=np.int64)
    return sorted(values)


# --------------------------------------------------------------------------------------------
# The groups
# --------------------------------------------------------------------------------------------


class _Secret:
    """A party's secret scalar or exponent. Its repr never shows the value."""

    __slots__ = ("group", "value")

    def __init__(self, group: str, value: Any) -> None:
        self.group = group
        self.value = value

    def __repr__(self) -> str:
        return f"<secret of group {self.group}>"


class Group:
    """A prime-order group where DDH is believed hard, with a hash onto it.

    Elements travel as bytes of a fixed length (:attr:`element_bytes`). The public methods check
    their arguments and call the unchecked ``_hash_to_group``, ``_blind`` and ``_hash_and_blind``
    that subclasses implement (the parties call those directly on inputs they have checked).

    Attributes:
        name: The name :func:`intersect` takes (``"p256"``, ``"modp2048"``).
        element_bytes: Size of one element on the wire, in bytes.
        security_bits: The group's estimated security level, in bits.
    """

    name = ""
    element_bytes = 0
    security_bits = 0

    def new_secret(self) -> _Secret:
        """A fresh, uniformly drawn secret (from the operating system's CSPRNG)."""
        raise NotImplementedError

    def hash_to_group(self, encodings: Sequence[bytes]) -> list[bytes]:
        """``H(id)`` for each encoding.

        Args:
            encodings: Byte strings, normally :func:`encode_id` of each id (at most
                :data:`MAX_SET_SIZE`).

        Returns:
            The group elements (bytes of :attr:`element_bytes`), in the same order.

        Raises:
            TypeError: ``encodings`` is not a list or tuple of bytes.
            ValueError: More than :data:`MAX_SET_SIZE` encodings.
        """
        return self._hash_to_group(_check_bytes_list("encodings", encodings))

    def blind(self, elements: Sequence[bytes], secret: _Secret) -> list[bytes]:
        """``e^k`` for each element ``e`` (``[k]e`` on the curve), in the same order.

        Args:
            elements: Group elements (bytes of :attr:`element_bytes`).
            secret: A secret of this group (:meth:`new_secret`).

        Returns:
            The blinded elements, in the same order.

        Raises:
            TypeError: ``elements`` not a list or tuple of bytes; ``secret`` not a secret.
            ValueError: An element of the wrong length; a secret of another group.
            ProtocolError: An element that is not in the group.
        """
        elements = _check_bytes_list("elements", elements, size=self.element_bytes)
        return self._blind(elements, self._check_secret(secret))

    def hash_and_blind(self, encodings: Sequence[bytes], secret: _Secret) -> list[bytes]:
        """``H(id)^k`` for each encoding: :meth:`hash_to_group` then :meth:`blind`, fused where
        that saves work (the point of P-256 is decoded once).

        Args:
            encodings: As for :meth:`hash_to_group`.
            secret: As for :meth:`blind`.

        Returns:
            The blinded hashes, in the same order.

        Raises:
            TypeError, ValueError: As for :meth:`hash_to_group` and :meth:`blind`.
        """
        encodings = _check_bytes_list("encodings", encodings)
        return self._hash_and_blind(encodings, self._check_secret(secret))

    def _check_secret(self, secret: Any) -> _Secret:
        if not isinstance(secret, _Secret):
            raise TypeError(f"secret must be a secret made by {type(self).__name__}.new_secret(), "
                            f"got {type(secret).__name__}.")
        if secret.group != self.name:
            raise ValueError(f"secret must be a secret of group {self.name!r}, got one of "
                             f"{secret.group!r}.")
        return secret

    def _hash_to_group(self, encodings: Sequence[bytes]) -> list[bytes]:
        raise NotImplementedError

    def _blind(self, elements: Sequence[bytes], secret: _Secret) -> list[bytes]:
        raise NotImplementedError

    def _hash_and_blind(self, encodings: Sequence[bytes], secret: _Secret) -> list[bytes]:
        return self._blind(self._hash_to_group(encodings), secret)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_bytes_list(name: str, value: Any, *, size: int | None = None) -> list[bytes]:
    """Checks ``value`` is a list or tuple of at most :data:`MAX_SET_SIZE` bytes objects (each of
    ``size`` bytes if given)."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of bytes, got {type(value).__name__} "
                        f"{v._fmt(value)}.")
    if len(value) > MAX_SET_SIZE:
        raise ValueError(f"{name} must hold at most {MAX_SET_SIZE} items, got {len(value)}.")
    for index, item in enumerate(value):
        if not isinstance(item, bytes):
            raise TypeError(f"{name}[{index}] must be bytes, got {type(item).__name__} "
                            f"{v._fmt(item)}.")
        if size is not None and len(item) != size:
            raise ValueError(f"{name}[{index}] must be {size} bytes long, got {len(item)}.")
    return list(value)


class P256Group(Group):
    """NIST P-256 (secp256r1; FIPS 186-5, SEC 2), x-coordinates as elements.

    The curve has prime order ``n`` (cofactor 1), so every point that decodes is in the group
    and there is no small subgroup to confine an element to. Security about 128 bits.

    **Hash to the curve, try-and-increment**: for ``counter = 0, 1, ...``, ``x = SHA-256(tag ||
    encoding || counter)`` with a domain-separation tag and a 4-byte counter, until ``x`` is the
    x-coordinate of a curve point (about half of all ``x`` are); the point with even ``y`` is
    ``H(id)``. Each try is an independent uniform 256-bit string, so the first that succeeds is
    uniform over the valid x-coordinates: ``H`` is a random oracle onto the curve up to the sign
    of ``y``, which x-only blinding ignores anyway. RFC 9380 ("Hashing to Elliptic Curves",
    suite ``P256_XMD:SHA-256_SSWU_RO_``) is the standard, constant-time way; try-and-increment
    takes a number of tries that depends on the id. That would matter where an attacker times
    the hashing of a secret it can guess at (a password in a PAKE: the "Dragonblood" attacks on
    WPA3, Vanhoef & Ronen 2020). Here each party hashes only its own ids, on its own machine,
    before it sends anything, and with no secret key: the other party can at most time the
    whole of step 1, a sum of about ``2 |X|`` tries over the shuffled set that says nothing
    about any one id, and a party that wants to hide even that hashes its ids ahead of the run.
    """

    name = "p256"
    element_bytes = 32
    security_bits = 128
    #: Domain-separation tag of the hash.
    TAG = b"fl_helpers.psi v1 P-256 try-and-increment SHA-256"

    def __init__(self) -> None:
        self._curve = ec.SECP256R1()

    def new_secret(self) -> _Secret:
        return _Secret(self.name, ec.generate_private_key(self._curve))

    def _hash_point(self, encoding: bytes) -> tuple[bytes, Any]:
        """The x-coordinate of ``H(id)`` and the point (a ``cryptography`` public key)."""
        prefix = hashlib.sha256(len(self.TAG).to_bytes(1, "big") + self.TAG)
        decode = ec.EllipticCurvePublicKey.from_encoded_point
        for counter in range(MAX_HASH_TRIES):
            attempt = prefix.copy()
            attempt.update(encoding + counter.to_bytes(4, "big"))
            x = attempt.digest()
            try:
                return x, decode(self._curve, b"\x02" + x)
            except ValueError:  # not on the curve (or >= p): try the next counter
                continue
        raise RuntimeError(f"hash to curve failed {MAX_HASH_TRIES} times in a row, which "
                           "happens with probability 2^-256.")  # pragma: no cover

    def _hash_to_group(self, encodings: Sequence[bytes]) -> list[bytes]:
        return [self._hash_point(encoding)[0] for encoding in encodings]

    def _hash_and_blind(self, encodings: Sequence[bytes], secret: _Secret) -> list[bytes]:
        key, ecdh = secret.value, ec.ECDH()
        return [key.exchange(ecdh, self._hash_point(encoding)[1]) for encoding in encodings]

    def _blind(self, elements: Sequence[bytes], secret: _Secret) -> list[bytes]:
        key, ecdh, curve = secret.value, ec.ECDH(), self._curve
        decode = ec.EllipticCurvePublicKey.from_encoded_point
        out = []
        for index, x in enumerate(elements):
            try:
                point = decode(curve, b"\x02" + x)
            except ValueError:
                raise ProtocolError(f"element {index} is not the x-coordinate of a P-256 point: "
                                    "the message is malformed.") from None
            out.append(key.exchange(ecdh, point))
        return out


#: The 2048-bit MODP prime of RFC 3526, Section 3 (group 14):
#: ``p = 2^2048 - 2^1984 - 1 + 2^64 * (floor(2^1918 pi) + 124476)``, a safe prime.
MODP2048_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34"
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5C"
    "B6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A"
    "69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA"
    "18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995"
    "497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)
#: The prime order ``q = (p - 1) / 2`` of the subgroup of quadratic residues mod ``p``.
MODP2048_Q = (MODP2048_P - 1) // 2


def _jacobi(a: int, n: int) -> int:
    """The Jacobi symbol ``(a / n)`` for odd ``n > 0`` (the binary algorithm; Cohen 1993,
    Algorithm 1.4.10). For a prime ``n`` it is the Legendre symbol: 1 exactly for the nonzero
    quadratic residues."""
    if _gmpy2 is not None:
        return int(_gmpy2.jacobi(a, n))
    a %= n
    result = 1
    while a:
        twos = (a & -a).bit_length() - 1
        a >>= twos
        if twos & 1 and n % 8 in (3, 5):
            result = -result
        if a % 4 == 3 and n % 4 == 3:
            result = -result
        a, n = n % a, a
    return result if n == 1 else 0


class Modp2048Group(Group):
    """The quadratic residues modulo the 2048-bit safe prime of RFC 3526 (group 14).

    With ``p = 2q + 1`` and ``q`` prime, the squares mod ``p`` form a subgroup of prime order
    ``q``; DDH is believed hard there (in the whole group ``Z_p^*`` it is not: the Legendre
    symbol of ``g^(ab)`` is predictable from those of ``g^a`` and ``g^b``). ``H(id)`` is the
    square of ``SHAKE256(tag || encoding || counter)`` read as a 2304-bit integer mod ``p``
    (2304 bits, 256 more than ``p``, so the reduction is uniform to within 2^-256), retried with
    the next counter in the (negligible) case it is 0 or 1. Elements are 256-byte big-endian
    integers. A received element must be a quadratic residue in ``2 .. p - 2`` (checked with the
    Jacobi symbol): otherwise raising it to our secret would reveal the secret's parity, since
    ``(e^k / p) = (e / p)^k``.

    **Exponent length**: secrets are uniform in ``[1, 2^256)`` (:data:`MODP_EXPONENT_BITS`),
    not in ``[1, q)``: 8 times fewer squarings. RFC 3526, Section 8, estimates the 2048-bit group
    at 110-160 bits of security and asks for exponents of 220-320 bits, twice the security level,
    because Pollard's lambda (kangaroo) method finds a ``k``-bit exponent in about ``2^(k/2)``
    steps (van Oorschot & Wiener 1996). With short exponents, DDH rests on the *short-exponent*
    assumption: DDH with short exponents is as hard as DDH plus the discrete logarithm with
    short exponents (Koshiba & Kurosawa 2004, "Short Exponent Diffie-Hellman Problems", PKC).
    Pure-Python ``pow`` takes about 3 ms per exponentiation; ``gmpy2.powmod`` about 0.4 ms.
    This group is for small sets and for reading the maths; P-256 is faster and smaller.
    """

    name = "modp2048"
    element_bytes = 256
    security_bits = 110
    #: Domain-separation tag of the hash.
    TAG = b"fl_helpers.psi v1 MODP-2048 quadratic residues SHAKE256"
    p = MODP2048_P
    q = MODP2048_Q

    def new_secret(self) -> _Secret:
        return _Secret(self.name, 1 + secrets.randbelow(2**MODP_EXPONENT_BITS - 1))

    def _hash_int(self, encoding: bytes) -> int:
        prefix = len(self.TAG).to_bytes(1, "big") + self.TAG + encoding
        for counter in range(MAX_HASH_TRIES):
            digest = hashlib.shake_256(prefix + counter.to_bytes(4, "big")).digest(288)
            root = int.from_bytes(digest, "big") % self.p
            h = root * root % self.p
            if h > 1:
                return h
        raise RuntimeError("hash to the group failed: probability 2^-2000.")  # pragma: no cover

    def _hash_to_group(self, encodings: Sequence[bytes]) -> list[bytes]:
        return [self._hash_int(e).to_bytes(self.element_bytes, "big") for e in encodings]

    def _power(self, base: int, exponent: int) -> int:
        if _gmpy2 is not None:
            return int(_gmpy2.powmod(base, exponent, self.p))
        return pow(base, exponent, self.p)

    def _hash_and_blind(self, encodings: Sequence[bytes], secret: _Secret) -> list[bytes]:
        return [self._power(self._hash_int(e), secret.value).to_bytes(self.element_bytes, "big")
                for e in encodings]

    def _blind(self, elements: Sequence[bytes], secret: _Secret) -> list[bytes]:
        out = []
        for index, data in enumerate(elements):
            e = int.from_bytes(data, "big")
            if not 2 <= e <= self.p - 2 or _jacobi(e, self.p) != 1:
                raise ProtocolError(f"element {index} is not a quadratic residue in 2..p-2 "
                                    "modulo the RFC 3526 prime: the message is malformed.")
            out.append(self._power(e, secret.value).to_bytes(self.element_bytes, "big"))
        return out


#: The groups by name.
GROUPS: dict[str, Group] = {"p256": P256Group(), "modp2048": Modp2048Group()}


def _check_group(name: str, group: Any) -> Group:
    if not isinstance(group, str):
        raise TypeError(f"{name} must be one of {sorted(GROUPS)}, got {type(group).__name__} "
                        f"{v._fmt(group)}.")
    if group not in GROUPS:
        raise ValueError(f"{name} must be one of {sorted(GROUPS)}, got {v._fmt(group)}.")
    return GROUPS[group]


# --------------------------------------------------------------------------------------------
# Messages and views
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class Message:
    """One message of the protocol, as it crosses the wire.

    Attributes:
        step: Which message it is, a key of :data:`STEPS`.
        sender: ``"A"`` or ``"B"``.
        group: The group's name (``"p256"``, ``"modp2048"``).
        elements: The payload: group elements (or, for ``"intersection"``, id encodings).
    """

    step: str
    sender: str
    group: str
    elements: tuple[bytes, ...]

    @property
    def num_elements(self) -> int:
        """How many elements the message carries."""
        return len(self.elements)

    @property
    def num_bytes(self) -> int:
        """Size of the payload in bytes (the elements only, without any framing)."""
        return sum(len(e) for e in self.elements)

    def __repr__(self) -> str:
        return (f"Message({self.step!r} from {self.sender}, {self.group}: "
                f"{self.num_elements} elements, {self.num_bytes} bytes)")


@dataclasses.dataclass(frozen=True, eq=False)
class PartyView:
    """Everything one party received in a run, and what it output.

    Attributes:
        party: ``"A"`` (the label holder, the bank) or ``"B"`` (the bureau).
        own_set_size: How many ids the party itself holds.
        received: The messages it received, in order.
        sent: The messages it sent, in order.
        other_set_size: The other party's set size, which the messages reveal.
        intersection: The shared ids it learned (sorted), or ``None`` if it learned none.
    """

    party: str
    own_set_size: int
    received: tuple[Message, ...]
    sent: tuple[Message, ...]
    other_set_size: int
    intersection: np.ndarray | list[str] | None

    @property
    def bytes_received(self) -> int:
        """Payload bytes received, over all messages."""
        return sum(m.num_bytes for m in self.received)

    @property
    def bytes_sent(self) -> int:
        """Payload bytes sent, over all messages."""
        return sum(m.num_bytes for m in self.sent)

    def describe(self) -> str:
        """A few lines: each message received (count, bytes) and what the party learned."""
        lines = [f"party {self.party} holds {self.own_set_size} ids and received:"]
        for m in self.received:
            lines.append(f"  {STEPS[m.step]}: {m.num_elements} elements, {m.num_bytes:,} bytes")
        learned = (f"the intersection ({len(self.intersection)} ids)"
                   if self.intersection is not None else "no intersection")
        lines.append(f"  it learns: {learned} and the other set's size ({self.other_set_size})")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True, eq=False)
class PSIResult:
    """The outcome of :func:`intersect`.

    Attributes:
        intersection: The shared ids, sorted: an int64 array for int ids, a list for str ids.
        group: The group's name.
        view_a: What A (the label holder, the bank) received and learned.
        view_b: What B (the bureau) received and learned.
        seconds: Wall-clock seconds of each step (keys ``"A: hash and blind"``, ...), both
            parties on this machine.
    """

    intersection: np.ndarray | list[str]
    group: str
    view_a: PartyView
    view_b: PartyView
    seconds: dict[str, float]

    @property
    def total_seconds(self) -> float:
        """Seconds of the whole run."""
        return sum(self.seconds.values())

    @property
    def bytes_a_to_b(self) -> int:
        """Payload bytes A sent to B."""
        return self.view_a.bytes_sent

    @property
    def bytes_b_to_a(self) -> int:
        """Payload bytes B sent to A."""
        return self.view_b.bytes_sent

    def describe(self) -> str:
        """Both views and the traffic, a few lines of text."""
        return "\n".join([self.view_a.describe(), self.view_b.describe(),
                          f"bytes A -> B: {self.bytes_a_to_b:,}; B -> A: {self.bytes_b_to_a:,} "
                          f"({self.group}, {self.total_seconds:.2f} s)"])


def _check_message(name: str, message: Any, *, step: str, group: Group) -> Message:
    if not isinstance(message, Message):
        raise TypeError(f"{name} must be a psi.Message, got {type(message).__name__} "
                        f"{v._fmt(message)}.")
    if message.step != step:
        raise ProtocolError(f"{name} must be the message {STEPS[step]!r}, got step "
                            f"{message.step!r}.")
    if message.group != group.name:
        raise ProtocolError(f"{name} is in group {message.group!r}, but this party uses "
                            f"{group.name!r}: both parties must use the same group.")
    if message.num_elements > MAX_SET_SIZE:
        raise ProtocolError(f"{name} carries {message.num_elements} elements, more than "
                            f"{MAX_SET_SIZE}.")
    if any(not isinstance(e, bytes) for e in message.elements):
        raise ProtocolError(f"{name} must carry bytes elements.")
    if step != "intersection" and any(len(e) != group.element_bytes for e in message.elements):
        raise ProtocolError(f"{name} must carry {group.element_bytes}-byte elements of group "
                            f"{group.name!r}.")
    return message


def _shuffled(items: list[bytes]) -> tuple[list[bytes], list[int]]:
    """A secret uniform shuffle (``secrets.SystemRandom``): the shuffled list and ``order``,
    with ``shuffled[i] = items[order[i]]``."""
    order = list(range(len(items)))
    secrets.SystemRandom().shuffle(order)
    return [items[i] for i in order], order


# --------------------------------------------------------------------------------------------
# The parties
# --------------------------------------------------------------------------------------------


class PartyA:
    """The label holder (the bank): sends its blinded ids, learns the intersection.

    One object serves one run: it draws its secret ``a`` when made, and each step runs once
    (:class:`KeyReuseError` otherwise).

    Args:
        ids: A's ids: a list, tuple, set or 1-D numpy array, all int (``0 .. 2**63 - 1``) or all
            str, no repeats, at most :data:`MAX_SET_SIZE`.
        group: ``"p256"`` (default) or ``"modp2048"``.
        reveal_to_b: Whether A sends the intersection to B after step 3 (default ``False``:
            only A learns it).

    Raises:
        TypeError, ValueError: Bad ids, group or flag (see :func:`intersect`).
    """

    def __init__(self, ids: Any, *, group: str = "p256", reveal_to_b: bool = False) -> None:
        self._ids = _check_ids("ids", ids)
        self._group = _check_group("group", group)
        self._reveal_to_b = v.check_flag("reveal_to_b", reveal_to_b)
        self._secret = self._group.new_secret()
        self._order: list[int] | None = None
        self._intersected = False
        self._received: list[Message] = []
        self._sent: list[Message] = []
        self._intersection: np.ndarray | list[str] | None = None
        self._other_size = 0

    def blind_ids(self) -> Message:
        """Step 1: ``H(x)^a`` for each of A's ids, shuffled (A keeps the order to map back).

        Raises:
            KeyReuseError: Called a second time.
        """
        if self._order is not None:
            raise KeyReuseError("this PartyA has already sent its blinded ids: a party serves "
                                "one run. Make a new PartyA (a fresh secret a).")
        blinded = self._group._hash_and_blind(self._ids.encodings, self._secret)
        shuffled, self._order = _shuffled(blinded)
        message = Message("blinded_a", "A", self._group.name, tuple(shuffled))
        self._sent.append(message)
        return message

    def intersect(self, reblinded_a: Message, blinded_b: Message) -> Message | None:
        """Step 3: blind B's elements with ``a`` and match them against B's reply.

        Args:
            reblinded_a: B's message ``"reblinded_a"``: A's elements raised to ``b``, in A's order.
            blinded_b: B's message ``"blinded_b"``: B's ids hashed and raised to ``b``.

        Returns:
            The message ``"intersection"`` for B when ``reveal_to_b`` is set, else ``None``.
            The intersection itself is :attr:`intersection`.

        Raises:
            TypeError: A message is not a :class:`Message`.
            ProtocolError: Called before :meth:`blind_ids`; a message of the wrong step or
                group, with the wrong number of elements or elements outside the group.
            KeyReuseError: Called a second time.
        """
        if self._order is None:
            raise ProtocolError("PartyA.intersect comes after blind_ids (step 1).")
        if self._intersected:
            raise KeyReuseError("this PartyA has already intersected: a party serves one run. "
                                "Make a new PartyA (a fresh secret a).")
        reblinded_a = _check_message("reblinded_a", reblinded_a, step="reblinded_a",
                                     group=self._group)
        blinded_b = _check_message("blinded_b", blinded_b, step="blinded_b", group=self._group)
        if reblinded_a.num_elements != len(self._order):
            raise ProtocolError(f"reblinded_a must carry one element per id A sent "
                                f"({len(self._order)}), got {reblinded_a.num_elements}.")
        self._intersected = True  # from here on the secret is in use: no second try
        theirs = set(self._group._blind(blinded_b.elements, self._secret))
        self._received += [reblinded_a, blinded_b]
        self._other_size = blinded_b.num_elements
        shared = [self._ids.values[self._order[i]]
                  for i, element in enumerate(reblinded_a.elements) if element in theirs]
        self._intersection = _as_output(self._ids.kind, shared)
        if not self._reveal_to_b:
            return None
        encode = _encode_int if self._ids.kind == "int" else (lambda x: _encode_str("id", x))
        message = Message("intersection", "A", self._group.name,
                          tuple(encode(x) for x in sorted(shared)))
        self._sent.append(message)
        return message

    @property
    def intersection(self) -> np.ndarray | list[str]:
        """The shared ids, sorted (int64 array or list of str), after :meth:`intersect`."""
        if self._intersection is None:
            raise ProtocolError("A knows the intersection only after intersect (step 3).")
        return self._intersection

    @property
    def view(self) -> PartyView:
        """What A has received and learned so far."""
        return PartyView("A", len(self._ids.values), tuple(self._received), tuple(self._sent),
                         self._other_size, self._intersection)

    def __repr__(self) -> str:
        return f"PartyA({len(self._ids.values)} ids, group={self._group.name!r})"


class PartyB:
    """The other party (the bureau): blinds A's elements and its own ids.

    One object serves one run: it draws its secret ``b`` when made, answers step 1 once
    (:class:`KeyReuseError` otherwise: a second answer under the same ``b`` would link the runs
    and answer more of A's queries than the one set B agreed to) and accepts the intersection
    once.

    Args:
        ids: B's ids, as for :class:`PartyA`.
        group: ``"p256"`` (default) or ``"modp2048"``; the same as A's.

    Raises:
        TypeError, ValueError: Bad ids or group.
    """

    def __init__(self, ids: Any, *, group: str = "p256") -> None:
        self._ids = _check_ids("ids", ids)
        self._group = _check_group("group", group)
        self._secret = self._group.new_secret()
        self._responded = False
        self._received: list[Message] = []
        self._sent: list[Message] = []
        self._intersection: np.ndarray | list[str] | None = None
        self._other_size = 0

    def respond(self, blinded_a: Message) -> tuple[Message, Message]:
        """Step 2: A's elements raised to ``b`` (in A's order), and B's own blinded ids, shuffled.

        Args:
            blinded_a: A's message ``"blinded_a"``.

        Returns:
            ``(reblinded_a, blinded_b)``, the two messages for A.

        Raises:
            TypeError: ``blinded_a`` is not a :class:`Message`.
            ProtocolError: A message of the wrong step or group, or elements outside the group.
            KeyReuseError: Called a second time.
        """
        if self._responded:
            raise KeyReuseError("this PartyB has already answered A: a party serves one run "
                                "(a second answer under the same b would link the runs). "
                                "Make a new PartyB (a fresh secret b).")
        blinded_a = _check_message("blinded_a", blinded_a, step="blinded_a", group=self._group)
        self._responded = True  # from here on the secret is in use: no second try
        reblinded = Message("reblinded_a", "B", self._group.name,
                            tuple(self._group._blind(blinded_a.elements, self._secret)))
        self._received.append(blinded_a)
        self._other_size = blinded_a.num_elements
        own, _ = _shuffled(self._group._hash_and_blind(self._ids.encodings, self._secret))
        blinded_b = Message("blinded_b", "B", self._group.name, tuple(own))
        self._sent += [reblinded, blinded_b]
        return reblinded, blinded_b

    def receive_intersection(self, intersection: Message) -> np.ndarray | list[str]:
        """Step 4 (only with ``reveal_to_b``): the shared ids A sends, mapped to B's own ids.

        Args:
            intersection: A's message ``"intersection"``.

        Returns:
            The shared ids, sorted (int64 array or list of str).

        Raises:
            TypeError: ``intersection`` is not a :class:`Message`.
            ProtocolError: Called before :meth:`respond`; an id B does not hold (a semi-honest
                A never sends one).
            KeyReuseError: Called a second time.
        """
        if not self._responded:
            raise ProtocolError("PartyB.receive_intersection comes after respond (step 2).")
        if self._intersection is not None:
            raise KeyReuseError("this PartyB has already received the intersection.")
        intersection = _check_message("intersection", intersection, step="intersection",
                                      group=self._group)
        mine = dict(zip(self._ids.encodings, self._ids.values, strict=True))
        unknown = [e for e in intersection.elements if e not in mine]
        if unknown:
            raise ProtocolError(f"intersection holds {len(unknown)} ids that B does not hold: "
                                "A did not follow the protocol.")
        self._received.append(intersection)
        self._intersection = _as_output(self._ids.kind,
                                        [mine[e] for e in intersection.elements])
        return self._intersection

    @property
    def intersection(self) -> np.ndarray | list[str] | None:
        """The shared ids if A revealed them (step 4), else ``None``."""
        return self._intersection

    @property
    def view(self) -> PartyView:
        """What B has received and learned so far."""
        return PartyView("B", len(self._ids.values), tuple(self._received), tuple(self._sent),
                         self._other_size, self._intersection)

    def __repr__(self) -> str:
        return f"PartyB({len(self._ids.values)} ids, group={self._group.name!r})"


# --------------------------------------------------------------------------------------------
# The whole run, and the attack
# --------------------------------------------------------------------------------------------


def intersect(ids_a: Any, ids_b: Any, *, group: str = "p256",
              reveal_to_b: bool = False) -> PSIResult:
    """Runs the Diffie-Hellman PSI between A (the label holder) and B, both on this machine.

    The steps of the module docstring, in order, with fresh secrets ``a`` and ``b``; each
    party sees only its own ids and the messages it receives (:attr:`PSIResult.view_a`,
    :attr:`PSIResult.view_b`).

    **Repeated ids are refused**: PSI computes the intersection of *sets*; a repeated id would
    be blinded to a repeated element, so the other party would learn that (and how often) a
    list repeats ids, beyond its size, and the intersection of multisets would be ambiguous.

    Args:
        ids_a: A's ids (the bank): a list, tuple, set or 1-D numpy array (integer or str dtype),
            all int in ``0 .. 2**63 - 1`` or all non-empty str (at most
            :data:`MAX_STR_ID_BYTES` UTF-8 bytes), no repeats, at most :data:`MAX_SET_SIZE`
            ids; may be empty. ``bool``, floats, bytes and mixed int/str are refused, so that
            ``1``, ``"1"``, ``b"1"``, ``True`` and ``1.0`` can never be confused.
        ids_b: B's ids (the bureau), likewise, of the same type as ``ids_a`` (unless one of
            them is empty).
        group: ``"p256"`` (default; fast, 32-byte elements) or ``"modp2048"`` (plain
            integers, 256-byte elements, about 100 times slower: for small sets).
        reveal_to_b: Whether B learns the intersection too (A sends it, step 4). Default
            ``False``: only A learns it.

    Returns:
        A :class:`PSIResult`: the intersection (sorted; an int64 array for int ids, a list for
        str ids), both views, the seconds of each step.

    Raises:
        TypeError: Ids of a wrong or mixed type, int ids on one side and str on the other, a
            group that is not a str, a flag that is not a bool.
        ValueError: A repeated id, an int id outside ``0 .. 2**63 - 1``, an empty, unencodable
            or too long str id, too many ids, an unknown group.
    """
    checked_a = _check_ids("ids_a", ids_a)
    checked_b = _check_ids("ids_b", ids_b)
    if checked_a.values and checked_b.values and checked_a.kind != checked_b.kind:
        raise TypeError(f"ids_b must hold the same type of id as ids_a, got {checked_b.kind} "
                        f"ids for B and {checked_a.kind} ids for A: the intersection would be "
                        "empty. Convert one side (e.g. str(id)).")
    kind = checked_a.kind if checked_a.values else checked_b.kind
    _check_group("group", group)
    v.check_flag("reveal_to_b", reveal_to_b)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    party_a = PartyA(checked_a, group=group, reveal_to_b=reveal_to_b)
    party_b = PartyB(checked_b, group=group)
    blinded_a = party_a.blind_ids()
    seconds["1. A: hash and blind its ids"] = time.perf_counter() - start
    start = time.perf_counter()
    reblinded_a, blinded_b = party_b.respond(blinded_a)
    seconds["2. B: blind A's elements, hash and blind its ids"] = time.perf_counter() - start
    start = time.perf_counter()
    to_b = party_a.intersect(reblinded_a, blinded_b)
    seconds["3. A: blind B's elements and match"] = time.perf_counter() - start
    if to_b is not None:
        start = time.perf_counter()
        party_b.receive_intersection(to_b)
        seconds["4. B: receive the intersection"] = time.perf_counter() - start
    result = party_a.intersection
    if kind == "str" and len(result) == 0:
        result = []
    return PSIResult(result, group, party_a.view, party_b.view, seconds)


def unblinded_hashes_broken(ids: Any, *, group: str = "p256") -> Message:
    """A deliberately broken step 1 that sends ``H(x)`` *without* blinding it.

    Only to show the dictionary attack (:func:`dictionary_attack`) succeed: anyone who can
    enumerate the id space (here 1 .. 30,000 customers) hashes every candidate and reads the
    sender's ids off the message. Never use it in a protocol.

    Args:
        ids: The ids, as for :func:`intersect`.
        group: ``"p256"`` or ``"modp2048"``.

    Returns:
        A ``"blinded_a"`` message whose elements are the bare hashes, shuffled.
    """
    checked = _check_ids("ids", ids)
    chosen = _check_group("group", group)
    shuffled, _ = _shuffled(chosen._hash_to_group(checked.encodings))
    return Message("blinded_a", "A", chosen.name, tuple(shuffled))


def dictionary_attack(received: Message, candidate_ids: Any, *,
                      attacker: PartyA | PartyB | None = None) -> np.ndarray | list[str]:
    """The dictionary attack of a party that enumerates the id space, on a message it received.

    The adversary knows the public hash and the whole space of possible ids (customer numbers
    1 .. 30,000), and holds its own secret. It computes ``H(c)`` for every candidate ``c`` and,
    if ``attacker`` is given, also ``H(c)^k`` with the attacker's own secret ``k``, and reports
    every candidate whose value occurs in the message. On the real protocol it finds nothing
    (B cannot compute ``H(c)^a`` without A's ``a``); on :func:`unblinded_hashes_broken` it finds
    every id the sender holds.

    Args:
        received: A message, e.g. ``result.view_b.received[0]`` (what B got in step 1).
        candidate_ids: The ids to try, as for :func:`intersect`.
        attacker: The party running the attack (its secret is used, never shown), or ``None``
            to try the bare hashes only.

    Returns:
        The candidates found in the message, sorted (int64 array or list of str).

    Raises:
        TypeError: ``received`` is not a :class:`Message`, ``attacker`` not a party, bad ids.
        ValueError: Bad ids; ``attacker`` uses another group than the message.
    """
    if not isinstance(received, Message):
        raise TypeError(f"received must be a psi.Message, got {type(received).__name__} "
                        f"{v._fmt(received)}.")
    candidates = _check_ids("candidate_ids", candidate_ids)
    if attacker is not None and not isinstance(attacker, (PartyA, PartyB)):
        raise TypeError(f"attacker must be a PartyA, a PartyB or None, got "
                        f"{type(attacker).__name__} {v._fmt(attacker)}.")
    chosen = _check_group("received.group", received.group)
    if attacker is not None and attacker._group.name != chosen.name:
        raise ValueError(f"attacker must use the message's group {chosen.name!r}, got "
                         f"{attacker._group.name!r}.")
    seen = set(received.elements)
    hashes = chosen._hash_to_group(candidates.encodings)
    hits = [c for c, h in zip(candidates.values, hashes, strict=True) if h in seen]
    if attacker is not None:
        blinded = chosen._blind(hashes, attacker._secret)
        hits += [c for c, h in zip(candidates.values, blinded, strict=True) if h in seen]
    return _as_output(candidates.kind, sorted(set(hits)))
