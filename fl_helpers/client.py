"""One client's local training: ClientUpdate of McMahan et al. 2017, and how to evaluate a model.

The client side of FederatedAveraging (McMahan et al. 2017, "Communication-Efficient Learning of
Deep Networks from Decentralized Data", Algorithm 1): starting from the global weights, a client
runs ``local_epochs`` (``E``) of plain mini-batch SGD with ``batch_size`` (``B``) and
``client_learning_rate`` (``eta``) on its own data (:func:`client_update`). ``batch_size=None``
is the paper's ``B = inf`` (one full-batch gradient step per local epoch), so
``local_epochs=1, batch_size=None`` is FedSGD.

The batch order is :func:`fl_helpers.schedule.client_batches`, the course's reproducibility
contract, so the fast engine (:mod:`fl_helpers.engine`) reproduces these clients exactly.
:class:`LoopTrainer` trains the sampled clients of a round one after the other with
:func:`client_update`: the reference that the fast engine is tested against, and the trainer for
models the fast engine does not handle (the CNN).

Every public function checks its arguments once; :class:`LoopTrainer` and :class:`Evaluator`
check at construction and then trust their inputs, so the training loop pays no per-round checks.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_helpers import _validation as v
from fl_helpers import schedule

#: Default number of examples per forward pass in :func:`evaluate`.
EVAL_BATCH_SIZE = 1000

# --------------------------------------------------------------------------------------------
# Argument checks (public: the training loop validates its inputs with them, once)
# --------------------------------------------------------------------------------------------


def check_model(model: Any) -> keras.Model:
    """``model`` if it is a ``keras.Model``, else a ``TypeError`` saying how to build one."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model, got {type(model).__name__}. "
            "Build one with fl_helpers.models.make_softmax_regression() or similar."
        )
    return model


def num_outputs(model: keras.Model) -> int:
    """The number of classes: the width of the model's output (logits)."""
    return int(check_model(model).outputs[0].shape[-1])


def _check_name(argument: str, value: Any) -> str:
    """``value`` if it is a string: the name of an argument, for the messages."""
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a string (the name used in messages), got "
                        f"{type(value).__name__} {v._fmt(value)}.")
    return value


def _as_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)``, with an error naming the argument for ragged nested lists."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array (not a ragged nested list), got "
                        f"{type(value).__name__}.") from None


def check_dataset(model: keras.Model, x: Any, y: Any, *, name_x: str = "x",
                  name_y: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Checks one dataset ``(x, y)`` against ``model``; returns float32 x and int64 y."""
    model = check_model(model)
    name_x = _check_name("name_x", name_x)
    name_y = _check_name("name_y", name_y)
    x = _as_array(name_x, x)
    y = _as_array(name_y, y)
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
    num_classes = num_outputs(model)
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name_y} must hold labels in 0..{num_classes - 1}, got values in {low}..{high}."
        )
    return x, y.astype(np.int64, copy=False)


def check_seed(seed: Any) -> int | list[int]:
    """A seed is an int >= 0 or a non-empty sequence of them (``[seed, t, k]``).

    Each int may have up to 128 bits (what ``np.random.default_rng`` takes); see
    :func:`fl_helpers._validation.check_seed`.
    """
    checked = v.check_seed("seed", seed)
    return list(checked) if isinstance(checked, tuple) else checked


def check_weights(model: keras.Model, weights: Any, name: str) -> list[np.ndarray]:
    """Checks a list of per-layer arrays against the model's own weight shapes."""
    model = check_model(model)
    name = _check_name("name", name)
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
        w = _as_array(f"{name}[{i}]", w)
        if w.shape != shape:
            raise ValueError(f"{name}[{i}] must have shape {shape}, got {w.shape}.")
        if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
            raise TypeError(f"{name}[{i}] must hold real numbers, got dtype {w.dtype}.")
        if not np.isfinite(w).all():
            raise ValueError(f"{name}[{i}] must be finite, got NaN or inf values.")
        out.append(w)
    return out


# --------------------------------------------------------------------------------------------
# One client's local SGD
# --------------------------------------------------------------------------------------------


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


class FunctionCache:
    """Traced functions per model, held here (never written into the Keras object).

    A traced function closes over its model's variables, so the cache keeps the model alive; it
    holds the functions of the :data:`MAX_MODELS` most recently used models and forgets older
    ones, so a widget that builds a fresh model per run does not accumulate graphs.
    """

    MAX_MODELS = 8

    def __init__(self, builder: Any) -> None:
        self._builder = builder
        self._entries: OrderedDict[int, tuple[keras.Model, Any]] = OrderedDict()

    def __call__(self, model: keras.Model) -> Any:
        key = id(model)
        entry = self._entries.get(key)
        if entry is None or entry[0] is not model:
            entry = (model, self._builder(model))
            self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.MAX_MODELS:
            self._entries.popitem(last=False)
        return entry[1]


def _build_work_train_fn(model: keras.Model) -> tf.types.experimental.GenericFunction:
    """Like :func:`_build_train_fn`, with the step of a :class:`LocalWork`:
    ``w <- w - eta (grad + mu (w - anchor) + correction)``."""
    variables = model.trainable_variables
    spec_x = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    spec_i = tf.TensorSpec((None,), tf.int64)
    specs = [tf.TensorSpec(tuple(w.shape), tf.float32) for w in variables]

    @tf.function(input_signature=[spec_x, spec_i, spec_i, spec_i, tf.TensorSpec((), tf.float32),
                                  tf.TensorSpec((), tf.float32), specs, specs])
    def train(x, y, order, bounds, learning_rate, mu, anchor, correction):
        num_steps = tf.shape(bounds, out_type=tf.int64)[0] - 1
        for step in tf.range(num_steps):
            batch = order[bounds[step]:bounds[step + 1]]
            with tf.GradientTape() as tape:
                logits = model(tf.gather(x, batch), training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=tf.gather(y, batch), logits=logits))
            grads = tape.gradient(loss, variables)
            for variable, grad, a, c in zip(variables, grads, anchor, correction, strict=True):
                variable.assign_sub(learning_rate * (grad + mu * (variable - a) + c))
        return num_steps

    return train


_train_fn = FunctionCache(_build_train_fn)
_eval_fn = FunctionCache(_build_eval_fn)
_work_train_fn = FunctionCache(_build_work_train_fn)


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
    model = check_model(model)
    x, y = check_dataset(model, x, y)
    learning_rate = v.check_positive("learning_rate", learning_rate)
    if isinstance(batches, (str, bytes)) or not isinstance(batches, (Sequence, np.ndarray)):
        raise TypeError(f"batches must be a list of index arrays, got {type(batches).__name__} "
                        f"{v._fmt(batches)}.")
    if len(batches) == 0:
        raise ValueError("batches must hold at least one index array, got 0.")
    checked = []
    for i, batch in enumerate(batches):
        batch = _as_array(f"batches[{i}]", batch)
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
                             seed: int | Sequence[int]) -> tuple[list[np.ndarray], int]:
    batches = schedule.client_batches_unchecked(len(x), local_epochs, batch_size,
                                                np.random.default_rng(seed))
    model.set_weights(global_weights)
    _run_sgd_unchecked(model, x, y, batches, client_learning_rate)
    return model.get_weights(), len(x)


def _check_local_training(model: Any, weights: Any, weights_name: str, x: Any, y: Any,
                          local_epochs: Any, batch_size: Any, client_learning_rate: Any,
                          seed: Any) -> tuple[Any, ...]:
    """The checks shared by :func:`client_update` and :func:`sgd_loss_curve`, in their order."""
    model = check_model(model)
    weights = check_weights(model, weights, weights_name)
    x, y = check_dataset(model, x, y)
    return (model, weights, x, y,
            schedule.check_local_epochs(local_epochs, num_examples=len(x)),
            schedule.check_batch_size(batch_size),
            v.check_positive("client_learning_rate", client_learning_rate), check_seed(seed))


def client_update(model: keras.Model, global_weights: list[np.ndarray], x: np.ndarray,
                  y: np.ndarray, *, local_epochs: int, batch_size: int | None,
                  client_learning_rate: float,
                  seed: int | Sequence[int]) -> tuple[list[np.ndarray], int]:
    """One client's local training: ClientUpdate of McMahan et al. 2017, Algorithm 1.

    Starting from ``global_weights``, runs ``local_epochs`` epochs of plain mini-batch SGD with
    ``client_learning_rate`` on the mean sparse softmax cross-entropy of the model's logits. The
    batch order is ``schedule.client_batches(len(x), ..., rng=np.random.default_rng(seed))``, so
    the result depends only on the arguments: same seed, same weights.

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
    model, global_weights, x, y, local_epochs, batch_size, client_learning_rate, seed = (
        _check_local_training(model, global_weights, "global_weights", x, y, local_epochs,
                              batch_size, client_learning_rate, seed))
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

    The batches are ``schedule.client_batches(len(x), ..., rng=np.random.default_rng(seed))``, so
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
        evaluations_per_epoch: Checkpoints per epoch's worth of examples (1 .. 2**30).

    Returns:
        A :class:`LossCurve`. If the loss becomes NaN or inf, training stops there and
        ``diverged`` is ``True``.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model, initial_weights, x, y, local_epochs, batch_size, client_learning_rate, seed = (
        _check_local_training(model, initial_weights, "initial_weights", x, y, local_epochs,
                              batch_size, client_learning_rate, seed))
    # (More checkpoints than examples per epoch cannot happen: one per step at most.)
    evaluations_per_epoch = v.check_int("evaluations_per_epoch", evaluations_per_epoch,
                                        minimum=1, maximum=schedule.MAX_BATCH_INDICES)

    n = len(x)
    batches = schedule.client_batches_unchecked(n, local_epochs, batch_size,
                                                np.random.default_rng(seed))
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
    model = check_model(model)
    if weights is not None:
        weights = check_weights(model, weights, "weights")
    x, y = check_dataset(model, x, y)
    batch_size = v.check_int("batch_size", batch_size, minimum=1)
    if weights is not None:
        model.set_weights(weights)
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
# Checked once, then trusted: what the training loop uses
# --------------------------------------------------------------------------------------------


def check_datasets(model: keras.Model, datasets: Any,
                   name: str = "client_datasets") -> list[tuple[np.ndarray, np.ndarray]]:
    """Checks a list of ``(x_k, y_k)`` pairs against ``model``; float32 x and int64 y each.

    Raises:
        TypeError, ValueError: Not a non-empty list of pairs, or a pair does not fit the model
            (the message names the client).
    """
    model = check_model(model)
    name = _check_name("name", name)
    if isinstance(datasets, (np.ndarray, str, bytes)) or not isinstance(datasets, Sequence):
        raise TypeError(f"{name} must be a list of (x, y) pairs, one per client, got "
                        f"{type(datasets).__name__}.")
    if len(datasets) == 0:
        raise ValueError(f"{name} must hold at least one client, got 0.")
    checked = []
    for k, pair in enumerate(datasets):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name}[{k}] must be an (x, y) pair, got {type(pair).__name__}.")
        checked.append(check_dataset(model, *pair, name_x=f"{name}[{k}] x",
                                     name_y=f"{name}[{k}] y"))
    return checked


def check_pair(model: keras.Model, data: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Checks one ``(x, y)`` pair (e.g. ``test_data``) against ``model``."""
    model = check_model(model)
    name = _check_name("name", name)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be an (x, y) pair, got {type(data).__name__}.")
    return check_dataset(model, *data, name_x=f"{name} x", name_y=f"{name} y")


class Evaluator:
    """Loss and accuracy of weights on one dataset, checked once at construction.

    Args:
        model: Keras model used as a workspace (its weights are overwritten).
        x, y: The evaluation data (checked against ``model``).
    """

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
        self.model = check_model(model)
        self.x, self.y = check_dataset(model, x, y)

    def __call__(self, weights: Sequence[np.ndarray]) -> tuple[float, float]:
        """``(mean cross-entropy, accuracy)`` of ``weights`` (per-layer arrays of the model)."""
        self.model.set_weights(list(weights))
        return _evaluate_unchecked(self.model, self.x, self.y)


@dataclasses.dataclass(eq=False)
class LocalWork:
    """What the sampled clients of one round optimise, when it is more than plain local SGD.

    Client ``k`` (the ``i``-th sampled) starts from ``starts[i]`` (default: the global weights
    ``w_t``) and takes at most ``max_steps[i]`` of its usual SGD steps (default: all of them,
    ``local_epochs`` epochs of batches), each

        ``w <- w - eta * (grad F_k(w; batch) + proximal_mu * (w - w_t) + corrections[i])``

    which is FedProx's proximal term (Li et al. 2020, "Federated Optimization in Heterogeneous
    Networks", Eq. (2)), SCAFFOLD's corrected step with ``corrections[i] = c - c_i``
    (Karimireddy et al. 2020, Algorithm 1, line 10) and Ditto's personal objective from
    ``starts[i] = v_k`` (Li et al. 2021, Algorithm 1). The update reported is always
    ``w_final - w_t``. Built by a :class:`fl_helpers.training.ClientAlgorithm`; trusted by the
    trainers (the algorithm checked its settings).

    Attributes:
        proximal_mu: ``mu`` >= 0.
        corrections: Per sampled client, per-layer float32 arrays added to every gradient, or
            ``None`` (zero).
        starts: Per sampled client, the per-layer weights its training starts from, or ``None``.
        max_steps: Per sampled client, the most local steps it takes (int >= 0; 0 is no work:
            its update is ``starts[i] - w_t``), or ``None`` (all).
    """

    proximal_mu: float = 0.0
    corrections: list[list[np.ndarray]] | None = None
    starts: list[list[np.ndarray]] | None = None
    max_steps: np.ndarray | None = None

    @property
    def is_plain(self) -> bool:
        """Whether this is plain local SGD from the global weights (FedAvg's client)."""
        return (self.proximal_mu == 0 and self.corrections is None and self.starts is None
                and self.max_steps is None)


def _work_update_unchecked(model: keras.Model, global_weights: list[np.ndarray], x: np.ndarray,
                           y: np.ndarray, batches: list[np.ndarray], learning_rate: float,
                           work: LocalWork, i: int) -> list[np.ndarray]:
    """One client's training under ``work`` (it is the ``i``-th sampled); its final weights."""
    if work.max_steps is not None:
        batches = batches[:int(work.max_steps[i])]
    start = global_weights if work.starts is None else work.starts[i]
    model.set_weights([np.asarray(w, np.float32) for w in start])
    if not batches:
        return model.get_weights()
    correction = ([np.zeros_like(w) for w in global_weights] if work.corrections is None
                  else [np.asarray(c, np.float32) for c in work.corrections[i]])
    order = np.concatenate(batches).astype(np.int64, copy=False)
    bounds = np.zeros(len(batches) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in batches], out=bounds[1:])
    _work_train_fn(model)(x, y, order, bounds, np.float32(learning_rate),
                          np.float32(work.proximal_mu), global_weights, correction)
    return model.get_weights()


@dataclasses.dataclass(eq=False)
class ClientResults:
    """What the sampled clients of one round computed, in the order of the sampled ids.

    Attributes:
        deltas: Per client, its update ``w_k - w`` as per-layer float32 arrays.
        num_examples: ``n_k`` per client (int64).
        clients: The ids of the clients these are, if not the round's sampled clients (a
            :class:`fl_helpers.training.ClientAlgorithm` that drops some, e.g. stragglers), or
            ``None``.
    """

    deltas: list[list[np.ndarray]]
    num_examples: np.ndarray
    clients: np.ndarray | None = None


class LoopTrainer:
    """The reference trainer: one :func:`client_update` per sampled client, one after another.

    Checks its arguments once, at construction; then :meth:`train` is called every round
    without further checks.

    Args:
        model: A Keras model used as a workspace.
        client_datasets: One ``(x_k, y_k)`` pair per client (checked with
            :func:`check_datasets`).
        local_epochs, batch_size, client_learning_rate: Local SGD, as for :func:`client_update`.
        seed: The run's seed; client ``k`` of round ``t`` trains with
            :func:`fl_helpers.schedule.client_seed` ``(seed, t, k)``.
    """

    name = "loop"

    def __init__(self, model: keras.Model, client_datasets: list[tuple[np.ndarray, np.ndarray]],
                 *, local_epochs: int, batch_size: int | None, client_learning_rate: float,
                 seed: int) -> None:
        self.model = check_model(model)
        self.client_datasets = check_datasets(model, client_datasets)
        self.local_epochs = schedule.check_local_epochs(
            local_epochs, num_examples=max(len(x) for x, _ in self.client_datasets))
        self.batch_size = schedule.check_batch_size(batch_size)
        self.client_learning_rate = v.check_positive("client_learning_rate",
                                                     client_learning_rate)
        self.seed = v.check_int("seed", seed, minimum=0)

    @classmethod
    def _from_checked(cls, model: keras.Model,
                      client_datasets: list[tuple[np.ndarray, np.ndarray]], *,
                      local_epochs: int, batch_size: int | None, client_learning_rate: float,
                      seed: int) -> LoopTrainer:
        """A trainer from arguments the caller (the training loop) has already checked."""
        trainer = cls.__new__(cls)
        trainer.model, trainer.client_datasets = model, client_datasets
        trainer.local_epochs, trainer.batch_size = local_epochs, batch_size
        trainer.client_learning_rate, trainer.seed = client_learning_rate, seed
        return trainer

    def train(self, global_weights: Sequence[np.ndarray], sampled_clients: np.ndarray,
              round_index: int, work: LocalWork | None = None) -> ClientResults:
        """Trains each sampled client from ``global_weights`` (or as ``work`` says); returns
        every client's update ``w_k - w_t``."""
        start = [np.asarray(w, dtype=np.float32) for w in global_weights]
        deltas, sizes = [], []
        for i, k in enumerate(sampled_clients):
            x, y = self.client_datasets[int(k)]
            if work is not None and not work.is_plain:
                batches = schedule.client_batches_unchecked(
                    len(x), self.local_epochs, self.batch_size,
                    np.random.default_rng(schedule.client_seed(self.seed, round_index, int(k))))
                weights = _work_update_unchecked(self.model, start, x, y, batches,
                                                 self.client_learning_rate, work, i)
                deltas.append([w - w0 for w, w0 in zip(weights, start, strict=True)])
                sizes.append(len(x))
                continue
            weights, n_k = _client_update_unchecked(
                self.model, start, x, y, local_epochs=self.local_epochs,
                batch_size=self.batch_size, client_learning_rate=self.client_learning_rate,
                seed=schedule.client_seed(self.seed, round_index, int(k)))
            deltas.append([w - w0 for w, w0 in zip(weights, start, strict=True)])
            sizes.append(n_k)
        return ClientResults(deltas=deltas, num_examples=np.asarray(sizes, dtype=np.int64))
