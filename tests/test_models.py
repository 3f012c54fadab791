"""Tests of fl_helpers.models: parameter counts from McMahan et al. 2017, seeding, output shape."""

import numpy as np
import pytest

from fl_helpers import models


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (models.make_softmax_regression, 7_850),
        (models.make_2nn, 199_210),  # McMahan et al. 2017, Section 3
        (models.make_cnn, 1_663_370),  # McMahan et al. 2017, Section 3
    ],
)
def test_parameter_counts(factory, expected):
    assert factory(0).count_params() == expected


@pytest.mark.parametrize("factory", [models.make_softmax_regression, models.make_2nn])
def test_same_seed_same_weights_other_seed_other_weights(factory):
    first, again = factory(3).get_weights(), factory(3).get_weights()
    other = factory(4).get_weights()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    kernels = [w for w in first if w.ndim == 2]
    other_kernels = [w for w in other if w.ndim == 2]
    assert all(not np.array_equal(a, b) for a, b in zip(kernels, other_kernels, strict=True))


def test_seeding_does_not_read_global_state():
    import keras

    keras.utils.set_random_seed(1)
    a = models.make_2nn(5).get_weights()
    keras.utils.set_random_seed(2)
    b = models.make_2nn(5).get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("factory", [models.make_softmax_regression, models.make_2nn,
                                     models.make_cnn])
def test_outputs_are_logits_of_shape_batch_by_10(factory):
    x = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    logits = np.asarray(factory(0)(x))
    assert logits.shape == (4, 10)
    assert logits.dtype == np.float32
    # Logits, not probabilities: not all in [0, 1] or not summing to one.
    assert (logits < 0).any() or not np.allclose(logits.sum(axis=1), 1.0)


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (1.5, TypeError), ("0", TypeError)])
def test_bad_seed_is_rejected(seed, error):
    with pytest.raises(error, match="seed"):
        models.make_2nn(seed)


def test_make_mlp_builds_the_2nn_and_smaller_models():
    from fl_helpers import engine

    two = models.make_mlp((200, 200), activation="relu")
    assert two.count_params() == models.make_2nn().count_params() == 199_210
    small = models.make_mlp((100,), activation="tanh", input_shape=(14, 14))
    assert small.count_params() == 196 * 100 + 100 + 100 * 10 + 10
    assert small(np.zeros((2, 14, 14), np.float32)).shape == (2, 10)
    assert engine.dense_activations(small) == ("tanh", "linear")
    np.testing.assert_array_equal(models.make_mlp(seed=3).get_weights()[0],
                                  models.make_mlp(seed=3).get_weights()[0])
    with pytest.raises(ValueError, match="activation must be one of"):
        models.make_mlp(activation="gelu")
    with pytest.raises(TypeError, match="hidden_units must be a tuple"):
        models.make_mlp(100)
