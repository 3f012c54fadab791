"""Attacks on the secure aggregation protocol of fl_helpers.secagg_protocol.

Each test states the adversary, runs the attack on everything that adversary sees, shows that it
succeeds on a deliberately broken variant (a check bypassed through an internal, or the self mask
switched off) and that it fails on the real protocol.

The adversary throughout is the server. It sees its *whole view*: every public key, every
encrypted share message it relays (it cannot read them), every masked vector, including one that
arrives after the client was declared dropped, and every answer to the unmasking request, i.e.
plaintext Shamir shares of mask-key seeds and self-mask seeds. From those it tries what an
honest-but-curious server can compute: recombine every set of at least ``t`` shares of the same
seed, strip every mask it can from every masked vector it holds, and compare with the inputs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fl_helpers import secagg_crypto as crypto
from fl_helpers import secagg_protocol as protocol

BITS = 16
SIZE = 64


@dataclasses.dataclass
class View:
    """Every message the server receives in one round."""

    public_keys: dict[int, tuple[bytes, bytes]] = dataclasses.field(default_factory=dict)
    ciphertexts: list[bytes] = dataclasses.field(default_factory=list)
    masked: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    answers: list[tuple[int, dict[int, tuple[str, int]]]] = dataclasses.field(
        default_factory=list)


class Round:
    """One round run by hand, so that the server can deviate where a test says so."""

    def __init__(self, inputs: dict[int, np.ndarray], threshold: int, *,
                 double_masking: bool = True) -> None:
        self.inputs = inputs
        self.threshold = threshold
        self.view = View()
        self.clients = {u: protocol.SecAggClient(u, threshold=threshold, modulus_bits=BITS,
                                           double_masking=double_masking) for u in inputs}
        for u, c in self.clients.items():
            self.view.public_keys[u] = c.advertise_keys()
        outboxes = {u: c.share_keys(self.view.public_keys) for u, c in self.clients.items()}
        self.inboxes: dict[int, dict[int, bytes]] = {u: {} for u in inputs}
        for sender, messages in outboxes.items():
            for receiver, ciphertext in messages.items():
                self.view.ciphertexts.append(ciphertext)
                self.inboxes[receiver][sender] = ciphertext

    def send(self, u: int) -> None:
        self.view.masked[u] = self.clients[u].masked_input(self.inputs[u], self.inboxes[u])

    def ask(self, u: int, included: list[int], dropped: list[int]) -> None:
        self.view.answers.append((u, self.clients[u].reveal_shares(included, dropped)))


def seeds_the_server_can_rebuild(view: View, threshold: int) -> dict[tuple[int, str], bytes]:
    """(owner, 'mask' or 'self') -> the seed, for every seed with >= t shares in the view."""
    shares: dict[tuple[int, str], dict[int, int]] = {}
    for holder, answer in view.answers:
        for owner, (kind, share) in answer.items():
            shares.setdefault((owner, kind), {})[holder] = share
    return {key: crypto.shamir_reconstruct(sorted(points.items()), threshold=threshold)
            .to_bytes(crypto.SEED_BYTES, "big")
            for key, points in shares.items() if len(points) >= threshold}


def strip_masks(view: View, threshold: int, double_masking: bool) -> dict[int, np.ndarray]:
    """Every input the server can unmask completely: its masked vector minus every mask."""
    seeds = seeds_the_server_can_rebuild(view, threshold)
    recovered = {}
    for u, masked in view.masked.items():
        mask_seed, self_seed = seeds.get((u, "mask")), seeds.get((u, "self"))
        if mask_seed is None or (double_masking and self_seed is None):
            continue
        others = {k: keys[1] for k, keys in view.public_keys.items()}
        plain = masked - crypto.pairwise_mask_sum(mask_seed, u, others, SIZE, BITS, b"")
        if double_masking:
            plain = plain - crypto.prg_mask(self_seed, SIZE, modulus_bits=BITS)
        recovered[u] = crypto.from_modular(plain & np.uint64(2**BITS - 1), BITS)
    return recovered


def _inputs(n: int, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {u: rng.integers(-100, 100, SIZE) for u in range(1, n + 1)}


# --------------------------------------------------------------------------------------------
# The server's whole view, with a client that is declared dropped and then sends late
# --------------------------------------------------------------------------------------------


def _late_round(double_masking: bool) -> Round:
    """5 clients, t = 3: clients 1-4 send, the server declares 5 dropped, asks 1-4 for the
    shares of 5's mask key, and then 5's masked vector arrives late."""
    r = Round(_inputs(5, 0), 3, double_masking=double_masking)
    for u in (1, 2, 3, 4):
        r.send(u)
    for u in (1, 2, 3, 4):
        r.ask(u, included=[1, 2, 3, 4], dropped=[5])
    r.send(5)  # late
    return r


def test_the_late_input_is_exposed_without_self_masks_though_no_stored_array_is_unmasked():
    """Broken variant (single masking): the server's view gives x_5 exactly. The old test's
    criterion, that no array the server stores equals an input, still holds here: it is not a
    test of what the server can compute."""
    r = _late_round(double_masking=False)
    for masked in r.view.masked.values():  # the old criterion passes ...
        for x in r.inputs.values():
            assert np.mean(masked == crypto.to_modular(x, BITS)) < 0.05
    recovered = strip_masks(r.view, 3, double_masking=False)  # ... and the attack succeeds
    assert list(recovered) == [5]
    np.testing.assert_array_equal(recovered[5], r.inputs[5])


def test_the_server_view_never_holds_both_seeds_of_one_client_and_unmasks_no_input():
    r = _late_round(double_masking=True)
    seeds = seeds_the_server_can_rebuild(r.view, 3)
    assert (5, "mask") in seeds  # the dropped client's mask key is revealed, as designed
    owners = [owner for owner, _ in seeds]
    assert len(owners) == len(set(owners)), f"both seeds of one client revealed: {sorted(seeds)}"
    assert strip_masks(r.view, 3, double_masking=True) == {}
    # Even with 5's pairwise masks removed, its late vector still carries its self mask.
    others = {k: keys[1] for k, keys in r.view.public_keys.items()}
    residual = crypto.from_modular((r.view.masked[5] - crypto.pairwise_mask_sum(
        seeds[(5, "mask")], 5, others, SIZE, BITS, b"")) & np.uint64(2**BITS - 1), BITS)
    assert np.mean(residual == r.inputs[5]) < 0.05
    # Asking the survivors again, now with 5 as included, is refused: one answer per round.
    for u in (1, 2, 3, 4):
        with pytest.raises(protocol.MaskReuseError, match="second reveal_shares"):
            r.ask(u, included=[1, 2, 3, 4, 5], dropped=[])
    assert strip_masks(r.view, 3, double_masking=True) == {}


def test_asking_for_both_seeds_of_one_client_at_once_is_refused():
    # A server asking one client for both seeds of client 5, or telling a client that it
    # alone survived (its self seed and everyone else's mask key would unmask it), is refused.
    r = Round(_inputs(5, 1), 3)
    for u in (1, 2, 3, 4):
        r.send(u)
    with pytest.raises(protocol.ProtocolAbort, match="refuses to unmask: clients \\[5\\]"):
        r.ask(1, included=[1, 2, 3, 4, 5], dropped=[5])
    with pytest.raises(protocol.ProtocolAbort, match="at least threshold=3"):
        r.ask(2, included=[2], dropped=[1, 3, 4, 5])
    assert r.view.answers == []


@pytest.mark.parametrize("seed", range(20))
def test_random_rounds_with_dropouts_reveal_no_input_and_give_the_exact_sum(seed):
    # The protocol as secure_sum runs it, with a random n, t and dropouts; the late clients of
    # the previous test's kind (declared dropped, then sending) are included at random too.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 8))
    t = int(rng.integers(n // 2 + 1, n + 1))
    r = Round(_inputs(n, seed), t)
    ids = list(r.inputs)
    dropped = [int(u) for u in rng.choice(ids, size=int(rng.integers(0, n - t + 1)),
                                          replace=False)]
    included = [u for u in ids if u not in dropped]
    for u in included:
        r.send(u)
    for u in included:
        r.ask(u, included=included, dropped=dropped)
    for u in dropped:
        if rng.random() < 0.5:
            r.send(u)  # late
    seeds = seeds_the_server_can_rebuild(r.view, t)
    owners = [owner for owner, _ in seeds]
    assert len(owners) == len(set(owners))
    assert strip_masks(r.view, t, double_masking=True) == {}
    # ... while the honest unmasking gives the exact sum of the included inputs.
    server = protocol.SecAggServer(threshold=t, modulus_bits=BITS, size=SIZE)
    server.public_keys = dict(r.view.public_keys)
    server.masked_inputs = {u: r.view.masked[u] for u in included}
    total = crypto.from_modular(server.unmask(dict(r.view.answers)), BITS)
    np.testing.assert_array_equal(total, sum(r.inputs[u] for u in included))


# --------------------------------------------------------------------------------------------
# Threshold: t = 1, and t <= n / 2 against a server that tells two halves different stories
# --------------------------------------------------------------------------------------------


def test_threshold_one_hands_every_seed_to_one_answer_and_is_refused():
    """Adversary: the server after one client's answer. With t = 1 the polynomial is the
    constant secret, so a single share is the seed (shown on the internal sharing routine,
    which skips the check); every entry point now refuses t = 1."""
    secret = 2**100 + 7
    assert {y for _, y in crypto._share(secret, 5, 1)} == {secret}
    with pytest.raises(ValueError, match="threshold must be >= 2, got 1"):
        protocol.secure_sum([np.zeros(2, dtype=np.int64)] * 3, modulus_bits=8, threshold=1)
    with pytest.raises(ValueError, match="threshold must be >= 2, got 1"):
        crypto.shamir_share(secret, num_shares=5, threshold=1)
    with pytest.raises(ValueError, match="threshold must be >= 2, got 1"):
        protocol.SecAggClient(1, threshold=1, modulus_bits=8)
    with pytest.raises(ValueError, match="threshold must be >= 2, got 1"):
        protocol.SecAggServer(threshold=1, modulus_bits=8, size=2)
    with pytest.raises(ValueError, match="inputs must hold at least 2"):
        protocol.secure_sum([np.zeros(2, dtype=np.int64)], modulus_bits=8)


def _equivocate(r: Round) -> dict[int, np.ndarray]:
    """All 7 send; the server tells group A = {1..t} "7 was included" and group B = {7-t..6}
    "7 dropped" (the groups are disjoint when t <= 3 = floor(7 / 2))."""
    t = r.threshold
    for u in range(1, 8):
        r.send(u)
    group_a, group_b = list(range(1, t + 1)), list(range(7 - t, 7))
    for u in group_a:
        r.ask(u, included=[*group_a, 7], dropped=[k for k in range(1, 7) if k not in group_a])
    for u in group_b:
        try:
            r.ask(u, included=group_b, dropped=[7])
        except protocol.MaskReuseError:
            pass  # a client in both groups answers once
    return strip_masks(r.view, t, double_masking=True)


def test_t_at_most_half_lets_an_equivocating_server_unmask_and_t_above_half_stops_it(monkeypatch):
    """Adversary: a server that lies about who dropped, differently to different clients
    (beyond honest-but-curious; Bonawitz et al.'s consistency round is not implemented). With
    n = 7 and t = 3 <= n / 2 it asks {1, 2, 3} for 7's self seed and {4, 5, 6} for 7's mask
    seed: each client sees one consistent request, and x_7 falls out. With t = 4 > n / 2 the two
    groups must share a client, who answers once, so one seed stays short of t shares."""
    with pytest.raises(ValueError, match="threshold must be > num_clients / 2 = 3.5, got 3"):
        protocol.check_threshold(3, 7)
    with pytest.raises(protocol.ProtocolAbort, match="aborts: threshold must be > num_clients / 2"):
        Round(_inputs(7, 2), 3)
    # Broken variant: the majority check bypassed, the protocol runs with t = 3.
    monkeypatch.setattr(protocol, "_check_majority", lambda t, n: t)
    broken = Round(_inputs(7, 2), 3)
    recovered = _equivocate(broken)
    assert 7 in recovered
    for u, x in recovered.items():
        np.testing.assert_array_equal(x, broken.inputs[u])
    monkeypatch.undo()
    # Real protocol: t = 4.
    real = Round(_inputs(7, 3), 4)
    assert _equivocate(real) == {}
    owners = [owner for owner, _ in seeds_the_server_can_rebuild(real.view, 4)]
    assert len(owners) == len(set(owners))


# --------------------------------------------------------------------------------------------
# Mask reuse: a client masking two inputs with the same masks
# --------------------------------------------------------------------------------------------


def test_a_second_input_under_the_same_masks_leaks_the_difference_and_is_refused():
    """Adversary: the server, which gets client 1 to mask two inputs in one round (e.g. by
    asking it to resend) and knows the first one (a canary it planted). Broken variant (the
    single-use check bypassed through the internal ``_masked_input``): y - y' = x - x' mod 2^b,
    so the second input is recovered exactly. Real client: the second call raises."""
    r = Round(_inputs(4, 4), 3)
    client = r.clients[1]
    canary = np.arange(SIZE) - 30
    secret_input = r.inputs[1]
    first = client._masked_input(canary, r.inboxes[1])
    second = client._masked_input(secret_input, r.inboxes[1])
    leaked = crypto.from_modular((second - first + crypto.to_modular(canary, BITS))
                             & np.uint64(2**BITS - 1), BITS)
    np.testing.assert_array_equal(leaked, secret_input)

    r = Round(_inputs(4, 5), 3)
    client = r.clients[1]
    client.masked_input(canary, r.inboxes[1])
    with pytest.raises(protocol.MaskReuseError, match="second masked_input\\(\\) in one round"):
        client.masked_input(r.inputs[1], r.inboxes[1])
    with pytest.raises(protocol.MaskReuseError, match="second share_keys"):
        client.share_keys(r.view.public_keys)
    assert issubclass(protocol.MaskReuseError, ValueError)  # callers that catch ValueError still do


def test_a_client_refuses_steps_out_of_order():
    r = Round(_inputs(3, 6), 2)
    fresh = protocol.SecAggClient(9, threshold=2, modulus_bits=BITS)
    with pytest.raises(protocol.ProtocolAbort,
                       match="masked_input\\(\\) must come after share_keys"):
        fresh.masked_input(r.inputs[1], {})
    with pytest.raises(protocol.ProtocolAbort, match="never advertised keys"):
        r.clients[1].reveal_shares([1, 2, 9], [])
    with pytest.raises(protocol.ProtocolAbort, match="must list its own advertised keys"):
        other = protocol.SecAggClient(1, threshold=2, modulus_bits=BITS)
        other.share_keys(r.view.public_keys)  # keys that are not its own under its id
