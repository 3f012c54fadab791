"""Tests of secure aggregation (fl_helpers.secagg_crypto, secagg_protocol, distributed_dp):
exact masked sums, dropouts, what the server holds, the exact discrete Gaussian, the accounting,
and the aggregation rule in the training loop.

Statistical tests either use a fixed seed (the PRG, the reproducible noise source) or, where the
randomness is secret by design (the masks), a p-value threshold of 1e-6 so that they flake less
than once in a million runs, together with a check that the same test rejects unmasked data.
"""

from __future__ import annotations

import inspect
import math

import dp_accounting
import guards
import numpy as np
import pytest
from scipy import stats

from fl_helpers import _validation as v
from fl_helpers import accounting, aggregation, schedule
from fl_helpers import discrete_noise as dn
from fl_helpers import distributed_dp as ddp
from fl_helpers import secagg_crypto as crypto
from fl_helpers import secagg_protocol as protocol


def _reproducible(seed: int) -> schedule.PrivateRandomness:
    with pytest.warns(UserWarning, match="not private|no privacy"):
        return schedule.PrivateRandomness.reproducible(seed)


# --------------------------------------------------------------------------------------------
# The masked sum is the plain sum, exactly
# --------------------------------------------------------------------------------------------


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


def test_shamir_any_t_shares_reconstruct_and_t_minus_1_refuse():
    rng = np.random.default_rng(1)
    secret = 2**128 + 12345
    shares = crypto.shamir_share(secret, num_shares=7, threshold=4)
    for _ in range(20):
        subset = [shares[i] for i in rng.choice(7, size=4, replace=False)]
        assert crypto.shamir_reconstruct(subset, threshold=4) == secret
    with pytest.raises(ValueError, match="at least threshold=4 shares, got 3"):
        crypto.shamir_reconstruct(shares[:3], threshold=4)
    # Interpolating 3 shares as if t were 3 gives a wrong secret, not the real one.
    assert crypto.shamir_reconstruct(shares[:3], threshold=3) != secret


# --------------------------------------------------------------------------------------------
# What the server sees
# --------------------------------------------------------------------------------------------


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


def test_prg_masks_are_uniform_for_a_fixed_seed():
    mask = crypto.prg_mask(bytes(range(16)), 200_000, modulus_bits=10)
    assert mask.max() < 2**10
    assert stats.chisquare(np.bincount(mask.astype(np.int64), minlength=2**10)).pvalue > 0.001
    np.testing.assert_array_equal(mask, crypto.prg_mask(bytes(range(16)), 200_000, modulus_bits=10))


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


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Quantisation and the exact discrete Gaussian
# --------------------------------------------------------------------------------------------


def test_stochastic_rounding_is_unbiased_and_within_the_norm_bound():
    source = _reproducible(4)
    x = np.array([0.3, -0.25, 0.1, 0.0])  # norm < C = 1
    rounded = np.array([ddp.quantize(x, clipping_norm=1.0, scale=10.0, randomness=source)
                        for _ in range(20_000)])
    # standard error of each mean <= 0.5 / sqrt(20000) = 0.0035; tolerance 0.02 is ~6 of them
    np.testing.assert_allclose(rounded.mean(axis=0), 10 * x, atol=0.02)
    bound = ddp.quantized_norm_bound(clipping_norm=1.0, scale=10.0, dimension=4)
    assert np.linalg.norm(rounded, axis=1).max() <= bound
    big = ddp.quantize(np.array([30.0, 40.0]), clipping_norm=1.0, scale=10.0, randomness=source)
    assert np.linalg.norm(big) <= 10 + math.sqrt(2)  # clipped to 1 first


@pytest.mark.parametrize("variance", [1, 4, 1000])
def test_discrete_gaussian_matches_its_pmf(variance):
    draws = dn.discrete_gaussian(variance, 100_000, randomness=_reproducible(5))
    span = int(4 * math.sqrt(variance))
    values = np.arange(-span, span + 1)
    pmf = dn.discrete_gaussian_pmf(values, variance)
    counts = np.array([np.sum(draws == k) for k in values])
    inside = counts.sum()
    expected = pmf / pmf.sum() * inside
    keep = expected > 5
    assert stats.chisquare(counts[keep], expected[keep] * counts[keep].sum()
                           / expected[keep].sum()).pvalue > 0.001
    # The discrete Gaussian's variance is close to sigma^2 (within 1e-3 relative for sigma >= 1).
    assert np.var(draws) == pytest.approx(variance, rel=0.02)
    assert abs(np.mean(draws)) < 5 * math.sqrt(variance / 100_000)


def test_discrete_gaussian_rejects_a_wrong_variance_or_source():
    with pytest.raises(TypeError, match="variance must be an integer"):
        dn.discrete_gaussian(2.5, 3, randomness=_reproducible(0))
    with pytest.raises(ValueError, match="variance must be >= 1"):
        dn.discrete_gaussian(0, 3, randomness=_reproducible(0))
    with pytest.raises(TypeError, match="randomness must be a PrivateRandomness"):
        dn.discrete_gaussian(4, 3, randomness=np.random.default_rng(0))


def test_secret_noise_is_not_reproducible():
    a = dn.discrete_gaussian(100, 50, randomness=schedule.PrivateRandomness.secret())
    b = dn.discrete_gaussian(100, 50, randomness=schedule.PrivateRandomness.secret())
    assert not np.array_equal(a, b)


# --------------------------------------------------------------------------------------------
# Accounting
# --------------------------------------------------------------------------------------------


def test_ddg_rho_is_the_discrete_gaussian_closed_form_for_large_noise():
    # tau underflows for sigma^2 = 100 per client: rho = Delta^2 / (2 n sigma^2).
    rho = accounting.ddg_rho(sensitivity=50.0, client_variance=100.0, num_clients=20,
                             dimension=1000)
    assert rho == pytest.approx(50.0**2 / (2 * 20 * 100.0), rel=1e-12)
    # tiny noise per client: tau is large and the bound much worse than the closed form
    loose = accounting.ddg_rho(sensitivity=1.0, client_variance=0.25, num_clients=20,
                               dimension=1000)
    assert loose > 10 * 1.0 / (2 * 20 * 0.25)
    with pytest.raises(ValueError, match="client_variance must be >= 1/4"):
        accounting.ddg_rho(sensitivity=1.0, client_variance=0.2, num_clients=2, dimension=1)


def test_poisson_subsampled_bound_is_above_the_tight_gaussian_accounting():
    # Zhu & Wang's general bound applied to a Gaussian (rho = 1 / (2 z^2)) can only be looser
    # than dp-accounting's tight subsampled-Gaussian RDP, and should not be much looser.
    z, q, rounds = 1.0, 0.1, 30
    ours = accounting.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5,
                          sampling_probability=q)
    orders = [float(a) for a in accounting.DDG_RDP_ORDERS]
    accountant = dp_accounting.rdp.RdpAccountant(orders=orders)
    accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)),
                       rounds)
    tight = accountant.get_epsilon(1e-5)
    assert tight * (1 - 1e-9) <= ours <= 1.5 * tight


def test_ddg_epsilon_matches_dp_accounting_for_an_unsampled_gaussian():
    # q = 1: T rounds of rho-CDP with rho = 1 / (2 z^2) is the Gaussian mechanism's RDP.
    z, rounds = 2.0, 10
    ours = accounting.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5)
    orders = [float(a) for a in accounting.DDG_RDP_ORDERS]
    accountant = dp_accounting.rdp.RdpAccountant(orders=orders)
    accountant.compose(dp_accounting.GaussianDpEvent(z), rounds)
    assert ours == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    sampled = accounting.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5,
                             sampling_probability=0.1)
    assert sampled < ours


# --------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The aggregation rule
# --------------------------------------------------------------------------------------------


def test_rule_without_noise_matches_dp_fedavg_without_noise():
    rng = np.random.default_rng(6)
    deltas = [[rng.normal(0, 0.1, (5, 3)).astype(np.float32), rng.normal(0, 0.1, 3)
               .astype(np.float32)] for _ in range(6)]
    context = aggregation.RoundContext(round_index=0, num_clients=60)
    plain = aggregation.DPFedAvg(clipping_norm=0.3, noise_multiplier=0.0,
                                 expected_clients=6.0).aggregate(deltas, np.ones(6), context)
    rule = ddp.DistributedDPSecAgg(clipping_norm=0.3, expected_clients=6.0,
                                  randomness=_reproducible(7))
    secure = rule.aggregate(deltas, np.ones(6), context)
    # quantisation error: at most 1 / s per client, divided by 6 clients... times 6 clients
    for a, b in zip(secure, plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1.0 / rule.scale)
        assert a.shape == b.shape and a.dtype == np.float32


def test_rule_noise_has_the_planned_variance():
    deltas = [[np.zeros(4000, dtype=np.float32)] for _ in range(10)]
    rule = ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=10.0, scale=100.0,
                                  noise_multiplier=0.5, randomness=_reproducible(8))
    update = rule.aggregate(deltas, np.ones(10),
                            aggregation.RoundContext(round_index=0, num_clients=100))[0]
    sigma = 0.5 * rule.sensitivity(4000)  # on the integer sum
    per_client = rule.client_variance(4000, 10)
    assert per_client == math.ceil(sigma**2 / 10)
    expected_std = math.sqrt(10 * per_client) / (100.0 * 10.0)
    assert np.std(update) == pytest.approx(expected_std, rel=0.05)


def test_rule_checks_its_arguments():
    with pytest.raises(ValueError, match="clipping_norm must be > 0"):
        ddp.DistributedDPSecAgg(clipping_norm=0.0, expected_clients=1.0)
    with pytest.raises(TypeError, match="randomness must be a PrivateRandomness"):
        ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0, randomness=1)
    rule = ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0, modulus_bits=8)
    with pytest.raises(ValueError, match="modulus_bits=8 is too small for the sum of 3"):
        rule.aggregate([[np.ones(3, dtype=np.float32)]] * 3, np.ones(3),
                       aggregation.RoundContext(round_index=0, num_clients=3))
    # Secret by default: two rules made alike release different noise.
    context = aggregation.RoundContext(round_index=0, num_clients=3)
    a, b = (ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0,
                                    noise_multiplier=1.0).aggregate_empty([(20,)], context)
            for _ in range(2))
    assert not np.array_equal(a[0], b[0])


def test_rule_plugs_into_run_fedavg():
    from fl_helpers import models, training

    rng = np.random.default_rng(9)
    clients = [(rng.random((12, 28, 28), dtype=np.float32), rng.integers(0, 10, 12))
               for _ in range(4)]
    common = dict(num_rounds=2, clients_per_round=3, local_epochs=1, batch_size=6,
                  client_learning_rate=0.1, progress=False)
    plain = training.run_fedavg(models.make_softmax_regression, clients, **common,
                                aggregation_rule=aggregation.DPFedAvg(
                                    clipping_norm=0.5, noise_multiplier=0.0,
                                    expected_clients=3.0))
    rule = ddp.DistributedDPSecAgg(clipping_norm=0.5, expected_clients=3.0,
                                  randomness=_reproducible(10))
    secure = training.run_fedavg(models.make_softmax_regression, clients, **common,
                                 aggregation_rule=rule)
    assert secure.aggregation == "SecAgg + distributed DP" and rule.rounds_aggregated == 2
    for a, b in zip(secure.final_weights, plain.final_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Size arguments that used to hang, integers beyond 2^53, and every public entry point's
# bad-input behaviour (the pattern of tests/test_bad_inputs.py, for this module)
# --------------------------------------------------------------------------------------------

_run_with_timeout = guards.run_with_timeout


_PUBLIC_KEY = protocol.SecAggClient(2, threshold=2, modulus_bits=8).advertise_keys()[1]

#: The calls that computed 2**modulus_bits before checking it (2**(2**64) never finishes).
HUGE_BITS_CALLS = {
    "to_modular": lambda b: crypto.to_modular(np.arange(3), b),
    "from_modular": lambda b: crypto.from_modular(np.arange(3, dtype=np.uint64), b),
    "pairwise_mask_sum": lambda b: crypto.pairwise_mask_sum(bytes(16), 1, {2: _PUBLIC_KEY}, 3, b,
                                                        b""),
    "SecAggClient": lambda b: protocol.SecAggClient(1, threshold=2, modulus_bits=b),
    "SecAggServer": lambda b: protocol.SecAggServer(threshold=2, modulus_bits=b, size=3),
    "prg_mask": lambda b: crypto.prg_mask(bytes(16), 3, modulus_bits=b),
    "secure_sum": lambda b: protocol.secure_sum([np.arange(3)] * 3, modulus_bits=b),
    "DistributedDPSecAgg": lambda b: ddp.DistributedDPSecAgg(clipping_norm=1.0,
                                                            expected_clients=1.0,
                                                            modulus_bits=b),
}


@pytest.mark.parametrize("bits", [2**64, 10**400], ids=["2**64", "10**400"])
@pytest.mark.parametrize("name", sorted(HUGE_BITS_CALLS))
def test_huge_modulus_bits_raise_instead_of_hanging(name, bits):
    status, error = _run_with_timeout(lambda: HUGE_BITS_CALLS[name](bits))
    assert status == "raised", f"{name}(modulus_bits={v._fmt(bits)}) {status}"
    assert isinstance(error, ValueError)
    assert "modulus_bits must be <= 62" in str(error)


def test_integers_beyond_2_53_are_refused_where_they_would_pass_through_float64():
    # float64 rounds 2^53 + 1 to 2^53: the value the mechanism would see is not the input.
    assert float(2**53 + 1) == float(2**53)
    source = _reproducible(11)
    exact = np.array([2**53, -3, 0])
    np.testing.assert_array_equal(  # up to 2^53 integers are converted exactly
        ddp.quantize(exact, clipping_norm=1.0, scale=1.0, randomness=source),
        ddp.quantize(exact.astype(np.float64), clipping_norm=1.0, scale=1.0,
                    randomness=_reproducible(11)))
    for big in (2**53 + 1, -(2**60)):
        with pytest.raises(ValueError, match="update must hold integers of magnitude <= 2\\*\\*53"):
            ddp.quantize(np.array([big, 0]), clipping_norm=1.0, scale=1.0, randomness=source)
        with pytest.raises(ValueError, match="values must have magnitude <= 2\\*\\*53"):
            dn.discrete_gaussian_pmf(np.array([big]), 4.0)
    # The discrete Gaussian takes an exact integer variance, bounded far below 2^53 (any
    # integer up to 5e7, t (t - 1) up to 1e15) ...
    with pytest.raises(ValueError, match="variance must be <= 1000000000000000"):
        dn.discrete_gaussian(2**53 + 1, 3, randomness=source)
    with pytest.raises(ValueError, match="or of the form t \\(t - 1\\)"):
        dn.discrete_gaussian(dn.MAX_VARIANCE + 1, 3, randomness=source)
    with pytest.raises(TypeError, match="variance must be an integer"):
        dn.discrete_gaussian(float(2**53), 3, randomness=source)
    # ... and quantisation refuses a scale whose products float64 could not round exactly (or
    # that would overflow int64: 1e30 once became -2^63).
    with pytest.raises(ValueError, match="scale \\* clipping_norm must be <= 2\\*\\*53"):
        ddp.quantize(np.array([0.5]), clipping_norm=1.0, scale=1e30, randomness=source)
    with pytest.raises(ValueError, match="scale \\* clipping_norm must be <= 2\\*\\*53"):
        ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0, scale=2.0**60)


def test_a_round_with_fewer_than_two_clients_carries_the_whole_noise():
    """Attack: an observer who saw a round abort (or release exactly zero) would learn that the
    secret sample held at most one client. Such rounds are released with the whole noise, one
    or zero clients alike, and their noise has the variance of a full round's."""
    d = 4000
    rule = ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=10.0, scale=100.0,
                                  noise_multiplier=0.5, randomness=_reproducible(9))
    context = aggregation.RoundContext(round_index=0, num_clients=100)
    full = 0.5 * rule.sensitivity(d)  # sigma on the integer sum
    lone = rule.aggregate([[np.zeros(d, dtype=np.float32)]], np.ones(1), context)[0]
    empty = rule.aggregate_empty([(d,)], context)[0]
    for released in (lone, empty):
        assert released.shape == (d,) and released.dtype == np.float32
        assert np.std(released) * 100.0 * 10.0 == pytest.approx(full, rel=0.05)
    with pytest.raises(ValueError, match="an empty round goes to aggregate_empty"):
        rule.aggregate([], np.ones(0), context)


def test_a_round_needs_a_majority_threshold():
    rule = ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0)
    with pytest.raises(ValueError, match="threshold_fraction must be > 1/2, got 0.5"):
        ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0, threshold_fraction=0.5)
    with pytest.raises(ValueError, match="deltas must be finite"):
        rule.aggregate([[np.array([np.nan], dtype=np.float32)]] * 2, np.ones(2),
                       aggregation.RoundContext(round_index=0, num_clients=3))
    # the smallest legal rounds still give the exact sum
    for n in (2, 3, 4, 5):
        inputs = [np.arange(4) + k for k in range(n)]
        t = n // 2 + 1
        total = protocol.secure_sum(inputs, modulus_bits=16, threshold=t).total
        np.testing.assert_array_equal(total, sum(inputs))


# Bad values by kind (see tests/test_bad_inputs.py for the families' rationale).
_NUMBERS = ["1", None, True, 1 + 0j, [1], np.array([1.0, 2.0]), object()]
COUNT = [*_NUMBERS, 2.0, 1.5, 2**64, 10**400, -1, 0, math.nan]
INDEX = [*_NUMBERS, 2.0, 2**64, 10**400, -1, math.nan]
POSITIVE = [*_NUMBERS, math.nan, math.inf, -math.inf, 10**400, -1.0, 0.0, 5e-324]
PROBABILITY = [*POSITIVE[:-1], 1.5]  # (0, 1]; a subnormal probability is merely tiny
UNIT = [*PROBABILITY, 1.0]  # (0, 1)
FLAG = [1, 0, "yes", None, np.array([True])]
BYTES = ["abc", 3, None, bytearray(16), [1, 2]]
INT_ARRAY = [None, "abc", 5, np.array([0.5, 1.0]), np.array([True, False]),
             np.zeros((2, 2), dtype=np.int64), np.array([object()], dtype=object),
             [[1], [1, 2]]]
FLOAT_ARRAY = [None, "abc", 5, np.array([1.0, np.nan]), np.array([np.inf]),
               np.zeros((2, 2)), np.array([object()], dtype=object), np.array([1 + 1j]),
               np.array([2**60])]
SOURCE = [None, 0, np.random.default_rng(0), "secret"]
DICT = [None, [1, 2], "abc", {0: b""}, {2**20: b""}, {"1": b""}, {1.0: b""}]


def _setup_round(step):
    """A 3-client round (t = 2) advanced to ``step``; returns (clients, server, inboxes)."""
    clients = {u: protocol.SecAggClient(u, threshold=2, modulus_bits=8) for u in (1, 2, 3)}
    server = protocol.SecAggServer(threshold=2, modulus_bits=8, size=3)
    for u, c in clients.items():
        server.receive_keys(u, c.advertise_keys())
    if step == "keys":
        return clients, server, None
    inboxes = server.route({u: c.share_keys(server.public_keys) for u, c in clients.items()})
    if step == "shared":
        return clients, server, inboxes
    for u, c in clients.items():
        server.receive_masked(u, c.masked_input(np.arange(3), inboxes[u]))
    return clients, server, inboxes


def _client(step):
    return _setup_round(step)[0][1]


def _server(step):
    return _setup_round(step)[1]


def _shares():
    return crypto.shamir_share(12345, num_shares=3, threshold=2)[:2]


_LATEST: dict = {}


def _valid_public_keys():
    """A round's public keys; its client 1 (not yet sharing) is kept for the call."""
    clients, server, _ = _setup_round("keys")
    _LATEST["client"] = clients[1]
    return server.public_keys


def _responses():
    clients, server, _ = _setup_round("masked")
    return {u: c.reveal_shares([1, 2, 3], []) for u, c in clients.items()}


#: (label, function(**kwargs), valid kwargs factory, {argument: bad values}).
ENTRIES = [
    ("prg_mask", crypto.prg_mask, lambda: dict(seed=bytes(16), size=3, modulus_bits=8),
     {"seed": [*BYTES, bytes(15)], "size": [*INDEX, dn.MAX_SIZE + 1],
      "modulus_bits": [*COUNT, 63]}),
    ("discrete_gaussian", dn.discrete_gaussian,
     lambda: dict(variance=4, size=3, randomness=schedule.PrivateRandomness.secret()),
     {"variance": [*COUNT, dn.MAX_VARIANCE + 1], "size": [*INDEX, dn.MAX_SIZE + 1],
      "randomness": SOURCE}),
    ("discrete_gaussian_pmf", dn.discrete_gaussian_pmf,
     lambda: dict(values=np.arange(-2, 3), variance=4.0),
     {"values": [None, "abc", np.array([0.5]), np.array([np.nan]), np.array([True]),
                 np.array([2**53 + 1]), np.array([object()], dtype=object)],
      "variance": [*POSITIVE, 1e12]}),
    ("check_modulus_bits", crypto.check_modulus_bits, lambda: dict(modulus_bits=8),
     {"modulus_bits": [*COUNT, 63]}),
    ("quantize", ddp.quantize,
     lambda: dict(update=np.array([0.1, -0.2]), clipping_norm=1.0, scale=10.0,
                  randomness=schedule.PrivateRandomness.secret()),
     {"update": FLOAT_ARRAY, "clipping_norm": POSITIVE, "scale": [*POSITIVE, 1e300],
      "randomness": SOURCE}),
    ("quantized_norm_bound", ddp.quantized_norm_bound,
     lambda: dict(clipping_norm=1.0, scale=10.0, dimension=4),
     {"clipping_norm": POSITIVE, "scale": POSITIVE, "dimension": [*COUNT, dn.MAX_SIZE + 1]}),
    ("to_modular", crypto.to_modular, lambda: dict(values=np.arange(3), modulus_bits=8),
     {"values": INT_ARRAY, "modulus_bits": [*COUNT, 63]}),
    ("from_modular", crypto.from_modular,
     lambda: dict(residues=np.arange(3, dtype=np.uint64), modulus_bits=8),
     {"residues": [*INT_ARRAY, np.array([256]), np.array([-1])],
      "modulus_bits": [*COUNT, 63]}),
    ("shamir_share", crypto.shamir_share, lambda: dict(secret=5, num_shares=3, threshold=2),
     {"secret": [*(x for x in INDEX if not (type(x) is int and x == 2**64)), crypto.FIELD_PRIME],
      "num_shares": [*COUNT, 1, crypto.MAX_CLIENTS + 1],
      "threshold": [*COUNT, 1, 4]}),
    ("shamir_reconstruct", crypto.shamir_reconstruct, lambda: dict(shares=_shares(), threshold=2),
     {"shares": [None, "ab", 5, np.zeros((2, 2)), [(0, 1), (1, 2)], [(1.5, 2), (2, 3)],
                 [(1, -1), (2, 3)], [(1,), (2, 3)], [(1, 2), (1, 3)]],
      "threshold": [*COUNT, 1, crypto.MAX_CLIENTS + 1]}),
    ("check_threshold", protocol.check_threshold, lambda: dict(threshold=2, num_clients=3),
     {"threshold": [*COUNT, 1, 4], "num_clients": [*COUNT, 1, crypto.MAX_CLIENTS + 1]}),
    ("pairwise_mask_sum", crypto.pairwise_mask_sum,
     lambda: dict(mask_key_seed=bytes(16), me=1, public_keys={2: _PUBLIC_KEY}, size=3,
                  modulus_bits=8, round_tag=b""),
     {"mask_key_seed": BYTES, "me": [*COUNT, crypto.MAX_CLIENTS + 1],
      "public_keys": [*DICT, {2: b"short"}, {2: "key"}], "size": [*INDEX, dn.MAX_SIZE + 1],
      "modulus_bits": [*COUNT, 63], "round_tag": ["r", 1, None, bytes(2000)]}),
    ("SecAggClient", protocol.SecAggClient,
     lambda: dict(client_id=1, threshold=2, modulus_bits=8, round_tag=b"", double_masking=True),
     {"client_id": [*COUNT, crypto.MAX_CLIENTS + 1], "threshold": [*COUNT, 1],
      "modulus_bits": [*COUNT, 63], "round_tag": ["r", 1, None],
      "double_masking": FLAG}),
    ("SecAggClient.share_keys", lambda public_keys: _LATEST["client"].share_keys(public_keys),
     lambda: dict(public_keys=_valid_public_keys()),
     {"public_keys": [*DICT, {1: (b"x", b"y")}, {1: b"k" * 32}]}),
    ("SecAggClient.masked_input",
     lambda values, inbox: _client("shared").masked_input(values, inbox),
     lambda: dict(values=np.arange(3), inbox={}),
     {"values": [*INT_ARRAY, np.array([128])], "inbox": [*DICT, {2: "text"}]}),
    ("SecAggClient.reveal_shares",
     lambda included, dropped: _client("masked").reveal_shares(included, dropped),
     lambda: dict(included=[1, 2, 3], dropped=[]),
     {"included": [None, "abc", 5, [1.5], [0], [1, 1, 2], [True, 2], [2**20]],
      "dropped": [None, "abc", 5, [1.5], [0], [2**20]]}),
    ("SecAggServer", protocol.SecAggServer,
     lambda: dict(threshold=2, modulus_bits=8, size=3, round_tag=b"", double_masking=True),
     {"threshold": [*COUNT, 1], "modulus_bits": [*COUNT, 63],
      "size": [*INDEX, dn.MAX_SIZE + 1], "round_tag": ["r", 1, None],
      "double_masking": FLAG}),
    ("SecAggServer.receive_keys",
     lambda client_id, keys: protocol.SecAggServer(threshold=2, modulus_bits=8, size=3)
     .receive_keys(client_id, keys),
     lambda: dict(client_id=1, keys=(_PUBLIC_KEY, _PUBLIC_KEY)),
     {"client_id": [*COUNT, crypto.MAX_CLIENTS + 1],
      "keys": [None, b"k" * 32, (b"k", b"k"), ("a" * 32, "b" * 32), (_PUBLIC_KEY,)]}),
    ("SecAggServer.route", lambda outboxes: _server("keys").route(outboxes),
     lambda: dict(outboxes={}),
     {"outboxes": [*DICT, {1: {2: "text"}}, {1: [b"x"]}, {9: {}}]}),
    ("SecAggServer.receive_masked",
     lambda client_id, masked: _server("shared").receive_masked(client_id, masked),
     lambda: dict(client_id=1, masked=np.arange(3, dtype=np.uint64)),
     {"client_id": [*COUNT, crypto.MAX_CLIENTS + 1, 9],
      "masked": [*INT_ARRAY, np.arange(4), np.array([256, 0, 0]), np.array([-1, 0, 0])]}),
    ("SecAggServer.unmask", lambda responses: _server("masked").unmask(responses),
     lambda: dict(responses=_responses()),
     {"responses": [*DICT, {1: {2: ("both", 5)}, 2: {}}, {1: {2: ("self", -1)}, 2: {}},
                    {1: [], 2: {}}]}),  # (too few responses: a test above)
    ("secure_sum", protocol.secure_sum,
     lambda: dict(inputs=[np.arange(3)] * 3, modulus_bits=8, threshold=2,
                  dropped_before_masking=[], dropped_before_unmasking=[], round_tag=b"",
                  double_masking=True),
     {"inputs": [None, "abc", [np.arange(3)], [np.arange(3.0)] * 3, [np.array([2**62])] * 3,
                 [[1, 2], [1]], [np.arange(3)] * (crypto.MAX_CLIENTS + 1)],
      "modulus_bits": [*COUNT, 63],
      "threshold": [*(x for x in COUNT if x is not None), 1, 4],
      "dropped_before_masking": [None, "abc", [3], [-1], [1.5]],
      "dropped_before_unmasking": [None, "abc", [3], [-1], [1.5]],
      "round_tag": ["r", 1, None, bytes(2000)], "double_masking": FLAG}),
    ("ddg_rho", accounting.ddg_rho,
     lambda: dict(sensitivity=1.0, client_variance=1.0, num_clients=3, dimension=4),
     {"sensitivity": POSITIVE, "client_variance": [*POSITIVE, 0.2],
      "num_clients": [*COUNT, accounting.MAX_ACCOUNTED_CLIENTS + 1], "dimension": COUNT}),
    ("ddg_tau", accounting.ddg_tau, lambda: dict(client_variance=1.0, num_clients=3),
     {"client_variance": POSITIVE, "num_clients": [*COUNT, accounting.MAX_ACCOUNTED_CLIENTS + 1]}),
    ("poisson_subsampled_rdp", accounting.poisson_subsampled_rdp,
     lambda: dict(rdp=np.array([0.1, 0.2]), orders=[2, 3], sampling_probability=0.1),
     {"rdp": [None, "abc", np.array([0.1]), np.array([np.nan, 0.1]), np.array([-1.0, 0.1])],
      "orders": [None, "ab", 5, [3, 4], [2, 4], [], [2.0, 3.0], list(range(2, 2000))],
      "sampling_probability": PROBABILITY}),
    ("ddg_epsilon", accounting.ddg_epsilon,
     lambda: dict(rho=0.1, num_rounds=3, target_delta=1e-5, sampling_probability=0.5),
     {"rho": POSITIVE, "num_rounds": COUNT, "target_delta": UNIT,
      "sampling_probability": PROBABILITY}),
    ("ddg_noise_multiplier_for_epsilon", accounting.ddg_noise_multiplier_for_epsilon,
     lambda: dict(target_epsilon=2.0, target_delta=1e-5, sampling_probability=0.1,
                  num_rounds=3),
     {"target_epsilon": POSITIVE, "target_delta": UNIT,
      "sampling_probability": PROBABILITY, "num_rounds": COUNT}),
    ("DistributedDPSecAgg", ddp.DistributedDPSecAgg,
     lambda: dict(clipping_norm=1.0, expected_clients=2.0, noise_multiplier=0.0, scale=None,
                  modulus_bits=32, threshold_fraction=2 / 3, randomness=None),
     {"clipping_norm": POSITIVE, "expected_clients": POSITIVE,
      "noise_multiplier": [*_NUMBERS, math.nan, math.inf, -1.0],
      "scale": [*(x for x in POSITIVE if x is not None), 1e300],
      "modulus_bits": [*COUNT, 63], "threshold_fraction": [*PROBABILITY, 0.5],
      "randomness": [0, np.random.default_rng(0), "secret"]}),
    ("DistributedDPSecAgg.sensitivity",
     lambda dimension: ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=2.0)
     .sensitivity(dimension), lambda: dict(dimension=4),
     {"dimension": [*COUNT, dn.MAX_SIZE + 1]}),
    ("DistributedDPSecAgg.client_variance",
     lambda dimension, num_clients: ddp.DistributedDPSecAgg(
         clipping_norm=1.0, expected_clients=2.0, noise_multiplier=1.0)
     .client_variance(dimension, num_clients), lambda: dict(dimension=4, num_clients=3),
     {"dimension": [*COUNT, dn.MAX_SIZE + 1], "num_clients": [*COUNT, crypto.MAX_CLIENTS + 1]}),
    ("client_bits", protocol.client_bits,
     lambda: dict(num_clients=3, dimension=4, value_bits=16, key_bits=256, share_bits=256),
     {"num_clients": [*COUNT, 1], "dimension": COUNT, "value_bits": [*COUNT, 1025],
      "key_bits": [*COUNT, 2**16 + 1], "share_bits": [*COUNT, 2**16 + 1]}),
    ("expansion_factor", protocol.expansion_factor,
     lambda: dict(num_clients=3, dimension=4, value_bits=16, key_bits=256, share_bits=256),
     {"num_clients": [*COUNT, 1], "dimension": COUNT, "value_bits": [*COUNT, 1025],
      "key_bits": COUNT, "share_bits": COUNT}),
]


def _bad_cases():
    return [pytest.param(function, valid, argument, value, id=f"{label}-{argument}-{k}")
            for label, function, valid, corrupt in ENTRIES
            for argument, values in corrupt.items() for k, value in enumerate(values)]


@pytest.mark.parametrize("label, function, valid",
                         [(label, f, valid) for label, f, valid, _ in ENTRIES],
                         ids=[e[0] for e in ENTRIES])
def test_valid_calls_succeed(label, function, valid):
    status, result = _run_with_timeout(lambda: function(**valid()))
    assert status == "returned", f"{label}: the valid call {status}: {result!r}"


@pytest.mark.parametrize("function, valid, argument, value", _bad_cases())
def test_bad_input_is_rejected_naming_the_argument(function, valid, argument, value):
    kwargs = valid()
    kwargs[argument] = value
    status, error = _run_with_timeout(lambda: function(**kwargs))
    label = f"{argument}={v._fmt(value)}"
    assert status == "raised", f"{label}: {status}"
    assert isinstance(error, (ValueError, TypeError)), \
        f"{label}: raised {type(error).__name__}: {error}"
    assert argument in str(error), f"{label}: the message does not name it: {error}"


def test_every_public_function_and_class_of_the_module_has_an_entry():
    labels = {label.split(".")[0] for label, *_ in ENTRIES}
    public = {name for module in (crypto, protocol, ddp)
              for name, obj in vars(module).items()
              if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
              and getattr(obj, "__module__", "") == module.__name__}
    # Not entry points: exceptions, the result record.
    exempt = {"ProtocolAbort", "MaskReuseError", "SecureSumResult"}
    assert public - exempt - labels == set()
