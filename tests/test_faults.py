"""The loop's fault handling (fl_helpers.faults): failed, late, malformed and diverging clients are
rejected and logged, FedAvg renormalises, DP-FedAvg keeps its denominator and reports nothing.
"""

import math
import warnings

import numpy as np
import pytest
from test_robust import CONTEXT

from fl_helpers import (
    aggregation,
    data,
    discrete_noise,
    faults,
    models,
    schedule,
    training,
)


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


def test_fault_options_are_checked(federation):
    with pytest.raises(TypeError, match="client_hook must be callable or None, got int"):
        _fedavg(federation, client_hook=3)
    with pytest.raises(ValueError, match="deadline_seconds must be > 0, got 0"):
        _fedavg(federation, deadline_seconds=0)
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        _fedavg(federation, checkpoint=True)
    with pytest.raises(ValueError, match="faults"):
        faults.FaultInjector({(0, 1): "explode"})
