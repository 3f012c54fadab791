"""The fast multi-client engine: every sampled client of a round trained in one compiled graph.

:func:`fl_helpers.client.client_update` trains one client at a time: clear, and what notebook 03
teaches, but every client pays Python and TensorFlow dispatch costs. This engine trains all the
clients of a round inside a single XLA-compiled TensorFlow function and aggregates their updates
there too, so a round costs little more than its arithmetic. It follows the same reproducibility
contract as the loop (:mod:`fl_helpers.schedule`): client ``k`` of round ``t`` takes its batches
from ``schedule.client_batches(..., rng=np.random.default_rng([seed, t, k]))``, each client runs
plain SGD on the mean sparse softmax cross-entropy of its own batches, and the results agree with
the loop up to float32 rounding (``tests/test_engine.py`` states the tolerance).

How it works (Dense stacks first: softmax regression, the 2NN):

* All clients' examples live on the device once per run, concatenated into ``x_all`` (flattened)
  and ``y_all``. A round only ships index tensors: ``idx[g, c, s, b]`` is the row of ``x_all``
  used by client ``c`` of group ``g`` at local step ``s``, slot ``b`` of the batch, built on the
  host from :func:`fl_helpers.schedule.client_batches`; ``mask`` marks real slots (the last batch
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

One local step per client (``E = 1`` and every ``n_k <= B``, or ``B = inf``: FedSGD, and
DP-FedAvg over clients of one example, which is DP-SGD) takes a shorter path for Dense stacks:
every client starts from the same global weights, so all their examples go through one ordinary
forward and backward pass, each client's update norm comes from Gram matrices of its layer
inputs and output gradients (the "ghost norm", never forming the update), and the clipped
weighted sum is one matmul per layer (:func:`_build_one_step_fn`). A round of 3,000 one-example
clients then costs about as much as one SGD step on a batch of 3,000.

Convolutional models (the course CNN; see :func:`layer_program` for what is supported) take the
same path: the model is read as a short program of steps (:data:`Op`), every client's weights are
stacked along the client axis, convolutions are written out per client inside the graph
(:func:`_group_conv` says why, and what was measured slower), max pooling folds the client axis
into the batch, and the Dense layers are the batched matmuls above. This graph runs without
XLA (``tf.function`` only), one client per group on a CPU: under XLA the same round (2 clients x
100 examples, E = 1) took 13-16 s against 1.7 s, XLA's CPU convolutions inside the training
``while`` loop being far slower than TensorFlow's oneDNN kernels. A group of one client drops
the client axis and runs the plain kernels (a step of B = 10 took 4.3 ms against 7.0 ms with
the stacked forms). A CNN round on a CPU is bound by its convolutions: at E = 5, B = 10,
10 clients x 600 the engine took 15.3 s per round against the loop's 17.3 s (1.14x), at
145 GFLOP/s, 66% of the machine's measured float32 matmul peak (218 GFLOP/s), and the loop
itself runs at about 58% of it, so no formulation of the same arithmetic can be 3x faster
than the loop on this CPU (``benchmarks/bench_engine_speed.py --cnn``).
Models with other layers (dropout, batch normalisation) are trained by the training loop
(:mod:`fl_helpers.training`, ``engine="auto"``) with :class:`fl_helpers.client.LoopTrainer`.

The engine knows nothing of aggregation rules, privacy or histories. It offers two things per
round: :meth:`MultiClientEngine.clipped_sum`, the weighted sum ``sum_k a_k clip(delta_k, C)``
that every :class:`fl_helpers.aggregation.LinearRule` (FedAvg, DP-FedAvg) finalises, computed
inside the graph without holding every update; and :meth:`MultiClientEngine.train`, every
client's update, for rules that need them all (the coordinate-wise median).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_helpers import _validation as v
from fl_helpers import aggregation, client, schedule

#: Activations the engine can reproduce exactly, by Keras name.
ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "linear": tf.identity,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
}


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
        name = _activation_name(layer)
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


#: One step of a model the engine can train, as data: ``("flatten",)``, ``("reshape", shape)``,
#: ``("dense", activation)``, ``("conv", activation, padding)`` (a 2-D convolution with stride 1,
#: ``padding`` "same" or "valid") or ``("maxpool", pool_size, strides)`` ("valid" padding).
Op = tuple[Any, ...]


def _conv_op(layer: keras.layers.Conv2D) -> Op | None:
    name = _activation_name(layer)
    plain = (tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
             and layer.groups == 1 and layer.data_format == "channels_last" and layer.use_bias)
    if not plain or name not in ACTIVATIONS or layer.padding not in ("same", "valid"):
        return None
    return ("conv", name, layer.padding)


def _activation_name(layer: keras.layers.Layer) -> str:
    name = keras.activations.serialize(layer.activation)
    return name if isinstance(name, str) else getattr(layer.activation, "__name__", "")


def layer_program(model: keras.Model) -> tuple[Op, ...] | None:
    """``model`` as a sequence of :data:`Op` steps if the engine can train it, else ``None``.

    Supported: a ``keras.Sequential`` of ``Flatten``, ``Reshape``, ``Dense`` (with bias),
    ``Conv2D`` (bias, stride 1, no dilation or groups, "same"/"valid" padding, channels last)
    and ``MaxPooling2D`` ("valid" padding) layers with activations in :data:`ACTIVATIONS`,
    float32 weights, all trainable, whose last layer is a linear ``Dense`` (logits). Dense
    layers must see flat features (a ``Flatten`` before them). Softmax regression, the 2NN and
    the CNN of :mod:`fl_helpers.models` qualify; models with dropout or batch normalisation
    (whose training pass differs from plain SGD on fixed weights) do not.
    """
    if not isinstance(model, keras.Sequential) or not model.layers:
        return None
    if len(model.non_trainable_weights) != 0 or any(w.dtype != "float32" for w in model.weights):
        return None
    rank = len(model.inputs[0].shape) - 1  # per-example rank of the current activations
    program: list[Op] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten):
            op: Op | None = ("flatten",)
            rank = 1
        elif isinstance(layer, keras.layers.Reshape):
            op = ("reshape", tuple(int(d) for d in layer.target_shape))
            rank = len(layer.target_shape)
        elif isinstance(layer, keras.layers.Dense):
            name = _activation_name(layer)
            op = ("dense", name) if layer.use_bias and name in ACTIVATIONS and rank == 1 else None
        elif isinstance(layer, keras.layers.Conv2D) and type(layer) is keras.layers.Conv2D:
            op = _conv_op(layer) if rank == 3 else None
        elif isinstance(layer, keras.layers.MaxPooling2D):
            plain = layer.padding == "valid" and layer.data_format == "channels_last"
            op = ("maxpool", tuple(layer.pool_size), tuple(layer.strides)) \
                if plain and rank == 3 else None
        else:
            op = None
        if op is None:
            return None
        program.append(op)
    if program[-1] != ("dense", "linear"):
        return None
    num_weighted = sum(op[0] in ("dense", "conv") for op in program)
    if len(model.weights) != 2 * num_weighted:
        return None
    return tuple(program)


def supports(model: keras.Model) -> bool:
    """Whether the fast engine can train ``model`` (see :func:`layer_program`)."""
    return layer_program(model) is not None


#: Bytes of one client's weights that a CPU group may hold, about a core's L2 cache.
CPU_GROUP_BYTES = 512 * 1024


def default_group_size(num_parameters: int, *, convolutional: bool = False) -> int:
    """Clients trained in lockstep per group, by device and model size.

    On a GPU, 64: wide batched matmuls fill the device. On a CPU, as many clients as fit in
    :data:`CPU_GROUP_BYTES` of float32 weights (16 for softmax regression), but at least one per
    core, so that the batched matmul's client axis spreads over the cores (2 for the 2NN on this
    course's 2-core machine). A convolutional model on a CPU trains one client at a time: one
    client's convolutions already use every core, and groups of 2 measured slower.
    Measured in ``benchmarks/bench_engine_speed.py``.
    """
    num_parameters = v.check_int("num_parameters", num_parameters, minimum=1)
    if tf.config.list_logical_devices("GPU"):
        return 64
    if convolutional:
        return 1
    cores = os.cpu_count() or 1
    return int(min(64, max(cores, CPU_GROUP_BYTES // (4 * num_parameters))))


# --------------------------------------------------------------------------------------------
# The compiled functions (one set per architecture, cached)
# --------------------------------------------------------------------------------------------


def _group_conv(h: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, padding: str,
                activation: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """Each client's own 2-D convolution (stride 1, then bias and activation) of its own batch.

    ``h`` is ``[G, B, H, W, C_in]``, ``kernel`` ``[G, kh, kw, C_in, C_out]``, ``bias``
    ``[G, C_out]``. The group's ``G`` convolutions are written out one per client inside the
    compiled graph (``G`` is a compile-time constant), with no per-op dispatch from Python.
    Measured once on the course's 2-core CPU (a micro-benchmark of the forward and backward pass
    of both convolutions, 2 clients x B = 10, under XLA, best of 5 on a loaded machine): 35 ms
    written out per client, 87 ms as one batched im2col matmul over the client axis (the
    ``kh * kw`` shifted views concatenated, then ``einsum``), 348 ms as a grouped convolution
    (clients as ``feature_group_count``). ``tf.vectorized_map`` has no vectorised rule for a
    per-client filter (``Conv2D`` is converted only for a loop-invariant filter; the filter
    gradient falls back to a while loop).
    """
    outputs = [activation(tf.nn.bias_add(tf.nn.conv2d(h[g], kernel[g], 1, padding.upper()),
                                          bias[g])) for g in range(h.shape[0])]
    return tf.stack(outputs)


def _group_forward(program: tuple[Op, ...], weights: list[tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """Logits ``[G, B, classes]`` of each client's weights (stacked on axis 0) on its batch."""
    group, batch = x.shape[0], x.shape[1]
    h, w = x, iter(weights)
    for op in program:
        if op[0] == "flatten":
            h = tf.reshape(h, [group, batch, -1])
        elif op[0] == "reshape":
            h = tf.reshape(h, [group, batch, *op[1]])
        elif op[0] == "dense":
            h = ACTIVATIONS[op[1]](tf.einsum("gbi,gio->gbo", h, next(w)) + next(w)[:, None, :])
        elif op[0] == "conv":
            h = _group_conv(h, next(w), next(w), op[2], ACTIVATIONS[op[1]])
        else:  # maxpool: no weights, so the client axis folds into the batch
            pooled = tf.nn.max_pool2d(tf.reshape(h, [group * batch, *h.shape[2:]]), op[1], op[2],
                                      "VALID")
            h = tf.reshape(pooled, [group, batch, *pooled.shape[1:]])
    return h


def _forward(program: tuple[Op, ...], weights: list[tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """Logits ``[N, classes]`` of one set of weights on ``x`` (evaluation), with library ops."""
    h, w = x, iter(weights)
    for op in program:
        if op[0] == "flatten":
            h = tf.reshape(h, [tf.shape(h)[0], -1])
        elif op[0] == "reshape":
            h = tf.reshape(h, [tf.shape(h)[0], *op[1]])
        elif op[0] == "dense":
            h = ACTIVATIONS[op[1]](tf.linalg.matmul(h, next(w)) + next(w))
        elif op[0] == "conv":
            h = ACTIVATIONS[op[1]](tf.nn.conv2d(h, next(w), 1, op[2].upper()) + next(w))
        else:
            h = tf.nn.max_pool2d(h, op[1], op[2], "VALID")
    return h


def _group_step_gradients(program: tuple[Op, ...], weights: list[tf.Tensor], x: tf.Tensor,
                          y: tf.Tensor, mask: tf.Tensor) -> list[tf.Tensor]:
    """Gradients of each client's masked mean batch loss w.r.t. its own stacked weights.

    Every weight is stacked along a leading client axis ``G`` (``[G, d_in, d_out]`` for a Dense
    kernel, ``[G, kh, kw, C_in, C_out]`` for a convolution); ``x`` is ``[G, B, ...]``, ``y`` and
    ``mask`` are ``[G, B]``. The loss is the sum over clients of
    ``sum_b mask * ce / max(sum_b mask, 1)``; client ``g``'s weights only reach client ``g``'s
    term, so its gradient is that client's own mean-loss gradient.
    """
    count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
    with tf.GradientTape() as tape:
        tape.watch(weights)
        if x.shape[0] == 1:
            # One client: its own ops without the client axis (a reshape, free both ways) run
            # the plain kernels, measured 20% faster for the CNN than the stacked forms.
            logits = _forward(program, [tf.reshape(w, w.shape[1:]) for w in weights],
                              tf.reshape(x, x.shape[1:]))[None]
        else:
            logits = _group_forward(program, weights, x)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        loss = tf.reduce_sum(tf.reduce_sum(ce * mask, axis=1) / count)
    return tape.gradient(loss, weights)


def _build_train_fn(program: tuple[Op, ...], mode: str) -> Callable[..., Any]:
    """The compiled round: ``mode`` is ``"sum"``, ``"clip"`` (clipped sum) or ``"collect"``."""

    @tf.function(jit_compile=_is_dense_stack(program), reduce_retracing=False)
    def train_groups(x_all, y_all, idx, mask, group_steps, num_groups, client_scale,
                     global_weights, learning_rate, clipping_norm):
        """Trains ``num_groups`` groups; returns the scaled sum (or every update) and norms."""
        capacity, group_size = idx.shape[0], idx.shape[1]

        def train_group(g, total, norms, clipped_norms):
            stacked = [tf.broadcast_to(w, [group_size, *w.shape]) for w in global_weights]

            def step(s, ws):
                rows = idx[g, :, s, :]
                grads = _group_step_gradients(program, ws, tf.gather(x_all, rows),
                                              tf.gather(y_all, rows), mask[g, :, s, :])
                return s + 1, [w - learning_rate * d for w, d in zip(ws, grads, strict=True)]

            _, trained = tf.while_loop(lambda s, ws: s < group_steps[g], step,
                                       (tf.constant(0), stacked))
            deltas = [w - w0 for w, w0 in zip(trained, global_weights, strict=True)]
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.reshape(d, [group_size, -1]) ** 2, axis=1)
                                     for d in deltas]))
            clipped = norm
            if mode == "clip":
                # min(1, C / ||delta||), written so that a zero update gets factor 1, not NaN.
                factor = clipping_norm / tf.maximum(norm, clipping_norm)
                deltas = [d * tf.reshape(factor, [group_size] + [1] * (d.shape.rank - 1))
                          for d in deltas]
                clipped = tf.sqrt(tf.add_n([
                    tf.reduce_sum(tf.reshape(d, [group_size, -1]) ** 2, axis=1) for d in deltas]))
            if mode == "collect":
                total = [t.write(g, d) for t, d in zip(total, deltas, strict=True)]
            else:
                scale = client_scale[g]
                total = [t + tf.tensordot(scale, d, axes=1)
                         for t, d in zip(total, deltas, strict=True)]
            row = tf.one_hot(g, capacity)[:, None]
            return g + 1, total, norms + row * norm, clipped_norms + row * clipped

        if mode == "collect":
            start = [tf.TensorArray(tf.float32, size=capacity, element_shape=[group_size, *w.shape])
                     for w in global_weights]
        else:
            start = [tf.zeros_like(w) for w in global_weights]
        empty = tf.zeros([capacity, group_size])
        _, total, norms, clipped_norms = tf.while_loop(
            lambda g, *_: g < num_groups, train_group, (tf.constant(0), start, empty, empty))
        if mode == "collect":
            total = [t.stack() for t in total]
        return total, norms, clipped_norms

    return train_groups


def _build_work_fn(program: tuple[Op, ...]) -> Callable[..., Any]:
    """The compiled round of a :class:`fl_helpers.client.LocalWork`: every update collected.

    As :func:`_build_train_fn` in ``"collect"`` mode, but each client starts from its own
    weights (``starts``, stacked ``[capacity, group_size, ...]``) and its step is
    ``w <- w - eta * (grad + mu (w - w_t) + correction)``, taken only while the client still
    has a batch at that step (``active``: its mask holds a real slot), so that a client whose
    steps are done (fewer examples, or a straggler's fewer steps) stays where it is although
    its proximal term and correction are not zero.
    """

    @tf.function(jit_compile=_is_dense_stack(program), reduce_retracing=False)
    def train_work(x_all, y_all, idx, mask, group_steps, num_groups, global_weights, starts,
                   corrections, learning_rate, mu):
        capacity, group_size = idx.shape[0], idx.shape[1]

        def train_group(g, total):
            def step(s, ws):
                rows = idx[g, :, s, :]
                grads = _group_step_gradients(program, ws, tf.gather(x_all, rows),
                                              tf.gather(y_all, rows), mask[g, :, s, :])
                active = tf.reduce_max(mask[g, :, s, :], axis=1)
                new = []
                for w, d, w0, c in zip(ws, grads, global_weights, corrections, strict=True):
                    factor = tf.reshape(active, [group_size] + [1] * (w.shape.rank - 1))
                    new.append(w - learning_rate * factor * (d + mu * (w - w0) + c[g]))
                return s + 1, new

            _, trained = tf.while_loop(lambda s, ws: s < group_steps[g], step,
                                       (tf.constant(0), [w[g] for w in starts]))
            total = [t.write(g, w - w0) for t, w, w0 in zip(total, trained, global_weights,
                                                            strict=True)]
            return g + 1, total

        start = [tf.TensorArray(tf.float32, size=capacity, element_shape=[group_size, *w.shape])
                 for w in global_weights]
        _, total = tf.while_loop(lambda g, *_: g < num_groups, train_group,
                                 (tf.constant(0), start))
        return [t.stack() for t in total]

    return train_work


_WORK_FNS: dict[tuple[Op, ...], Callable[..., Any]] = {}


def _use_ghost_norm(width: int, kernel_shape: tuple[int, ...]) -> bool:
    """Whether a ``W x W`` Gram matrix per client is cheaper than a ``d_in x d_out`` gradient."""
    return width * width <= kernel_shape[0] * kernel_shape[1]


def _gram_error_bound(d_in: int, d_out: int, width: int) -> float:
    """Relative float64 error of a client's squared norm from Gram matrices, per unit of
    ``(sum_b ||(a_b, 1)|| ||d_b||)^2``.

    Each Gram entry is a float64 dot product of length ``d_in`` (or ``d_out``), whose error is
    at most ``n u ||x|| ||y||`` (``u = 2^-53``, Higham 2002, "Accuracy and Stability of Numerical
    Algorithms", Section 3.1); the products and the sum over the ``width^2`` pairs add
    ``(width^2 + 3) u`` of the same scale. The factor 1.01 covers the second-order terms and the
    rounding of the lengths themselves. Summed per layer, it bounds how far the computed
    squared norm can fall below the true one when examples' gradients cancel.
    """
    return 1.01 * (d_in + d_out + width * width + 3) * 2.0**-53


def _build_one_step_fn(program: tuple[Op, ...], mode: str) -> Callable[..., Any]:
    """The compiled round for Dense stacks when every client takes exactly one local step.

    ``mode`` is ``"sum"`` or ``"clip"``. With one step from the shared global weights ``w``,
    client ``k``'s update is ``delta_k = -eta * g_k``, ``g_k`` the gradient of its mean batch loss
    at ``w``: all clients' examples go through one ordinary forward pass with the shared weights,
    and the clipped weighted sum ``-eta * sum_k c_k g_k`` is, for a Dense layer with inputs ``a``
    and output gradients ``d`` (one row per example), the single matmul ``a^T (c * d)``. Each
    client's norm ``||g_k||`` comes without forming ``g_k`` from the Gram-matrix identity
    ``||sum_b a_b d_b^T||^2 = sum_{b,b'} (a_b . a_b')(d_b . d_b')`` (bias: ``a_b . a_b' + 1``;
    Goodfellow 2015, "Efficient Per-Example Gradient Computations"; used for DP-SGD as "ghost
    clipping" by Li et al. 2022, "Large Language Models Can Be Strong Differentially Private
    Learners", Section 4), or, when a client's batch is wider than the layer (full-batch FedSGD),
    from its gradient formed directly (Bu et al. 2022, "Scalable and Efficient Training of Large
    Convolutional Neural Networks with Differential Privacy", mixed ghost clipping).
    ``idx`` and ``mask`` are ``[K, W]`` (client, batch slot); padding clients have zero masks,
    hence zero gradients, zero norms and zero weight in the sum.
    """

    @tf.function(jit_compile=True, reduce_retracing=False)
    def one_step(x_all, y_all, idx, mask, client_scale, global_weights, learning_rate,
                 clipping_norm):
        num_clients, width = idx.shape
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        h = tf.reshape(tf.gather(x_all, idx), [num_clients * width, -1])
        inputs, outputs = [], []
        weights = iter(global_weights)
        with tf.GradientTape() as tape:
            for op in program:
                if op[0] == "flatten":
                    continue  # the engine's inputs are flat already
                kernel, bias = next(weights), next(weights)
                inputs.append(h)
                z = tf.linalg.matmul(h, kernel) + bias
                tape.watch(z)
                outputs.append(z)
                h = ACTIVATIONS[op[1]](z)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.reshape(tf.gather(y_all, idx), [-1]), logits=h)
            # Each client's mean over its real slots; the sum over clients separates them.
            loss = tf.reduce_sum(tf.reshape(ce, [num_clients, width]) * mask / count[:, None])
        grads = tape.gradient(loss, outputs)  # per-example rows of d loss_k / d z
        # Clipping needs each client's true norm, never less: with Gram matrices the norm comes
        # from sums that subtract (examples whose gradients cancel), which float32 can turn
        # into 0. So the norms that clip are computed in float64 from the float32 rows (the
        # products are exact) and raised by a bound on what rounding remains.
        precise = mode in ("clip", "factors")
        dtype = tf.float64 if precise else tf.float32
        squared = tf.zeros([num_clients], dtype)
        error = tf.zeros([num_clients], dtype)
        for a, d in zip(inputs, grads, strict=True):
            a3 = tf.cast(tf.reshape(a, [num_clients, width, -1]), dtype)
            d3 = tf.cast(tf.reshape(d, [num_clients, width, -1]), dtype)
            if _use_ghost_norm(width, (a3.shape[2], d3.shape[2])):
                gram_a = tf.einsum("kbi,kci->kbc", a3, a3) + 1.0
                gram_d = tf.einsum("kbo,kco->kbc", d3, d3)
                squared += tf.reduce_sum(gram_a * gram_d, axis=[1, 2])
                if precise:
                    lengths = tf.sqrt(tf.linalg.diag_part(gram_a) * tf.linalg.diag_part(gram_d))
                    error += _gram_error_bound(a3.shape[2], d3.shape[2], width) \
                        * tf.reduce_sum(lengths, axis=1) ** 2
            else:  # sums of squares of the client's gradient, formed directly
                per_client = tf.einsum("kbi,kbo->kio", a3, d3)
                squared += tf.reduce_sum(per_client ** 2, axis=[1, 2]) \
                    + tf.reduce_sum(tf.reduce_sum(d3, axis=1) ** 2, axis=1)
        norm = learning_rate * tf.cast(tf.sqrt(tf.maximum(squared, 0.0)), tf.float32)
        coefficient = client_scale
        clipped = norm
        if mode in ("clip", "factors"):
            # (1 + 2^-21): the float32 rounding of the square root and of the product.
            upper = learning_rate * (1.0 + 2.0**-21) * tf.cast(
                tf.sqrt(tf.maximum(squared, 0.0) + error), tf.float32)
            factor = clipping_norm / tf.maximum(upper, clipping_norm)
            coefficient = client_scale * factor
            clipped = norm * factor
        rows = tf.reshape(tf.broadcast_to(-learning_rate * coefficient[:, None],
                                          [num_clients, width]), [-1, 1])
        if mode == "factors":  # one example per client: the update is (a, 1) (x) (row * d)
            return inputs, [rows * d for d in grads], norm, clipped
        total = []
        for a, d in zip(inputs, grads, strict=True):
            weighted = rows * d
            total += [tf.linalg.matmul(a, weighted, transpose_a=True),
                      tf.reduce_sum(weighted, axis=0)]
        return total, norm, clipped

    return one_step


def _build_eval_fn(program: tuple[Op, ...]) -> Callable[..., Any]:
    @tf.function(jit_compile=True, reduce_retracing=False)
    def evaluate(x, y, weights):
        logits = _forward(program, weights, x)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y)
        return tf.reduce_sum(tf.cast(ce, tf.float64)), tf.reduce_sum(tf.cast(correct, tf.int32))

    return evaluate


_EVAL_FNS: dict[tuple[Op, ...], Callable[..., Any]] = {}
_TRAIN_FNS: dict[tuple[tuple[Op, ...], str], Callable[..., Any]] = {}


def _train_fn(program: tuple[Op, ...], mode: str) -> Callable[..., Any]:
    """The compiled round for ``program``; ``mode`` ``"one_step_sum"`` / ``"one_step_clip"`` /
    ``"one_step_factors"`` selects :func:`_build_one_step_fn`."""
    key = (program, mode)
    if key not in _TRAIN_FNS:
        _TRAIN_FNS[key] = (_build_one_step_fn(program, mode.removeprefix("one_step_"))
                           if mode.startswith("one_step_") else _build_train_fn(program, mode))
    return _TRAIN_FNS[key]


def _bucket(count: int) -> int:
    """The smallest ``m * 2**j >= count`` with ``m`` in 4..7 (or ``count`` itself below 8).

    Rounds of varying size (Poisson sampling) share a few compiled shapes, each padded by less
    than a quarter.
    """
    if count < 8:
        return max(count, 1)
    shift = count.bit_length() - 3
    return -(-count >> shift) << shift


# --------------------------------------------------------------------------------------------
# The clients' data on the device, shared by the engines of consecutive runs
# --------------------------------------------------------------------------------------------

#: Federations whose data stays uploaded after their run: a widget retrains the same clients at
#: every slider move, and copying MNIST into a tensor took 0.04-0.8 s.
MAX_UPLOADS = 2

_UPLOADS: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray, tf.Tensor, tf.Tensor]] = {}


def _aligned_empty(shape: tuple[int, ...], dtype: Any, alignment: int = 64) -> np.ndarray:
    """An uninitialised array whose data starts on an ``alignment``-byte boundary.

    TensorFlow requires 64-byte aligned buffers to share a NumPy array's memory (DLPack).
    """
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _as_tensor(array: np.ndarray) -> tf.Tensor:
    """A tensor of ``array`` (aligned, C-contiguous), which becomes read-only.

    On a CPU the tensor shares the array's memory (no copy); with a GPU it is copied to the
    device once, as before.
    """
    if tf.config.list_logical_devices("GPU"):
        tensor = tf.constant(array)
    else:
        tensor = tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    array.flags.writeable = False
    return tensor


def _same_data(client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], x_host: np.ndarray,
               y_host: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether every client's data is bit for bit the rows of the uploaded arrays."""
    for (x, y), start in zip(client_datasets, offsets, strict=True):
        rows = slice(int(start), int(start) + len(y))
        x = np.asarray(x, np.float32).reshape(len(y), -1)
        if not (np.array_equal(x.view(np.uint32), x_host[rows].reshape(len(y), -1).view(np.uint32))
                and np.array_equal(y, y_host[rows])):
            return False
    return True


def _client_data(client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                 example_shape: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
    """``x_all`` ``[n, *example_shape]`` float32 and ``y_all`` ``[n]`` int32 on the device.

    The last :data:`MAX_UPLOADS` federations stay uploaded: a run whose clients hold the same
    sizes and, compared bit for bit, the same examples and labels (about 20 ms for MNIST) reuses
    their tensors, so a client array changed in place is uploaded afresh. On a CPU the tensors
    share the memory of private, read-only host arrays, so the data is held once. The clients'
    data thus stays in the process's memory after a run ends (no one else sees it);
    :func:`release_uploads` frees it.
    """
    sizes = tuple(len(y) for _, y in client_datasets)
    key = (example_shape, sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    cached = _UPLOADS.pop(key, None)
    if cached is not None and _same_data(client_datasets, cached[0], cached[1], offsets):
        _UPLOADS[key] = cached  # most recently used last
        return cached[2], cached[3]
    total = sum(sizes)
    x_host = _aligned_empty((total, *example_shape), np.float32)
    y_host = _aligned_empty((total,), np.int32)
    for (x, y), start in zip(client_datasets, offsets, strict=True):
        x_host[start:start + len(y)] = np.asarray(x, np.float32).reshape(len(y), *example_shape)
        y_host[start:start + len(y)] = y
    entry = (x_host, y_host, _as_tensor(x_host), _as_tensor(y_host))
    _UPLOADS[key] = entry
    while len(_UPLOADS) > MAX_UPLOADS:
        del _UPLOADS[next(iter(_UPLOADS))]
    return entry[2], entry[3]


def release_uploads() -> None:
    """Frees the clients' data kept uploaded between runs (it is uploaded again when needed)."""
    _UPLOADS.clear()


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class MultiClientEngine:
    """Trains the sampled clients of a round in one compiled graph (see :func:`layer_program`).

    Built once per run: it uploads every client's data and fixes the shapes. Then each round,
    :meth:`clipped_sum` returns ``sum_k a_k clip(delta_k, C)`` (what FedAvg and DP-FedAvg
    finalise) and :meth:`train` returns every client's update. Inputs are trusted: the training
    loop checked them once.

    Args:
        model: The model whose architecture is trained (its weights are not used); must satisfy
            :func:`supports`.
        client_datasets: One checked ``(x_k, y_k)`` pair per client (float32, integer labels).
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1, or ``None`` for full-batch steps.
        client_learning_rate: ``eta`` > 0.
        seed: The run's seed; client ``k`` of round ``t`` uses batches from rng ``[seed, t, k]``.
        group_size: Clients in lockstep per group; default :func:`default_group_size`.
            Any value gives the same results up to float32 rounding.
        max_clients_per_round: Expected largest number of clients in a round (sets the compiled
            capacity; a larger round recompiles once with double capacity).

    Raises:
        ValueError: The model is not supported (:func:`layer_program` is ``None``).
    """

    name = "fast"

    def __init__(self, model: keras.Model, client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                 *, local_epochs: int, batch_size: int | None, client_learning_rate: float,
                 seed: int, group_size: int | None = None,
                 max_clients_per_round: int | None = None) -> None:
        program = layer_program(model)
        if program is None:
            raise ValueError(
                f"model must be a Sequential of Flatten/Reshape/Dense/Conv2D/MaxPooling2D layers "
                f"ending in logits for the fast engine (see engine.layer_program), got "
                f"{model.name!r}. Use engine='loop' (or 'auto') instead."
            )
        self.program = program
        # Dense stacks keep their inputs flat (one gather of rows, the fastest layout).
        self.flat_input = _is_dense_stack(program)
        self.local_epochs = local_epochs
        self.batch_size = batch_size
        self.client_learning_rate = client_learning_rate
        self.seed = seed
        self.weight_shapes = [tuple(w.shape) for w in model.weights]
        num_parameters = int(sum(math.prod(shape) for shape in self.weight_shapes))
        self.group_size = (
            default_group_size(num_parameters, convolutional=not self.flat_input)
            if group_size is None else v.check_int("group_size", group_size, minimum=1))

        sizes = np.array([len(x) for x, _ in client_datasets], dtype=np.int64)
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        example_shape = tuple(np.shape(client_datasets[0][0])[1:])
        if self.flat_input:
            if math.prod(example_shape) != self.weight_shapes[0][0]:
                raise ValueError(f"client inputs flatten to {math.prod(example_shape)} features, "
                                 f"the model's first layer expects {self.weight_shapes[0][0]}.")
            example_shape = (self.weight_shapes[0][0],)
        elif example_shape != tuple(model.inputs[0].shape[1:]):
            raise ValueError(f"client inputs have shape {example_shape} per example, the model "
                             f"expects {tuple(model.inputs[0].shape[1:])}.")
        self.x_all, self.y_all = _client_data(client_datasets, example_shape)
        # Fixed per run: the batch width and the step count of the largest client.
        largest = int(sizes.max())
        self.batch_width = largest if batch_size is None else min(batch_size, largest)
        # client_batches cuts each epoch into ceil(n_k / B) batches (one when B is None).
        per_epoch = np.ones_like(sizes) if batch_size is None else -(-sizes // batch_size)
        self.client_steps = (self.local_epochs * per_epoch).astype(np.int64)
        self.max_steps = int(self.client_steps.max())
        # Every client takes one step from the global weights (E = 1 and n_k <= B, or B = inf,
        # i.e. FedSGD): its update is -eta times its gradient, and a Dense stack's round is one
        # batched forward and backward pass (_build_one_step_fn). The step's batch is all of the
        # client's examples whatever client_batches' order, so the results are the same.
        self.one_step = self.flat_input and self.max_steps == 1
        wanted = len(sizes) if max_clients_per_round is None else v.check_int(
            "max_clients_per_round", max_clients_per_round, minimum=1)
        # A power of two: padding groups cost nothing (the loop stops at the real count), and
        # runs whose rounds have similar sizes then share one compiled function.
        self.capacity = 1 << max(0, math.ceil(math.log2(-(-wanted // self.group_size))))
        self._positions: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- host side: index tensors from client_batches --------------------------------------

    def _layout(self, sampled: np.ndarray, round_index: int,
                max_steps: np.ndarray | None = None) -> tuple[Any, ...]:
        """Index, mask, step counts and group membership for the sampled clients of a round
        (each client's steps cut at ``max_steps``, per sampled client, if given)."""
        num_groups = -(-len(sampled) // self.group_size)
        while num_groups > self.capacity:
            self.capacity *= 2  # a new shape: XLA compiles once more
        shape = (self.capacity, self.group_size, self.max_steps, self.batch_width)
        idx = np.zeros(shape, dtype=np.int32)
        mask = np.zeros(shape, dtype=np.float32)
        # Longest clients first, so each group's clients need about the same number of steps.
        steps_of = self.client_steps[sampled]
        if max_steps is not None:
            steps_of = np.minimum(steps_of, max_steps)
        order = np.argsort(-steps_of, kind="stable")
        slot_of = np.empty(len(sampled), dtype=np.int64)
        slot_of[order] = np.arange(len(sampled))
        clients = sampled[order]
        rows, steps, slots, positions = [], [], [], []
        for position, k in enumerate(clients.tolist()):
            size = int(self.sizes[k])
            rows.append(self._batch_order(
                size, np.random.default_rng(schedule.client_seed(self.seed, round_index, k)))
                + self.offsets[k])
            client_steps, client_slots = self._step_and_slot(size)
            if max_steps is not None:
                keep = client_steps < steps_of[order[position]]
                rows[-1] = rows[-1][keep]
                client_steps, client_slots = client_steps[keep], client_slots[keep]
            steps.append(client_steps)
            slots.append(client_slots)
            positions.append(np.full(len(client_steps), position, dtype=np.int64))
        g, c = np.divmod(np.concatenate(positions), self.group_size)
        step, slot = np.concatenate(steps), np.concatenate(slots)
        idx[g, c, step, slot] = np.concatenate(rows)
        mask[g, c, step, slot] = 1.0
        group_steps = np.zeros(self.capacity, dtype=np.int32)
        np.maximum.at(group_steps, np.arange(len(clients)) // self.group_size,
                      steps_of[order].astype(np.int32))
        return idx, mask, group_steps, num_groups, slot_of

    def _batch_order(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """A client's examples in training order: ``client_batches``' batches, concatenated."""
        if self.local_epochs == 1:
            return rng.permutation(size)
        return np.concatenate([rng.permutation(size) for _ in range(self.local_epochs)])

    def _step_and_slot(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The local step and batch slot of each entry of :meth:`_batch_order` for a client of
        ``size`` examples: ``client_batches`` cuts every epoch into consecutive batches of
        ``min(B, size)`` (one when ``B`` is None). Cached per size."""
        cached = self._positions.get(size)
        if cached is None:
            width = size if self.batch_size is None else min(self.batch_size, size)
            per_epoch = -(-size // width)
            within = np.arange(size)
            epoch = np.repeat(np.arange(self.local_epochs), size)
            cached = (epoch * per_epoch + np.tile(within // width, self.local_epochs),
                      np.tile(within % width, self.local_epochs))
            self._positions[size] = cached
        return cached

    def _run_one_step(self, global_weights: Sequence[np.ndarray], sampled: np.ndarray,
                      client_scale: np.ndarray, clipping_norm: float | None, mode: str
                      ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """The round of :meth:`_run` when every client takes one step (``self.one_step``)."""
        rows = _bucket(len(sampled))
        slots = np.arange(self.batch_width)
        sizes = np.zeros(rows, dtype=np.int64)
        sizes[:len(sampled)] = self.sizes[sampled]
        starts = np.zeros(rows, dtype=np.int64)
        starts[:len(sampled)] = self.offsets[sampled]
        real = slots[None, :] < sizes[:, None]
        idx = np.where(real, starts[:, None] + slots[None, :], 0).astype(np.int32)
        scale = np.zeros(rows, dtype=np.float32)
        scale[:len(sampled)] = client_scale
        total, norms, clipped = _train_fn(self.program, f"one_step_{mode}")(
            self.x_all, self.y_all, tf.constant(idx), tf.constant(real.astype(np.float32)),
            tf.constant(scale), [tf.convert_to_tensor(w, tf.float32) for w in global_weights],
            tf.constant(self.client_learning_rate, tf.float32),
            tf.constant(np.inf if clipping_norm is None else clipping_norm, tf.float32))
        count = len(sampled)
        return ([t.numpy() for t in total], norms.numpy()[:count].astype(np.float64),
                clipped.numpy()[:count].astype(np.float64))

    def _run(self, global_weights: Sequence[np.ndarray], sampled: np.ndarray, round_index: int,
             client_scale: np.ndarray, clipping_norm: float | None, mode: str
             ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        sampled = np.asarray(sampled, dtype=np.int64)
        if self.one_step and mode != "collect":
            total, norms, clipped = self._run_one_step(global_weights, sampled, client_scale,
                                                       clipping_norm, mode)
            return total, norms, clipped, np.arange(len(sampled))
        idx, mask, group_steps, num_groups, slot_of = self._layout(sampled, round_index)
        scale = np.zeros(self.capacity * self.group_size, dtype=np.float32)
        scale[slot_of] = client_scale
        total, norms, clipped = _train_fn(self.program, mode)(
            self.x_all, self.y_all, tf.constant(idx), tf.constant(mask),
            tf.constant(group_steps), tf.constant(num_groups, tf.int32),
            tf.constant(scale.reshape(self.capacity, self.group_size)),
            [tf.convert_to_tensor(w, tf.float32) for w in global_weights],
            tf.constant(self.client_learning_rate, tf.float32),
            tf.constant(np.inf if clipping_norm is None else clipping_norm, tf.float32))
        return ([t.numpy() for t in total], norms.numpy().reshape(-1)[slot_of].astype(np.float64),
                clipped.numpy().reshape(-1)[slot_of].astype(np.float64), slot_of)

    @property
    def takes_factors(self) -> bool:
        """Whether :meth:`clipped_factors` applies: every client takes one step on one example."""
        return self.one_step and self.batch_width == 1

    def clipped_factors(self, global_weights: Sequence[np.ndarray], sampled_clients: np.ndarray,
                        *, clipping_norm: float
                        ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """Every sampled client's clipped update as rank-one factors, without forming it.

        With one example and one step, client ``k``'s update of each Dense layer is
        ``(a_k, 1) (x) w_k``: the layer's input and its scaled output gradient (``-eta``
        times the clipping factor times ``d loss / d z``). Exact noise rounds the factors
        (:func:`fl_helpers.discrete_noise.integer_outer_sum`).

        Returns:
            Per layer ``(a, w)``, ``(m, d_in)`` and ``(m, d_out)`` float32; and every client's
            update norm before clipping.
        """
        if not self.takes_factors:
            raise ValueError("clipped_factors needs clients of one example and one step "
                             f"(batch width {self.batch_width}, one step: {self.one_step}).")
        sampled = np.asarray(sampled_clients, dtype=np.int64)
        rows = _bucket(len(sampled))
        sizes = np.zeros(rows, dtype=np.int64)
        sizes[:len(sampled)] = self.sizes[sampled]
        starts = np.zeros(rows, dtype=np.int64)
        starts[:len(sampled)] = self.offsets[sampled]
        real = (sizes > 0)[:, None]
        idx = np.where(real, starts[:, None], 0).astype(np.int32)
        scale = np.zeros(rows, dtype=np.float32)
        scale[:len(sampled)] = 1.0
        inputs, weighted, norms, _ = _train_fn(self.program, "one_step_factors")(
            self.x_all, self.y_all, tf.constant(idx), tf.constant(real.astype(np.float32)),
            tf.constant(scale), [tf.convert_to_tensor(w, tf.float32) for w in global_weights],
            tf.constant(self.client_learning_rate, tf.float32),
            tf.constant(clipping_norm, tf.float32))
        count = len(sampled)
        layers = [(a.numpy()[:count], w.numpy()[:count]) for a, w in zip(inputs, weighted,
                                                                          strict=True)]
        return layers, norms.numpy()[:count].astype(np.float64)

    def clipped_sum(self, global_weights: Sequence[np.ndarray], sampled_clients: np.ndarray,
                    round_index: int, *, scales: np.ndarray,
                    clipping_norm: float | None) -> aggregation.SumResult:
        """``sum_k a_k clip(delta_k, C)`` over the sampled clients, in one compiled call.

        Args:
            global_weights: The round's starting weights.
            sampled_clients: Ids of the round's clients (any number, 0 included).
            round_index: ``t`` (fixes every client's batches).
            scales: ``a_k`` per sampled client.
            clipping_norm: ``C``, or ``None`` for no clipping.

        Returns:
            The sum and every client's update norm before and after clipping.
        """
        sampled = np.asarray(sampled_clients, dtype=np.int64)
        if sampled.size == 0:
            return aggregation.SumResult(
                total=[np.zeros(shape, np.float32) for shape in self.weight_shapes],
                update_norms=np.zeros(0), clipped_norms=np.zeros(0),
                num_examples=np.zeros(0, np.int64))
        mode = "sum" if clipping_norm is None else "clip"
        total, norms, clipped, _ = self._run(global_weights, sampled, round_index,
                                             np.asarray(scales, np.float32), clipping_norm, mode)
        return aggregation.SumResult(total=total, update_norms=norms, clipped_norms=clipped,
                                     num_examples=self.sizes[sampled].copy())

    def train(self, global_weights: Sequence[np.ndarray], sampled_clients: np.ndarray,
              round_index: int, work: client.LocalWork | None = None) -> client.ClientResults:
        """Every sampled client's update ``w_k - w``, in the order of ``sampled_clients``
        (under ``work`` if given: :meth:`train_work`)."""
        if work is not None and not work.is_plain:
            return self.train_work(global_weights, sampled_clients, round_index, work)
        sampled = np.asarray(sampled_clients, dtype=np.int64)
        if sampled.size == 0:
            return client.ClientResults(deltas=[], num_examples=np.zeros(0, np.int64))
        stacked, _, _, slot_of = self._run(global_weights, sampled, round_index,
                                           np.ones(sampled.size, np.float32), None, "collect")
        flat = [t.reshape(-1, *t.shape[2:]) for t in stacked]
        deltas = [[layer[slot] for layer in flat] for slot in slot_of]
        return client.ClientResults(deltas=deltas, num_examples=self.sizes[sampled].copy())

    def train_work(self, global_weights: Sequence[np.ndarray], sampled_clients: np.ndarray,
                   round_index: int, work: client.LocalWork) -> client.ClientResults:
        """Every sampled client's update ``w_k - w_t`` under ``work`` (FedProx, SCAFFOLD,
        Ditto's personal step, stragglers), in the order of ``sampled_clients``: what
        :meth:`fl_helpers.client.LoopTrainer.train` computes with the same ``work``, in one
        compiled call."""
        sampled = np.asarray(sampled_clients, dtype=np.int64)
        if sampled.size == 0:
            return client.ClientResults(deltas=[], num_examples=np.zeros(0, np.int64))
        max_steps = None if work.max_steps is None else np.asarray(work.max_steps, np.int64)
        idx, mask, group_steps, num_groups, slot_of = self._layout(sampled, round_index,
                                                                   max_steps)
        slots = self.capacity * self.group_size
        weights = [np.asarray(w, np.float32) for w in global_weights]

        def stacked(per_client: list[list[np.ndarray]] | None, fill: bool) -> list[tf.Tensor]:
            out = []
            for layer, w in enumerate(weights):
                array = (np.broadcast_to(w, (slots, *w.shape)) if fill
                         else np.zeros((slots, *w.shape), np.float32)).copy()
                if per_client is not None:
                    array[slot_of] = np.stack([np.asarray(c[layer], np.float32)
                                               for c in per_client])
                out.append(tf.constant(array.reshape(self.capacity, self.group_size,
                                                     *w.shape)))
            return out

        if self.program not in _WORK_FNS:
            _WORK_FNS[self.program] = _build_work_fn(self.program)
        total = _WORK_FNS[self.program](
            self.x_all, self.y_all, tf.constant(idx), tf.constant(mask),
            tf.constant(group_steps), tf.constant(num_groups, tf.int32),
            [tf.constant(w) for w in weights], stacked(work.starts, True),
            stacked(work.corrections, False), tf.constant(self.client_learning_rate, tf.float32),
            tf.constant(work.proximal_mu, tf.float32))
        flat = [t.numpy().reshape(-1, *t.shape[2:]) for t in total]
        deltas = [[layer[slot] for layer in flat] for slot in slot_of]
        return client.ClientResults(deltas=deltas, num_examples=self.sizes[sampled].copy())

    def evaluator(self, x: np.ndarray, y: np.ndarray) -> FastEvaluator:
        """An evaluator of weights on ``(x, y)`` (checked data), with the data on the device."""
        return FastEvaluator(self.program, x, y)


class FastEvaluator:
    """Mean cross-entropy and accuracy of a model's weights on one dataset, compiled.

    Computes what :func:`fl_helpers.client.evaluate` computes, with the data put on the device
    once. Dense stacks are evaluated in one call; convolutional models in chunks of
    :data:`EVAL_CHUNK` examples (their feature maps for 10,000 images would take gigabytes).

    Args:
        program: The model as steps (:func:`layer_program`).
        x, y: Checked data (float32 inputs of the model's input shape, integer labels).
    """

    def __init__(self, program: tuple[Op, ...], x: np.ndarray, y: np.ndarray) -> None:
        self.program = program
        x = np.asarray(x, dtype=np.float32)
        flat = _is_dense_stack(program)
        self.x = tf.constant(x.reshape(len(x), -1) if flat else x)
        self.y = tf.constant(np.asarray(y).astype(np.int32))
        self.chunk = len(x) if flat else EVAL_CHUNK
        if program not in _EVAL_FNS:
            _EVAL_FNS[program] = _build_eval_fn(program)

    def __call__(self, weights: Sequence[np.ndarray]) -> tuple[float, float]:
        tensors = [tf.convert_to_tensor(w, tf.float32) for w in weights]
        count = int(self.x.shape[0])
        loss, correct = 0.0, 0
        for start in range(0, count, self.chunk):
            part_loss, part_correct = _EVAL_FNS[self.program](
                self.x[start:start + self.chunk], self.y[start:start + self.chunk], tensors)
            loss, correct = loss + float(part_loss), correct + int(part_correct)
        return loss / count, correct / count


#: Examples per evaluation call for convolutional models.
EVAL_CHUNK = 1000


def _is_dense_stack(program: tuple[Op, ...]) -> bool:
    return all(op[0] in ("flatten", "dense") for op in program)


def flops_per_example(weight_shapes: Sequence[tuple[int, ...]]) -> int:
    """Nominal training FLOPs of one example through a Dense stack: ``6 * num_parameters``.

    2 per weight for the forward pass, 2 for the weight gradient and 2 for the gradient with
    respect to the layer's input (the convention of Kaplan et al. 2020, "Scaling Laws for Neural
    Language Models", Section 2.1). It over-counts the first layer's input gradient, which is
    never needed, so achieved rates computed with it are slightly optimistic.
    """
    return 6 * int(sum(math.prod(shape) for shape in weight_shapes))
