"""Tests of fl_helpers.secure_aggregation: exact masked sums, dropouts, what the server holds,
the exact discrete Gaussian, the accounting, and the aggregation rule in the training loop.

Statistical tests either use a fixed seed (the PRG, the reproducible noise source) or, where the
randomness is secret by design (the masks), a p-value threshold of 1e-6 so that they flake less
than once in a million runs, together with a check that the same test rejects unmasked data.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from scipy import stats

from fl_helpers import aggregation
from fl_helpers import secure_aggregation as sa


def _reproducible(seed: int) -> sa.NoiseSource:
    with pytest.warns(UserWarning, match="not private|no privacy"):
        return sa.NoiseSource.reproducible(seed)


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
        result = sa.secure_sum(inputs, modulus_bits=bits, threshold=t,
                               dropped_before_masking=early, dropped_before_unmasking=late)
        expected = sum(inputs[k] for k in range(n) if k not in early)
        np.testing.assert_array_equal(result.total, expected)
        assert result.included == [k for k in range(n) if k not in early]
    assert with_drops > 400  # the trials really exercised dropouts


def test_reconstruction_below_threshold_fails_with_a_clear_error():
    inputs = [np.arange(5) + k for k in range(6)]
    with pytest.raises(ValueError, match="threshold=4 .*got 3.*dropped"):
        sa.secure_sum(inputs, modulus_bits=16, threshold=4, dropped_before_masking=[0, 1],
                      dropped_before_unmasking=[2])


def test_shamir_any_t_shares_reconstruct_and_t_minus_1_refuse():
    rng = np.random.default_rng(1)
    secret = 2**128 + 12345
    shares = sa.shamir_share(secret, num_shares=7, threshold=4)
    for _ in range(20):
        subset = [shares[i] for i in rng.choice(7, size=4, replace=False)]
        assert sa.shamir_reconstruct(subset, threshold=4) == secret
    with pytest.raises(ValueError, match="at least threshold=4 shares, got 3"):
        sa.shamir_reconstruct(shares[:3], threshold=4)
    # Interpolating 3 shares as if t were 3 gives a wrong secret, not the real one.
    assert sa.shamir_reconstruct(shares[:3], threshold=3) != secret


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


def test_the_server_never_holds_an_unmasked_individual_update():
    rng = np.random.default_rng(2)
    inputs = [rng.integers(-100, 100, 64) for _ in range(8)]
    result = sa.secure_sum(inputs, modulus_bits=20, dropped_before_masking=[3],
                           dropped_before_unmasking=[5])
    held = _arrays_in(result.server)
    assert len(held) == 7  # the seven masked vectors that arrived
    for array in held:
        for x in inputs:
            assert not np.array_equal(array, sa.to_modular(x, 20))
            # not even close: a masked vector agrees with the input in about 64 / 2^20 entries
            assert np.mean(array == sa.to_modular(x, 20)) < 0.05
    np.testing.assert_array_equal(result.total, sum(x for k, x in enumerate(inputs) if k != 3))


def test_masked_vectors_look_uniform_and_the_test_has_power():
    bits = 8
    inputs = [np.full(4096, 7, dtype=np.int64) for _ in range(5)]  # the same, very non-uniform
    result = sa.secure_sum(inputs, modulus_bits=bits)
    for masked in result.server.masked_inputs.values():
        counts = np.bincount(masked.astype(np.int64), minlength=2**bits)
        assert stats.chisquare(counts).pvalue > 1e-6
    plain = np.bincount(sa.to_modular(inputs[0], bits).astype(np.int64), minlength=2**bits)
    assert stats.chisquare(plain).pvalue < 1e-100  # the same test rejects what is not masked


def test_prg_masks_are_uniform_for_a_fixed_seed():
    mask = sa.prg_mask(bytes(range(16)), 200_000, modulus_bits=10)
    assert mask.max() < 2**10
    assert stats.chisquare(np.bincount(mask.astype(np.int64), minlength=2**10)).pvalue > 0.001
    np.testing.assert_array_equal(mask, sa.prg_mask(bytes(range(16)), 200_000, modulus_bits=10))


def test_without_self_masks_a_late_input_is_exposed_and_double_masking_stops_it():
    rng = np.random.default_rng(3)
    inputs = {u: rng.integers(-50, 50, 16) for u in (1, 2, 3, 4)}

    def setup(double):
        clients = {u: sa.SecAggClient(u, threshold=3, modulus_bits=16, double_masking=double)
                   for u in inputs}
        server = sa.SecAggServer(threshold=3, modulus_bits=16, size=16, double_masking=double)
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
    seed = sa.shamir_reconstruct(shares, threshold=3).to_bytes(sa.SEED_BYTES, "big")
    others = {u: server.public_keys[u][1] for u in inputs}
    exposed = (late - sa.pairwise_mask_sum(seed, 4, others, 16, 16, b"")) & np.uint64(2**16 - 1)
    np.testing.assert_array_equal(sa.from_modular(exposed, 16), inputs[4])

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
        sa.secure_sum([np.zeros(2, dtype=np.int64)] * 3, modulus_bits=8, threshold=4)


def test_modulus_too_small_for_the_sum_is_rejected():
    inputs = [np.full(3, 100, dtype=np.int64) for _ in range(4)]  # |sum| up to 400 > 2^7
    with pytest.raises(ValueError, match="modulus_bits=8 is too small for the sum.*400.*>= 10"):
        sa.secure_sum(inputs, modulus_bits=8)
    assert np.array_equal(sa.secure_sum(inputs, modulus_bits=10).total, np.full(3, 400))


@pytest.mark.parametrize("bad, error, match", [
    ([np.array([0.5, 1.0])] * 3, TypeError, "inputs\\[0\\] must hold integers, got dtype float64"),
    ([np.array([True, False])] * 3, TypeError, "must hold integers, got dtype bool"),
    (np.zeros((3, 2), dtype=np.int64), TypeError, "non-empty list"),
    ([], TypeError, "non-empty list"),
    ([np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64)], ValueError, "shape"),
])
def test_non_integer_or_malformed_inputs_are_rejected(bad, error, match):
    with pytest.raises(error, match=match):
        sa.secure_sum(bad, modulus_bits=16)


@pytest.mark.parametrize("bits, error", [(0, ValueError), (63, ValueError), (8.0, TypeError),
                                         (True, TypeError)])
def test_bad_modulus_bits(bits, error):
    with pytest.raises(error, match="modulus_bits"):
        sa.secure_sum([np.zeros(2, dtype=np.int64)] * 3, modulus_bits=bits)


def test_bad_dropout_ids_are_rejected():
    with pytest.raises(ValueError, match="dropped_before_masking must hold ids in 0..2"):
        sa.secure_sum([np.zeros(2, dtype=np.int64)] * 3, modulus_bits=8,
                      dropped_before_masking=[3])


# --------------------------------------------------------------------------------------------
# Quantisation and the exact discrete Gaussian
# --------------------------------------------------------------------------------------------


def test_stochastic_rounding_is_unbiased_and_within_the_norm_bound():
    source = _reproducible(4)
    x = np.array([0.3, -0.25, 0.1, 0.0])  # norm < C = 1
    rounded = np.array([sa.quantize(x, clipping_norm=1.0, scale=10.0, source=source)
                        for _ in range(20_000)])
    # standard error of each mean <= 0.5 / sqrt(20000) = 0.0035; tolerance 0.02 is ~6 of them
    np.testing.assert_allclose(rounded.mean(axis=0), 10 * x, atol=0.02)
    bound = sa.quantized_norm_bound(clipping_norm=1.0, scale=10.0, dimension=4)
    assert np.linalg.norm(rounded, axis=1).max() <= bound
    big = sa.quantize(np.array([30.0, 40.0]), clipping_norm=1.0, scale=10.0, source=source)
    assert np.linalg.norm(big) <= 10 + math.sqrt(2)  # clipped to 1 first


@pytest.mark.parametrize("variance", [1, 4, 1000])
def test_discrete_gaussian_matches_its_pmf(variance):
    draws = sa.discrete_gaussian(variance, 100_000, source=_reproducible(5))
    span = int(4 * math.sqrt(variance))
    values = np.arange(-span, span + 1)
    pmf = sa.discrete_gaussian_pmf(values, variance)
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
        sa.discrete_gaussian(2.5, 3, source=_reproducible(0))
    with pytest.raises(ValueError, match="variance must be >= 1"):
        sa.discrete_gaussian(0, 3, source=_reproducible(0))
    with pytest.raises(TypeError, match="source must be a NoiseSource"):
        sa.discrete_gaussian(4, 3, source=np.random.default_rng(0))


def test_secret_noise_is_not_reproducible():
    a = sa.discrete_gaussian(100, 50, source=sa.NoiseSource.secret())
    b = sa.discrete_gaussian(100, 50, source=sa.NoiseSource.secret())
    assert not np.array_equal(a, b)


# --------------------------------------------------------------------------------------------
# Accounting
# --------------------------------------------------------------------------------------------


def test_ddg_rho_is_the_discrete_gaussian_closed_form_for_large_noise():
    # tau underflows for sigma^2 = 100 per client: rho = Delta^2 / (2 n sigma^2).
    rho = sa.ddg_rho(sensitivity=50.0, client_variance=100.0, num_clients=20, dimension=1000)
    assert rho == pytest.approx(50.0**2 / (2 * 20 * 100.0), rel=1e-12)
    # tiny noise per client: tau is large and the bound much worse than the closed form
    loose = sa.ddg_rho(sensitivity=1.0, client_variance=0.25, num_clients=20, dimension=1000)
    assert loose > 10 * 1.0 / (2 * 20 * 0.25)
    with pytest.raises(ValueError, match="client_variance must be >= 1/4"):
        sa.ddg_rho(sensitivity=1.0, client_variance=0.2, num_clients=2, dimension=1)


def test_poisson_subsampled_bound_is_above_the_tight_gaussian_accounting():
    # Zhu & Wang's general bound applied to a Gaussian (rho = 1 / (2 z^2)) can only be looser
    # than dp-accounting's tight subsampled-Gaussian RDP, and should not be much looser.
    z, q, rounds = 1.0, 0.1, 30
    ours = sa.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5,
                          sampling_probability=q)
    accountant = dp_accounting.rdp.RdpAccountant(orders=[float(a) for a in sa.RDP_ORDERS])
    accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)),
                       rounds)
    tight = accountant.get_epsilon(1e-5)
    assert tight * (1 - 1e-9) <= ours <= 1.5 * tight


def test_ddg_epsilon_matches_dp_accounting_for_an_unsampled_gaussian():
    # q = 1: T rounds of rho-CDP with rho = 1 / (2 z^2) is the Gaussian mechanism's RDP.
    z, rounds = 2.0, 10
    ours = sa.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5)
    accountant = dp_accounting.rdp.RdpAccountant(orders=[float(a) for a in sa.RDP_ORDERS])
    accountant.compose(dp_accounting.GaussianDpEvent(z), rounds)
    assert ours == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    sampled = sa.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5,
                             sampling_probability=0.1)
    assert sampled < ours


# --------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------


def test_expansion_factors_reproduce_bonawitz_et_al():
    assert sa.expansion_factor(num_clients=2**10, dimension=2**20, value_bits=16) == \
        pytest.approx(1.73, abs=0.005)
    assert sa.expansion_factor(num_clients=2**14, dimension=2**24, value_bits=16) == \
        pytest.approx(1.98, abs=0.005)


def test_bytes_sent_match_the_message_sizes():
    n, d, bits = 5, 100, 16
    result = sa.secure_sum([np.zeros(d, dtype=np.int64)] * n, modulus_bits=bits)
    expected = (2 * sa.PUBLIC_KEY_BYTES + (n - 1) * sa.ENCRYPTED_SHARE_BYTES
                + d * bits // 8 + n * sa.SHARE_BYTES)
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
    rule = sa.DistributedDPSecAgg(clipping_norm=0.3, expected_clients=6.0,
                                  source=_reproducible(7))
    secure = rule.aggregate(deltas, np.ones(6), context)
    # quantisation error: at most 1 / s per client, divided by 6 clients... times 6 clients
    for a, b in zip(secure, plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1.0 / rule.scale)
        assert a.shape == b.shape and a.dtype == np.float32


def test_rule_noise_has_the_planned_variance():
    deltas = [[np.zeros(4000, dtype=np.float32)] for _ in range(10)]
    rule = sa.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=10.0, scale=100.0,
                                  noise_multiplier=0.5, source=_reproducible(8))
    update = rule.aggregate(deltas, np.ones(10),
                            aggregation.RoundContext(round_index=0, num_clients=100))[0]
    sigma = 0.5 * rule.sensitivity(4000)  # on the integer sum
    per_client = rule.client_variance(4000, 10)
    assert per_client == math.ceil(sigma**2 / 10)
    expected_std = math.sqrt(10 * per_client) / (100.0 * 10.0)
    assert np.std(update) == pytest.approx(expected_std, rel=0.05)


def test_rule_checks_its_arguments():
    with pytest.raises(ValueError, match="clipping_norm must be > 0"):
        sa.DistributedDPSecAgg(clipping_norm=0.0, expected_clients=1.0)
    with pytest.raises(TypeError, match="source must be a NoiseSource"):
        sa.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0, source=1)
    rule = sa.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0, modulus_bits=8)
    with pytest.raises(ValueError, match="modulus_bits=8 is too small for the sum of 3"):
        rule.aggregate([[np.ones(3, dtype=np.float32)]] * 3, np.ones(3),
                       aggregation.RoundContext(round_index=0, num_clients=3))
    assert repr(sa.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=1.0).source) == \
        "NoiseSource.secret()"


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
    rule = sa.DistributedDPSecAgg(clipping_norm=0.5, expected_clients=3.0,
                                  source=_reproducible(10))
    secure = training.run_fedavg(models.make_softmax_regression, clients, **common,
                                 aggregation_rule=rule)
    assert secure.aggregation == "SecAgg + distributed DP" and rule.rounds_aggregated == 2
    for a, b in zip(secure.final_weights, plain.final_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
