"""DP-FedAvg through the one training loop: the rule's maths, secret noise, accounting, outputs.

Tolerances as in tests/test_engine.py: the fast engine and the per-client loop agree to float32
rounding (weights to 1e-5, accuracies to one example in 1,000).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fl_helpers import accounting, aggregation, client, discrete_noise, models, schedule, training

WEIGHT_ATOL = 1e-5
ACCURACY_ATOL = 1.5e-3


def _dp(clients, test, **kwargs):
    args = dict(num_rounds=3, sampling_probability=0.3, local_epochs=1, batch_size=10,
                client_learning_rate=0.2, clipping_norm=0.5, noise_multiplier=0.5,
                test_data=test, seed=2, progress=False)
    args.update(kwargs)
    # reproducible=True: the seed's PrivateRandomness (NOT private), as the tests' shorthand.
    if args.pop("reproducible", False):
        args["randomness"] = schedule.PrivateRandomness.reproducible(args["seed"], warn=False)
    args.setdefault("expected_clients", args["sampling_probability"] * len(clients))  # N public
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reproducible-noise / diagnostics notes
        return training.run_dp_fedavg(models.make_softmax_regression, clients, **args)


def _flat(weights):
    return np.concatenate([np.ravel(w) for w in weights]).astype(np.float64)


def test_dp_without_noise_or_clipping_is_fedavg(small_federation):
    # q = 1 samples all N clients, so the fixed denominator q N is the actual number of clients;
    # equal client sizes make FedAvg's weights n_k / n equal to 1 / N as well; C = 1e6 never
    # clips, z = 0 adds nothing, server_learning_rate = 1 takes the average as it is.
    clients, test = small_federation
    dp = _dp(clients["iid"], test, sampling_probability=1.0, clipping_norm=1e6,
             noise_multiplier=0.0, seed=4, diagnostics=True)
    plain = training.run_fedavg(models.make_softmax_regression, clients["iid"], num_rounds=3,
                                clients_per_round=16, local_epochs=1, batch_size=10,
                                client_learning_rate=0.2, test_data=test, seed=4, progress=False)
    assert np.all(dp.diagnostics.fraction_clipped(1e6) == 0)
    np.testing.assert_allclose(dp.test_accuracy, plain.test_accuracy, rtol=0, atol=ACCURACY_ATOL)
    for a, b in zip(dp.final_weights, plain.final_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


def test_q1_z0_is_bit_identical_and_secret_noise_differs(small_federation):
    clients, _ = small_federation
    kwargs = dict(sampling_probability=1.0, num_rounds=2)
    first = _dp(clients["iid"], None, noise_multiplier=0.0, **kwargs)
    again = _dp(clients["iid"], None, noise_multiplier=0.0, **kwargs)
    np.testing.assert_array_equal(_flat(first.final_weights), _flat(again.final_weights))
    assert not first.reproducible_noise
    # Same arguments, seed included, z > 0: the secret noise makes the released models differ.
    noisy = [_dp(clients["iid"], None, noise_multiplier=1.0, **kwargs) for _ in range(2)]
    assert not np.array_equal(_flat(noisy[0].final_weights), _flat(noisy[1].final_weights))
    # Reproducible noise only when asked for, and then bit-identical and labelled.
    seeded = [_dp(clients["iid"], None, noise_multiplier=1.0, reproducible=True, **kwargs)
              for _ in range(2)]
    np.testing.assert_array_equal(_flat(seeded[0].final_weights), _flat(seeded[1].final_weights))
    assert seeded[0].reproducible_noise


def test_reproducible_noise_warns_that_it_is_not_private(small_federation):
    clients, _ = small_federation
    with pytest.warns(UserWarning, match="does not hold against them"):
        training.run_dp_fedavg(models.make_softmax_regression, clients["iid"], num_rounds=1,
                               sampling_probability=0.5, local_epochs=1, batch_size=10,
                               client_learning_rate=0.1, clipping_norm=0.5, noise_multiplier=1.0,
                               progress=False,
                               randomness=schedule.PrivateRandomness.reproducible(0),
                               expected_clients=0.5 * len(clients["iid"]))


def test_the_seeded_noise_attack_works_only_on_reproducible_noise(small_federation):
    # An observer of one released round who knows the seed regenerates the noise, subtracts it
    # and recovers the noiseless sum of clipped updates; with secret noise this fails.
    clients, _ = small_federation
    # Float noise: the regenerated draws are the float Gaussian's (exact noise: the same attack
    # with discrete_noise, in test_exact_seeded_noise_attack_works_only_on_reproducible_noise).
    kwargs = dict(sampling_probability=1.0, num_rounds=1, noise_multiplier=2.0, seed=7,
                  noise="float")
    clean = _dp(clients["iid"], None, **{**kwargs, "noise_multiplier": 0.0})
    start = _flat(models.make_softmax_regression().get_weights())
    expected = len(clients["iid"])  # q N with q = 1
    clean_sum = (_flat(clean.final_weights) - start) * expected
    shapes = [w.shape for w in clean.final_weights]
    regenerated = _flat(schedule.gaussian_noise(
        shapes, stddev=2.0 * 0.5,
        rng=schedule.PrivateRandomness.reproducible(7, warn=False).noise_rng(0)))
    errors = {}
    for reproducible in (True, False):
        run = _dp(clients["iid"], None, reproducible=reproducible, **kwargs)
        recovered = (_flat(run.final_weights) - start) * expected - regenerated
        errors[reproducible] = np.linalg.norm(recovered - clean_sum) / np.linalg.norm(clean_sum)
    assert errors[True] < 1e-4
    assert errors[False] > 0.5


def test_exact_seeded_noise_attack_works_only_on_reproducible_noise(small_federation):
    # The same attack on the default exact path: the observer regenerates round 0's discrete
    # Gaussian integers from the seed and subtracts them from the released integer sum.
    clients, _ = small_federation
    kwargs = dict(sampling_probability=1.0, num_rounds=1, noise_multiplier=2.0, seed=7,
                  server_learning_rate=1.0)
    start = _flat(models.make_softmax_regression().get_weights())
    expected = len(clients["iid"])
    rule = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=2.0,
                                expected_clients=float(expected))
    regenerated = discrete_noise.discrete_gaussian(
        rule.integer_variance, start.size,
        randomness=schedule.PrivateRandomness.reproducible(7, warn=False), round_index=0)
    step = 0.5 / discrete_noise.GRID_STEPS
    integer_sums = {}
    for reproducible in (True, False):
        run = _dp(clients["iid"], None, reproducible=reproducible, **kwargs)
        released = (_flat(run.final_weights) - start) * expected / step
        integer_sums[reproducible] = released - regenerated
    # The noiseless integer sum has norm at most N * GRID_STEPS; the noise's is about
    # z GRID_STEPS sqrt(d): the attack recovers a sum inside that ball only with the seed.
    bound = expected * discrete_noise.GRID_STEPS
    assert np.linalg.norm(integer_sums[True]) <= bound * 1.001
    assert np.linalg.norm(integer_sums[False]) > 5 * bound


def test_engine_equals_loop_with_clipping_and_noise(small_federation):
    clients, test = small_federation
    fast = _dp(clients["dirichlet"], test, engine="fast", reproducible=True,
               diagnostics=True)
    loop = _dp(clients["dirichlet"], test, engine="loop", reproducible=True,
               diagnostics=True)
    assert (fast.engine, loop.engine) == (training.Engine.FAST, training.Engine.LOOP)
    assert fast.diagnostics.fraction_clipped(0.5).mean() > 0.5  # C = 0.5 really clips
    for a, b in zip(fast.diagnostics.update_norms, loop.diagnostics.update_norms, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    np.testing.assert_allclose(fast.test_accuracy, loop.test_accuracy, rtol=0, atol=ACCURACY_ATOL)
    for a, b in zip(fast.final_weights, loop.final_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


def test_every_clipped_update_is_inside_the_ball(small_federation):
    clients, _ = small_federation
    history = _dp(clients["dirichlet"], None, clipping_norm=1.5, num_rounds=4,
                  sampling_probability=0.5, diagnostics=True)
    norms = np.concatenate(history.diagnostics.update_norms)
    clipped = np.concatenate(history.diagnostics.clipped_update_norms)
    assert 0 < np.mean(norms > 1.5) < 1  # some clipped, some not
    assert np.all(clipped <= 1.5 * (1 + 1e-6))  # float32 rounding of C itself
    np.testing.assert_allclose(clipped, np.minimum(norms, 1.5), rtol=1e-5)


def test_noise_on_the_sum_has_std_z_times_c():
    # The rule alone: an all-zero sum plus noise, divided by 1. 20 rounds of 7,850 coordinates
    # give 157,000 draws: the sample std has relative standard error 1 / sqrt(2 * 157000) =
    # 0.18 %, so a 1 % bound is > 5 standard errors wide and still catches a scale off by 2 %.
    rule = aggregation.DPFedAvg(clipping_norm=0.7, noise_multiplier=1.3, expected_clients=1.0)
    randomness = schedule.PrivateRandomness.secret()
    zeros = [np.zeros((784, 10), np.float32), np.zeros(10, np.float32)]
    steps = [_flat(rule.finalize(zeros, np.zeros(0), aggregation.RoundContext(t, 10, randomness)))
             for t in range(20)]
    draws = np.concatenate(steps)
    sigma = 1.3 * 0.7
    assert abs(np.std(draws) / sigma - 1) < 0.01
    assert abs(np.mean(draws)) < 5 * sigma / np.sqrt(draws.size)
    assert abs(np.corrcoef(steps[0], steps[1])[0, 1]) < 5 / np.sqrt(steps[0].size)  # fresh noise


def test_local_noise_grows_with_the_number_of_reports():
    rule = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=2.0, expected_clients=10.0,
                                placement=aggregation.NoisePlacement.LOCAL)
    assert rule.noise_stddev(9) == pytest.approx(2.0 * 0.5 * 3, rel=1e-4)
    central = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=2.0, expected_clients=10.0)
    assert central.noise_stddev(9) == pytest.approx(1.0, rel=1e-4)  # t (t - 1) variance


def test_noise_is_added_to_the_sum_then_divided_by_q_n(small_federation):
    clients, _ = small_federation
    kwargs = dict(num_rounds=1, sampling_probability=0.5, clipping_norm=0.3,
                  reproducible=True)
    clean = _dp(clients["iid"], None, noise_multiplier=0.0, **kwargs)
    noisy = _dp(clients["iid"], None, noise_multiplier=2.0, **kwargs)
    denominator = 0.5 * len(clients["iid"])
    noise = _flat(noisy.final_weights) - _flat(clean.final_weights)
    # 7,850 draws: relative standard error of the std is 0.8 %, the bound is 5 %.
    assert abs(np.std(noise * denominator) / (2.0 * 0.3) - 1) < 0.05


def test_poisson_rounds_vary_and_an_empty_round_is_only_noise(small_federation):
    clients, test = small_federation
    history = _dp(clients["dirichlet"], test, sampling_probability=0.1, num_rounds=8,
                  reproducible=True, diagnostics=True)
    counts = history.diagnostics.num_sampled
    assert len(set(counts.tolist())) > 1 and 0 in counts  # q N = 1.6
    empty = int(np.flatnonzero(counts == 0)[0])
    assert np.isnan(history.diagnostics.fraction_clipped(0.5)[empty])


def test_poisson_sampling_rate_follows_q():
    randomness = schedule.PrivateRandomness.secret()
    counts = [schedule.sample_clients_poisson(1000, sampling_probability=0.05,
                                              rng=randomness.sampling_rng(t)).size
              for t in range(200)]
    # Binomial(1000, 0.05): mean 50, std 6.9; the mean of 200 rounds has std 0.49.
    assert abs(np.mean(counts) - 50) < 2.5


def test_private_outputs_only_by_default(small_federation):
    clients, test = small_federation
    calls = []
    history = _dp(clients["iid"], test, callback=calls.append, target_delta=1e-5)
    assert history.diagnostics is None
    assert set(calls[0]) == {"round", "test_accuracy", "test_loss", "epsilon"}
    assert set(history.as_dict()) == {"rounds", "test_accuracy", "test_loss",
                                      "seconds_per_round", "epsilon"}
    leaky = {"update_norms", "clipped_update_norms", "sampled_clients", "num_sampled",
             "fraction_clipped", "mean_update_norm"}
    assert not leaky & set(vars(history))
    # A round's time tells how many clients the secret schedule sampled: a private run reports
    # every round at the mean (the total is kept).
    assert np.ptp(history.seconds_per_round) == 0 and history.total_seconds > 0
    with pytest.warns(UserWarning, match="NOT covered by the reported epsilon"):
        training.run_dp_fedavg(models.make_softmax_regression, clients["iid"], num_rounds=1,
                               sampling_probability=0.5, local_epochs=1, batch_size=10,
                               client_learning_rate=0.1, clipping_norm=0.5, noise_multiplier=1.0,
                               progress=False, diagnostics=True,
                               expected_clients=0.5 * len(clients["iid"]))


def test_epsilon_is_the_accountants_and_the_budget_stops_training(small_federation):
    clients, _ = small_federation
    kwargs = dict(noise_multiplier=1.1, sampling_probability=0.3, target_delta=1e-5)
    full = _dp(clients["iid"], None, num_rounds=5, **kwargs)
    expected = accounting.epsilon_per_round(noise_multiplier=1.1, sampling_probability=0.3,
                                            num_rounds=5, target_delta=1e-5,
                                            accountant="discrete")  # exact noise's
    np.testing.assert_allclose(full.epsilon, expected, rtol=1e-12)
    budget = float(expected[2])  # enough for exactly 3 rounds
    stopped = _dp(clients["iid"], None, num_rounds=5, target_epsilon=budget, **kwargs)
    assert stopped.rounds.tolist() == [1, 2, 3]
    assert stopped.stopped_early is training.StopReason.BUDGET
    assert stopped.epsilon[-1] <= budget
    by_callback = _dp(clients["iid"], None, num_rounds=5,
                      callback=lambda figures: figures["round"] == 2)
    assert by_callback.rounds.tolist() == [1, 2]
    assert by_callback.stopped_early is training.StopReason.CALLBACK


def test_local_dp_epsilon_is_the_busiest_clients_gaussian_composition():
    busiest = np.array([0, 1, 1, 2, 4])
    eps = accounting.local_dp_epsilon_per_round(noise_multiplier=3.0, busiest_counts=busiest,
                                              target_delta=1e-5)
    per_report = accounting.epsilon_per_round(noise_multiplier=1.5, sampling_probability=1.0,
                                              num_rounds=4, target_delta=1e-5,
                                              accountant="discrete")  # the default
    np.testing.assert_allclose(eps, [0.0, per_report[0], per_report[0], per_report[1],
                                     per_report[3]])


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(engine="gpu"), ValueError, "engine must be one of"),
        (dict(noise_multiplier=-1.0), ValueError, "noise_multiplier must be >= 0"),
        (dict(clipping_norm=0.0), ValueError, "clipping_norm must be > 0"),
        (dict(sampling_probability=0.0), ValueError, "sampling_probability must be in"),
        (dict(target_epsilon=1.0), ValueError, "target_epsilon needs target_delta"),
        (dict(target_epsilon=1e-3, target_delta=1e-5), ValueError, "exceeded by the first round"),
        (dict(server_learning_rate=0.0), ValueError, "server_learning_rate must be > 0"),
        (dict(noise_placement="edge"), ValueError, "noise_placement must be"),
        (dict(reproducible_noise=True), TypeError, "reproducible_noise"),  # the old name: gone
        (dict(randomness=7), TypeError, "randomness must be a PrivateRandomness"),
    ],
)
def test_dp_rejects_bad_arguments(small_federation, change, error, match):
    clients, _ = small_federation
    with pytest.raises(error, match=match):
        _dp(clients["iid"], None, **change)


@pytest.fixture
def round_args(small_federation):
    clients, _ = small_federation
    model = models.make_softmax_regression()
    return dict(model=model, global_weights=model.get_weights(), client_datasets=clients["iid"],
                round_index=0, local_epochs=1, batch_size=10, client_learning_rate=0.1,
                clipping_norm=0.5, noise_multiplier=1.0, expected_clients=4.0,
                randomness=schedule.PrivateRandomness.secret())


@pytest.mark.parametrize(
    ("sampled", "round_index", "error", "match"),
    [
        ([0, 0], 0, ValueError, "must not repeat a client"),
        ([True, False], 0, TypeError, "integer client ids"),
        ([0.0, 1.0], 0, TypeError, "integer client ids"),
        ([3, 16], 0, ValueError, r"ids in 0\.\.15"),
        ([-1], 0, ValueError, r"ids in 0\.\.15"),
        ([0, 1], 0.0, TypeError, "round_index must be an integer"),
        ([0, 1], -1, ValueError, "round_index must be >= 0"),
    ],
)
def test_reference_round_rejects_what_would_break_the_guarantee(round_args, sampled, round_index,
                                                                error, match):
    round_args["round_index"] = round_index
    with pytest.raises(error, match=match):
        training.dp_fedavg_round(sampled_clients=np.array(sampled), **round_args)


@pytest.mark.parametrize("noise", ["exact", "float"])
def test_reference_round_equals_the_loop(round_args, small_federation, noise):
    clients, _ = small_federation
    randomness = schedule.PrivateRandomness.reproducible(3, warn=False)
    round_args.update(randomness=randomness, round_index=2, noise=noise)
    sampled = np.array([1, 5, 6])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aggregation.FloatNoiseWarning)
        new = training.dp_fedavg_round(sampled_clients=sampled, **round_args)
    model = round_args["model"]
    datasets = client.check_datasets(model, clients["iid"])
    results = client.LoopTrainer(model, datasets, local_epochs=1, batch_size=10,
                                 client_learning_rate=0.1, seed=0).train(
        round_args["global_weights"], sampled, 2)
    shapes = [w.shape for w in new]
    if noise == "float":
        clipped = [aggregation.privacy.clip_by_l2_norm(d, 0.5)[0] for d in results.deltas]
        drawn = schedule.gaussian_noise(shapes, stddev=0.5, rng=randomness.noise_rng(2))
        by_hand = [w + (sum(c[i] for c in clipped) + drawn[i]) / 4.0
                   for i, w in enumerate(round_args["global_weights"])]
    else:  # clip onto the integer grid, sum exactly, add the round's discrete Gaussian
        steps = discrete_noise.GRID_STEPS
        rows = np.stack([_flat(d) for d in results.deltas])
        total = discrete_noise.clip_to_integer_grid(rows, clipping_norm=0.5,
                                                    steps=steps).sum(axis=0)
        variance = discrete_noise.exact_variance_at_least((1.0 * steps) ** 2)
        flat = (total + discrete_noise.discrete_gaussian(variance, total.size,
                                                         randomness=randomness, round_index=2)
                ) * (0.5 / steps / 4.0)
        pieces = np.split(flat, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
        by_hand = [w + p.reshape(w.shape) for w, p in
                   zip(round_args["global_weights"], pieces, strict=True)]
    for a, b in zip(new, by_hand, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_exact_noise_runs_on_both_engines_and_is_accounted_as_discrete(small_federation):
    """noise='exact': the same reproducible integer noise on both engines (the updates reach
    the integer grid through float rounding that may differ by one step in rare coordinates),
    the discrete accountant's epsilon, and the history says so."""
    clients, test = small_federation
    runs = {engine: _dp(clients["iid"], test, noise="exact", engine=engine, target_delta=1e-5,
                        reproducible=True) for engine in ("fast", "loop")}
    for history in runs.values():
        assert history.noise == "exact" and history.accountant == "discrete"
        expected = accounting.epsilon_per_round(
            noise_multiplier=0.5, sampling_probability=0.3, num_rounds=3, target_delta=1e-5,
            accountant="discrete")
        np.testing.assert_allclose(history.epsilon, expected)
    for a, b in zip(runs["fast"].final_weights, runs["loop"].final_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


def test_exact_noise_on_the_sum_has_std_z_times_c():
    """An empty round releases only the noise, divided by q N: its std times q N is
    sqrt(integer_variance) C / GRID_STEPS, which is z C to within 2 / sigma."""
    rule = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=1.5, expected_clients=4.0,
                                noise="exact")
    context = aggregation.RoundContext(
        round_index=0, num_clients=10,
        randomness=schedule.PrivateRandomness.reproducible(4, warn=False))
    released = rule.finalize([np.zeros((100, 200), np.float32)], np.zeros(0, np.int64), context)
    noise = released[0].astype(np.float64) * 4.0
    assert noise.std() == pytest.approx(1.5 * 0.5, rel=0.03)  # 20,000 draws: 0.5 % s.e.
    assert rule.noise_stddev(0) == pytest.approx(0.75, rel=1e-4)  # t (t - 1): sigma + 1/2
    with pytest.raises(ValueError, match="call aggregate"):
        rule.finalize([np.ones((2, 2), np.float32)], np.ones(1, np.int64), context)
    with pytest.raises(ValueError, match="noise must be 'float' or 'exact'"):
        aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=1.0, expected_clients=4.0,
                             noise="exactly")


def test_exact_clipping_bounds_every_integer_update_exactly():
    """Rounding to the grid can push a clipped update past C; the exact integer check pulls it
    back: every row's squared norm is at most GRID_STEPS^2, in integers."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(50, 7850)) * rng.uniform(0.01, 100, size=(50, 1))
    ints = discrete_noise.clip_to_integer_grid(rows, clipping_norm=0.5,
                                               steps=discrete_noise.GRID_STEPS)
    squared = np.einsum("ij,ij->i", ints, ints)
    assert squared.max() <= discrete_noise.GRID_STEPS**2
    big = np.linalg.norm(rows, axis=1) > 0.5
    assert np.all(squared[big] > (0.999 * discrete_noise.GRID_STEPS) ** 2)  # clipped, not lost
    small = ~big
    np.testing.assert_allclose(ints[small] * 0.5 / discrete_noise.GRID_STEPS, rows[small],
                               atol=0.5 * 0.5 / discrete_noise.GRID_STEPS)


def test_one_example_clients_take_the_factor_path_with_the_same_result(small_federation):
    """One example per client, one step (the private-MNIST headline's layout): the fast engine
    rounds the rank-one factors of each update (grid C / 2^22) instead of forming it; without
    noise the round equals the loop's dense integer path (grid C / 2^16) to rounding."""
    clients, test = small_federation
    one_each = [(x[i:i + 1], y[i:i + 1]) for x, y in clients["iid"] for i in range(3)]
    runs = {engine: _dp(one_each, test, noise="exact", engine=engine, noise_multiplier=0.0,
                        clipping_norm=0.05, client_learning_rate=0.5, reproducible=True)
            for engine in ("fast", "loop")}
    assert runs["fast"].engine is training.Engine.FAST
    for a, b in zip(runs["fast"].final_weights, runs["loop"].final_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_integer_outer_sum_is_the_clipped_sum_on_the_grid_and_exactly_bounded():
    rng = np.random.default_rng(1)
    steps, clip = discrete_noise.FACTOR_GRID_STEPS, 0.5
    layers = [(rng.normal(size=(40, 30)) * rng.uniform(0.1, 50, (40, 1)),
               rng.normal(size=(40, 5)) * rng.uniform(0.001, 1, (40, 1))),
              (rng.normal(size=(40, 5)), rng.normal(size=(40, 3)) * 0.01)]
    dense = [np.concatenate([np.outer(np.append(a[k], 1.0), w[k]).ravel() for a, w in layers])
             for k in range(40)]
    norms = np.array([np.linalg.norm(u) for u in dense])
    clipped = sum(u * min(1.0, clip / n) for u, n in zip(dense, norms, strict=True))
    for k in range(40):  # one client alone: its own integer update, inside the bound exactly
        single = discrete_noise.integer_outer_sum([(a[k:k + 1], w[k:k + 1]) for a, w in layers],
                                                  clipping_norm=clip, steps=steps)
        flat = np.concatenate([np.concatenate([kern, bias[None]]).ravel()
                               for kern, bias in zip(single[::2], single[1::2], strict=True)])
        assert int(flat @ flat) <= steps**2
        expected = dense[k] * min(1.0, clip / norms[k]) * steps / clip
        np.testing.assert_allclose(flat, expected, rtol=0, atol=2e-3 * steps)
    total = discrete_noise.integer_outer_sum(layers, clipping_norm=clip, steps=steps)
    flat = np.concatenate([np.concatenate([kern, bias[None]]).ravel()
                           for kern, bias in zip(total[::2], total[1::2], strict=True)])
    np.testing.assert_allclose(flat * clip / steps, clipped, rtol=0, atol=2e-3 * clip * 6)


def test_run_fedavg_refuses_a_rule_that_needs_a_private_runs_randomness(small_federation):
    # run_fedavg has no secret randomness and no accountant: a noising DP-FedAvg used to pass
    # every check and fail in round 1; it is refused before training, naming the way out.
    clients, _ = small_federation
    rule = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=1.0, expected_clients=4.0)
    assert rule.draws_run_noise
    with pytest.raises(ValueError, match="use training.run_dp_fedavg"):
        training.run_fedavg(models.make_softmax_regression, clients["iid"], num_rounds=1,
                            clients_per_round=4, local_epochs=1, batch_size=10,
                            client_learning_rate=0.1, progress=False, aggregation_rule=rule)
    clipping_only = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=0.0,
                                         expected_clients=4.0)
    assert not clipping_only.draws_run_noise  # no noise: run_fedavg may clip and average


class _DescribedGaussianFedAvg(aggregation.FedAvg):
    """A rule that draws no run noise but describes a private release (as a distributed-noise
    rule would): run_fedavg must refuse it, since it neither samples secretly nor accounts."""

    def dp_event(self, *, sampling_probability):
        import dp_accounting
        return dp_accounting.PoissonSampledDpEvent(sampling_probability,
                                                   dp_accounting.GaussianDpEvent(1.0))


def test_run_fedavg_refuses_a_rule_that_describes_a_private_release(small_federation):
    clients, _ = small_federation
    args = dict(num_rounds=1, clients_per_round=4, local_epochs=1, batch_size=10,
                client_learning_rate=0.1, progress=False)
    with pytest.raises(ValueError, match=r"describes a private release \(PoissonSampledDpEvent\)"
                                         r".*run_dp_fedavg"):
        training.run_fedavg(models.make_softmax_regression, clients["iid"], **args,
                            aggregation_rule=_DescribedGaussianFedAvg())
    # Clipping without noise describes itself as not private: accepted, and it averages.
    clipping_only = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=0.0,
                                         expected_clients=4.0)
    assert type(clipping_only.dp_event(sampling_probability=0.5)).__name__ == "NonPrivateDpEvent"
    history = training.run_fedavg(models.make_softmax_regression, clients["iid"], **args,
                                  aggregation_rule=clipping_only)
    assert history.rounds.tolist() == [1]


def test_dp_fedavg_describes_its_round_to_the_accountant():
    import dp_accounting
    central = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=1.2, expected_clients=3.0)
    assert central.dp_event(sampling_probability=0.3) == dp_accounting.PoissonSampledDpEvent(
        0.3, dp_accounting.GaussianDpEvent(1.2))
    assert central.dp_event(sampling_probability=1.0) == dp_accounting.GaussianDpEvent(1.2)
    local = aggregation.DPFedAvg(clipping_norm=0.5, noise_multiplier=1.2, expected_clients=3.0,
                                 placement=aggregation.NoisePlacement.LOCAL)
    # replace-one: two clipped updates differ by 2 C, so a report's multiplier is z / 2
    assert local.dp_event(sampling_probability=0.3) == dp_accounting.GaussianDpEvent(0.6)
    assert aggregation.FedAvg().dp_event(sampling_probability=0.3) is None
    for bad, error in ((0.0, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                       ("0.3", TypeError), (None, TypeError)):
        with pytest.raises(error, match="sampling_probability"):
            central.dp_event(sampling_probability=bad)
        with pytest.raises(error, match="sampling_probability"):
            aggregation.FedAvg().dp_event(sampling_probability=bad)


@pytest.mark.parametrize("placement", ["central", "local"])
def test_a_runs_epsilon_is_dp_accountings_on_the_rules_event(small_federation, placement):
    # Float noise and the PLD: the loop's epsilon is dp-accounting's own PLDAccountant on the
    # rule's event, composed per round (central) or per report of the busiest client (local).
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant
    clients, _ = small_federation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aggregation.FloatNoiseWarning)
        history = _dp(clients["iid"], None, num_rounds=4, noise_multiplier=2.0,
                      target_delta=1e-5, noise="float", accountant="pld",
                      noise_placement=placement, reproducible=True, diagnostics=True)
    if placement == "central":
        event = dp_accounting.PoissonSampledDpEvent(0.3, dp_accounting.GaussianDpEvent(2.0))
        counts = [1, 2, 3, 4]
    else:
        event = dp_accounting.GaussianDpEvent(1.0)
        counts = schedule.busiest_client_counts(history.diagnostics.sampled_clients,
                                                len(clients["iid"])).tolist()
    for t, count in enumerate(counts):
        if count == 0:
            assert history.epsilon[t] == 0.0
            continue
        own = pld_privacy_accountant.PLDAccountant(
            value_discretization_interval=accounting.PLD_VALUE_DISCRETIZATION_INTERVAL)
        own.compose(event, count)
        assert history.epsilon[t] == pytest.approx(own.get_epsilon(1e-5), rel=1e-8)
