# %% [markdown]
# # Attacks on federated learning, and differential privacy as the defence, measured
#
# After this notebook you will be able to reconstruct a client's images from the update it sends,
# tell whether an example or a client was in the training data, draw the limit that differential
# privacy puts on every such attack, and audit a DP-FedAvg implementation for bugs.
#
# *Runtime: about 4 min on a busy 2-core CPU (load average 8 when measured).*
# Prerequisites:
# [00 Welcome](00_welcome_to_federated_learning.ipynb) (why updates leak),
# [01 Differential privacy](01_differential_privacy_noise.ipynb) (the Gaussian mechanism,
# $(\varepsilon, \delta)$, an empirical audit) and
# [04 The multi-client experiment](04_multi_client_experiment.ipynb) (DP-FedAvg: clip, sum, noise,
# divide by $qN$; client-level $\varepsilon$).

# %% [markdown]
# ## Learning goals
#
# - **Reconstruct** a client's image exactly from a FedSGD update of a fully connected network,
#   and a batch of images with gradient matching (DLG/iDLG); measure the result with SSIM and
#   PSNR.
# - **Measure** how clipping and Gaussian noise stop reconstruction, and what $\varepsilon$ the
#   stopping noise corresponds to.
# - **Attack** membership of an example and of a client (loss threshold, LiRA) and report it the
#   way the literature asks: ROC on log axes, TPR at 0.1 % FPR.
# - **Draw** the bound that $(\varepsilon, \delta)$-DP and the exact privacy-loss distribution put
#   on every membership test, and read a measured ROC against it.
# - **Audit** DP-FedAvg with canary clients: turn an attack into a lower bound on $\varepsilon$ that
#   catches broken implementations.

# %% [markdown]
# ## Setup
#
# TensorFlow is imported through `fl_helpers.quiet` first (no C++ start-up lines in the
# outputs). The attacks live in `fl_helpers.attacks`, the audit in `fl_helpers.audit`. The
# heavier sweeps (a dozen models per privacy level for membership inference, the same no-DP
# models stopped early for a comparison at matched accuracy, five images per point for the
# inversion curves) come from `benchmarks/attacks_sweep.py`, whose stored results this notebook
# reads.

# %%
import json
import math
import warnings

from fl_helpers import quiet

quiet.import_tensorflow()

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from IPython.display import display  # noqa: E402

from fl_helpers import (  # noqa: E402
    accounting,
    aggregation,
    attack_widgets,
    attacks,
    audit,
    data,
    models,
    paths,
    plotting,
    reproducibility,
    schedule,
    training,
)

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()
(x_train, y_train), (x_test, y_test) = data.load_mnist()
RESULTS = paths.results_dir()  # benchmarks/results in the checkout
inversion_results = json.loads((RESULTS / "attacks_inversion.json").read_text())
membership_results = json.loads((RESULTS / "attacks_membership.json").read_text())
matched_results = json.loads((RESULTS / "attacks_matched.json").read_text())


def show_images(rows, titles, *, row_labels=None):
    """A grid of 28x28 images, one row per list in ``rows``."""
    fig, axes = plt.subplots(len(rows), len(rows[0]), squeeze=False,
                             figsize=(1.1 * len(rows[0]), 1.25 * len(rows)))
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if image is None:  # an empty slot
                axes[r, c].set_axis_off()
                continue
            axes[r, c].imshow(np.asarray(image).reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(titles[r][c], fontsize=8)
        if row_labels:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout()
    plt.show()


# %% [markdown]
# ## 1. Analytic inversion: one update, one image, exactly
#
# In **FedSGD** a client computes the gradient of its loss on its data at the global weights
# $w$ and sends the update $\Delta = -\eta\,\nabla L$. Take the 2NN of notebook 03 (784 inputs,
# two hidden layers of 200 ReLU units). Its first layer computes $h_j = x \cdot W_{:,j} + b_j$ for
# every unit $j$, so by the chain rule, for **one** example $x$,
#
# $$\frac{\partial L}{\partial W_{:,j}} = x \,\frac{\partial L}{\partial b_j}
# \qquad\Longrightarrow\qquad x = \frac{\Delta W_{:,j}}{\Delta b_j}
# \quad\text{for any unit } j \text{ with } \Delta b_j \ne 0 .$$
#
# The learning rate cancels, and so would any clipping factor. This is the observation of
# Phong et al. 2017 (Section 3), made general by Geiping et al. 2020 (Section 3,
# Proposition 3.1). The server
# knows $w$ (it sent it) and receives $\Delta$: it can read the image off the update.

# %%
model = models.make_2nn(seed=SEED)
weights = [w.numpy() for w in model.weights]
activations = attacks.model_activations(model)
x_one, y_one = x_train[:1], y_train[:1]
update = [-0.1 * g for g in attacks.gradient(weights, activations, x_one, y_one)]  # FedSGD
kernel_update, bias_update = update[0], update[1]          # (784, 200) and (200,)
unit = int(np.argmax(np.abs(bias_update)))                 # any unit with db_j != 0 works
x_hat = kernel_update[:, unit] / bias_update[unit]          # the attack, from scratch

# %% tags=["nbval-check-output"]
print(f"update: {sum(u.size for u in update):,} numbers; "
      f"{np.count_nonzero(bias_update)} of 200 first-layer units carry the image")
print("largest pixel error of the reconstruction below 1e-6:",
      bool(np.abs(x_hat - x_one.ravel()).max() < 1e-6))
print(f"SSIM {attacks.ssim(x_hat, x_one)[0]:.4f}")

# %% [markdown]
# Every unit that the image activates gives the whole image back, to float32 rounding: an SSIM
# (structural similarity, 1 = identical, Wang et al. 2004) of 1. **Parity check**:
# `attacks.invert_dense_layer` returns one candidate per active unit, largest $|\Delta b_j|$
# first, and its first candidate is ours.

# %%
candidates, units = attacks.invert_dense_layer(kernel_update, bias_update)
np.testing.assert_allclose(candidates[0], x_hat, rtol=1e-6, atol=1e-7)
assert units[0] == unit
print("parity check passed:", len(candidates), "candidates, all exact:",
      bool(np.allclose(candidates, x_one.reshape(1, -1), atol=1e-4)))

# %% [markdown]
# ### A batch: mixtures, and the images that still come out
#
# For a batch of $B$ images the gradient is the mean over the batch, so
# $\Delta W_{:,j}/\Delta b_j = \sum_n g_{nj} x_n / \sum_n g_{nj}$: a weighted **mixture** of the
# images that activate unit $j$. But a ReLU unit that fires for exactly one image of the batch
# gives that image exactly. With 200 random units and 8 images, most images own some unit.
# To *measure* which images came out we pair each original with its most similar candidate
# (`attacks.match_to_originals`, which needs the originals: the attacker cannot do this step,
# but can look at the 200 candidates and see the digits).

# %%
batch = np.array([int(np.flatnonzero(y_train == d)[0]) for d in range(8)])  # digits 0..7
x_batch, y_batch = x_train[batch], y_train[batch]
batch_update = [-0.1 * g for g in attacks.gradient(weights, activations, x_batch, y_batch)]
candidates, _ = attacks.invert_dense_layer(batch_update[0], batch_update[1])
match, batch_ssim = attacks.match_to_originals(candidates, x_batch)

# %% tags=["nbval-check-output"]
print(f"{len(candidates)} candidates; SSIM of each original's best candidate:",
      np.round(batch_ssim, 3).tolist())

# %%
show_images([x_batch, candidates[match], candidates[:8]],
            [[f"digit {d}" for d in y_batch], [f"SSIM {s:.2f}" for s in batch_ssim],
             ["largest |db|"] + [""] * 7],
            row_labels=["originals", "best unit", "first units"])

# %% [markdown]
# Top row: the client's batch. Middle: for each image, the unit that shows it best. Bottom: the
# first candidates by $|\Delta b_j|$, many of them overlays of two or three digits. A batch does
# not hide its images; it only makes the attacker sort them out. The stored sweep over five
# batches of each size says the same:

# %% tags=["nbval-check-output"]
for size in ("1", "4", "8"):
    rows = inversion_results["batch"][size]
    print(f"batch {size}: analytic SSIM mean {np.mean(rows['analytic']):.3f} "
          f"(min {np.min(rows['analytic']):.3f}); DLG mean {np.mean(rows['dlg']):.3f}")

# %% [markdown]
# ## 2. Optimisation attack: DLG with iDLG labels
#
# The analytic trick needs a dense first layer. **Deep Leakage from Gradients** (DLG, Zhu et al.
# 2019, Algorithm 1) needs only the gradient: start from random dummy images $\hat x$ and move
# them until the gradient they would produce at $w$ matches the observed one,
#
# $$\hat x^\star = \arg\min_{\hat x}\; 1 - \cos\big(\nabla_w L(w; \hat x, \hat y),\; -\Delta\big)
#   + \lambda\,\mathrm{TV}(\hat x),$$
#
# with the cosine distance of Geiping et al. 2020 (Section 4, Eq. 4: insensitive to the update's
# scale, so clipping does not help) and a small total-variation prior. The labels $\hat y$ come
# first, for free. **iDLG** (Zhao et al. 2020, Section 3) does it for **one** example: the
# gradient of the last bias is $p - \mathrm{onehot}(y)$, negative only at the true label. For a
# batch the gradient is the mean $\frac1B\sum_n (p_n - \mathrm{onehot}(y_n))$; when the batch's
# labels are distinct and the untrained model's probabilities are small, its negative entries
# are still the batch's labels, which is what `attacks.idlg_labels` reads off. That batch
# extension is not iDLG's: label restoration for batches is Yin et al. 2021 (GradInversion) and
# Wainakh et al. 2022 (who also count repeated labels), and it fails where a label repeats or a
# confident model outweighs one image's $-1$. Our batch has eight distinct digits:

# %%
last_bias_gradient = -batch_update[-1]  # the gradient is -update / eta
print("labels from the update:", sorted(attacks.idlg_labels(last_bias_gradient, 8).tolist()),
      "true:", sorted(y_batch.tolist()))
dlg_rows, dlg_titles = [], []
for size in (1, 4):
    xs, ys = x_batch[:size], y_batch[:size]
    upd = [-0.1 * g for g in attacks.gradient(weights, activations, xs, ys)]
    recon, labels = attacks.dlg_attack(weights, activations, upd, batch_size=size, num_steps=300)
    order, scores = attacks.match_to_originals(recon, xs)
    dlg_rows += [list(xs), list(recon[order])]
    dlg_titles += [[f"digit {d}" for d in ys], [f"SSIM {s:.2f}" for s in scores]]

# %%
dlg_rows = [row + [None] * (4 - len(row)) for row in dlg_rows]
dlg_titles = [t + [""] * (4 - len(t)) for t in dlg_titles]
show_images(dlg_rows, dlg_titles, row_labels=["B=1 original", "B=1 DLG", "B=4 originals",
                                              "B=4 DLG"])

# %% [markdown]
# A few hundred Adam steps recover recognisable digits from the update alone, for one image and
# for a batch; the table above shows batches of 8 too. PSNR (peak signal-to-noise ratio,
# $10\log_{10}(1/\mathrm{MSE})$ for pixels in $[0, 1]$) tells the same story in decibels:

# %%
print("PSNR of the B = 4 DLG reconstructions (dB):",
      np.round(attacks.psnr(dlg_rows[3], dlg_rows[2]), 1).tolist())

# %% [markdown]
# ### After $E$ local epochs (FedAvg)
#
# A FedAvg client sends $w_k - w$ after several local steps: a **sum of gradients taken at moving
# weights**. The ratio $\Delta W_{:,j} / \Delta b_j$ is then a mixture across steps as well as
# images, and DLG matches one gradient at $w$ to something that is not one gradient. Both
# attacks should degrade as $E$ grows. With full-batch steps of learning rate 0.1 the weights
# barely move in five steps, so here they degrade only a little; many mini-batch steps mix far
# more (Geiping et al. 2020, Section 6, still recover images from such updates by simulating the
# local steps inside the attack, which we do not):

# %% tags=["nbval-check-output"]
for epochs, rows in inversion_results["local_epochs"].items():
    print(f"E = {epochs} full-batch steps on 8 images: analytic SSIM "
          f"{np.mean(rows['analytic']):.3f}, DLG {np.mean(rows['dlg']):.3f}")

# %% [markdown]
# ## 3. The defence: clip, then add noise
#
# DP-FedAvg clips every update to L2 norm $C$ and adds $\mathcal N(0, z^2C^2)$ per coordinate
# (notebook 04). Suppose an observer sees **one client's** clipped and noised update (local DP,
# or a round where that client is the only one in the sum). Clipping alone changes nothing: the
# analytic ratio is scale-free.
#
# > **Pitfall: clipping alone is not DP.** Clipping bounds how much one client *can* move the
# > sum (the sensitivity); it hides nothing. The clipped update below gives the image back with
# > SSIM 1, exactly like the raw one. Privacy comes from the noise calibrated to that bound.

# %%
CLIP = inversion_results["setting"]["clipping_norm"]
sim_rng = np.random.default_rng(SEED)  # a reproducible simulation of the observer's view
clipped_only = attacks.clip_and_noise(update, clipping_norm=CLIP, noise_multiplier=0.0,
                                      rng=sim_rng)
recovered = attacks.invert_dense_least_squares(clipped_only[0], clipped_only[1])
print(f"update norm {math.sqrt(sum(float(np.sum(u * u)) for u in update)):.3f} clipped to "
      f"C = {CLIP}; SSIM of the analytic attack on it: {attacks.ssim(recovered, x_one)[0]:.3f}")

# %% [markdown]
# With noise, the attacker's best analytic move is to combine all 200 units, a least-squares fit
# of $\Delta W_{:,j} \approx x\,\Delta b_j$: $\hat x = \sum_j \Delta b_j \Delta W_{:,j} /
# \sum_j \Delta b_j^2$ (`attacks.invert_dense_least_squares`, exact without noise), which
# averages the noise over the units. We sweep $z$ live for this attack, and read the DLG curve
# (five images, 300 steps per point) from the benchmark.

# %%
z_grid = inversion_results["setting"]["noise_multipliers"]
live = [attacks.ssim(attacks.invert_dense_least_squares(*attacks.clip_and_noise(
    update, clipping_norm=CLIP, noise_multiplier=z, rng=np.random.default_rng(s))[:2]), x_one)[0]
    for z in z_grid for s in range(3)]
live = np.array(live).reshape(len(z_grid), 3).mean(axis=1)
stored = {kind: np.array([np.mean(inversion_results["noise"][str(z)][kind]) for z in z_grid])
          for kind in ("analytic", "dlg")}


def first_z_below(zs, ssims, level=0.3):
    """The z where the curve first drops below ``level`` (interpolated in log z)."""
    i = int(np.argmax(ssims < level))
    (z0, z1), (s0, s1) = zs[i - 1:i + 1], ssims[i - 1:i + 1]
    return math.exp(math.log(z0) + (s0 - level) / (s0 - s1) * (math.log(z1) - math.log(z0)))


zs = np.array(z_grid)
z_stop = first_z_below(zs[1:], stored["dlg"][1:])

# %% tags=["nbval-check-output"]
z_analytic = first_z_below(zs[1:], stored["analytic"][1:])
print(f"SSIM < 0.3 from z = {z_analytic:.3f} (analytic, least squares) and z = {z_stop:.3f} (DLG)")
for label, q, rounds in [("this one update, released once", 1.0, 1),
                         ("notebook 04's schedule, q = 0.1, T = 30", 0.1, 30)]:
    eps = accounting.dp_fedavg_epsilon(noise_multiplier=z_stop, sampling_probability=q,
                                       num_rounds=rounds, target_delta=1e-5)
    print(f"epsilon at z = {z_stop:.3f}, delta = 1e-5, {label}: {eps:,.0f}")

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.4))
ax.semilogx(zs[1:], stored["dlg"][1:], "o-", label="DLG (benchmark, 5 images)")
ax.semilogx(zs[1:], stored["analytic"][1:], "s-", label="analytic, least squares (benchmark)")
ax.semilogx(zs[1:], live[1:], "x--", color="gray", label="analytic, this image (live)")
ax.axhline(0.3, color="k", lw=0.8, ls=":")
ax.axvline(z_stop, color="C3", lw=0.8, ls=":", label=f"DLG below 0.3 at z = {z_stop:.3f}")
ax.set(xlabel="noise multiplier z (noise std z C per coordinate)", ylabel="SSIM",
       title=f"Reconstruction of one clipped (C = {CLIP}) and noised update")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Once the update is clipped, the curve does not depend on $C$: the signal has norm $C$ and the
# noise has standard deviation $zC$ in each of about 200,000 coordinates. Reconstructions
# stop being recognisable at noise multipliers far below the $z \approx 1$ of a useful privacy
# budget; the $\varepsilon$ printed above for that $z$ is astronomically large.
#
# Keep apart what was **observed** and what is **guaranteed**. Observed: *these two* attacks
# (300 steps of DLG, the least-squares inversion), on *five* images of one untrained network,
# stop producing recognisable digits at that small $z$. Guaranteed: nothing. An $\varepsilon$ in
# the hundreds certifies no limit on any attack; a stronger one (a learnt image prior, more
# steps, an attacker who knows the other images) may well reconstruct through the same noise.
# What DP does guarantee about reconstruction is a bound on any attacker's success that grows
# with $\varepsilon$ and says something only at small $\varepsilon$ (reconstruction robustness,
# Balle, Cherubin, Hayes 2022, Section 6). $\varepsilon$ is defined against a
# harder-to-defeat attack, membership inference (section 4), and that is where a small
# $\varepsilon$ earns its keep.
#
# > **Pitfall: who sees the update before the noise.** With *central* DP (notebook 04) the
# > server adds the noise to the **sum**: the server itself receives every client's clipped,
# > un-noised update, from which section 1's attack is exact. Central DP protects the clients
# > from whoever sees the *released models*, not from the server. Only local noise (each client
# > noises its own update, as simulated here) or secure aggregation (notebook 06: the server
# > learns only the sum) keeps individual updates from the server.

# %% [markdown]
# ### Try it
#
# Move the noise multiplier $z$ and the clipping norm $C$. The update is the stored FedSGD update
# of the image above; every move clips it, adds fresh simulated noise (same seed each time, so
# only the settings change the picture) and runs the least-squares analytic attack. Watch what
# happens when $C$ is larger than the update's norm: nothing is clipped, but the noise $zC$
# still grows with $C$.

# %% tags=["nbval-ignore-output"]
panel = attack_widgets.inversion_explorer(update, x_one[0], noise_multiplier=0.003,
                                          clipping_norm=CLIP)
display(panel)

# %% [markdown]
# ### The released update of a DP-FedAvg round
#
# What does an observer of the *released* model see? One round of central DP-FedAvg with ten
# FedSGD clients of one image each: the server clips each update to $C$, sums, adds
# $\mathcal N(0, z^2C^2)$ and divides by $qN = 10$ (`aggregation.DPFedAvg`, the library's own
# rule; its noise is reproducible here, visibly, so the stored output can be checked). The sum
# is a batch of ten, so without noise the analytic attack still pulls images out of it; with
# the $z = 1$ of a useful budget nothing is left.

# %%
round_clients = np.array([int(np.flatnonzero(y_train == d)[1]) for d in range(10)])
round_updates = [[-0.1 * g for g in attacks.gradient(weights, activations, x_train[[i]],
                                                      y_train[[i]])] for i in round_clients]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # "reproducible noise: not private" (known)
    round_randomness = schedule.PrivateRandomness.reproducible(SEED)
released_ssim = {}
for z in (0.0, 1.0):
    rule = aggregation.DPFedAvg(clipping_norm=CLIP, noise_multiplier=z, expected_clients=10.0)
    released = rule.aggregate(round_updates, np.ones(10, dtype=np.int64), aggregation.RoundContext(
        round_index=0, num_clients=100, randomness=round_randomness))
    released_ssim[z] = attacks.match_to_originals(
        attacks.invert_dense_layer(released[0], released[1])[0], x_train[round_clients])[1]

# %% tags=["nbval-check-output"]
for z, scores in released_ssim.items():
    print(f"z = {z}: clients whose image comes out with SSIM > 0.9: {int(np.sum(scores > 0.9))} "
          f"of 10 (best SSIM per client, median {np.median(scores):.2f})")

# %% [markdown]
# Without noise, clipping and averaging leave most clients' images readable in the released
# model's change. With $z = 1$ the released update is safe from this attack, while the *server*,
# which saw the ten clipped updates before adding noise, could still invert each one exactly.

# %% [markdown]
# ## 4. Membership inference: was this example, or this client, in the training data?
#
# Reconstruction is the dramatic attack; **membership inference** is the one DP is defined
# against. The attacker holds a candidate record and the trained model, and guesses whether the
# record was in the training data. DP's $\varepsilon$ is exactly a bound on how well *any* such
# guess can do.
#
# The setting (benchmark and live runs alike): a pool of 1,000 MNIST images forms 100 fixed
# clients of 10 images. A model trains on a random half of the clients (each in with
# probability 1/2), with FedAvg (no DP) or DP-FedAvg ($q = 0.5$, $C = 1$, $\delta = 10^{-4}$,
# 20 rounds, $z$ set for the target $\varepsilon$). The 2NN with 10 local epochs on 10 images
# overfits, which is what the attacks feed on. Two attacks:
#
# - **Loss threshold** (Yeom et al. 2018, Section 3.2): "member" if the model's loss on the
#   record is low.
# - **LiRA, offline** (Carlini et al. 2022, Sections 4 and 6.2): train *shadow* models on random
#   halves of the pool; for each record, fit a Gaussian to its confidence
#   $\phi = \log\frac{p_y}{1 - p_y}$ in the shadow models that did **not** train on it, and score
#   the target's $\phi$ by its z-score. A record that is always easy scores low; a hard record the
#   model nailed scores high. The fast engine makes a dozen models per setting affordable.
#
# First one target model live, without DP, attacked by the loss threshold:

# %%
s = membership_results["setting"]
pool = np.random.default_rng(0).permutation(len(y_train))[:s["pool_size"]]
x_pool, y_pool = x_train[pool], y_train[pool]
pool_clients = [(x_pool[10 * k:10 * k + 10], y_pool[10 * k:10 * k + 10]) for k in range(100)]
members = np.random.default_rng(SEED).random(100) < 0.5   # a random half of the clients
chosen = [pool_clients[k] for k in np.flatnonzero(members)]
common = dict(num_rounds=s["num_rounds"], local_epochs=s["local_epochs"],
              batch_size=s["batch_size"], client_learning_rate=s["client_learning_rate"], seed=0)
target = training.run_fedavg(models.make_2nn, chosen, clients_per_round=len(chosen),
                             progress=False, **common)
logits = attacks.per_example_logits(target.final_weights, activations, x_pool)
losses = attacks.per_example_losses(logits, y_pool)
is_member = np.repeat(members, 10)

# %% tags=["nbval-check-output"]
print(f"{members.sum()} member clients ({is_member.sum()} images), {(~members).sum()} "
      f"non-member clients")

# %%
fpr, tpr = attacks.roc_curve(attacks.loss_threshold_scores(losses[is_member]),
                             attacks.loss_threshold_scores(losses[~is_member]))
train_acc = np.mean(logits[is_member].argmax(1) == y_pool[is_member])
test_acc = np.mean(logits[~is_member].argmax(1) == y_pool[~is_member])
print(f"accuracy on members {train_acc:.3f}, on non-members {test_acc:.3f}; "
      f"mean loss {losses[is_member].mean():.3f} vs {losses[~is_member].mean():.3f}")
print(f"loss-threshold attack: AUC {attacks.auc(fpr, tpr):.3f}, TPR at 1% FPR "
      f"{attacks.tpr_at_fpr(fpr, tpr, 0.01):.3f}")

# %% [markdown]
# The model is right on more members than non-members, and its losses show it, so the attack's
# AUC is above the 0.5 of guessing. But at 1 % FPR it names hardly any members: the images with
# the lowest losses are the easy ones, members or not. And AUC averages over all thresholds.
# LiRA's point is that privacy is about the **low-FPR regime**: can the attacker name *some*
# members with near certainty? The benchmark's models answer it: each is attacked with all the
# others of its setting as shadow models, and the scores of all of them are pooled (the counts
# are printed first).

# %% tags=["nbval-check-output"]
settings = membership_results["settings"]
first = settings["none"]["example_lira"]
print(f"{membership_results['setting']['models']} models per setting: {first['num_members']} "
      f"member and {first['num_nonmembers']} non-member scores per example-level attack")
print(f"{'epsilon':>8} {'z':>6} {'test acc':>8} | {'attack':<14} {'AUC':>6} {'TPR@1%':>7} "
      f"{'TPR@0.1%':>8}")
for key, r in settings.items():
    for name in ("example_loss", "example_lira", "client_lira"):
        a = r[name]
        z_text = "-" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.2f}"
        print(f"{key:>8} {z_text:>6} {np.mean(r['test_accuracy']):8.3f} | {name:<14} "
              f"{a['auc']:6.3f} {a['tpr_at_1pct']:7.4f} {a['tpr_at_0.1pct']:8.4f}")

# %% [markdown]
# Read the rows for "none" first: LiRA's TPR at 0.1 % FPR is many times the 0.001 of guessing,
# even where the AUC looks modest. `client_lira` asks the client-level question ("was client
# $k$ in the federation?") by averaging the LiRA scores of the client's ten images: a client
# leaves ten traces, so it is easier to spot than one image. Under DP the attacks fall towards
# guessing, and the models pay in test accuracy (the `test acc` column): with only about 50
# clients per model, the noise that buys $\varepsilon = 2$ or 1 leaves the model near chance.
# DP-FedAvg needs many clients to be useful (notebook 04, "why more clients help").
#
# Read those rows with care. At $\varepsilon = 2$ and 1 the models are near chance, and a model
# that learnt nothing leaks nothing: the low attack rates there show mostly that the noise
# erased the signal, not that DP kept a *useful* model private. Is the same true at
# $\varepsilon = 8$, where the models learn something? A fair comparison holds the accuracy
# fixed.
#
# ### At matched accuracy: the no-DP models, stopped early
#
# The benchmark's `matched` sweep trains the twelve no-DP models again (same pool, clients,
# membership and settings) and **stops them early**: after 1, 2, 3, 5, 10 and 20 rounds it
# attacks every model, with the other eleven *stopped at the same round* as its shadow models.
# Each row is a no-DP federation that learnt only as much as its round allowed:

# %% tags=["nbval-check-output"]
stopped = matched_results["settings"]
print(f"no DP, stopped early ({matched_results['setting']['models']} models per row)")
print(f"{'rounds':>6} {'test acc':>8} | {'attack':<14} {'AUC':>6} {'TPR@1%':>7} {'TPR@0.1%':>8}")
for key, r in stopped.items():
    for name in ("example_lira", "client_lira"):
        a = r[name]
        print(f"{key:>6} {np.mean(r['test_accuracy']):8.3f} | {name:<14} {a['auc']:6.3f} "
              f"{a['tpr_at_1pct']:7.4f} {a['tpr_at_0.1pct']:8.4f}")

# %% [markdown]
# The last row is the table's no-DP setting again and agrees with it. Without DP the leakage
# grows as the models learn. Now put the DP models on the same axes, by their accuracy:

# %%
def mean_accuracy(result):
    return float(np.mean(result["test_accuracy"]))


fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, metric, label in zip(axes, ("auc", "tpr_at_1pct"), ("AUC", "TPR at 1% FPR"), strict=True):
    for name, style in (("client_lira", "o"), ("example_lira", "s")):
        ax.plot([mean_accuracy(r) for r in stopped.values()],
                [r[name][metric] for r in stopped.values()], style + "-", color="C3",
                label=f"{name}, no DP, stopped after 1-20 rounds")
        ax.plot([mean_accuracy(settings[k]) for k in ("8", "2", "1")],
                [settings[k][name][metric] for k in ("8", "2", "1")], style, color="C0", ms=8,
                label=f"{name}, DP (epsilon = 8, 2, 1)")
    for k in ("8", "2", "1"):
        ax.annotate(f"eps {k}", (mean_accuracy(settings[k]), settings[k]["client_lira"][metric]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.axhline(0.5 if metric == "auc" else 0.01, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="test accuracy (mean of the 12 models)", ylabel=label)
axes[0].legend(fontsize=7, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# The dotted lines are guessing. The matched pair is the $\varepsilon = 8$ models and the no-DP
# models stopped after one round. The standard error of each AUC (Hanley & McNeil 1982; it
# treats the pooled scores as independent, so read it as a yardstick, not a test):

# %% tags=["nbval-check-output"]
def auc_standard_error(auc, num_pos, num_neg):
    """Hanley & McNeil 1982's standard error of an AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return math.sqrt((auc * (1 - auc) + (num_pos - 1) * (q1 - auc**2)
                      + (num_neg - 1) * (q2 - auc**2)) / (num_pos * num_neg))


for label, r in [("DP, epsilon = 8", settings["8"]), ("no DP, after 1 round", stopped["1"])]:
    print(f"{label}: test accuracy {mean_accuracy(r):.3f}")
    for name in ("example_lira", "client_lira"):
        a = r[name]
        se = auc_standard_error(a["auc"], a["num_members"], a["num_nonmembers"])
        print(f"    {name:<13} AUC {a['auc']:.3f} (SE {se:.3f}), TPR at 1% FPR "
              f"{a['tpr_at_1pct']:.4f}, at 0.1% {a['tpr_at_0.1pct']:.4f}")
dp8, early = settings["8"]["client_lira"], stopped["1"]["client_lira"]
gap_se = math.hypot(auc_standard_error(dp8["auc"], dp8["num_members"], dp8["num_nonmembers"]),
                    auc_standard_error(early["auc"], early["num_members"],
                                       early["num_nonmembers"]))
print(f"client-level AUC gap {early['auc'] - dp8['auc']:.3f} = "
      f"{(early['auc'] - dp8['auc']) / gap_se:.1f} standard errors of the difference")

# %% [markdown]
# After one round the no-DP models are slightly *more* accurate than the $\varepsilon = 8$
# models (0.461 against 0.427), and they leak far more: the client-level LiRA reaches an AUC of
# 0.789 against 0.645, 7.0 standard errors apart, and names 8 % of the member clients
# at 1 % FPR against 1 %. Example by example the gap is smaller but clear (AUC 0.616 against
# 0.555). The no-DP curve only rises from there, and the $\varepsilon = 8$ point sits below all
# of it: at that budget DP removes leakage that the lower accuracy alone does not explain.
#
# At $\varepsilon = 2$ and 1 no early stop matches: the DP models are at chance (0.115 and
# 0.099), below even one round of FedAvg, so those rows compare nothing. A DP model that
# learns at $\varepsilon = 2$ needs many more clients per round (notebook 04), and measuring
# its leakage needs a dozen such models: a larger benchmark than this one, not run here.
# What the rows above can show, they show: every DP curve stays under its bound (below),
# whatever the model learnt, and the no-DP model breaks the bounds of $\varepsilon = 1$ and 2.
#
# ### The DP bound, on the same axes
#
# For an $(\varepsilon, \delta)$-DP mechanism every test has
# $\mathrm{TPR} \le e^{\varepsilon}\,\mathrm{FPR} + \delta$ and, symmetrically,
# $1 - \mathrm{FPR} \le e^{\varepsilon}(1 - \mathrm{TPR}) + \delta$ (Kairouz, Oh, Viswanath 2015,
# Theorem 2.1): `attacks.dp_tpr_bound`. One $(\varepsilon, \delta)$ pair is a loose summary,
# though. The accountant's **privacy loss distribution** for the exact $(z, q, T)$ gives
# $\delta(\varepsilon)$ for *every* $\varepsilon$, and the mechanism satisfies all of those
# bounds at once; their lower envelope is its trade-off curve (Dong, Roth, Su 2019, f-DP,
# Proposition 2.12): `attacks.tradeoff_tpr_bound`. The units: the neighbouring datasets differ
# in one client (here, ten images); the observer sees the final model; the server is trusted.

# %%
fpr_grid = np.array(membership_results["fpr_grid"])
delta = s["target_delta"]
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.5), sharey=True)
bounds = {}
for ax, key in zip(axes, ("8", "2", "1"), strict=True):
    r = settings[key]
    envelope = attacks.tradeoff_tpr_bound(
        fpr_grid, noise_multiplier=r["noise_multiplier"],
        sampling_probability=s["sampling_probability"], num_rounds=s["num_rounds"])
    bounds[key] = envelope
    ax.loglog(fpr_grid, attacks.dp_tpr_bound(fpr_grid, epsilon=float(key), delta=delta), "k--",
              lw=1, label=f"({key}, {delta:g})-DP bound")
    ax.loglog(fpr_grid, envelope, "k-", lw=1.2, label="trade-off curve (PLD)")
    ax.loglog(fpr_grid, settings["none"]["example_lira"]["roc_tpr"], color="C3",
              label="LiRA, no DP")
    ax.loglog(fpr_grid, r["example_lira"]["roc_tpr"], color="C0", label="LiRA, with DP")
    ax.loglog(fpr_grid, fpr_grid, color="gray", lw=0.8, ls=":", label="guessing")
    ax.set(xlim=(1e-4, 1), ylim=(1e-4, 1.05), xlabel="false-positive rate",
           title=f"epsilon = {key}, z = {r['noise_multiplier']:.2f}")
axes[0].set_ylabel("true-positive rate")
axes[0].legend(fontsize=7, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# Every measured ROC with DP (blue) must sit under its solid curve. The red curve, trained without
# DP, rises above the solid curve of $\varepsilon = 1$ (and of $\varepsilon = 2$) at small FPR.
# Whether that is more than chance is a statistical question, and it gets the same test as the
# DP curves (`attacks.roc_under_bound`: a point violates the bound only if even its
# Clopper-Pearson lower TPR lies above the bound at its upper FPR, 95 % two-sided limits). First
# the no-DP example-level LiRA curve against each level's trade-off curve:

# %% tags=["nbval-check-output"]
no_dp = settings["none"]["example_lira"]
for key in ("8", "2", "1"):
    violated = ~attacks.roc_under_bound(
        fpr_grid, np.array(no_dp["roc_tpr"]), num_members=no_dp["num_members"],
        num_nonmembers=no_dp["num_nonmembers"],
        bound=lambda f, z=settings[key]["noise_multiplier"]: attacks.tradeoff_tpr_bound(
            f, noise_multiplier=z, sampling_probability=s["sampling_probability"],
            num_rounds=s["num_rounds"]))
    print(f"no-DP LiRA above the epsilon = {key} trade-off curve beyond chance at "
          f"{int(violated.sum())} of {len(fpr_grid)} FPR points")

# %% [markdown]
# At $\varepsilon = 1$ the no-DP curve lies above the bound at 62 of the 82 FPR points even
# after allowing for chance, and at $\varepsilon = 2$ at 34: that model could not have come out of the $\varepsilon = 1$ (or 2)
# mechanism, and the test, not the eye, says so. Against $\varepsilon = 8$ the same attack proves
# nothing. The check below asks every DP curve, of the three attacks at the three levels, the
# same question, and none of them fails it:

# %% tags=["nbval-check-output"]
for key in ("8", "2", "1"):
    r = settings[key]
    for name in ("example_loss", "example_lira", "client_lira"):
        a = r[name]
        ok = attacks.roc_under_bound(
            fpr_grid, np.array(a["roc_tpr"]), num_members=a["num_members"],
            num_nonmembers=a["num_nonmembers"],
            bound=lambda f, z=r["noise_multiplier"]: attacks.tradeoff_tpr_bound(
                f, noise_multiplier=z, sampling_probability=s["sampling_probability"],
                num_rounds=s["num_rounds"]))
        assert ok.all(), (key, name)
print("every measured ROC lies under its trade-off curve")

# %% [markdown]
# What it means when the measured curve sits **far** under the bound: not that the model is
# "more private than $\varepsilon$". The bound holds for the worst case: the worst pair of
# neighbouring datasets, an attacker who sees every intermediate model, the worst record. Our
# attacker sees only the final model and attacks typical images. The gap measures how weak this
# attack is, and DP promises nothing about the next attack except that it, too, stays under the
# curve.
#
# > **Pitfall: a low average attack accuracy does not mean privacy.** An AUC near 0.5 can hide a
# > test that identifies a few records with certainty (high TPR at 0.1 % FPR, Carlini et al.
# > 2022, Section 3). Report the low-FPR regime, on log axes, and compare with a bound, not
# > with 0.5.

# %% [markdown]
# ## 5. Auditing our own DP-FedAvg
#
# A bound is only as good as the code that is supposed to meet it. An **audit** runs a strong
# attack against the implementation and turns its success into a lower bound $\varepsilon_{LB}$
# (Jagielski, Ullman, Oprea 2020, Section 3; Nasr et al. 2021, Section 4). The attacker plants a
# **canary client** whose update is a crafted direction $u$ with norm far above $C$ (clipped, it
# adds exactly $C u$), runs the round many times with and without it, and tests "canary present"
# by the released update's projection on $u$. If the code is $(\varepsilon, \delta)$-DP,
# $\mathrm{FPR} + e^{\varepsilon}\mathrm{FNR} \ge 1 - \delta$, so Clopper-Pearson upper limits
# on the two error rates give
# $\varepsilon_{LB} = \log\frac{1 - \delta - \mathrm{FNR}_{up}}{\mathrm{FPR}_{up}}$ (or the
# symmetric form), valid with 95 % confidence. `audit.canary_audit` does it through the rule's
# own `aggregate` (its clipping, its noise); the threshold is chosen on half of the runs and the
# rates measured on the other half.
#
# We audit one round of `aggregation.DPFedAvg` with $z = 2$, $C = 1$, $qN = 10$ and five other
# clients, against two deliberately broken rules, defined here and not in the library: noise
# calibrated to the **mean** instead of the sum (a factor $qN$ too small), and clipping skipped.
# The noise is reproducible (`PrivateRandomness.reproducible`) so that the stored output can be
# checked; `tests/test_audit.py` runs the same audit on the secret-noise path.

# %%
class NoiseForTheMean(aggregation.DPFedAvg):
    """BROKEN: noise std z C / (q N), the mean's sensitivity, added to the sum."""

    def noise_stddev(self, num_sampled):
        return super().noise_stddev(num_sampled) / self.expected_clients


class NoClipping(aggregation.DPFedAvg):
    """BROKEN: noise for sensitivity C, but updates go onto the integer grid unclipped."""

    def to_grid(self, rows, steps):                   # the library clips here; this does not
        return np.rint(rows * (steps / self.clipping_norm)).astype(np.int64)


# %%
Z_AUDIT, DELTA_AUDIT, TRIALS = 2.0, 1e-5, 1000
small = models.make_softmax_regression(seed=SEED)
small_w, small_act = [w.numpy() for w in small.weights], attacks.model_activations(small)
others = [[-0.1 * g for g in attacks.gradient(small_w, small_act, *pool_clients[k])]
          for k in range(5)]
canary = audit.canary_update([w.shape for w in small_w], norm=10.0, rng=np.random.default_rng(1))
epsilon_claimed = accounting.dp_fedavg_epsilon(noise_multiplier=Z_AUDIT, sampling_probability=1.0,
                                               num_rounds=1, target_delta=DELTA_AUDIT,
                                               accountant="discrete")  # exact noise's
audits = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # "reproducible noise: not private" (known)
    for name, rule_class in [("DPFedAvg (ours)", aggregation.DPFedAvg),
                             ("noise for the mean", NoiseForTheMean), ("no clipping", NoClipping)]:
        rule = rule_class(clipping_norm=1.0, noise_multiplier=Z_AUDIT, expected_clients=10.0)
        audits[name] = audit.canary_audit(
            rule, others, canary, num_trials=TRIALS, num_clients=100, delta=DELTA_AUDIT,
            randomness=schedule.PrivateRandomness.reproducible(SEED))

# %% tags=["nbval-check-output"]
print(f"claimed: epsilon = {epsilon_claimed:.2f} for one round, z = {Z_AUDIT}, "
      f"delta = {DELTA_AUDIT:g}")
for name, result in audits.items():
    verdict = "CAUGHT" if result.epsilon_lower_bound > epsilon_claimed else "consistent"
    print(f"{name:<20} epsilon_LB = {result.epsilon_lower_bound:.2f} (FPR "
          f"{result.false_positive_rate:.3f}, FNR {result.false_negative_rate:.3f}): {verdict}")

# %% [markdown]
# Our rule's $\varepsilon_{LB}$ stays below the claimed $\varepsilon$, and both broken rules are
# caught with $\varepsilon_{LB} > \varepsilon$. An audit proves bugs, never privacy: with
# 500 evaluation runs a side it cannot certify more than about $\log(500/3)$, and subtler bugs
# (noise halved, say: Exercise ★★) can hide below that ceiling. Steinke, Nasr, Jagielski 2023
# audit with many canaries in **one** training run, which makes audits of full training cheap.

# %% [markdown]
# ## Sanity check
#
# The live target model must have fitted its members better than the non-members (otherwise the
# membership section has nothing to attack), the no-DP LiRA must beat guessing at 0.1 % FPR by a
# wide margin, the matched comparison must hold what the text says (matched accuracy, a gap of
# many standard errors, the 20-round checkpoint agreeing with the table), and the audit of our
# rule must have power (a positive $\varepsilon_{LB}$).

# %%
assert train_acc > test_acc + 0.05, (train_acc, test_acc)
assert settings["none"]["example_lira"]["tpr_at_0.1pct"] > 0.005
# Matched accuracy: one round of FedAvg matches epsilon = 8 within 5 points and its client-level
# LiRA AUC is more than 5 standard errors of the difference above DP's; every early stop leaks
# more than DP at epsilon = 8, and the 20-round checkpoint reproduces the table's no-DP row.
assert abs(mean_accuracy(stopped["1"]) - mean_accuracy(settings["8"])) < 0.05
assert early["auc"] - dp8["auc"] > 5 * gap_se, (early["auc"], dp8["auc"], gap_se)
assert all(r["client_lira"]["auc"] > dp8["auc"] for r in stopped.values())
assert abs(mean_accuracy(stopped["20"]) - mean_accuracy(settings["none"])) < 0.01
assert 0 < audits["DPFedAvg (ours)"].epsilon_lower_bound <= epsilon_claimed
print("sanity check passed")

# %% [markdown]
# ## Exercises
#
# ### ★ Predict: does a bigger learning rate protect the image?
#
# The client above used $\eta = 0.1$. If it used $\eta = 10$ instead, what SSIM would the
# analytic attack (section 1) get on its FedSGD update? Set `ssim_with_lr_10` to your
# prediction (a number), then run the check cell.
#
# <details><summary>Hint</summary>
#
# Write the update as $-\eta\nabla L$ and look at the ratio $\Delta W_{:,j} / \Delta b_j$.
# </details>

# %%
ssim_with_lr_10 = None  # replace None by your prediction

# %%
# Check cell
upd10 = [-10.0 * g for g in attacks.gradient(weights, activations, x_one, y_one)]
truth = attacks.ssim(attacks.invert_dense_layer(upd10[0], upd10[1])[0][0], x_one)[0]
if ssim_with_lr_10 is None:
    print("Set ssim_with_lr_10 above, then run this cell again.")
elif abs(ssim_with_lr_10 - truth) < 0.02:
    print(f"Correct: the learning rate cancels in the ratio; SSIM {truth:.3f}.")
else:
    print("Not quite: what happens to the ratio when both updates are multiplied by eta?")

# %% [markdown]
# ### ★★ Modify: is halving the noise caught?
#
# Write `HalfNoise`, a `DPFedAvg` whose noise standard deviation is half what it should be, run
# `audit.canary_audit` on it exactly as in section 5 (same `others`, `canary`, `TRIALS`, seed),
# and store the result in `half_noise_audit`. Is it caught? Compare with the $\varepsilon$ the
# halved noise really gives ($z = 1$). The check cell checks your rule's noise itself (an audit
# cannot tell a halved standard deviation from, say, a halved variance), then your audit.
#
# <details><summary>Hint</summary>
#
# Override `noise_stddev(self, num_sampled)` and return half of `super().noise_stddev(...)`.
# The true epsilon: `accounting.dp_fedavg_epsilon(noise_multiplier=Z_AUDIT / 2, ...)`.
# </details>

# %%
half_noise_audit = None  # replace by the AuditResult of your HalfNoise rule

# %%
# Check cell
def noise_ratio(rule_class):
    """The rule's noise standard deviation over DPFedAvg's, for a few round sizes."""
    settings_ = dict(clipping_norm=1.0, noise_multiplier=Z_AUDIT, expected_clients=10.0)
    return [rule_class(**settings_).noise_stddev(m)
            / aggregation.DPFedAvg(**settings_).noise_stddev(m) for m in (1, 6, 10)]


half_rule = globals().get("HalfNoise")
if half_noise_audit is None or half_rule is None:
    print("Write HalfNoise, audit it, store the result in half_noise_audit, run this again.")
elif not (isinstance(half_rule, type) and issubclass(half_rule, aggregation.DPFedAvg)):
    print("HalfNoise should be a subclass of aggregation.DPFedAvg.")
elif not np.allclose(noise_ratio(half_rule), 0.5):
    print(f"Not quite: HalfNoise's noise standard deviation is {noise_ratio(half_rule)[-1]:.3g} "
          "times DPFedAvg's, not 0.5 (halve the standard deviation, not the variance).")
elif not isinstance(half_noise_audit, audit.AuditResult):
    print("half_noise_audit should be what audit.canary_audit returns.")
else:
    true_eps = accounting.dp_fedavg_epsilon(noise_multiplier=Z_AUDIT / 2,
                                            sampling_probability=1.0, num_rounds=1,
                                            target_delta=DELTA_AUDIT,
                                            accountant="discrete")  # exact noise's, as solved
    lb = half_noise_audit.epsilon_lower_bound
    if lb > audits["DPFedAvg (ours)"].epsilon_lower_bound and lb <= true_eps:
        print(f"Correct: epsilon_LB = {lb:.2f} is above the honest rule's, below the true "
              f"{true_eps:.2f}, and {'above' if lb > epsilon_claimed else 'below'} the claimed "
              f"{epsilon_claimed:.2f}.")
    else:
        print(f"Not quite: epsilon_LB = {lb:.2f}; did you audit HalfNoise exactly as in "
              "section 5 (same others, canary, TRIALS and seed)?")

# %% [markdown]
# ### ★★★ Design: an audit of full training
#
# Section 5 audits one aggregation round. Design an audit of a whole DP-FedAvg training run
# (`training.run_dp_fedavg`, $T$ rounds, Poisson sampling): where the canary enters (a client
# with a crafted dataset, or a crafted update in every round it is sampled), what the attacker
# observes (final model or every round's model), the test statistic, how many runs or canaries
# you need for a meaningful $\varepsilon_{LB}$ at $\varepsilon = 2$, and how you would fit it in a
# few minutes of CPU (Steinke, Nasr, Jagielski 2023, Section 5). There is no check cell; the
# solutions notebook discusses one design.

# %% [markdown]
# ## Summary
#
# - A FedSGD update of a fully connected network **contains** its input: one image comes back
#   exactly from $\Delta W_{:,j}/\Delta b_j$, a batch mostly image by image, and DLG (with
#   labels read off the last layer, iDLG's trick and its batch extensions) recovers batches from
#   the gradient alone.
# - **Clipping alone hides nothing** (the attacks are scale-free); Gaussian noise on one update
#   stopped *our two* attacks at a small $z$, whose $\varepsilon$ certifies nothing: an
#   observation about these attacks, not a guarantee against the next one. With central DP the
#   server still sees clipped, un-noised updates.
# - Membership inference is what $\varepsilon$ bounds: report TPR at low FPR on log axes, and
#   draw the $(\varepsilon, \delta)$ line and the PLD trade-off curve next to it; measured
#   curves far under the bound reflect a weak attack, not extra privacy.
# - Compare leakage **at matched accuracy**: a model that learnt nothing leaks nothing. No-DP
#   models stopped as early as the $\varepsilon = 8$ models' accuracy still leak far more; the
#   near-chance models at $\varepsilon = 2$ and 1 show nothing either way.
# - An audit with canaries gives $\varepsilon_{LB}$ with Clopper-Pearson confidence: it catches
#   implementations that leak far more than claimed, and never proves privacy.

# %% [markdown]
# ## Further reading
#
# - L. T. Phong, Y. Aono, T. Hayashi, L. Wang, S. Moriai. *Privacy-Preserving Deep Learning via
#   Additively Homomorphic Encryption*. IEEE TIFS 2018 (ATIS 2017). Section 3: the input of a
#   dense layer from its gradients.
# - J. Geiping, H. Bauermeister, H. Dröge, M. Moeller. *Inverting Gradients — How easy is it to
#   break privacy in federated learning?* NeurIPS 2020. Section 3 (Proposition 3.1: analytic
#   recovery through fully connected layers), Section 4 (cosine distance, TV prior; Eq. 4),
#   Section 6 (federated averaging: multiple local steps and images).
# - L. Zhu, Z. Liu, S. Han. *Deep Leakage from Gradients*. NeurIPS 2019. Algorithm 1.
# - B. Zhao, K. R. Mopuri, H. Bilen. *iDLG: Improved Deep Leakage from Gradients*. 2020.
#   Section 3 (the label of one example from the last layer's gradient).
# - H. Yin, A. Mallya, A. Vahdat, J. M. Alvarez, J. Kautz, P. Molchanov. *See through
#   Gradients: Image Batch Recovery via GradInversion*. CVPR 2021. Section 3.1 (the labels of
#   a batch with distinct labels).
# - A. Wainakh, F. Ventola, T. Müßig, J. Keim, C. Garcia Cordero, E. Zimmer, T. Grube,
#   K. Kersting, M. Mühlhäuser. *User-Level Label Leakage from Gradients in Federated Learning*.
#   PETS 2022 (LLG: the label counts of a batch, repeated labels included).
# - S. Yeom, I. Giacomelli, M. Fredrikson, S. Jha. *Privacy Risk in Machine Learning: Analyzing
#   the Connection to Overfitting*. CSF 2018. Section 3.2 (the loss-threshold attack), Section 3.1
#   (membership advantage bounded by DP).
# - N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis, F. Tramèr. *Membership Inference Attacks
#   From First Principles*. IEEE S&P 2022. Section 3 (evaluate at low FPR), Section 4 (LiRA),
#   Section 6.2 (the offline variant).
# - J. A. Hanley, B. J. McNeil. *The Meaning and Use of the Area under a Receiver Operating
#   Characteristic (ROC) Curve*. Radiology 1982 (the standard error of an AUC, with
#   $Q_1 = A/(2 - A)$, $Q_2 = 2A^2/(1 + A)$).
# - J. Dong, A. Roth, W. J. Su. *Gaussian Differential Privacy*. JRSS-B 2022 (arXiv 2019).
#   Section 2 (trade-off functions, Proposition 2.12 on $(\varepsilon, \delta)$ envelopes).
# - P. Kairouz, S. Oh, P. Viswanath. *The Composition Theorem for Differential Privacy*.
#   ICML 2015. Theorem 2.1 (the hypothesis-testing view of $(\varepsilon, \delta)$).
# - M. Jagielski, J. Ullman, A. Oprea. *Auditing Differentially Private Machine Learning: How
#   Private is Private SGD?* NeurIPS 2020. Section 3 (Clopper-Pearson lower bounds on epsilon).
# - M. Nasr, S. Song, A. Thakurta, N. Papernot, N. Carlini. *Adversary Instantiation: Lower
#   Bounds for Differentially Private Machine Learning*. IEEE S&P 2021. Section 4 (canary
#   gradients, tight audits).
# - T. Steinke, M. Nasr, M. Jagielski. *Privacy Auditing with One (1) Training Run*. NeurIPS
#   2023. Sections 3 and 5.
# - B. Balle, G. Cherubin, J. Hayes. *Reconstructing Training Data with Informed Adversaries*.
#   IEEE S&P 2022. Section 6 (DP bounds reconstruction; the noise it takes is far smaller).
