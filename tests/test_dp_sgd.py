"""Tests of fl_helpers.dp_sgd: example-level DP-SGD (Abadi et al. 2016, Algorithm 1)."""

from __future__ import annotations

import math
import re
import warnings

import keras
import numpy as np
import pytest

from fl_helpers import accounting, aggregation, audit, discrete_noise, dp_sgd, models, schedule


def _rep(seed: int) -> schedule.PrivateRandomness:
    """Reproducible randomness for the tests (NOT private; no warning)."""
    return schedule.PrivateRandomness.reproducible(seed, warn=False)


@pytest.fixture(scope="module")
def toy_data():
    rng = np.random.default_rng(0)
    x = rng.random((60, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=60)
    return x, y


def small_classifier(seed: int = 0, num_classes: int = 3, num_features: int = 5) -> keras.Model:
    """A small non-course Keras classifier (tanh hidden layer) to show the API is general."""
    return keras.Sequential([
        keras.Input(shape=(num_features,)),
        keras.layers.Dense(4, activation="tanh",
                           kernel_initializer=keras.initializers.GlorotUniform(seed=seed)),
        keras.layers.Dense(num_classes,
                           kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1)),
    ])


def train_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # The tests' datasets are public: q times their size is the public divisor.
        kwargs.setdefault("expected_batch_size", kwargs["sampling_probability"] * len(args[1]))
        return dp_sgd.train(*args, **kwargs)


SETTINGS = dict(noise_multiplier=1.1, clipping_norm=1.0, sampling_probability=0.2, num_steps=5,
                learning_rate=0.1, target_delta=1e-5, expected_batch_size=12.0)


# ---------------------------------------------------------------------------------------------
# Per-example gradients and clipping
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make_model", [models.make_softmax_regression, models.make_2nn])
def test_per_example_gradients_equal_single_example_gradients(make_model, toy_data):
    import tensorflow as tf

    x, y = toy_data
    model = make_model(1)
    batched = dp_sgd.per_example_gradients(model, x[:6], y[:6])
    assert [g.shape for g in batched] == [(6, *v.shape) for v in model.trainable_variables]
    for i in range(6):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y[i:i + 1], logits=model(x[i:i + 1])))
        alone = tape.gradient(loss, model.trainable_variables)
        for from_batch, from_alone in zip(batched, alone, strict=True):
            np.testing.assert_allclose(from_batch[i], from_alone.numpy(), rtol=1e-4, atol=1e-6)
    # Not all equal: the examples really differ (the comparison above is not vacuous).
    assert not np.allclose(batched[0][0], batched[0][1])


def test_per_example_gradients_of_softmax_regression_match_closed_form(toy_data):
    x, y = toy_data
    model = models.make_softmax_regression(2)
    kernel, bias = model.get_weights()
    flat = x[:8].reshape(8, -1)
    logits = flat @ kernel + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    residual = p / p.sum(axis=1, keepdims=True) - np.eye(10)[y[:8]]
    grad_kernel, grad_bias = dp_sgd.per_example_gradients(model, x[:8], y[:8])
    np.testing.assert_allclose(grad_kernel, flat[:, :, None] * residual[:, None, :], atol=1e-5)
    np.testing.assert_allclose(grad_bias, residual, atol=1e-6)


def test_clipping_never_increases_a_norm_and_bounds_every_example(toy_data):
    x, y = toy_data
    gradients = dp_sgd.per_example_gradients(models.make_2nn(0), x[:20], y[:20])
    gradients = [g * np.linspace(0.01, 3.0, 20).reshape(-1, *[1] * (g.ndim - 1))
                 for g in gradients]  # a spread of norms, some below and some above C
    norms_before = np.sqrt(sum((g.reshape(20, -1) ** 2).sum(axis=1) for g in gradients))
    clipping_norm = float(np.median(norms_before))
    clipped, norms = dp_sgd.clip_per_example(gradients, clipping_norm=clipping_norm)
    norms_after = np.sqrt(sum((c.reshape(20, -1).astype(np.float64) ** 2).sum(axis=1)
                              for c in clipped))
    np.testing.assert_allclose(norms, norms_before, rtol=1e-5)
    assert np.all(norms_after <= clipping_norm * (1 + 1e-5))
    assert np.all(norms_after <= norms_before * (1 + 1e-5))
    inside = norms_before <= clipping_norm
    assert 0 < inside.sum() < 20
    for c, g in zip(clipped, gradients, strict=True):
        np.testing.assert_allclose(c[inside], g[inside], rtol=1e-6)  # unchanged inside the ball
    np.testing.assert_allclose(norms_after[~inside], clipping_norm, rtol=1e-5)  # onto the sphere
    # Clipping scales, it does not rotate: the direction of each example is kept.
    for i in np.flatnonzero(~inside):
        np.testing.assert_allclose(clipped[0][i] * norms_before[i] / clipping_norm,
                                   gradients[0][i], rtol=1e-4, atol=1e-7)


def test_zero_gradient_is_not_divided_by_zero():
    clipped, norms = dp_sgd.clip_per_example([np.zeros((2, 3)), np.zeros((2,))], clipping_norm=1.0)
    assert np.all(norms == 0) and all(np.all(c == 0) for c in clipped)


# ---------------------------------------------------------------------------------------------
# The training loop: accounting, noise, randomness
# ---------------------------------------------------------------------------------------------


def test_epsilon_equals_the_accountants(toy_data):
    x, y = toy_data
    result = train_quietly(models.make_softmax_regression(0), x, y, **SETTINGS)
    # Exact noise (the default): the discrete accountant's epsilon.
    expected = accounting.epsilon_per_round(
        noise_multiplier=1.1, sampling_probability=0.2, num_rounds=5, target_delta=1e-5,
        accountant="discrete")
    assert result.epsilon == expected[-1]
    assert result.epsilon == accounting.dp_fedavg_epsilon(
        noise_multiplier=1.1, sampling_probability=0.2, num_rounds=5, target_delta=1e-5,
        accountant="discrete")
    np.testing.assert_array_equal(result.epsilon_per_step(), expected)
    # More noise, less epsilon: the number depends on z (the check above is not vacuous).
    assert accounting.dp_fedavg_epsilon(noise_multiplier=2.2, sampling_probability=0.2,
                                        num_rounds=5, target_delta=1e-5) < result.epsilon
    assert result.expected_batch_size == pytest.approx(0.2 * 60)
    assert 0 < result.epsilon < math.inf


def test_no_noise_means_no_guarantee(toy_data):
    x, y = toy_data
    result = train_quietly(models.make_softmax_regression(0), x, y,
                           **{**SETTINGS, "noise_multiplier": 0.0})
    assert math.isinf(result.epsilon)
    assert np.all(np.isinf(result.epsilon_per_step()))
    assert "no privacy guarantee" in result.privacy_statement()


def _one_full_batch_step(model, x, y, *, noise_multiplier, clipping_norm, seed):
    """Runs one step with q = 1 and returns (noise added to the sum, the clipped sum)."""
    start = model.get_weights()
    clipped, _ = dp_sgd.clip_per_example(dp_sgd.per_example_gradients(model, x, y),
                                         clipping_norm=clipping_norm)
    total = [c.astype(np.float64).sum(axis=0) for c in clipped]
    result = train_quietly(model, x, y, noise_multiplier=noise_multiplier,
                           clipping_norm=clipping_norm, sampling_probability=1.0, num_steps=1,
                           learning_rate=1.0, target_delta=1e-5, randomness=_rep(seed))
    # w1 = w0 - lr * (sum + noise) / (q n) with q = 1, lr = 1.
    noise = [(w0.astype(np.float64) - w1) * len(x) - s
             for w0, w1, s in zip(start, result.final_weights, total, strict=True)]
    return noise, total


def test_noise_on_the_sum_has_std_z_times_c(toy_data):
    x, y = toy_data
    noise, total = _one_full_batch_step(models.make_2nn(0), x[:20], y[:20], noise_multiplier=0.8,
                                        clipping_norm=2.0, seed=3)
    flat = np.concatenate([n.ravel() for n in noise])
    assert flat.size == 199_210
    # 199,210 draws: the sample std is within 0.5% of the truth with overwhelming probability
    # (its relative standard error is 1/sqrt(2 * 199210) = 0.16%), so a std of 1.6 passes and
    # any other multiplier that is 1% off fails.
    assert np.std(flat) == pytest.approx(0.8 * 2.0, rel=0.005)
    assert abs(np.mean(flat)) < 5 * 1.6 / math.sqrt(flat.size)
    # The clipped sum itself is far from zero, so the noise was not read off a zero update.
    assert np.sqrt(sum((s ** 2).sum() for s in total)) > 1.0


def test_the_update_divides_by_the_expected_batch_size(toy_data):
    # With z = 0 and q = 1 one step is exactly w - lr * clipped_sum / n.
    x, y = toy_data
    noise, _ = _one_full_batch_step(models.make_softmax_regression(0), x, y, noise_multiplier=0.0,
                                    clipping_norm=0.5, seed=0)
    assert max(np.abs(n).max() for n in noise) < 1e-3


def test_default_runs_use_secret_noise_and_differ(toy_data):
    x, y = toy_data
    start = models.make_softmax_regression(0).get_weights()
    finals = []
    for _ in range(2):
        model = models.make_softmax_regression(0)
        model.set_weights(start)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the default run must not warn
            result = dp_sgd.train(model, x, y, **SETTINGS)
        assert result.reproducible_noise is False
        assert "NOT PRIVATE" not in result.privacy_statement()
        finals.append(result.final_weights)
    assert not np.array_equal(finals[0][0], finals[1][0])


def test_reproducible_runs_are_bit_identical_and_say_they_are_not_private(toy_data):
    x, y = toy_data
    finals = []
    for _ in range(2):
        with pytest.warns(UserWarning, match="reproducible noise from seed 7"):
            result = dp_sgd.train(models.make_softmax_regression(0), x, y, **SETTINGS,
                                  randomness=schedule.PrivateRandomness.reproducible(7))
        assert result.reproducible_noise is True
        assert result.privacy_statement().startswith("guarantee:      NOT PRIVATE")
        finals.append(result.final_weights)
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)
    other = train_quietly(models.make_softmax_regression(0), x, y, **SETTINGS,
                          randomness=_rep(8))
    assert not np.array_equal(other.final_weights[0], finals[0][0])


def test_regenerating_the_noise_recovers_the_clean_sum_only_for_a_known_seed(toy_data):
    """The attack on seeded noise: subtract the regenerated noise from the released update
    (float noise here, regenerated with the float sampler; test_dp_fedavg.py runs the same
    attack on exact noise)."""
    x, y = toy_data[0][:20], toy_data[1][:20]
    for secret in (False, True):
        model = models.make_softmax_regression(0)
        start = model.get_weights()
        clipped, _ = dp_sgd.clip_per_example(dp_sgd.per_example_gradients(model, x, y),
                                             clipping_norm=1.0)
        clean = clipped[0].astype(np.float64).sum(axis=0)
        result = train_quietly(model, x, y, noise_multiplier=1.0, clipping_norm=1.0,
                               sampling_probability=1.0, num_steps=1, learning_rate=1.0,
                               target_delta=1e-5, noise="float",
                               randomness=None if secret else _rep(11))
        released = (start[0] - result.final_weights[0]) * len(x)   # clean sum + noise
        # The attacker regenerates step 0's noise from the seed they know (or guess).
        attacker = schedule.PrivateRandomness.reproducible(11, warn=False)
        guess = schedule.gaussian_noise([w.shape for w in start], stddev=1.0,
                                        rng=attacker.noise_rng(0))[0]
        error = np.linalg.norm(released - guess - clean) / np.linalg.norm(clean)
        if secret:
            assert error > 10    # the noise (norm ~ 89) swamps the clean sum
        else:
            assert error < 1e-3  # seeded: the attacker recovers the clean sum


def test_poisson_sampling_rate_and_empty_batches(toy_data):
    # q small enough that many steps sample nobody; the run must still work and only add noise.
    x, y = toy_data
    model = models.make_softmax_regression(0)
    start = model.get_weights()
    result = train_quietly(model, x[:3], y[:3], noise_multiplier=1.0, clipping_norm=1.0,
                           sampling_probability=0.01, num_steps=20, learning_rate=0.1,
                           target_delta=1e-5, randomness=_rep(0))
    assert all(np.isfinite(w).all() for w in result.final_weights)
    assert not np.array_equal(result.final_weights[0], start[0])
    # The draw order is documented: replay it and count the sampled examples.
    randomness = schedule.PrivateRandomness.reproducible(0, warn=False)
    batches = [np.flatnonzero(randomness.sampling_rng(t).random(3) < 0.01) for t in range(20)]
    assert sum(len(b) == 0 for b in batches) >= 15


def test_poisson_batches_have_the_expected_mean_size():
    # Replaying the documented draw for n = 1000, q = 0.05 over 200 steps: mean size q n = 50,
    # with standard error sqrt(n q (1 - q) / 200) = 0.49.
    rng = np.random.default_rng(0)
    sizes = [np.count_nonzero(rng.random(1000) < 0.05) for _ in range(200)]
    assert np.mean(sizes) == pytest.approx(50, abs=2.5)
    assert np.std(sizes) > 3  # varies: it is not a fixed batch size


def test_parity_with_a_from_scratch_loop(toy_data):
    """The float-noise step against a loop written out (notebook 02 checks the exact one)."""
    import tensorflow as tf

    x, y = toy_data
    n, q, z, clip, lr, steps = len(x), 0.25, 1.0, 0.5, 0.3, 4
    model = models.make_softmax_regression(4)
    start = model.get_weights()
    randomness = schedule.PrivateRandomness.reproducible(5, warn=False)
    for t in range(steps):
        batch = np.flatnonzero(randomness.sampling_rng(t).random(n) < q)
        noise = schedule.gaussian_noise([tuple(v.shape) for v in model.trainable_variables],
                                        stddev=z * clip, rng=randomness.noise_rng(t))
        total = [np.zeros(v.shape, np.float32) for v in model.trainable_variables]
        for i in batch:
            with tf.GradientTape() as tape:
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y[i:i + 1], logits=model(x[i:i + 1]))[0]
            g = tape.gradient(loss, model.trainable_variables)
            norm = np.sqrt(sum(float(tf.reduce_sum(t ** 2)) for t in g))
            total = [s + t.numpy() * min(1.0, clip / norm) for s, t in zip(total, g, strict=True)]
        for var, s, e in zip(model.trainable_variables, total, noise, strict=True):
            var.assign_sub(lr * (s + e) / (q * n))
    helper = models.make_softmax_regression(4)
    helper.set_weights(start)
    result = train_quietly(helper, x, y, noise_multiplier=z, clipping_norm=clip,
                           sampling_probability=q, num_steps=steps, learning_rate=lr,
                           target_delta=1e-5, randomness=_rep(5), noise="float")
    for ours, theirs in zip(model.get_weights(), result.final_weights, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_works_for_a_general_small_classifier():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    model = small_classifier()
    before = np.mean(np.argmax(model(x), axis=1) == y)
    result = dp_sgd.train(model, x, y, noise_multiplier=0.5, clipping_norm=1.0,
                          sampling_probability=0.1, num_steps=300, learning_rate=0.5,
                          target_delta=1e-4, expected_batch_size=0.1 * len(x))
    after = np.mean(np.argmax(model(x), axis=1) == y)
    assert after > max(before, 0.6)
    assert math.isfinite(result.epsilon)


def test_batch_normalization_is_rejected():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="BatchNormalization"):
        dp_sgd.train(model, np.zeros((4, 5)), np.zeros(4, int), **SETTINGS)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value, error, message", [
    ("sampling_probability", 0.0, ValueError, r"sampling_probability must be in \(0, 1\], got 0.0"),
    ("sampling_probability", 1.5, ValueError, r"sampling_probability must be in \(0, 1\]"),
    ("sampling_probability", -0.1, ValueError, r"sampling_probability must be in \(0, 1\]"),
    ("sampling_probability", float("nan"), ValueError, "sampling_probability must be finite"),
    ("clipping_norm", 0.0, ValueError, "clipping_norm must be > 0, got 0.0"),
    ("clipping_norm", -1.0, ValueError, "clipping_norm must be > 0"),
    ("clipping_norm", float("inf"), ValueError, "clipping_norm must be finite"),
    ("noise_multiplier", -0.5, ValueError, "noise_multiplier must be >= 0, got -0.5"),
    ("noise_multiplier", float("nan"), ValueError, "noise_multiplier must be finite"),
    ("noise_multiplier", "1", TypeError, "noise_multiplier must be a real number"),
    ("num_steps", 0, ValueError, "num_steps must be >= 1, got 0"),
    ("num_steps", 2.5, TypeError, "num_steps must be an integer"),
    ("num_steps", True, TypeError, "num_steps must be an integer"),
    ("learning_rate", 0.0, ValueError, "learning_rate must be > 0"),
    ("target_delta", 0.0, ValueError, r"target_delta must be in \(0, 1\)"),
    ("target_delta", 1.0, ValueError, r"target_delta must be in \(0, 1\)"),
    ("randomness", 3, TypeError, "randomness must be a PrivateRandomness"),
    ("randomness", np.random.default_rng(0), TypeError, "randomness must be a PrivateRandomness"),
    # The divisor q n is public: never counted from x (which one example changes).
    ("expected_batch_size", None, ValueError, "expected_batch_size must be given, got None"),
    ("expected_batch_size", 0.0, ValueError, "expected_batch_size must be > 0"),
])
def test_bad_settings_raise_clear_errors(toy_data, name, value, error, message):
    x, y = toy_data
    with pytest.raises(error, match=message):
        dp_sgd.train(models.make_softmax_regression(0), x, y, **{**SETTINGS, name: value})


@pytest.mark.parametrize("x, y, error, message", [
    (np.zeros((0, 28, 28)), np.zeros(0, int), ValueError, "x must hold at least one example"),
    (np.zeros((3, 28, 28)), np.zeros(2, int), ValueError, "same length, got 3 and 2"),
    (np.zeros((3, 27, 28)), np.zeros(3, int), ValueError, "x must have shape"),
    (np.full((3, 28, 28), np.nan), np.zeros(3, int), ValueError, "x must be finite"),
    (np.zeros((3, 28, 28)), np.array([0, 1, 10]), ValueError, "got values in 0..10"),
    (np.zeros((3, 28, 28)), np.array([0.0, 1.0, 2.0]), TypeError, "integer labels"),
    (np.zeros((3, 28, 28)), np.zeros((3, 1), int), ValueError, "1-D array of labels"),
])
def test_bad_data_raise_clear_errors(x, y, error, message):
    with pytest.raises(error, match=message):
        dp_sgd.train(models.make_softmax_regression(0), x, y, **SETTINGS)


def test_randomness_argument(toy_data):
    x, y = toy_data
    shared = schedule.PrivateRandomness.reproducible(3, warn=False)
    a = dp_sgd.train(models.make_softmax_regression(0), x, y, **SETTINGS, randomness=shared)
    b = train_quietly(models.make_softmax_regression(0), x, y, **SETTINGS,
                      randomness=_rep(3))
    assert a.reproducible_noise and b.reproducible_noise
    np.testing.assert_array_equal(a.final_weights[0], b.final_weights[0])
    with pytest.raises(TypeError, match="reproducible_noise_seed"):  # the old name is gone
        dp_sgd.train(models.make_softmax_regression(0), x, y, **SETTINGS,
                     reproducible_noise_seed=3)
    with pytest.raises(TypeError, match="randomness must be a PrivateRandomness"):
        dp_sgd.train(models.make_softmax_regression(0), x, y, **SETTINGS, randomness=3)


def test_bad_model_and_gradients_raise_clear_errors():
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        dp_sgd.train("model", np.zeros((3, 28, 28)), np.zeros(3, int), **SETTINGS)
    with pytest.raises(ValueError, match="clipping_norm must be > 0"):
        dp_sgd.clip_per_example([np.ones((2, 3))], clipping_norm=0)
    with pytest.raises(ValueError, match="same leading"):
        dp_sgd.clip_per_example([np.ones((2, 3)), np.ones((3,))], clipping_norm=1.0)
    with pytest.raises(ValueError, match="gradients must be finite"):
        dp_sgd.clip_per_example([np.full((2, 3), np.nan)], clipping_norm=1.0)
    with pytest.raises(TypeError, match="non-empty list"):
        dp_sgd.clip_per_example([], clipping_norm=1.0)


def test_exact_noise_step_is_the_integer_sum_plus_integer_noise(toy_data):
    """noise='exact': with q = 1 and z = 0 a step moves the weights by exactly the integer sum of
    the clipped per-example gradients (grid C / 2^16) divided by q n; with noise, the same plus
    discrete Gaussian integers, whose std is z C / (q n) on the update; the epsilon is the
    discrete accountant's."""
    x, y = toy_data[0][:12], toy_data[1][:12]
    model = models.make_softmax_regression(0)
    start = model.get_weights()
    gradients = dp_sgd.per_example_gradients(model, x, y)
    rows = np.concatenate([g.reshape(len(y), -1) for g in gradients], axis=1)
    integers = discrete_noise.clip_to_integer_grid(rows, clipping_norm=0.5,
                                                   steps=discrete_noise.GRID_STEPS).sum(axis=0)
    clean = train_quietly(model, x, y, noise_multiplier=0.0, clipping_norm=0.5,
                          sampling_probability=1.0, num_steps=1, learning_rate=1.0,
                          target_delta=1e-5, noise="exact", randomness=_rep(1))
    moved = np.concatenate([(a - b).ravel() for a, b in zip(start, clean.final_weights,
                                                           strict=True)])
    np.testing.assert_allclose(moved, integers * 0.5 / discrete_noise.GRID_STEPS / 12,
                               rtol=1e-5, atol=1e-7)
    noisy_model = models.make_softmax_regression(0)
    noisy = train_quietly(noisy_model, x, y, noise_multiplier=2.0, clipping_norm=0.5,
                          sampling_probability=1.0, num_steps=1, learning_rate=1.0,
                          target_delta=1e-5, noise="exact", randomness=_rep(1))
    noise = np.concatenate([(a - b).ravel() for a, b in zip(clean.final_weights,
                                                           noisy.final_weights, strict=True)])
    assert noise.std() == pytest.approx(2.0 * 0.5 / 12, rel=0.05)  # 7,850 draws
    assert noisy.noise == "exact" and "noise:          exact" in noisy.privacy_statement()
    assert noisy.epsilon == pytest.approx(accounting.dp_fedavg_epsilon(
        noise_multiplier=2.0, sampling_probability=1.0, num_rounds=1, target_delta=1e-5,
        accountant="discrete"))


def test_the_interval_attack_breaks_float_noise_and_not_exact_noise():
    """The second audit's attack on DP-SGD: the adversary knows the model, every example but
    whether the target (example 0) was in the batch, and the code. With float noise, some
    weights of one step are impossible without the target (each proves it was there); the right
    hypothesis explains them all. With exact noise, no weight is impossible under either."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((13, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 13)
    clip, rate, denominator = 0.5, 1.0, 13.0
    common = dict(noise_multiplier=1.0, clipping_norm=clip, sampling_probability=1.0,
                  num_steps=1, learning_rate=rate, target_delta=1e-5,
                  expected_batch_size=denominator)
    w0 = np.concatenate([w.ravel() for w in models.make_softmax_regression(0).get_weights()])

    def clipped_sum(xb, yb):  # the trainer's own clipping and summation
        clipped, _ = dp_sgd.clip_per_example(
            dp_sgd.per_example_gradients(models.make_softmax_regression(0), xb, yb),
            clipping_norm=clip)
        return np.concatenate([tf.reduce_sum(tf.constant(c), axis=0).numpy().ravel()
                               for c in clipped])

    with pytest.warns(aggregation.FloatNoiseWarning):  # the control
        float_run = dp_sgd.train(models.make_softmax_regression(0), x, y, noise="float",
                                 **common)
    w1 = np.concatenate([w.ravel() for w in float_run.final_weights])
    counts = {}
    for hypothesis, total in (("with", clipped_sum(x, y)), ("without", clipped_sum(x[1:], y[1:]))):
        def release(noise, total=total):  # var.assign_sub(lr * (total + noise) / (q n))
            step = (np.float32(rate) * (total + noise.astype(np.float32))) / np.float32(
                denominator)
            return (w0 - step.astype(np.float32)).astype(np.float32)

        counts[hypothesis] = audit.unexplained_coordinates(w1, release, noise="float32")
    assert counts["with"] == 0 and counts["without"] > 5, counts  # measured: 61

    exact_run = dp_sgd.train(models.make_softmax_regression(0), x, y, noise="exact", **common)
    w1 = np.concatenate([w.ravel() for w in exact_run.final_weights])
    scale = clip / discrete_noise.GRID_STEPS / denominator

    def release_exact(noised_sum):  # the exact step: integers, then scale, divide and step
        return (w0 - (rate * (noised_sum.astype(np.float64) * scale)).astype(np.float32)
                ).astype(np.float32)

    assert audit.unexplained_coordinates(w1, release_exact, noise="integer") == 0


# ------------------------------------------------ the statement in Chinese (issue 30)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")
#: The English statement's line labels and the Chinese ones (the glossary's terms).
_LABELS = [("guarantee:", "保证："), ("unit protected:", "隐私单元："),
           ("neighbouring:", "相邻关系："), ("divisor:", "除数："), ("noise:", "噪声："),
           ("trusted:", "受信任方："), (" " * 16, " " * 16), ("observer sees:", "观察者看到：")]


def _result(**changes) -> dp_sgd.DPSGDResult:
    fields = dict(final_weights=[], epsilon=1.2345, target_delta=1e-5, noise_multiplier=1.1,
                  clipping_norm=0.5, sampling_probability=0.012345, num_steps=600,
                  learning_rate=0.1, num_examples=60_000, expected_batch_size=740.7,
                  reproducible_noise=False, noise="exact")
    return dp_sgd.DPSGDResult(**{**fields, **changes})


@pytest.mark.parametrize("changes", [
    {}, {"noise": "float"}, {"reproducible_noise": True},
    {"noise_multiplier": 0.0, "epsilon": math.inf, "noise": "float"},
    {"epsilon": 12.5, "target_delta": 3.3e-7, "num_steps": 1, "sampling_probability": 1.0},
], ids=["exact", "float", "reproducible", "no noise", "other figures"])
def test_privacy_statement_in_chinese_says_the_same_with_the_same_figures(changes):
    """Line by line, the Chinese statement carries the English one's numbers (ε, δ, steps, z,
    q, C, n, q n) under the glossary's labels (保证, 隐私单元, 相邻关系, 受信任方, 观察者)."""
    result = _result(**changes)
    english = result.privacy_statement()
    assert result.privacy_statement(language="en") == english
    chinese = result.privacy_statement(language="zh-CN")
    en_lines, zh_lines = english.splitlines(), chinese.splitlines()
    assert len(en_lines) == len(zh_lines) == len(_LABELS)
    for ours, theirs, (en, zh) in zip(zh_lines, en_lines, _LABELS, strict=True):
        assert theirs.startswith(en) and ours.startswith(zh), (theirs, ours)
        assert sorted(_NUMBER.findall(ours)) == sorted(_NUMBER.findall(theirs)), (ours, theirs)
    assert ("NOT PRIVATE" in english) == ("不是隐私的" in chinese) == result.reproducible_noise
    assert ("没有隐私保证" in chinese) == ("no privacy guarantee" in english)
    assert not re.search(r"[A-Za-z]{4,} [a-z]{4,} [a-z]{4,}", chinese), \
        "an English phrase left in the Chinese"


@pytest.mark.parametrize("bad, error", [("zh", ValueError), ("EN", ValueError),
                                        ("", ValueError), (None, TypeError), (1, TypeError)])
def test_privacy_statement_language_is_checked(bad, error):
    with pytest.raises(error, match=r"^language must be 'en' or 'zh-CN', got "):
        _result().privacy_statement(language=bad)
