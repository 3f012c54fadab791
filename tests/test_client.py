"""The client update (fl_helpers.client): local SGD, the loss curve and evaluation.

Tolerances: float32 TensorFlow against a float64 numpy reference agree to ~1e-6 relative on these
tiny problems; we allow rtol=1e-5, atol=1e-6.
"""

import numpy as np
import pytest

from fl_helpers import client, models, schedule


@pytest.fixture(scope="module")
def softmax_model():
    return models.make_softmax_regression(0)


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.random((13, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=13)
    return x, y


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
