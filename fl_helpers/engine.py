"""The fast multi-client engine: every sampled client of a round trained in one compiled graph.

:func:`fl_helpers.federated.client_update` trains one client at a time: clear, and what notebook 03
teaches, but every client pays Python and TensorFlow dispatch costs. This engine trains all the
clients of a round inside a single XLA-compiled TensorFlow function and aggregates their updates
there too, so a round costs little more than its arithmetic. It follows the same reproducibility
contract as the loop (:mod:`fl_helpers.federated`): client ``k`` of round ``t`` takes its batches
from ``federated.client_batches(..., rng=np.random.default_rng([seed, t, k]))``, each client runs
plain SGD on the mean sparse softmax cross-entropy of its own batches, and the results agree with
the loop up to float32 rounding (``tests/test_engine.py`` states the tolerance).

How it works (for Dense stacks: softmax regression, the 2NN):

* All clients' examples live on the device once per run, concatenated into ``x_all`` (flattened)
  and ``y_all``. A round only ships index tensors: ``idx[g, c, s, b]`` is the row of ``x_all``
  used by client ``c`` of group ``g`` at local step ``s``, slot ``b`` of the batch, built on the
  host from :func:`fl_helpers.federated.client_batches`; ``mask`` marks real slots (the last batch
  of an epoch can be smaller) and every client's batch loss is the masked mean over its real slots,
  so partial batches are exact.
* Clients are trained in groups of ``group_size`` in lockstep: the weights of a group are stacked
  along a client axis and a step is a batched matmul (``tf.einsum``), whose gradient of the *sum*
  of the per-client mean losses gives each client its own gradient. A group runs as many steps as
  its longest client; a client whose own steps are done sees all-zero masks, hence a zero gradient,
  and stays where it is, so unequal client sizes (Dirichlet splits) are exact too. Clients are
  sorted by step count before grouping so little work is wasted.
* Groups run one after the other in an XLA ``while`` loop with a run-time trip count, and each
  group's updates ``delta_k = w_k - w_global`` are reduced into a running sum straight away
  (weighted by ``n_k`` for FedAvg, or clipped to L2 norm ``clipping_norm`` for DP-FedAvg), so
  memory does not grow with the number of clients and padding clients cost nothing.
* Shapes are fixed per run (capacity for clients, the largest client's step count), so XLA
  compiles once per run and a round never retraces. Compiled functions are cached per model
  architecture, so a second run with the same shapes (a widget's next slider move) starts at once.

Group size (:func:`default_group_size`): on a CPU, a group holds as many clients as fit in about a
core's L2 cache, but at least one per core (16 for softmax regression, 2 for the 2NN on this
course's 2-core machine): measured faster than both one client at a time and all clients in
lockstep, whose stacked 2NN weights (8 MB for 10 clients) stream from L3 at every step. On a GPU,
groups of 64 fill the device. ``benchmarks/bench_engine_speed.py`` prints the lockstep variant.

Models that are not plain Dense stacks (the CNN) are not handled here: :func:`auto_engine` falls
back to the per-client loop for them (``federated._loop_engine``), which is already one compiled
graph per client. A general path (e.g. Keras 3 ``stateless_call`` vectorised over clients) was
neither built nor measured.

The DP server step is DP-FedAvg of McMahan et al. 2018, "Learning Differentially Private Recurrent
Language Models", Algorithm 1 (with every client weighted equally, ``w_k = 1``): clip each update
to L2 norm ``C`` (flat clipping over all layers), sum, add Gaussian noise of standard deviation
``z * C`` to the sum, divide by the expected number of clients ``q * N`` (a fixed denominator, so
the sensitivity of the average is ``C / (q N)`` whatever the sample), and take a server step.
:mod:`fl_helpers.dp_fedavg` runs it round after round with privacy accounting.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_helpers import _validation as v
from fl_helpers import federated

#: Activations the engine can reproduce exactly, by Keras name.
ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "linear": tf.identity,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
}

#: Tag mixed into the seed of the server's Gaussian noise, so that it is a stream of its own.
_NOISE_STREAM = 0x4E6F697365  # "Noise" in ASCII


# --------------------------------------------------------------------------------------------
# Which models the engine supports
# --------------------------------------------------------------------------------------------


def dense_activations(model: keras.Model) -> tuple[str, ...] | None:
    """The activations of ``model``'s Dense layers if it is a plain Dense stack, else ``None``.

    A plain Dense stack is a ``keras.Sequential`` of an optional ``Flatten`` followed by ``Dense``
    layers with biases and float32 weights, all trainable, whose last layer is linear (it returns
    logits, as the course's models do). Softmax regression and the 2NN qualify; the CNN does not.
    """
    if not isinstance(model, keras.Sequential):
        return None
    activations = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Flatten) and i == 0:
            continue
        if not isinstance(layer, keras.layers.Dense) or not layer.use_bias:
            return None
        name = keras.activations.serialize(layer.activation)
        name = name if isinstance(name, str) else getattr(layer.activation, "__name__", "")
        if name not in ACTIVATIONS:
            return None
        activations.append(name)
    if not activations or activations[-1] != "linear":
        return None
    if len(model.weights) != 2 * len(activations) or len(model.non_trainable_weights) != 0:
        return None
    if any(w.dtype != "float32" for w in model.weights):
        return None
    return tuple(activations)


def supports(model: keras.Model) -> bool:
    """Whether the fast engine can train ``model`` (see :func:`dense_activations`)."""
    return dense_activations(model) is not None


#: Bytes of one client's weights that a CPU group may hold, about a core's L2 cache.
CPU_GROUP_BYTES = 512 * 1024


def default_group_size(num_parameters: int) -> int:
    """Clients trained in lockstep per group, by device and model size.

    On a GPU, 64: wide batched matmuls fill the device. On a CPU, as many clients as fit in
    :data:`CPU_GROUP_BYTES` of float32 weights (16 for softmax regression), but at least one per
    core, so that the batched matmul's client axis spreads over the cores (2 for the 2NN on this
    course's 2-core machine). Measured in ``benchmarks/bench_engine_speed.py``.
    """
    num_parameters = v.check_int("num_parameters", num_parameters, minimum=1)
    if tf.config.list_logical_devices("GPU"):
        return 64
    cores = os.cpu_count() or 1
    return int(min(64, max(cores, CPU_GROUP_BYTES // (4 * num_parameters))))


# --------------------------------------------------------------------------------------------
# The compiled functions (one set per architecture, cached)
# --------------------------------------------------------------------------------------------


def _group_step_gradients(activations: tuple[str, ...], weights: list[tf.Tensor], x: tf.Tensor,
                          y: tf.Tensor, mask: tf.Tensor) -> list[tf.Tensor]:
    """Gradients of each client's masked mean batch loss w.r.t. its own stacked weights.

    ``weights[2 i]`` is ``[G, d_in, d_out]``, ``weights[2 i + 1]`` is ``[G, d_out]``; ``x`` is
    ``[G, B, d]``, ``y`` and ``mask`` are ``[G, B]``. The loss is the sum over clients of
    ``sum_b mask * ce / max(sum_b mask, 1)``; client ``g``'s weights only reach client ``g``'s
    term, so its gradient is that client's own mean-loss gradient.
    """
    count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
    with tf.GradientTape() as tape:
        tape.watch(weights)
        h = x
        for i, name in enumerate(activations):
            h = tf.einsum("gbi,gio->gbo", h, weights[2 * i]) + weights[2 * i + 1][:, None, :]
            h = ACTIVATIONS[name](h)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h)
        loss = tf.reduce_sum(tf.reduce_sum(ce * mask, axis=1) / count)
    return tape.gradient(loss, weights)


def _build_train_fn(activations: tuple[str, ...], clip: bool) -> Callable[..., Any]:
    @tf.function(jit_compile=True, reduce_retracing=False)
    def train_groups(x_all, y_all, idx, mask, group_steps, num_groups, client_scale,
                     global_weights, learning_rate, clipping_norm):
        """Trains ``num_groups`` groups; returns the scaled sum of updates and per-client norms."""
        capacity, group_size = idx.shape[0], idx.shape[1]

        def train_group(g, total, norms, clipped_norms):
            stacked = [tf.broadcast_to(w, [group_size, *w.shape]) for w in global_weights]

            def step(s, ws):
                rows = idx[g, :, s, :]
                grads = _group_step_gradients(activations, ws, tf.gather(x_all, rows),
                                              tf.gather(y_all, rows), mask[g, :, s, :])
                return s + 1, [w - learning_rate * d for w, d in zip(ws, grads, strict=True)]

            _, trained = tf.while_loop(lambda s, ws: s < group_steps[g], step,
                                       (tf.constant(0), stacked))
            deltas = [w - w0 for w, w0 in zip(trained, global_weights, strict=True)]
            sq = tf.add_n([tf.reduce_sum(tf.reshape(d, [group_size, -1]) ** 2, axis=1)
                           for d in deltas])
            norm = tf.sqrt(sq)
            if clip:
                # min(1, C / ||delta||), written so that a zero update gets factor 1, not NaN.
                factor = clipping_norm / tf.maximum(norm, clipping_norm)
                deltas = [d * tf.reshape(factor, [group_size] + [1] * (d.shape.rank - 1))
                          for d in deltas]
                clipped = tf.sqrt(tf.add_n([
                    tf.reduce_sum(tf.reshape(d, [group_size, -1]) ** 2, axis=1) for d in deltas]))
            else:
                clipped = norm
            scale = client_scale[g]
            total = [t + tf.tensordot(scale, d, axes=1) for t, d in zip(total, deltas, strict=True)]
            row = tf.one_hot(g, capacity)[:, None]
            return g + 1, total, norms + row * norm, clipped_norms + row * clipped

        zeros = [tf.zeros_like(w) for w in global_weights]
        empty = tf.zeros([capacity, group_size])
        _, total, norms, clipped_norms = tf.while_loop(
            lambda g, *_: g < num_groups, train_group, (tf.constant(0), zeros, empty, empty))
        return total, norms, clipped_norms

    return train_groups


@tf.function(reduce_retracing=False)
def _server_step(global_weights, total, denominator, server_learning_rate, noise_stddev,
                 noise_seed, noisy):
    """``w + server_lr * (total + N(0, noise_stddev^2)) / denominator``, noise from a seed.

    Not XLA-compiled: XLA's CPU random-number kernels measured 15x slower than TensorFlow's own
    for the 2NN's 199,210 draws. ``noisy`` is a Python bool (one trace each way).
    """
    if not noisy:
        return [w + server_learning_rate * t / denominator
                for w, t in zip(global_weights, total, strict=True)]
    sizes = [int(np.prod(w.shape)) for w in global_weights]
    noise = tf.random.stateless_normal([sum(sizes)], seed=noise_seed, dtype=tf.float32)
    pieces = tf.split(noise, sizes)
    return [w + server_learning_rate * (t + noise_stddev * tf.reshape(n, w.shape)) / denominator
            for w, t, n in zip(global_weights, total, pieces, strict=True)]


def _build_eval_fn(activations: tuple[str, ...]) -> Callable[..., Any]:
    @tf.function(jit_compile=True, reduce_retracing=False)
    def evaluate(x, y, weights):
        h = x
        for i, name in enumerate(activations):
            h = ACTIVATIONS[name](tf.linalg.matmul(h, weights[2 * i]) + weights[2 * i + 1])
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h)
        correct = tf.equal(tf.argmax(h, axis=-1, output_type=tf.int32), y)
        return tf.reduce_sum(tf.cast(ce, tf.float64)), tf.reduce_sum(tf.cast(correct, tf.int32))

    return evaluate


_EVAL_FNS: dict[tuple[str, ...], Callable[..., Any]] = {}
_TRAIN_FNS: dict[tuple[tuple[str, ...], bool], Callable[..., Any]] = {}


def _train_fn(activations: tuple[str, ...], clip: bool) -> Callable[..., Any]:
    key = (activations, clip)
    if key not in _TRAIN_FNS:
        _TRAIN_FNS[key] = _build_train_fn(activations, clip)
    return _TRAIN_FNS[key]


def noise_seed(seed: int, round_index: int) -> np.ndarray:
    """The seed of round ``round_index``'s server noise: derived from ``[seed, t, tag]``.

    A stream of its own (it shares nothing with client sampling ``[seed, t]`` or client training
    ``[seed, t, k]``), deterministic, and the same for the fast engine and the loop.
    """
    state = np.random.SeedSequence([int(seed), int(round_index), _NOISE_STREAM]).generate_state(2)
    return state.astype(np.int64)


def gaussian_noise(shapes: Sequence[tuple[int, ...]], *, noise_stddev: float,
                   seed: int, round_index: int) -> list[np.ndarray]:
    """The server's noise of round ``round_index``: the exact draw :meth:`dp_round` adds.

    Args:
        shapes: Shapes of the model's weights, in order.
        noise_stddev: Standard deviation of each coordinate (``z * C``), >= 0.
        seed: The run's seed (>= 0).
        round_index: ``t``, 0-based.

    Returns:
        float32 arrays of the given shapes with i.i.d. N(0, noise_stddev^2) entries.
    """
    noise_stddev = v.check_non_negative("noise_stddev", noise_stddev)
    zeros = [tf.zeros(shape, tf.float32) for shape in shapes]
    noisy = _server_step(zeros, zeros, tf.constant(1.0), tf.constant(1.0),
                         tf.constant(noise_stddev, tf.float32),
                         tf.constant(noise_seed(seed, round_index)), True)
    return [n.numpy() for n in noisy]


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class RoundStats:
    """Per-client figures of one round, in the order of the sampled clients.

    Attributes:
        update_norms: L2 norm of each client's update ``w_k - w_global`` before clipping.
        clipped_norms: L2 norm of each update after clipping, measured on the clipped tensors
            (equal to ``update_norms`` when nothing is clipped).
        num_examples: ``n_k`` of each client.
    """

    update_norms: np.ndarray
    clipped_norms: np.ndarray
    num_examples: np.ndarray


class MultiClientEngine:
    """Trains the sampled clients of a round in one XLA-compiled graph (Dense-stack models).

    Built once per run: it uploads every client's data and fixes the shapes. Then
    :meth:`fedavg_round` (FedAvg, McMahan et al. 2017, Algorithm 1) or :meth:`dp_round`
    (DP-FedAvg, McMahan et al. 2018, Algorithm 1) trains one round.

    Args:
        model: The model whose architecture is trained (its weights are not used); must satisfy
            :func:`supports`.
        client_datasets: One ``(x_k, y_k)`` pair per client (float32 inputs, integer labels).
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1, or ``None`` for full-batch steps.
        client_learning_rate: ``eta`` > 0.
        seed: The run's seed; client ``k`` of round ``t`` uses batches from rng ``[seed, t, k]``.
        group_size: Clients in lockstep per group; default :func:`default_group_size`.
            Any value gives the same results up to float32 rounding.
        max_clients_per_round: Expected largest number of clients in a round (sets the compiled
            capacity; a larger round recompiles once with double capacity).

    Raises:
        TypeError, ValueError: The model is not a Dense stack or an argument is malformed.
    """

    def __init__(self, model: keras.Model, client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                 *, local_epochs: int, batch_size: int | None, client_learning_rate: float,
                 seed: int, group_size: int | None = None,
                 max_clients_per_round: int | None = None) -> None:
        activations = dense_activations(model)
        if activations is None:
            raise ValueError(
                f"model must be a plain Dense stack (Flatten + Dense layers ending in logits) for "
                f"the fast engine, got {model.name!r}. Use engine='loop' (or 'auto') instead."
            )
        self.activations = activations
        self.local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
        self.batch_size = None if batch_size is None else v.check_int("batch_size", batch_size,
                                                                      minimum=1)
        self.client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
        self.seed = v.check_int("seed", seed, minimum=0)
        if len(client_datasets) == 0:
            raise ValueError("client_datasets must hold at least one client, got 0.")
        self.weight_shapes = [tuple(w.shape) for w in model.weights]
        num_parameters = int(sum(math.prod(shape) for shape in self.weight_shapes))
        self.group_size = (default_group_size(num_parameters) if group_size is None
                           else v.check_int("group_size", group_size, minimum=1))

        sizes = np.array([len(x) for x, _ in client_datasets], dtype=np.int64)
        if sizes.min() < 1:
            raise ValueError(f"every client must hold at least one example, got sizes down to "
                             f"{sizes.min()}.")
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        x_all = np.concatenate([np.asarray(x, np.float32).reshape(len(x), -1)
                                for x, _ in client_datasets])
        y_all = np.concatenate([np.asarray(y) for _, y in client_datasets]).astype(np.int32)
        if x_all.shape[1] != self.weight_shapes[0][0]:
            raise ValueError(f"client inputs flatten to {x_all.shape[1]} features, the model's "
                             f"first layer expects {self.weight_shapes[0][0]}.")
        self.x_all = tf.constant(x_all)
        self.y_all = tf.constant(y_all)
        # Fixed per run: the batch width and the step count of the largest client.
        largest = int(sizes.max())
        self.batch_width = largest if batch_size is None else min(batch_size, largest)
        # client_batches cuts each epoch into ceil(n_k / B) batches (one when B is None).
        per_epoch = np.ones_like(sizes) if batch_size is None else -(-sizes // batch_size)
        self.client_steps = (self.local_epochs * per_epoch).astype(np.int64)
        self.max_steps = int(self.client_steps.max())
        wanted = len(sizes) if max_clients_per_round is None else v.check_int(
            "max_clients_per_round", max_clients_per_round, minimum=1)
        # A power of two: padding groups cost nothing (the loop stops at the real count), and
        # runs whose rounds have similar sizes then share one compiled function.
        self.capacity = 1 << max(0, math.ceil(math.log2(-(-wanted // self.group_size))))

    # -- host side: index tensors from client_batches --------------------------------------

    def _layout(self, sampled: np.ndarray, round_index: int) -> tuple[np.ndarray, ...]:
        """Index, mask, step counts and group membership for the sampled clients of a round."""
        num_groups = -(-len(sampled) // self.group_size)
        while num_groups > self.capacity:
            self.capacity *= 2  # a new shape: XLA compiles once more
        shape = (self.capacity, self.group_size, self.max_steps, self.batch_width)
        idx = np.zeros(shape, dtype=np.int32)
        mask = np.zeros(shape, dtype=np.float32)
        # Longest clients first, so each group's clients need about the same number of steps.
        order = np.argsort(-self.client_steps[sampled], kind="stable")
        group_steps = np.zeros(self.capacity, dtype=np.int32)
        slot_of = np.empty(len(sampled), dtype=np.int64)
        for position, i in enumerate(order):
            k = int(sampled[i])
            g, c = divmod(position, self.group_size)
            slot_of[i] = position
            batches = federated.client_batches(
                int(self.sizes[k]), local_epochs=self.local_epochs, batch_size=self.batch_size,
                rng=np.random.default_rng(federated.client_seed(self.seed, round_index, k)))
            lengths = np.fromiter((len(b) for b in batches), dtype=np.int64, count=len(batches))
            rows = np.concatenate(batches)
            steps = np.repeat(np.arange(len(batches)), lengths)
            starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
            slots = np.arange(len(rows)) - starts
            idx[g, c, steps, slots] = rows + self.offsets[k]
            mask[g, c, steps, slots] = 1.0
            group_steps[g] = max(group_steps[g], len(batches))
        return idx, mask, group_steps, num_groups, slot_of

    def _train(self, global_weights: Sequence[Any], sampled: np.ndarray, round_index: int,
               client_scale: np.ndarray, clipping_norm: float | None
               ) -> tuple[list[tf.Tensor], RoundStats]:
        sampled = np.asarray(sampled, dtype=np.int64)
        idx, mask, group_steps, num_groups, slot_of = self._layout(sampled, round_index)
        scale = np.zeros(self.capacity * self.group_size, dtype=np.float32)
        scale[slot_of] = client_scale
        fn = _train_fn(self.activations, clipping_norm is not None)
        total, norms, clipped = fn(
            self.x_all, self.y_all, tf.constant(idx), tf.constant(mask),
            tf.constant(group_steps), tf.constant(num_groups, tf.int32),
            tf.constant(scale.reshape(self.capacity, self.group_size)),
            [tf.convert_to_tensor(w, tf.float32) for w in global_weights],
            tf.constant(self.client_learning_rate, tf.float32),
            tf.constant(np.inf if clipping_norm is None else clipping_norm, tf.float32))
        stats = RoundStats(
            update_norms=norms.numpy().reshape(-1)[slot_of].astype(np.float64),
            clipped_norms=clipped.numpy().reshape(-1)[slot_of].astype(np.float64),
            num_examples=self.sizes[sampled].copy(),
        )
        return total, stats

    def evaluation_data(self, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        """``(x, y)`` put on the device once, in the form :meth:`evaluate` takes."""
        x = np.asarray(x, dtype=np.float32)
        return tf.constant(x.reshape(len(x), -1)), tf.constant(np.asarray(y).astype(np.int32))

    def evaluate(self, weights: Sequence[np.ndarray],
                 data: tuple[tf.Tensor, tf.Tensor]) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of ``weights`` on ``data`` (from
        :meth:`evaluation_data`), in one compiled call; what ``federated.evaluate`` computes."""
        if self.activations not in _EVAL_FNS:
            _EVAL_FNS[self.activations] = _build_eval_fn(self.activations)
        x, y = data
        loss, correct = _EVAL_FNS[self.activations](
            x, y, [tf.convert_to_tensor(w, tf.float32) for w in weights])
        return float(loss) / int(x.shape[0]), int(correct) / int(x.shape[0])

    # -- the two server rules ----------------------------------------------------------------

    def _check_sampled(self, sampled_clients: Any) -> np.ndarray:
        sampled = np.asarray(sampled_clients)
        if sampled.size == 0:
            return np.zeros(0, dtype=np.int64)
        if (sampled.ndim != 1 or not np.issubdtype(sampled.dtype, np.integer)
                or sampled.min() < 0 or sampled.max() >= len(self.sizes)):
            raise ValueError(f"sampled_clients must be a 1-D array of client ids in "
                             f"0..{len(self.sizes) - 1}, got {sampled!r}.")
        if np.unique(sampled).size != sampled.size:
            raise ValueError(f"sampled_clients must not repeat a client, got {sampled!r}.")
        return sampled.astype(np.int64)

    @staticmethod
    def _finite(weights: list[tf.Tensor]) -> list[np.ndarray]:
        arrays = [w.numpy() for w in weights]
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError(
                "the new global weights hold NaN or inf values: a client's training diverged. "
                "Try a smaller client_learning_rate.")
        return arrays

    def fedavg_round(self, global_weights: Sequence[np.ndarray], sampled_clients: np.ndarray,
                     round_index: int) -> list[np.ndarray]:
        """One FedAvg round: ``w + sum_k (n_k / n) (w_k - w)`` = ``sum_k (n_k / n) w_k``.

        Matches :data:`fl_helpers.federated.RoundTrainer`, so :func:`federated.run_fedavg` can
        call it. McMahan et al. 2017, Algorithm 1.
        """
        sampled = self._check_sampled(sampled_clients)
        if sampled.size == 0:
            raise ValueError("sampled_clients must hold at least one client for FedAvg, got 0.")
        n = self.sizes[sampled].astype(np.float64)
        weights = [tf.convert_to_tensor(w, tf.float32) for w in global_weights]
        total, _ = self._train(weights, sampled, round_index, n.astype(np.float32), None)
        new = _server_step(weights, total, tf.constant(n.sum(), tf.float32), tf.constant(1.0),
                           tf.constant(0.0), tf.constant(np.zeros(2, np.int64)), False)
        return self._finite(new)

    def dp_round(self, global_weights: Sequence[np.ndarray], sampled_clients: np.ndarray,
                 round_index: int, *, clipping_norm: float, noise_multiplier: float,
                 denominator: float, server_learning_rate: float = 1.0
                 ) -> tuple[list[np.ndarray], RoundStats]:
        """One DP-FedAvg round (McMahan et al. 2018, Algorithm 1, every client weighted 1).

        ``w + server_learning_rate * (sum_k clip(delta_k, C) + N(0, (z C)^2 I)) / denominator``
        with ``clip(delta, C) = delta * min(1, C / ||delta||_2)`` over all layers at once and the
        noise from :func:`noise_seed` ``(seed, round_index)`` (see :func:`gaussian_noise`).
        An empty round is valid: the global model then moves by noise alone.

        Args:
            global_weights: Current global per-layer weights.
            sampled_clients: Ids of this round's clients (any number, 0 included).
            round_index: ``t``, 0-based (fixes the client seeds and the noise).
            clipping_norm: ``C`` > 0.
            noise_multiplier: ``z`` >= 0 (0 gives clipping without noise).
            denominator: The fixed divisor, the expected number of clients ``q N`` (> 0).
            server_learning_rate: ``eta_s`` > 0.

        Returns:
            ``(new_global_weights, stats)`` with per-client norms before and after clipping.
        """
        clipping_norm = v.check_positive("clipping_norm", clipping_norm)
        noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
        denominator = v.check_positive("denominator", denominator)
        server_learning_rate = v.check_positive("server_learning_rate", server_learning_rate)
        sampled = self._check_sampled(sampled_clients)
        weights = [tf.convert_to_tensor(w, tf.float32) for w in global_weights]
        if sampled.size:
            total, stats = self._train(weights, sampled, round_index,
                                       np.ones(sampled.size, np.float32), clipping_norm)
        else:
            total = [tf.zeros_like(w) for w in weights]
            stats = RoundStats(np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
        new = _server_step(weights, total, tf.constant(denominator, tf.float32),
                           tf.constant(server_learning_rate, tf.float32),
                           tf.constant(noise_multiplier * clipping_norm, tf.float32),
                           tf.constant(noise_seed(self.seed, round_index)), True)
        return self._finite(new), stats


# --------------------------------------------------------------------------------------------
# Engines for federated.run_fedavg
# --------------------------------------------------------------------------------------------


def _named(trainer: federated.RoundTrainer, name: str) -> federated.RoundTrainer:
    def train_round(global_weights: list[np.ndarray], sampled_clients: np.ndarray,
                    round_index: int) -> list[np.ndarray]:
        return trainer(global_weights, sampled_clients, round_index)

    train_round.engine_name = name  # read by run_fedavg for its History
    return train_round


def fast_engine(model_fn: Callable[[], keras.Model], model: keras.Model,
                client_datasets: list[tuple[np.ndarray, np.ndarray]], *, local_epochs: int,
                batch_size: int | None, client_learning_rate: float,
                seed: int) -> federated.RoundTrainer:
    """The :data:`fl_helpers.federated.Engine` that trains rounds with :class:`MultiClientEngine`.

    Raises:
        ValueError: The model is not a plain Dense stack (use ``"auto"`` or ``"loop"``).
    """
    del model_fn
    engine = MultiClientEngine(model, client_datasets, local_epochs=local_epochs,
                               batch_size=batch_size, client_learning_rate=client_learning_rate,
                               seed=seed)
    return _named(engine.fedavg_round, "fast")


def auto_engine(model_fn: Callable[[], keras.Model], model: keras.Model,
                client_datasets: list[tuple[np.ndarray, np.ndarray]], *, local_epochs: int,
                batch_size: int | None, client_learning_rate: float,
                seed: int) -> federated.RoundTrainer:
    """:func:`fast_engine` for Dense stacks, the per-client loop for anything else (the CNN)."""
    if supports(model):
        return fast_engine(model_fn, model, client_datasets, local_epochs=local_epochs,
                           batch_size=batch_size, client_learning_rate=client_learning_rate,
                           seed=seed)
    loop = federated.ENGINES["loop"](model_fn, model, client_datasets, local_epochs=local_epochs,
                                     batch_size=batch_size,
                                     client_learning_rate=client_learning_rate, seed=seed)
    return _named(loop, "loop")


def flops_per_example(weight_shapes: Sequence[tuple[int, ...]]) -> int:
    """Nominal training FLOPs of one example through a Dense stack: ``6 * num_parameters``.

    2 per weight for the forward pass, 2 for the weight gradient and 2 for the gradient with
    respect to the layer's input (the convention of Kaplan et al. 2020, "Scaling Laws for Neural
    Language Models", Section 2.1). It over-counts the first layer's input gradient, which is
    never needed, so achieved rates computed with it are slightly optimistic.
    """
    return 6 * int(sum(math.prod(shape) for shape in weight_shapes))
