"""Bonawitz et al. 2017's secure aggregation protocol: the server learns only the sum.

The rounds, the dropouts and the threshold of "Practical Secure Aggregation for
Privacy-Preserving Machine Learning" (Section 4, Figure 4, honest-but-curious version), built on
the primitives of :mod:`fl_helpers.secagg_crypto`; notebook 06 writes each step by hand first.
:mod:`fl_helpers.distributed_dp` quantises the updates and adds the distributed noise before
they enter it.

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
import math
import secrets
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from fl_helpers import _validation as v
from fl_helpers import discrete_noise
from fl_helpers import secagg_crypto as crypto


class ProtocolAbort(ValueError):
    """An honest party refuses a protocol step that would reveal an individual input."""


class MaskReuseError(ProtocolAbort):
    """A :class:`SecAggClient` was asked to mask a second input (or to run a step twice).

    Both inputs would carry the same self mask and pairwise masks, so the server would learn
    their difference ``y - y' = x - x' mod 2^b``. A client object serves one round: make a new
    one (fresh keys, fresh seeds) for the next input.
    """


# --------------------------------------------------------------------------------------------
# The threshold
# --------------------------------------------------------------------------------------------


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
    n = v.check_int("num_clients", num_clients, minimum=2, maximum=crypto.MAX_CLIENTS)
    t = crypto._check_shamir_threshold(threshold, n)
    return _check_majority(t, n)


def _check_majority(t: int, n: int) -> int:
    if 2 * t <= n:
        raise ValueError(f"threshold must be > num_clients / 2 = {n / 2:g}, got {t}: with "
                         f"t <= n / 2 a server could ask two disjoint halves of the clients for "
                         "the two seeds of one client and unmask its input. Use at least "
                         f"{n // 2 + 1} (the default is ceil(2 n / 3) = {math.ceil(2 * n / 3)}).")
    return t


# --------------------------------------------------------------------------------------------
# The protocol (Bonawitz et al. 2017, Figure 4, honest-but-curious)
# --------------------------------------------------------------------------------------------


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
        self.client_id = crypto._check_client_id("client_id", client_id)
        self.threshold = crypto._check_shamir_threshold(threshold, crypto.MAX_CLIENTS)
        self.modulus_bits = crypto.check_modulus_bits(modulus_bits)
        self.round_tag = crypto._check_round_tag(round_tag)
        self.double_masking = v.check_flag("double_masking", double_masking)
        self._channel_key = x25519.X25519PrivateKey.generate()
        self._mask_seed = secrets.token_bytes(crypto.SEED_BYTES)
        self._self_seed = secrets.token_bytes(crypto.SEED_BYTES)
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
        return (crypto._public_bytes(self._channel_key),
                crypto._public_bytes(crypto._private_key(self._mask_seed)))

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
        keys = crypto._check_key_map("public_keys", public_keys, crypto._check_key_pair)
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
        mask_shares = dict(crypto._share(int.from_bytes(self._mask_seed, "big"), max(ids),
                                         self.threshold))
        self_shares = dict(crypto._share(int.from_bytes(self._self_seed, "big"), max(ids),
                                         self.threshold))
        messages = {}
        for other in ids:
            plain = (self.client_id.to_bytes(4, "big") + other.to_bytes(4, "big")
                     + mask_shares[other].to_bytes(crypto.SHARE_BYTES, "big")
                     + self_shares[other].to_bytes(crypto.SHARE_BYTES, "big"))
            if other == self.client_id:
                self._held[other] = (mask_shares[other], self_shares[other])
                continue
            key = self._channels[other] = crypto._agree(self._channel_key, public_keys[other][0],
                                                        "channel")
            messages[other] = ChaCha20Poly1305(key).encrypt(
                crypto._nonce(self.client_id, other), plain, self.round_tag)
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
        array = discrete_noise._check_integer_array(  # no wrap-around
            "values", values, max_abs=2**(self.modulus_bits - 1) - 1)
        messages = crypto._check_key_map("inbox", inbox, crypto._check_bytes)
        self._step("masked_input", after="share_keys")
        return self._masked_input(array, messages)

    def _masked_input(self, values: np.ndarray, inbox: dict[int, bytes]) -> np.ndarray:
        """:meth:`masked_input` without its checks (tests use it to show the mask-reuse leak)."""
        for sender, ciphertext in inbox.items():
            if sender not in self._channels:
                raise ProtocolAbort(f"client {self.client_id}: a share message from client "
                                    f"{sender}, which advertised no keys; the protocol aborts.")
            plain = ChaCha20Poly1305(self._channels[sender]).decrypt(
                crypto._nonce(sender, self.client_id), ciphertext, self.round_tag)
            if int.from_bytes(plain[:4], "big") != sender or \
                    int.from_bytes(plain[4:8], "big") != self.client_id:
                raise ProtocolAbort(f"client {self.client_id}: a share message names the wrong "
                                    "sender or receiver; the protocol aborts.")
            self._held[sender] = (int.from_bytes(plain[8:8 + crypto.SHARE_BYTES], "big"),
                                  int.from_bytes(plain[8 + crypto.SHARE_BYTES:], "big"))
        bits = self.modulus_bits
        masked = crypto._to_modular(values, bits)
        masked = masked + crypto._pairwise_mask_sum(
            self._mask_seed, self.client_id, {k: pk[1] for k, pk in self._public_keys.items()},
            masked.size, bits, self.round_tag)
        if self.double_masking:
            masked = masked + crypto._prg(self._self_seed + self.round_tag, masked.size, bits)
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
        included = crypto._check_ids_list("included", included)
        dropped = crypto._check_ids_list("dropped", dropped)
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
    whole view) is what ``tests/test_secure_aggregation_attacks.py`` attacks.

    Args:
        threshold: ``t`` in 2..2^14 (``t > n / 2`` is checked by :meth:`unmask`).
        modulus_bits: ``b`` in 1..62.
        size: ``d`` in 0..2^27, the length of every masked vector.
        round_tag: Bytes (at most 1024), as the clients use.
        double_masking: As the clients use.
    """

    def __init__(self, *, threshold: int, modulus_bits: int, size: int,
                 round_tag: bytes = b"", double_masking: bool = True) -> None:
        self.threshold = crypto._check_shamir_threshold(threshold, crypto.MAX_CLIENTS)
        self.modulus_bits = crypto.check_modulus_bits(modulus_bits)
        self.size = discrete_noise._check_size("size", size)
        self.round_tag = crypto._check_round_tag(round_tag)
        self.double_masking = v.check_flag("double_masking", double_masking)
        self.public_keys: dict[int, tuple[bytes, bytes]] = {}
        self.masked_inputs: dict[int, np.ndarray] = {}
        self.bytes_received: dict[int, int] = {}

    def receive_keys(self, client_id: int, keys: tuple[bytes, bytes]) -> None:
        """Round 0: a client's two public keys."""
        client_id = crypto._check_client_id("client_id", client_id)
        keys = crypto._check_key_pair("keys", keys)
        if client_id in self.public_keys:
            raise ValueError(f"client_id {client_id} already advertised keys in this round.")
        self.public_keys[client_id] = keys
        self.bytes_received[client_id] = sum(len(k) for k in keys)

    def route(self, outboxes: dict[int, dict[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Round 1: the encrypted shares, regrouped by receiver (opaque to the server)."""
        boxes = crypto._check_key_map("outboxes", outboxes, lambda name, box: crypto._check_key_map(
            name, box, crypto._check_bytes))
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
        client_id = crypto._check_client_id("client_id", client_id)
        array = discrete_noise._check_integer_array("masked", masked)
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
        answers = crypto._check_key_map("responses", responses, _check_response)
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
            total = total + crypto._pairwise_mask_sum(seed, u, survivors, self.size, bits,
                                                      self.round_tag)
        if self.double_masking:
            for u in self.masked_inputs:
                total = total - crypto._prg(self._secret(u, "self", responses) + self.round_tag,
                                            self.size, bits)
        return total & np.uint64(2**bits - 1)

    def _secret(self, owner: int, kind: str, responses: dict[int, dict[int, tuple[str, int]]]
                ) -> bytes:
        shares = [(holder, answer[owner][1]) for holder, answer in responses.items()
                  if owner in answer and answer[owner][0] == kind]
        value = crypto.shamir_reconstruct(shares, threshold=self.threshold)
        return value.to_bytes(crypto.SEED_BYTES, "big")


def _check_response(name: str, response: Any) -> dict[int, tuple[str, int]]:
    def check_share(entry_name: str, entry: Any) -> tuple[str, int]:
        if not isinstance(entry, tuple) or len(entry) != 2 or entry[0] not in ("self", "mask"):
            raise TypeError(f"{entry_name} must be a pair ('self' or 'mask', share), got "
                            f"{v._fmt(entry)}.")
        return entry[0], v.check_int(entry_name, entry[1], minimum=0,
                                     maximum=crypto.FIELD_PRIME - 1)
    return crypto._check_key_map(name, response, check_share)


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
    bits = crypto.check_modulus_bits(modulus_bits)
    t = check_threshold(math.ceil(2 * n / 3) if threshold is None else threshold, n)
    largest = sum(int(np.max(np.abs(a), initial=0)) for a in arrays)
    if largest >= 2**(bits - 1):
        raise ValueError(f"modulus_bits={bits} is too small for the sum: the inputs' largest "
                         f"possible |sum| is {largest}, which needs modulus_bits >= "
                         f"{largest.bit_length() + 1}.")
    early = set(v.check_ids("dropped_before_masking", dropped_before_masking, num=n).tolist())
    late = set(v.check_ids("dropped_before_unmasking", dropped_before_unmasking, num=n).tolist())
    round_tag = crypto._check_round_tag(round_tag)
    double_masking = v.check_flag("double_masking", double_masking)
    clock = _Clock()
    total, server, included = _run_protocol(arrays, t, bits, early, late, round_tag,
                                            double_masking, clock)
    return SecureSumResult(total=crypto._from_modular(total, bits), included=included,
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
    if len(inputs) > crypto.MAX_CLIENTS:
        raise ValueError(f"inputs must hold at most {crypto.MAX_CLIENTS} arrays, got "
                         f"{len(inputs)}.")
    arrays = []
    for k, x in enumerate(inputs):
        try:
            a = np.asarray(x)
        except (TypeError, ValueError, OverflowError) as error:
            raise TypeError(f"inputs[{k}] must be a flat integer array, got "
                            f"{type(x).__name__}.") from error
        if not np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            raise TypeError(f"inputs[{k}] must hold integers, got dtype {a.dtype}. Quantise "
                            "float updates first (distributed_dp.quantize).")
        if a.ndim != 1 or a.shape != np.shape(inputs[0]):
            raise ValueError(f"inputs[{k}] must be flat with the shape of inputs[0] "
                             f"{np.shape(inputs[0])}, got {a.shape}.")
        discrete_noise._check_size(f"the length of inputs[{k}]", a.size)
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
        server.bytes_received[u] += len(answer) * crypto.SHARE_BYTES
    return clock.on_server(server.unmask, responses), server, [u - 1 for u in senders]


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
