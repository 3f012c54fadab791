"""The fast multi-client engine against the per-client loop, and DP-FedAvg's server step.

Tolerances: the engine and the loop run the same SGD steps on the same batches in float32 but sum
in different orders, so they agree to rounding. For softmax regression (smooth loss) the final
weights agree to ``WEIGHT_ATOL = 1e-5`` after several rounds (observed: ~1e-7) and the test
accuracies to one example in 1,000. For the 2NN a pre-activation within rounding of 0 can take the
other side of the ReLU kink in one implementation, which changes that step's gradient by a small
finite amount; its test is therefore on accuracy and loss (``2NN_*`` bounds below).
"""

from __future__ import annotations

import numpy as np
import pytest

from fl_helpers import accounting, data, dp_fedavg, engine, federated, models

WEIGHT_ATOL = 1e-5
ACCURACY_ATOL = 1.5e-3  # one example in 1,000 may flip
LOSS_RTOL = 1e-4
NN_ACCURACY_ATOL = 5e-3
NN_LOSS_RTOL = 5e-3


@pytest.fixture(scope="module")
def mnist():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x, y = x_train[:720], y_train[:720]
    rng = np.random.default_rng(0)
    # 45 examples each: with B = 10 every epoch ends with a partial batch of 5.
    iid = data.client_datasets(x[:720], y[:720], data.partition_iid(720, 16, rng=rng))
    dirichlet = data.client_datasets(
        x, y, data.partition_dirichlet(y, 16, alpha=0.3, rng=rng))
    return {"iid": iid, "dirichlet": dirichlet}, (x_test[:1000], y_test[:1000])


def _fedavg(clients, test, engine_name, model_fn=models.make_softmax_regression, **kwargs):
    args = dict(num_rounds=3, clients_per_round=5, local_epochs=1, batch_size=10,
                client_learning_rate=0.2, test_data=test, seed=4, progress=False)
    args.update(kwargs)
    return federated.run_fedavg(model_fn, clients, engine=engine_name, **args)


def _assert_same_history(fast, loop, *, weights=True, accuracy_atol=ACCURACY_ATOL,
                         loss_rtol=LOSS_RTOL):
    np.testing.assert_array_equal(fast.sampled_clients, loop.sampled_clients)
    np.testing.assert_allclose(fast.test_accuracy, loop.test_accuracy, rtol=0, atol=accuracy_atol)
    np.testing.assert_allclose(fast.test_loss, loop.test_loss, rtol=loss_rtol)
    if weights:
        for a, b in zip(fast.final_weights, loop.final_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


@pytest.mark.parametrize("split", ["iid", "dirichlet"])
@pytest.mark.parametrize("local_epochs", [1, 2])
def test_engine_equals_loop(mnist, split, local_epochs):
    clients, test = mnist
    sizes = [len(y) for _, y in clients[split]]
    assert any(n % 10 for n in sizes)  # partial last batches are exercised
    if split == "dirichlet":
        assert max(sizes) > 2 * min(sizes)  # and clients of very different sizes
    fast = _fedavg(clients[split], test, "fast", local_epochs=local_epochs)
    loop = _fedavg(clients[split], test, "loop", local_epochs=local_epochs)
    assert (fast.engine, loop.engine) == ("fast", "loop")
    _assert_same_history(fast, loop)


def test_engine_equals_loop_full_batch(mnist):
    clients, test = mnist
    fast = _fedavg(clients["dirichlet"], test, "fast", batch_size=None, num_rounds=2)
    loop = _fedavg(clients["dirichlet"], test, "loop", batch_size=None, num_rounds=2)
    _assert_same_history(fast, loop)


def test_engine_equals_loop_on_the_2nn(mnist):
    clients, test = mnist
    kwargs = dict(model_fn=models.make_2nn, local_epochs=2, client_learning_rate=0.05)
    fast = _fedavg(clients["dirichlet"], test, "fast", **kwargs)
    loop = _fedavg(clients["dirichlet"], test, "loop", **kwargs)
    _assert_same_history(fast, loop, weights=False, accuracy_atol=NN_ACCURACY_ATOL,
                         loss_rtol=NN_LOSS_RTOL)
    # Most weights still agree to rounding; only units that crossed a kink differ.
    diffs = np.concatenate([np.abs(a - b).ravel()
                            for a, b in zip(fast.final_weights, loop.final_weights, strict=True)])
    assert np.median(diffs) < 1e-6


def test_auto_picks_the_engine_by_model(mnist):
    clients, test = mnist
    assert engine.supports(models.make_softmax_regression())
    assert engine.supports(models.make_2nn())
    assert not engine.supports(models.make_cnn())
    history = _fedavg(clients["iid"], None, "auto", num_rounds=1)
    assert history.engine == "fast"
    with pytest.raises(ValueError, match="plain Dense stack"):
        engine.MultiClientEngine(models.make_cnn(), clients["iid"], local_epochs=1,
                                 batch_size=10, client_learning_rate=0.1, seed=0)


def test_engine_is_deterministic(mnist):
    clients, test = mnist
    first = _fedavg(clients["dirichlet"], test, "fast")
    again = _fedavg(clients["dirichlet"], test, "fast")
    other = _fedavg(clients["dirichlet"], test, "fast", seed=5)
    np.testing.assert_array_equal(first.test_accuracy, again.test_accuracy)
    for a, b in zip(first.final_weights, again.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.final_weights[0], other.final_weights[0])


# --------------------------------------------------------------------------------------------
# DP-FedAvg
# --------------------------------------------------------------------------------------------


def _dp(clients, test, **kwargs):
    args = dict(num_rounds=3, sampling_probability=0.3, local_epochs=1, batch_size=10,
                client_learning_rate=0.2, clipping_norm=0.5, noise_multiplier=0.5,
                test_data=test, seed=2, progress=False)
    args.update(kwargs)
    return dp_fedavg.run_dp_fedavg(models.make_softmax_regression, clients, **args)


def test_dp_without_noise_or_clipping_is_fedavg(mnist):
    # q = 1 samples all N clients, so the fixed denominator q N is the actual number of clients;
    # equal client sizes make FedAvg's weights n_k / n equal to 1 / N as well; C = 1e6 never
    # clips, z = 0 adds nothing, server_learning_rate = 1 takes the average as it is.
    clients, test = mnist
    dp = _dp(clients["iid"], test, sampling_probability=1.0, clipping_norm=1e6,
             noise_multiplier=0.0, server_learning_rate=1.0, seed=4)
    plain = _fedavg(clients["iid"], test, "loop", clients_per_round=16)
    np.testing.assert_array_equal(np.stack(dp.sampled_clients), plain.sampled_clients)
    assert np.all(dp.fraction_clipped == 0)
    np.testing.assert_allclose(dp.test_accuracy, plain.test_accuracy, rtol=0, atol=ACCURACY_ATOL)
    for a, b in zip(dp.final_weights, plain.final_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


def test_dp_engine_equals_dp_loop_with_clipping_and_noise(mnist):
    clients, test = mnist
    fast = _dp(clients["dirichlet"], test, engine="fast")
    loop = _dp(clients["dirichlet"], test, engine="loop")
    assert (fast.engine, loop.engine) == ("fast", "loop")
    assert fast.fraction_clipped.mean() > 0.5  # C = 0.5 really clips
    for a, b in zip(fast.update_norms, loop.update_norms, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    np.testing.assert_allclose(fast.test_accuracy, loop.test_accuracy, rtol=0, atol=ACCURACY_ATOL)
    # The engine's compiled evaluation against federated.evaluate's Keras one.
    np.testing.assert_allclose(fast.test_loss, loop.test_loss, rtol=LOSS_RTOL)
    for a, b in zip(fast.final_weights, loop.final_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


def test_group_size_changes_nothing_but_speed(mnist):
    clients, _ = mnist
    model = models.make_softmax_regression()
    sampled = np.arange(0, 16, 2)  # 8 clients of different sizes: groups mix short and long
    results = []
    for group_size in (1, 3, 8):
        fast = engine.MultiClientEngine(model, clients["dirichlet"], local_epochs=2,
                                        batch_size=10, client_learning_rate=0.2, seed=1,
                                        group_size=group_size)
        results.append(fast.fedavg_round(model.get_weights(), sampled, 0))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)


def test_every_clipped_update_is_inside_the_ball(mnist):
    clients, test = mnist
    clipping_norm = 1.5
    history = _dp(clients["dirichlet"], None, clipping_norm=clipping_norm, num_rounds=4,
                  sampling_probability=0.5)
    norms = np.concatenate(history.update_norms)
    clipped = np.concatenate(history.clipped_update_norms)
    assert 0 < np.mean(norms > clipping_norm) < 1  # some clipped, some not
    assert np.all(clipped <= clipping_norm * (1 + 1e-6))  # float32 rounding of C itself
    np.testing.assert_allclose(clipped, np.minimum(norms, clipping_norm), rtol=1e-5)
    for fraction, round_norms in zip(history.fraction_clipped, history.update_norms, strict=True):
        assert fraction == np.mean(round_norms > clipping_norm)


def test_noise_on_the_sum_has_std_z_times_c(mnist):
    # An empty round moves the model by noise alone: w + eta_s * noise / denominator. With
    # eta_s = denominator = 1 the step is the noise. 20 rounds of 7,850 coordinates give 157,000
    # draws: the sample std has relative standard error 1 / sqrt(2 * 157000) = 0.18 %, so a 1 %
    # bound is > 5 standard errors wide and still catches a noise scale off by 2 %.
    clients, _ = mnist
    model = models.make_softmax_regression()
    fast = engine.MultiClientEngine(model, clients["iid"], local_epochs=1, batch_size=10,
                                    client_learning_rate=0.1, seed=9)
    start = model.get_weights()
    noise_multiplier, clipping_norm = 1.3, 0.7
    steps = []
    for t in range(20):
        new, stats = fast.dp_round(start, np.zeros(0, np.int64), t, clipping_norm=clipping_norm,
                                   noise_multiplier=noise_multiplier, denominator=1.0)
        assert stats.update_norms.size == 0
        steps.append(np.concatenate([(a - b).ravel() for a, b in zip(new, start, strict=True)]))
    draws = np.concatenate(steps).astype(np.float64)
    sigma = noise_multiplier * clipping_norm
    assert abs(np.std(draws) / sigma - 1) < 0.01
    assert abs(np.mean(draws)) < 5 * sigma / np.sqrt(draws.size)
    assert abs(np.corrcoef(steps[0], steps[1])[0, 1]) < 5 / np.sqrt(steps[0].size)  # fresh noise
    # The loop draws the very same noise.
    again = engine.gaussian_noise([w.shape for w in start], noise_stddev=sigma, seed=9,
                                  round_index=0)
    np.testing.assert_allclose(np.concatenate([a.ravel() for a in again]), steps[0], atol=1e-6)


def test_noise_is_added_to_the_sum_then_divided_by_q_n(mnist):
    clients, _ = mnist
    kwargs = dict(num_rounds=1, sampling_probability=0.5, server_learning_rate=1.0,
                  clipping_norm=0.3)
    clean = _dp(clients["iid"], None, noise_multiplier=0.0, **kwargs)
    noisy = _dp(clients["iid"], None, noise_multiplier=2.0, **kwargs)
    assert clean.num_sampled[0] > 0
    denominator = 0.5 * len(clients["iid"])
    noise = np.concatenate([(a - b).ravel() for a, b in
                            zip(noisy.final_weights, clean.final_weights, strict=True)])
    # 7,850 draws: relative standard error of the std is 0.8 %, the bound is 5 %.
    assert abs(np.std(noise * denominator) / (2.0 * 0.3) - 1) < 0.05


def test_dp_same_seed_same_history_and_poisson_rounds(mnist):
    clients, test = mnist
    kwargs = dict(sampling_probability=0.1, num_rounds=6)
    first, again = _dp(clients["dirichlet"], test, **kwargs), _dp(clients["dirichlet"], test,
                                                                   **kwargs)
    for name, series in first.as_dict().items():
        if name != "seconds_per_round":
            np.testing.assert_array_equal(series, again.as_dict()[name])
    for a, b in zip(first.final_weights, again.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # q N = 1.6: rounds have varying numbers of clients, and an empty round is just noise.
    assert len(set(first.num_sampled.tolist())) > 1
    assert 0 in first.num_sampled
    empty = int(np.flatnonzero(first.num_sampled == 0)[0])
    assert np.isnan(first.fraction_clipped[empty])


def test_poisson_sampling_rate_and_seed_convention():
    counts = [dp_fedavg.sample_clients_poisson(1000, sampling_probability=0.05, seed=3,
                                               round_index=t).size for t in range(200)]
    # Binomial(1000, 0.05): mean 50, std 6.9; the mean of 200 rounds has std 0.49.
    assert abs(np.mean(counts) - 50) < 2.5
    draws = np.random.default_rng([3, 7]).random(1000)
    np.testing.assert_array_equal(
        dp_fedavg.sample_clients_poisson(1000, sampling_probability=0.05, seed=3, round_index=7),
        np.flatnonzero(draws < 0.05))


def test_epsilon_is_the_accountants_and_the_budget_stops_training(mnist):
    clients, _ = mnist
    kwargs = dict(noise_multiplier=1.1, sampling_probability=0.3, target_delta=1e-5)
    full = _dp(clients["iid"], None, num_rounds=5, **kwargs)
    expected = accounting.epsilon_per_round(noise_multiplier=1.1, sampling_probability=0.3,
                                            num_rounds=5, target_delta=1e-5)
    np.testing.assert_allclose(full.epsilon, expected, rtol=1e-12)
    budget = float(expected[2])  # enough for exactly 3 rounds
    stopped = _dp(clients["iid"], None, num_rounds=5, target_epsilon=budget, **kwargs)
    assert stopped.rounds.tolist() == [1, 2, 3] and stopped.stopped_early == "target_epsilon"
    assert stopped.epsilon[-1] <= budget
    calls = []
    by_callback = _dp(clients["iid"], None, num_rounds=5,
                      callback=lambda figures: calls.append(figures) or figures["round"] == 2)
    assert by_callback.rounds.tolist() == [1, 2] and by_callback.stopped_early == "callback"
    assert calls[0]["round"] == 1 and "fraction_clipped" in calls[0]


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
    ],
)
def test_dp_rejects_bad_arguments(mnist, change, error, match):
    clients, _ = mnist
    with pytest.raises(error, match=match):
        _dp(clients["iid"], None, **change)


def test_engine_rejects_bad_rounds_and_reports_divergence(mnist):
    clients, _ = mnist
    model = models.make_2nn()  # with this step size its activations overflow to inf, then NaN
    fast = engine.MultiClientEngine(model, clients["iid"], local_epochs=1, batch_size=10,
                                    client_learning_rate=1e20, seed=0)
    with pytest.raises(ValueError, match="client ids in 0..15"):
        fast.fedavg_round(model.get_weights(), np.array([3, 16]), 0)
    with pytest.raises(ValueError, match="must not repeat"):
        fast.fedavg_round(model.get_weights(), np.array([3, 3]), 0)
    with pytest.raises(ValueError, match="diverged"):
        fast.fedavg_round(model.get_weights(), np.array([0, 1]), 0)
