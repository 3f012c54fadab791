"""Bonawitz et al.'s secure aggregation protocol (fl_helpers.secagg_protocol): the masked sum is the
plain sum, the server stores only masked vectors, double masking, bad arguments, message sizes.

Statistical tests either use a fixed seed or, where the randomness is secret by design (the
masks), a p-value threshold of 1e-6 so that they flake less than once in a million runs, together
with a check that the same test rejects unmasked data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fl_helpers import secagg_crypto as crypto
from fl_helpers import secagg_protocol as protocol


def test_masked_sum_equals_plain_sum_on_1000_random_trials_with_dropouts():
    rng = np.random.default_rng(0)
    with_drops = 0
    for _ in range(1000):
        n = int(rng.integers(3, 7))
        t = math.ceil(2 * n / 3)
        d = int(rng.integers(1, 9))
        bits = int(rng.integers(12, 40))
        limit = 2**(bits - 2) // n
        inputs = [rng.integers(-limit, limit, d) for _ in range(n)]
        num_dropped = int(rng.integers(0, n - t + 1))  # up to the threshold
        dropped = rng.choice(n, size=num_dropped, replace=False)
        early = [int(k) for k in dropped if rng.random() < 0.5]
        late = [int(k) for k in dropped if k not in early]
        with_drops += bool(num_dropped)
        result = protocol.secure_sum(inputs, modulus_bits=bits, threshold=t,
                               dropped_before_masking=early, dropped_before_unmasking=late)
        expected = sum(inputs[k] for k in range(n) if k not in early)
        np.testing.assert_array_equal(result.total, expected)
        assert result.included == [k for k in range(n) if k not in early]
    assert with_drops > 400  # the trials really exercised dropouts


def test_reconstruction_below_threshold_fails_with_a_clear_error():
    inputs = [np.arange(5) + k for k in range(6)]
    with pytest.raises(ValueError, match="threshold=4 .*got 3.*dropped"):
        protocol.secure_sum(inputs, modulus_bits=16, threshold=4, dropped_before_masking=[0, 1],
                      dropped_before_unmasking=[2])


def _arrays_in(obj, seen=None):
    """Every numpy array reachable from ``obj``'s attributes, dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        items = list(obj)
    elif hasattr(obj, "__dict__"):
        items = list(vars(obj).values())
    else:
        return []
    return [a for item in items for a in _arrays_in(item, seen)]


def test_the_server_stores_only_masked_vectors():
    # Only what the server *stores*: no array it holds equals an input. That alone says nothing
    # about what it can *compute* from its view (without self masks it holds only masked
    # vectors and still recovers a late input exactly): tests/test_secure_aggregation_attacks.py
    # attacks the whole view.
    rng = np.random.default_rng(2)
    inputs = [rng.integers(-100, 100, 64) for _ in range(8)]
    result = protocol.secure_sum(inputs, modulus_bits=20, dropped_before_masking=[3],
                           dropped_before_unmasking=[5])
    held = _arrays_in(result.server)
    assert len(held) == 7  # the seven masked vectors that arrived
    for array in held:
        for x in inputs:
            assert not np.array_equal(array, crypto.to_modular(x, 20))
            # not even close: a masked vector agrees with the input in about 64 / 2^20 entries
            assert np.mean(array == crypto.to_modular(x, 20)) < 0.05
    np.testing.assert_array_equal(result.total, sum(x for k, x in enumerate(inputs) if k != 3))


def test_masked_vectors_look_uniform_and_the_test_has_power():
    bits = 8
    inputs = [np.full(4096, 7, dtype=np.int64) for _ in range(5)]  # the same, very non-uniform
    result = protocol.secure_sum(inputs, modulus_bits=bits)
    for masked in result.server.masked_inputs.values():
        counts = np.bincount(masked.astype(np.int64), minlength=2**bits)
        assert stats.chisquare(counts).pvalue > 1e-6
    plain = np.bincount(crypto.to_modular(inputs[0], bits).astype(np.int64), minlength=2**bits)
    assert stats.chisquare(plain).pvalue < 1e-100  # the same test rejects what is not masked


def test_without_self_masks_a_late_input_is_exposed_and_double_masking_stops_it():
    rng = np.random.default_rng(3)
    inputs = {u: rng.integers(-50, 50, 16) for u in (1, 2, 3, 4)}

    def setup(double):
        clients = {u: protocol.SecAggClient(u, threshold=3, modulus_bits=16, double_masking=double)
                   for u in inputs}
        server = protocol.SecAggServer(threshold=3, modulus_bits=16, size=16, double_masking=double)
        for u, c in clients.items():
            server.receive_keys(u, c.advertise_keys())
        inboxes = server.route({u: c.share_keys(server.public_keys)
                                for u, c in clients.items()})
        return clients, server, inboxes

    # Single masking: the server says client 4 dropped, gets the shares of its mask key, then
    # client 4's masked input arrives late: removing the pairwise masks gives x_4.
    clients, server, inboxes = setup(double=False)
    late = clients[4].masked_input(inputs[4], inboxes[4])
    for u in (1, 2, 3):
        clients[u].masked_input(inputs[u], inboxes[u])
    shares = [(u, clients[u].reveal_shares([1, 2, 3], [4])[4][1]) for u in (1, 2, 3)]
    seed = crypto.shamir_reconstruct(shares, threshold=3).to_bytes(crypto.SEED_BYTES, "big")
    others = {u: server.public_keys[u][1] for u in inputs}
    exposed = (late - crypto.pairwise_mask_sum(seed, 4, others, 16, 16, b"")) & np.uint64(2**16 - 1)
    np.testing.assert_array_equal(crypto.from_modular(exposed, 16), inputs[4])

    # Double masking: the late input also carries a self mask, whose shares are only given out
    # for clients counted as included; asking for both refuses.
    clients, server, inboxes = setup(double=True)
    for u in (1, 2, 3):
        clients[u].masked_input(inputs[u], inboxes[u])
    with pytest.raises(ValueError, match="refuses to unmask: clients \\[4\\]"):
        clients[1].reveal_shares([1, 2, 3, 4], [4])


def test_threshold_above_n_is_rejected():
    with pytest.raises(ValueError, match="threshold must be <= the number of clients \\(3\\), "
                                         "got 4"):
        protocol.secure_sum([np.zeros(2, dtype=np.int64)] * 3, modulus_bits=8, threshold=4)


def test_modulus_too_small_for_the_sum_is_rejected():
    inputs = [np.full(3, 100, dtype=np.int64) for _ in range(4)]  # |sum| up to 400 > 2^7
    with pytest.raises(ValueError, match="modulus_bits=8 is too small for the sum.*400.*>= 10"):
        protocol.secure_sum(inputs, modulus_bits=8)
    assert np.array_equal(protocol.secure_sum(inputs, modulus_bits=10).total, np.full(3, 400))


@pytest.mark.parametrize("bad, error, match", [
    ([np.array([0.5, 1.0])] * 3, TypeError, "inputs\\[0\\] must hold integers, got dtype float64"),
    ([np.array([True, False])] * 3, TypeError, "must hold integers, got dtype bool"),
    (np.zeros((3, 2), dtype=np.int64), TypeError, "non-empty list"),
    ([], TypeError, "non-empty list"),
    ([np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64)], ValueError, "shape"),
])
def test_non_integer_or_malformed_inputs_are_rejected(bad, error, match):
    with pytest.raises(error, match=match):
        protocol.secure_sum(bad, modulus_bits=16)


@pytest.mark.parametrize("bits, error", [(0, ValueError), (63, ValueError), (8.0, TypeError),
                                         (True, TypeError)])
def test_bad_modulus_bits(bits, error):
    with pytest.raises(error, match="modulus_bits"):
        protocol.secure_sum([np.zeros(2, dtype=np.int64)] * 3, modulus_bits=bits)


def test_bad_dropout_ids_are_rejected():
    with pytest.raises(ValueError, match="dropped_before_masking must hold ids in 0..2"):
        protocol.secure_sum([np.zeros(2, dtype=np.int64)] * 3, modulus_bits=8,
                      dropped_before_masking=[3])


def test_expansion_factors_reproduce_bonawitz_et_al():
    assert protocol.expansion_factor(num_clients=2**10, dimension=2**20, value_bits=16) == \
        pytest.approx(1.73, abs=0.005)
    assert protocol.expansion_factor(num_clients=2**14, dimension=2**24, value_bits=16) == \
        pytest.approx(1.98, abs=0.005)


def test_bytes_sent_match_the_message_sizes():
    n, d, bits = 5, 100, 16
    result = protocol.secure_sum([np.zeros(d, dtype=np.int64)] * n, modulus_bits=bits)
    expected = (2 * crypto.PUBLIC_KEY_BYTES + (n - 1) * crypto.ENCRYPTED_SHARE_BYTES
                + d * bits // 8 + n * crypto.SHARE_BYTES)
    assert set(result.bytes_sent.values()) == {expected}
