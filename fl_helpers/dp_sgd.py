"""Example-level DP-SGD: one party trains a model and protects each of its training examples.

The algorithm is DP-SGD of Abadi et al. 2016, "Deep Learning with Differential Privacy",
Algorithm 1, with Poisson-sampled batches (the sampling that the accountant of Section 3.1
assumes) and the fixed denominator of McMahan et al. 2018 ("Learning Differentially Private
Recurrent Language Models", Section 2). Each of the ``num_steps`` steps:

1. **sample**: every example joins the batch independently with probability
   ``sampling_probability`` ``q`` (so the batch size varies around ``q n`` and may be 0);
2. **per-example gradients**: the gradient ``g_i`` of example ``i``'s own cross-entropy, for every
   example of the batch (:func:`per_example_gradients`, vectorised with ``tf.vectorized_map``);
3. **clip**: ``g_i <- g_i * min(1, C / ||g_i||)``, with ``||.||`` the L2 norm over all trainable
   weights together and ``C`` the ``clipping_norm`` (:func:`clip_per_example`), so one example
   moves the sum by at most ``C``;
4. **noise**: add noise of standard deviation ``z C`` to every coordinate of the sum, ``z`` the
   ``noise_multiplier``. By default (``noise="exact"``) the clipped gradients are first put on
   an integer grid and summed exactly, and the noise is an exact discrete Gaussian integer
   (:mod:`fl_helpers.discrete_noise`): the noised sum is computed exactly, and what follows is
   post-processing. ``noise="float"`` adds float32 Gaussian noise instead, which a
   floating-point attack breaks (Mironov 2012): the attack's control only;
5. **divide by the expected batch size** ``q n`` (fixed, never the realised batch size, which
   depends on the private sampling) and step: ``w <- w - learning_rate * (sum + noise) / (q n)``.

What the guarantee says (:meth:`DPSGDResult.privacy_statement` prints it for a run):

* **unit protected**: one training example of the party's dataset ``(x, y)``;
* **neighbouring relation**: add or remove one example (a dataset with or without it);
* **who is trusted**: the party that runs the training sees the raw data, every per-example
  gradient and the noise; it must sample and add the noise honestly and keep both secret;
* **what an observer sees**: every intermediate model (and hence the final one); the
  accountant covers the whole sequence of ``num_steps`` noisy updates.

Epsilon comes from the course's accountant (:func:`fl_helpers.accounting.dp_fedavg_epsilon`,
which equals the last entry of :func:`fl_helpers.accounting.epsilon_per_round`) for
``num_steps`` compositions of the Poisson-subsampled (discrete) Gaussian mechanism with
``(z, q)``: the ``"discrete"`` accountant for exact noise, PLD for float noise. Not covered:
choosing hyperparameters on the same data (Papernot & Steinke 2022, "Hyperparameter Tuning with
Renyi Differential Privacy"), anything else computed from the data (diagnostics, test accuracy
on private data), ``noise="float"`` (Mironov 2012, "On Significance of the Least Significant
Bits for Differential Privacy", breaks it), and reproducible noise (below).

Randomness: the Poisson sampling and the noise come from a
:class:`fl_helpers.schedule.PrivateRandomness`, the course's one source of private randomness,
which is secret by default (operating-system entropy that is never returned or stored). Step
``t`` (0-based) samples its batch as ``randomness.sampling_rng(t).random(n) < q`` and draws its
noise as ``schedule.gaussian_noise(shapes, stddev=z * C, rng=randomness.noise_rng(t))`` over the
shapes of ``model.trainable_variables``. ``randomness=PrivateRandomness.reproducible(s)``
derives both from a seed, which makes runs
repeatable for teaching and tests and makes them **not private**: anyone who knows the seed can
regenerate the noise and subtract it. Such a run warns and sets
``DPSGDResult.reproducible_noise``.

Models: any Keras classifier that maps ``x`` to logits and whose layers treat examples
independently (softmax regression, the 2NN and the CNN of :mod:`fl_helpers.models`, a logistic
regression with 2 outputs, ...). ``BatchNormalization`` mixes examples and is rejected. The
per-example gradients of a batch of ``B`` examples take ``B`` times the model's parameters in
memory (199,210 floats, 0.8 MB, per example for the 2NN). Convolutions have no vectorised
per-example rule in TensorFlow 2.21 (``Conv2DBackpropFilter`` falls back to a while loop), so the
CNN is slow: 57 ms for the per-example gradients of 32 examples against 5 ms for the 2NN, on the
course's 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fl_helpers import _validation as v
from fl_helpers import accounting, aggregation, client, discrete_noise, schedule

# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_model(model: Any) -> keras.Model:
    """:func:`fl_helpers.client.check_model`, plus what per-example clipping needs."""
    model = client.check_model(model)
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        if isinstance(layer, keras.layers.BatchNormalization):
            raise ValueError(
                f"model must not contain BatchNormalization layers (found {layer.name!r}): they "
                "mix the examples of a batch, so per-example gradients and clipping do not bound "
                "one example's influence. Use LayerNormalization or GroupNormalization.")
    if not model.trainable_variables:
        raise ValueError("model must have trainable variables, got none.")
    return model


# --------------------------------------------------------------------------------------------
# The steps, in TensorFlow (one implementation, used eagerly by the public functions and inside
# the compiled training step)
# --------------------------------------------------------------------------------------------


def _per_example_gradients_tf(model: keras.Model, x: tf.Tensor, y: tf.Tensor) -> list[tf.Tensor]:
    variables = model.trainable_variables

    def one_example(example):
        x_i, y_i = example
        with tf.GradientTape() as tape:
            logits = model(x_i[None], training=True)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_i[None],
                                                                  logits=logits)[0]
        return tape.gradient(loss, variables)

    return tf.vectorized_map(one_example, (x, y))


def _clip_tf(gradients: list[tf.Tensor], clipping_norm: tf.Tensor
             ) -> tuple[list[tf.Tensor], tf.Tensor]:
    batch = tf.shape(gradients[0])[0]
    squares = [tf.reduce_sum(tf.reshape(tf.square(g), [batch, -1]), axis=1) for g in gradients]
    norms = tf.sqrt(tf.add_n(squares))
    # min(1, C / norm); a zero gradient keeps factor 1 (and no division by zero).
    factors = tf.minimum(1.0, clipping_norm / tf.maximum(norms, 1e-30))
    clipped = [g * tf.reshape(factors, [-1] + [1] * (len(g.shape) - 1)) for g in gradients]
    return clipped, norms


def _build_step_fn(model: keras.Model):
    variables = model.trainable_variables
    spec_x = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    spec_y = tf.TensorSpec((None,), tf.int64)
    spec_noise = [tf.TensorSpec(var.shape, tf.float32) for var in variables]
    scalar = tf.TensorSpec((), tf.float32)

    @tf.function(input_signature=[spec_x, spec_y, spec_noise, scalar, scalar, scalar])
    def step(x, y, noise, clipping_norm, denominator, learning_rate):
        if tf.shape(y)[0] > 0:
            clipped, _ = _clip_tf(_per_example_gradients_tf(model, x, y), clipping_norm)
            sums = [tf.reduce_sum(g, axis=0) for g in clipped]
        else:  # an empty Poisson batch: only noise
            sums = [tf.zeros(var.shape, tf.float32) for var in variables]
        for var, total, z in zip(variables, sums, noise, strict=True):
            var.assign_sub(learning_rate * (total + z) / denominator)

    return step


def _build_per_example_fn(model: keras.Model):
    spec_x = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)

    @tf.function(input_signature=[spec_x, tf.TensorSpec((None,), tf.int64)])
    def per_example(x, y):
        return _per_example_gradients_tf(model, x, y)

    return per_example


#: Traced functions per model, held outside the Keras objects (see client.FunctionCache).
_per_example_fns = client.FunctionCache(_build_per_example_fn)
_step_fns = client.FunctionCache(_build_step_fn)


# --------------------------------------------------------------------------------------------
# Public steps
# --------------------------------------------------------------------------------------------


def per_example_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The gradient of each example's own cross-entropy, for every trainable variable.

    Example ``i``'s gradient is that of ``sparse_softmax_cross_entropy(y[i], model(x[i:i+1]))``
    with respect to ``model.trainable_variables``, as if it were a batch of one (Abadi et al.
    2016, Algorithm 1, "compute gradient"). All examples are computed at once with
    ``tf.vectorized_map``.

    Args:
        model: Keras model mapping ``x`` to logits (see the module docstring for which).
        x: Inputs, shape ``(B, *model input shape)``, B >= 1.
        y: Integer labels, shape ``(B,)``.

    Returns:
        One float32 array per trainable variable, of shape ``(B, *variable shape)``.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model = _check_model(model)
    x, y = client.check_dataset(model, x, y)
    return [g.numpy() for g in _per_example_fns(model)(x, y)]


def clip_per_example(gradients: list[np.ndarray], *, clipping_norm: float
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Scales each example's gradient to L2 norm at most ``clipping_norm``.

    The norm of example ``i`` is taken over all variables together,
    ``||g_i|| = sqrt(sum over variables of sum(g_i^2))``, and ``g_i`` becomes
    ``g_i * min(1, C / ||g_i||)`` (Abadi et al. 2016, Algorithm 1, "clip gradient"). A gradient
    already inside the ball is unchanged; none gets longer.

    Args:
        gradients: One array per variable, each of shape ``(B, ...)`` with the same ``B``, as
            from :func:`per_example_gradients`.
        clipping_norm: ``C`` > 0.

    Returns:
        ``(clipped, norms)``: the clipped arrays (float32, same shapes) and the float32 norms
        ``||g_i||`` before clipping, shape ``(B,)``.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    if not isinstance(gradients, (list, tuple)) or len(gradients) == 0:
        raise TypeError("gradients must be a non-empty list of per-variable arrays of shape "
                        f"(B, ...), got {type(gradients).__name__}.")
    arrays = [v.check_float_array("gradients", g, min_size=0).astype(np.float32)
              for g in gradients]
    sizes = {a.shape[0] if a.ndim else None for a in arrays}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("gradients must all have the same leading (example) dimension B, got "
                         f"shapes {[a.shape for a in arrays]}.")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("gradients must be finite, got NaN or inf values.")
    clipped, norms = _clip_tf([tf.constant(a) for a in arrays], tf.constant(clipping_norm,
                                                                            tf.float32))
    return [c.numpy() for c in clipped], norms.numpy()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class DPSGDResult:
    """What :func:`train` returns: the trained weights and the privacy of the run.

    Attributes:
        final_weights: Per-layer weights after the last step (``model.get_weights()`` order).
        epsilon: Epsilon after ``num_steps`` steps at ``target_delta`` (``inf`` if
            ``noise_multiplier`` is 0). Does not hold if ``reproducible_noise`` is True.
        target_delta: The delta of the guarantee.
        noise_multiplier, clipping_norm, sampling_probability, num_steps, learning_rate: The
            run's settings.
        num_examples: ``n``, the size of the protected dataset.
        expected_batch_size: ``q n``, the fixed denominator of every step.
        reproducible_noise: ``True`` if the sampling and noise came from
            ``PrivateRandomness.reproducible(seed)``: then the run is NOT private.
        noise: ``"exact"`` (integer gradients, exact discrete Gaussian; epsilon by the
            ``"discrete"`` accountant) or ``"float"`` (float32 Gaussian).
    """

    final_weights: list[np.ndarray]
    epsilon: float
    target_delta: float
    noise_multiplier: float
    clipping_norm: float
    sampling_probability: float
    num_steps: int
    learning_rate: float
    num_examples: int
    expected_batch_size: float
    reproducible_noise: bool
    noise: str = "float"

    def epsilon_per_step(self) -> np.ndarray:
        """Epsilon after each step 1..num_steps (float64; all ``inf`` if z = 0).

        Computed on demand with :func:`fl_helpers.accounting.epsilon_per_round` (slower than
        the final epsilon alone, for the PLD accountant).
        """
        if self.noise_multiplier == 0:
            return np.full(self.num_steps, np.inf)
        return accounting.epsilon_per_round(
            noise_multiplier=self.noise_multiplier,
            sampling_probability=self.sampling_probability, num_rounds=self.num_steps,
            target_delta=self.target_delta,
            accountant="discrete" if self.noise == "exact" else "pld")

    def privacy_statement(self, language: str = "en") -> str:
        """What this run's epsilon means, in eight lines: the example-level guarantee after
        :attr:`num_steps` steps (``NOT PRIVATE`` with reproducible noise, none when
        ``noise_multiplier`` is 0), the unit (one of the party's :attr:`num_examples`
        examples), the add/remove relation, the public divisor ``q n``, the noise (exact or
        float), who is trusted and what an observer sees.

        Args:
            language: ``"en"`` (the default) or ``"zh-CN"``, the Chinese edition: the same
                eight lines and figures in the glossary's terms (保证, 隐私单元, 相邻关系,
                受信任方, 观察者).

        Returns:
            Eight newline-separated lines (guarantee, unit, relation, divisor, noise, two on
            trust, observer), each label padded to 16 columns.

        Raises:
            TypeError: ``language`` is not a string.
            ValueError: ``language`` is not ``"en"`` or ``"zh-CN"``.
        """
        words = _STATEMENT[v.check_language(language)]
        if self.reproducible_noise:
            guarantee = words["reproducible"].format(eps=self.epsilon, delta=self.target_delta)
        elif math.isinf(self.epsilon):
            guarantee = words["no_noise"]
        else:
            guarantee = words["guarantee"].format(
                eps=self.epsilon, delta=self.target_delta, steps=self.num_steps,
                z=self.noise_multiplier, q=self.sampling_probability, c=self.clipping_norm)
        return "\n".join([
            words["guarantee_line"].format(guarantee=guarantee),
            words["unit"].format(n=self.num_examples),
            words["neighbouring"],
            words["divisor"].format(b=self.expected_batch_size),
            words["noise_exact" if self.noise == "exact" else "noise_float"],
            words["trusted"],
            words["trusted_more"],
            words["observer"],
        ])


#: :meth:`DPSGDResult.privacy_statement`'s sentences, per language: the same lines with the same
#: figures (guarantee 保证, unit 隐私单元, neighbouring relation 相邻关系, trusted party 受信任方,
#: observer 观察者). The Chinese labels are padded to the English ones' 16 columns (a CJK
#: character is two columns wide in a monospace font).
_STATEMENT = {
    "en": {
        "reproducible": "NOT PRIVATE: reproducible noise was requested, so anyone who knows the "
                        "seed can remove the noise. (With secret noise the same settings would "
                        "give epsilon = {eps:.3g}, delta = {delta:g}.)",
        "no_noise": "no privacy guarantee: noise_multiplier is 0 (epsilon = inf).",
        "guarantee": "(epsilon, delta) = ({eps:.3g}, {delta:g})-DP after {steps} steps "
                     "(z = {z:g}, q = {q:.4g}, C = {c:g}).",
        "guarantee_line": "guarantee:      {guarantee}",
        "unit": "unit protected: one training example (of the {n} the party holds)",
        "neighbouring": "neighbouring:   datasets that differ by adding or removing one example",
        "divisor": "divisor:        the public expected batch size q n = {b:g} (a constant, "
                   "never the batch's count)",
        "noise_exact": "noise:          exact: integer gradients on a grid, summed exactly, exact "
                       "discrete Gaussian noise",
        "noise_float": "noise:          float32 Gaussian (open to a floating-point attack; "
                       "noise='exact' closes it)",
        "trusted": "trusted:        the party that trains (sees the data, the gradients and the "
                   "noise,",
        "trusted_more": "                samples the batches and keeps sampling and noise secret)",
        "observer": "observer sees:  every intermediate model and the final one",
    },
    "zh-CN": {
        "reproducible": "不是隐私的：调用方要求了可复现噪声，因此任何知道种子的人都能去除噪声。"
                        "（若使用秘密噪声，同样的设置会得到 ε = {eps:.3g}，δ = {delta:g}。）",
        "no_noise": "没有隐私保证：noise_multiplier 为 0（ε = inf）。",
        "guarantee": "{steps} 步之后满足 (ε, δ) = ({eps:.3g}, {delta:g})-差分隐私"
                     "（z = {z:g}，q = {q:.4g}，C = {c:g}）。",
        "guarantee_line": "保证：          {guarantee}",
        "unit": "隐私单元：      一个训练样本（该参与方持有的 {n} 个样本之一）",
        "neighbouring": "相邻关系：      相差一个样本（增加或删除一个样本）的两个数据集",
        "divisor": "除数：          公开的期望批大小 q n = {b:g}（一个常数，从不是该批次的"
                   "实际样本数）",
        "noise_exact": "噪声：          精确：网格上的整数梯度，被精确求和，再加上精确抽取的离散"
                       "高斯噪声",
        "noise_float": "噪声：          float32 高斯噪声（易受浮点攻击；noise='exact' 可以"
                       "杜绝这种攻击）",
        "trusted": "受信任方：      负责训练的参与方（它看到数据、梯度和噪声，",
        "trusted_more": "                抽取批次，并对采样和噪声保密）",
        "observer": "观察者看到：    每一个中间模型以及最终模型",
    },
}


def _exact_step(model: keras.Model, x: np.ndarray, y: np.ndarray,
                randomness: schedule.PrivateRandomness, step: int, *, noise_multiplier: float,
                clipping_norm: float, expected_batch_size: float, learning_rate: float) -> None:
    """One DP-SGD step with exact noise: the noised quantity is an integer sum."""
    variables = model.trainable_variables
    sizes = [int(np.prod(var.shape)) for var in variables]
    steps = discrete_noise.GRID_STEPS
    if len(y):
        gradients = _per_example_fns(model)(x, y)
        rows = np.concatenate([g.numpy().reshape(len(y), -1) for g in gradients], axis=1)
        total = discrete_noise.clip_to_integer_grid(rows, clipping_norm=clipping_norm,
                                                    steps=steps).sum(axis=0)
    else:  # an empty Poisson batch: only noise
        total = np.zeros(sum(sizes), dtype=np.int64)
    variance = (noise_multiplier * steps) ** 2
    if variance > 0:
        total = total + discrete_noise._discrete_gaussian(
            discrete_noise.exact_variance_at_least(variance), total.size,
            randomness._exact_bits(step))
    # Post-processing of the exact integers: scale, divide by q n, step.
    update = total.astype(np.float64) * (clipping_norm / steps / expected_batch_size)
    for var, piece in zip(variables, np.split(update, np.cumsum(sizes)[:-1]), strict=True):
        var.assign_sub((learning_rate * piece).reshape(var.shape).astype(np.float32))


def train(model: keras.Model, x: np.ndarray, y: np.ndarray, *, noise_multiplier: float,
          clipping_norm: float, sampling_probability: float, num_steps: int,
          learning_rate: float, target_delta: float,
          randomness: schedule.PrivateRandomness | None = None,
          expected_batch_size: float | None = None, noise: str = "exact") -> DPSGDResult:
    """DP-SGD (Abadi et al. 2016, Algorithm 1) with Poisson sampling, from the model's weights.

    Runs ``num_steps`` steps of sample -> per-example gradients -> clip to ``clipping_norm`` ->
    sum + ``N(0, (z C)^2)`` noise -> divide by ``q n`` -> SGD step (see the module docstring),
    updating ``model``'s weights in place, and accounts the run with
    :func:`fl_helpers.accounting.epsilon_per_round`.

    The unit protected is one example of ``(x, y)`` under add/remove-one neighbouring; the
    trainer is trusted; the guarantee holds against an observer of every intermediate model.

    Args:
        model: Keras classifier mapping ``x`` to logits; trained in place from its current
            weights. No ``BatchNormalization``.
        x: The party's inputs, shape ``(n, *model input shape)``.
        y: Integer labels in ``0 .. num_classes - 1``, shape ``(n,)``.
        noise_multiplier: ``z`` >= 0: the noise std on the sum divided by ``clipping_norm``.
            0 means clipping without noise (epsilon is ``inf``).
        clipping_norm: ``C`` > 0, the L2 bound of each example's gradient.
        sampling_probability: ``q`` in (0, 1]: each example joins each step's batch
            independently with this probability (expected batch size ``q n``).
        num_steps: ``T`` >= 1.
        learning_rate: ``eta`` > 0.
        target_delta: The delta of the reported (epsilon, delta), in (0, 1); choose it well
            below ``1 / n``.
        randomness: The sampling's and the noise's :class:`fl_helpers.schedule.PrivateRandomness`.
            ``None`` (default): a fresh ``PrivateRandomness.secret()`` (operating-system
            entropy; private). ``PrivateRandomness.reproducible(seed)``: the run is repeatable
            and **not private**; its ``UserWarning`` says so and the result is flagged. A secret
            one serves one run only: a second run with it is refused (it would reuse the noise,
            and two releases with the same noise cancel it).
        expected_batch_size: The divisor of every step, ``q n``: a **public** constant fixed
            before training (required), never the size of ``x``, which changes when an example
            is added or removed (a divisor that followed it would show in the scale of every
            step). Pass ``q`` times the dataset's published size.
        noise: ``"exact"`` (default): every example's clipped gradient on an integer grid
            (:func:`fl_helpers.discrete_noise.clip_to_integer_grid`), summed exactly, exact
            discrete Gaussian noise, then the step (post-processing); epsilon by the
            ``"discrete"`` accountant. ``"float"``: float32 Gaussian noise added in the
            compiled step, **not private** against a floating-point attack (warns; the attack's
            control).

    Returns:
        A :class:`DPSGDResult`.

    Raises:
        TypeError, ValueError: An argument is malformed or out of range (the message names it).
    """
    model = _check_model(model)
    x, y = client.check_dataset(model, x, y)
    noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    sampling_probability = v.check_probability("sampling_probability", sampling_probability)
    num_steps = v.check_int("num_steps", num_steps, minimum=1, maximum=10**7)
    learning_rate = v.check_positive("learning_rate", learning_rate)
    target_delta = v.check_open_unit("target_delta", target_delta)
    if expected_batch_size is None:
        raise ValueError(
            "expected_batch_size must be given, got None: DP-SGD's divisor q n is a public "
            "constant, never counted from the private examples (adding or removing one would "
            f"change it). Pass q times the dataset's published size, e.g. expected_batch_size="
            f"{sampling_probability * len(x):g} if n = {len(x)} is public.")
    expected_batch_size = v.check_positive("expected_batch_size", expected_batch_size)
    noise = aggregation.check_noise(noise)
    if noise == "float" and noise_multiplier > 0:
        aggregation.warn_float_noise()
    largest = math.sqrt(discrete_noise.MAX_LARGE_VARIANCE) / discrete_noise.GRID_STEPS
    if noise == "exact" and noise_multiplier > largest:
        raise ValueError(f"noise_multiplier must be <= {largest:.0f} with noise='exact', got "
                         f"{v._fmt(noise_multiplier)}.")
    randomness = schedule.resolve_randomness(randomness)
    randomness.claim("dp_sgd.train")

    if noise_multiplier > 0:
        epsilon = accounting.dp_fedavg_epsilon(
            noise_multiplier=noise_multiplier, sampling_probability=sampling_probability,
            num_rounds=num_steps, target_delta=target_delta,
            accountant="discrete" if noise == "exact" else "pld")
    else:
        epsilon = math.inf

    n = len(x)
    shapes = [tuple(var.shape) for var in model.trainable_variables]
    noise_std = noise_multiplier * clipping_norm
    step = _step_fns(model)
    constants = [tf.constant(value, tf.float32)
                 for value in (clipping_norm, expected_batch_size, learning_rate)]
    for t in range(num_steps):
        batch = np.flatnonzero(randomness.sampling_rng(t).random(n) < sampling_probability)
        if noise == "exact":
            _exact_step(model, x[batch], y[batch], randomness, t, noise_multiplier=noise_multiplier,
                        clipping_norm=clipping_norm, expected_batch_size=expected_batch_size,
                        learning_rate=learning_rate)
            continue
        drawn = schedule.gaussian_noise(shapes, stddev=noise_std, rng=randomness.noise_rng(t))
        step(x[batch], y[batch], drawn, *constants)
    weights = model.get_weights()
    if not all(np.isfinite(w).all() for w in weights):
        raise ValueError(
            f"training diverged (NaN or inf weights) with learning_rate={learning_rate}; "
            "try a smaller learning_rate.")
    return DPSGDResult(
        final_weights=weights, epsilon=float(epsilon),
        target_delta=target_delta, noise_multiplier=noise_multiplier,
        clipping_norm=clipping_norm, sampling_probability=sampling_probability,
        num_steps=num_steps, learning_rate=learning_rate, num_examples=n,
        expected_batch_size=expected_batch_size,
        reproducible_noise=randomness.is_reproducible, noise=noise)
