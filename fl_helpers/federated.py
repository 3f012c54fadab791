"""Federated averaging: one client's local update, the weighted average, and the training loop.

The algorithm is FederatedAveraging of McMahan et al. 2017, "Communication-Efficient Learning of
Deep Networks from Decentralized Data", Algorithm 1:

* each round ``t`` the server samples ``clients_per_round`` of the ``K`` clients (``C * K``),
* every sampled client ``k`` starts from the global weights and runs ``local_epochs`` (``E``) of
  mini-batch SGD with ``batch_size`` (``B``) and ``client_learning_rate`` (``eta``) on its own data
  (:func:`client_update`),
* the server replaces the global weights by the average of the returned weights, each weighted by
  the client's share of examples ``n_k / n`` (:func:`fedavg`, Algorithm 1's
  ``w_{t+1} <- sum_k (n_k / n) w^k_{t+1}``).

``batch_size=None`` is the paper's ``B = inf`` (one full-batch gradient step per local epoch), so
``local_epochs=1, batch_size=None`` is FedSGD.

Reproducibility contract (every trainer -- this per-client loop and any faster engine -- follows
it, so that they agree exactly):

* the batch order of one client's local training is :func:`client_batches`;
* round ``t`` (0-based) samples its clients with ``np.random.default_rng([seed, t])``
  (:func:`sample_clients`);
* client ``k`` in round ``t`` trains with ``seed=[seed, t, k]`` (:func:`client_seed`).

How the sampled clients are trained is pluggable: :func:`run_fedavg` owns sampling, seeds,
evaluation and the history, and asks an *engine* from :data:`ENGINES` for the new global weights of
each round. ``"loop"`` is the reference engine: one :func:`client_update` per client, then
:func:`fedavg`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from fl_helpers import _validation as v

#: Default number of examples per forward pass in :func:`evaluate`.
EVAL_BATCH_SIZE = 1000

# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_model(model: Any) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model, got {type(model).__name__}. "
            "Build one with fl_helpers.models.make_softmax_regression() or similar."
        )
    return model


def _num_outputs(model: keras.Model) -> int:
    return int(model.outputs[0].shape[-1])


def _check_client_data(model: keras.Model, x: Any, y: Any, *, name_x: str = "x",
                       name_y: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Checks one client's ``(x, y)`` against ``model``; returns float32 x and int64 y."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{name_x} must hold at least one example, got shape {x.shape}.")
    if y.ndim != 1:
        raise ValueError(f"{name_y} must be a 1-D array of labels, got shape {y.shape}.")
    if len(x) != len(y):
        raise ValueError(
            f"{name_x} and {name_y} must have the same length, got {len(x)} and {len(y)}."
        )
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{name_x} must have shape (num_examples, {', '.join(map(str, expected))}) to fit "
            f"the model's input, got {x.shape}."
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name_x} must hold numbers, got dtype {x.dtype}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name_y} must hold integer labels, got dtype {y.dtype}.")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name_x} must be finite, got NaN or inf values.")
    num_classes = _num_outputs(model)
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name_y} must hold labels in 0..{num_classes - 1}, got values in {low}..{high}."
        )
    return x, y.astype(np.int64, copy=False)


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    return v.check_int("batch_size", batch_size, minimum=1)


def _check_seed(seed: Any) -> int | list[int]:
    """A seed is an int >= 0 or a non-empty sequence of them (``[seed, t, k]``)."""
    if isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, bool):
        return v.check_int("seed", seed, minimum=0)
    if isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, str) and len(seed) > 0:
        return [v.check_int(f"seed[{i}]", s, minimum=0) for i, s in enumerate(seed)]
    raise TypeError(
        f"seed must be an integer >= 0 or a non-empty sequence of them, "
        f"got {type(seed).__name__} {seed!r}."
    )


def _check_weights(model: keras.Model, weights: Any, name: str) -> list[np.ndarray]:
    """Checks a list of per-layer arrays against the model's own weight shapes."""
    expected = [tuple(w.shape) for w in model.weights]
    if not isinstance(weights, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of per-layer numpy arrays (as from model.get_weights()), "
            f"got {type(weights).__name__}."
        )
    if len(weights) != len(expected):
        raise ValueError(
            f"{name} must have {len(expected)} arrays (one per model weight), got {len(weights)}."
        )
    out = []
    for i, (w, shape) in enumerate(zip(weights, expected, strict=True)):
        w = np.asarray(w)
        if w.shape != shape:
            raise ValueError(f"{name}[{i}] must have shape {shape}, got {w.shape}.")
        if not np.issubdtype(w.dtype, np.number) or not np.isfinite(w).all():
            raise ValueError(f"{name}[{i}] must hold finite numbers, got NaN, inf or non-numbers.")
        out.append(w)
    return out


# --------------------------------------------------------------------------------------------
# Batches and one client's local SGD
# --------------------------------------------------------------------------------------------


def client_batches(num_examples: int, *, local_epochs: int, batch_size: int | None,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """The batch order of one client's local training.

    Every epoch draws a fresh permutation of ``range(num_examples)`` from ``rng`` and cuts it into
    ``ceil(num_examples / batch_size)`` consecutive batches; the last batch of an epoch is smaller
    when ``batch_size`` does not divide ``num_examples``. Every example is therefore used exactly
    once per epoch. All trainers in the course (the GradientTape loop, Keras ``fit``, any faster
    engine) take their batches from here, so they see the same examples in the same order.

    Args:
        num_examples: The client's number of examples ``n_k`` (>= 1).
        local_epochs: Passes over the data ``E`` (>= 1).
        batch_size: Examples per step ``B`` (>= 1; values above ``num_examples`` give one batch
            per epoch), or ``None`` for full-batch steps (McMahan et al.'s ``B = inf``).
        rng: Source of the permutations; the same generator state gives the same batches.

    Returns:
        ``local_epochs * ceil(num_examples / batch_size)`` int64 index arrays, in training order.

    Raises:
        TypeError, ValueError: An argument is out of range (the message names it).
    """
    num_examples = v.check_int("num_examples", num_examples, minimum=1)
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
    batch_size = _check_batch_size(batch_size)
    rng = v.check_rng("rng", rng)
    step = num_examples if batch_size is None else min(batch_size, num_examples)
    batches = []
    for _ in range(local_epochs):
        order = rng.permutation(num_examples).astype(np.int64)
        batches.extend(order[start:start + step] for start in range(0, num_examples, step))
    return batches


def _build_train_fn(model: keras.Model) -> tf.types.experimental.GenericFunction:
    """One traced graph that runs a whole sequence of SGD steps on ``model``'s variables.

    The input signature leaves the batch dimension and the number of steps free, so one trace
    serves every client size, batch size, epoch count and learning rate.
    """
    variables = model.trainable_variables
    spec_x = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    spec_i = tf.TensorSpec((None,), tf.int64)

    @tf.function(input_signature=[spec_x, spec_i, spec_i, spec_i, tf.TensorSpec((), tf.float32)])
    def train(x, y, order, bounds, learning_rate):
        num_steps = tf.shape(bounds, out_type=tf.int64)[0] - 1
        losses = tf.TensorArray(tf.float32, size=tf.cast(num_steps, tf.int32))
        for step in tf.range(num_steps):
            batch = order[bounds[step]:bounds[step + 1]]
            x_batch = tf.gather(x, batch)
            y_batch = tf.gather(y, batch)
            with tf.GradientTape() as tape:
                logits = model(x_batch, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_batch, logits=logits)
                )
            grads = tape.gradient(loss, variables)
            for variable, grad in zip(variables, grads, strict=True):
                variable.assign_sub(learning_rate * grad)
            losses = losses.write(tf.cast(step, tf.int32), loss)
        return losses.stack()

    return train


def _build_eval_fn(model: keras.Model) -> tf.types.experimental.GenericFunction:
    spec_x = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)

    @tf.function(input_signature=[spec_x, tf.TensorSpec((None,), tf.int64)])
    def evaluate_batch(x, y):
        logits = model(x, training=False)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int64), y)
        return tf.reduce_sum(tf.cast(losses, tf.float64)), tf.reduce_sum(tf.cast(correct, tf.int64))

    return evaluate_batch


def _cached_fn(model: keras.Model, attribute: str,
               builder: Callable[[keras.Model], Any]) -> tf.types.experimental.GenericFunction:
    # Stored on the model itself (bypassing Keras' attribute tracking), so it lives and dies with
    # the model and is traced once per model.
    fn = model.__dict__.get(attribute)
    if fn is None:
        fn = builder(model)
        object.__setattr__(model, attribute, fn)
    return fn


def _train_fn(model: keras.Model) -> tf.types.experimental.GenericFunction:
    return _cached_fn(model, "_fl_train_fn", _build_train_fn)


def _eval_fn(model: keras.Model) -> tf.types.experimental.GenericFunction:
    return _cached_fn(model, "_fl_eval_fn", _build_eval_fn)


def _run_sgd_unchecked(model: keras.Model, x: np.ndarray, y: np.ndarray,
                       batches: list[np.ndarray], learning_rate: float) -> np.ndarray:
    order = np.concatenate(batches).astype(np.int64, copy=False)
    bounds = np.zeros(len(batches) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in batches], out=bounds[1:])
    losses = _train_fn(model)(x, y, order, bounds, np.float32(learning_rate))
    return losses.numpy()


def run_sgd(model: keras.Model, x: np.ndarray, y: np.ndarray, batches: Sequence[np.ndarray], *,
            learning_rate: float) -> np.ndarray:
    """Plain SGD on ``model``'s own weights, one step per batch, in place.

    For each batch ``b`` (index array into ``x``) in turn: logits = model(x[b]), loss = mean sparse
    softmax cross-entropy of the logits against y[b], and every trainable weight ``w`` becomes
    ``w - learning_rate * dloss/dw`` (Bottou, Curtis & Nocedal 2018, Section 3.3, the stochastic
    gradient step). The steps run inside one traced TensorFlow graph (traced once per model), so
    a step costs about as much as its arithmetic.

    Args:
        model: A Keras model mapping ``x`` to logits; its weights are updated in place.
        x: Inputs, shape ``(num_examples, *model input shape)``.
        y: Integer labels, shape ``(num_examples,)``.
        batches: Index arrays, one per step (e.g. from :func:`client_batches`).
        learning_rate: Step size ``eta`` (> 0, finite).

    Returns:
        float32 array with the loss of each batch, measured before its step.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model = _check_model(model)
    x, y = _check_client_data(model, x, y)
    learning_rate = v.check_positive("learning_rate", learning_rate)
    if len(batches) == 0:
        raise ValueError("batches must hold at least one index array, got 0.")
    checked = []
    for i, batch in enumerate(batches):
        batch = np.asarray(batch)
        if batch.ndim != 1 or batch.size == 0 or not np.issubdtype(batch.dtype, np.integer):
            raise ValueError(
                f"batches[{i}] must be a non-empty 1-D integer index array, got shape "
                f"{batch.shape} and dtype {batch.dtype}."
            )
        if batch.min() < 0 or batch.max() >= len(x):
            raise ValueError(
                f"batches[{i}] must index into 0..{len(x) - 1}, got values in "
                f"{batch.min()}..{batch.max()}."
            )
        checked.append(batch)
    return _run_sgd_unchecked(model, x, y, checked, learning_rate)


def _client_update_unchecked(model: keras.Model, global_weights: list[np.ndarray],
                             x: np.ndarray, y: np.ndarray, *, local_epochs: int,
                             batch_size: int | None, client_learning_rate: float,
                             seed: int | list[int]) -> tuple[list[np.ndarray], int]:
    batches = client_batches(len(x), local_epochs=local_epochs, batch_size=batch_size,
                             rng=np.random.default_rng(seed))
    model.set_weights(global_weights)
    _run_sgd_unchecked(model, x, y, batches, client_learning_rate)
    return model.get_weights(), len(x)


def client_update(model: keras.Model, global_weights: list[np.ndarray], x: np.ndarray,
                  y: np.ndarray, *, local_epochs: int, batch_size: int | None,
                  client_learning_rate: float,
                  seed: int | Sequence[int]) -> tuple[list[np.ndarray], int]:
    """One client's local training: ClientUpdate of McMahan et al. 2017, Algorithm 1.

    Starting from ``global_weights``, runs ``local_epochs`` epochs of plain mini-batch SGD with
    ``client_learning_rate`` on the mean sparse softmax cross-entropy of the model's logits. The
    batch order is ``client_batches(len(x), ..., rng=np.random.default_rng(seed))``, so the result
    depends only on the arguments: same seed, same weights.

    ``model`` is used as a workspace: its weights are overwritten (first with
    ``global_weights``, then with the trained ones).

    Args:
        model: Keras model with the architecture that ``global_weights`` belong to.
        global_weights: Per-layer arrays, as from ``model.get_weights()``.
        x: The client's inputs, shape ``(n_k, 28, 28)`` for the course models.
        y: The client's integer labels, shape ``(n_k,)``.
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1, or ``None`` for one full-batch step per epoch.
        client_learning_rate: ``eta`` > 0, finite.
        seed: Integer >= 0 or sequence of them (``run_fedavg`` passes ``[seed, t, k]``).

    Returns:
        ``(new_weights, num_examples)``: the client's trained per-layer weights and ``n_k``, the
        weight it gets in :func:`fedavg`.

    Raises:
        TypeError, ValueError: An argument is malformed, e.g. empty data, ``x``/``y`` of
            different lengths, ``batch_size < 1``, ``local_epochs < 1``, a non-finite learning
            rate, or weights that do not fit the model (the message names it).
    """
    model = _check_model(model)
    global_weights = _check_weights(model, global_weights, "global_weights")
    x, y = _check_client_data(model, x, y)
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
    batch_size = _check_batch_size(batch_size)
    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    seed = _check_seed(seed)
    return _client_update_unchecked(
        model, global_weights, x, y, local_epochs=local_epochs, batch_size=batch_size,
        client_learning_rate=client_learning_rate, seed=seed,
    )


@dataclasses.dataclass(eq=False)
class LossCurve:
    """Training loss of one client's local SGD, measured on all its data at checkpoints.

    Attributes:
        steps: SGD steps taken at each checkpoint (int64), starting with 0 (the initial weights).
        examples_seen: Examples processed by those steps (int64), starting with 0.
        loss: Mean cross-entropy over the client's whole ``(x, y)`` at each checkpoint.
        num_examples: The client's number of examples ``n_k``.
        final_weights: Weights after the last step (before divergence stopped it, if it did).
        diverged: ``True`` if the loss became NaN or inf; training stopped at that checkpoint,
            which is the last entry of the arrays.
    """

    steps: np.ndarray
    examples_seen: np.ndarray
    loss: np.ndarray
    num_examples: int
    final_weights: list[np.ndarray]
    diverged: bool

    @property
    def epochs(self) -> np.ndarray:
        """Passes over the data at each checkpoint: ``examples_seen / num_examples``."""
        return self.examples_seen / self.num_examples


def sgd_loss_curve(model: keras.Model, initial_weights: list[np.ndarray], x: np.ndarray,
                   y: np.ndarray, *, local_epochs: int, batch_size: int | None,
                   client_learning_rate: float, seed: int | Sequence[int],
                   evaluations_per_epoch: int = 10) -> LossCurve:
    """Runs exactly :func:`client_update`'s training and records the loss along the way.

    The batches are ``client_batches(len(x), ..., rng=np.random.default_rng(seed))``, so
    ``final_weights`` equals ``client_update``'s result for the same arguments. The loss on the
    whole ``(x, y)`` is measured before the first step and then each time another
    ``1 / evaluations_per_epoch`` of an epoch's worth of examples has been processed (full-batch
    training therefore gets one checkpoint per step). Used to compare full-batch gradient descent
    with mini-batch and single-example SGD per step and per example seen (Bottou, Curtis &
    Nocedal 2018, Section 3.3).

    Args:
        model: Keras model (used as a workspace; its weights are overwritten).
        initial_weights: Per-layer starting weights, as from ``model.get_weights()``.
        x: The client's inputs, shape ``(n_k, *model input shape)``.
        y: The client's integer labels, shape ``(n_k,)``.
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1, or ``None`` for full-batch gradient descent.
        client_learning_rate: ``eta`` > 0, finite.
        seed: Integer >= 0 or sequence of them, as for :func:`client_update`.
        evaluations_per_epoch: Checkpoints per epoch's worth of examples (>= 1).

    Returns:
        A :class:`LossCurve`. If the loss becomes NaN or inf, training stops there and
        ``diverged`` is ``True``.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model = _check_model(model)
    initial_weights = _check_weights(model, initial_weights, "initial_weights")
    x, y = _check_client_data(model, x, y)
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
    batch_size = _check_batch_size(batch_size)
    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    seed = _check_seed(seed)
    evaluations_per_epoch = v.check_int("evaluations_per_epoch", evaluations_per_epoch, minimum=1)

    n = len(x)
    batches = client_batches(n, local_epochs=local_epochs, batch_size=batch_size,
                             rng=np.random.default_rng(seed))
    seen = np.cumsum([len(b) for b in batches])
    # Checkpoint after batch j when it completes another 1/evaluations_per_epoch of an epoch.
    ticks = seen * evaluations_per_epoch // n
    previous = np.concatenate([[0], ticks[:-1]])
    is_checkpoint = ticks > previous
    is_checkpoint[-1] = True
    ends = (np.flatnonzero(is_checkpoint) + 1).tolist()
    model.set_weights(initial_weights)
    steps, examples, losses = [0], [0], [_evaluate_unchecked(model, x, y)[0]]
    diverged = not math.isfinite(losses[0])
    start = 0
    for end in ends:
        if diverged:
            break
        _run_sgd_unchecked(model, x, y, batches[start:end], client_learning_rate)
        steps.append(end)
        examples.append(int(seen[end - 1]))
        losses.append(_evaluate_unchecked(model, x, y)[0])
        diverged = not math.isfinite(losses[-1])
        start = end
    return LossCurve(
        steps=np.asarray(steps, dtype=np.int64),
        examples_seen=np.asarray(examples, dtype=np.int64),
        loss=np.asarray(losses, dtype=np.float64),
        num_examples=n,
        final_weights=model.get_weights(),
        diverged=diverged,
    )


def evaluate(model: keras.Model, weights: list[np.ndarray] | None, x: np.ndarray, y: np.ndarray,
             *, batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` with ``weights`` on ``(x, y)``.

    Args:
        model: Keras model producing logits.
        weights: Per-layer arrays to load into ``model`` first, or ``None`` to use its current
            weights.
        x: Inputs, shape ``(num_examples, *model input shape)``.
        y: Integer labels, shape ``(num_examples,)``.
        batch_size: Examples per forward pass (>= 1); only memory use depends on it.

    Returns:
        ``(loss, accuracy)``: mean sparse softmax cross-entropy (nats) and the fraction of
        examples whose largest logit is the label, in [0, 1].

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model = _check_model(model)
    if weights is not None:
        model.set_weights(_check_weights(model, weights, "weights"))
    x, y = _check_client_data(model, x, y)
    batch_size = v.check_int("batch_size", batch_size, minimum=1)
    return _evaluate_unchecked(model, x, y, batch_size)


def _evaluate_unchecked(model: keras.Model, x: np.ndarray, y: np.ndarray,
                        batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    fn = _eval_fn(model)
    total_loss = 0.0
    total_correct = 0
    for start in range(0, len(x), batch_size):
        loss, correct = fn(x[start:start + batch_size], y[start:start + batch_size])
        total_loss += float(loss)
        total_correct += int(correct)
    return total_loss / len(x), total_correct / len(x)


# --------------------------------------------------------------------------------------------
# Server side: weighted averaging and the training loop
# --------------------------------------------------------------------------------------------


def fedavg(client_weights: Sequence[Sequence[np.ndarray]],
           num_examples: Sequence[float]) -> list[np.ndarray]:
    """The weighted average of the clients' weights: ``sum_k (n_k / n) w_k``, layer by layer.

    McMahan et al. 2017, Algorithm 1 (server step), with ``n = sum_k n_k`` over the clients given.
    The sum is accumulated in float64 and returned in the clients' dtype, so the average of
    identical clients is exactly that client.

    Args:
        client_weights: One list of per-layer arrays per client, all with the same number of
            layers and the same shapes.
        num_examples: ``n_k`` per client: finite numbers > 0 (usually example counts).

    Returns:
        The averaged per-layer arrays.

    Raises:
        ValueError: Empty input, a different number of clients and counts, mismatched layer
            counts or shapes, NaN/inf weights, or counts that are not finite and > 0 (the message
            names the client and layer).
        TypeError: A client's weights are not a list of arrays, or a count is not a number.
    """
    if isinstance(client_weights, np.ndarray) or not isinstance(client_weights, Sequence):
        raise TypeError(
            f"client_weights must be a list with one list of per-layer arrays per client, got "
            f"{type(client_weights).__name__}."
        )
    if len(client_weights) == 0:
        raise ValueError("client_weights must hold at least one client, got 0.")
    counts = np.asarray(num_examples)
    if counts.ndim != 1 or len(counts) != len(client_weights):
        raise ValueError(
            f"num_examples must have one count per client ({len(client_weights)}), got shape "
            f"{counts.shape}."
        )
    counts = [v.check_positive(f"num_examples[{k}]", n) for k, n in enumerate(num_examples)]
    total = math.fsum(counts)

    first = client_weights[0]
    if isinstance(first, np.ndarray) or not isinstance(first, Sequence) or len(first) == 0:
        raise TypeError(
            "client_weights[0] must be a non-empty list of per-layer arrays (as from "
            f"model.get_weights()), got {type(first).__name__}."
        )
    shapes = [np.shape(layer) for layer in first]
    sums = [np.zeros(shape, dtype=np.float64) for shape in shapes]
    dtypes = [np.result_type(np.asarray(layer).dtype, np.float32) for layer in first]
    for k, (weights, n_k) in enumerate(zip(client_weights, counts, strict=True)):
        if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise TypeError(
                f"client_weights[{k}] must be a list of per-layer arrays, got "
                f"{type(weights).__name__}."
            )
        if len(weights) != len(shapes):
            raise ValueError(
                f"client_weights[{k}] must have {len(shapes)} layers like client 0, got "
                f"{len(weights)}."
            )
        for i, layer in enumerate(weights):
            layer = np.asarray(layer)
            if layer.shape != shapes[i]:
                raise ValueError(
                    f"client_weights[{k}][{i}] must have shape {shapes[i]} like client 0, got "
                    f"{layer.shape}."
                )
            if not np.issubdtype(layer.dtype, np.number):
                raise TypeError(
                    f"client_weights[{k}][{i}] must hold numbers, got dtype {layer.dtype}."
                )
            if not np.isfinite(layer).all():
                raise ValueError(
                    f"client_weights[{k}][{i}] must be finite, got NaN or inf values "
                    "(did the client's training diverge? try a smaller client_learning_rate)."
                )
            sums[i] += n_k * layer
    return [(s / total).astype(dtype) for s, dtype in zip(sums, dtypes, strict=True)]


def sample_clients(num_clients: int, clients_per_round: int, *, seed: int,
                   round_index: int) -> np.ndarray:
    """The clients of round ``round_index``: sorted, without replacement, from rng ``[seed, t]``.

    Args:
        num_clients: ``K`` >= 1.
        clients_per_round: ``m = max(C * K, 1)`` in 1..K.
        seed: The run's seed (>= 0).
        round_index: ``t``, 0-based.

    Returns:
        Sorted int64 array of ``clients_per_round`` distinct client ids in ``0..K-1``.
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=1,
                                    maximum=num_clients)
    seed = v.check_int("seed", seed, minimum=0)
    round_index = v.check_int("round_index", round_index, minimum=0)
    rng = np.random.default_rng([seed, round_index])
    return np.sort(rng.choice(num_clients, size=clients_per_round, replace=False)).astype(np.int64)


def client_seed(seed: int, round_index: int, client: int) -> list[int]:
    """The local-training seed of client ``client`` in round ``round_index``: ``[seed, t, k]``."""
    return [int(seed), int(round_index), int(client)]


#: A round trainer maps ``(global_weights, sampled_clients, round_index)`` to the new global
#: weights. It must train client ``k`` with ``client_seed(seed, round_index, k)`` and
#: :func:`client_batches`, and weight clients by ``n_k`` as :func:`fedavg` does.
RoundTrainer = Callable[[list[np.ndarray], np.ndarray, int], list[np.ndarray]]

#: An engine builds a :data:`RoundTrainer` once per run. It is called as
#: ``engine(model_fn, model, client_datasets, local_epochs=..., batch_size=...,
#: client_learning_rate=..., seed=...)`` with the checked ``client_datasets`` (float32 x,
#: int64 y) and ``model = model_fn()``, which the engine may use as a workspace.
Engine = Callable[..., RoundTrainer]


def _loop_engine(model_fn: Callable[[], keras.Model], model: keras.Model,
                 client_datasets: list[tuple[np.ndarray, np.ndarray]], *, local_epochs: int,
                 batch_size: int | None, client_learning_rate: float,
                 seed: int) -> RoundTrainer:
    """The reference engine: one :func:`client_update` per sampled client, then :func:`fedavg`."""
    del model_fn  # The one model is enough: clients are trained one after the other.

    def train_round(global_weights: list[np.ndarray], sampled_clients: np.ndarray,
                    round_index: int) -> list[np.ndarray]:
        results = [
            _client_update_unchecked(
                model, global_weights, *client_datasets[k], local_epochs=local_epochs,
                batch_size=batch_size, client_learning_rate=client_learning_rate,
                seed=client_seed(seed, round_index, k),
            )
            for k in sampled_clients
        ]
        return fedavg([w for w, _ in results], [n for _, n in results])

    return train_round


def _fast_engine(*args: Any, **kwargs: Any) -> RoundTrainer:
    """All sampled clients in one XLA-compiled graph: :func:`fl_helpers.engine.fast_engine`."""
    from fl_helpers import engine  # imported here: the engine module imports this one

    return engine.fast_engine(*args, **kwargs)


def _auto_engine(*args: Any, **kwargs: Any) -> RoundTrainer:
    """``"fast"`` for Dense stacks, ``"loop"`` otherwise: :func:`fl_helpers.engine.auto_engine`."""
    from fl_helpers import engine

    return engine.auto_engine(*args, **kwargs)


#: Registered engines by name; see :data:`Engine` for the calling convention.
ENGINES: dict[str, Engine] = {"auto": _auto_engine, "fast": _fast_engine, "loop": _loop_engine}


@dataclasses.dataclass(eq=False)
class History:
    """What :func:`run_fedavg` measured, one entry per round.

    Attributes:
        rounds: Round numbers 1..num_rounds (int64).
        test_accuracy: Accuracy of the global model on ``test_data`` after each round, in [0, 1]
            (empty if no ``test_data`` was given).
        test_loss: Mean cross-entropy on ``test_data`` after each round (empty likewise).
        final_weights: Global per-layer weights after the last round.
        seconds_per_round: Wall-clock seconds of each round's training (sampling, local updates,
            averaging), without the evaluation.
        sampled_clients: ``(num_rounds, clients_per_round)`` int64 ids of the clients of each round.
        engine: Name of the engine that trained the clients (for ``"auto"``, the one it chose).
    """

    rounds: np.ndarray
    test_accuracy: np.ndarray
    test_loss: np.ndarray
    final_weights: list[np.ndarray]
    seconds_per_round: np.ndarray
    sampled_clients: np.ndarray
    engine: str

    @property
    def total_seconds(self) -> float:
        """Training time over all rounds, in seconds."""
        return float(np.sum(self.seconds_per_round))

    def as_dict(self) -> dict[str, np.ndarray]:
        """The per-round series as plain numpy arrays, keyed by name (handy for plotting)."""
        return {
            "rounds": self.rounds.copy(),
            "test_accuracy": self.test_accuracy.copy(),
            "test_loss": self.test_loss.copy(),
            "seconds_per_round": self.seconds_per_round.copy(),
        }


def run_fedavg(model_fn: Callable[[], keras.Model],
               client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *, num_rounds: int,
               clients_per_round: int, local_epochs: int, batch_size: int | None,
               client_learning_rate: float,
               test_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
               progress: bool = True, engine: str = "auto",
               initial_weights: list[np.ndarray] | None = None) -> History:
    """FederatedAveraging (McMahan et al. 2017, Algorithm 1) for ``num_rounds`` rounds.

    Round ``t`` (0-based): sample ``clients_per_round`` clients with :func:`sample_clients`
    (rng ``[seed, t]``), train each from the current global weights for ``local_epochs`` epochs
    of SGD with ``batch_size`` and ``client_learning_rate`` (client ``k`` seeded with
    ``[seed, t, k]``), average the results weighted by ``n_k`` (:func:`fedavg`), then evaluate the
    new global model on ``test_data``. Same arguments, same history (up to the timings).

    Args:
        model_fn: Builds the model, e.g. ``fl_helpers.models.make_2nn``; called once, and its
            initial weights are the starting point unless ``initial_weights`` is given.
        client_datasets: One ``(x_k, y_k)`` pair of numpy arrays per client, of any sizes >= 1.
        num_rounds: ``T`` >= 1.
        clients_per_round: ``m`` in 1..len(client_datasets) (``C * K`` in the paper).
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1, or ``None`` for full-batch local steps (FedSGD with ``E = 1``).
        client_learning_rate: ``eta`` > 0, finite.
        test_data: ``(x_test, y_test)`` evaluated after every round, or ``None``.
        seed: Integer >= 0 fixing client sampling and every client's batch order.
        progress: Show a tqdm progress bar (notebook-aware) with the latest test accuracy.
        engine: How sampled clients are trained, a key of :data:`ENGINES`. ``"loop"`` is the
            per-client reference implementation (:func:`client_update` for each client in turn);
            ``"fast"`` trains all sampled clients in one compiled graph (:mod:`fl_helpers.engine`,
            Dense-stack models only); ``"auto"`` (default) picks ``"fast"`` where it applies and
            ``"loop"`` otherwise. They agree up to float32 rounding.
        initial_weights: Optional starting global weights (per-layer arrays fitting the model).

    Returns:
        A :class:`History`.

    Raises:
        TypeError, ValueError: An argument is malformed, e.g. an empty client, ``x_k``/``y_k`` of
            different lengths, ``clients_per_round`` out of range, an unknown engine (the message
            names it).
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}.")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}.")
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
    batch_size = _check_batch_size(batch_size)
    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    seed = v.check_int("seed", seed, minimum=0)
    if isinstance(client_datasets, np.ndarray) or not isinstance(client_datasets, Sequence):
        raise TypeError(
            "client_datasets must be a list of (x, y) pairs, one per client, got "
            f"{type(client_datasets).__name__}."
        )
    if len(client_datasets) == 0:
        raise ValueError("client_datasets must hold at least one client, got 0.")
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=1,
                                    maximum=len(client_datasets))

    model = _check_model(model_fn())
    datasets = []
    for k, pair in enumerate(client_datasets):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                f"client_datasets[{k}] must be an (x, y) pair, got {type(pair).__name__}."
            )
        datasets.append(_check_client_data(model, *pair, name_x=f"client_datasets[{k}] x",
                                           name_y=f"client_datasets[{k}] y"))
    if test_data is not None:
        if not isinstance(test_data, (tuple, list)) or len(test_data) != 2:
            raise TypeError(
                f"test_data must be an (x, y) pair or None, got {type(test_data).__name__}."
            )
        x_test, y_test = _check_client_data(model, *test_data, name_x="test_data x",
                                            name_y="test_data y")
    if initial_weights is None:
        weights = model.get_weights()
    else:
        weights = [np.array(w) for w in _check_weights(model, initial_weights, "initial_weights")]

    train_round = ENGINES[engine](
        model_fn, model, datasets, local_epochs=local_epochs, batch_size=batch_size,
        client_learning_rate=client_learning_rate, seed=seed,
    )
    accuracies, losses, seconds, sampled_per_round = [], [], [], []
    engine = getattr(train_round, "engine_name", engine)  # what "auto" chose
    bar = tqdm(range(num_rounds), desc=f"FedAvg ({engine})", unit="round", disable=not progress)
    for t in bar:
        start = time.perf_counter()
        sampled = sample_clients(len(datasets), clients_per_round, seed=seed, round_index=t)
        weights = train_round(weights, sampled, t)
        seconds.append(time.perf_counter() - start)
        sampled_per_round.append(sampled)
        if test_data is not None:
            model.set_weights(weights)
            loss, accuracy = _evaluate_unchecked(model, x_test, y_test)
            losses.append(loss)
            accuracies.append(accuracy)
            bar.set_postfix(test_accuracy=f"{accuracy:.4f}", refresh=False)
    bar.close()
    return History(
        rounds=np.arange(1, num_rounds + 1, dtype=np.int64),
        test_accuracy=np.asarray(accuracies, dtype=np.float64),
        test_loss=np.asarray(losses, dtype=np.float64),
        final_weights=weights,
        seconds_per_round=np.asarray(seconds, dtype=np.float64),
        sampled_clients=np.stack(sampled_per_round),
        engine=engine,
    )
