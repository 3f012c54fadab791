"""Tests of fl_helpers.robust: the poisoning attacks and the robust rules against Flower 1.42 (the
loop's fault handling and resuming: tests/test_faults.py and tests/test_checkpoints.py).

Tolerances: the rules are compared with Flower's aggregation functions on the same float32
inputs. Flower aggregates the clients' *weights* ``w + delta_k`` in float32/float64 numpy; we
aggregate the updates ``delta_k`` (in float64, returned as float32) and add ``w``. The median
and Krum pick or average the same entries, so they agree to float32 rounding of the sum
``w + delta`` (rtol 1e-6, atol 1e-6); the trimmed mean averages in a different precision:
rtol 1e-5, atol 1e-6.
"""

import functools

import numpy as np
import pytest

from fl_helpers import (
    aggregation,
    models,
    robust,
)

CONTEXT = aggregation.RoundContext(round_index=0, num_clients=20)


def _random_updates(num, seed=0, shapes=((7, 3), (3,))):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(num)]


# ---------------------------------------------------------------------------------------------
# Attacks
# ---------------------------------------------------------------------------------------------


def test_flip_labels_maps_y_to_9_minus_y_and_is_an_involution():
    y = np.arange(10)
    np.testing.assert_array_equal(robust.flip_labels(y), 9 - y)
    np.testing.assert_array_equal(robust.flip_labels(robust.flip_labels(y)), y)
    with pytest.raises(ValueError, match="y must hold integer labels in 0..9"):
        robust.flip_labels(np.array([3, 10]))


def test_trigger_and_backdoor_data():
    x = np.zeros((5, 28, 28), np.float32)
    triggered = robust.add_trigger(x, size=3)
    assert triggered[:, -3:, -3:].min() == 1.0 and triggered.sum() == 5 * 9
    assert x.sum() == 0  # not in place
    y = np.arange(5)
    xb, yb = robust.backdoor_data(x, y, target_label=7, fraction=0.4,
                                  rng=np.random.default_rng(0))
    poisoned = yb == 7
    assert poisoned.sum() == 2 and (xb[poisoned][:, -3:, -3:] == 1).all()
    assert (xb[~poisoned] == 0).all()
    with pytest.raises(ValueError, match="fraction must be"):
        robust.backdoor_data(x, y, target_label=7, fraction=0.0, rng=np.random.default_rng(0))


def test_update_attacks_and_malicious_hook():
    delta = _random_updates(1)[0]
    np.testing.assert_array_equal(robust.sign_flip(delta, boost=3)[0], -3 * delta[0])
    np.testing.assert_array_equal(robust.scale_update(delta, factor=20)[1], 20 * delta[1])
    hook = robust.MaliciousClients([2], functools.partial(robust.gaussian_update, stddev=2.0))
    assert hook(1, 0, delta) is delta
    noise = hook(2, 0, delta)
    assert [n.shape for n in noise] == [d.shape for d in delta]
    np.testing.assert_array_equal(noise[0], hook(2, 0, delta)[0])  # seeded per (round, client)
    assert not np.array_equal(noise[0], hook(2, 1, delta)[0])
    ids = robust.malicious_ids(20, 0.3, seed=1)
    assert len(ids) == 6 and len(set(ids)) == 6


def test_backdoor_success_counts_only_non_target_images():
    y = np.array([0, 1, 7, 7])
    assert robust.backdoor_success(np.array([7, 1, 7, 7]), y, target_label=7) == 0.5


def test_dense_predict_matches_keras():
    model = models.make_2nn(0)
    x = np.random.default_rng(0).random((6, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(robust.dense_predict(model.get_weights(), x),
                                  np.argmax(model(x).numpy(), axis=1))


# ---------------------------------------------------------------------------------------------
# Robust rules: closed forms and Flower
# ---------------------------------------------------------------------------------------------


def test_trimmed_mean_closed_form_and_bounds():
    deltas = [[np.array([v], np.float32)] for v in (1.0, 2.0, 3.0, 4.0, 100.0)]
    sizes = np.ones(5, np.int64)
    assert robust.TrimmedMean(0.2).aggregate(deltas, sizes, CONTEXT)[0][0] == 3.0
    assert robust.TrimmedMean(0.0).aggregate(deltas, sizes, CONTEXT)[0][0] == 22.0
    with pytest.raises(ValueError, match=r"beta must be in \[0, 0.5\), got 0.5"):
        robust.TrimmedMean(0.5)


def test_krum_picks_the_central_update_and_checks_n_greater_than_2f_plus_2():
    honest = [[np.array([x], np.float32)] for x in (0.0, 0.1, -0.1, 0.05, -0.05)]
    attackers = [[np.array([50.0], np.float32)], [np.array([60.0], np.float32)]]
    deltas = honest + attackers
    chosen = robust.Krum(2).aggregate(deltas, np.ones(7), CONTEXT)
    assert abs(chosen[0][0]) <= 0.1
    avg = robust.MultiKrum(2, 5).aggregate(deltas, np.ones(7), CONTEXT)
    assert abs(avg[0][0]) < 1e-6  # the honest five, averaged
    with pytest.raises(ValueError, match=r"needs at least 7 clients.*m > 2f \+ 2 with f=2"):
        robust.Krum(2).aggregate(deltas[:6], np.ones(6), CONTEXT)


@pytest.fixture(scope="module")
def flwr_aggregate():
    return pytest.importorskip("flwr.server.strategy.aggregate",
                               reason="flwr==1.42.0 (requirements.txt) is not installed")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rules_agree_with_flower(flwr_aggregate, seed):
    """Same inputs to Flower 1.42's FedMedian, FedTrimmedAvg and Krum (via their aggregate_*
    functions, which the strategies call) and to our rules; Flower gets the weights w + delta."""
    m, f = 11, 3
    deltas = _random_updates(m, seed)
    sizes = np.random.default_rng(seed).integers(10, 100, size=m)
    w = [np.random.default_rng(99).normal(size=d.shape).astype(np.float32) for d in deltas[0]]
    results = [([wi + di for wi, di in zip(w, delta, strict=True)], int(n))
               for delta, n in zip(deltas, sizes, strict=True)]

    def ours(rule):
        return [wi + ui for wi, ui in zip(w, rule.aggregate(deltas, sizes, CONTEXT), strict=True)]

    cases = [
        (aggregation.CoordinateMedian(), flwr_aggregate.aggregate_median(results), 1e-6),
        (robust.TrimmedMean(0.2), flwr_aggregate.aggregate_trimmed_avg(results, 0.2), 1e-5),
        (robust.Krum(f), flwr_aggregate.aggregate_krum(results, f, 0), 1e-6),
        (robust.MultiKrum(f, 5), flwr_aggregate.aggregate_krum(results, f, 5), 1e-5),
    ]
    for rule, theirs, rtol in cases:
        for a, b in zip(ours(rule), theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6, err_msg=rule.name)


def test_median_and_trimmed_mean_resist_a_boosted_minority():
    rng = np.random.default_rng(0)
    honest = [[rng.normal(1.0, 0.1, size=50).astype(np.float32)] for _ in range(8)]
    bad = [[np.full(50, -1000.0, np.float32)] for _ in range(2)]
    sizes = np.ones(10)
    for rule in (aggregation.CoordinateMedian(), robust.TrimmedMean(0.2), robust.Krum(2)):
        update = rule.aggregate(honest + bad, sizes, CONTEXT)[0]
        assert np.all(np.abs(update - 1.0) < 0.5), rule.name
    fedavg = aggregation.FedAvg().aggregate(honest + bad, sizes, CONTEXT)[0]
    assert np.all(fedavg < -100)  # the attack works on plain averaging
