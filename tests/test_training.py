"""The training loop (fl_helpers.training): run_fedavg is client update then FedAvg, seeds, FedSGD.

Tolerances: float32 TensorFlow against a float64 numpy reference agree to ~1e-6 relative on these
tiny problems; we allow rtol=1e-5, atol=1e-6.
"""

import numpy as np
import pytest
from test_client import _numpy_sgd

from fl_helpers import aggregation, client, data, models, schedule, training

# ---------------------------------------------------------------------------------------------
# Fixtures: tiny problems
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_clients():
    """10 clients of 60 real MNIST training images each (non-IID shards), and 1,000 test images."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x_train, y_train = x_train[:600], y_train[:600]
    parts = data.partition_shards(y_train, 10, shards_per_client=2, rng=np.random.default_rng(0))
    return data.client_datasets(x_train, y_train, parts), (x_test[:1000], y_test[:1000])


# ---------------------------------------------------------------------------------------------
# sample_clients and run_fedavg
# ---------------------------------------------------------------------------------------------


def _run(clients, test, **kwargs):
    args = dict(num_rounds=3, clients_per_round=4, local_epochs=2, batch_size=10,
                client_learning_rate=0.2, test_data=test, seed=0, progress=False,
                diagnostics=True)
    args.update(kwargs)
    return training.run_fedavg(models.make_softmax_regression, clients, **args)


def test_run_fedavg_same_seed_same_history(mnist_clients):
    clients, test = mnist_clients
    first, again, other = _run(clients, test), _run(clients, test), _run(clients, test, seed=1)
    np.testing.assert_array_equal(first.rounds, [1, 2, 3])
    np.testing.assert_array_equal(first.test_accuracy, again.test_accuracy)
    np.testing.assert_array_equal(first.test_loss, again.test_loss)
    np.testing.assert_array_equal(first.diagnostics.sampled_clients,
                                  again.diagnostics.sampled_clients)
    for a, b in zip(first.final_weights, again.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.final_weights[0], other.final_weights[0])
    assert np.shape(first.diagnostics.sampled_clients) == (3, 4)
    assert first.seconds_per_round.shape == (3,) and (first.seconds_per_round > 0).all()
    assert set(first.as_dict()) == {"rounds", "test_accuracy", "test_loss", "seconds_per_round"}


def test_run_fedavg_is_client_update_then_fedavg_with_the_documented_seeds(mnist_clients):
    clients, test = mnist_clients
    history = _run(clients, None, num_rounds=2, seed=5, engine="loop")
    assert history.test_accuracy.size == 0
    model = models.make_softmax_regression()
    weights = model.get_weights()
    for t in range(2):
        sampled = schedule.sample_clients(len(clients), 4, seed=5, round_index=t)
        np.testing.assert_array_equal(history.diagnostics.sampled_clients[t], sampled)
        results = [client.client_update(model, weights, *clients[k], local_epochs=2,
                                           batch_size=10, client_learning_rate=0.2,
                                           seed=[5, t, int(k)]) for k in sampled]
        weights = aggregation.fedavg([w for w, _ in results], [n for _, n in results])
    # The loop averages the updates, w + sum_k (n_k / n)(w_k - w), which equals the average of
    # the weights sum_k (n_k / n) w_k up to float32 rounding of the differences.
    for a, b in zip(history.final_weights, weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def test_a_short_run_learns(mnist_clients):
    clients, test = mnist_clients
    start_loss, start_accuracy = client.evaluate(models.make_softmax_regression(), None, *test)
    history = _run(clients, test, num_rounds=4, clients_per_round=10)
    # 600 examples, 4 rounds: softmax regression reaches ~0.7-0.8; the untrained model ~0.1.
    assert start_accuracy < 0.2
    assert history.test_accuracy[-1] > 0.6
    assert history.test_loss[-1] < start_loss


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(client_datasets=[]), ValueError, "at least one client"),
        (dict(clients_per_round=0), ValueError, "clients_per_round must be >= 1"),
        (dict(clients_per_round=11), ValueError, "clients_per_round must be <= 10"),
        (dict(num_rounds=0), ValueError, "num_rounds must be >= 1"),
        (dict(local_epochs=0), ValueError, "local_epochs must be >= 1"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(client_learning_rate=float("nan")), ValueError,
         "client_learning_rate must be finite"),
        (dict(engine="fast?"), ValueError, "engine must be one of"),
        (dict(seed=-2), ValueError, "seed must be >= 0"),
        (dict(empty_client=True), ValueError, r"client_datasets\[3\] x must hold at least one"),
        (dict(short_labels=True), ValueError, r"same length"),
        (dict(test_data=(np.zeros((5, 28, 28)), np.zeros(4, np.int64))), ValueError,
         "test_data x and test_data y must have the same length"),
        (dict(model_fn=3), TypeError, "model_fn must be callable"),
    ],
)
def test_run_fedavg_rejects_bad_arguments(mnist_clients, change, error, match):
    clients, test = mnist_clients
    clients = list(clients)
    if change.pop("empty_client", False):
        clients[3] = (clients[3][0][:0], clients[3][1][:0])
    if change.pop("short_labels", False):
        clients[2] = (clients[2][0], clients[2][1][:-1])
    args = dict(model_fn=models.make_softmax_regression, client_datasets=clients, num_rounds=1,
                clients_per_round=2, local_epochs=1, batch_size=10, client_learning_rate=0.1,
                test_data=test, progress=False)
    args.update(change)
    with pytest.raises(error, match=match):
        training.run_fedavg(args.pop("model_fn"), args.pop("client_datasets"), **args)


# ---------------------------------------------------------------------------------------------
# run_fedavg: unequal clients, FedSGD, initial weights, progress bar (added for notebook 03)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uneven_clients():
    """Five clients of 3, 8, 13, 21 and 34 random examples: the weights n_k / n differ."""
    rng = np.random.default_rng(11)
    sizes = [3, 8, 13, 21, 34]
    return [(rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, size=n))
            for n in sizes]


def test_run_fedavg_weights_clients_of_different_sizes_by_n_k(uneven_clients):
    start = models.make_softmax_regression(0).get_weights()
    kwargs = dict(num_rounds=1, clients_per_round=5, local_epochs=2, batch_size=4,
                  client_learning_rate=0.3, seed=2, progress=False)
    loop = training.run_fedavg(models.make_softmax_regression, uneven_clients, engine="loop",
                                **kwargs)
    default = training.run_fedavg(models.make_softmax_regression, uneven_clients, **kwargs)
    # The same round by hand: numpy SGD per client, then sum_k (n_k / n) w_k in float64.
    kernels, biases, sizes = [], [], []
    for k, (x, y) in enumerate(uneven_clients):
        batches = schedule.client_batches(len(x), local_epochs=2, batch_size=4,
                                           rng=np.random.default_rng([2, 0, k]))
        kernel, bias, _ = _numpy_sgd(start[0], start[1], x, y, batches, 0.3)
        kernels.append(kernel)
        biases.append(bias)
        sizes.append(len(x))
    shares = np.array(sizes) / sum(sizes)
    expected = [np.tensordot(shares, kernels, axes=1), np.tensordot(shares, biases, axes=1)]
    unweighted = [np.mean(kernels, axis=0), np.mean(biases, axis=0)]
    for history in (loop, default):
        for got, want in zip(history.final_weights, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(loop.final_weights[0], unweighted[0], rtol=1e-5, atol=1e-5)


def test_fedsgd_round_is_one_gradient_step_on_the_pooled_data(uneven_clients):
    """E = 1, B = inf, all clients: the weighted average of one full-batch step per client is
    one gradient step on the mean loss over all clients' examples (McMahan et al. 2017, Sec. 2).
    """
    start = models.make_softmax_regression(0).get_weights()
    history = training.run_fedavg(
        models.make_softmax_regression, uneven_clients, num_rounds=1, clients_per_round=5,
        local_epochs=1, batch_size=None, client_learning_rate=0.5, seed=0, progress=False)
    x = np.concatenate([x for x, _ in uneven_clients])
    y = np.concatenate([y for _, y in uneven_clients])
    kernel, bias, _ = _numpy_sgd(start[0], start[1], x, y, [np.arange(len(x))], 0.5)
    np.testing.assert_allclose(history.final_weights[0], kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history.final_weights[1], bias, rtol=1e-5, atol=1e-6)


def test_run_fedavg_starts_from_initial_weights_without_changing_them(uneven_clients):
    initial = models.make_softmax_regression(7).get_weights()
    copy = [w.copy() for w in initial]
    kwargs = dict(num_rounds=2, clients_per_round=3, local_epochs=1, batch_size=5,
                  client_learning_rate=0.1, seed=4, progress=False)
    given = training.run_fedavg(models.make_softmax_regression, uneven_clients,
                                 initial_weights=initial, **kwargs)
    default = training.run_fedavg(models.make_softmax_regression, uneven_clients, **kwargs)
    for w, c in zip(initial, copy, strict=True):
        np.testing.assert_array_equal(w, c)
    # A model built with seed 7 as the starting point gives the same run.
    seven = training.run_fedavg(lambda: models.make_softmax_regression(7), uneven_clients,
                                 **kwargs)
    for a, b in zip(given.final_weights, seven.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(given.final_weights[0], default.final_weights[0])
    with pytest.raises(ValueError, match=r"initial_weights\[0\] must have shape"):
        training.run_fedavg(models.make_softmax_regression, uneven_clients,
                             initial_weights=[initial[0][:5], initial[1]], **kwargs)


def test_history_timings_and_total_seconds(uneven_clients):
    history = training.run_fedavg(
        models.make_softmax_regression, uneven_clients, num_rounds=3, clients_per_round=2,
        local_epochs=1, batch_size=5, client_learning_rate=0.1, seed=0, progress=False)
    assert history.total_seconds == pytest.approx(history.seconds_per_round.sum())
    assert history.diagnostics is None  # only when asked for
    # "auto" resolves to the engine that actually ran, never to "auto" itself.
    assert history.engine is training.Engine.FAST
    cnn_like = training.run_fedavg(
        models.make_softmax_regression, uneven_clients, num_rounds=1, clients_per_round=2,
        local_epochs=1, batch_size=5, client_learning_rate=0.1, progress=False, engine="loop")
    assert cnn_like.engine is training.Engine.LOOP


def test_run_fedavg_progress_bar_shows_rounds_and_accuracy(uneven_clients, capsys):
    test = uneven_clients[-1]
    kwargs = dict(num_rounds=2, clients_per_round=2, local_epochs=1, batch_size=5,
                  client_learning_rate=0.1, test_data=test, seed=0)
    training.run_fedavg(models.make_softmax_regression, uneven_clients, progress=False,
                         **kwargs)
    assert capsys.readouterr().err == ""
    history = training.run_fedavg(models.make_softmax_regression, uneven_clients, **kwargs)
    err = capsys.readouterr().err
    assert "FedAvg" in err and "2/2" in err
    assert f"test_accuracy={history.test_accuracy[-1]:.4f}" in err
