"""Federated averaging: batch order (schedule), the client update (client), FedAvg and the loop.

Tolerances: float32 TensorFlow against a float64 numpy reference agree to ~1e-6 relative on these
tiny problems; we allow rtol=1e-5, atol=1e-6.
"""

import math

import numpy as np
import pytest

from fl_helpers import aggregation, client, data, models, schedule, training

# ---------------------------------------------------------------------------------------------
# Fixtures: tiny problems
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def softmax_model():
    return models.make_softmax_regression(0)


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.random((13, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=13)
    return x, y


@pytest.fixture(scope="module")
def mnist_clients():
    """10 clients of 60 real MNIST training images each (non-IID shards), and 1,000 test images."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x_train, y_train = x_train[:600], y_train[:600]
    parts = data.partition_shards(y_train, 10, shards_per_client=2, rng=np.random.default_rng(0))
    return data.client_datasets(x_train, y_train, parts), (x_test[:1000], y_test[:1000])


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _numpy_sgd(kernel, bias, x, y, batches, learning_rate):
    """Softmax regression trained by hand: the gradient of mean cross-entropy is X^T (P - Y) / B."""
    kernel = kernel.astype(np.float64)
    bias = bias.astype(np.float64)
    flat = x.reshape(len(x), -1).astype(np.float64)
    losses = []
    for batch in batches:
        xb, yb = flat[batch], y[batch]
        probs = _softmax(xb @ kernel + bias)
        losses.append(-np.mean(np.log(probs[np.arange(len(batch)), yb])))
        residual = probs.copy()
        residual[np.arange(len(batch)), yb] -= 1.0
        kernel = kernel - learning_rate * xb.T @ residual / len(batch)
        bias = bias - learning_rate * residual.mean(axis=0)
    return kernel, bias, np.array(losses)


# ---------------------------------------------------------------------------------------------
# client_batches
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "batch_size", "per_epoch"), [(13, 5, 3), (10, 10, 1), (10, 3, 4),
                                                             (7, 100, 1), (7, None, 1), (1, 1, 1)])
def test_client_batches_use_every_example_once_per_epoch(n, batch_size, per_epoch):
    batches = schedule.client_batches(n, local_epochs=3, batch_size=batch_size,
                                       rng=np.random.default_rng(1))
    assert len(batches) == 3 * per_epoch
    step = n if batch_size is None else min(batch_size, n)
    for epoch in range(3):
        chunk = batches[epoch * per_epoch:(epoch + 1) * per_epoch]
        np.testing.assert_array_equal(np.sort(np.concatenate(chunk)), np.arange(n))
        assert [len(b) for b in chunk[:-1]] == [step] * (per_epoch - 1)
        assert len(chunk[-1]) == n - step * (per_epoch - 1)
        assert all(b.dtype == np.int64 for b in chunk)


def test_client_batches_reshuffle_each_epoch_and_follow_the_rng():
    first = schedule.client_batches(50, local_epochs=2, batch_size=50,
                                     rng=np.random.default_rng(7))
    again = schedule.client_batches(50, local_epochs=2, batch_size=50,
                                     rng=np.random.default_rng(7))
    assert not np.array_equal(first[0], first[1])
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(num_examples=0), ValueError, "num_examples must be >= 1"),
        (dict(local_epochs=0), ValueError, "local_epochs must be >= 1"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=2.0), TypeError, "batch_size must be an integer"),
        (dict(rng=3), TypeError, "rng must be a numpy.random.Generator"),
    ],
)
def test_client_batches_rejects_bad_arguments(kwargs, error, match):
    args = dict(num_examples=10, local_epochs=1, batch_size=2, rng=np.random.default_rng(0))
    args.update(kwargs)
    num_examples = args.pop("num_examples")
    with pytest.raises(error, match=match):
        schedule.client_batches(num_examples, **args)


# ---------------------------------------------------------------------------------------------
# run_sgd and client_update
# ---------------------------------------------------------------------------------------------


def test_client_update_matches_hand_written_numpy_sgd(softmax_model, tiny_data):
    x, y = tiny_data
    start = models.make_softmax_regression(1).get_weights()
    new_weights, n = client.client_update(
        softmax_model, start, x, y, local_epochs=2, batch_size=5, client_learning_rate=0.5,
        seed=[4, 2],
    )
    batches = schedule.client_batches(13, local_epochs=2, batch_size=5,
                                       rng=np.random.default_rng([4, 2]))
    kernel, bias, _ = _numpy_sgd(start[0], start[1], x, y, batches, 0.5)
    assert n == 13
    np.testing.assert_allclose(new_weights[0], kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_weights[1], bias, rtol=1e-5, atol=1e-6)


def test_run_sgd_returns_each_batch_loss_before_its_step(softmax_model, tiny_data):
    x, y = tiny_data
    start = models.make_softmax_regression(2).get_weights()
    softmax_model.set_weights(start)
    batches = [np.array([0, 3, 5]), np.arange(13), np.array([12])]
    losses = client.run_sgd(softmax_model, x, y, batches, learning_rate=0.1)
    kernel, bias, expected = _numpy_sgd(start[0], start[1], x, y, batches, 0.1)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    np.testing.assert_allclose(softmax_model.get_weights()[0], kernel, rtol=1e-5, atol=1e-6)


def test_client_update_is_deterministic_and_ignores_the_models_previous_state(tiny_data):
    x, y = tiny_data
    model = models.make_2nn(0)
    start = model.get_weights()
    kwargs = dict(local_epochs=2, batch_size=4, client_learning_rate=0.1)
    first, _ = client.client_update(model, start, x, y, seed=[0, 1, 2], **kwargs)
    again, _ = client.client_update(model, start, x, y, seed=[0, 1, 2], **kwargs)
    other, _ = client.client_update(model, start, x, y, seed=[0, 1, 3], **kwargs)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    # The global weights passed in are not modified.
    np.testing.assert_array_equal(start[0], models.make_2nn(0).get_weights()[0])


def test_one_trace_serves_every_client_size_batch_size_and_learning_rate(tiny_data):
    x, y = tiny_data
    model = models.make_softmax_regression(0)
    start = model.get_weights()
    for n, batch_size, lr in [(13, 5, 0.1), (7, None, 0.2), (2, 1, 0.05), (13, 13, 1.0)]:
        client.client_update(model, start, x[:n], y[:n], local_epochs=2, batch_size=batch_size,
                                client_learning_rate=lr, seed=0)
    assert client._train_fn(model).experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(x=np.zeros((0, 28, 28), np.float32), y=np.zeros(0, np.int64)), ValueError,
         "x must hold at least one example"),
        (dict(y=np.zeros(12, np.int64)), ValueError, "same length, got 13 and 12"),
        (dict(x=np.zeros((13, 784), np.float32)), ValueError, r"x must have shape"),
        (dict(y=np.full(13, 10)), ValueError, r"labels in 0..9"),
        (dict(y=np.zeros(13, np.float32)), TypeError, "integer labels"),
        (dict(x=np.full((13, 28, 28), np.nan, np.float32)), ValueError, "x must be finite"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(local_epochs=0), ValueError, "local_epochs must be >= 1"),
        (dict(client_learning_rate=float("nan")), ValueError,
         "client_learning_rate must be finite"),
        (dict(client_learning_rate=float("inf")), ValueError,
         "client_learning_rate must be finite"),
        (dict(client_learning_rate=0.0), ValueError, "client_learning_rate must be > 0"),
        (dict(seed=-1), ValueError, "seed must be >= 0"),
        (dict(seed="a"), TypeError, "seed must be an integer"),
        (dict(global_weights=[np.zeros((784, 10), np.float32)]), ValueError,
         "global_weights must have 2 arrays"),
        (dict(global_weights=[np.zeros((784, 9), np.float32), np.zeros(10, np.float32)]),
         ValueError, r"global_weights\[0\] must have shape \(784, 10\)"),
        (dict(model="not a model"), TypeError, "model must be a keras.Model"),
    ],
)
def test_client_update_rejects_bad_arguments(softmax_model, tiny_data, change, error, match):
    x, y = tiny_data
    args = dict(model=softmax_model, global_weights=softmax_model.get_weights(), x=x, y=y,
                local_epochs=1, batch_size=5, client_learning_rate=0.1, seed=0)
    args.update(change)
    with pytest.raises(error, match=match):
        client.client_update(args.pop("model"), args.pop("global_weights"), args.pop("x"),
                                args.pop("y"), **args)


def test_evaluate_matches_numpy(softmax_model, tiny_data):
    x, y = tiny_data
    weights = models.make_softmax_regression(3).get_weights()
    loss, accuracy = client.evaluate(softmax_model, weights, x, y, batch_size=4)
    probs = _softmax(x.reshape(13, -1).astype(np.float64) @ weights[0] + weights[1])
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(13), y])), rel=1e-5)
    assert accuracy == pytest.approx(np.mean(probs.argmax(axis=1) == y))


# ---------------------------------------------------------------------------------------------
# fedavg
# ---------------------------------------------------------------------------------------------


def _random_weights(seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)]


def test_fedavg_of_identical_clients_is_that_client():
    client = _random_weights(0)
    averaged = aggregation.fedavg([client, client, client], [5, 17, 2])
    for a, b in zip(averaged, client, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_fedavg_weights_follow_the_example_counts():
    a, b, c = _random_weights(1), _random_weights(2), _random_weights(3)
    averaged = aggregation.fedavg([a, b, c], [1, 3, 6])
    for i in range(2):
        expected = 0.1 * a[i].astype(np.float64) + 0.3 * b[i] + 0.6 * c[i]
        np.testing.assert_allclose(averaged[i], expected, rtol=1e-6, atol=1e-7)
    # Only the proportions matter.
    scaled = aggregation.fedavg([a, b, c], [10.0, 30.0, 60.0])
    for x, y in zip(averaged, scaled, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_fedavg_differs_from_the_unweighted_mean():
    a, b = _random_weights(1), _random_weights(2)
    averaged = aggregation.fedavg([a, b], [1, 9])
    assert not np.allclose(averaged[0], (a[0] + b[0]) / 2)


@pytest.mark.parametrize(
    ("clients", "counts", "error", "match"),
    [
        ([], [], ValueError, "at least one client"),
        ([_random_weights(0)], [1, 2], ValueError, "one count per client"),
        ([_random_weights(0), _random_weights(1)[:1]], [1, 1], ValueError,
         r"client_weights\[1\] must have 2 layers"),
        ([_random_weights(0), [np.zeros((4, 3)), np.zeros(4)]], [1, 1], ValueError,
         r"client_weights\[1\]\[0\] must have shape \(3, 4\)"),
        ([_random_weights(0), [np.full((3, 4), np.nan), np.zeros(4)]], [1, 1], ValueError,
         r"client_weights\[1\]\[0\] must be finite"),
        ([_random_weights(0), [np.zeros((3, 4)), np.full(4, np.inf)]], [1, 1], ValueError,
         r"client_weights\[1\]\[1\] must be finite"),
        ([_random_weights(0), _random_weights(1)], [1, 0], ValueError,
         r"num_examples\[1\] must be > 0"),
        ([_random_weights(0), _random_weights(1)], [-3, 1], ValueError,
         r"num_examples\[0\] must be > 0"),
        ([_random_weights(0), _random_weights(1)], [1, float("inf")], ValueError,
         r"num_examples\[1\] must be finite"),
        ([_random_weights(0), _random_weights(1)], [1, float("nan")], ValueError,
         r"num_examples\[1\] must be finite"),
        (np.zeros((2, 3)), [1, 1], TypeError, "client_weights must be a list"),
    ],
)
def test_fedavg_rejects_bad_input(clients, counts, error, match):
    with pytest.raises(error, match=match):
        aggregation.fedavg(clients, counts)


# ---------------------------------------------------------------------------------------------
# sample_clients and run_fedavg
# ---------------------------------------------------------------------------------------------


def test_sample_clients_follows_the_seed_convention():
    sampled = schedule.sample_clients(100, 10, seed=3, round_index=7)
    expected = np.sort(np.random.default_rng([3, 7]).choice(100, size=10, replace=False))
    np.testing.assert_array_equal(sampled, expected)
    assert schedule.client_seed(3, 7, 42) == [3, 7, 42]


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


def test_client_batches_count_matches_ceil():
    batches = schedule.client_batches(600, local_epochs=1, batch_size=50,
                                       rng=np.random.default_rng(0))
    assert len(batches) == math.ceil(600 / 50)


# ---------------------------------------------------------------------------------------------
# sgd_loss_curve
# ---------------------------------------------------------------------------------------------


def test_sgd_loss_curve_ends_where_client_update_ends(softmax_model, tiny_data):
    x, y = tiny_data
    start = models.make_softmax_regression(1).get_weights()
    kwargs = dict(local_epochs=3, batch_size=2, client_learning_rate=0.3, seed=[1, 2, 3])
    curve = client.sgd_loss_curve(softmax_model, start, x, y, evaluations_per_epoch=4,
                                     **kwargs)
    expected, _ = client.client_update(softmax_model, start, x, y, **kwargs)
    for a, b in zip(curve.final_weights, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # 7 batches per epoch (6 of 2, 1 of 1); a checkpoint after every 13/4 examples or more.
    assert curve.steps[0] == 0 and curve.examples_seen[0] == 0 and curve.steps[-1] == 21
    assert curve.examples_seen[-1] == 39
    assert len(curve.steps) == 1 + 3 * 4
    assert np.all(np.diff(curve.examples_seen) > 0)
    np.testing.assert_allclose(curve.epochs[-1], 3.0)
    assert not curve.diverged
    loss0, _ = client.evaluate(softmax_model, start, x, y)
    assert curve.loss[0] == pytest.approx(loss0)


def test_sgd_loss_curve_full_batch_has_one_checkpoint_per_step(softmax_model, tiny_data):
    x, y = tiny_data
    curve = client.sgd_loss_curve(softmax_model, softmax_model.get_weights(), x, y,
                                     local_epochs=5, batch_size=None, client_learning_rate=0.005,
                                     seed=0)
    np.testing.assert_array_equal(curve.steps, np.arange(6))
    np.testing.assert_array_equal(curve.examples_seen, 13 * np.arange(6))
    # Full-batch steps below 2 / (Lipschitz constant of the gradient, here ~100) decrease the loss.
    assert np.all(np.diff(curve.loss) < 0)


def test_sgd_loss_curve_stops_and_reports_divergence(tiny_data):
    x, y = tiny_data
    model = models.make_2nn(0)
    curve = client.sgd_loss_curve(model, model.get_weights(), x * 1e4, y, local_epochs=50,
                                     batch_size=1, client_learning_rate=1e3, seed=0)
    assert curve.diverged
    assert not np.isfinite(curve.loss[-1]) and np.isfinite(curve.loss[:-1]).all()
    assert curve.steps[-1] < 50 * 13


def test_sgd_loss_curve_rejects_bad_arguments(softmax_model, tiny_data):
    x, y = tiny_data
    with pytest.raises(ValueError, match="evaluations_per_epoch must be >= 1"):
        client.sgd_loss_curve(softmax_model, softmax_model.get_weights(), x, y,
                                 local_epochs=1, batch_size=2, client_learning_rate=0.1, seed=0,
                                 evaluations_per_epoch=0)
    with pytest.raises(ValueError, match="client_learning_rate must be finite"):
        client.sgd_loss_curve(softmax_model, softmax_model.get_weights(), x, y,
                                 local_epochs=1, batch_size=2, client_learning_rate=float("inf"),
                                 seed=0)


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


def test_exponential_average_follows_the_global_models_without_changing_them():
    from fl_helpers import aggregation

    plain = aggregation.ServerSGD(0.5, momentum=0.9)
    averaged = aggregation.ExponentialAverage(aggregation.ServerSGD(0.5, momentum=0.9),
                                              decay=0.8)
    weights_a = weights_b = [np.zeros(3, np.float32)]
    expected = None
    for t in range(5):
        update = [np.full(3, t + 1.0, np.float32)]
        weights_a = plain.apply(weights_a, update)
        weights_b = averaged.apply(weights_b, update)
        np.testing.assert_array_equal(weights_a[0], weights_b[0])  # training is unchanged
        expected = weights_b[0] if expected is None else 0.8 * expected + 0.2 * weights_b[0]
        np.testing.assert_allclose(averaged.averaged_weights[0], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="decay must be in"):
        aggregation.ExponentialAverage(plain, decay=1.0)
    with pytest.raises(TypeError, match="optimizer must be a ServerOptimizer"):
        aggregation.ExponentialAverage(averaged)
