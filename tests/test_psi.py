"""Private set intersection (fl_helpers.psi): correct intersections, and attacks on the views.

Correctness: random sets of every shape (disjoint, identical, nested, empty on either side, one
id) against ``np.intersect1d``, in both groups, and against OpenMined's ``openmined-psi``.

Privacy tests are attacks. The adversary is a semi-honest party: it follows the protocol, keeps
everything it receives (its :class:`psi.PartyView`) and its own secret, knows the public hash and
the whole id space (customer numbers 1 .. 30,000), and tries to learn the other party's ids
beyond the intersection. Each attack succeeds on a deliberately broken variant (A sends its
hashes unblinded; a party reuses its secret) and fails on the real protocol.
"""

from __future__ import annotations

import numpy as np
import pytest

from fl_helpers import psi

ID_SPACE = np.arange(1, 30_001, dtype=np.int64)  # the course's customer ids


def _sets(kind: str, rng: np.random.Generator, size: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Two id sets of the given shape, drawn from 1 .. 30,000."""
    ids = rng.choice(ID_SPACE, 2 * size, replace=False)
    if kind == "disjoint":
        return ids[:size], ids[size:]
    if kind == "identical":
        return ids[:size], rng.permutation(ids[:size])
    if kind == "a_inside_b":
        return ids[: size // 2], ids[:size]
    if kind == "b_inside_a":
        return ids[:size], ids[: size // 3]
    if kind == "overlap":
        return ids[:size], ids[size // 2: size + size // 2]
    if kind == "empty_a":
        return ids[:0], ids[:size]
    if kind == "empty_b":
        return ids[:size], ids[:0]
    if kind == "both_empty":
        return ids[:0], ids[:0]
    if kind == "one_shared":
        return ids[:1], ids[:1]
    if kind == "one_each_disjoint":
        return ids[:1], ids[1:2]
    raise AssertionError(kind)


SHAPES = ["disjoint", "identical", "a_inside_b", "b_inside_a", "overlap", "empty_a", "empty_b",
          "both_empty", "one_shared", "one_each_disjoint"]


# --------------------------------------------------------------------------------------------
# Correctness
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_intersection_is_correct_on_every_shape_of_set(shape):
    rng = np.random.default_rng(SHAPES.index(shape))
    a, b = _sets(shape, rng)
    result = psi.intersect(a, b)
    assert isinstance(result.intersection, np.ndarray)
    assert result.intersection.dtype == np.int64
    np.testing.assert_array_equal(result.intersection, np.intersect1d(a, b))
    assert result.view_a.other_set_size == len(b) and result.view_b.other_set_size == len(a)


@pytest.mark.parametrize("shape", ["overlap", "disjoint", "empty_a", "one_shared"])
def test_both_groups_give_the_same_intersection(shape):
    a, b = _sets(shape, np.random.default_rng(7), size=24)
    modp = psi.intersect(a, b, group="modp2048")
    p256 = psi.intersect(a, b, group="p256")
    np.testing.assert_array_equal(modp.intersection, p256.intersection)
    np.testing.assert_array_equal(modp.intersection, np.intersect1d(a, b))
    # The same number of elements, of each group's size, cross the wire.
    assert modp.bytes_a_to_b == len(a) * 256 and p256.bytes_a_to_b == len(a) * 32
    assert modp.bytes_b_to_a == (len(a) + len(b)) * 256


def test_moderate_sets_and_the_byte_count_of_every_message():
    rng = np.random.default_rng(3)
    a = rng.choice(ID_SPACE, 2_000, replace=False)
    b = rng.choice(ID_SPACE, 2_400, replace=False)
    result = psi.intersect(a, b)
    np.testing.assert_array_equal(result.intersection, np.intersect1d(a, b))
    (m1,) = result.view_b.received
    m2, m3 = result.view_a.received
    assert (m1.step, m1.num_elements, m1.num_bytes) == ("blinded_a", 2_000, 64_000)
    assert (m2.step, m2.num_elements, m2.num_bytes) == ("reblinded_a", 2_000, 64_000)
    assert (m3.step, m3.num_elements, m3.num_bytes) == ("blinded_b", 2_400, 76_800)
    assert result.bytes_a_to_b == 64_000 and result.bytes_b_to_a == 140_800
    assert result.view_a.sent == (m1,) and result.view_b.sent == (m2, m3)
    assert "2000 elements" in repr(m1)
    assert "it learns: the intersection" in result.describe()


def test_str_ids_and_the_types_accepted():
    a = ["alice", "bob", "zoë", "日本", "1"]
    b = ("bob", "日本", "carol", "01")
    result = psi.intersect(a, b)
    assert result.intersection == ["bob", "日本"]
    assert psi.intersect(np.array(a), set(b)).intersection == ["bob", "日本"]
    assert psi.intersect([], ["x"]).intersection == []
    ints = [np.array([5, 3, 9], dtype=np.int32), np.array([5, 3, 9], dtype=np.uint64),
            [5, 3, 9], (np.int64(5), 3, 9), {3, 5, 9}, range(3, 10, 3),
            np.array([5, 3, 9], dtype=object)]
    for ids in ints:
        out = psi.intersect(ids, [9, 3, 4]).intersection
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, [3, 9])


def test_zero_and_the_largest_ids():
    big = [0, 1, 2**62, 2**63 - 1]
    result = psi.intersect(big, [2**63 - 1, 0, 7])
    np.testing.assert_array_equal(result.intersection, [0, 2**63 - 1])
    with pytest.raises(ValueError, match="ids_a"):
        psi.intersect([2**63], [1])
    with pytest.raises(ValueError, match="ids_b"):
        psi.intersect([1], np.array([2**64 - 1], dtype=np.uint64))


def test_the_variant_that_reveals_the_intersection_to_b():
    a, b = _sets("overlap", np.random.default_rng(5))
    result = psi.intersect(a, b, reveal_to_b=True)
    np.testing.assert_array_equal(result.view_b.intersection, result.intersection)
    assert [m.step for m in result.view_b.received] == ["blinded_a", "intersection"]
    assert result.view_b.received[1].num_bytes == 9 * len(result.intersection)


def test_p256_blinding_commutes_on_x_coordinates():
    group = psi.GROUPS["p256"]
    a, b = group.new_secret(), group.new_secret()
    h = group.hash_to_group([psi.encode_id(i) for i in range(20)])
    ab = group.blind(group.blind(h, a), b)
    ba = group.blind(group.blind(h, b), a)
    assert ab == ba
    assert group.hash_and_blind([psi.encode_id(i) for i in range(20)], a) == group.blind(h, a)
    assert len(set(ab)) == 20 and all(len(x) == 32 for x in ab)


def test_modp_group_is_the_rfc_3526_safe_prime_and_gmpy2_changes_nothing(monkeypatch):
    p, q = psi.MODP2048_P, psi.MODP2048_Q
    assert p.bit_length() == 2048 and p == 2 * q + 1

    def probably_prime(n: int) -> bool:  # Miller-Rabin, 8 fixed bases
        d, s = n - 1, 0
        while d % 2 == 0:
            d, s = d // 2, s + 1
        for base in (2, 3, 5, 7, 11, 13, 17, 19):
            x = pow(base, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
                x = x * x % n
                if x == n - 1:
                    break
            else:
                return False
        return True

    assert probably_prime(p) and probably_prime(q)

    group = psi.GROUPS["modp2048"]
    secret = group.new_secret()
    assert 1 <= secret.value < 2**psi.MODP_EXPONENT_BITS and "secret" in repr(secret)
    assert str(secret.value) not in repr(secret)
    encodings = [psi.encode_id(i) for i in range(5)]
    hashed = group.hash_to_group(encodings)
    fast = group.blind(hashed, secret)
    monkeypatch.setattr(psi, "_gmpy2", None)
    assert group.blind(hashed, secret) == fast == group.hash_and_blind(encodings, secret)
    for element in hashed + fast:  # every element is a quadratic residue: order q
        e = int.from_bytes(element, "big")
        assert psi._jacobi(e, p) == 1 and pow(e, q, p) == 1
    assert psi._jacobi(p - 1, p) == -1


def test_modp_prime_is_the_formula_of_rfc_3526():
    mpmath = pytest.importorskip("mpmath", reason="mpmath computes pi to 1,918 bits")
    with mpmath.workdps(700):
        floor_pi = int(mpmath.floor(mpmath.mpf(2) ** 1918 * mpmath.pi))
    assert psi.MODP2048_P == 2**2048 - 2**1984 - 1 + 2**64 * (floor_pi + 124476)  # Section 3


# --------------------------------------------------------------------------------------------
# Ids that must never be confused, and the refusals
# --------------------------------------------------------------------------------------------


def test_ids_that_a_naive_encoding_would_confuse_never_collide():
    tricky = ["1", "01", " 1", "1 ", "\x001", "I" + "\x00" * 7 + "\x01", "S\x00\x00\x00\x011",
              "a", "a\x00", "A", "é", "e\u0301"]
    encodings = [psi.encode_id(x) for x in tricky] + [psi.encode_id(1), psi.encode_id(0)]
    assert len(set(encodings)) == len(encodings)
    for group in psi.GROUPS.values():
        hashes = group.hash_to_group(encodings)
        assert len(set(hashes)) == len(hashes)
    # An int id and the str whose UTF-8 bytes equal the int's encoding body stay apart.
    assert psi.encode_id(1) == b"I" + (1).to_bytes(8, "big")
    result = psi.intersect(tricky, ["1", "e\u0301", "b"])
    assert result.intersection == sorted(["1", "e\u0301"])  # no Unicode normalisation


@pytest.mark.parametrize("value", [True, 1.0, b"1", np.bool_(True), np.float64(1.0), None])
def test_one_true_and_the_float_one_are_refused_not_read_as_the_id_one(value):
    with pytest.raises(TypeError, match="value"):
        psi.encode_id(value)
    with pytest.raises(TypeError, match=r"ids_a\[1\]"):
        psi.intersect([2, value], [1])


@pytest.mark.parametrize("ids", [[3, 1, 3], np.array([3, 1, 3]), ["x", "y", "x"]])
def test_repeated_ids_are_refused_with_the_reason(ids):
    with pytest.raises(ValueError, match=r"ids_b must not repeat an id.*ids_b\[0\] and ids_b\[2\]"):
        psi.intersect([1], ids)


def test_mixed_types_are_refused():
    with pytest.raises(TypeError, match="ids_a must hold ids of one type"):
        psi.intersect([1, "1"], [1])
    with pytest.raises(TypeError, match="ids_b must hold the same type of id as ids_a"):
        psi.intersect([1, 2], ["1", "2"])


# --------------------------------------------------------------------------------------------
# Attacks on the views
# --------------------------------------------------------------------------------------------


def test_b_dictionary_attack_on_its_view_finds_nothing_but_reads_unblinded_hashes():
    """Adversary: B, with its view (step 1: A's blinded ids), its own secret b, the public hash
    and the whole id space 1 .. 30,000. It hashes every candidate c and compares H(c) and H(c)^b
    with what it received. Broken variant: A sends H(x) unblinded."""
    rng = np.random.default_rng(11)
    a = rng.choice(ID_SPACE, 2_000, replace=False)
    b = rng.choice(ID_SPACE, 2_000, replace=False)
    party_a, party_b = psi.PartyA(a), psi.PartyB(b)
    reblinded, blinded_b = party_b.respond(party_a.blind_ids())
    party_a.intersect(reblinded, blinded_b)
    (received,) = party_b.view.received
    found = psi.dictionary_attack(received, ID_SPACE, attacker=party_b)
    assert len(found) == 0  # 0 of A's 2,000 ids, though B tried every possible id
    assert party_b.view.intersection is None  # nor does B learn the intersection

    broken = psi.unblinded_hashes_broken(a)
    np.testing.assert_array_equal(psi.dictionary_attack(broken, ID_SPACE), np.sort(a))  # 100 %


def test_a_dictionary_attack_on_its_view_finds_only_the_intersection_it_is_owed():
    """Adversary: A, with its view (B's reply and B's blinded ids), its secret a and the id
    space. It learns the intersection by the protocol; the dictionary finds none of B's ids
    in what it received (it cannot raise a candidate's hash to b)."""
    rng = np.random.default_rng(12)
    space = ID_SPACE[:600]
    a, b = rng.choice(space, 200, replace=False), rng.choice(space, 250, replace=False)
    party_a, party_b = psi.PartyA(a), psi.PartyB(b)
    party_a.intersect(*party_b.respond(party_a.blind_ids()))
    for message in party_a.view.received:
        assert len(psi.dictionary_attack(message, space, attacker=party_a)) == 0
    np.testing.assert_array_equal(party_a.intersection, np.intersect1d(a, b))


def test_a_reused_b_links_the_bureaus_customers_across_runs_so_b_refuses():
    """Adversary: A, which runs the protocol with the bureau in two months; the bureau's
    customers change in between. A wants to know how many of the bureau's customers *outside*
    the intersection stayed. With fresh secrets B's blinded ids share no element across the two
    runs; with a reused b (the broken variant) every customer who stayed repeats."""
    rng = np.random.default_rng(13)
    month_1 = rng.choice(ID_SPACE[:3_000], 300, replace=False)
    month_2 = np.concatenate([month_1[:200], rng.choice(ID_SPACE[3_000:], 100, replace=False)])
    bank = month_1[:50]  # A's own customers: 50 of the bureau's first month

    def run(party_b: psi.PartyB) -> set[bytes]:
        party_a = psi.PartyA(bank)
        _, blinded_b = party_b.respond(party_a.blind_ids())
        return set(blinded_b.elements)

    first = psi.PartyB(month_1)
    seen_1 = run(first)
    assert not seen_1 & run(psi.PartyB(month_2))  # fresh b: nothing links the months
    with pytest.raises(psi.KeyReuseError, match="already answered"):
        first.respond(psi.PartyA(bank).blind_ids())  # the real PartyB answers once

    reused = psi.PartyB(month_2)
    reused._secret = first._secret  # broken: the same b again
    assert len(seen_1 & run(reused)) == 200  # A counts the 200 customers who stayed


def test_two_runs_on_the_same_ids_are_unlinkable():
    """Adversary: B, which runs the protocol twice with the same bank. With fresh secrets no
    element repeats across its two views, so it cannot tell which customers appear in both;
    a reused secret a (the broken variant) repeats every element."""
    a, b = list(range(1, 101)), list(range(50, 151))
    first, second = psi.intersect(a, b), psi.intersect(a, b)
    for view in ("view_a", "view_b"):
        one = {e for m in getattr(first, view).received for e in m.elements}
        two = {e for m in getattr(second, view).received for e in m.elements}
        assert one and not one & two
    np.testing.assert_array_equal(first.intersection, second.intersection)

    reused, again = psi.PartyA(a), psi.PartyA(a)
    again._secret = reused._secret  # broken: the same a in two runs
    assert set(reused.blind_ids().elements) == set(again.blind_ids().elements)


def test_the_shuffle_hides_the_order_of_a_sorted_id_list():
    party = psi.PartyA(list(range(1, 201)))
    sent = party.blind_ids().elements
    in_order = psi.GROUPS["p256"].hash_and_blind(party._ids.encodings, party._secret)
    assert sorted(sent) == sorted(in_order) and list(sent) != in_order


def test_each_party_object_serves_one_run():
    party_a, party_b = psi.PartyA([1, 2, 3], reveal_to_b=True), psi.PartyB([2, 3, 4])
    with pytest.raises(psi.ProtocolError, match="after blind_ids"):
        party_a.intersect(None, None)
    with pytest.raises(psi.ProtocolError, match="after respond"):
        party_b.receive_intersection(None)
    with pytest.raises(psi.ProtocolError, match="only after intersect"):
        _ = party_a.intersection
    blinded_a = party_a.blind_ids()
    with pytest.raises(psi.KeyReuseError, match="fresh secret a"):
        party_a.blind_ids()
    reply = party_b.respond(blinded_a)
    with pytest.raises(psi.KeyReuseError, match="fresh secret b"):
        party_b.respond(blinded_a)
    to_b = party_a.intersect(*reply)
    with pytest.raises(psi.KeyReuseError):
        party_a.intersect(*reply)
    np.testing.assert_array_equal(party_b.receive_intersection(to_b), [2, 3])
    with pytest.raises(psi.KeyReuseError):
        party_b.receive_intersection(to_b)
    assert issubclass(psi.KeyReuseError, psi.ProtocolError)
    assert "3 ids" in repr(party_a) and "p256" in repr(party_b)


def test_malformed_messages_are_refused():
    party_a, party_b = psi.PartyA([1, 2]), psi.PartyB([2, 3])
    blinded_a = party_a.blind_ids()
    reply, blinded_b = psi.PartyB([2]).respond(blinded_a)
    with pytest.raises(psi.ProtocolError, match="must be the message"):
        party_b.respond(reply)  # the wrong step
    with pytest.raises(psi.ProtocolError, match="group"):
        psi.PartyB([2], group="modp2048").respond(blinded_a)
    with pytest.raises(TypeError, match="blinded_a must be a psi.Message"):
        psi.PartyB([2]).respond(list(blinded_a.elements))
    with pytest.raises(psi.ProtocolError, match="one element per id"):
        party_a.intersect(psi.Message("reblinded_a", "B", "p256", reply.elements[:1]), blinded_b)
    not_on_curve = next(x for x in (bytes([i]) * 32 for i in range(1, 256))
                        if _not_on_p256(x))
    bad = psi.Message("blinded_a", "A", "p256", (not_on_curve,))
    with pytest.raises(psi.ProtocolError, match="not the x-coordinate"):
        psi.PartyB([2]).respond(bad)
    non_residue = next(n for n in range(2, 100) if psi._jacobi(n, psi.MODP2048_P) == -1)
    bad = psi.Message("blinded_a", "A", "modp2048", (non_residue.to_bytes(256, "big"),))
    with pytest.raises(psi.ProtocolError, match="quadratic residue"):
        psi.PartyB([2], group="modp2048").respond(bad)
    liar_a, honest_b = psi.PartyA([1, 2, 9], reveal_to_b=True), psi.PartyB([2, 3])
    liar_a.intersect(*honest_b.respond(liar_a.blind_ids()))
    lie = psi.Message("intersection", "A", "p256", (psi.encode_id(9),))
    with pytest.raises(psi.ProtocolError, match="does not hold"):
        honest_b.receive_intersection(lie)


def _not_on_p256(x: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x02" + x)
    except ValueError:
        return True
    return False


# --------------------------------------------------------------------------------------------
# A maintained library gives the same intersection
# --------------------------------------------------------------------------------------------


def test_openmined_psi_gives_the_same_intersection():
    """openmined-psi 2.0.4 (Apache-2.0; ECDH on P-256 in C++), raw mode: no Bloom filter, no
    false positives. Its items are strings; our ids go in as their decimal text."""
    library = pytest.importorskip("private_set_intersection.python",
                                  reason="openmined-psi==2.0.4 is a test-only cross-check")
    rng = np.random.default_rng(21)
    a = rng.choice(ID_SPACE, 500, replace=False)
    b = rng.choice(ID_SPACE, 600, replace=False)
    client = library.client.CreateWithNewKey(True)
    server = library.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.0, len(a), [str(x) for x in b],
                                      library.DataStructure.RAW)
    response = server.ProcessRequest(client.CreateRequest([str(x) for x in a]))
    theirs = np.sort(a[np.asarray(client.GetIntersection(setup, response), dtype=np.int64)])
    ours = psi.intersect(a, b).intersection
    np.testing.assert_array_equal(theirs, ours)
    assert client.GetIntersectionSize(setup, response) == len(ours)


# --------------------------------------------------------------------------------------------
# Bad inputs: every public function, every argument, each bad value -> a named error
# --------------------------------------------------------------------------------------------

_BAD_IDS = [None, "12", b"12", 5, np.int64(5), {"a": 1}, [1, 1], ["x", "x"], [1, "1"],
            [True, False], [1.0, 2.0], np.array([1.0]), np.array([True]), [-1], [2**63],
            np.array([[1, 2]]), [b"1"], [""], ["\ud800"], ["x" * 2000], [[1]], [None],
            np.array([2**64 - 1], dtype=np.uint64), np.array([-3]),
            range(psi.MAX_SET_SIZE + 1), np.array([1 + 2j])]
_BAD_GROUP = ["P256", "", "modp", None, 1, ["p256"]]
_BAD_FLAG = [1, 0, "yes", None, np.bool_(True)]
_MESSAGE = psi.Message("blinded_a", "A", "p256", ())

#: ``(function, valid keyword arguments, {argument: [bad values]})`` for every public
#: function and class of fl_helpers.psi; each bad value must raise ValueError or TypeError
#: whose message names the argument.
FUZZ = [
    (psi.intersect, {"ids_a": [1, 2], "ids_b": [2, 3]},
     {"ids_a": _BAD_IDS, "ids_b": _BAD_IDS, "group": _BAD_GROUP, "reveal_to_b": _BAD_FLAG}),
    (psi.PartyA, {"ids": [1, 2]},
     {"ids": _BAD_IDS, "group": _BAD_GROUP, "reveal_to_b": _BAD_FLAG}),
    (psi.PartyB, {"ids": [1, 2]}, {"ids": _BAD_IDS, "group": _BAD_GROUP}),
    (psi.encode_id, {"value": 7},
     {"value": [None, True, 1.0, b"1", -1, 2**63, "", "\ud800", "x" * 2000, [1], np.bool_(1),
                np.float32(1.0), 1 + 2j]}),
    (psi.unblinded_hashes_broken, {"ids": [1, 2]}, {"ids": _BAD_IDS, "group": _BAD_GROUP}),
    (psi.dictionary_attack, {"received": _MESSAGE, "candidate_ids": [1, 2]},
     {"received": [None, [b"x" * 32], "message", psi.Message("blinded_a", "A", "p384", ())],
      "candidate_ids": _BAD_IDS, "attacker": ["B", 1, psi.PartyB([1], group="modp2048")]}),
]
_BAD_BYTES_LIST = [None, b"ab", "ab", [1], ["ab"], [bytearray(b"ab")], np.array([1]),
                   range(psi.MAX_SET_SIZE + 1)]
for _group in psi.GROUPS.values():
    _element = _group.hash_to_group([psi.encode_id(1)])
    _secret = _group.new_secret()
    _other = psi.GROUPS["modp2048" if _group.name == "p256" else "p256"].new_secret()
    _bad_secret = [None, 5, b"\x01" * 32, _other]
    FUZZ += [
        (_group.hash_to_group, {"encodings": [psi.encode_id(1)]}, {"encodings": _BAD_BYTES_LIST}),
        (_group.blind, {"elements": _element, "secret": _secret},
         {"elements": _BAD_BYTES_LIST + [[b"\x02" * (_group.element_bytes + 1)], [b""]],
          "secret": _bad_secret}),
        (_group.hash_and_blind, {"encodings": [psi.encode_id(1)], "secret": _secret},
         {"encodings": _BAD_BYTES_LIST, "secret": _bad_secret}),
    ]


def _label(function) -> str:
    """``intersect``, ``PartyA``, or ``p256.blind`` for a group's method."""
    owner = getattr(function, "__self__", None)
    return f"{owner.name}.{function.__name__}" if owner is not None else function.__name__


def test_fuzz_covers_every_public_function_and_class():
    public = {name for name, obj in vars(psi).items()
              if callable(obj) and not name.startswith("_")
              and getattr(obj, "__module__", "") == psi.__name__
              and not (isinstance(obj, type) and issubclass(obj, BaseException))}
    not_entry_points = {"Group", "P256Group", "Modp2048Group", "Message", "PartyView",
                        "PSIResult"}  # made by the module, or plain records
    methods = {f"{name}.{method}" for name in psi.GROUPS
               for method in ("hash_to_group", "blind", "hash_and_blind")}
    assert (public - not_entry_points) | methods == {_label(f) for f, _, _ in FUZZ}


