"""The fast engine's convolutional path against the per-client loop (client.LoopTrainer).

Both run the same SGD steps on the same batches in float32 (the batches of
``schedule.client_batches``); the engine sums gradients and convolutions in other orders, so the
updates agree to rounding. Observed on the course CNN (3 clients, E = 2, B = 10): largest absolute
difference of any update coordinate ~2e-8 against coordinates up to ~2e-2. The bound below,
``DELTA_ATOL = 1e-6``, leaves room for a pre-activation within rounding of 0 taking the other side
of a ReLU kink, and is still 10,000 times smaller than the updates themselves (checked, so the
comparison cannot pass on updates that are all zero).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fl_helpers import aggregation, client, data, engine, models, training

DELTA_ATOL = 1e-6
RUN_RTOL = 2e-2  # whole runs through training.run_fedavg: see the last test
SIZES = (40, 30, 25)  # 25 and 45 % 10: partial last batches; unequal clients: padding steps
LOCAL = dict(local_epochs=2, batch_size=10, client_learning_rate=0.05, seed=3)


@pytest.fixture(scope="module")
def mnist_clients():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    starts = np.concatenate([[0], np.cumsum(SIZES)])
    datasets = [(x_train[a:b].astype(np.float32), y_train[a:b].astype(np.int64))
                for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return datasets, (x_test[:1500], y_test[:1500])


@pytest.fixture(scope="module")
def cnn_pair(mnist_clients):
    datasets, _ = mnist_clients
    model = models.make_cnn(seed=0)
    fast = engine.MultiClientEngine(model, datasets, **LOCAL)
    loop = client.LoopTrainer(models.make_cnn(seed=0), datasets, **LOCAL)
    return model, fast, loop


def _small_valid_cnn(seed: int = 0) -> keras.Model:
    """A tiny CNN with "valid" padding, tanh and overlapping pooling: other code paths."""
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential([
        keras.Input(shape=(28, 28), dtype="float32"),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(3, 3, padding="valid", activation="tanh", kernel_initializer=init),
        keras.layers.MaxPooling2D(pool_size=3, strides=2),
        keras.layers.Conv2D(4, 4, padding="same", activation="sigmoid", kernel_initializer=init),
        keras.layers.Flatten(),
        keras.layers.Dense(10, kernel_initializer=init),
    ])


def _assert_same_updates(fast_results, loop_results):
    np.testing.assert_array_equal(fast_results.num_examples, loop_results.num_examples)
    for mine, theirs in zip(fast_results.deltas, loop_results.deltas, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=0, atol=DELTA_ATOL)
        assert max(float(np.abs(b).max()) for b in theirs) > 1e4 * DELTA_ATOL  # real updates


def test_the_course_cnn_is_supported():
    program = engine.layer_program(models.make_cnn())
    assert program is not None
    assert [op[0] for op in program] == ["reshape", "conv", "maxpool", "conv", "maxpool",
                                         "flatten", "dense", "dense"]
    assert engine.supports(models.make_cnn())
    assert engine.supports(_small_valid_cnn())
    # Dense stacks keep their own description (fl_helpers.attacks reads it).
    assert engine.dense_activations(models.make_2nn()) == ("relu", "relu", "linear")
    assert engine.dense_activations(models.make_cnn()) is None


@pytest.mark.parametrize("layer", [
    keras.layers.Dropout(0.5),
    keras.layers.Conv2D(4, 3, strides=2),
    keras.layers.Conv2D(4, 3, use_bias=False),
    keras.layers.Conv2D(4, 3, dilation_rate=2),
    keras.layers.MaxPooling2D(2, padding="same"),
    keras.layers.AveragePooling2D(2),
    keras.layers.BatchNormalization(),
])
def test_unsupported_layers_fall_back_to_the_loop(layer):
    model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Reshape((28, 28, 1)),
                              layer, keras.layers.Flatten(), keras.layers.Dense(10)])
    assert engine.layer_program(model) is None
    with pytest.raises(ValueError, match="model must be a Sequential"):
        engine.MultiClientEngine(model, [(np.zeros((2, 28, 28), np.float32),
                                          np.zeros(2, np.int64))], **LOCAL)


def test_cnn_updates_equal_the_loop(mnist_clients, cnn_pair):
    model, fast, loop = cnn_pair
    start = [np.asarray(w, np.float32) for w in model.get_weights()]
    sampled = np.array([2, 0, 1])
    _assert_same_updates(fast.train(start, sampled, 4), loop.train(start, sampled, 4))


def test_cnn_clipped_sum_equals_the_rules_reference_sum(cnn_pair):
    model, fast, loop = cnn_pair
    start = [np.asarray(w, np.float32) for w in model.get_weights()]
    sampled = np.array([0, 1, 2])
    results = loop.train(start, sampled, 1)
    norms = np.sqrt([sum(float(np.sum(d ** 2)) for d in deltas) for deltas in results.deltas])
    clipping_norm = float(np.median(norms))  # clips some clients, not all
    rule = aggregation.DPFedAvg(clipping_norm=clipping_norm, noise_multiplier=0.0,
                                expected_clients=3.0)
    reference = rule.sum_updates(results.deltas, results.num_examples)
    fused = fast.clipped_sum(start, sampled, 1, scales=np.ones(3), clipping_norm=clipping_norm)
    np.testing.assert_allclose(fused.update_norms, reference.update_norms, rtol=1e-5)
    np.testing.assert_allclose(fused.clipped_norms, reference.clipped_norms, rtol=1e-5)
    assert np.sum(fused.update_norms > clipping_norm) >= 1
    for a, b in zip(fused.total, reference.total, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=DELTA_ATOL)


def test_cnn_evaluator_equals_client_evaluate(mnist_clients, cnn_pair):
    _, test = mnist_clients
    model, fast, _ = cnn_pair
    weights = model.get_weights()
    loss, accuracy = fast.evaluator(*test)(weights)  # 1,500 examples: two chunks, one partial
    ref_loss, ref_accuracy = client.evaluate(model, weights, *test)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert accuracy == ref_accuracy


def test_group_size_changes_nothing_on_a_valid_padding_cnn(mnist_clients):
    datasets, _ = mnist_clients
    model = _small_valid_cnn()
    start = [np.asarray(w, np.float32) for w in model.get_weights()]
    sampled = np.array([1, 2, 0])
    loop = client.LoopTrainer(_small_valid_cnn(), datasets, **LOCAL).train(start, sampled, 0)
    for group_size in (1, 2, 3):
        fast = engine.MultiClientEngine(model, datasets, group_size=group_size, **LOCAL)
        _assert_same_updates(fast.train(start, sampled, 0), loop)


def test_the_cnn_runs_on_the_fast_engine_and_auto_keeps_the_loop(mnist_clients):
    # "auto" keeps the per-client loop for convolutional models: on a CPU it measured as fast or
    # faster (benchmarks/bench_engine_speed.py --cnn); engine="fast" runs them on the engine.
    datasets, test = mnist_clients
    kwargs = dict(num_rounds=1, clients_per_round=2, local_epochs=1, batch_size=10,
                  client_learning_rate=0.05, test_data=test, seed=1, progress=False)
    fast = training.run_fedavg(models.make_cnn, datasets, engine="fast", **kwargs)
    assert fast.engine is training.Engine.FAST
    loop = training.run_fedavg(models.make_cnn, datasets, **kwargs)
    assert loop.engine is training.Engine.LOOP
    start = models.make_cnn().get_weights()
    # One ReLU pre-activation within rounding of 0 may go the other way in one implementation
    # (observed here: one of the 512 dense units, a bias off by 7.5e-5), a finite change of one
    # step's gradient; so this whole-run check bounds the difference of the global updates
    # relative to their size (observed 4e-3) instead of coordinate by coordinate.
    difference = np.sqrt(sum(float(np.sum((a - b) ** 2))
                             for a, b in zip(fast.final_weights, loop.final_weights, strict=True)))
    update = np.sqrt(sum(float(np.sum((b - w0) ** 2))
                         for b, w0 in zip(loop.final_weights, start, strict=True)))
    assert update > 0.05  # observed 0.12
    assert difference / update < RUN_RTOL
    assert fast.test_accuracy[0] == pytest.approx(loop.test_accuracy[0], abs=2e-3)
