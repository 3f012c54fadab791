"""Tests of fl_helpers.robust (attacks, robust rules against Flower 1.42), and of the loop's fault
handling and resuming (fl_helpers.faults, fl_helpers.checkpoints).

Tolerances: the rules are compared with Flower's aggregation functions on the same float32
inputs. Flower aggregates the clients' *weights* ``w + delta_k`` in float32/float64 numpy; we
aggregate the updates ``delta_k`` (in float64, returned as float32) and add ``w``. The median
and Krum pick or average the same entries, so they agree to float32 rounding of the sum
``w + delta`` (rtol 1e-6, atol 1e-6); the trimmed mean averages in a different precision:
rtol 1e-5, atol 1e-6.
"""

import functools
import math
import warnings

import numpy as np
import pytest

from fl_helpers import (
    aggregation,
    checkpoints,
    data,
    discrete_noise,
    faults,
    models,
    robust,
    schedule,
    training,
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


# ---------------------------------------------------------------------------------------------
# Faults in the training loop
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def federation():
    (x, y), (x_test, y_test) = data.load_mnist()
    parts = data.partition_iid(800, 8, rng=np.random.default_rng(0))
    return data.client_datasets(x[:800], y[:800], parts), (x_test[:500], y_test[:500])


def _fedavg(federation, **kwargs):
    clients, test = federation
    options = {"num_rounds": 3, "clients_per_round": 4, "local_epochs": 1, "batch_size": 20,
               "client_learning_rate": 0.1, "test_data": test, "progress": False}
    options.update(kwargs)
    return training.run_fedavg(models.make_softmax_regression, clients, **options)


def _sampled(federation, t, m=4):
    return schedule.sample_clients(len(federation[0]), m, seed=0, round_index=t)


@pytest.mark.parametrize("engine", ["fast", "loop"])
def test_faulty_clients_are_rejected_logged_and_fedavg_renormalises(federation, engine):
    s0 = [int(k) for k in _sampled(federation, 0)]
    broken = {(0, s0[0]): "raise", (0, s0[1]): "nan", (1, int(_sampled(federation, 1)[0])): "inf",
              (2, int(_sampled(federation, 2)[0])): "shape"}
    history = _fedavg(federation, client_hook=faults.FaultInjector(broken), engine=engine)
    reasons = {(r.round, r.client): r.reason for r in history.rejections}
    assert set(reasons) == {(t + 1, k) for t, k in broken}
    assert reasons[(1, s0[0])].startswith("raised RuntimeError: client")
    assert reasons[(1, s0[1])].startswith("non-finite")
    assert reasons[(3, int(_sampled(federation, 2)[0]))].startswith("wrong shape")
    assert all(np.isfinite(w).all() for w in history.final_weights)
    # Round 1 equals FedAvg over the two clients that did not fail (renormalised n_k).
    clients, _ = federation
    model = models.make_softmax_regression()
    start = [w.astype(np.float32) for w in model.get_weights()]
    honest = faults.screen_round(None, np.array(s0[2:]), 0, [
        _one_update(model, start, clients, k) for k in s0[2:]], np.array([100, 100]),
        [w.shape for w in start], None)[0]
    expected = aggregation.FedAvg().aggregate(honest, np.array([100, 100]), CONTEXT)
    one_round = _fedavg(federation, num_rounds=1, engine=engine,
                        client_hook=faults.FaultInjector({k: broken[k] for k in broken
                                                          if k[0] == 0}))
    for got, w0, u in zip(one_round.final_weights, start, expected, strict=True):
        np.testing.assert_allclose(got, w0 + u, rtol=1e-5, atol=1e-6)


def _one_update(model, start, clients, k):
    from fl_helpers import client
    weights, _ = client.client_update(model, start, *clients[k], local_epochs=1, batch_size=20,
                                      client_learning_rate=0.1,
                                      seed=schedule.client_seed(0, 0, k))
    return [w - w0 for w, w0 in zip(weights, start, strict=True)]


def test_stragglers_past_the_deadline_are_rejected(federation):
    k = int(_sampled(federation, 0)[1])
    hook = faults.FaultInjector({(0, k): "straggle"}, straggler_seconds=30.0)
    late = _fedavg(federation, client_hook=hook, deadline_seconds=10.0)
    assert [(r.round, r.client) for r in late.rejections] == [(1, k)]
    assert "straggler: replied after 30 s, deadline 10 s" in late.rejections[0].reason
    patient = _fedavg(federation, client_hook=hook, deadline_seconds=60.0)
    assert patient.rejections == []


def test_a_malformed_reply_time_is_a_rejected_reply_never_a_crash(federation):
    # A client claims its own reply time: "abc" used to crash the server (float() outside the
    # screening), and NaN passed every deadline.
    k = int(_sampled(federation, 0)[0])

    def hook(client_id, round_index, delta):
        if (round_index, client_id) != (0, k):
            return delta
        return faults.ClientReply(delta, seconds=claims.pop(0))

    for claim, reason in (("abc", "malformed reply time: 'abc'"),
                          (float("nan"), "malformed reply time: nan"),
                          (-1.0, "malformed reply time: -1.0")):
        claims = [claim]
        history = _fedavg(federation, client_hook=hook, deadline_seconds=10.0)
        assert [(r.round, r.client) for r in history.rejections] == [(1, k)], claim
        assert history.rejections[0].reason == reason


def test_a_round_where_every_client_fails_keeps_the_model(federation):
    broken = {(1, int(k)): "raise" for k in _sampled(federation, 1)}
    after_one = _fedavg(federation, num_rounds=1, client_hook=faults.FaultInjector({}))
    with pytest.warns(RuntimeWarning, match="round 2: every sampled client's update was "
                                            "rejected; the global model is unchanged"):
        history = _fedavg(federation, num_rounds=2, client_hook=faults.FaultInjector(broken))
    np.testing.assert_array_equal(history.skipped_rounds, [2])
    for a, b in zip(history.final_weights, after_one.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.test_accuracy[1] == history.test_accuracy[0]


@pytest.mark.parametrize("engine", ["fast", "loop"])
def test_one_diverging_client_is_rejected_and_all_diverging_is_an_error(federation, engine):
    """No hook on the fast path: a NaN update in the engine's fused sum is found, and the round
    is trained again client by client and screened. If every client diverged, the run stops
    with a clear error instead of silently keeping the model."""
    clients, test = federation
    bad = int(_sampled(federation, 0)[2])
    x, y = clients[bad]
    poisoned = list(clients)
    poisoned[bad] = (np.full_like(x, 1e38), y)  # finite, but its logits overflow: NaN
    history = training.run_fedavg(models.make_softmax_regression, poisoned, num_rounds=1,
                                  clients_per_round=4, local_epochs=1, batch_size=20,
                                  client_learning_rate=0.1, progress=False, engine=engine)
    assert [(r.round, r.client) for r in history.rejections] == [(1, bad)]
    assert history.rejections[0].reason.startswith("non-finite")
    assert all(np.isfinite(w).all() for w in history.final_weights)
    with pytest.raises(ValueError, match="every client's update in round 1 holds NaN or inf "
                                         "values: the clients' training diverged"):
        training.run_fedavg(models.make_2nn, clients, num_rounds=1, clients_per_round=4,
                            local_epochs=1, batch_size=10, client_learning_rate=1e20,
                            test_data=test, progress=False, engine=engine)


def test_dp_fedavg_rejects_without_reporting_and_keeps_its_denominator(federation):
    clients, test = federation
    rounds = schedule.PrivateRandomness.reproducible(0, warn=False).poisson_schedule(
        len(clients), sampling_probability=0.5, num_rounds=2)
    broken = {(t, int(k)): "raise" for t in range(2) for k in rounds[t]}
    options = {"num_rounds": 2, "sampling_probability": 0.5, "local_epochs": 1,
               "batch_size": 20, "client_learning_rate": 0.1, "clipping_norm": 1.0,
               "noise_multiplier": 1.0, "target_delta": 1e-5, "progress": False,
               "client_hook": faults.FaultInjector(broken), "expected_clients": 0.5 * len(clients)}
    start = models.make_softmax_regression().get_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # A private run names no round in which everyone failed (that would single out the
        # round where only the target was sampled): no warning at all.
        warnings.simplefilter("error", RuntimeWarning)
        private = training.run_dp_fedavg(
            models.make_softmax_regression, clients,
            randomness=schedule.PrivateRandomness.reproducible(0, warn=False), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.warns(RuntimeWarning, match="except for the noise"):
            audited = training.run_dp_fedavg(
                models.make_softmax_regression, clients, diagnostics=True,
                randomness=schedule.PrivateRandomness.reproducible(0, warn=False), **options)
    assert private.rejections == [] and private.skipped_rounds.size == 0  # who failed: private
    assert len(audited.diagnostics.rejections) == sum(len(r) for r in rounds)
    # Every client failed: the model moved by exactly the noise / (q N), as for an empty round
    # (exact noise: the round's discrete Gaussian integers on the grid C / 2^16).
    steps = discrete_noise.GRID_STEPS
    variance = discrete_noise.exact_variance_at_least((1.0 * steps) ** 2)
    size = sum(w.size for w in start)
    moved = np.zeros(size)
    for t in range(2):
        moved += discrete_noise.discrete_gaussian(
            variance, size, randomness=schedule.PrivateRandomness.reproducible(0, warn=False),
            round_index=t) / steps / 4.0
    flat_start = np.concatenate([w.ravel() for w in start])
    flat_got = np.concatenate([w.ravel() for w in private.final_weights])
    np.testing.assert_allclose(flat_got, flat_start + moved, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(private.epsilon, audited.epsilon)
    assert math.isfinite(private.epsilon[-1])


@pytest.mark.parametrize("engine", ["fast", "loop"])
def test_a_private_run_is_silent_when_the_target_client_diverges(federation, engine):
    """Attack (the audit's): a target client that returns NaN. Before, the run stopped with
    "every client's update in round t holds NaN", naming the round where only the target was
    sampled (the secret schedule, and the target's presence). Now its update is a zero
    contribution, the round is noised as always, and the run reports nothing about it (and no
    per-round time, which grows with the number of clients sampled)."""
    clients, _ = federation
    randomness = schedule.PrivateRandomness.reproducible(5, warn=False)
    rounds = randomness.poisson_schedule(len(clients), sampling_probability=0.2, num_rounds=3)
    poisoned = list(clients)
    for k in np.concatenate(rounds):
        x, y = clients[int(k)]
        poisoned[int(k)] = (np.full_like(x, 1e38), y)  # every sampled client diverges
    options = dict(num_rounds=3, sampling_probability=0.2, local_epochs=1, batch_size=20,
                   client_learning_rate=0.1, clipping_norm=1.0, noise_multiplier=1.0,
                   progress=False, engine=engine, expected_clients=0.2 * len(clients))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", RuntimeWarning)
        history = training.run_dp_fedavg(models.make_softmax_regression, poisoned,
                                         randomness=randomness, **options)
    assert all(np.isfinite(w).all() for w in history.final_weights)
    assert history.rejections == [] and history.skipped_rounds.size == 0
    assert np.unique(history.seconds_per_round).size == 1  # the mean, not each round's time
    with warnings.catch_warnings():  # the run's owner may look, at a price named in a warning
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="holds NaN or inf"):
            training.run_dp_fedavg(models.make_softmax_regression, poisoned, diagnostics=True,
                                   randomness=schedule.PrivateRandomness.reproducible(
                                       5, warn=False), **options)


# ---------------------------------------------------------------------------------------------
# Checkpoint and resume
# ---------------------------------------------------------------------------------------------


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("engine", ["fast", "loop"])
def test_interrupted_run_resumes_bit_identically(federation, tmp_path, engine):
    options = {"num_rounds": 5, "engine": engine,
               "server_optimizer": aggregation.ServerSGD(1.0, momentum=0.5)}
    full = _fedavg(federation, **options)

    def stop_after_3(figures):
        if figures["round"] == 3:
            raise _Interrupt

    path = tmp_path / "run.npz"
    with pytest.raises(_Interrupt):
        _fedavg(federation, checkpoint=path, callback=stop_after_3, **{
            **options, "server_optimizer": aggregation.ServerSGD(1.0, momentum=0.5)})
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    resumed = _fedavg(federation, checkpoint=path, **{
        **options, "server_optimizer": aggregation.ServerSGD(1.0, momentum=0.5)})
    for a, b in zip(resumed.final_weights, full.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical
    np.testing.assert_array_equal(resumed.test_accuracy, full.test_accuracy)
    np.testing.assert_array_equal(resumed.rounds, full.rounds)


def test_resumed_dp_run_with_the_same_randomness_is_identical(federation, tmp_path):
    clients, test = federation
    options = {"num_rounds": 4, "sampling_probability": 0.5, "local_epochs": 1,
               "batch_size": 20, "client_learning_rate": 0.1, "clipping_norm": 1.0,
               "noise_multiplier": 1.0, "target_delta": 1e-5, "progress": False,
               "server_optimizer": None, "expected_clients": 0.5 * len(clients)}
    randomness = schedule.PrivateRandomness.reproducible(3, warn=False)
    full = training.run_dp_fedavg(models.make_softmax_regression, clients,
                                  randomness=randomness, **options)
    path = tmp_path / "dp.npz"
    with pytest.raises(_Interrupt):
        training.run_dp_fedavg(models.make_softmax_regression, clients, randomness=randomness,
                               checkpoint=path, callback=lambda f: _raise_at(f, 2), **options)
    resumed = training.run_dp_fedavg(models.make_softmax_regression, clients,
                                     randomness=randomness, checkpoint=path, **options)
    for a, b in zip(resumed.final_weights, full.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.epsilon, full.epsilon)
    keys = checkpoints.load_checkpoint(path)
    assert not any("norms/values" in k and keys[k].size for k in keys)  # no private figures


def _raise_at(figures, round_number):
    if figures["round"] == round_number:
        raise _Interrupt


def test_checkpoint_of_another_run_is_refused(federation, tmp_path):
    path = tmp_path / "run.npz"
    _fedavg(federation, num_rounds=2, checkpoint=path)
    with pytest.raises(ValueError, match="belongs to another run"):
        _fedavg(federation, num_rounds=3, checkpoint=path)


def test_fault_options_are_checked(federation):
    with pytest.raises(TypeError, match="client_hook must be callable or None, got int"):
        _fedavg(federation, client_hook=3)
    with pytest.raises(ValueError, match="deadline_seconds must be > 0, got 0"):
        _fedavg(federation, deadline_seconds=0)
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        _fedavg(federation, checkpoint=True)
    with pytest.raises(ValueError, match="faults"):
        faults.FaultInjector({(0, 1): "explode"})


# ---------------------------------------------------------------------------------------------
# The experiment function and the widget of notebook 07
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_federation():
    (x, y), (x_test, y_test) = data.load_mnist()
    parts = data.partition_iid(2000, 10, rng=np.random.default_rng(0))
    return data.client_datasets(x[:2000], y[:2000], parts), (x_test[:1000], y_test[:1000])


def test_attack_experiment_backdoor_beats_fedavg_but_not_the_median(small_federation):
    from fl_helpers import robust_widgets
    clients, test = small_federation
    run = functools.partial(robust_widgets.attack_experiment, clients, test, attack="backdoor",
                            fraction=0.2, num_rounds=6)
    fedavg, median = run(defence="FedAvg"), run(defence="median")
    assert len(fedavg.malicious) == 2
    assert fedavg.backdoor_success > 0.8 and median.backdoor_success < 0.1
    assert median.final_accuracy > 0.7
    clean = robust_widgets.attack_experiment(clients, test, attack="none", fraction=0.0,
                                             defence="DP-FedAvg", num_rounds=2)
    assert clean.malicious.size == 0 and np.isfinite(clean.accuracy).all()
    with pytest.raises(ValueError, match="defence must be one of"):
        run(defence="average")
    with pytest.raises(ValueError, match="attack must be one of"):
        robust_widgets.attack_experiment(clients, test, attack="x", fraction=0.1,
                                         defence="FedAvg")


def test_robustness_explorer_redraws_and_reports_its_time(small_federation):
    from fl_helpers import robust_widgets, widgets
    clients, test = small_federation
    panel = robust_widgets.robustness_explorer(clients, test, num_rounds=3)
    assert isinstance(panel, widgets.Explorer)
    first = panel.last_seconds
    assert math.isfinite(first)
    panel.controls["defence"].value = "median"
    assert math.isfinite(panel.last_seconds)
    panel.controls["fraction"].value = 0.3
    assert set(panel.controls) == {"fraction", "defence", "attack"}
    with pytest.raises(ValueError, match="fraction must be one of"):
        robust_widgets.robustness_explorer(clients, test, fraction=0.25)


def test_resume_restores_a_wrapped_optimizer_and_its_average(federation, tmp_path):
    def optimizer():
        return aggregation.ExponentialAverage(aggregation.ServerSGD(1.0, momentum=0.5),
                                              decay=0.7)

    full_optimizer = optimizer()
    full = _fedavg(federation, num_rounds=4, engine="fast", server_optimizer=full_optimizer)

    def stop_after_2(figures):
        if figures["round"] == 2:
            raise _Interrupt

    path = tmp_path / "run.npz"
    with pytest.raises(_Interrupt):
        _fedavg(federation, num_rounds=4, engine="fast", server_optimizer=optimizer(),
                checkpoint=path, callback=stop_after_2)
    resumed_optimizer = optimizer()
    resumed = _fedavg(federation, num_rounds=4, engine="fast", server_optimizer=resumed_optimizer,
                      checkpoint=path)
    for a, b in zip(resumed.final_weights, full.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed_optimizer.averaged_weights, full_optimizer.averaged_weights,
                    strict=True):
        np.testing.assert_array_equal(a, b)
