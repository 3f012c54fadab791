# %% [markdown]
# # Solutions to the exercises of notebook 02 (local gradient descent)
#
# Try the exercises in `../02_local_gradient_descent.ipynb` first. This notebook rebuilds what
# the exercises need (the same client 0 of the same split), so it runs on its own.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from fl_helpers import data, federated, models, plotting, reproducibility

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()
(x_train, y_train), (x_test, y_test) = data.load_mnist()
split = data.partition_dirichlet(y_train, 100, alpha=0.5, rng=rng)
x_client, y_client = x_train[split[0]], y_train[split[0]]
client_counts = np.bincount(y_client, minlength=10)
n_client = len(y_client)

# %% [markdown]
# ## ★ Predict: how many steps?
#
# **42.** One epoch cuts a permutation of the 679 examples into $\lceil 679 / 50 \rceil = 14$
# batches: 13 of 50 and a last one of 29, which is kept, not dropped. Three epochs give
# $3 \times 14 = 42$ steps.

# %%
batches = federated.client_batches(n_client, local_epochs=3, batch_size=50,
                                   rng=np.random.default_rng(SEED))
print(f"{len(batches)} steps = 3 x ceil(679 / 50) = {3 * math.ceil(679 / 50)}; "
      f"batch sizes of the first epoch: {[len(b) for b in batches[:14]]}")

# %% [markdown]
# ## ★ Predict: the worst digit
#
# **1.** Client 0 holds no 1s at all, so the model has never been pushed to give the digit-1
# logit a high score: it essentially never predicts 1. Digits 4 and 7 (6 and 7 examples) come
# next. Retraining the client's model as in the notebook:

# %%
two_nn = models.make_2nn(SEED)
alone_weights, _ = federated.client_update(
    two_nn, two_nn.get_weights(), x_client, y_client, local_epochs=20, batch_size=32,
    client_learning_rate=0.1, seed=SEED)
two_nn.set_weights(alone_weights)
predicted = np.argmax(two_nn.predict(x_test, batch_size=2000, verbose=0), axis=1)
for digit in range(10):
    print(f"digit {digit}: {client_counts[digit]:>3} training examples, "
          f"test accuracy {np.mean(predicted[y_test == digit] == digit):6.1%}")
print(f"the model predicts 1 for {np.sum(predicted == 1)} of {len(y_test)} test images")

# %% [markdown]
# ## ★★ Modify: one step with weight decay
#
# The penalty goes inside the tape, so that `tape.gradient` differentiates it together with the
# cross-entropy. Only the kernels (2-D variables) are penalised.

# %%
def l2_step(model, x_batch, y_batch, *, learning_rate, l2):
    with tf.GradientTape() as tape:
        logits = model(x_batch)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y_batch, logits=logits))
        penalty = sum(tf.reduce_sum(tf.square(v)) for v in model.trainable_variables
                      if len(v.shape) == 2)
        loss = loss + 0.5 * l2 * penalty
    gradients = tape.gradient(loss, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, gradients, strict=True):
        variable.assign_sub(learning_rate * gradient)
    return float(loss)


# %%
# The notebook's check cell.
check_model = models.make_softmax_regression(SEED)
kernel, bias = check_model.get_weights()
xb, yb = x_client[:64], y_client[:64]
l2_step(check_model, xb, yb, learning_rate=0.5, l2=0.1)
z = xb.reshape(64, -1) @ kernel + bias
p = np.exp(z - z.max(axis=1, keepdims=True))
r = p / p.sum(axis=1, keepdims=True) - np.eye(10)[yb]
expected_kernel = kernel - 0.5 * (xb.reshape(64, -1).T @ r / 64 + 0.1 * kernel)
expected_bias = bias - 0.5 * r.mean(axis=0)
np.testing.assert_allclose(check_model.get_weights()[0], expected_kernel, atol=1e-5)
np.testing.assert_allclose(check_model.get_weights()[1], expected_bias, atol=1e-5)
print("Correct: the kernel gets the extra l2 * W term, the bias does not.")

# %% [markdown]
# Equivalently, the step is $W \leftarrow (1 - \eta\lambda) W - \eta \nabla_W L$: every step
# first shrinks the kernel by a constant factor, hence the name *weight decay*. (With adaptive
# optimisers such as Adam the two are no longer the same; that is the point of AdamW.)

# %% [markdown]
# ## ★★★ Design: a decaying learning rate
#
# One possible design. Single-example SGD on softmax regression (a convex problem, where
# Bottou, Curtis & Nocedal's Section 4.2 applies), 5 epochs, with the rate lowered between
# epochs as $\eta_e = \eta_0 / (1 + e)$ for epoch $e = 0, 1, \dots$ (i.e. $k_0$ = one epoch).
#
# Fairness: each schedule gets its best starting rate from the same small grid, the same
# batches (same seed) and the same number of examples; we compare the training loss on all of
# the client's data, which is what both minimise. (A stricter comparison would choose the rates
# on one seed and report another, and average over several seeds.)

# %%
def single_example_sgd(initial_rate, *, decay, epochs=5):
    model = models.make_softmax_regression(SEED)
    batches = federated.client_batches(n_client, local_epochs=epochs, batch_size=1,
                                       rng=np.random.default_rng(SEED))
    losses = [federated.evaluate(model, None, x_client, y_client)[0]]
    for epoch in range(epochs):
        rate = initial_rate / (1 + epoch) if decay else initial_rate
        epoch_batches = batches[epoch * n_client:(epoch + 1) * n_client]
        federated.run_sgd(model, x_client, y_client, epoch_batches, learning_rate=rate)
        losses.append(federated.evaluate(model, None, x_client, y_client)[0])
    return np.array(losses)


grid = [0.1, 0.3, 1.0]
runs = {(rate, decay): single_example_sgd(rate, decay=decay) for rate in grid
        for decay in (False, True)}
for decay in (False, True):
    best = min(grid, key=lambda rate: runs[(rate, decay)][-1])
    print(f"{'decaying' if decay else 'constant'} rate: best eta_0 = {best}, final training loss "
          f"{runs[(best, decay)][-1]:.4f}; all: "
          + ", ".join(f"{rate}: {runs[(rate, decay)][-1]:.4f}" for rate in grid))

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for decay, style in [(False, "-"), (True, "--")]:
    best = min(grid, key=lambda rate: runs[(rate, decay)][-1])
    ax.plot(runs[(best, decay)], style, marker=".",
            label=f"{'decaying' if decay else 'constant'}, η0 = {best}")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss")
ax.set_yscale("log")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# What the numbers say: with its best starting rate each, the two schedules end at about the
# same training loss after five epochs. The difference is **robustness**. With a constant rate,
# a start that is too large (0.3, 1.0) leaves SGD bouncing at a loss several times higher: each
# single-example step is noisy, and a constant step never stops amplifying the noise. From
# those same starts the decaying rate ends far lower (0.3 even gives the best run of all).
# That is what the theory predicts for strongly convex losses (Section 4.2: with a fixed
# stepsize SG converges only to a neighbourhood of the minimum whose size grows with the
# stepsize; diminishing stepsizes with $\sum_k \eta_k = \infty$ and
# $\sum_k \eta_k^2 < \infty$ remove it). A schedule makes SGD less
# sensitive to the number that is hardest to guess in advance.
#
# How to test the design: fix the seed and the example budget, tune every schedule on the same
# grid, and repeat over several seeds (and a seed not used for tuning) before believing a
# difference of a few percent.
