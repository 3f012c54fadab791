# %% [markdown]
# # Welcome: federated learning, and why it still needs privacy
#
# After this notebook you will be able to describe one round of federated learning, explain why
# keeping raw data on the device does not by itself keep it private, and split MNIST across
# simulated clients in the three ways the rest of the course uses.
#
# *Runtime: about 15 s on a busy 2-core CPU (load average 3 when measured).*
# Prerequisites: Python and numpy, and the idea of
# training a model by gradient descent. No earlier notebook.

# %% [markdown]
# ## Learning goals
#
# - **Describe** the federated loop: the server sends a model, clients train on their own data,
#   the server averages their updates, and the loop repeats.
# - **Show** with a few lines of numpy that a model update can give away the exact example it was
#   computed from.
# - **Navigate** the course: its notebooks, widgets, exercises and solutions.
# - **Check** that your environment has the libraries and working widgets.
# - **Split** MNIST across clients in an IID, a shard and a Dirichlet way, and read the label
#   histograms.

# %% [markdown]
# ## Setup
#
# Every notebook starts with one cell of imports and seeds. `reproducibility.seed_everything`
# seeds Python, numpy and TensorFlow and returns a numpy generator `rng`, which every random
# helper takes explicitly, so that a re-run prints the same numbers. `quiet.import_tensorflow()`
# comes first: on a machine without a GPU, TensorFlow's C++ start-up prints lines about missing
# CUDA drivers and CPU instructions, which only say that it will use the CPU. The helper drops
# exactly those start-up lines; every warning or error printed later still shows (notebook 02
# says more).

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up lines

import platform
from importlib import metadata

import ipywidgets as widgets
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import display
from matplotlib.figure import Figure

from fl_helpers import data, plotting, reproducibility

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()

# %% [markdown]
# ## The federated loop in one picture
#
# In ordinary ("centralised") training, every example is copied to one place and the model is
# trained there. In *federated learning* (McMahan et al. 2017) the data stays on the devices that
# produced it: phones, hospitals, banks. Each of the $N$ clients holds $n_k$ examples. One round
# $t$ goes like this:
#
# 1. the server sends the current global model weights $w_t$ to some of the clients, the set
#    $S_t$;
# 2. each client $k$ trains $w_t$ for a few steps on its own data, which gives $w^k_{t+1}$;
# 3. the clients send their new weights (or the difference $w^k_{t+1} - w_t$) back;
# 4. the server averages them, weighting each client by its share of the data of this round's
#    clients:
#
# $$w_{t+1} = \sum_{k \in S_t} \frac{n_k}{n}\, w^k_{t+1}, \qquad n = \sum_{k \in S_t} n_k .$$
#
# This is Federated Averaging (FedAvg, McMahan et al. 2017, Algorithm 1). Below, the small images
# are real digits that each simulated client holds.

# %%
(x_train, y_train), (x_test, y_test) = data.load_mnist()
loop_split = data.partition_shards(y_train, 100, shards_per_client=2, rng=rng)
plotting.plot_federated_loop([x_train[idx][::250] for idx in loop_split[:4]])
plt.show()

# %% [markdown]
# Why weight by $n_k / n$? For the simplest model there is — the mean of the data — the weighted
# average of the clients' local means is *exactly* the mean of the pooled data, so nothing is lost
# by never pooling it. Here each client's "model" is the mean image of its own digits (in float64,
# so that rounding does not hide the equality):

# %%
local_means = [x_train[idx].mean(axis=0, dtype=np.float64) for idx in loop_split]
num_examples = np.array([idx.size for idx in loop_split])
global_mean = sum(n_k / num_examples.sum() * w_k
                  for n_k, w_k in zip(num_examples, local_means, strict=True))
np.testing.assert_allclose(global_mean, x_train.mean(axis=0, dtype=np.float64), atol=1e-12)
print("weighted average of 100 local means == mean of the pooled data")

# %% [markdown]
# For a neural network, averaging weights after several local steps is no longer exactly the same
# as training on the pooled data, and the gap grows when clients hold very different data. That is
# what notebook 03 measures.

# %% [markdown]
# ## Why privacy still matters when raw data stays home
#
# FedAvg never moves raw data, but the clients still send something computed from it. Updates
# leak:
#
# - **Membership inference.** From a model or its updates an attacker can guess whether a given
#   record was in the training data (Shokri et al. 2017, "Membership Inference Attacks Against
#   Machine Learning Models"); in federated learning, an honest-but-curious server or client can
#   do so from the updates it sees (Nasr, Shokri & Houmansadr 2019, "Comprehensive Privacy
#   Analysis of Deep Learning"; Melis et al. 2019, "Exploiting Unintended Feature Leakage in
#   Collaborative Learning").
# - **Gradient inversion.** From a gradient, an attacker can *reconstruct* the training images
#   and labels, by optimising a dummy input until its gradient matches the one sent (Zhu, Liu &
#   Han 2019, "Deep Leakage from Gradients"; Geiping et al. 2020, "Inverting Gradients — How
#   easy is it to break privacy in federated learning?").
#
# The simplest case needs no optimisation at all. Take a softmax-regression model with weights
# $W$ (784 × 10) and bias $b$, and one example $(x, y)$. With $p = \mathrm{softmax}(W^\top x + b)$
# and the cross-entropy loss, the gradients are
#
# $$\frac{\partial L}{\partial W} = x\,(p - e_y)^\top, \qquad
#   \frac{\partial L}{\partial b} = p - e_y .$$
#
# Every column of the weight gradient is the image $x$ times one entry of the bias gradient. So
# whoever sees the update can divide one by the other and read off the image; the label is the one
# negative entry of $\partial L / \partial b$ (Zhao, Mopuri & Bilen 2020, "iDLG").

# %%
x_secret, y_secret = x_train[7].reshape(-1), y_train[7]          # one client's single example
weights = rng.normal(scale=0.01, size=(784, 10))
bias = np.zeros(10)
logits = x_secret @ weights + bias
p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
grad_bias = p - np.eye(10)[y_secret]                              # what the client sends ...
grad_weights = np.outer(x_secret, grad_bias)                      # ... to the server

j = np.argmax(np.abs(grad_bias))                                  # the attacker's side
x_reconstructed = grad_weights[:, j] / grad_bias[j]
label_reconstructed = np.argmin(grad_bias)
np.testing.assert_allclose(x_reconstructed, x_secret, atol=1e-6)
print(f"true label {y_secret}, label read from the update {label_reconstructed}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(4, 2.2))
for ax, image, title in zip(axes, [x_secret, x_reconstructed],
                            ["client's image", "read from its gradient"], strict=True):
    ax.imshow(image.reshape(28, 28), cmap="gray_r")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# With a batch of examples the gradient is an average and this trick blurs, but the optimisation
# attacks above still recover recognisable images from batches and from several local steps.
#
# > **Pitfall: "the data never leaves the device, so it is private."** Federated learning
# > reduces what is *collected*; it does not limit what can be *inferred* from what is sent.
#
# The course's answer is **differential privacy** (DP): clip each client's update to a bounded
# norm and add calibrated Gaussian noise to their sum, so that the sequence of models the server
# releases changes only a little, in a precise sense, whether or not any one **client** took part
# with all of its data. This is DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private
# Recurrent Language Models"); its unit of privacy is the client (a phone, a hospital), not one
# example and not one person who may own several devices, and the server that adds the noise is
# trusted. Notebooks 01 and 04 build it step by step, notebook 02 protects single examples
# instead (DP-SGD), notebook 05 shows what an attacker sees, and notebook 06 shows how secure
# aggregation with noise that the clients add (distributed DP) removes the need to trust the
# server *to see only the sum and to add the noise*: that holds against an honest-but-curious
# server, which follows the protocol but reads everything it receives. A server that deviates
# (drops or invents clients, sends different models) needs further defences, and clients that
# collude with the server weaken the guarantee.

# %% [markdown]
# ## How the course is organised
#
# | notebook | you learn to |
# |---|---|
# | `00_welcome_to_federated_learning` (this one) | picture the federated loop, see why updates leak, split MNIST across clients |
# | `01_differential_privacy_noise` | add Laplace and Gaussian noise calibrated to sensitivity and ε, and count ε with an accountant |
# | `02_local_gradient_descent` | train a model on one client's data with plain SGD: the client update |
# | `03_federated_averaging` | run FedAvg over many clients, IID and non-IID, and reproduce McMahan et al. 2017 |
# | `04_multi_client_experiment` | train with DP-FedAvg and trade accuracy against ε across many clients |
# | `04b_dp_fedavg_at_scale` | take DP-FedAvg to 60,000 clients, weigh each design choice, choose the clipping norm on public data, and run it as production systems do: adaptive clipping, DP-FTRL without sampling, a report a reader can check |
# | `05_attacks_and_defences` | reconstruct a client's images from its update, infer membership, and measure how DP-FedAvg stops both |
# | `06_secure_aggregation` | mask updates so the server learns only their sum, survive dropouts, and add distributed discrete Gaussian noise |
# | `07_robustness` | poison a federation with a few bad clients, defend with robust aggregation rules, and survive failing clients |
# | `08_cross_silo_deployment` | federate four hospitals' real data with patient-level DP, and deploy the same code on Flower |
# | `09_vertical_and_transfer_learning` | align a bank's and a credit bureau's customers with private set intersection, train across their columns under Paillier encryption, read labels from split learning's gradients and stop it with label DP, and transfer labels to customers only one party knows |
# | `10_heterogeneity_and_personalisation` | watch non-IID clients drift from the global optimum, cure it with FedProx, SCAFFOLD and adaptive server optimizers, personalise with fine-tuning and Ditto, and judge every method by its worst clients |
#
# Where these tools meet real systems (keyboards, hospitals, banks, factories, smart cities,
# self-driving cars), and what data-protection law (GDPR, China's PIPL) asks of them: the page
# [Applications](../docs/applications.md).
#
# ### Notation
#
# One set of symbols for the whole course, each with the name the code uses:
#
# | symbol | meaning | code name |
# |---|---|---|
# | $N$ | number of clients in the federation | `num_clients` |
# | $n_k$, $n$ | examples of client $k$; of the clients of a round | `num_examples` |
# | $T$, $t$ | number of rounds; the round index (0-based in code) | `num_rounds`, `round_index` |
# | $q$ | fraction of clients per round (McMahan et al. 2017 write $C$) or, with Poisson sampling, each client's chance to join a round | `sampling_probability` |
# | $m$ | clients per round ($q N$ on average) | `clients_per_round` |
# | $E$, $B$, $\eta$ | local epochs, batch size, client learning rate | `local_epochs`, `batch_size`, `client_learning_rate` |
# | $\eta_s$ | server learning rate | `server_learning_rate` |
# | $C$ | clipping norm: the largest L2 norm an update (or gradient) may have | `clipping_norm` |
# | $z$, $\sigma$ | noise multiplier; noise standard deviation $\sigma = z C$ | `noise_multiplier` |
# | $\Delta$ | sensitivity of a query | `sensitivity` |
# | $\varepsilon$, $\delta$ | the privacy guarantee; a budget to stay within | `epsilon`, `delta`; `target_epsilon`, `target_delta` |
#
# Each notebook follows the same shape: learning goals, a setup cell, then short sections that
# explain an idea and a result. Where the idea is the lesson (the Laplace sampler, clipping, the
# weighted average, one client update), it is written from scratch in a few lines first, and the
# notebook switches to the `fl_helpers` version once a parity check shows they agree.
# Necessary but uninteresting pieces (loading MNIST, the fast multi-client engine, and in the
# later notebooks most of the attack and protocol code) come straight from the helpers: read
# their source when you want the details.
#
# - **Widgets.** Sections called *Try it* have sliders (ε, learning rate, clients per round, …)
#   that redraw a plot. Most widgets come after a static figure of the same idea, so the
#   notebook also reads well where widgets do not run (e.g. on GitHub); where there is none, the
#   text around the widget gives the stored numbers.
# - **Exercises.** ★ predict, ★★ modify, ★★★ design. Each ★ and ★★ exercise has a *check cell*
#   that tells you whether your answer is right.
# - **Solutions** are in `notebooks/solutions/`, one notebook per chapter. Try first.
# - **Helpers** live in the `fl_helpers` package; read its source whenever a notebook calls it.

# %% [markdown]
# ## Environment check
#
# The versions below are the ones your kernel runs. The stored outputs of the course were
# produced with the versions pinned in `requirements.txt`; other versions mostly work, but printed
# numbers may differ in the last digits.

# %% tags=["nbval-ignore-output"]
print(f"python        {platform.python_version()}")
print(f"tensorflow    {tf.__version__}")
print(f"keras         {keras.__version__}")
print(f"numpy         {np.__version__}")
for package in ["dp-accounting", "ipywidgets", "matplotlib"]:
    print(f"{package:<13} {metadata.version(package)}")

# %% [markdown]
# If widgets work, moving the slider below changes the digit and its label. If you see text
# such as `IntSlider(value=0, …)` instead, read "Widgets not showing?" in the README.

# %% tags=["nbval-ignore-output"]
slider = widgets.IntSlider(value=0, min=0, max=99, description="example")
caption = widgets.Label()
canvas = widgets.Output()


def show_example(change=None):
    caption.value = f"training example {slider.value}: label {y_train[slider.value]}"
    with canvas:
        canvas.clear_output(wait=True)
        # A Figure of its own, not pyplot: pyplot's shared state can be redrawn by the kernel
        # while this callback is still drawing (see the widget notes in the README).
        fig = Figure(figsize=(1.6, 1.6))
        ax = fig.subplots()
        ax.imshow(x_train[slider.value], cmap="gray_r")
        ax.set_axis_off()
        display(fig)


slider.observe(show_example, names="value")
show_example()
display(widgets.VBox([slider, caption, canvas]))

# %% [markdown]
# ## A first look at MNIST across clients
#
# MNIST has 60,000 training and 10,000 test images of handwritten digits, 28 × 28 grey levels
# scaled to [0, 1]. `data.load_mnist()` reads them from `data/mnist/` (no download) after checking
# their checksums. One example of each digit:

# %%
first_of_each = [np.flatnonzero(y_train == digit)[0] for digit in range(10)]
fig, axes = plt.subplots(1, 10, figsize=(8, 1.1))
for ax, index in zip(axes, first_of_each, strict=True):
    ax.imshow(x_train[index], cmap="gray_r")
    ax.set_title(str(y_train[index]), fontsize=9)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# A real federation does not get to choose how data is spread over devices. The course simulates
# three cases, with $N = 100$ clients:
#
# - **IID** (`data.partition_iid`): shuffle, then deal 600 examples to each client. Every client
#   looks like a small copy of the whole data set.
# - **Shards** (`data.partition_shards`): the "pathological non-IID" split of McMahan et al. 2017,
#   Section 3. Sort by label, cut into 200 shards of 300, give each client 2 shards, so most
#   clients hold only two digits.
# - **Dirichlet** (`data.partition_dirichlet`): for each digit, draw how that digit's examples
#   are shared among the clients from a Dirichlet distribution with concentration $\alpha$ (the
#   per-class split used in the experiments of Yurochkin et al. 2019 and Wang et al. 2020; Hsu
#   et al. 2019 instead draw each client's label proportions). Small $\alpha$ gives very skewed
#   clients of different sizes; large $\alpha$ approaches IID.

# %%
splits = {
    "IID": data.partition_iid(y_train.size, 100, rng=rng),
    "shards": data.partition_shards(y_train, 100, shards_per_client=2, rng=rng),
    "Dirichlet, alpha = 0.1": data.partition_dirichlet(y_train, 100, alpha=0.1, rng=rng),
}
fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
for ax, (name, split) in zip(axes, splits.items(), strict=True):
    plotting.plot_label_distribution(y_train, split, max_clients=20, title=name, ax=ax)
    if ax is not axes[0]:
        ax.get_legend().remove()  # one legend is enough
fig.tight_layout()
plt.show()

# %% [markdown]
# Each bar is one client (the first 20 of 100), coloured by digit. IID clients all look alike.
# Shard clients mostly hold two colours, of 300 examples each. Dirichlet clients differ both in
# which digits they hold and in how many examples they have. The numbers behind the picture:

# %% tags=["nbval-check-output"]
print(f"x_train {x_train.shape} {x_train.dtype}, y_train {y_train.shape} {y_train.dtype}")
print(f"x_test  {x_test.shape} {x_test.dtype}, y_test  {y_test.shape} {y_test.dtype}")
per_digit = np.bincount(y_train, minlength=10)
print(f"training examples per digit {per_digit.min():,}..{per_digit.max():,}")
for name, split in splits.items():
    counts = data.label_counts(y_train, split)
    sizes = counts.sum(axis=1)
    digits = (counts > 0).sum(axis=1)
    top_share = (counts.max(axis=1) / sizes).mean()
    print(f"{name:<23} clients={len(split)}  examples per client {sizes.min()}..{sizes.max()}  "
          f"digits per client {digits.mean():.2f}  largest digit's share {top_share:.2f}")

# %% [markdown]
# How skewed the clients are matters a great deal: notebook 03 shows FedAvg needing many more
# rounds on the shard split than on the IID one (McMahan et al. 2017, Section 3; Kairouz et al.
# 2021, Section 3.1).

# %% [markdown]
# ## Exercises
#
# ### ★ Predict: how many digits does a shard client hold?
#
# Under the shard split above (200 shards of 300 sorted examples, 2 shards per client), what is
# the **most common** number of distinct digits a client holds? Write your prediction below,
# then run the check cell.
#
# <details><summary>Hint</summary>
#
# Each shard holds 300 consecutive examples in label order, and every digit has between 5,421 and
# 6,742 examples. How often does a shard contain two labels?
# </details>

# %%
predicted_digits_per_shard_client = None  # replace None by your prediction (an integer)

# %%
# Check cell
shard_digits = (data.label_counts(y_train, splits["shards"]) > 0).sum(axis=1)
most_common = int(np.bincount(shard_digits).argmax())
if predicted_digits_per_shard_client is None:
    print("Set predicted_digits_per_shard_client above, then run this cell again.")
elif predicted_digits_per_shard_client == most_common:
    print(f"Correct: {np.mean(shard_digits == most_common):.0%} of clients hold {most_common}.")
else:
    print(f"Not quite: the counts of clients holding 1, 2, 3, 4 digits are "
          f"{np.bincount(shard_digits, minlength=5)[1:].tolist()}.")

# %% [markdown]
# ### ★★ Modify: find the alpha where Dirichlet clients become nearly IID
#
# Complete `largest_digit_share(alpha)`: split `y_train` across 100 clients with
# `data.partition_dirichlet(..., alpha=alpha, rng=np.random.default_rng(SEED))` and return the
# average over clients of the largest digit's share of that client's data. (IID gives about
# 0.12, a one-digit client 1.0.) Then set `alpha_nearly_iid` to the **smallest** alpha in
# `[0.01, 0.1, 1, 10, 100]` whose share is below 0.14.
#
# <details><summary>Hint</summary>
#
# `data.label_counts(y_train, split)` gives a (clients × 10) table; divide its row maxima by its
# row sums.
# </details>

# %%
def largest_digit_share(alpha):
    raise NotImplementedError("Exercise: write this function.")


alpha_nearly_iid = None  # replace None by one of 0.01, 0.1, 1, 10, 100

# %%
# Check cell
def _reference_share(alpha):
    counts = data.label_counts(y_train, data.partition_dirichlet(
        y_train, 100, alpha=alpha, rng=np.random.default_rng(SEED)))
    return float((counts.max(axis=1) / counts.sum(axis=1)).mean())


try:
    assert abs(largest_digit_share(1.0) - _reference_share(1.0)) < 1e-9, "share is off"
    shares = {a: _reference_share(a) for a in [0.01, 0.1, 1, 10, 100]}
    answer = min(a for a, share in shares.items() if share < 0.14)
    print("Correct." if alpha_nearly_iid == answer else f"Function right; alpha not yet: {shares}")
except NotImplementedError:
    print("Write largest_digit_share above, then run this cell again.")
except AssertionError as error:
    print(f"Not quite: {error}; compare with the hint.")

# %% [markdown]
# ### ★★★ Design: clients that differ in size, not in labels
#
# Real devices also differ in *how much* data they hold (Kairouz et al. 2021, Section 3.1, calls
# this quantity skew). Write `partition_by_size(num_examples, num_clients, *, sigma, rng)` that
# gives clients log-normally distributed sizes (log-sizes with standard deviation `sigma`) while
# the labels stay IID, every client gets at least one example, and the split is disjoint and
# complete. Plot it with `plotting.plot_label_distribution` for `sigma = 1`. How would you test
# it? (There is no check cell: that is part of the design. See the solutions notebook.)

# %% [markdown]
# ## Summary
#
# - In federated learning, clients train on their own data and a server averages their updates,
#   weighted by $n_k / n$ (FedAvg); the raw data never moves.
# - Updates are functions of the data and can leak it: for softmax regression, one example's
#   gradient *is* the image, and attacks such as Deep Leakage from Gradients recover images from
#   real networks. Differential privacy is the principled defence this course builds up to.
# - How data is spread over clients (IID, shards, Dirichlet $\alpha$) changes what each client
#   sees, and later how fast FedAvg learns.
# - Every notebook has the same shape: goals, setup, explain → code → result, *Try it* widgets,
#   tiered exercises with check cells, solutions in `notebooks/solutions/`.

# %% [markdown]
# ## Further reading
#
# - McMahan, Moore, Ramage, Hampson & Agüera y Arcas 2017, "Communication-Efficient Learning of
#   Deep Networks from Decentralized Data" (AISTATS): Section 2 and Algorithm 1 for FedAvg,
#   Section 3 for the IID and pathological non-IID MNIST splits.
# - Kairouz, McMahan et al. 2021, "Advances and Open Problems in Federated Learning"
#   (Foundations and Trends in Machine Learning): Section 1 for the setting (cross-device and
#   cross-silo, Table 1), Section 3.1 for non-IID data, Section 4 for privacy.
# - Zhu, Liu & Han 2019, "Deep Leakage from Gradients" (NeurIPS): Section 3 for the attack,
#   Section 4 for what it recovers.
# - Shokri, Stronati, Song & Shmatikov 2017, "Membership Inference Attacks Against Machine
#   Learning Models" (IEEE S&P).
# - Yurochkin et al. 2019, "Bayesian Nonparametric Federated Learning of Neural Networks"
#   (ICML), and Wang et al. 2020, "Federated Learning with Matched Averaging" (ICLR): their
#   experiments use the per-class Dirichlet split of this course. Hsu, Qi & Brown 2019, "Measuring
#   the Effects of Non-Identical Data Distribution for Federated Visual Classification",
#   Section 3: the per-client variant.
