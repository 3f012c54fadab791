"""The three MNIST models of the course, built and ready to train.

All three take a batch of ``(28, 28)`` float32 images in [0, 1] and return 10 **logits** (no
softmax): the loss is computed from logits (``from_logits=True``), which is numerically safer than
taking the log of a softmax output.

* :func:`make_softmax_regression` -- one dense layer, 7,850 parameters: the convex baseline.
* :func:`make_2nn` -- the "2NN" of McMahan et al. 2017, "Communication-Efficient Learning of Deep
  Networks from Decentralized Data", Section 3: two hidden layers of 200 ReLU units,
  199,210 parameters.
* :func:`make_cnn` -- the CNN of the same section: two 5x5 convolutions (32 and 64 channels, ReLU,
  "same" padding), each followed by 2x2 max pooling, a 512-unit ReLU layer and a 10-way output,
  1,663,370 parameters. ("same" padding is the choice that reproduces the paper's count; "valid"
  padding would leave a 4x4x64 feature map and 582,026 parameters.)

Initial weights depend only on ``seed``: every layer gets its own seeded Keras initializer (the
per-layer seeds are drawn from ``numpy.random.SeedSequence(seed)``), so no global random state is
read or changed, and the same seed always gives the same model.

The package's one Dense forward pass, :func:`_dense_stack`, lives here too (numpy or
TensorFlow). Keras is imported by the factories when they first build a model, not by importing
this module, so that numpy-only modules (:mod:`fl_helpers.robust`,
:mod:`fl_helpers.split_learning`) can use the forward pass without loading TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fl_helpers import _validation as v

if TYPE_CHECKING:
    import keras

#: Shape of one input image.
INPUT_SHAPE = (28, 28)
#: Number of output logits (digits 0-9).
NUM_CLASSES = 10


def _layer_seeds(seed: int, count: int) -> list[int]:
    seed = v.check_int("seed", seed, minimum=0)
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count) % 2**31]


def _dense(units: int, seed: int, activation: str | None = None) -> keras.layers.Dense:
    import keras

    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        bias_initializer="zeros",
    )


def _dense_stack(weights: Sequence[Any], x: Any, activations: Sequence[Callable[[Any], Any]]
                 ) -> tuple[Any, list[Any]]:
    """The package's one forward pass of a Dense stack: ``h <- activation_l(h @ W_l + b_l)``.

    ``weights = [W_1, b_1, ..., W_L, b_L]`` and one activation per layer. Works on numpy arrays
    and on TensorFlow tensors alike (``@`` is ``tf.matmul`` there, also inside ``tf.function``),
    so the attacks' TensorFlow logits, the robustness experiment's numpy predictions and split
    learning's top model share it. Internal: the callers check their inputs.

    Returns:
        ``(output, layer_inputs)``: the last layer's output (logits when the last activation is
        the identity) and the input of every layer, ``layer_inputs[0] = x`` (for a backward pass).
    """
    h = x
    layer_inputs = [h]
    for i, activation in enumerate(activations):
        h = activation(h @ weights[2 * i] + weights[2 * i + 1])
        layer_inputs.append(h)
    return h, layer_inputs[:-1]


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0.0)


def _identity(a: Any) -> Any:
    return a


def _relu_logits(weights: Sequence[Any], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`_dense_stack` with ReLU hidden layers and linear logits, in numpy (the course's
    softmax regression and 2NN; split learning's top model)."""
    hidden = len(weights) // 2 - 1
    return _dense_stack(weights, x, [_relu] * hidden + [_identity])


def make_softmax_regression(seed: int = 0) -> keras.Model:
    """Multinomial logistic regression: flatten, then one dense layer to 10 logits.

    Args:
        seed: Integer >= 0 that fixes the initial weights (Glorot-uniform kernel, zero bias).

    Returns:
        A built ``keras.Sequential`` with 784 * 10 + 10 = 7,850 parameters, mapping
        ``(batch, 28, 28)`` float32 to ``(batch, 10)`` logits.

    Raises:
        TypeError, ValueError: ``seed`` is not an integer >= 0.
    """
    import keras

    (kernel_seed,) = _layer_seeds(seed, 1)
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, dtype="float32"),
            keras.layers.Flatten(),
            _dense(NUM_CLASSES, kernel_seed),
        ],
        name="softmax_regression",
    )


def make_2nn(seed: int = 0) -> keras.Model:
    """The "2NN" multilayer perceptron of McMahan et al. 2017, Section 3.

    784 inputs, two hidden layers of 200 ReLU units, 10 logits.

    Args:
        seed: Integer >= 0 that fixes the initial weights.

    Returns:
        A built ``keras.Sequential`` with 199,210 parameters, mapping ``(batch, 28, 28)`` float32
        to ``(batch, 10)`` logits.

    Raises:
        TypeError, ValueError: ``seed`` is not an integer >= 0.
    """
    import keras

    seeds = _layer_seeds(seed, 3)
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, dtype="float32"),
            keras.layers.Flatten(),
            _dense(200, seeds[0], "relu"),
            _dense(200, seeds[1], "relu"),
            _dense(NUM_CLASSES, seeds[2]),
        ],
        name="mnist_2nn",
    )


#: Hidden activations :func:`make_mlp` offers (all reproduced exactly by the fast engine).
MLP_ACTIVATIONS = ("relu", "tanh", "sigmoid")


def make_mlp(hidden_units: tuple[int, ...] = (100,), *, activation: str = "tanh",
             input_shape: tuple[int, ...] = INPUT_SHAPE, seed: int = 0) -> keras.Model:
    """A multilayer perceptron: Flatten, Dense hidden layers, 10 logits.

    ``make_mlp((200, 200), activation="relu")`` has the 2NN's architecture. The private-MNIST
    headline (``benchmarks/private_mnist_headline.py``) uses ``make_mlp((100,),
    activation="tanh", input_shape=(14, 14))``: bounded activations such as tanh train better
    than ReLU under DP-SGD's clipping and noise (Papernot et al. 2021, "Tempered Sigmoid
    Activations for Deep Learning with Differential Privacy"), and a small model receives less
    noise in all.

    Args:
        hidden_units: Units of each hidden layer, ints in 1..10,000 (at most 8 layers; empty
            gives softmax regression).
        activation: One of :data:`MLP_ACTIVATIONS`.
        input_shape: Shape of one input, positive ints (default 28 x 28).
        seed: Integer >= 0 that fixes the initial weights.

    Returns:
        A built ``keras.Sequential`` mapping ``(batch, *input_shape)`` float32 to logits.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    import keras

    if isinstance(hidden_units, (str, bytes)) or not isinstance(hidden_units, (tuple, list)):
        raise TypeError(f"hidden_units must be a tuple of ints, got "
                        f"{type(hidden_units).__name__} {v._fmt(hidden_units)}.")
    if len(hidden_units) > 8:
        raise ValueError(f"hidden_units must have at most 8 layers, got {len(hidden_units)}.")
    units = [v.check_int(f"hidden_units[{i}]", u, minimum=1, maximum=10_000)
             for i, u in enumerate(hidden_units)]
    if not isinstance(activation, str) or activation not in MLP_ACTIVATIONS:
        raise ValueError(f"activation must be one of {MLP_ACTIVATIONS}, got {v._fmt(activation)}.")
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)) \
            or not input_shape:
        raise TypeError(f"input_shape must be a non-empty tuple of ints, got "
                        f"{type(input_shape).__name__} {v._fmt(input_shape)}.")
    shape = tuple(v.check_int(f"input_shape[{i}]", n, minimum=1, maximum=100_000)
                  for i, n in enumerate(input_shape))
    if math.prod(shape) > 10_000_000:
        raise ValueError(f"input_shape must have at most 10,000,000 values, got {shape}.")
    seeds = _layer_seeds(seed, len(units) + 1)
    return keras.Sequential(
        [keras.Input(shape=shape, dtype="float32"), keras.layers.Flatten(),
         *(_dense(u, s, activation) for u, s in zip(units, seeds, strict=False)),
         _dense(NUM_CLASSES, seeds[-1])],
        name="mlp_" + "_".join(map(str, units)) + f"_{activation}",
    )


def make_cnn(seed: int = 0) -> keras.Model:
    """The CNN of McMahan et al. 2017, Section 3.

    5x5 conv, 32 channels, ReLU -> 2x2 max pool -> 5x5 conv, 64 channels, ReLU -> 2x2 max pool ->
    dense 512 ReLU -> 10 logits. Convolutions use "same" padding, which gives the paper's
    1,663,370 parameters (832 + 51,264 + 1,606,144 + 5,130).

    Args:
        seed: Integer >= 0 that fixes the initial weights.

    Returns:
        A built ``keras.Sequential`` mapping ``(batch, 28, 28)`` float32 to ``(batch, 10)`` logits.

    Raises:
        TypeError, ValueError: ``seed`` is not an integer >= 0.
    """
    import keras

    seeds = _layer_seeds(seed, 4)

    def conv(filters: int, layer_seed: int) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            filters, kernel_size=5, padding="same", activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed),
            bias_initializer="zeros",
        )

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, dtype="float32"),
            keras.layers.Reshape((*INPUT_SHAPE, 1)),
            conv(32, seeds[0]),
            keras.layers.MaxPooling2D(pool_size=2),
            conv(64, seeds[1]),
            keras.layers.MaxPooling2D(pool_size=2),
            keras.layers.Flatten(),
            _dense(512, seeds[2], "relu"),
            _dense(NUM_CLASSES, seeds[3]),
        ],
        name="mnist_cnn",
    )
