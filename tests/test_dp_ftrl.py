"""DP-FTRL (Kairouz et al. 2021): the binary-tree mechanism with exact noise, the rule, the
participation bound and its accounting.

Statistical tolerances: the noise tests use 40,000 coordinates per prefix sum with a fixed seed,
so the sample variance's relative standard error is sqrt(2 / 40,000) = 0.7 %; they allow 4 %.
"""

from __future__ import annotations

import inspect
import math
import warnings

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant

from fl_helpers import accounting, aggregation, discrete_noise, dp_ftrl, schedule


def _seeded(seed: int = 0) -> schedule.PrivateRandomness:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return schedule.PrivateRandomness.reproducible(seed)


def _leaves(rounds: int = 13, dimension: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, size=(rounds, dimension))


# ------------------------------------------------------------------------- the mechanism


def test_prefix_nodes_are_the_binary_decomposition():
    assert dp_ftrl.prefix_nodes(1) == [(0, 1)]
    assert dp_ftrl.prefix_nodes(6) == [(4, 6), (0, 4)]
    assert dp_ftrl.prefix_nodes(7) == [(6, 7), (4, 6), (0, 4)]
    for t in range(1, 300):
        nodes = dp_ftrl.prefix_nodes(t)
        assert len(nodes) == bin(t).count("1")
        covered = sorted(i for start, end in nodes for i in range(start + 1, end + 1))
        assert covered == list(range(1, t + 1))  # a partition of 1..t into dyadic intervals
        assert all((end - start) & (end - start - 1) == 0 and start % (end - start) == 0
                   for start, end in nodes)


@pytest.mark.parametrize("restart_every", [None, 1, 4, 5])
def test_online_tree_equals_the_reference_bit_for_bit(restart_every):
    leaves = _leaves()
    reference = dp_ftrl.tree_prefix_sums_reference(leaves, variance=400, randomness=_seeded(3),
                                                   restart_every=restart_every, first_round=2)
    online = dp_ftrl.tree_prefix_sums(leaves, variance=400, randomness=_seeded(3),
                                      restart_every=restart_every, first_round=2)
    assert online.dtype == np.int64 and reference.dtype == np.int64
    np.testing.assert_array_equal(online, reference)
    # The noise is there: the prefix sums are not the exact cumulative sums.
    restart = restart_every or len(leaves)
    exact = np.concatenate([np.cumsum(leaves[s:s + restart], axis=0)
                            for s in range(0, len(leaves), restart)])
    assert np.all(online != exact, axis=1).any()


def test_integer_noise_is_a_discrete_gaussian_of_the_node_variance():
    # One tree, one leaf: the prefix minus the leaf is one node's noise, an int64 discrete
    # Gaussian; its values are integers and its pmf is the closed form's.
    noise = dp_ftrl.tree_prefix_sums(np.zeros((1, 40_000), dtype=np.int64), variance=9,
                                     randomness=_seeded(1))[0]
    assert noise.dtype == np.int64
    values, counts = np.unique(noise, return_counts=True)
    expected = discrete_noise.discrete_gaussian_pmf(values, 9) * noise.size
    big = expected > 50
    assert np.all(np.abs(counts[big] - expected[big]) < 5 * np.sqrt(expected[big]))


def test_prefix_noise_variance_is_popcount_times_sigma2_and_the_steps_closed_form():
    variance, d, rounds = 25, 40_000, 8
    prefix = dp_ftrl.tree_prefix_sums(np.zeros((rounds, d), dtype=np.int64), variance=variance,
                                      randomness=_seeded(2))
    for t in range(1, rounds + 1):
        nodes = bin(t).count("1")
        assert nodes == len(dp_ftrl.prefix_nodes(t))
        assert np.var(prefix[t - 1]) == pytest.approx(nodes * variance, rel=0.04)
        step = prefix[t - 1] - (prefix[t - 2] if t > 1 else 0)
        assert np.var(step) == pytest.approx(
            dp_ftrl.noise_nodes_per_update(t) * variance, rel=0.04)
    # The closed forms: 1 2 1 3 ... nodes in the step, log2(t) + 1 at a power of two.
    assert [dp_ftrl.noise_nodes_per_update(t) for t in range(1, 9)] == [1, 2, 1, 3, 1, 2, 1, 4]


def test_secret_by_default_reproducible_only_when_asked_and_each_rounds_key_once():
    leaves = _leaves(rounds=4)
    first = dp_ftrl.tree_prefix_sums(leaves, variance=100)
    second = dp_ftrl.tree_prefix_sums(leaves, variance=100)
    assert not np.array_equal(first, second)  # fresh secret randomness each time
    np.testing.assert_array_equal(
        dp_ftrl.tree_prefix_sums(leaves, variance=100, randomness=_seeded(5)),
        dp_ftrl.tree_prefix_sums(leaves, variance=100, randomness=_seeded(5)))
    with pytest.warns(UserWarning, match="(?i)not private|protects nobody|seed"):
        schedule.PrivateRandomness.reproducible(5)
    # A secret randomness hands each round's key out once: a second tree over the same rounds
    # (which would release the same node noise on other data) is refused.
    secret = schedule.PrivateRandomness.secret()
    tree = dp_ftrl.TreeAggregator(dimension=6, variance=100, randomness=secret)
    tree.add(leaves[0], round_index=0)
    again = dp_ftrl.TreeAggregator(dimension=6, variance=100, randomness=secret)
    with pytest.raises(schedule.NoiseReuseError):
        again.add(leaves[0], round_index=0)


def test_rounds_must_come_in_order():
    tree = dp_ftrl.TreeAggregator(dimension=2, variance=4, randomness=_seeded())
    tree.add(np.zeros(2, dtype=np.int64), round_index=0)
    with pytest.raises(dp_ftrl.TreeStateError, match="round_index must be 1"):
        tree.add(np.zeros(2, dtype=np.int64), round_index=3)


def test_regenerating_the_noise_recovers_the_sum_only_for_a_known_seed():
    # The attack on reproducible noise: whoever knows the seed redraws every node's noise and
    # subtracts it, recovering the exact prefix sums. With secret noise the same attack (the
    # attacker guesses a seed) recovers nothing.
    leaves = _leaves(rounds=6)
    exact = np.cumsum(leaves, axis=0)
    zero = np.zeros_like(leaves)

    def attack(released: np.ndarray) -> np.ndarray:
        return released - dp_ftrl.tree_prefix_sums(zero, variance=10_000, randomness=_seeded(7))

    broken = dp_ftrl.tree_prefix_sums(leaves, variance=10_000, randomness=_seeded(7))
    np.testing.assert_array_equal(attack(broken), exact)
    real = dp_ftrl.tree_prefix_sums(leaves, variance=10_000)
    assert np.mean(attack(real) == exact) < 0.05


# ------------------------------------------------------------------------------ the rule


def _deltas(num_clients: int, rng: np.random.Generator) -> list[list[np.ndarray]]:
    return [[rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)]
            for _ in range(num_clients)]


def test_rule_steps_are_differences_of_the_tree_prefix_sums_scaled_by_c_over_m():
    rng = np.random.default_rng(0)
    rounds = [_deltas(3, rng) for _ in range(7)]
    clip, m, z = 0.5, 4.0, 0.8
    rule = dp_ftrl.DPFTRL(clipping_norm=clip, noise_multiplier=z, clients_per_round=m,
                          restart_every=4)
    randomness = _seeded(11)
    steps = []
    for t, deltas in enumerate(rounds):
        context = aggregation.RoundContext(round_index=t, num_clients=10, randomness=randomness)
        steps.append(np.concatenate([x.ravel() for x in
                                     rule.aggregate(deltas, np.ones(3), context)]))
    # From scratch: grid, leaves, the reference tree, the differences within each tree.
    steps_per_c = discrete_noise.GRID_STEPS
    leaves = np.stack([discrete_noise.clip_to_integer_grid(
        np.stack([np.concatenate([x.ravel() for x in delta]) for delta in deltas]),
        clipping_norm=clip, steps=steps_per_c).sum(axis=0) for deltas in rounds])
    variance = discrete_noise.exact_variance_at_least((z * steps_per_c) ** 2)
    assert rule.integer_variance == variance
    prefix = dp_ftrl.tree_prefix_sums_reference(leaves, variance=variance,
                                                randomness=_seeded(11), restart_every=4)
    previous = np.zeros_like(prefix)
    previous[1:] = prefix[:-1]
    previous[[0, 4]] = 0  # S_0 = 0 at every restart
    expected = (prefix - previous) * (clip / steps_per_c / m)
    np.testing.assert_allclose(np.stack(steps), expected.astype(np.float32), rtol=1e-6)
    # The model after round t within the first tree is w_0 + noised(S_t) C / (steps m).
    np.testing.assert_allclose(np.sum(steps[:3], axis=0),
                               prefix[2] * (clip / steps_per_c / m), rtol=1e-5, atol=1e-7)


def test_rule_noises_an_empty_round_and_needs_the_runs_randomness():
    rule = dp_ftrl.DPFTRL(clipping_norm=1.0, noise_multiplier=1.0, clients_per_round=2)
    assert rule.draws_run_noise and not rule.fusable
    context = aggregation.RoundContext(round_index=0, num_clients=4, randomness=_seeded())
    update = rule.aggregate_empty([(3, 2), (2,)], context)
    assert any(np.any(u != 0) for u in update)
    with pytest.raises(ValueError, match="randomness"):
        dp_ftrl.DPFTRL(clipping_norm=1.0, noise_multiplier=1.0, clients_per_round=2
                       ).aggregate_empty([(2,)], aggregation.RoundContext(0, 4, None))
    other = aggregation.RoundContext(round_index=1, num_clients=4, randomness=_seeded())
    with pytest.raises(dp_ftrl.TreeStateError, match="one run"):
        rule.aggregate_empty([(3, 2), (2,)], other)
    with pytest.raises(ValueError, match="finalize"):
        rule.finalize([np.ones(2, np.float32)], np.ones(1), context)


def test_a_clipped_client_moves_every_node_by_at_most_the_grid_norm():
    # Sensitivity: the leaf of a round with and without one client's (clipped) update differs by
    # an integer vector of norm <= GRID_STEPS, however large the update.
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(4, 8)) * 100
    grid = discrete_noise.clip_to_integer_grid(rows, clipping_norm=0.1,
                                               steps=discrete_noise.GRID_STEPS)
    difference = grid.sum(axis=0) - grid[1:].sum(axis=0)
    assert int(difference @ difference) <= discrete_noise.GRID_STEPS ** 2


# ------------------------------------------------------------------- participation


def test_participation_check_refuses_a_client_twice_in_one_tree():
    rounds = dp_ftrl.cyclic_schedule(10, clients_per_round=2, num_rounds=12)
    assert dp_ftrl.check_participation(rounds, num_clients=10, restart_every=5) == 3
    with pytest.raises(dp_ftrl.ParticipationError, match=r"client 0 .* rounds 0 and 5"):
        dp_ftrl.check_participation(rounds, num_clients=10, restart_every=6)
    with pytest.raises(dp_ftrl.ParticipationError):
        dp_ftrl.check_participation(rounds, num_clients=10)  # one tree, 12 rounds, 10 clients
    with pytest.raises(dp_ftrl.ParticipationError):
        dp_ftrl.epsilon_for_schedule(rounds, num_clients=10, noise_multiplier=1.0,
                                     restart_every=6, target_delta=1e-5)
    assert issubclass(dp_ftrl.ParticipationError, ValueError)


def test_availability_schedule_keeps_the_bound_and_fills_rounds():
    rounds = dp_ftrl.availability_schedule(50, clients_per_round=5, num_rounds=40,
                                           restart_every=10, availability=0.3, seed=1)
    busiest = dp_ftrl.check_participation(rounds, num_clients=50, restart_every=10)
    assert 1 <= busiest <= 4
    assert np.mean([len(r) for r in rounds]) > 4
    assert all(len(r) <= 5 for r in rounds)


# ------------------------------------------------------------------------ accounting


def test_tree_levels_is_dp_accountings_depth():
    for steps in [1, 2, 3, 4, 7, 8, 100, 1024, 1025]:
        assert accounting.tree_levels(steps) == math.ceil(math.log2(steps + 1))
        if steps > 100:
            continue
        # ... and the most completed nodes (i - 2^l, i], i <= steps, that contain one leaf.
        nodes = {(i - 2**level, i) for i in range(1, steps + 1) for level in range(11)
                 if i % 2**level == 0}
        most = max(sum(1 for start, end in nodes if start < leaf <= end)
                   for leaf in range(1, steps + 1))
        assert accounting.tree_levels(steps) == most


@pytest.mark.parametrize("z, sizes, per_client", [(1.0, [20] * 5, None), (3.3, [7, 7, 3], 2),
                                                  (0.7, 100, None)])
def test_epsilon_equals_dp_accountings_and_the_closed_form(z, sizes, per_client):
    delta = 1e-5
    ours = accounting.dp_ftrl_epsilon(noise_multiplier=z, tree_sizes=sizes, target_delta=delta,
                                      trees_per_client=per_client)
    listed = [sizes] if isinstance(sizes, int) else list(sizes)
    chosen = sorted(listed, reverse=True)[:per_client or len(listed)]
    theirs = rdp_privacy_accountant.RdpAccountant(
        list(accounting.RDP_ORDERS), dp_accounting.NeighboringRelation.REPLACE_SPECIAL)
    for size in chosen:
        theirs.compose(dp_accounting.SingleEpochTreeAggregationDpEvent(z, size))
    assert ours == theirs.get_epsilon(delta)
    # Closed form: one participation per tree is a Gaussian mechanism of sensitivity^2 = the
    # levels the leaf touches, so the RDP is alpha * sum(levels) / (2 z^2).
    levels = sum(accounting.tree_levels(s) for s in chosen)
    orders = np.asarray(accounting.RDP_ORDERS)
    rdp = accounting.dp_ftrl_rdp(noise_multiplier=z, tree_sizes=sizes,
                                 trees_per_client=per_client)
    np.testing.assert_allclose(rdp, orders * levels / (2 * z * z), rtol=1e-12)
    closed, _ = rdp_privacy_accountant.compute_epsilon(orders, orders * levels / (2 * z * z),
                                                       delta)
    assert ours == pytest.approx(closed, rel=1e-12)


def test_epsilon_per_round_and_calibration():
    curve = accounting.dp_ftrl_epsilon_per_round(noise_multiplier=2.0, num_rounds=50,
                                                 restart_every=16, target_delta=1e-5)
    assert np.all(np.diff(curve) >= 0)
    for t in [1, 16, 17, 50]:
        assert curve[t - 1] == pytest.approx(accounting.dp_ftrl_epsilon(
            noise_multiplier=2.0, tree_sizes=accounting.restart_tree_sizes(t, 16),
            target_delta=1e-5), rel=1e-9)
    assert accounting.restart_tree_sizes(50, 16) == [16, 16, 16, 2]
    assert accounting.restart_tree_sizes(50) == [50]
    z = accounting.dp_ftrl_noise_multiplier_for_epsilon(target_epsilon=2.0, target_delta=1e-5,
                                                        tree_sizes=[16] * 4)
    spent = accounting.dp_ftrl_epsilon(noise_multiplier=z, tree_sizes=[16] * 4,
                                       target_delta=1e-5)
    assert spent <= 2.0 and spent == pytest.approx(2.0, rel=1e-4)
    schedule_ = dp_ftrl.cyclic_schedule(40, clients_per_round=10, num_rounds=16)
    # 16 rounds of 10 of 40 clients: 4 trees of 4 rounds, every client once in each.
    assert dp_ftrl.epsilon_for_schedule(schedule_, num_clients=40, noise_multiplier=z,
                                        restart_every=4, target_delta=1e-5) \
        == accounting.dp_ftrl_epsilon(noise_multiplier=z, tree_sizes=[4] * 4, target_delta=1e-5)
    # Restarting less often than a pass is refused; one pass per tree is the bound.
    with pytest.raises(dp_ftrl.ParticipationError):
        dp_ftrl.epsilon_for_schedule(schedule_, num_clients=40, noise_multiplier=z,
                                     restart_every=8, target_delta=1e-5)


# ------------------------------------------------------------------------- bad inputs

_Z = np.zeros((3, 2), dtype=np.int64)
_BAD_INT = [None, "3", 1.5, True, -1, 0, 2**64]
_BAD_OPTIONAL_INT = _BAD_INT[1:]  # None is valid: "never restart", "every tree"
_BAD_POSITIVE = [None, "x", True, 0.0, -1.0, float("nan"), float("inf")]
_BAD_VARIANCE = [None, "9", 9.0, True, 0, -1, discrete_noise.MAX_VARIANCE + 1, 10**16]
_BAD_LEAVES = [None, "x", 3, np.zeros((3, 2)), np.zeros(3, np.int64), np.zeros((0, 2), np.int64),
               np.ones((3, 2), bool), [[1, 2], [3]]]
_BAD_RANDOMNESS = ["secret", 0, np.random.default_rng(0)]
_BAD_SCHEDULE = [None, "x", np.zeros(3, np.int64), [[0, 0]], [[-1]], [[10]], [[0.5]], [],
                 [np.array([True])]]
_BAD_SIZES = [None, "x", [], [0], [1.5], [True], -3, [10**8]]
_BAD_DELTA = [None, "x", 0.0, 1.0, float("nan")]
_SCHEDULE = [np.array([0, 1]), np.array([2, 3])]

#: (function, valid keyword arguments, {argument: [bad values]}) for tests/test_bad_inputs.py.
FUZZ = [
    (dp_ftrl.prefix_nodes, {"position": 5}, {"position": _BAD_INT + [2**41]}),
    (dp_ftrl.noise_nodes_per_update, {"position": 5}, {"position": _BAD_INT + [2**41]}),
    (dp_ftrl.tree_prefix_sums_reference, {"leaves": _Z, "variance": 4},
     {"leaves": _BAD_LEAVES, "variance": _BAD_VARIANCE, "randomness": _BAD_RANDOMNESS,
      "restart_every": _BAD_OPTIONAL_INT, "first_round": [None, -1, 1.0, "0"]}),
    (dp_ftrl.tree_prefix_sums, {"leaves": _Z, "variance": 4},
     {"leaves": _BAD_LEAVES, "variance": _BAD_VARIANCE, "randomness": _BAD_RANDOMNESS,
      "restart_every": _BAD_OPTIONAL_INT, "first_round": [None, -1, 1.0, "0"]}),
    (dp_ftrl.TreeAggregator, {"dimension": 2, "variance": 4},
     {"dimension": _BAD_INT + [2**28], "variance": _BAD_VARIANCE,
      "restart_every": _BAD_OPTIONAL_INT, "randomness": _BAD_RANDOMNESS,
      "first_round": [None, -1, 1.0]}),
    (dp_ftrl.TreeAggregator(dimension=2, variance=4).add,
     {"leaf": np.zeros(2, np.int64), "round_index": 0},
     {"leaf": [np.zeros(2), np.zeros(3, np.int64), np.ones(2, bool), "x"],
      "round_index": [None, -1, 1.0, 5]}),
    (dp_ftrl.DPFTRL, {"clipping_norm": 1.0, "noise_multiplier": 1.0, "clients_per_round": 2},
     {"clipping_norm": _BAD_POSITIVE, "noise_multiplier": _BAD_POSITIVE + [1e6],
      "clients_per_round": _BAD_POSITIVE, "restart_every": _BAD_OPTIONAL_INT}),
    (dp_ftrl.check_participation, {"schedule": _SCHEDULE, "num_clients": 4},
     {"schedule": _BAD_SCHEDULE, "num_clients": _BAD_INT, "restart_every": _BAD_OPTIONAL_INT}),
    (dp_ftrl.cyclic_schedule, {"num_clients": 4, "clients_per_round": 2, "num_rounds": 3},
     {"num_clients": _BAD_INT, "clients_per_round": _BAD_INT + [5],
      "num_rounds": _BAD_INT + [10**8]}),
    (dp_ftrl.availability_schedule, {"num_clients": 4, "clients_per_round": 2, "num_rounds": 3,
                                     "restart_every": 2, "availability": 0.5},
     {"num_clients": _BAD_INT, "clients_per_round": _BAD_INT + [5],
      "num_rounds": _BAD_INT + [10**8], "restart_every": _BAD_INT,
      "availability": [None, "x", 0.0, -0.1, 1.5, float("nan")], "seed": [None, -1, 1.5]}),
    (dp_ftrl.epsilon_for_schedule, {"schedule": _SCHEDULE, "num_clients": 4,
                                    "noise_multiplier": 1.0, "restart_every": None,
                                    "target_delta": 1e-5},
     {"schedule": _BAD_SCHEDULE, "num_clients": _BAD_INT,
      "noise_multiplier": _BAD_POSITIVE + [1e7], "restart_every": _BAD_OPTIONAL_INT,
      "target_delta": [None, "x", 0.0, 1.0, -1e-5, float("nan")]}),
    (accounting.tree_levels, {"num_leaves": 5}, {"num_leaves": _BAD_INT + [10**8]}),
    (accounting.restart_tree_sizes, {"num_rounds": 5, "restart_every": 2},
     {"num_rounds": _BAD_INT + [10**8], "restart_every": _BAD_OPTIONAL_INT}),
    (accounting.tree_aggregation_event, {"noise_multiplier": 1.0, "tree_sizes": [4, 4]},
     {"noise_multiplier": _BAD_POSITIVE + [1e7], "tree_sizes": _BAD_SIZES,
      "trees_per_client": _BAD_OPTIONAL_INT + [3]}),
    (accounting.dp_ftrl_rdp, {"noise_multiplier": 1.0, "tree_sizes": [4, 4]},
     {"noise_multiplier": _BAD_POSITIVE + [1e7], "tree_sizes": _BAD_SIZES,
      "trees_per_client": _BAD_OPTIONAL_INT + [3]}),
    (accounting.dp_ftrl_epsilon, {"noise_multiplier": 1.0, "tree_sizes": [4, 4],
                                  "target_delta": 1e-5},
     {"noise_multiplier": _BAD_POSITIVE + [1e7], "tree_sizes": _BAD_SIZES,
      "target_delta": _BAD_DELTA, "trees_per_client": _BAD_OPTIONAL_INT + [3]}),
    (accounting.dp_ftrl_epsilon_per_round, {"noise_multiplier": 1.0, "num_rounds": 5,
                                            "restart_every": 2, "target_delta": 1e-5},
     {"noise_multiplier": _BAD_POSITIVE + [1e7], "num_rounds": _BAD_INT + [10**8],
      "restart_every": _BAD_OPTIONAL_INT, "target_delta": [None, "x", 0.0, 1.0, float("nan")]}),
    (accounting.dp_ftrl_noise_multiplier_for_epsilon,
     {"target_epsilon": 2.0, "target_delta": 1e-5, "tree_sizes": [4, 4]},
     {"target_epsilon": _BAD_POSITIVE + [1e-9, 1e9], "tree_sizes": _BAD_SIZES,
      "target_delta": _BAD_DELTA, "trees_per_client": _BAD_OPTIONAL_INT + [3]}),
]


def _cases():
    for function, valid, arguments in FUZZ:
        name = getattr(function, "__qualname__", getattr(function, "__name__", "?"))
        for argument, values in arguments.items():
            for index, bad in enumerate(values):
                yield pytest.param(function, valid, argument, bad, id=f"{name}-{argument}-{index}")


@pytest.mark.parametrize("function, valid", [pytest.param(f, kw, id=getattr(f, "__qualname__",
                                                                            "?"))
                                             for f, kw, _ in FUZZ])
def test_fuzz_valid_calls_succeed(function, valid):
    if function.__qualname__ == "TreeAggregator.add":  # a fresh tree: add() changes its state,
        function = dp_ftrl.TreeAggregator(dimension=2, variance=4).add  # and the shared table's
    function(**valid)  # instance may already have been used (tests/test_bad_inputs.py runs first)


@pytest.mark.parametrize("function, valid, argument, bad", list(_cases()))
def test_bad_inputs_are_named(function, valid, argument, bad):
    if function.__qualname__ == "TreeAggregator.add":  # a fresh tree: add() changes its state
        function = dp_ftrl.TreeAggregator(dimension=2, variance=4).add
    with pytest.raises((ValueError, TypeError)) as error:
        function(**{**valid, argument: bad})
    assert argument in str(error.value), str(error.value)


def test_fuzz_covers_every_public_function():
    public = {name for name, member in inspect.getmembers(dp_ftrl)
              if not name.startswith("_") and (inspect.isfunction(member)
                                               or inspect.isclass(member))
              and getattr(member, "__module__", None) == dp_ftrl.__name__}
    errors = {"ParticipationError", "TreeStateError"}
    covered = {getattr(f, "__name__", "") for f, _, _ in FUZZ}
    assert public - errors - covered == set()
    new_accounting = {"tree_levels", "restart_tree_sizes", "tree_aggregation_event",
                      "dp_ftrl_rdp", "dp_ftrl_epsilon", "dp_ftrl_epsilon_per_round",
                      "dp_ftrl_noise_multiplier_for_epsilon"}
    assert new_accounting <= covered


# ------------------------------------------------------------------ run_dp_ftrl on the loop

import functools  # noqa: E402

from fl_helpers import client, models, training  # noqa: E402

_RNG = np.random.default_rng(0)
_CLIENTS = [(_RNG.random((8, 28, 28)).astype(np.float32), _RNG.integers(0, 10, 8))
            for _ in range(6)]
_TEST = (_RNG.random((16, 28, 28)).astype(np.float32), _RNG.integers(0, 10, 16))
_MODEL_FN = functools.partial(models.make_softmax_regression, seed=0)
#: 6 clients, 2 per round, a tree per pass of 3 rounds: every client once per tree.
_CYCLIC = dp_ftrl.cyclic_schedule(6, clients_per_round=2, num_rounds=6)
_RUN = {"schedule": _CYCLIC, "clipping_norm": 0.5, "clients_per_round": 2, "restart_every": 3,
        "target_delta": 1e-5, "local_epochs": 1, "batch_size": 4, "client_learning_rate": 0.1,
        "noise_multiplier": 0.7, "progress": False}


def _run(**changes) -> training.DPFTRLHistory:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dp_ftrl.run_dp_ftrl(_MODEL_FN, _CLIENTS, **{**_RUN, **changes})


def test_run_dp_ftrl_loop_and_fast_engine_agree_and_epsilon_is_the_accountings():
    histories = {engine: _run(engine=engine, test_data=_TEST, randomness=_seeded(5))
                 for engine in ("loop", "fast")}
    loop, fast = histories["loop"], histories["fast"]
    assert loop.engine is training.Engine.LOOP and fast.engine is training.Engine.FAST
    # Same noise (same seeded keys), clients trained by either engine: float32 rounding only
    # (a coordinate may land on the neighbouring grid point: C / 2^16 / m = 4e-6).
    for a, b in zip(loop.final_weights, fast.final_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(loop.test_loss, fast.test_loss, rtol=1e-4)
    expected = accounting.dp_ftrl_epsilon_per_round(noise_multiplier=0.7, num_rounds=6,
                                                    restart_every=3, target_delta=1e-5)
    for history in (loop, fast):
        np.testing.assert_array_equal(history.epsilon, expected)
        assert history.epsilon[-1] == pytest.approx(dp_ftrl.epsilon_for_schedule(
            _CYCLIC, num_clients=6, noise_multiplier=0.7, restart_every=3, target_delta=1e-5))
        assert history.aggregation == "DP-FTRL" and history.noise == "exact"
        assert history.trees_per_client == 2 and history.restart_every == 3
        assert history.accountant == dp_ftrl.ACCOUNTANT and history.expected_clients == 2


def test_run_dp_ftrl_equals_the_rule_applied_by_hand():
    # The loop's model after each round is w_0 + eta noised(S_t) C / (2^16 m) within a tree:
    # the DPFTRL rule stepped by hand on the same clients' updates gives the same weights.
    history = _run(engine="loop", randomness=_seeded(2), schedule=_CYCLIC[:2],
                   server_learning_rate=0.5)
    model = _MODEL_FN()
    trainer = client.LoopTrainer(model, _CLIENTS, local_epochs=1, batch_size=4,
                                 client_learning_rate=0.1, seed=0)
    rule = dp_ftrl.DPFTRL(clipping_norm=0.5, noise_multiplier=0.7, clients_per_round=2,
                          restart_every=3)
    randomness = _seeded(2)
    weights = [np.asarray(w, np.float32) for w in model.get_weights()]
    for t, ids in enumerate(_CYCLIC[:2]):
        deltas = trainer.train(weights, ids, t).deltas
        update = rule.aggregate(deltas, np.full(len(ids), 8), aggregation.RoundContext(
            round_index=t, num_clients=6, randomness=randomness))
        weights = aggregation.ServerSGD(0.5).apply(weights, update)
    for a, b in zip(history.final_weights, weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_run_dp_ftrl_refuses_a_violating_schedule_before_anything_is_drawn():
    randomness = schedule.PrivateRandomness.secret()
    # A pass takes 3 rounds; a tree of 4 rounds sees clients 0 and 1 twice (rounds 0 and 3).
    with pytest.raises(dp_ftrl.ParticipationError, match="client 0 takes part in rounds 0 and 3"):
        _run(restart_every=4, randomness=randomness)
    randomness.claim("another run")  # not claimed by the refused run


def test_run_dp_ftrl_is_secret_by_default_and_reproducible_only_when_asked():
    first, second = _run(), _run()
    assert not first.reproducible_noise and not second.reproducible_noise
    assert any(np.any(a != b) for a, b in zip(first.final_weights, second.final_weights,
                                              strict=True))
    with pytest.warns(UserWarning, match="seed"):
        seeded = dp_ftrl.run_dp_ftrl(_MODEL_FN, _CLIENTS, **_RUN,
                                     randomness=schedule.PrivateRandomness.reproducible(4),
                                     seed=4)
    again = _run(randomness=schedule.PrivateRandomness.reproducible(4, warn=False), seed=4)
    assert seeded.reproducible_noise and again.reproducible_noise
    for a, b in zip(seeded.final_weights, again.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # A secret randomness serves one run.
    randomness = schedule.PrivateRandomness.secret()
    _run(randomness=randomness)
    with pytest.raises(ValueError, match="randomness was already used"):
        _run(randomness=randomness)


def test_run_dp_ftrl_calibrates_z_to_a_target_epsilon_and_takes_empty_rounds():
    history = _run(noise_multiplier=None, target_epsilon=20.0)
    assert history.epsilon[-1] <= 20.0 and history.epsilon[-1] == pytest.approx(20.0, rel=1e-4)
    assert history.noise_multiplier == accounting.dp_ftrl_noise_multiplier_for_epsilon(
        target_epsilon=20.0, target_delta=1e-5, tree_sizes=[3, 3])
    # An availability schedule may leave a round empty: the tree takes a zero leaf, and noise.
    sparse = [np.array([0, 1]), np.array([], np.int64), np.array([2])]
    history = _run(schedule=sparse, restart_every=None)
    assert len(history.rounds) == 3 and history.trees_per_client == 1
    with pytest.raises(ValueError, match="exactly one"):
        _run(target_epsilon=2.0)


_RUN_VALID = {"model_fn": _MODEL_FN, "client_datasets": _CLIENTS[:3],
              "schedule": [np.array([0, 1])], "clipping_norm": 1.0, "clients_per_round": 2,
              "restart_every": None, "target_delta": 1e-5, "local_epochs": 1, "batch_size": 4,
              "client_learning_rate": 0.1, "noise_multiplier": 1.0, "progress": False}
_RUN_BAD = {
    "model_fn": [None, 3, "softmax", lambda: 3],
    "client_datasets": [None, "abc", 3, [], [(_CLIENTS[0][0],)]],
    "schedule": _BAD_SCHEDULE[:-2] + [[np.array([3])]],
    "clipping_norm": _BAD_POSITIVE, "clients_per_round": _BAD_POSITIVE,
    "restart_every": _BAD_OPTIONAL_INT, "target_delta": _BAD_DELTA,
    "local_epochs": _BAD_INT, "batch_size": _BAD_OPTIONAL_INT,
    "client_learning_rate": _BAD_POSITIVE, "noise_multiplier": _BAD_POSITIVE[1:] + [1e6],
    "target_epsilon": ["x", 0.0, -1.0, float("nan")],
    "server_learning_rate": _BAD_POSITIVE,
    "test_data": ["ab", 3, (_TEST[0],), (_TEST[0], _TEST[1][:3])],
    "seed": [None, -1, 1.5, "0"], "progress": [None, "yes", 2],
    "engine": ["gpu", None, 3], "initial_weights": ["w", [np.zeros(3)]],
    "callback": [3, "f", lambda: None],
    "randomness": _BAD_RANDOMNESS, "diagnostics": [None, "yes", 2],
}
FUZZ.append((dp_ftrl.run_dp_ftrl, _RUN_VALID, _RUN_BAD))


@pytest.mark.parametrize("argument, bad", [pytest.param(a, b, id=f"{a}-{i}")
                                           for a, values in _RUN_BAD.items()
                                           for i, b in enumerate(values)])
def test_run_dp_ftrl_names_a_bad_argument(argument, bad):
    with pytest.raises((ValueError, TypeError)) as error:
        dp_ftrl.run_dp_ftrl(**{**_RUN_VALID, argument: bad})
    assert argument in str(error.value), str(error.value)
