# %% [markdown]
# # Local training: gradient descent on one client's data
#
# After this notebook you will be able to train a model on a single client's data with gradient
# descent written from scratch, tell full-batch, mini-batch and single-example SGD apart, and
# use `fl_helpers.federated.client_update`, the client step of federated averaging.
#
# *Runtime: about 25 s on a laptop CPU.* Prerequisites:
# [00 — welcome to federated learning](00_welcome_to_federated_learning.ipynb) for the client
# splits; the idea of a derivative.

# %% [markdown]
# ## Learning goals
#
# - **Write** one gradient-descent step with `tf.GradientTape`: logits, loss, gradients, update.
# - **Recognise** the `loss = model(batch)` mistake and explain what it optimises instead.
# - **Compare** full-batch gradient descent, mini-batch SGD and single-example SGD, per step and
#   per example seen, and say why small devices train with small batches.
# - **Reproduce** Keras `compile`/`fit` training exactly with the from-scratch loop and with
#   `federated.client_update`.
# - **Measure** how far one client gets on its own, compared with a model trained on all data.

# %% [markdown]
# ## Setup

# %%
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import display

from fl_helpers import data, federated, models, plotting, reproducibility, widgets

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()

# %% [markdown]
# ## One client's data
#
# Federated learning starts on the device. Before averaging anything, each client trains the
# model it received on the data it holds, and nothing else. To see what that data looks like we
# split MNIST's 60,000 training images across $K = 100$ clients with the Dirichlet split of
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
# `federated.client_update(model, global_weights, x, y, *, local_epochs, batch_size,
# client_learning_rate, seed)`. It runs the same steps inside one compiled TensorFlow graph,
# which is much faster; `batch_size=None` means full batch. The parity check: 50 full-batch
# epochs from the same start give the same weights.

# %%
helper_weights, helper_n = federated.client_update(
    models.make_softmax_regression(SEED), initial_weights, x_client, y_client,
    local_epochs=50, batch_size=None, client_learning_rate=0.5, seed=SEED)
for ours, helpers in zip(model.get_weights(), helper_weights, strict=True):
    np.testing.assert_allclose(ours, helpers, atol=1e-5)
print(f"from-scratch loop and federated.client_update agree ({helper_n} examples)")

# %% [markdown]
# > **Pitfall: `loss = model(batch)`.** A model's output is not a loss. A widely read tutorial
# > trains with
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
    before = federated.evaluate(broken, None, x_test, y_test)
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = broken(x_client)                               # the mistake
        gradients = tape.gradient(loss, broken.trainable_variables)
        for variable, gradient in zip(broken.trainable_variables, gradients, strict=True):
            variable.assign_sub(rate * gradient)
    after = federated.evaluate(broken, None, x_test, y_test)
    print(f"{broken.name:<18} mean 'loss' after 30 steps {float(tf.reduce_mean(loss)):>12.4g} | "
          f"cross-entropy {before[0]:.3f} -> {after[0]:.3f}, "
          f"test accuracy {before[1]:.1%} -> {after[1]:.1%}")

# %% [markdown]
# The softmax-regression "loss" fell to about −400,000 while the cross-entropy and the accuracy
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
# one pass over the data, $\lceil n_k / B \rceil$ steps. The batch order comes from
# `federated.client_batches`: a fresh random permutation per epoch, cut into batches of $B$
# (the last one smaller).
#
# We train the 2NN on client 0 three ways: full batch for 100 steps (100 epochs), mini-batches
# of $B = 32$ for 10 epochs, and single examples ($B = 1$) for 5 epochs.
# `federated.sgd_loss_curve` runs exactly `client_update`'s training and measures the loss on
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
    curves[label] = federated.sgd_loss_curve(
        two_nn, two_nn_start, x_client, y_client, local_epochs=epochs, batch_size=batch_size,
        client_learning_rate=rate, seed=SEED)
    seconds[label] = time.perf_counter() - start

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
# Memory is the other reason devices train with small batches. A step must hold the activations
# of its whole batch for the backward pass; for the 2NN that is $784 + 200 + 200 + 10 = 1194$
# numbers per example:

# %% tags=["nbval-check-output"]
units_per_example = 784 + 200 + 200 + 10
for label, batch_size in [("B = 1", 1), ("B = 32", 32), ("client 0, full batch", n_client),
                          ("all of MNIST, full batch", len(y_train))]:
    kilobytes = batch_size * units_per_example * 4 / 1e3
    print(f"{label:<25} {batch_size:>6} examples -> {kilobytes:>11,.1f} kB of float32 activations")

# %% [markdown]
# ## The same training with Keras `compile` and `fit`
#
# Keras wraps the same loop: `compile` fixes the loss and the optimiser, `fit` runs the steps.
# With `keras.optimizers.SGD` (no momentum) and the cross-entropy from logits, one `fit` step is
# exactly our update. To compare weights we must also give `fit` the *same batches in the same
# order*. `fit` shuffles arrays itself and cuts them into equal batches across epoch boundaries,
# so we hand it a `tf.data.Dataset` that yields our pre-ordered batches from
# `federated.client_batches` (one row of index numbers per batch, of varying length), one `fit`
# epoch covering all of them (`shuffle=False` for clarity; a `Dataset` is never reshuffled by
# `fit`).

# %%
batches = federated.client_batches(n_client, local_epochs=2, batch_size=32,
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
update_weights, _ = federated.client_update(
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
alone_weights, _ = federated.client_update(
    two_nn, two_nn_start, x_client, y_client, local_epochs=20, batch_size=32,
    client_learning_rate=0.1, seed=SEED)
pooled_weights, _ = federated.client_update(
    two_nn, two_nn_start, x_train, y_train, local_epochs=1, batch_size=32,
    client_learning_rate=0.1, seed=SEED)


def accuracy_per_digit(weights):
    two_nn.set_weights(weights)
    predicted = np.concatenate([np.argmax(two_nn(x_test[i:i + 2000]), axis=1)
                                for i in range(0, len(x_test), 2000)])
    return np.array([np.mean(predicted[y_test == d] == d) for d in range(10)])


results = {}
for name, weights in [("client 0 alone", alone_weights), ("all 60,000 examples", pooled_weights)]:
    loss, accuracy = federated.evaluate(two_nn, weights, x_test, y_test)
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
# ### Try it
#
# Retrain the 2NN on client 0 with your own learning rate, batch size and number of epochs. The
# grey curve is the starting setting ($\eta = 0.1$, $B = 32$, 3 epochs); the line above the plot
# gives the final training loss and the accuracy on the global test set. Things to try: a large
# learning rate with $B = 1$ (it diverges); full batch with 10 epochs (10 steps: barely
# started); $B = 10$ versus $B = 100$ at the same learning rate.

# %% tags=["nbval-ignore-output"]
display(widgets.local_sgd_explorer(models.make_2nn, x_client, y_client,
                                   test_data=(x_test, y_test), client_learning_rate=0.1,
                                   batch_size=32, local_epochs=3, seed=SEED))

# %% [markdown]
# ## Exercises
#
# ### ★ Predict: how many steps?
#
# Client 0 holds 679 examples. How many SGD steps does
# `federated.client_update(..., local_epochs=3, batch_size=50, ...)` take on it? Write your
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
actual_steps = len(federated.client_batches(n_client, local_epochs=3, batch_size=50,
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
# step's gradient is noisy. Bottou, Curtis & Nocedal 2018 (Section 4.2) show that stepsizes that
# shrink like $\eta_k = \eta_0 / (1 + k / k_0)$ remove that noise floor for strongly convex
# losses. Write a single-example SGD loop for softmax regression on client 0 (you may call
# `federated.run_sgd` on one epoch's batches at a time) whose learning rate decays between
# epochs, and compare its final training loss with the constant-rate run after the same number
# of examples. How do you pick $\eta_0$ and $k_0$ fairly? (No check cell: see the solutions
# notebook.)

# %% [markdown]
# ## Summary
#
# - A client update is plain gradient descent on the client's own data: logits from the model,
#   the cross-entropy from labels and logits, the gradient from `tf.GradientTape`,
#   $w \leftarrow w - \eta \nabla_w L$. `federated.client_update` does exactly this.
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
