"""Attacks on federated learning, and the bounds differential privacy puts on them.

Two families, measured the way the papers measure them:

* **Gradient inversion** -- reconstruct a client's training images from the update it sends.
  :func:`invert_dense_layer` is the analytic attack on a fully connected first layer (Phong et al.
  2017, "Privacy-Preserving Deep Learning via Additively Homomorphic Encryption", Section 3;
  Geiping et al. 2020, "Inverting Gradients", Section 4): for one example the weight gradient of
  unit ``j`` is the input times the bias gradient of unit ``j``, so their ratio *is* the input.
  :func:`dlg_attack` is the optimisation attack (Zhu et al. 2019, "Deep Leakage from Gradients",
  Algorithm 1) with the label trick of Zhao et al. 2020 ("iDLG", Section 3,
  :func:`idlg_labels`) and the scale-free cosine distance of Geiping et al. 2020 (Section 3), so
  it works on clipped updates too. Quality is measured with :func:`ssim` (``tf.image.ssim``) and
  :func:`psnr`.
* **Membership inference** -- was this example (or this client) in the training data?
  :func:`loss_threshold_scores` (Yeom et al. 2018, "Privacy Risk in Machine Learning", Section 3.2)
  and the offline likelihood-ratio attack :func:`lira_offline_scores` (Carlini et al. 2022,
  "Membership Inference Attacks From First Principles", Section 4 and the offline variant of
  Section 6.2). :func:`roc_curve`, :func:`auc` and :func:`tpr_at_fpr` report them as LiRA
  recommends: the whole ROC on log axes and the true-positive rate at a low false-positive rate.

And the other side of the ledger: any membership test against an ``(epsilon, delta)``-DP mechanism
has ``TPR <= e^epsilon FPR + delta`` and ``1 - FPR <= ... `` symmetrically
(:func:`dp_tpr_bound`; Kairouz, Oh, Viswanath 2015, Theorem 2.1), and the exact trade-off
curve of DP-FedAvg's subsampled Gaussian mechanism, computed from dp-accounting's privacy loss
distribution, is tighter still (:func:`tradeoff_tpr_bound`; Dong, Roth, Su 2019, "Gaussian
Differential Privacy", Proposition 2.12: a mechanism is f-DP for the envelope of all its
``(epsilon, delta(epsilon))`` pairs).

Everything here is an *attack*: it is run by the adversary on what the adversary sees (one
client's update, the released model). Measurements that need the ground truth (matching a
reconstruction to its original) say so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special
import tensorflow as tf
from dp_accounting.pld import privacy_loss_distribution as pld_lib

from fl_helpers import _validation as v
from fl_helpers import accounting, audit, engine, models, privacy

#: Side of an MNIST image.
IMAGE_SIDE = 28

# --------------------------------------------------------------------------------------------
# Models as plain functions of their weights (Dense stacks)
# --------------------------------------------------------------------------------------------


def _check_layers(name: str, layers: Any) -> list[np.ndarray]:
    """A non-empty list of finite float arrays (one per layer), as float64."""
    if isinstance(layers, (str, bytes, np.ndarray)) or not isinstance(layers, Sequence) \
            or not layers:
        raise TypeError(f"{name} must be a non-empty list of arrays (one per layer), got "
                        f"{type(layers).__name__} {v._fmt(layers)}.")
    return [v.check_float_array(f"{name}[{i}]", layer) for i, layer in enumerate(layers)]


def _check_labels(labels: Any, *, num_classes: int, size: int, name: str = "labels",
                  per: str = "") -> np.ndarray:
    """``size`` integer class labels in ``0..num_classes - 1`` (one per row of ``per``)."""
    if labels is None or isinstance(labels, (str, bytes)):
        raise TypeError(f"{name} must be an array of integer labels, got "
                        f"{type(labels).__name__} {v._fmt(labels)}.")
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of integer labels, got a ragged "
                        f"{type(labels).__name__}.") from error
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer labels, got dtype {array.dtype}.")
    if array.shape != (size,):
        of = f", one per example of {per}" if per else ""
        raise ValueError(f"{name} must hold {size} labels{of} (a 1-D array), got shape "
                         f"{array.shape}.")
    if size and (array.min() < 0 or array.max() >= num_classes):
        of = f" (the columns of {per})" if per else ""
        raise ValueError(f"{name} must hold classes in 0..{num_classes - 1}{of}, got values "
                         f"from {array.min()} to {array.max()}.")
    return array.astype(np.int64)


def _check_mask(name: str, value: Any) -> np.ndarray:
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a boolean array, got {type(value).__name__} "
                        f"{v._fmt(value)}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a boolean array, got a ragged "
                        f"{type(value).__name__}.") from error
    if array.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array, got dtype {array.dtype}.")
    return array


def _check_rates(name: str, value: Any, *, ndim: int | None = None) -> np.ndarray:
    rates = v.check_float_array(name, value, ndim=ndim)
    if rates.min() < 0 or rates.max() > 1:
        raise ValueError(f"{name} must hold rates in [0, 1], got values from {rates.min()} to "
                         f"{rates.max()}.")
    return rates


def _check_roc(fpr: Any, tpr: Any) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr = _check_rates("fpr", fpr, ndim=1), _check_rates("tpr", tpr, ndim=1)
    if fpr.shape != tpr.shape:
        raise ValueError(f"fpr and tpr must have the same length, got {fpr.size} and "
                         f"{tpr.size}.")
    return fpr, tpr


def model_activations(model: Any) -> tuple[str, ...]:
    """The activations of a Dense-stack model (softmax regression, the 2NN), checked.

    Raises:
        ValueError: ``model`` is not a plain Dense stack.
    """
    activations = engine.dense_activations(model)
    if activations is None:
        raise ValueError(f"model must be a plain Dense stack (Flatten + Dense layers), got "
                         f"{getattr(model, 'name', type(model).__name__)!r}.")
    return activations


def _check_activations(activations: Any) -> tuple[str, ...]:
    if isinstance(activations, (str, bytes)) or not isinstance(activations, Sequence) \
            or not activations or not all(isinstance(a, str) for a in activations):
        raise TypeError(f"activations must be a non-empty tuple of activation names, got "
                        f"{type(activations).__name__} {v._fmt(activations)}.")
    unknown = [a for a in activations if a not in engine.ACTIVATIONS]
    if unknown:
        raise ValueError(f"activations must be names from {sorted(engine.ACTIVATIONS)}, got "
                         f"{unknown[0]!r}.")
    return tuple(activations)


def _check_dense(weights: Any, activations: Any, name: str = "weights"
                 ) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """``weights`` as float arrays ``[kernel_0, bias_0, ...]`` chaining through the layers."""
    activations = _check_activations(activations)
    if isinstance(weights, (str, bytes, np.ndarray)) or not isinstance(weights, Sequence):
        raise TypeError(f"{name} must be a list of arrays [kernel_0, bias_0, ...], got "
                        f"{type(weights).__name__} {v._fmt(weights)}.")
    if len(weights) != 2 * len(activations):
        raise ValueError(f"{name} must hold {2 * len(activations)} arrays (a kernel and a bias "
                         f"for each of the {len(activations)} activations), got {len(weights)}.")
    arrays = [v.check_float_array(f"{name}[{i}]", w, ndim=1 if i % 2 else 2)
              for i, w in enumerate(weights)]
    for i in range(0, len(arrays), 2):
        kernel, bias = arrays[i], arrays[i + 1]
        if kernel.shape[1] != bias.shape[0] or (i and kernel.shape[0] != arrays[i - 2].shape[1]):
            raise ValueError(f"{name} must be the layers of a Dense stack, got kernel "
                             f"{kernel.shape} and bias {bias.shape} at {name}[{i}].")
    return arrays, activations


def _inputs(x: Any, kernel: np.ndarray, name: str = "x") -> np.ndarray:
    flat = _flat_images(x, name)
    if flat.shape[1] != kernel.shape[0]:
        raise ValueError(f"{name} must have {kernel.shape[0]} values per example (the first "
                         f"kernel's rows), got shape {np.shape(x)}.")
    return flat


def forward(weights: Sequence[Any], x: Any, activations: tuple[str, ...]) -> tf.Tensor:
    """Logits of a Dense stack, ``weights = [kernel_0, bias_0, kernel_1, ...]``, on flat ``x``.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    arrays, activations = _check_dense(weights, activations)
    xs = v.check_float_array("x", x, ndim=2)
    if xs.shape[1] != arrays[0].shape[0]:
        raise ValueError(f"x must have {arrays[0].shape[0]} columns (the first kernel's rows), "
                         f"got shape {xs.shape}.")
    return _forward([tf.constant(w, tf.float32) for w in arrays],
                    tf.constant(xs, tf.float32), activations)


def _forward(weights: Sequence[Any], x: tf.Tensor, activations: tuple[str, ...]) -> tf.Tensor:
    """:func:`forward` without the checks, on tensors (also inside ``tf.function``)."""
    logits, _ = models._dense_stack(weights, x, [engine.ACTIVATIONS[name] for name in activations])
    return logits


def _flat_images(x: Any, name: str = "x") -> np.ndarray:
    arr = v.check_float_array(name, x).astype(np.float32)
    if arr.shape in ((IMAGE_SIDE, IMAGE_SIDE), (IMAGE_SIDE * IMAGE_SIDE,)):
        arr = arr[None]  # one image
    if arr.ndim < 2 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a non-empty finite batch of images, got shape "
                         f"{arr.shape}.")
    return arr.reshape(len(arr), -1)


def gradient(weights: Sequence[np.ndarray], activations: tuple[str, ...], x: Any,
             y: Any) -> list[np.ndarray]:
    """The gradient of the mean cross-entropy of ``(x, y)`` at ``weights`` (what FedSGD sends).

    A FedSGD client with learning rate ``eta`` sends the update ``-eta * gradient``.
    """
    arrays, activations = _check_dense(weights, activations)
    flat = _inputs(x, arrays[0])
    labels = _check_labels(y, num_classes=arrays[-1].shape[0], size=len(flat), name="y",
                           per="x")
    xf = tf.constant(flat)
    yt = tf.constant(labels.astype(np.int32))
    ws = [tf.constant(w, tf.float32) for w in arrays]
    with tf.GradientTape() as tape:
        tape.watch(ws)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            yt, _forward(ws, xf, activations)))
    return [g.numpy() for g in tape.gradient(loss, ws)]


# --------------------------------------------------------------------------------------------
# Reconstruction quality
# --------------------------------------------------------------------------------------------


def _images(x: Any, name: str) -> np.ndarray:
    flat = _flat_images(x, name)
    if flat.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
        raise ValueError(f"{name} must be {IMAGE_SIDE}x{IMAGE_SIDE} images (or flattened ones), "
                         f"got shape {np.shape(x)}.")
    return flat.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def ssim(reconstructed: Any, original: Any) -> np.ndarray:
    """Structural similarity of each reconstruction with its original (``tf.image.ssim``).

    Images are clipped to [0, 1] (the attacker knows the pixel range) and compared with
    ``max_val=1`` and TensorFlow's default 11x11 Gaussian window (Wang et al. 2004, "Image
    Quality Assessment: From Error Visibility to Structural Similarity", Eq. 13). 1 means
    identical; below about 0.3 an MNIST digit is no longer recognisable by eye.

    Returns:
        One float per image pair.
    """
    a = np.clip(_images(reconstructed, "reconstructed"), 0, 1)[..., None]
    b = np.clip(_images(original, "original"), 0, 1)[..., None]
    if a.shape != b.shape:
        raise ValueError(f"reconstructed and original must have the same shape, got "
                         f"{a.shape[:-1]} and {b.shape[:-1]}.")
    return tf.image.ssim(tf.constant(a), tf.constant(b), max_val=1.0).numpy().astype(np.float64)


def psnr(reconstructed: Any, original: Any) -> np.ndarray:
    """Peak signal-to-noise ratio in dB, ``10 log10(1 / MSE)``, images clipped to [0, 1].

    ``inf`` for an exact reconstruction.
    """
    a = np.clip(_images(reconstructed, "reconstructed"), 0, 1).astype(np.float64)
    b = np.clip(_images(original, "original"), 0, 1).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"reconstructed and original must have the same shape, got "
                         f"{a.shape} and {b.shape}.")
    mse = np.mean((a - b) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore"):
        return np.where(mse == 0, np.inf, -10 * np.log10(mse))


def match_to_originals(candidates: Any, originals: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pair each original with a distinct candidate so that the total SSIM is largest.

    A *measurement* tool (it needs the originals, which the attacker does not have): it answers
    "which of the batch's images came out, and how well", as Geiping et al. 2020 do in Section 6.
    Solved exactly with the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``).

    Returns:
        ``(index, ssim)``: for each original, the index of its candidate and their SSIM.
    """
    cands = np.clip(_images(candidates, "candidates"), 0, 1)
    origs = np.clip(_images(originals, "originals"), 0, 1)
    if len(cands) < len(origs):
        raise ValueError(f"candidates must hold at least as many images as originals "
                         f"({len(origs)}), got {len(cands)}.")
    pairs_a = np.repeat(cands, len(origs), axis=0)
    pairs_b = np.tile(origs, (len(cands), 1, 1))
    scores = ssim(pairs_a, pairs_b).reshape(len(cands), len(origs))
    rows, cols = scipy.optimize.linear_sum_assignment(-scores)
    index = np.empty(len(origs), dtype=np.int64)
    index[cols] = rows
    return index, scores[index, np.arange(len(origs))]


# --------------------------------------------------------------------------------------------
# Analytic inversion of a fully connected layer
# --------------------------------------------------------------------------------------------


def _check_layer(kernel_update: Any, bias_update: Any) -> tuple[np.ndarray, np.ndarray]:
    kernel = v.check_float_array("kernel_update", kernel_update, ndim=2)
    bias = v.check_float_array("bias_update", bias_update, ndim=1)
    if kernel.shape[1] != bias.shape[0]:
        raise ValueError(f"kernel_update must be (inputs, units) and bias_update (units,), got "
                         f"{kernel.shape} and {bias.shape}.")
    return kernel, bias


def invert_dense_layer(kernel_update: Any, bias_update: Any, *,
                       relative_threshold: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """The input of a dense layer from its weight and bias updates, one candidate per unit.

    For ``h = x W + b`` and one example, ``dL/dW[:, j] = x * dL/db[j]``, so
    ``x = dW[:, j] / db[j]`` for every unit ``j`` whose bias gradient is not zero -- exactly
    (Phong et al. 2017, Section 3; Geiping et al. 2020, Section 4, Proposition 4.1). The same
    holds for an update ``-eta * gradient`` and for a clipped update (a common scale cancels).
    For a batch, ``dW[:, j] / db[j] = sum_n g_nj x_n / sum_n g_nj`` is a weighted mixture of the
    batch's images; a ReLU unit that fires for one image only gives that image exactly.

    Args:
        kernel_update: ``(inputs, units)`` update (or gradient) of the layer's kernel.
        bias_update: ``(units,)`` update (or gradient) of its bias.
        relative_threshold: Units with ``|db[j]| <= relative_threshold * max |db|`` are skipped
            (their ratio is 0/0 up to rounding).

    Returns:
        ``(candidates, units)``: ``(num_candidates, inputs)`` reconstructions, largest ``|db|``
        first, and the unit of each.
    """
    kernel, bias = _check_layer(kernel_update, bias_update)
    relative_threshold = v.check_non_negative("relative_threshold", relative_threshold)
    scale = np.abs(bias).max()
    if scale == 0:
        raise ValueError("bias_update must not be all zeros: no unit carries the input.")
    units = np.flatnonzero(np.abs(bias) > relative_threshold * scale)
    units = units[np.argsort(-np.abs(bias[units]), kind="stable")]
    return (kernel[:, units] / bias[units]).T, units


def invert_dense_least_squares(kernel_update: Any, bias_update: Any) -> np.ndarray:
    """One input from all units at once: ``x = sum_j db_j dW[:, j] / sum_j db_j^2``.

    The least-squares fit of ``dW[:, j] ~ x db_j`` over every unit. Exact for one example, like
    :func:`invert_dense_layer`; with Gaussian noise on the update it averages the noise over all
    units, which makes it the stronger attack on a noised update of one example.
    """
    kernel, bias = _check_layer(kernel_update, bias_update)
    energy = float(np.dot(bias, bias))
    if energy == 0:
        raise ValueError("bias_update must not be all zeros: no unit carries the input.")
    return kernel @ bias / energy


def clip_and_noise(update: Sequence[np.ndarray], *, clipping_norm: float,
                   noise_multiplier: float, rng: np.random.Generator) -> list[np.ndarray]:
    """What an observer of one client's DP update sees: clipped to ``C``, plus ``N(0, (zC)^2)``.

    Clipping is over all layers at once, as in DP-FedAvg. The noise comes from ``rng``: this is
    the attack's *simulation* of the mechanism (a reproducible experiment), not the library's
    private path.
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
    rng = v.check_rng("rng", rng)
    layers = _check_layers("update", update)
    clipped, _ = privacy.clip_by_l2_norm(layers, clipping_norm)  # the course's one clip
    std = noise_multiplier * clipping_norm
    return [u + std * rng.standard_normal(u.shape) for u in clipped]


# --------------------------------------------------------------------------------------------
# Optimisation-based inversion: DLG with the iDLG labels
# --------------------------------------------------------------------------------------------


def idlg_labels(last_bias_gradient: Any, batch_size: int) -> np.ndarray:
    """The labels of a batch from the gradient of the last layer's bias (iDLG).

    With softmax cross-entropy the bias gradient is ``mean_n (p_n - onehot(y_n))``: the entries
    of the batch's labels are the negative ones (Zhao et al. 2020, Section 3, for one example;
    for a batch of distinct labels the ``batch_size`` most negative entries). Pass the gradient,
    i.e. ``-update`` for an update (any positive scale, e.g. clipping, is fine).

    Returns:
        ``batch_size`` labels, most negative entry first.
    """
    grad = v.check_float_array("last_bias_gradient", last_bias_gradient, ndim=1)
    batch_size = v.check_int("batch_size", batch_size, minimum=1, maximum=grad.size)
    return np.argsort(grad, kind="stable")[:batch_size].astype(np.int64)


_DLG_STEPS: dict[tuple, Any] = {}


def _dlg_step_fn(activations: tuple[str, ...]) -> Any:
    if activations in _DLG_STEPS:
        return _DLG_STEPS[activations]

    @tf.function
    def step(params, labels, weights, target, optimizer_vars, step_size, tv_weight, t):
        m, s = optimizer_vars
        with tf.GradientTape() as outer:
            outer.watch(params)
            x = tf.sigmoid(params)
            with tf.GradientTape() as inner:
                inner.watch(weights)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels, _forward(weights, x, activations)))
            grads = inner.gradient(loss, weights)
            flat = tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
            cosine = tf.reduce_sum(flat * target) / (tf.norm(flat) * tf.norm(target) + 1e-12)
            images = tf.reshape(x, [-1, IMAGE_SIDE, IMAGE_SIDE, 1])
            tv = tf.reduce_mean(tf.image.total_variation(images)) / IMAGE_SIDE ** 2
            objective = 1.0 - cosine + tv_weight * tv
        g = outer.gradient(objective, params)
        # Adam (Kingma & Ba 2015, Algorithm 1), written out so the whole step is one graph.
        m.assign(0.9 * m + 0.1 * g)
        s.assign(0.999 * s + 0.001 * g * g)
        m_hat = m / (1 - 0.9 ** t)
        s_hat = s / (1 - 0.999 ** t)
        params.assign_sub(step_size * m_hat / (tf.sqrt(s_hat) + 1e-8))
        return objective

    _DLG_STEPS[activations] = step
    return step


def dlg_attack(weights: Sequence[np.ndarray], activations: tuple[str, ...],
               observed_update: Sequence[np.ndarray], *, batch_size: int,
               labels: Any = None, num_steps: int = 300, step_size: float = 0.1,
               tv_weight: float = 1e-2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruct a batch of images whose gradient points where the observed update points.

    DLG (Zhu et al. 2019, Algorithm 1): start from random dummy images and labels, and move the
    images so that the gradient they would produce at ``weights`` matches the observed one.
    Here the labels come from :func:`idlg_labels` (Zhao et al. 2020), the distance is one minus
    the cosine similarity over all parameters (Geiping et al. 2020, Eq. 4: scale-free, so a
    clipped update works as well as a raw one), with a small total-variation prior, and the
    pixels are ``sigmoid(params)`` so they stay in [0, 1]. Adam with ``step_size``.

    Args:
        weights: The global weights the client started from (the server knows them).
        activations: The model's activations (:func:`model_activations`).
        observed_update: The client's update ``w_k - w`` (its direction is ``-gradient``).
        batch_size: How many images to reconstruct.
        labels: The batch's labels, or ``None`` to infer them with :func:`idlg_labels`.
        num_steps: Optimisation steps (a few hundred).
        step_size: Adam's learning rate.
        tv_weight: Weight of the total-variation prior (0 for plain DLG's objective).
        seed: Fixes the dummy images' start.

    Returns:
        ``(images, labels)``: ``(batch_size, 28, 28)`` reconstructions in [0, 1] and the labels
        used.
    """
    batch_size = v.check_int("batch_size", batch_size, minimum=1, maximum=10_000)
    num_steps = v.check_int("num_steps", num_steps, minimum=1, maximum=100_000)
    step_size = v.check_positive("step_size", step_size)
    tv_weight = v.check_non_negative("tv_weight", tv_weight)
    seed = v.check_int("seed", seed, minimum=0)
    weights, activations = _check_dense(weights, activations)
    update = [u.astype(np.float32) for u in _check_layers("observed_update", observed_update)]
    if len(update) != len(weights) or any(u.shape != w.shape
                                          for u, w in zip(update, weights, strict=True)):
        raise ValueError("observed_update must have the shapes of weights, layer by layer.")
    if labels is None:
        labels = idlg_labels(-update[-1], batch_size)
    labels = _check_labels(labels, num_classes=weights[-1].shape[0], size=batch_size)
    labels = labels.astype(np.int32)
    target = tf.constant(-np.concatenate([u.ravel() for u in update]))
    rng = np.random.default_rng(seed)
    params = tf.Variable(rng.normal(0, 0.5, (batch_size, weights[0].shape[0])).astype(np.float32))
    moments = (tf.Variable(tf.zeros_like(params)), tf.Variable(tf.zeros_like(params)))
    ws = [tf.constant(w, tf.float32) for w in weights]
    step = _dlg_step_fn(tuple(activations))
    for t in range(1, num_steps + 1):
        step(params, tf.constant(labels), ws, target, moments, tf.constant(step_size, tf.float32),
             tf.constant(tv_weight, tf.float32), tf.constant(float(t)))
    images = tf.sigmoid(params).numpy().reshape(batch_size, IMAGE_SIDE, IMAGE_SIDE)
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Membership inference
# --------------------------------------------------------------------------------------------


def per_example_logits(weights: Sequence[np.ndarray], activations: tuple[str, ...],
                       x: Any) -> np.ndarray:
    """The model's logits on every example (float64, ``(n, classes)``)."""
    arrays, activations = _check_dense(weights, activations)
    xf = tf.constant(_inputs(x, arrays[0]))
    ws = [tf.constant(w, tf.float32) for w in arrays]
    return _forward(ws, xf, activations).numpy().astype(np.float64)


def per_example_losses(logits: Any, labels: Any) -> np.ndarray:
    """Cross-entropy of every example, ``logsumexp(z) - z_y``, from its logits."""
    z = v.check_float_array("logits", logits, ndim=2)
    y = _check_labels(labels, num_classes=z.shape[1], size=len(z), per="logits")
    return scipy.special.logsumexp(z, axis=1) - z[np.arange(len(y)), y]


def loss_threshold_scores(losses: Any) -> np.ndarray:
    """Yeom et al. 2018's attack (Section 3.2): a low loss says "member"; the score is ``-loss``."""
    return -v.check_float_array("losses", losses)


def logit_confidence(logits: Any, labels: Any) -> np.ndarray:
    """LiRA's statistic ``log(p_y / (1 - p_y))``, computed stably as ``z_y - logsumexp(z_{!=y})``.

    Carlini et al. 2022, Section 4.3: the logit of the true-class probability is close to
    Gaussian across models, unlike the probability itself.
    """
    z = v.check_float_array("logits", logits, ndim=2)
    y = _check_labels(labels, num_classes=z.shape[1], size=len(z), per="logits")
    rows = np.arange(len(y))
    others = z.copy()
    others[rows, y] = -np.inf
    return z[rows, y] - scipy.special.logsumexp(others, axis=1)


def lira_offline_scores(target_confidence: Any, shadow_confidence: Any,
                        shadow_members: Any, *, min_std: float = 1e-3) -> np.ndarray:
    """Offline LiRA: how far above the "out" distribution each example's confidence is.

    For every example, fit a Gaussian ``N(mu_out, sigma_out^2)`` to its confidence in the shadow
    models that did *not* train on it, and score the target model's confidence by its
    z-score ``(phi - mu_out) / sigma_out`` (Carlini et al. 2022, Section 6.2, the one-sided
    offline test; the score orders examples exactly as its Gaussian tail probability does).

    Args:
        target_confidence: ``(n,)`` :func:`logit_confidence` of the target model.
        shadow_confidence: ``(num_shadows, n)`` the same for every shadow model.
        shadow_members: ``(num_shadows, n)`` booleans, ``True`` where the shadow trained on it.
        min_std: Floor on ``sigma_out`` (an example with identical confidences everywhere).

    Returns:
        ``(n,)`` scores: larger means "member".

    Raises:
        ValueError: shapes disagree, or an example has fewer than two "out" shadows.
    """
    target = v.check_float_array("target_confidence", target_confidence, ndim=1)
    shadows = v.check_float_array("shadow_confidence", shadow_confidence, ndim=2)
    members = _check_mask("shadow_members", shadow_members)
    if shadows.ndim != 2 or shadows.shape[1] != target.size or members.shape != shadows.shape:
        raise ValueError(f"shadow_confidence and shadow_members must be (num_shadows, "
                         f"{target.size}), got {shadows.shape} and {members.shape}.")
    min_std = v.check_positive("min_std", min_std)
    out = ~members
    count = out.sum(axis=0)
    if count.min() < 2:
        raise ValueError(f"shadow_members must leave every example >= 2 shadow models that "
                         f"did not train on it, got "
                         f"{int(count.min())} for example {int(count.argmin())}.")
    mean = np.where(out, shadows, 0).sum(axis=0) / count
    var = np.where(out, (shadows - mean) ** 2, 0).sum(axis=0) / (count - 1)
    return (target - mean) / np.maximum(np.sqrt(var), min_std)


def roc_curve(member_scores: Any, nonmember_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """The ROC of the test "score >= threshold means member", over every threshold.

    Returns:
        ``(fpr, tpr)`` from ``(0, 0)`` to ``(1, 1)``, non-decreasing; ties between a member and
        a non-member score move both rates in one step.
    """
    pos = v.check_float_array("member_scores", member_scores).reshape(-1)
    neg = v.check_float_array("nonmember_scores", nonmember_scores).reshape(-1)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    tp = pos.size - np.searchsorted(pos_sorted, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg_sorted, thresholds, side="left")
    fpr = np.concatenate([[0.0], fp / neg.size])
    tpr = np.concatenate([[0.0], tp / pos.size])
    return fpr, tpr


def auc(fpr: Any, tpr: Any) -> float:
    """Area under a ROC curve (trapezoids; 0.5 is guessing)."""
    fpr, tpr = _check_roc(fpr, tpr)
    if np.any(np.diff(fpr) < 0):
        raise ValueError("fpr must be non-decreasing (a ROC curve as roc_curve returns it).")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tpr_at_fpr(fpr: Any, tpr: Any, target_fpr: float) -> float:
    """The largest true-positive rate among the thresholds with ``FPR <= target_fpr``."""
    target_fpr = v.check_probability("target_fpr", target_fpr)
    fpr, tpr = _check_roc(fpr, tpr)
    if not np.any(fpr <= target_fpr):
        raise ValueError(f"fpr must reach target_fpr={target_fpr} (a ROC curve starts at 0), "
                         f"got a smallest fpr of {fpr.min()}.")
    return float(tpr[fpr <= target_fpr].max())


# --------------------------------------------------------------------------------------------
# What DP promises about every membership test
# --------------------------------------------------------------------------------------------


def dp_tpr_bound(fpr: Any, *, epsilon: float, delta: float) -> np.ndarray:
    """The largest TPR any test can reach at ``fpr`` against an ``(epsilon, delta)``-DP mechanism.

    ``TPR <= min(e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR))``, the two sides of the
    hypothesis-testing view of DP (Kairouz, Oh, Viswanath 2015, "The Composition Theorem for
    Differential Privacy", Theorem 2.1; Wasserman & Zhou 2010), capped at 1.
    """
    epsilon = v.check_non_negative("epsilon", epsilon)
    delta = v.check_in_range("delta", delta, 0, 1, high_open=True)
    fpr = _check_rates("fpr", fpr)
    first = math.exp(epsilon) * fpr + delta
    second = 1 - math.exp(-epsilon) * (1 - delta - fpr)
    return np.clip(np.minimum(first, second), 0, 1)


@functools.lru_cache(maxsize=64)
def _delta_table(noise_multiplier: float, sampling_probability: float, num_rounds: int,
                 grid: tuple[float, ...], value_discretization_interval: float) -> np.ndarray:
    """``delta(epsilon)`` on ``grid`` from the composed PLD (cached for a plot and its check)."""
    pld = pld_lib.from_gaussian_mechanism(
        standard_deviation=noise_multiplier, sampling_prob=sampling_probability,
        value_discretization_interval=value_discretization_interval).self_compose(num_rounds)
    deltas = np.asarray(pld.get_delta_for_epsilon(list(grid)), dtype=np.float64)
    deltas.setflags(write=False)
    return deltas


def tradeoff_tpr_bound(fpr: Any, *, noise_multiplier: float, sampling_probability: float,
                       num_rounds: int, epsilons: Any = None,
                       value_discretization_interval: float = 1e-3) -> np.ndarray:
    """The tight TPR bound of ``num_rounds`` rounds of the subsampled Gaussian mechanism.

    Builds dp-accounting's privacy loss distribution of DP-FedAvg's mechanism (noise
    multiplier ``z``, Poisson rate ``q``, ``T`` rounds, add/remove one client, pessimistic
    discretisation), reads ``delta(epsilon)`` on a grid of ``epsilon`` and takes the lower
    envelope of the :func:`dp_tpr_bound` lines: the mechanism is ``(epsilon, delta(epsilon))``-DP
    for all of them at once (Dong, Roth, Su 2019, Proposition 2.12), so every test lies under
    all of them. Much tighter than any single ``(epsilon, delta)`` line.

    Args:
        fpr: False-positive rates in [0, 1].
        noise_multiplier: ``z`` > 0.
        sampling_probability: ``q`` in (0, 1].
        num_rounds: ``T`` >= 1.
        epsilons: The grid of ``epsilon``; default 400 values from 0 to 20 (the envelope only
            gets tighter with more values; every line is a valid bound).
        value_discretization_interval: The PLD's grid (smaller is tighter and slower).

    Returns:
        The bound at every ``fpr``.
    """
    noise_multiplier = v.check_positive("noise_multiplier", noise_multiplier)
    sampling_probability = accounting.check_sampling_probability(sampling_probability)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1, maximum=10**6)
    grid = (np.linspace(0, 20, 400) if epsilons is None
            else v.check_float_array("epsilons", epsilons).reshape(-1))
    if grid.min() < 0:
        raise ValueError(f"epsilons must be >= 0, got {grid.min()}.")
    fpr = _check_rates("fpr", fpr)
    value_discretization_interval = v.check_positive("value_discretization_interval",
                                                     value_discretization_interval)
    deltas = _delta_table(noise_multiplier, sampling_probability, num_rounds,
                          tuple(float(e) for e in grid), value_discretization_interval)
    bound = np.ones_like(fpr)
    for eps, delta in zip(grid, deltas, strict=True):
        if delta < 1:
            bound = np.minimum(bound, dp_tpr_bound(fpr, epsilon=float(eps), delta=float(delta)))
    return bound


def roc_under_bound(fpr: Any, tpr: Any, *, num_members: int, num_nonmembers: int,
                    bound: Any, confidence: float = 0.95) -> np.ndarray:
    """Whether each point of a measured ROC is consistent with a TPR bound, allowing for chance.

    A measured ROC is an estimate: at a small FPR a few lucky members can put it above the true
    curve. A point ``(FPR, TPR)`` *violates* the bound only if even the Clopper-Pearson lower
    limit of its TPR lies above the bound evaluated at the upper limit of its FPR (each limit
    one-sided at ``(1 + confidence) / 2``).

    Args:
        fpr, tpr: The measured ROC (rates).
        num_members, num_nonmembers: How many member and non-member scores it was measured on.
        bound: A function from FPR values (array) to the largest TPR allowed, e.g.
            ``lambda f: dp_tpr_bound(f, epsilon=2, delta=1e-5)``.
        confidence: In (0, 1).

    Returns:
        One boolean per point: ``True`` where the point is consistent with the bound.
    """
    num_members = v.check_int("num_members", num_members, minimum=1)
    num_nonmembers = v.check_int("num_nonmembers", num_nonmembers, minimum=1)
    fpr, tpr = _check_roc(fpr, tpr)
    if not callable(bound):
        raise TypeError(f"bound must be a function from FPR values to TPR bounds, got "
                        f"{type(bound).__name__} {v._fmt(bound)}.")
    tpr_low, _ = audit.clopper_pearson(np.round(tpr * num_members), num_members,
                                       confidence=confidence)
    _, fpr_up = audit.clopper_pearson(np.round(fpr * num_nonmembers), num_nonmembers,
                                      confidence=confidence)
    try:
        allowed = v.check_float_array("bound(fpr)", bound(fpr_up))
    except (TypeError, ValueError) as error:
        raise type(error)(f"bound must return one finite TPR per FPR value: {error}") from None
    if allowed.shape not in ((), fpr_up.shape):
        raise ValueError(f"bound must return one TPR per FPR value, got shape {allowed.shape} "
                         f"for {fpr_up.shape}.")
    return tpr_low <= allowed + 1e-12
