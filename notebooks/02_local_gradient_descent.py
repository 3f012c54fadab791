# %% [markdown]
# # Local training: gradient descent on one client's data
#
# After this notebook you will be able to train a model on a single client's data with gradient
# descent written from scratch, tell full-batch, mini-batch and single-example SGD apart, use
# `fl_helpers.client.client_update`, the client step of federated averaging, and train with
# example-level differential privacy (DP-SGD).
#
# *Runtime: about 1.5 min on a busy 2-core CPU (load average 2 when measured).*
# Prerequisites:
# [00 — welcome to federated learning](00_welcome_to_federated_learning.ipynb) for the client
# splits; [01 — differential privacy](01_differential_privacy_noise.ipynb) for the second half
# (DP-SGD: sensitivity, clipping, Gaussian noise, ε and δ, the accountant); the idea of a
# derivative.

# %% [markdown]
# ## Learning goals
#
# - **Write** one gradient-descent step with `tf.GradientTape` (logits, loss, gradients, update)
#   and recognise the `loss = model(batch)` mistake.
# - **Compare** full-batch gradient descent, mini-batch SGD and single-example SGD, per step and
#   per example seen, and count the memory a training step needs.
# - **Reproduce** Keras `compile`/`fit` training exactly with the from-scratch loop and with
#   `client.client_update`.
# - **Measure** how far one client gets on its own, compared with a model trained on all data.
# - **Protect** each training example with DP-SGD (per-example clipping, Gaussian noise,
#   Poisson-sampled batches) and read off its ε from the accountant.

# %% [markdown]
# ## Setup

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up messages (see below)

import time
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import display

from fl_helpers import (
    accounting,
    client,
    data,
    discrete_noise,
    dp_sgd,
    local_sgd_widgets,
    models,
    plotting,
    reproducibility,
    schedule,
)

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()

# %% [markdown]
# `quiet.import_tensorflow()` imports TensorFlow before anything else does. On a machine without
# a GPU, TensorFlow's C++ start-up prints lines such as `E0000 … failed call to cuInit` and
# "Could not find cuda drivers": they only say that it found no GPU and will use the CPU. The
# helper drops exactly those start-up lines (and TensorFlow's C++ *info* messages); every
# warning or error printed later still shows.

# %% [markdown]
# ## One client's data
#
# Federated learning starts on the device. Before averaging anything, each client trains the
# model it received on the data it holds, and nothing else. To see what that data looks like we
# split MNIST's 60,000 training images across $N = 100$ clients with the Dirichlet split of
# notebook 00 ($\alpha = 0.5$: every client holds a different, lopsided mix of digits) and take
# client 0. The 10,000 test images stay global: they measure how well a model does on *everyone's*
# digits.

# %%
(x_train, y_train), (x_test, y_test) = data.load_mnist()
split = data.partition_dirichlet(y_train, 100, alpha=0.5, rng=rng)
x_client, y_client = x_train[split[0]], y_train[split[0]]
client_counts = np.bincount(y_client, minlength=10)
n_client = len(y_client)

# %% tags=["nbval-check-output"]
print(f"client 0 holds {n_client} examples, x {x_client.shape} {x_client.dtype}")
print("examples per digit:", client_counts.tolist())
print(f"global test set: {len(y_test)} examples")

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
digits = np.arange(10)
ax.bar(digits - 0.2, client_counts / n_client, width=0.4, label="client 0")
ax.bar(digits + 0.2, np.bincount(y_test, minlength=10) / len(y_test), width=0.4,
       color="0.6", label="global test set")
ax.set_xticks(digits)
ax.set_xlabel("digit")
ax.set_ylabel("share of examples")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# Client 0 has no 1s at all and only a handful of 4s and 7s, while the test set has all ten
# digits in roughly equal shares. Keep this picture in mind for the last section.

# %% [markdown]
# ## Two models
#
# Both models map a 28 × 28 image $x$ to ten **logits** $z = f(x; w) \in \mathbb{R}^{10}$, one
# score per digit; they do not apply a softmax. The predicted probabilities are
# $p = \mathrm{softmax}(z)$, $p_c = e^{z_c} / \sum_{c'} e^{z_{c'}}$, and the loss of a batch
# $\mathcal{B}$ of examples is the mean cross-entropy
#
# $$L(w; \mathcal{B}) = -\frac{1}{|\mathcal{B}|} \sum_{i \in \mathcal{B}} \log p_{y_i}(x_i)
#   = \frac{1}{|\mathcal{B}|} \sum_{i \in \mathcal{B}} \Big( \log \sum_{c} e^{z_{i,c}}
#   - z_{i, y_i} \Big).$$
#
# TensorFlow computes the right-hand form directly from the logits
# (`tf.nn.sparse_softmax_cross_entropy_with_logits`), which never takes the log of a tiny
# probability.
#
# - **Softmax regression** (`models.make_softmax_regression`): $z = W^\top x + b$ with
#   $W \in \mathbb{R}^{784 \times 10}$, $b \in \mathbb{R}^{10}$. Its loss is convex in $(W, b)$.
# - **2NN** (`models.make_2nn`), the multilayer perceptron of McMahan et al. 2017, Section 3:
#   784 inputs, two hidden layers of 200 ReLU units, 10 outputs.

# %%
softmax_regression = models.make_softmax_regression(SEED)
two_nn = models.make_2nn(SEED)

# %% tags=["nbval-check-output"]
print(f"softmax regression: {softmax_regression.count_params():,} parameters "
      f"(784*10 + 10 = {784 * 10 + 10:,})")
print(f"2NN:                {two_nn.count_params():,} parameters "
      f"(784*200+200 + 200*200+200 + 200*10+10 = {784*200+200 + 200*200+200 + 200*10+10:,})")
print("output of the 2NN for 3 images:", tuple(two_nn(x_client[:3]).shape))

# %% [markdown]
# ## Gradient descent from scratch
#
# Gradient descent repeats one update: compute the gradient of the loss with respect to every
# weight and take a step of size $\eta$ (the learning rate) against it,
#
# $$w \leftarrow w - \eta \, \nabla_w L(w; \mathcal{B}).$$
#
# With $\mathcal{B}$ = all of the client's examples this is *full-batch* gradient descent.
# `tf.GradientTape` records the forward computation and returns the gradient. For softmax
# regression we can check its answer by hand: with $P$ the matrix of predicted probabilities and
# $Y$ the one-hot labels, $\nabla_W L = X^\top (P - Y) / |\mathcal{B}|$ and
# $\nabla_b L = \text{mean of the rows of } P - Y$.

# %%
model = models.make_softmax_regression(SEED)
initial_weights = model.get_weights()
with tf.GradientTape() as tape:
    logits = model(x_client)                                     # (n, 10) scores
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y_client, logits=logits))                         # one number
gradients = tape.gradient(loss, model.trainable_variables)       # [dL/dW, dL/db]

probabilities = tf.nn.softmax(logits).numpy()
residual = probabilities - np.eye(10)[y_client]                  # P - Y
grad_kernel = x_client.reshape(n_client, -1).T @ residual / n_client
np.testing.assert_allclose(gradients[0], grad_kernel, atol=1e-6)
np.testing.assert_allclose(gradients[1], residual.mean(axis=0), atol=1e-6)
print(f"loss {float(loss):.4f}; GradientTape's gradient matches X^T (P - Y) / n")

# %% [markdown]
# The whole training loop is that cell plus the update, repeated. Each variable is updated in
# place with `assign_sub`:

# %%
learning_rate = 0.5
scratch_losses = []
for _ in range(50):
    with tf.GradientTape() as tape:
        logits = model(x_client)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y_client, logits=logits))
    gradients = tape.gradient(loss, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, gradients, strict=True):
        variable.assign_sub(learning_rate * gradient)
    scratch_losses.append(float(loss))

# %%
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(scratch_losses, marker=".")
ax.set_xlabel("gradient-descent step")
ax.set_ylabel("training loss")
ax.set_title("softmax regression, full batch, η = 0.5", fontsize=10)
plt.show()

# %% [markdown]
# After a bump in the first steps (with the weights far from the minimum, a step of 0.5
# overshoots once), the loss falls quickly and then more and more slowly, as the gradient
# shrinks near the minimum.
#
# This loop is the *client update* of federated averaging (McMahan et al. 2017, Algorithm 1,
# `ClientUpdate`), and from now on we use its helper version,
# `client.client_update(model, global_weights, x, y, *, local_epochs, batch_size,
# client_learning_rate, seed)`. It runs the same steps inside one compiled TensorFlow graph,
# which is much faster; `batch_size=None` means full batch. The parity check: 50 full-batch
# epochs from the same start give the same weights.

# %%
helper_weights, helper_n = client.client_update(
    models.make_softmax_regression(SEED), initial_weights, x_client, y_client,
    local_epochs=50, batch_size=None, client_learning_rate=0.5, seed=SEED)
for ours, helpers in zip(model.get_weights(), helper_weights, strict=True):
    np.testing.assert_allclose(ours, helpers, atol=1e-5)
print(f"from-scratch loop and client.client_update agree ({helper_n} examples)")

# %% [markdown]
# To measure a model on the global test set we need two numbers: the mean cross-entropy and the
# **accuracy**, the share of images whose largest logit is the right digit. From scratch, and
# then with `client.evaluate(model, weights, x, y)`, which computes the same in batches of 1,000
# images inside a compiled graph (`weights=None` keeps the model's current weights):

# %%
test_logits = model(x_test)
scratch_loss = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
    labels=y_test, logits=test_logits)))
scratch_accuracy = float(np.mean(np.argmax(test_logits, axis=1) == y_test))
helper_loss, helper_accuracy = client.evaluate(model, None, x_test, y_test)
np.testing.assert_allclose([helper_loss, helper_accuracy], [scratch_loss, scratch_accuracy],
                           rtol=1e-5)
print(f"after 50 full-batch steps: test loss {scratch_loss:.3f}, test accuracy "
      f"{scratch_accuracy:.1%} (client.evaluate agrees)")

# %% [markdown]
# > **Pitfall: `loss = model(batch)`.** A model's output is not a loss, yet this loop runs:
# > ```python
# > with tf.GradientTape() as tape:
# >     loss = model(x_batch)          # wrong: these are the logits
# > gradients = tape.gradient(loss, model.trainable_variables)
# > ```
# > No error is raised: given a non-scalar target, `tape.gradient` silently differentiates the
# > **sum of all its entries**. The labels never enter, so the "training" pushes every logit
# > of every example down. For softmax regression every class gets the same gradient, so all ten
# > logits of an example fall by the same amount, and the softmax ignores such a shift: the
# > printed "loss" plunges towards minus infinity while the real cross-entropy and the
# > predictions stay where they were. For the 2NN the logits run off until they become NaN.
# > Here is what happens with the learning rates of a correct run:

# %%
for make_model, rate in [(models.make_softmax_regression, 0.5), (models.make_2nn, 0.1)]:
    broken = make_model(SEED)
    before = client.evaluate(broken, None, x_test, y_test)
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = broken(x_client)                               # the mistake
        gradients = tape.gradient(loss, broken.trainable_variables)
        for variable, gradient in zip(broken.trainable_variables, gradients, strict=True):
            variable.assign_sub(rate * gradient)
    after = client.evaluate(broken, None, x_test, y_test)
    print(f"{broken.name:<18} mean 'loss' after 30 steps {float(tf.reduce_mean(loss)):>12.4g} | "
          f"cross-entropy {before[0]:.3f} -> {after[0]:.3f}, "
          f"test accuracy {before[1]:.1%} -> {after[1]:.1%}")
print(f"share of 0s among the test images: {np.mean(y_test == 0):.1%}")

# %% [markdown]
# The softmax-regression "loss" fell to about $-4.2 \times 10^{5}$ while the cross-entropy and the accuracy
# stayed at their untrained values (the last digit moves only because the logits grow so large
# that float32 rounding changes a few predictions). The 2NN's outputs became NaN; its 9.8% is
# an artefact: `argmax` of a row of NaNs returns 0, and 9.8% of the test images are 0s.
#
# The fix is the two lines of the correct loop: compute the loss from the labels and the logits
# (`tf.nn.sparse_softmax_cross_entropy_with_logits`, or
# `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`), and make it a scalar with a
# mean. A quick guard in any hand-written loop: `assert loss.shape == ()`.

# %% [markdown]
# ## Full batch, mini-batch or one example at a time
#
# Full-batch gradient descent reads all $n_k$ examples for every step. *Stochastic* gradient
# descent (SGD) instead steps on the gradient of a small random batch $\mathcal{B}$ of size $B$:
# a noisy but unbiased estimate of the full gradient, at $B / n_k$ of the cost. One **epoch** is
# one pass over the data, $\lceil n_k / B \rceil$ steps. The batch order is a fresh random
# permutation per epoch, cut into batches of $B$ (the last one smaller). From scratch, and the
# helper `schedule.client_batches` that every trainer of the course uses:

# %%
order_rng = np.random.default_rng(SEED)
scratch_batches = []
for _ in range(2):                                   # 2 epochs
    order = order_rng.permutation(n_client)
    scratch_batches += [order[start:start + 32] for start in range(0, n_client, 32)]
helper_batches = schedule.client_batches(n_client, local_epochs=2, batch_size=32,
                                         rng=np.random.default_rng(SEED))
assert len(scratch_batches) == len(helper_batches)
assert all(np.array_equal(a, b) for a, b in zip(scratch_batches, helper_batches, strict=True))
print(f"{len(helper_batches)} batches, sizes {[len(b) for b in helper_batches[:22]]} ...")

# %% [markdown]
#
# We train the 2NN on client 0 three ways: full batch for 100 steps (100 epochs), mini-batches
# of $B = 32$ for 10 epochs, and single examples ($B = 1$) for 5 epochs.
# `client.sgd_loss_curve` runs exactly `client_update`'s training and measures the loss on
# all of the client's data along the way. The learning rates were picked by hand from a few
# tries (single examples give the noisiest gradients and need the smallest steps); the widget
# below lets you try others.

# %%
two_nn_start = models.make_2nn(SEED).get_weights()
settings = {"full batch (GD), η = 0.1": (None, 100, 0.1),
            "mini-batch B = 32, η = 0.1": (32, 10, 0.1),
            "single example B = 1, η = 0.01": (1, 5, 0.01)}
curves, seconds = {}, {}
for label, (batch_size, epochs, rate) in settings.items():
    start = time.perf_counter()
    curves[label] = client.sgd_loss_curve(
        two_nn, two_nn_start, x_client, y_client, local_epochs=epochs, batch_size=batch_size,
        client_learning_rate=rate, seed=SEED)
    seconds[label] = time.perf_counter() - start

# %% [markdown]
# `sgd_loss_curve` is `client_update` plus a loss measurement every tenth of an epoch, so its
# final weights must be `client_update`'s (parity check on the mini-batch run):

# %%
mini_weights, _ = client.client_update(two_nn, two_nn_start, x_client, y_client, local_epochs=10,
                                       batch_size=32, client_learning_rate=0.1, seed=SEED)
for from_curve, from_update in zip(curves["mini-batch B = 32, η = 0.1"].final_weights,
                                   mini_weights, strict=True):
    np.testing.assert_allclose(from_curve, from_update, atol=1e-6)
print("sgd_loss_curve ends where client_update ends")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
plotting.plot_loss_curves(curves, x_axis="steps", log_x=True, ax=axes[0])
plotting.plot_loss_curves(curves, x_axis="epochs", log_x=True, ax=axes[1])
axes[0].set_title("per step", fontsize=10)
axes[1].set_title("per example seen", fontsize=10)
axes[1].get_legend().remove()
fig.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
for label, curve in curves.items():
    print(f"{label:<32} {curve.steps[-1]:>5} steps, {curve.examples_seen[-1]:>6} examples seen,"
          f" final loss {curve.loss[-1]:.3f}, {seconds[label]:.1f} s")

# %% [markdown]
# Read the two panels together:
#
# - **Per step (left)**, full-batch steps are the most reliable: each uses the exact gradient,
#   and the loss falls smoothly. Single-example steps are cheap but noisy, so any one of them
#   achieves little.
# - **Per example seen (right)**, the order reverses. After one pass over the data, SGD has
#   taken $n_k / B$ steps and is far ahead; full-batch gradient descent has taken one. After
#   100 epochs it is still above the loss that mini-batch SGD reaches in 10.
#   Images of the same digit look alike, so a batch of 32 already points in nearly the same
#   direction as all of them, and reading the rest before stepping is mostly wasted work
#   (Bottou, Curtis & Nocedal 2018, Section 3.3).
# - In wall-clock time single-example SGD is slower than mini-batches here, because every step
#   has a fixed overhead; mini-batches of tens of examples are the usual compromise.
#
# Memory is the other cost that grows with the batch. A plain SGD step holds three things in
# float32: the $P$ weights, their $P$ gradients, and the activations of every example of the
# batch, which the backward pass needs; for the 2NN, $P = 199{,}210$ and the activations are
# $784 + 200 + 200 + 10 = 1194$ numbers per example. (We leave out the data set itself and the
# short-lived buffers of the backward pass.)

# %% tags=["nbval-check-output"]
num_parameters = two_nn.count_params()
units_per_example = 784 + 200 + 200 + 10
fixed_kb = 2 * num_parameters * 4 / 1e3               # weights + gradients
print(f"weights + gradients: {fixed_kb:,.1f} kB, whatever the batch size")
for label, batch_size in [("B = 1", 1), ("B = 32", 32), ("client 0, full batch", n_client),
                          ("all of MNIST, full batch", len(y_train))]:
    activations_kb = batch_size * units_per_example * 4 / 1e3
    print(f"{label:<25} {batch_size:>6} examples: activations {activations_kb:>11,.1f} kB, "
          f"total {fixed_kb + activations_kb:>11,.1f} kB")
print(f"activations equal weights + gradients at B = {2 * num_parameters / units_per_example:.0f}")

# %% [markdown]
# For a model this small the weights and gradients dominate up to $B \approx 334$ examples
# per batch (where the activations catch up, as printed): $B = 1$ and $B = 32$ need almost the
# same memory, and even client 0's full batch fits in a few megabytes. What full batches rule
# out is large data: all of MNIST in one batch needs hundreds of megabytes of activations for
# a model whose weights take less than one. For models with more activations per example
# (convolutional networks) and for DP-SGD below, which keeps one gradient *per example*, the
# batch size drives memory much sooner.

# %% [markdown]
# ## The same training with Keras `compile` and `fit`
#
# Keras wraps the same loop: `compile` fixes the loss and the optimiser, `fit` runs the steps.
# With `keras.optimizers.SGD` (no momentum) and the cross-entropy from logits, one `fit` step is
# exactly our update. To compare weights we must also give `fit` the *same batches in the same
# order*. `fit` shuffles arrays itself and cuts them into equal batches across epoch boundaries,
# so we hand it a `tf.data.Dataset` that yields our pre-ordered batches from
# `schedule.client_batches` (one row of index numbers per batch, of varying length), one `fit`
# epoch covering all of them (`shuffle=False` for clarity; a `Dataset` is never reshuffled by
# `fit`).

# %%
batches = schedule.client_batches(n_client, local_epochs=2, batch_size=32,
                                   rng=np.random.default_rng(SEED))
batch_indices = tf.RaggedTensor.from_row_lengths(np.concatenate(batches),
                                                 [len(b) for b in batches])


def gather_batch(indices):
    return tf.gather(x_client, indices), tf.gather(y_client, indices)


batch_stream = tf.data.Dataset.from_tensor_slices(batch_indices).map(gather_batch)

keras_model = models.make_2nn(SEED)
keras_model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
fit_history = keras_model.fit(batch_stream, epochs=1, shuffle=False, verbose=0)

# %% [markdown]
# The parity check against `client_update` with the same start, learning rate and seed (so the
# same batches):

# %%
update_weights, _ = client.client_update(
    two_nn, two_nn_start, x_client, y_client, local_epochs=2, batch_size=32,
    client_learning_rate=0.1, seed=SEED)
for from_keras, from_update in zip(keras_model.get_weights(), update_weights, strict=True):
    np.testing.assert_allclose(from_keras, from_update, rtol=1e-5, atol=1e-6)
difference = max(np.abs(a - b).max() for a, b in zip(keras_model.get_weights(), update_weights,
                                                      strict=True))
print(f"Keras fit and client_update agree after {len(batches)} steps "
      f"(largest difference {difference:.1e})")

# %% [markdown]
# So `fit` is no black box: it is the from-scratch loop, compiled. The course keeps its own
# helper because federated training needs control that `fit` hides: the start weights of every
# client, the exact batch order for reproducibility, and (in notebook 04) per-client clipping and
# noise.

# %% [markdown]
# ## Learning alone versus learning from everyone
#
# How good is a model trained only on client 0? We train the 2NN on the client's 679 examples
# for 20 epochs, and for comparison on all 60,000 training examples for one epoch (the
# "centralised" baseline that federated learning tries to match without collecting the data),
# both with $B = 32$ and $\eta = 0.1$, and test both on the global test set.

# %%
alone_weights, _ = client.client_update(
    two_nn, two_nn_start, x_client, y_client, local_epochs=20, batch_size=32,
    client_learning_rate=0.1, seed=SEED)
pooled_weights, _ = client.client_update(
    two_nn, two_nn_start, x_train, y_train, local_epochs=1, batch_size=32,
    client_learning_rate=0.1, seed=SEED)


def accuracy_per_digit(weights):
    two_nn.set_weights(weights)
    predicted = np.concatenate([np.argmax(two_nn(x_test[i:i + 2000]), axis=1)
                                for i in range(0, len(x_test), 2000)])
    return np.array([np.mean(predicted[y_test == d] == d) for d in range(10)])


results = {}
for name, weights in [("client 0 alone", alone_weights), ("all 60,000 examples", pooled_weights)]:
    loss, accuracy = client.evaluate(two_nn, weights, x_test, y_test)
    results[name] = {"loss": loss, "accuracy": accuracy, "per_digit": accuracy_per_digit(weights)}
    print(f"{name:<20} test accuracy {accuracy:.1%}, test loss {loss:.3f}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.4))
for offset, (name, result) in zip([-0.2, 0.2], results.items(), strict=True):
    ax.bar(digits + offset, result["per_digit"], width=0.4, label=name)
ax.set_xticks(digits, [f"{d}\n({client_counts[d]})" for d in digits])
ax.set_xlabel("digit (in brackets: client 0's training examples of it)")
ax.set_ylabel("test accuracy")
ax.set_ylim(0, 1.0)
ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=8)
plt.show()

# %% [markdown]
# The client's model is good at the digits it has plenty of and close to useless on the ones it
# lacks: it never predicts a 1 because it has never seen one. No amount of local training fixes
# that; only other clients' data can. Federated averaging (notebook 03) lets the clients
# combine what they learned without sending their images anywhere.
#
# **Sanity check** of these accuracies, with bounds loose enough for other machines and
# library versions:

# %%
alone, pooled = results["client 0 alone"], results["all 60,000 examples"]
assert 0.45 < alone["accuracy"] < 0.80, alone["accuracy"]
assert pooled["accuracy"] > 0.94, pooled["accuracy"]
assert alone["per_digit"][1] < 0.05          # no 1s in the client's data
mini_batch, full_batch = curves["mini-batch B = 32, η = 0.1"], curves["full batch (GD), η = 0.1"]
assert mini_batch.loss[-1] < full_batch.loss[-1]     # 10 epochs of SGD beat 100 of GD
print("sanity checks passed")

# %% [markdown]
# ### Short local training
#
# Federated clients rarely train for 20 epochs between two rounds; a few epochs are typical.
# Here is the 2NN trained on client 0 for 3 epochs with $B = 32$ and $\eta = 0.1$: the
# widget's starting setting, with the summary line it prints (the widget then keeps this curve
# in grey for comparison):

# %%
short_curve = client.sgd_loss_curve(two_nn, two_nn_start, x_client, y_client, local_epochs=3,
                                    batch_size=32, client_learning_rate=0.1, seed=SEED)
short_accuracy = client.evaluate(two_nn, None, x_test, y_test)[1]
print(local_sgd_widgets.local_sgd_summary_line(short_curve, test_accuracy=short_accuracy))
fig, ax = plt.subplots(figsize=(7, 3.2))
plotting.plot_loss_curves({"η = 0.1, B = 32, E = 3": short_curve}, x_axis="epochs", ax=ax)
ax.set_ylim(0, 3)
plt.show()

# %% [markdown]
# ### Try it
#
# Retrain the 2NN on client 0 with your own learning rate, batch size and number of epochs. The
# grey curve is the starting setting of the figure above ($\eta = 0.1$, $B = 32$, 3 epochs);
# the line above the plot gives the final training loss and the accuracy on the global test
# set. Things to try: a large
# learning rate with $B = 1$ (it diverges); full batch with 10 epochs (10 steps: barely
# started); $B = 10$ versus $B = 100$ at the same learning rate.

# %% tags=["nbval-ignore-output"]
display(local_sgd_widgets.local_sgd_explorer(models.make_2nn, x_client, y_client,
                                   test_data=(x_test, y_test), client_learning_rate=0.1,
                                   batch_size=32, local_epochs=3, seed=SEED))

# %% [markdown]
# ## One client that protects each of its examples: DP-SGD
#
# The weights a client trains are a function of its images, and a model can remember single
# training examples: Shokri et al. 2017 ("Membership Inference Attacks against Machine Learning
# Models") show that its outputs often reveal whether a given record was in the training set.
# **DP-SGD** (Abadi et al. 2016, "Deep Learning with Differential Privacy", Section 3.1,
# Algorithm 1) changes the training so that each single example provably has little influence on
# what the model can reveal. First, precisely what it protects here:
#
# > **What this guarantee covers.**
# > - *Unit protected:* one training example, i.e. one of client 0's images with its label.
# > - *Neighbouring datasets:* client 0's data with and without that one example (add/remove).
# > - *Who is trusted:* the party that trains, here client 0's device. It sees the images, the
# >   per-example gradients and the noise, and must draw the batches and the noise from a secret
# >   source.
# > - *What an observer sees:* every intermediate model (as if the device published the weights
# >   after every step), hence also the final one. ε bounds what all of them together reveal.
# > - *Not covered:* whether client 0 took part at all, or anything that all its 679 examples
# >   share: that is *client-level* privacy, which DP-FedAvg gives in notebook 04.
#
# Each step $t$ of DP-SGD, with sampling probability $q$, clipping norm $C$, noise multiplier
# $z$ and learning rate $\eta$:
#
# 1. **Poisson sampling:** every example $i$ joins the batch $\mathcal{B}_t$ independently with
#    probability $q$, so the batch size varies around $q n$ (and may be 0).
# 2. **Per-example gradients:** $g_i = \nabla_w \ell(w; x_i, y_i)$ for each $i \in \mathcal{B}_t$,
#    each example on its own.
# 3. **Clipping:** $\bar g_i = g_i \cdot \min(1, C / \lVert g_i \rVert_2)$, the norm taken over all
#    weights together. Adding or removing one example now changes the sum by at most $C$.
# 4. **Noise and step:** $w \leftarrow w - \eta \, \big(\sum_{i \in \mathcal{B}_t} \bar g_i +
#    \mathcal{N}(0, z^2 C^2 I)\big) / (q n)$, where $q n$ is a public constant fixed before
#    training, never the size of the private dataset.
#
# One detail of step 4 matters for privacy: noise added in floating point leaks through the
# rounding (Mironov's attack from notebook 01; notebook 04 aims it at a sum of updates). So the
# course computes the noisy sum **exactly**: each clipped gradient is put on an integer grid of
# $C / 2^{16}$ (its norm checked in integers), the integers are summed, and the noise is a
# *discrete* Gaussian integer of standard deviation at least $z \cdot 2^{16}$ (notebook 06's
# exact sampler). Scaling back by $C / 2^{16}$, dividing by $q n$ and stepping come after: they
# only post-process the noisy integers.
#
# Each step is then the *subsampled Gaussian mechanism*, and `fl_helpers.accounting` adds up the
# privacy loss of all $T$ steps (the same accountant notebook 01 introduced; it assumes exactly
# this Poisson sampling).

# %% [markdown]
# ### Per-example gradients, vectorised
#
# A normal backward pass returns only the batch's *mean* gradient; clipping needs every example's
# own. `tf.vectorized_map` runs a one-example function over the batch and vectorises it, so the
# gradient of example $i$ is exactly the gradient of a batch holding only that example. We check
# this for one example:

# %%
dp_model = models.make_softmax_regression(SEED)
dp_start = dp_model.get_weights()
variables = dp_model.trainable_variables


def example_gradient(example):                        # the gradient of one example, alone
    x_i, y_i = example
    with tf.GradientTape() as tape:
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y_i[None], logits=dp_model(x_i[None]))[0]
    return tape.gradient(loss, variables)


x_few, y_few = x_client[:8], y_client[:8]
per_example = tf.vectorized_map(example_gradient, (x_few, y_few))
for batched, alone in zip(per_example, example_gradient((x_few[3], y_few[3])), strict=True):
    np.testing.assert_allclose(batched[3], alone, atol=1e-6)
print("per-example gradient shapes:", [tuple(g.shape) for g in per_example],
      "; example 3 equals its gradient computed alone")

# %% [markdown]
# Is that faster than computing the examples one at a time? For the 2NN and a batch of 32 we
# time `dp_sgd.per_example_gradients` (the helper version of the cell above, compiled) against
# 32 calls of a compiled one-example gradient. The cell prints the times, which depend on the
# machine:

# %% tags=["nbval-ignore-output"]
@tf.function(reduce_retracing=True)
def batch_of_one_gradient(x_i, y_i):                  # compiled, one example per call
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y_i, logits=two_nn(x_i)))
    return tape.gradient(loss, two_nn.trainable_variables)


x_32, y_32 = x_client[:32], y_client[:32]
timings = {}
for name, compute in [("vectorised", lambda: dp_sgd.per_example_gradients(two_nn, x_32, y_32)),
                      ("one at a time", lambda: [batch_of_one_gradient(x_32[i:i + 1],
                                                                       y_32[i:i + 1])
                                                 for i in range(32)])]:
    result = compute()                                # the first call traces the graph
    start = time.perf_counter()
    for _ in range(5):
        result = compute()
    timings[name] = (time.perf_counter() - start) / 5
    gradient_7 = result[0][7] if name == "vectorised" else result[7][0]   # example 7, kernel 1
    np.testing.assert_allclose(gradient_7, dp_sgd.per_example_gradients(
        two_nn, x_32[7:8], y_32[7:8])[0][0], rtol=1e-4, atol=1e-6)
print(", ".join(f"{name} {seconds * 1e3:.1f} ms" for name, seconds in timings.items()),
      f"for 32 examples of the 2NN: {timings['one at a time'] / timings['vectorised']:.1f}x")

# %% [markdown]
# The price is memory: the per-example gradients of a batch are $B \times P$ numbers, one full
# gradient per example instead of one for the batch.

# %% tags=["nbval-check-output"]
for name, m in [("softmax regression", dp_model), ("2NN", two_nn)]:
    print(f"{name:<18} P = {m.count_params():>7,}: per-example gradients of B = 32 take "
          f"{32 * m.count_params() * 4 / 1e6:5.1f} MB (the batch gradient "
          f"{m.count_params() * 4 / 1e6:.2f} MB)")

# %% [markdown]
# ### Clipping each example
#
# Scaling by $\min(1, C / \lVert g_i \rVert)$ leaves short gradients alone and shortens long
# ones to exactly $C$. With $C = 0.5$ every one of these eight examples is clipped (the cell
# asserts it):

# %%
clipping_norm = 0.5


def l2_norms(per_example):                            # one norm per example, over all weights
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.reshape(g, (len(g), -1)) ** 2, axis=1)
                             for g in per_example]))


factors = tf.minimum(1.0, clipping_norm / l2_norms(per_example))
clipped = [g * tf.reshape(factors, (-1,) + (1,) * (len(g.shape) - 1)) for g in per_example]
assert np.all(l2_norms(per_example) > clipping_norm)
print("norms before:", np.round(l2_norms(per_example).numpy(), 2))
print("norms after: ", np.round(l2_norms(clipped).numpy(), 2))

# %% [markdown]
# > **Pitfall: clipping the batch, or dividing by the batch you got.** Clipping the *mean*
# > gradient of the batch bounds the batch, not one example: a single outlier can still steer
# > it. And dividing the noisy sum by the realised batch size $|\mathcal{B}_t|$ instead of the
# > fixed $q n$ makes the step depend on whether one more example was sampled, outside what the
# > accountant analyses. DP-SGD clips every example and divides by $q n$.

# %% [markdown]
# ### DP-SGD from scratch
#
# The whole algorithm is the per-example gradients (compiled once with `tf.function`), Poisson
# sampling, the exact clipped sum, the exact noise and the step. The batches and the noise come
# from `schedule.PrivateRandomness`, the
# course's source of private randomness. Normally it is *secret*; here we ask for
# **reproducible** randomness, only so that the helper can be checked against this loop below.
# A run with a known seed is not private (anyone with the seed can regenerate and subtract the
# noise), and the helper says so with a warning; we catch it and print its one-line notice.

# %%
@tf.function(reduce_retracing=True)
def gradient_rows(x_batch, y_batch):                  # one row per example, every weight
    per_example = tf.vectorized_map(example_gradient, (x_batch, y_batch))
    return tf.concat([tf.reshape(g, (tf.shape(x_batch)[0], -1)) for g in per_example], axis=1)


EXPECTED_BATCH_SIZE = 32                              # q n: public, fixed before training
noise_multiplier, dp_learning_rate, num_steps = 1.0, 0.5, 100
q = EXPECTED_BATCH_SIZE / n_client                    # the published size n of this client
GRID = discrete_noise.GRID_STEPS                      # 2^16 integer steps per C
variance = discrete_noise.exact_variance_at_least((noise_multiplier * GRID) ** 2)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    randomness = schedule.PrivateRandomness.reproducible(SEED)  # NOT private: for the check
print("notice:", caught[0].message)
sizes = [int(np.prod(v.shape)) for v in variables]
for t in range(num_steps):
    batch = np.flatnonzero(randomness.sampling_rng(t).random(n_client) < q)     # Poisson
    total = np.zeros(sum(sizes), dtype=np.int64)
    if len(batch):                                    # clip onto the grid, sum exactly
        rows = gradient_rows(x_client[batch], y_client[batch]).numpy()
        total = discrete_noise.clip_to_integer_grid(rows, clipping_norm=clipping_norm,
                                                    steps=GRID).sum(axis=0)
    noisy = total + discrete_noise.discrete_gaussian(variance, total.size,  # round t's noise
                                                     randomness=randomness, round_index=t)
    step = noisy * (clipping_norm / GRID) / EXPECTED_BATCH_SIZE   # post-processing from here
    for variable, piece in zip(variables, np.split(step, np.cumsum(sizes)[:-1]), strict=True):
        variable.assign_sub((dp_learning_rate * piece).reshape(variable.shape).astype(np.float32))

# %% [markdown]
# The helper `dp_sgd.train` runs the same steps in one compiled function per step and returns
# the weights with the run's privacy. Parity check, with the same start, settings and
# (reproducible) seed:

# %%
target_delta = 1e-4
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dp_result = dp_sgd.train(
        models.make_softmax_regression(SEED), x_client, y_client,
        noise_multiplier=noise_multiplier, clipping_norm=clipping_norm, sampling_probability=q,
        num_steps=num_steps, learning_rate=dp_learning_rate, target_delta=target_delta,
        randomness=schedule.PrivateRandomness.reproducible(SEED),  # NOT private: the check
        expected_batch_size=EXPECTED_BATCH_SIZE)
print("notice:", caught[0].message)
for ours, helpers in zip(dp_model.get_weights(), dp_result.final_weights, strict=True):
    np.testing.assert_allclose(ours, helpers, rtol=1e-5, atol=1e-6)
print("from-scratch DP-SGD and dp_sgd.train agree; reproducible noise flagged:",
      dp_result.reproducible_noise)

# %% [markdown]
# ### What ε the run spends
#
# The $T = 100$ steps with $z = 1$ and $q = 32 / 679$ give this ε at δ = 10⁻⁴. It is the
# accountant's number for those three settings, nothing more. Is δ = 10⁻⁴ small enough? The
# usual advice is $\delta \ll 1/n$, because a mechanism that publishes each of the $n$
# examples in the clear with probability $\delta$ is $(0, \delta)$-DP, yet exposes someone with
# probability about $n\delta$. With only $n = 679$ examples, $1/n \approx 1.5 \times 10^{-3}$
# and 10⁻⁴ is only 15 times smaller ($n\delta \approx 0.07$): below $1/n$, not *well* below.
# The second line shows what a safer δ = 10⁻⁶ costs for the same run:

# %% tags=["nbval-check-output"]
epsilon = accounting.epsilon_per_round(noise_multiplier=noise_multiplier, sampling_probability=q,
                                       num_rounds=num_steps, target_delta=target_delta,
                                       accountant="discrete")[-1]  # the one of exact noise
assert dp_result.epsilon == epsilon
print(f"q = {q:.4f}, z = {noise_multiplier}, T = {num_steps}, delta = {target_delta:g} "
      f"(1/n = {1 / n_client:.1e}, n delta = {n_client * target_delta:.2f}): "
      f"epsilon = {epsilon:.3f}")
epsilon_small_delta = accounting.epsilon_per_round(
    noise_multiplier=noise_multiplier, sampling_probability=q, num_rounds=num_steps,
    target_delta=1e-6, accountant="discrete")[-1]
print(f"the same run at delta = 1e-06 (n delta = {n_client * 1e-6:.4f}): "
      f"epsilon = {epsilon_small_delta:.3f}")
print(dp_result.privacy_statement())

# %% [markdown]
# ### Accuracy against ε
#
# Now private runs: secret noise (the default), $T = 20 / q$ steps (on average 20 passes over
# the data), $C = 0.5$, $\eta = 0.5$, for several noise multipliers, next to two references
# without privacy: clipping without noise ($z = 0$, ε = ∞) and plain SGD with $B = 32$ for 20
# epochs. Because the noise is secret, the accuracies change a little from run to run; the ε do
# not. A short 2NN run at $z = 1$ (two passes) shows the helper on the larger model. It is much
# slower per step: every step puts all 199,210 gradient coordinates of every sampled example on
# the integer grid and draws as many exact noise integers (see the memory table above).

# %%
sweep_steps, sweep = round(20 / q), {}
for z in [0.0, 0.6, 1.0, 2.0, 4.0]:
    run_model = models.make_softmax_regression(SEED)
    run = dp_sgd.train(run_model, x_client, y_client, noise_multiplier=z,
                       clipping_norm=clipping_norm, sampling_probability=q,
                       num_steps=sweep_steps, learning_rate=dp_learning_rate,
                       target_delta=target_delta, expected_batch_size=EXPECTED_BATCH_SIZE)
    sweep[z] = (run.epsilon, client.evaluate(run_model, None, x_test, y_test)[1])
plain_weights, _ = client.client_update(
    run_model, dp_start, x_client, y_client, local_epochs=20, batch_size=32,
    client_learning_rate=dp_learning_rate, seed=SEED)
plain_accuracy = client.evaluate(run_model, plain_weights, x_test, y_test)[1]
start = time.perf_counter()
steps_2nn = round(2 / q)
run_2nn = dp_sgd.train(models.make_2nn(SEED), x_client, y_client, noise_multiplier=1.0,
                       clipping_norm=clipping_norm, sampling_probability=q,
                       num_steps=steps_2nn, learning_rate=0.2, target_delta=target_delta,
                       expected_batch_size=EXPECTED_BATCH_SIZE)
seconds_2nn = time.perf_counter() - start
accuracy_2nn = client.evaluate(two_nn, run_2nn.final_weights, x_test, y_test)[1]

# %% tags=["nbval-ignore-output"]
print(f"{'model':<20}{'z':>5}{'epsilon':>10}{'test accuracy':>15}")
for z, (eps, accuracy) in sweep.items():
    print(f"{'softmax regression':<20}{z:>5.1f}{eps:>10.3g}{accuracy:>15.1%}")
print(f"{'softmax regression':<20}{'plain SGD, no clipping, no noise':>30}{plain_accuracy:>10.1%}")
print(f"{'2NN':<20}{1.0:>5.1f}{run_2nn.epsilon:>10.3g}{accuracy_2nn:>15.1%}   "
      f"({steps_2nn} steps, {seconds_2nn / steps_2nn:.2f} s each)")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.2))
private = {z: r for z, r in sweep.items() if z > 0}
ax.plot([r[0] for r in private.values()], [r[1] for r in private.values()], marker="o",
        label="DP-SGD, softmax regression")
for z, (eps, accuracy) in private.items():
    ax.annotate(f"z = {z:g}", (eps, accuracy), textcoords="offset points", xytext=(6, 4),
                fontsize=8)
ax.axhline(sweep[0.0][1], color="0.5", ls="--", label="clipping only (z = 0, ε = ∞)")
ax.axhline(plain_accuracy, color="0.2", ls=":", label="plain SGD (no privacy)")
ax.set_xscale("log")
ax.set_ylim(min(r[1] for r in sweep.values()) - 0.1, max(plain_accuracy, 0.6) + 0.05)
ax.set_xlim(0.6 * min(r[0] for r in private.values()), 3 * max(r[0] for r in private.values()))
ax.set_xlabel(f"ε (δ = {target_delta:g}) after {sweep_steps} steps")
ax.set_ylabel("test accuracy")
ax.legend(frameon=False, fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# Each step to the left (smaller ε: more noise) costs accuracy, and clipping alone already
# costs some, because $C = 0.5$ shortens every per-example gradient of this model. With only
# 679 examples the noise is large compared with the signal: the noise on the sum has the same
# size whatever $n$ is, while the sum of clipped gradients grows with the batch. Protecting each
# example is cheaper the more examples a party holds; for the same reason DP-FedAvg in
# notebook 04 needs many clients to protect each of them.
#
# **Sanity check** (loose bounds: the noise is secret, so these accuracies vary between runs):

# %%
assert all(0.0 < sweep[z][0] < sweep[z_smaller][0] for z, z_smaller in [(4.0, 2.0), (2.0, 1.0),
                                                                        (1.0, 0.6)])
assert sweep[4.0][1] < sweep[0.0][1] - 0.05          # much noise costs accuracy
assert 0.4 < sweep[1.0][1] < 0.70, sweep[1.0][1]
assert 0.15 < accuracy_2nn < 0.70, accuracy_2nn
assert not run_2nn.reproducible_noise and np.isfinite(run_2nn.epsilon)
print("sanity checks passed")

# %% [markdown]
# ## Exercises
#
# ### ★ Predict: how many steps?
#
# Client 0 holds 679 examples. How many SGD steps does
# `client.client_update(..., local_epochs=3, batch_size=50, ...)` take on it? Write your
# prediction below, then run the check cell.
#
# <details><summary>Hint</summary>
#
# Each epoch is a fresh permutation cut into batches of 50; the last batch of an epoch is smaller,
# not dropped.
# </details>

# %%
predicted_steps = None  # replace None by your prediction (an integer)

# %%
# Check cell
actual_steps = len(schedule.client_batches(n_client, local_epochs=3, batch_size=50,
                                            rng=np.random.default_rng(SEED)))
if predicted_steps is None:
    print("Set predicted_steps above, then run this cell again.")
elif predicted_steps == actual_steps:
    print(f"Correct: 3 epochs x ceil(679 / 50) = {actual_steps} steps.")
else:
    print("Not quite: count the batches in one epoch, including the last, smaller one.")

# %% [markdown]
# ### ★ Predict: the worst digit
#
# Look at client 0's label counts at the top of the notebook. Which digit does the model trained
# on client 0 alone recognise **worst** on the test set?

# %%
predicted_worst_digit = None  # replace None by a digit 0-9

# %%
# Check cell
per_digit = results["client 0 alone"]["per_digit"]
worst = np.flatnonzero(per_digit <= per_digit.min() + 0.05)   # ties within 5 points count
if predicted_worst_digit is None:
    print("Set predicted_worst_digit above, then run this cell again.")
elif predicted_worst_digit in worst:
    print(f"Correct: digit {predicted_worst_digit} is recognised "
          f"{per_digit[predicted_worst_digit]:.0%} of the time; the client holds "
          f"{client_counts[predicted_worst_digit]} examples of it.")
else:
    print(f"Not quite: the client holds {client_counts[predicted_worst_digit]} examples of "
          f"{predicted_worst_digit}. Look for a digit it barely has.")

# %% [markdown]
# ### ★★ Modify: one step with weight decay
#
# Complete `l2_step(model, x_batch, y_batch, *, learning_rate, l2)`: one gradient step on the
# cross-entropy **plus** $\frac{\lambda}{2} \sum \lVert W \rVert^2$ over the kernels (the 2-D
# weights; biases are not penalised), updating the model's variables in place. It should follow
# the from-scratch loop above.
#
# <details><summary>Hint</summary>
#
# Add `0.5 * l2 * tf.reduce_sum(tf.square(v))` for every variable `v` with `len(v.shape) == 2`
# to the loss inside the tape. The penalty's gradient is $\lambda W$, so the step shrinks every
# kernel weight by a factor $(1 - \eta\lambda)$ on top of the usual step ("weight decay").
# </details>

# %%
def l2_step(model, x_batch, y_batch, *, learning_rate, l2):
    raise NotImplementedError("Exercise: write this function.")


# %%
# Check cell: compare with the closed form for softmax regression.
check_model = models.make_softmax_regression(SEED)
kernel, bias = check_model.get_weights()
xb, yb = x_client[:64], y_client[:64]
try:
    l2_step(check_model, xb, yb, learning_rate=0.5, l2=0.1)
    z = xb.reshape(64, -1) @ kernel + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    r = p / p.sum(axis=1, keepdims=True) - np.eye(10)[yb]
    expected_kernel = kernel - 0.5 * (xb.reshape(64, -1).T @ r / 64 + 0.1 * kernel)
    expected_bias = bias - 0.5 * r.mean(axis=0)
    np.testing.assert_allclose(check_model.get_weights()[0], expected_kernel, atol=1e-5)
    np.testing.assert_allclose(check_model.get_weights()[1], expected_bias, atol=1e-5)
    print("Correct: the kernel gets the extra l2 * W term, the bias does not.")
except NotImplementedError:
    print("Write l2_step above, then run this cell again.")
except AssertionError:
    print("Not quite: compare the kernel and the bias updates with the hint.")

# %% [markdown]
# ### ★★★ Design: a decaying learning rate
#
# Single-example SGD with a constant $\eta$ keeps bouncing around the minimum, because each
# step's gradient is noisy. Bottou, Curtis & Nocedal 2018 (Section 4.2, Theorems 4.6 and 4.7)
# show that stepsizes that shrink like $\eta_k = \eta_0 / (1 + k / k_0)$ remove that noise
# floor, for **strongly convex** objectives. The cross-entropy of softmax regression is convex
# but not strongly convex: adding the same vector to all ten columns of $W$ (or the same number
# to all ten biases) does not change any prediction, so the loss is flat in those directions
# (and on separable data it has no minimum at all). Adding the L2 penalty
# $\frac{\lambda}{2} \lVert w \rVert^2$ over *all* weights, biases included, makes the
# objective $\lambda$-strongly convex, and the theory applies.
#
# Write a single-example SGD loop for softmax regression on client 0 that minimises
# cross-entropy $+ \frac{\lambda}{2} \lVert w \rVert^2$ with $\lambda = 10^{-3}$ (the
# `l2_step` of the ★★ exercise is a start) and whose learning rate decays between epochs, and
# compare its final regularised training loss with the constant-rate run after the same
# number of examples. How do you pick $\eta_0$ and $k_0$ fairly? (No check cell: see the
# solutions notebook.)

# %% [markdown]
# ## Summary
#
# - A client update is plain gradient descent on the client's own data: logits from the model,
#   the cross-entropy from labels and logits, the gradient from `tf.GradientTape`,
#   $w \leftarrow w - \eta \nabla_w L$. `client.client_update` does exactly this.
# - The model's output is not a loss: `loss = model(batch)` runs without error but pushes all
#   logits down and never looks at the labels.
# - Per step, full-batch gradient descent makes the steadiest progress; per example seen,
#   mini-batch SGD is far ahead (here, loss after 10 epochs with $B = 32$ is below what 100 full
#   batch epochs reach). Small batches also need little memory, which is what makes training
#   on phones possible.
# - Keras `fit` with plain SGD gives the same weights as the from-scratch loop once it gets the
#   same batches in the same order.
# - Trained alone, client 0's 2NN reaches about 64% accuracy on the global test set and never
#   recognises a 1; trained on all the data, the same model reaches about 96% after one epoch.
# - DP-SGD protects each *example* of one party's data (add/remove one example, against an
#   observer of every model, with the trainer trusted): clip every per-example gradient to $C$,
#   add $\mathcal{N}(0, z^2 C^2)$ to the sum of a Poisson-sampled batch, divide by $q n$. Its ε
#   is the accountant's for $(z, q, T)$, and the noise must be secret for ε to mean anything.

# %% [markdown]
# ## Further reading
#
# - Bottou, Curtis & Nocedal 2018, "Optimization Methods for Large-Scale Machine Learning"
#   (SIAM Review 60(2)): Section 3.2 "Stochastic vs. Batch Optimization Methods" and Section 3.3
#   "Motivation for Stochastic Methods" for why SGD uses data more efficiently than full-batch
#   gradient descent; Section 4.2 "SG for Strongly Convex Objectives" for fixed and diminishing
#   stepsizes; Section 5.2 "Dynamic Sample Size Methods" for batch sizes between the extremes.
# - McMahan, Moore, Ramage, Hampson & Agüera y Arcas 2017, "Communication-Efficient Learning of
#   Deep Networks from Decentralized Data": Algorithm 1 (`ClientUpdate`), Section 3 for the 2NN
#   and CNN models.
# - Goodfellow, Bengio & Courville 2016, *Deep Learning*, Section 8.1.3 "Batch and Minibatch
#   Algorithms".
# - TensorFlow guide "Introduction to gradients and automatic differentiation", on what
#   `tf.GradientTape.gradient` does with non-scalar targets (it sums them).
# - Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang 2016, "Deep Learning with
#   Differential Privacy" (CCS): Section 3.1 and Algorithm 1 (DP-SGD: per-example clipping,
#   Gaussian noise, the moments accountant for sampled batches).
# - Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
#   Mechanism", Section 3, for the accounting of Poisson-sampled steps.
# - Shokri, Stronati, Song & Shmatikov 2017, "Membership Inference Attacks against Machine
#   Learning Models" (IEEE S&P), for what a model can reveal about its training examples.
