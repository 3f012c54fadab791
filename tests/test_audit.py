"""Tests of fl_helpers.audit: the canary audit of DP-FedAvg's aggregation rule, Clopper-Pearson.

Statistical tests with fixed seeds. Why they neither flake nor pass vacuously:

* The honest rule's audit at z = 2 (claimed epsilon 1.99 at delta = 1e-5) measures
  epsilon_LB of about 0.6 with 2,000 trials a side; exceeding 1.99 would need the test's
  Clopper-Pearson-bounded error rates to be about e^1.4 = 4 times better than the true
  Gaussian trade-off allows, over 1,000 evaluation trials: far beyond any chance fluctuation (the
  bound itself fails with probability <= 5 % only at the *edge*; here we are deep inside). That is
  why the same assertion is also run on the **secret** noise path, without a seed.
* Power: the same audit must give epsilon_LB > 0.3 (so it measures something), and two broken
  rules must be caught with epsilon_LB > 1.99 by a wide margin (they leak like z = 0.2).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats

from fl_helpers import accounting, aggregation, audit, discrete_noise, schedule

Z, DELTA, TRIALS = 2.0, 1e-5, 2000
SHAPES = [(784, 10), (10,)]


class NoiseForTheMean(aggregation.DPFedAvg):
    """BROKEN: the noise of the mean's sensitivity C / (q N), added to the sum."""

    def noise_stddev(self, num_sampled):
        return super().noise_stddev(num_sampled) / self.expected_clients


class NoClipping(aggregation.DPFedAvg):
    """BROKEN: noise for sensitivity C, updates put on the integer grid without clipping."""

    def to_grid(self, rows, steps):
        return np.rint(rows * (steps / self.clipping_norm)).astype(np.int64)


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    others = [audit.canary_update(SHAPES, norm=0.7, rng=rng) for _ in range(2)]
    canary = audit.canary_update(SHAPES, norm=10.0, rng=rng)
    claimed = accounting.dp_fedavg_epsilon(noise_multiplier=Z, sampling_probability=1.0,
                                           num_rounds=1, target_delta=DELTA,
                                           accountant="discrete")  # exact noise's
    return others, canary, claimed


def run(rule_class, setting, randomness, trials=TRIALS):
    others, canary, _ = setting
    rule = rule_class(clipping_norm=1.0, noise_multiplier=Z, expected_clients=10.0)
    return audit.canary_audit(rule, others, canary, num_trials=trials, randomness=randomness,
                              num_clients=100, delta=DELTA)


def reproducible(seed):
    with pytest.warns(UserWarning, match="reproducible"):
        return schedule.PrivateRandomness.reproducible(seed)


def test_honest_rule_is_consistent_and_the_audit_has_power(setting):
    claimed = setting[2]
    result = run(aggregation.DPFedAvg, setting, reproducible(0))
    assert 0.3 < result.epsilon_lower_bound <= claimed
    assert result.trials_per_side == TRIALS // 2


def test_honest_rule_on_the_secret_noise_path(setting):
    randomness = schedule.PrivateRandomness.secret()
    assert not randomness.is_reproducible
    result = run(aggregation.DPFedAvg, setting, randomness)
    assert result.epsilon_lower_bound <= setting[2]


@pytest.mark.parametrize("broken", [NoiseForTheMean, NoClipping])
def test_broken_rules_are_caught(setting, broken):
    result = run(broken, setting, reproducible(1), trials=1000)
    assert result.epsilon_lower_bound > setting[2] + 1.0


def test_same_seed_same_audit(setting):
    a = run(aggregation.DPFedAvg, setting, reproducible(5), trials=200)
    b = run(aggregation.DPFedAvg, setting, reproducible(5), trials=200)
    assert a == b


# -- clopper_pearson against scipy ------------------------------------------------------------


def test_clopper_pearson_matches_scipy_for_counts_and_arrays():
    for successes, trials in [(0, 10), (3, 10), (10, 10), (1234, 100_000), (50, 51)]:
        expected = scipy.stats.binomtest(successes, trials).proportion_ci(
            confidence_level=0.9, method="exact")
        low, high = audit.clopper_pearson(successes, trials, confidence=0.9)
        assert low == pytest.approx(expected.low, abs=1e-12)
        assert high == pytest.approx(expected.high, abs=1e-12)
    k, n = np.array([0, 3, 10, 50]), np.array([10, 10, 10, 200])
    low, up = audit.clopper_pearson(k, n, confidence=0.9)
    for i in range(4):
        ci = scipy.stats.binomtest(int(k[i]), int(n[i])).proportion_ci(0.9, method="exact")
        assert low[i] == pytest.approx(ci.low, abs=1e-10)
        assert up[i] == pytest.approx(ci.high, abs=1e-10)


# -- epsilon_lower_bound against closed forms -------------------------------------------------


def test_perfectly_separated_scores_hit_the_ceiling():
    n = 2000
    result = audit.epsilon_lower_bound(np.ones(n), np.zeros(n), delta=0.0, confidence=0.95)
    upper = 1 - 0.025 ** (1 / (n // 2))  # Clopper-Pearson upper limit for 0 of n/2
    assert result.fpr_upper == pytest.approx(upper)
    assert result.epsilon_lower_bound == pytest.approx(math.log((1 - upper) / upper))


def test_identical_distributions_give_almost_nothing():
    rng = np.random.default_rng(0)
    result = audit.epsilon_lower_bound(rng.normal(size=4000), rng.normal(size=4000),
                                       delta=1e-5)
    assert result.epsilon_lower_bound < 0.2


def test_gaussian_scores_stay_under_the_gaussian_epsilon():
    """Scores N(0, 1) vs N(1/z, 1) are exactly the Gaussian mechanism's: epsilon_LB <= epsilon."""
    claimed = accounting.dp_fedavg_epsilon(noise_multiplier=1.0, sampling_probability=1.0,
                                           num_rounds=1, target_delta=DELTA)
    bounds = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        result = audit.epsilon_lower_bound(rng.normal(1.0, 1, 4000), rng.normal(0, 1, 4000),
                                           delta=DELTA)
        bounds.append(result.epsilon_lower_bound)
    assert max(bounds) <= claimed
    assert min(bounds) > 0.5


@pytest.mark.parametrize("call, match", [
    (lambda: audit.clopper_pearson(5, 3), "successes"),
    (lambda: audit.clopper_pearson(11, 10), "successes must be integers in 0..trials"),
    (lambda: audit.clopper_pearson(1, 3, confidence=1.0), "confidence must be in"),
    (lambda: audit.empirical_epsilon_lower_bound([], [1.0], threshold=0.5), "outputs_0"),
    (lambda: audit.empirical_epsilon_lower_bound([0.0], [1.0], threshold=0.5, delta=1.0),
     "delta must be in"),
    (lambda: audit.epsilon_lower_bound([1, 2], [1, 2, 3, 4], delta=0.0), ">= 4 scores"),
    (lambda: audit.epsilon_lower_bound([1, 2, 3, np.nan], [1, 2, 3, 4], delta=0.0), "finite"),
    (lambda: audit.epsilon_lower_bound([1, 2, 3, 4], [1, 2, 3, 4], delta=1.0), "delta must be"),
    (lambda: audit.epsilon_lower_bound([1, 2, 3, 4], [1, 2, 3, 4], delta=0.0, confidence=1),
     "confidence must be in"),
    (lambda: audit.canary_update(SHAPES, norm=0, rng=np.random.default_rng(0)),
     "norm must be > 0"),
    (lambda: audit.canary_scores("FedAvg", [], [np.ones(2)], num_trials=10,
                                 randomness=schedule.PrivateRandomness.secret(), num_clients=2),
     "rule must be an AggregationRule"),
    (lambda: audit.canary_scores(aggregation.FedAvg(), [], [np.ones(2)], num_trials=10,
                                 randomness=0, num_clients=2), "randomness must be"),
    (lambda: audit.canary_scores(aggregation.FedAvg(), [], [np.zeros(2)], num_trials=10,
                                 randomness=schedule.PrivateRandomness.secret(), num_clients=2),
     "non-zero"),
    (lambda: audit.canary_scores(aggregation.FedAvg(), [], [np.ones(2)], num_trials=2,
                                 randomness=schedule.PrivateRandomness.secret(), num_clients=2),
     "num_trials must be >= 4"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# -- the floating-point attack of the second audit --------------------------------------------

def _round(noise, seed, round_index):
    """Notebook 04's shapes and scale: softmax regression (7,850 weights), q N = 100, C = 0.5,
    z = 1.504. Returns what the adversary knows (w0, the other clients' updates, the target's)
    and the rule."""
    rng = np.random.default_rng([seed, round_index])
    d = 7850
    w0 = (rng.normal(size=d) * 0.05).astype(np.float32)
    others = [(rng.normal(size=d) * 0.02).astype(np.float32) for _ in range(99)]
    target = (rng.normal(size=d) * 0.02).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aggregation.FloatNoiseWarning)  # the float control
        rule = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=1.504,
                                    expected_clients=100.0, noise=noise)
    return w0, others, target, rule


def test_float_noise_is_broken_by_the_interval_attack_and_exact_noise_is_not():
    """The adversary knows w0, the other 99 clients' updates and the target's, and tests
    whether the target took part. Float noise: under the wrong hypothesis dozens of
    coordinates per round are impossible (each one proves the target's presence); under the
    right one none. Exact noise: the released update is a function of an integer sum plus
    integer noise, and every integer is a possible noise value, so no coordinate is ever
    impossible under either hypothesis."""
    randomness = schedule.PrivateRandomness.reproducible(11, warn=False)
    server = aggregation.ServerSGD(1.0)
    wrong = []
    for t in range(3):
        w0, others, target, rule = _round("float", 0, t)
        with_target = rule.sum_updates([[u] for u in [*others, target]], np.ones(100)).total
        without = rule.sum_updates([[u] for u in others], np.ones(99)).total
        context = aggregation.RoundContext(round_index=t, num_clients=1000, randomness=randomness)
        w1 = server.apply([w0], rule.finalize(with_target, np.ones(100), context))
        assert audit.float_noise_proofs(w1, previous=[w0], noiseless_sum=with_target,
                                        expected_clients=100.0) == 0
        wrong.append(audit.float_noise_proofs(w1, previous=[w0], noiseless_sum=without,
                                              expected_clients=100.0))
    assert min(wrong) > 10, wrong  # measured: about 70 a round

    # Exact noise: the same adversary, with the exact pipeline's integers.
    steps = discrete_noise.GRID_STEPS
    randomness = schedule.PrivateRandomness.reproducible(12, warn=False)
    for t in range(3):
        w0, others, target, rule = _round("exact", 1, t)
        context = aggregation.RoundContext(round_index=t, num_clients=1000, randomness=randomness)
        w1 = server.apply([w0], rule.aggregate([[u] for u in [*others, target]], np.ones(100),
                                               context))[0]
        for members in ([*others, target], others):
            integer_sum = discrete_noise.clip_to_integer_grid(
                np.stack(members), clipping_norm=0.5, steps=steps).sum(axis=0)
            assert audit.exact_noise_proofs([w1], previous=[w0], integer_sum=integer_sum,
                                            clipping_norm=0.5, expected_clients=100.0,
                                            steps=steps) == 0


@pytest.mark.parametrize("engine", ["fast", "loop"])
def test_whole_exact_runs_on_both_engines_prove_nothing(engine):
    """The interval attack on what a whole private run releases, on each engine. One-example
    clients, q = 1: the fast engine sums rank-one factors on the 2^22 grid, the loop clips
    every update onto the 2^16 grid. Whatever integer sum the adversary assumes (the target's
    presence or absence changes it by an integer vector), every released weight is explained by
    an integer noise value: no coordinate proves anything. The same check on float-noise runs
    finds 3,269 (fast) and 7,770 (loop) of the 7,850 weights off the integer lattice; the float
    attack proper is the rule-level test above (dozens of proofs a round)."""
    from fl_helpers import data, models, training

    (x, y), _ = data.load_mnist()
    clients = [(x[i:i + 1], y[i:i + 1]) for i in range(12)]
    w0 = models.make_softmax_regression().get_weights()
    history = training.run_dp_fedavg(
        models.make_softmax_regression, clients, num_rounds=1, sampling_probability=1.0,
        local_epochs=1, batch_size=1, client_learning_rate=0.5, clipping_norm=0.5,
        noise_multiplier=1.0, progress=False, engine=engine, expected_clients=12.0)
    assert history.noise == "exact" and not history.reproducible_noise
    rule = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=1.0, expected_clients=12.0)
    steps = rule.factor_steps() if engine == "fast" else discrete_noise.GRID_STEPS
    size = sum(w.size for w in w0)
    rng = np.random.default_rng(0)
    for assumed in (np.zeros(size, dtype=np.int64), rng.integers(-steps, steps, size)):
        assert audit.exact_noise_proofs(history.final_weights, previous=w0, integer_sum=assumed,
                                        clipping_norm=0.5, expected_clients=12.0,
                                        steps=steps) == 0
