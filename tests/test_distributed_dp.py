"""Distributed DP over secure aggregation (fl_helpers.distributed_dp): stochastic rounding and the
DistributedDPSecAgg rule (its noise, its checks, its rounds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_discrete_noise import _reproducible

from fl_helpers import accounting, aggregation
from fl_helpers import discrete_noise as dn
from fl_helpers import distributed_dp as ddp
from fl_helpers import secagg_protocol as protocol


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


# --------------------------------------------------------------------------------------------
# The rule describes its round to the accountant (issue 25)
# --------------------------------------------------------------------------------------------


def test_without_noise_the_event_is_non_private_whatever_the_sizes():
    import dp_accounting

    rule = ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=2.0)
    assert rule.dp_event(sampling_probability=0.1) == dp_accounting.NonPrivateDpEvent()
    assert rule.dp_event(sampling_probability=1.0, dimension=4,
                         num_clients=3) == dp_accounting.NonPrivateDpEvent()
    with pytest.raises(ValueError, match="noise_multiplier must be > 0 for a round's rho"):
        rule.round_rho(dimension=4, num_clients=3)


def test_the_event_takes_the_largest_rho_over_every_round_size():
    import dp_accounting

    # Delta = s C + sqrt(d) = 2 + 2 = 4, sigma^2 = (0.4 * 4)^2 = 2.56: clients add variance
    # 3, 2, 1, 1, ... for n = 1, 2, 3, ...; from n = 2 on tau > 0, and the round of three
    # clients has the largest rho, not a lone client's (every size 1..N + 1 is tried).
    rule = ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=2.0,
                                   noise_multiplier=0.4, scale=2.0)
    d, n_clients = 4, 20
    by_hand = [accounting.ddg_rho(sensitivity=rule.sensitivity(d),
                                  client_variance=rule.client_variance(d, n), num_clients=n,
                                  dimension=d) for n in range(1, n_clients + 2)]
    rho = rule.round_rho(dimension=d, num_clients=n_clients)
    assert rho == pytest.approx(max(by_hand), rel=1e-12)
    assert int(np.argmax(by_hand)) + 1 == 3 and rho > by_hand[0]
    assert rule.dp_event(sampling_probability=0.1, dimension=d, num_clients=n_clients) == \
        dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.ZCDpEvent(rho))
    assert rule.dp_event(sampling_probability=1.0, dimension=d, num_clients=n_clients) == \
        dp_accounting.ZCDpEvent(rho)


def test_with_the_courses_noise_a_lone_client_decides():
    # Notebook 06's certified setting: tau underflows, every n gives Delta^2 / (2 n ceil(
    # sigma^2 / n)), which is largest at n = 1, and all of them are within 1e-6 of 1 / (2 z^2).
    rule = ddp.DistributedDPSecAgg(clipping_norm=0.5, expected_clients=100.0,
                                   noise_multiplier=2.380859375)
    d = 7850
    rho = rule.round_rho(dimension=d, num_clients=1000)
    assert rho == accounting.ddg_rho(sensitivity=rule.sensitivity(d),
                                     client_variance=rule.client_variance(d, 1), num_clients=1,
                                     dimension=d)
    assert rho == pytest.approx(1 / (2 * 2.380859375**2), rel=1e-6)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, "dimension must be given for DistributedDPSecAgg's event, got None"),
    ({"dimension": 4}, "num_clients must be given for DistributedDPSecAgg's event, got None"),
    ({"dimension": 0, "num_clients": 3}, "dimension must be >= 1, got 0"),
    ({"dimension": 2**27 + 1, "num_clients": 3}, "dimension must be <= 134217728"),
    ({"dimension": 4, "num_clients": 0}, "num_clients must be >= 1, got 0"),
    ({"dimension": 4, "num_clients": 10**7}, "num_clients must be <= 9999999"),
])
def test_the_event_refuses_missing_or_bad_sizes(kwargs, match):
    rule = ddp.DistributedDPSecAgg(clipping_norm=1.0, expected_clients=2.0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match=match):
        rule.dp_event(sampling_probability=0.1, **kwargs)
    with pytest.raises(TypeError, match="dimension must be an integer, got float 4.0"):
        rule.dp_event(sampling_probability=0.1, dimension=4.0, num_clients=3)


def _tiny_clients(count=8, size=12, seed=9):
    rng = np.random.default_rng(seed)
    return [(rng.random((size, 28, 28), dtype=np.float32), rng.integers(0, 10, size))
            for _ in range(count)]


def test_run_fedavg_refuses_the_rule_with_noise():
    from fl_helpers import models, training

    rule = ddp.DistributedDPSecAgg(clipping_norm=0.5, expected_clients=2.0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match=r"dimension must be given.*run_distributed_dp"):
        training.run_fedavg(models.make_softmax_regression, _tiny_clients(), num_rounds=1,
                            clients_per_round=2, local_epochs=1, batch_size=6,
                            client_learning_rate=0.1, progress=False, aggregation_rule=rule)


def test_run_distributed_dp_reports_the_epsilon_of_the_rules_event():
    from fl_helpers import models

    clients = _tiny_clients()
    q, rounds, delta = 0.5, 3, 1e-5
    history = ddp.run_distributed_dp(
        models.make_softmax_regression, clients, num_rounds=rounds, sampling_probability=q,
        local_epochs=1, batch_size=6, client_learning_rate=0.1, clipping_norm=0.5,
        noise_multiplier=1.0, expected_clients=4.0, target_delta=delta, progress=False,
        randomness=_reproducible(3))
    rule = ddp.DistributedDPSecAgg(clipping_norm=0.5, expected_clients=4.0, noise_multiplier=1.0)
    d = 28 * 28 * 10 + 10
    # by hand: Kairouz et al.'s rho for every round size 1..N + 1, the largest, Zhu & Wang's
    # subsampling, T rounds
    rho = max(accounting.ddg_rho(sensitivity=rule.sensitivity(d),
                                 client_variance=rule.client_variance(d, n), num_clients=n,
                                 dimension=d) for n in range(1, len(clients) + 2))
    np.testing.assert_allclose(history.epsilon, [accounting.ddg_epsilon(
        rho=rho, num_rounds=t, target_delta=delta, sampling_probability=q)
        for t in range(1, rounds + 1)], rtol=1e-12)
    assert (history.accountant, history.noise, history.sampling_probability) == \
        (ddp.ACCOUNTANT, "exact", q)
    assert history.aggregation == "SecAgg + distributed DP" and len(history.rounds) == rounds
    assert history.reproducible_noise
    with pytest.raises(ValueError, match="noise_multiplier must be > 0, got 0"):
        ddp.run_distributed_dp(
            models.make_softmax_regression, clients, num_rounds=1, sampling_probability=q,
            local_epochs=1, batch_size=6, client_learning_rate=0.1, clipping_norm=0.5,
            noise_multiplier=0.0, expected_clients=4.0, target_delta=delta, progress=False)


@pytest.mark.parametrize("variant", ["distributed", "distributed_at_central_z"])
def test_the_benchmarks_stored_epsilons_are_the_rules_event(variant):
    # benchmarks/secure_aggregation_costs.py stored epsilons from the largest rho of the rounds
    # that happened; the rule's event takes the largest over every round size 1..N + 1, which
    # can only be larger, and here is larger by at most 5e-8 (relative): every stored epsilon
    # is the event's to 3e-8, and notebook 06 prints the same figures.
    import json
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / \
        "secure_aggregation_costs.json"
    stored = json.loads(results.read_text())["accuracy"]
    s = stored["setting"]
    for run in stored[variant]:
        rule = ddp.DistributedDPSecAgg(
            clipping_norm=s["clipping_norm"], noise_multiplier=run["noise_multiplier"],
            expected_clients=s["sampling_probability"] * s["num_clients"])
        d = 7850
        assert rule.sensitivity(d) == run["sensitivity"] and rule.scale == run["scale"]
        rho = rule.round_rho(dimension=d, num_clients=s["num_clients"])
        assert run["rho_per_round_max"] <= rho <= run["rho_per_round_max"] * (1 + 5e-8)
        schedule_ = [np.arange(run["busiest_client_rounds"])] + \
            [np.array([0])] * (run["busiest_client_rounds"] - 1) + \
            [np.array([], dtype=np.int64)] * (s["num_rounds"] - run["busiest_client_rounds"])
        observer, server = (accounting.epsilon_per_round_of_event(
            rule.dp_event(sampling_probability=q, dimension=d, num_clients=s["num_clients"]),
            schedule=schedule_, num_clients=s["num_clients"],
            target_delta=s["target_delta"])[-1] for q in (s["sampling_probability"], 1.0))
        assert observer == pytest.approx(run["epsilon_observer"], rel=3e-8)
        assert server == pytest.approx(run["epsilon_server"], rel=3e-8)
