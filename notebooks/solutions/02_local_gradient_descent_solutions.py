# %% [markdown]
# # Solutions to the exercises of notebook 02 (local gradient descent)
#
# Try the exercises in `../02_local_gradient_descent.ipynb` first. This notebook rebuilds what
# the exercises need (the same client 0 of the same split), so it runs on its own.

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up messages

import math

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from fl_helpers import client, data, models, plotting, reproducibility, schedule

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
batches = schedule.client_batches(n_client, local_epochs=3, batch_size=50,
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
alone_weights, _ = client.client_update(
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
# One possible design. The objective is softmax regression's cross-entropy on client 0 plus
# $\frac{\lambda}{2} \lVert w \rVert^2$ over every weight, bias included, with
# $\lambda = 10^{-3}$: $\lambda$-strongly convex, so Bottou, Curtis & Nocedal's Section 4.2
# applies (without the penalty the loss is flat along the directions that shift all ten
# logits equally, and is not strongly convex). Single-example SGD for 5 epochs, with the rate
# lowered between epochs as $\eta_e = \eta_0 / (1 + e)$ for epoch $e = 0, 1, \dots$ (i.e.
# $k_0$ = one epoch), against a constant rate.
#
# Fairness: each schedule gets its best starting rate from the same small grid, the same
# batches (same seed) and the same number of examples; we compare the regularised training
# loss on all of the client's data, which is what both minimise. (A stricter comparison would
# choose the rates on one seed and report another, and average over several seeds.)
#
# The ★★ `l2_step` in eager mode would take minutes for 3,395 single-example steps per run, so
# the epoch loop below is the same step compiled with `tf.function`.

# %%
L2 = 1e-3
model = models.make_softmax_regression(SEED)
start_weights = model.get_weights()
x_tf, y_tf = tf.constant(x_client), tf.constant(y_client)


@tf.function(input_signature=[tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.float32)])
def sgd_epoch_l2(order, learning_rate):              # one single-example step per index
    for index in order:
        with tf.GradientTape() as tape:
            logits = model(tf.gather(x_tf, index[None]))
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.gather(y_tf, index[None]), logits=logits))
            loss += 0.5 * L2 * tf.add_n([tf.reduce_sum(v ** 2) for v in model.trainable_variables])
        gradients = tape.gradient(loss, model.trainable_variables)
        for variable, gradient in zip(model.trainable_variables, gradients, strict=True):
            variable.assign_sub(learning_rate * gradient)


def regularised_loss():
    penalty = 0.5 * L2 * sum(float(np.sum(w ** 2)) for w in model.get_weights())
    return client.evaluate(model, None, x_client, y_client)[0] + penalty


def single_example_sgd(initial_rate, *, decay, epochs=5):
    model.set_weights(start_weights)
    batches = schedule.client_batches(n_client, local_epochs=epochs, batch_size=1,
                                      rng=np.random.default_rng(SEED))
    losses = [regularised_loss()]
    for epoch in range(epochs):
        rate = initial_rate / (1 + epoch) if decay else initial_rate
        order = np.concatenate(batches[epoch * n_client:(epoch + 1) * n_client])
        sgd_epoch_l2(order, np.float32(rate))
        losses.append(regularised_loss())
    return np.array(losses)


grid = [0.01, 0.03, 0.1, 0.3, 1.0]
runs = {(rate, decay): single_example_sgd(rate, decay=decay) for rate in grid
        for decay in (False, True)}
best = {decay: min(grid, key=lambda rate: runs[(rate, decay)][-1]) for decay in (False, True)}
for decay in (False, True):
    print(f"{'decaying' if decay else 'constant'} rate: best eta_0 = {best[decay]}, final "
          f"regularised training loss {runs[(best[decay], decay)][-1]:.4f}; all: "
          + ", ".join(f"{rate}: {runs[(rate, decay)][-1]:.4f}" for rate in grid))
for rate in grid:
    print(f"eta_0 = {rate}: constant / decaying final loss = "
          f"{runs[(rate, False)][-1] / runs[(rate, True)][-1]:.2f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for decay, style in [(False, "-"), (True, "--")]:
    ax.plot(runs[(best[decay], decay)], style, marker=".",
            label=f"{'decaying' if decay else 'constant'}, η0 = {best[decay]}")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss + L2 penalty")
ax.set_yscale("log")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# What the numbers say (the printed lines above; the cell below asserts each claim):
#
# - With the best starting rate of the grid each, the decaying schedule ends **lower** than the
#   constant one, and its best $\eta_0$ is larger: a decaying schedule can afford a bold start
#   because it calms down later.
# - From a start that is too large (0.1 and up here), the constant rate stays several times
#   higher: each single-example step is noisy, and a constant step never stops amplifying the
#   noise. The decaying rate recovers from the same starts.
# - From a start that is too small (0.01), the decay hurts: it shrinks steps that were already
#   too short, and the constant rate ends lower.
#
# That is what the theory predicts for strongly convex objectives (Section 4.2, Theorem 4.6:
# with a fixed stepsize SG converges only to a neighbourhood of the minimum whose size grows
# with the stepsize; Theorem 4.7: diminishing stepsizes $\eta_k = \beta / (\gamma + k)$, the
# form used here, converge at rate $O(1/k)$). A schedule makes SGD less sensitive to the number
# that is hardest to guess in advance, but it adds its own knob ($k_0$) to tune.

# %%
final = {key: losses[-1] for key, losses in runs.items()}
assert final[(best[True], True)] < final[(best[False], False)]
assert best[True] > best[False]
assert all(final[(rate, False)] > 2 * final[(rate, True)] for rate in (0.1, 0.3, 1.0))
assert final[(0.01, False)] < final[(0.01, True)]
print("each claim above holds for these runs")

# %% [markdown]
# How to test the design: fix the seed and the example budget, tune every schedule on the same
# grid, and repeat over several seeds (and a seed not used for tuning) before believing a
# difference of a few percent.
