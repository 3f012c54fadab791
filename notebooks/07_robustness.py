# %% [markdown]
# # Poisoning, robust aggregation, and a federation that loses nothing
#
# After this notebook you will be able to attack a federated model from a few malicious clients
# (label flipping, boosted sign flipping, noise, a backdoor), defend it with robust aggregation
# rules, measure what each defence costs, and run a training loop that survives crashed,
# broken and slow clients and resumes exactly after an interruption.
#
# *Runtime: about 50 s on a busy 2-core CPU (load average 9 when measured).*
# Prerequisites:
# [03 Federated averaging](03_federated_averaging.ipynb) (rounds, client updates, the weighted
# average) and [04 The multi-client experiment](04_multi_client_experiment.ipynb) (clipping and
# DP-FedAvg).

# %% [markdown]
# ## Learning goals
#
# - **Attack** FedAvg with a minority of clients: flipped labels, a boosted sign-flipped update,
#   noise, and a backdoor by model replacement.
# - **Build** the coordinate-wise median, the trimmed mean and Krum from scratch, and check them
#   against `fl_helpers` (and, in the tests, against Flower).
# - **Measure** each defence: main-task accuracy and backdoor success under attack, and its cost
#   with no attacker, on IID and non-IID clients.
# - **Explain** why a rejected client leaves FedAvg renormalised and DP-FedAvg's accounting valid.
# - **Resume** an interrupted run from a checkpoint, bit for bit.

# %% [markdown]
# ## Setup
#
# One cell of imports and seeds. `quiet.import_tensorflow()` imports TensorFlow without its C++
# start-up lines (see notebook 02). The stored grid of results comes from
# `benchmarks/robustness_grid.py`; the notebook reads it and reruns a few of its points live.

# %%
from fl_helpers import quiet

quiet.import_tensorflow()

import functools
import json
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from fl_helpers import (
    aggregation,
    checkpoints,
    data,
    engine,
    faults,
    models,
    paths,
    plotting,
    reproducibility,
    robust,
    robust_widgets,
    schedule,
    training,
)

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()
RESULTS = paths.results_dir()  # benchmarks/results in the checkout
GRID = json.loads((RESULTS / "robustness_grid.json").read_text())
SETTING = GRID["setting"]

# %% [markdown]
# ## Who is trusted, and what can go wrong
#
# Notebooks 01–04 protected the **clients from the server**: differential privacy bounds what the
# released models reveal about one client. This notebook protects the **model from the clients**.
#
# - **Unit and threat.** Of the $m$ clients in a round, $f$ are *Byzantine*: they may send any
#   update at all, know the algorithm, and collude. The other $m - f$ run honest local SGD.
# - **Who is trusted.** The server is honest and aggregates correctly; it sees every individual
#   update (so secure aggregation, which hides them, cannot be combined with the rules below as
#   they are). An observer sees the final model.
# - **What the attacker wants.** Either a useless model (*untargeted*: lower the main-task
#   accuracy) or a model that does the main task well *and* obeys a hidden trigger (*targeted*,
#   a backdoor), which is harder to notice.
#
# The federation below is small and cross-silo-like: every client takes part in every round, so
# the share of attackers per round is exactly $f/m$.

# %%
mnist = data.load_mnist()
(x_train, y_train), (x_test, y_test) = mnist
n, num_clients = SETTING["num_examples"], SETTING["num_clients"]
splits = {
    "iid": data.partition_iid(n, num_clients, rng=np.random.default_rng(SETTING["split_seed"])),
    "dirichlet": data.partition_dirichlet(
        y_train[:n], num_clients, alpha=SETTING["alpha"],
        rng=np.random.default_rng(SETTING["split_seed"])),
}
federations = {name: data.client_datasets(x_train[:n], y_train[:n], parts)
               for name, parts in splits.items()}
test_data = (x_test, y_test)

# %% tags=["nbval-check-output"]
for name, clients in federations.items():
    sizes = [len(y) for _, y in clients]
    print(f"{name:9}: {len(clients)} clients, {sum(sizes)} images, "
          f"sizes {min(sizes)}..{max(sizes)}")
print(f"test set: {len(y_test)} images")
print(f"training: T = {SETTING['num_rounds']} rounds, E = {SETTING['local_epochs']}, "
      f"B = {SETTING['batch_size']}, lr = {SETTING['client_learning_rate']}, every client "
      "every round")

# %% [markdown]
# ## Four attacks, from scratch
#
# **Label flipping** is a data attack: a malicious client trains honestly, but on labels
# $y \to 9 - y$ (a 0 is called 9, a 1 is called 8, ...). Its update is a plausible SGD step
# towards the wrong classifier.

# %%
_, y0 = federations["iid"][0]
flipped = 9 - y0  # the whole attack
np.testing.assert_array_equal(flipped, robust.flip_labels(y0))  # parity with fl_helpers
print("labels :", y0[:10].tolist())
print("flipped:", flipped[:10].tolist())

# %% [markdown]
# **Sign flipping** and **Gaussian noise** are update attacks: the client sends
# $-\gamma\,\Delta_k$ (its honest update $\Delta_k = w_k - w$ reversed and boosted by $\gamma$)
# or pure noise $\mathcal N(0, \sigma^2 I)$ instead of $\Delta_k$. We train the 20 clients for
# one round from the initial model with the fast engine and look at the norms.

# %%
model = models.make_softmax_regression(SEED)
w0 = [w.astype(np.float32) for w in model.get_weights()]
fast = engine.MultiClientEngine(model, federations["iid"], local_epochs=1,
                                batch_size=SETTING["batch_size"],
                                client_learning_rate=SETTING["client_learning_rate"], seed=SEED)
honest = fast.train(w0, np.arange(num_clients), 0)
deltas, sizes = honest.deltas, honest.num_examples
knobs = robust_widgets.Setting()
sign_flipped = [np.float32(-knobs.sign_flip_boost) * d for d in deltas[0]]  # the attack
noise = robust.gaussian_update(deltas[0], np.random.default_rng(1), stddev=knobs.noise_stddev)

# %% tags=["nbval-check-output"]
norms = np.array([aggregation.update_norm(d) for d in deltas])
attacked_norms = [aggregation.update_norm(d) for d in (sign_flipped, noise)]
print(f"honest update norms: median {np.median(norms):.3f}, max {norms.max():.3f}")
print(f"sign flip x{knobs.sign_flip_boost:g}: norm {attacked_norms[0]:.3f}")
print(f"Gaussian noise (sigma = {knobs.noise_stddev}): norm {attacked_norms[1]:.3f}")

# %% [markdown]
# **A backdoor** (Bagdasaryan et al. 2020). The attacker stamps a small white square in the
# bottom-right corner of some of its images and labels them $0$. MNIST's corners are black in
# almost every image, so honest clients never teach the model anything about those pixels, and
# the attacker can own them. To survive averaging with $m - f$ honest updates it uses **model
# replacement** (their Section 3.3): it scales its update by $\gamma = m/\eta$ (here the $f$
# attackers share it, $\gamma = m/f$; $\eta = 1$ is the server learning rate), so that the
# average lands on the attacker's own backdoored model. Below, six test digits with the trigger
# (bottom right): the backdoor wants every one of them read as 0.

# %%
triggered = x_test[:6].copy()
triggered[:, -3:, -3:] = 1.0  # the trigger, by hand
np.testing.assert_array_equal(triggered, robust.add_trigger(x_test[:6]))
fig, axes = plt.subplots(1, 6, figsize=(7, 1.4))
for ax, image, label in zip(axes, triggered, y_test[:6], strict=True):
    ax.imshow(image, cmap="gray_r")
    ax.set(xticks=[], yticks=[], title=f"true {label}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Robust aggregation, from scratch
#
# FedAvg's weighted mean has no defence: **one** client can move it anywhere, since the mean
# moves by $\frac{n_k}{n}\lVert\Delta_k\rVert$ and the attacker picks $\Delta_k$. Robust rules
# replace the mean by a statistic that a minority cannot drag far.
#
# - **Coordinate-wise median** (Yin et al. 2018): for every parameter, the median over the $m$
#   clients.
# - **Trimmed mean** (Yin et al. 2018): for every parameter, sort the $m$ values, drop the
#   $\lfloor\beta m\rfloor$ smallest and largest, average the rest.
# - **Krum** (Blanchard et al. 2017): score every update by the sum of squared distances to its
#   $m - f - 2$ nearest other updates, and keep the update with the lowest score (Multi-Krum
#   averages the best few). The score can be computed as soon as $m - f - 2 \ge 1$; Krum's
#   **resilience condition**, under which Blanchard et al. prove it robust (Proposition 1), is
#   $m > 2f + 2$.
#
# Here are the three by hand, on the round's 20 honest updates with the first 4 clients
# (20 %) sign-flipped, flattened into one vector each.

# %%
f = 4
attacked = [[np.float32(-knobs.sign_flip_boost) * d for d in delta] if k < f else delta
            for k, delta in enumerate(deltas)]
flat = np.stack([np.concatenate([d.ravel() for d in delta]) for delta in attacked])
median = np.median(flat, axis=0)
cut = int(0.3 * num_clients)
trimmed = np.sort(flat, axis=0)[cut:num_clients - cut].mean(axis=0)
sq_dist = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(axis=2)
np.fill_diagonal(sq_dist, np.inf)  # a point is not its own neighbour
scores = np.sort(sq_dist, axis=1)[:, :num_clients - f - 2].sum(axis=1)
krum = flat[np.argmin(scores)]

# %% [markdown]
# The same rules in `fl_helpers` (aggregation rules that the training loop accepts), checked
# against the hand-written ones:

# %%
ctx = aggregation.RoundContext(round_index=0, num_clients=num_clients)
flatten = lambda layers: np.concatenate([u.ravel() for u in layers])  # noqa: E731
np.testing.assert_allclose(
    flatten(aggregation.CoordinateMedian().aggregate(attacked, sizes, ctx)), median, atol=1e-7)
np.testing.assert_allclose(
    flatten(robust.TrimmedMean(0.3).aggregate(attacked, sizes, ctx)), trimmed, atol=1e-7)
np.testing.assert_allclose(robust.krum_scores(attacked, f), scores, rtol=1e-4)
np.testing.assert_array_equal(flatten(robust.Krum(f).aggregate(attacked, sizes, ctx)), krum)
print("median, trimmed mean and Krum agree with fl_helpers")

# %% [markdown]
# How far does each rule land from the update the honest clients alone would have produced
# (their FedAvg)? We print the error relative to that update's norm.

# %%
honest_avg = flatten(aggregation.FedAvg().aggregate(deltas[f:], sizes[f:], ctx))
rules = {"FedAvg": aggregation.FedAvg(), "median": aggregation.CoordinateMedian(),
         "trimmed mean (beta 0.3)": robust.TrimmedMean(0.3), "Krum (f=6)": robust.Krum(6),
         "Multi-Krum (f=6, keep 14)": robust.MultiKrum(6, 14),
         "norm bound (C=0.5)": aggregation.NormBounded(aggregation.FedAvg(), clipping_norm=0.5)}
relative_error = {name: np.linalg.norm(flatten(rule.aggregate(attacked, sizes, ctx))
                                       - honest_avg) / np.linalg.norm(honest_avg)
                  for name, rule in rules.items()}

# %% tags=["nbval-check-output"]
for name, error in relative_error.items():
    print(f"{name:26} relative error {error:6.2f}")

# %% [markdown]
# FedAvg's error is larger than the honest update itself: the model moves *backwards*. The
# median, the trimmed mean and Multi-Krum stay close to the honest average; Krum keeps a single
# client's update, which is honest but noisier than an average of many. Norm bounding limits
# each attacker to norm $C$, so the four attackers still pull, but only as hard as four honest
# clients could.
#
# > **Pitfall: Krum's $f$ is a promise, not a measurement.** Krum and the trimmed mean are set up
# > for a number of attackers $f$ (or share $\beta$) *before* training, and Krum's resilience
# > condition is $m > 2f + 2$: with $m = 20$ its guarantee covers at most $f = 8$. The rule
# > would still pick an update in a smaller round, but nothing is proven about it, and if more
# > attackers show up than promised, the guarantee is gone too. `robust.Krum(f)` refuses rounds
# > that break the condition rather than run without its guarantee:

# %%
try:
    robust.Krum(9).aggregate(attacked, sizes, ctx)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# ## Whole runs: does the defence hold for 15 rounds?
#
# One poisoned round says little; the attackers come back every round. We train the whole
# federation with `robust_widgets.attack_experiment` (softmax regression, every client every
# round, the malicious clients chosen at random) and measure the **main-task accuracy** on the
# 10,000 test images and the **backdoor success**: the share of triggered test images of digits
# other than 0 that the model labels 0. First, 20 % sign-flippers against FedAvg and the median:

# %%
live = {}
for attack, defence in [("sign flip", "FedAvg"), ("sign flip", "median"),
                        ("backdoor", "FedAvg"), ("backdoor", "norm bound"),
                        ("backdoor", "median")]:
    live[attack, defence] = robust_widgets.attack_experiment(
        federations["iid"], test_data, attack=attack, fraction=0.2, defence=defence,
        num_rounds=SETTING["num_rounds"], batch_size=SETTING["batch_size"], seed=SEED)

# %% tags=["nbval-check-output"]
for (attack, defence), result in live.items():
    print(robust_widgets.summary_line(result, attack=attack, fraction=0.2, defence=defence))

# %% [markdown]
# The sign-flippers destroy FedAvg and barely move the median. The backdoor is the
# interesting case: under FedAvg its success is near total **while the main-task accuracy is as
# high as without an attack** — nobody watching the accuracy would notice. Norm bounding (Sun et
# al. 2019) clips the boosted update back to an honest size, which weakens the backdoor but does
# not remove it; the median throws it out.
#
# These five runs are points of the stored grid; they must agree with it (same seed, same code;
# another machine's floating point may move the last digit):

# %%
def stored(split, attack, fraction, defence):
    return next(r for r in GRID["runs"] if (r["split"], r["attack"], r["fraction"],
                                            r["defence"]) == (split, attack, fraction, defence))


for (attack, defence), result in live.items():
    row = stored("iid", attack, 0.2, defence)
    assert abs(row["accuracy"] - result.final_accuracy) < 0.01, (attack, defence)
    assert abs(row["backdoor_success"] - result.backdoor_success) < 0.02, (attack, defence)
print("the live runs agree with benchmarks/results/robustness_grid.json")

# %% [markdown]
# ## The attack × defence grid
#
# `benchmarks/robustness_grid.py` runs every attack against every defence with $f/m$ = 0, 10 %,
# 20 % and 30 % malicious clients, on the IID and on the Dirichlet(0.5) split. The robust rules
# are set up for up to 30 % attackers (trimmed mean $\beta = 0.3$, Krum $f = 6$, Multi-Krum keeps
# 14); norm bounding and DP-FedAvg clip to $C = 0.5$; DP-FedAvg adds noise $z = 0.3$ (from a
# reproducible seed: it is a robustness baseline here, not a private run). Each cell shows the
# final accuracy / the backdoor success, in %.

# %%
def grid_table(split, fraction):
    defences = robust_widgets.DEFENCES
    lines = [f"{split}, f/m = {fraction:.0%}", f"{'attack':15}" + "".join(
        f"{d:>14}" for d in defences)]
    for attack in robust_widgets.ATTACKS[1:]:
        cells = [stored(split, attack, fraction, d) for d in defences]
        lines.append(f"{attack:15}" + "".join(
            f"{100 * c['accuracy']:8.1f} /{100 * c['backdoor_success']:4.0f}" for c in cells))
    return "\n".join(lines)

# %% tags=["nbval-check-output"]
print("knobs:", ", ".join(f"{k} = {v:g}" for k, v in GRID["knobs"].items()), end="\n\n")
for split in ("iid", "dirichlet"):
    for fraction in (0.1, 0.2):
        print(grid_table(split, fraction), end="\n\n")

# %% [markdown]
# The same grid as curves: accuracy (or, for the backdoor, its success) against the share of
# attackers, for every defence.

# %%
fig, axes = plt.subplots(2, 4, figsize=(11, 5), sharex=True, sharey=True)
fractions = [0.0, 0.1, 0.2, 0.3]
for row, split in enumerate(("iid", "dirichlet")):
    for col, attack in enumerate(robust_widgets.ATTACKS[1:]):
        key = "backdoor_success" if attack == "backdoor" else "accuracy"
        for defence in robust_widgets.DEFENCES:
            values = [stored(split, "none" if q == 0 else attack, q, defence)[key]
                      for q in fractions]
            axes[row, col].plot([100 * q for q in fractions], values, marker="o", ms=3,
                                label=defence)
        axes[row, col].set_title(f"{split}: {attack}" + (" (success)" if key != "accuracy"
                                                         else ""), fontsize=9)
for ax in axes[1]:
    ax.set_xlabel("malicious clients f/m (%)")
for ax in axes[:, 0]:
    ax.set_ylabel("accuracy / backdoor success")
axes[0, 0].legend(fontsize=7, loc="lower left")
fig.tight_layout()
plt.show()

# %% [markdown]
# What the grid says (the tables above hold the numbers; the Sanity check below asserts each
# statement on the stored grid):
#
# - **FedAvg** is wrecked by boosted sign flipping at every share (chance-level accuracy), and
#   the backdoor succeeds on almost every triggered image at every share *while the main-task
#   accuracy stays at its no-attack level*. Label flipping and noise cost it less: up to about
#   ten points on IID clients, and up to twenty on the Dirichlet split when the attackers happen
#   to hold most of a class (there the 20 % attackers cost more than the 30 % ones): a
#   flipped-label update is bounded like any SGD step.
# - **On IID clients the median, the trimmed mean, Krum and Multi-Krum** hold against all four
#   attacks at every share: within two points of their own accuracy without attackers, and the
#   backdoor never takes.
# - **On non-IID clients** honest updates disagree, so the attackers' values sit among honest
#   outliers and pull the median and the trimmed mean further under sign and label flipping;
#   Multi-Krum, which drops whole updates, held best in this grid.
# - **Norm bounding and DP-FedAvg's clipping** bound the untargeted attacks but not the
#   backdoor: the attackers' clipped updates point the same way every round, so the backdoor's
#   success grows with their share, on IID clients from about one in ten at 10 % to almost all
#   at 30 % (Sun et al. 2019, Section 4, see the same dependence on the number of attackers); on
#   the Dirichlet split it is low at 10 % and high at 20 % and 30 %, in an order that depends
#   on which clients attack.
#
# **One seed or many?** The grid is one run per cell (seed 0). The seed picks which clients are
# malicious, every client's batch order and DP-FedAvg's noise, so every statement above could be
# one seed's luck. `benchmarks/robustness_seeds.py` reruns the points the statements rest on
# with five seeds (the split stays fixed); the range over the seeds, and the statements checked
# on every seed:

# %% tags=["nbval-check-output"]
SEEDS = json.loads((RESULTS / "robustness_seeds.json").read_text())
by_point = {}
for r in SEEDS["runs"]:
    by_point.setdefault((r["split"], r["attack"], r["fraction"], r["defence"]), []).append(r)
print(f"{len(SEEDS['seeds'])} seeds; accuracy and backdoor success in %, lowest-highest")
for (split, attack, fraction, defence), rows in by_point.items():
    acc, bd = ([100 * r[key] for r in rows] for key in ("accuracy", "backdoor_success"))
    print(f"{split:9} {attack:9} {fraction:4.0%} {defence:10} accuracy {min(acc):4.1f}-"
          f"{max(acc):4.1f}  backdoor {min(bd):4.1f}-{max(bd):4.1f}")
    assert rows[0]["seed"] == 0 and rows[0]["accuracy"] == stored(
        split, attack, fraction, defence)["accuracy"]  # seed 0 is the grid's run
every = {point: [(r["accuracy"], r["backdoor_success"]) for r in rows]
         for point, rows in by_point.items()}
assert all(a < 0.2 for a, _ in every["iid", "sign flip", 0.2, "FedAvg"])
assert all(a > 0.85 for a, _ in every["iid", "sign flip", 0.2, "median"])
assert all(b > 0.95 and a > 0.85 for a, b in every["iid", "backdoor", 0.2, "FedAvg"])
assert all(b < 0.02 for _, b in every["iid", "backdoor", 0.2, "median"])
assert all(b1 < 0.15 < 0.9 < b3 for (_, b1), (_, b3) in zip(
    every["iid", "backdoor", 0.1, "norm bound"], every["iid", "backdoor", 0.3, "norm bound"]))
assert all(s < c - 0.05 for (s, _), (c, _) in zip(every["dirichlet", "sign flip", 0.3, "median"],
                                                 every["dirichlet", "none", 0.0, "median"]))
assert all(k < f for (k, _), (f, _) in zip(every["dirichlet", "none", 0.0, "Krum"],
                                           every["dirichlet", "none", 0.0, "FedAvg"]))
print("the statements hold for every seed")

# %% [markdown]
# Every statement holds for all five seeds, and most figures move by a few tenths of a point.
# Two do not: on the Dirichlet split the median under 30 % sign flipping ends anywhere between
# 60.2 % and 76.1 % (on skewed clients it matters *which* clients attack), and Krum's accuracy
# without attackers between 70.0 % and 73.0 % (it keeps one client's update per round). Read
# single-seed figures of non-IID runs as uncertain by several points.
#
# **The cost of a defence with no attacker.** A robust rule throws information away even when
# everybody is honest. The table shows each defence's final accuracy with $f = 0$, its loss
# against FedAvg (in points), its median time per round (training and aggregation) and the time
# of the aggregation alone on 20 updates, all from one run of the benchmark on one machine.

# %% tags=["nbval-check-output"]
print(f"{'defence':12} {'iid acc':>8} {'cost':>6} {'non-iid':>8} {'cost':>6} "
      f"{'s/round':>8} {'aggregate':>10}")
for d in robust_widgets.DEFENCES:
    iid, non = stored("iid", "none", 0.0, d), stored("dirichlet", "none", 0.0, d)
    base_iid = stored("iid", "none", 0.0, "FedAvg")["accuracy"]
    base_non = stored("dirichlet", "none", 0.0, "FedAvg")["accuracy"]
    print(f"{d:12} {iid['accuracy']:8.1%} {100 * (base_iid - iid['accuracy']):6.1f} "
          f"{non['accuracy']:8.1%} {100 * (base_non - non['accuracy']):6.1f} "
          f"{iid['seconds_per_round']:8.3f} "
          f"{1000 * GRID['aggregation_seconds']['iid'][d]:8.2f} ms")

# %% [markdown]
# Krum pays most: it keeps one client's update per round, so it learns from one twentieth of
# the data, and on non-IID clients that one client sees only a few digits. The aggregation
# alone (last column) ranks the rules by their arithmetic: a weighted sum is cheapest, sorting
# every coordinate (median, trimmed mean) costs more, and Krum's $m^2$ pairwise distances most;
# DP-FedAvg's extra time is drawing the noise. The seconds per round include the local
# training, which dominates here, and were measured on a shared, busy 2-core machine, so they
# are noisy: compare the rules within one run, never with another machine.

# %% [markdown]
# ### Try it
#
# Choose the share of malicious clients, the defence and the attack; every change trains a
# smaller federation (20 clients of 300 images, 8 rounds) and redraws its accuracy against
# FedAvg without attackers (grey). Try the backdoor: the accuracy curve tells you nothing, the
# printed backdoor success tells you everything.

# %% tags=["nbval-ignore-output"]
small = [(x[:300], y[:300]) for x, y in federations["iid"]]
explorer = robust_widgets.robustness_explorer(small, (x_test[:2000], y_test[:2000]),
                                              attack="sign flip", fraction=0.2,
                                              defence="FedAvg", num_rounds=8, seed=SEED)
display(explorer)

# %% [markdown]
# ## Faults: a federation that loses nothing
#
# Real clients also fail without malice: a phone loses its connection mid-round, a buggy client
# sends NaN, an old app version sends weights of the wrong shape, a slow one answers after the
# server has moved on. The training loop passes every client's reply through
# `faults.screen_round`: a client that raised, sent NaN/inf or wrongly shaped arrays, or missed
# the deadline is **rejected and logged** (round, client id, reason) and the round goes on
# without it. To inject such faults, a *client hook* stands between each client and the server;
# `faults.FaultInjector` breaks the clients we choose.

# %%
sampled = [schedule.sample_clients(num_clients, 10, seed=SEED, round_index=t) for t in range(3)]
broken = {(0, int(sampled[0][0])): "raise", (0, int(sampled[0][1])): "nan",
          (1, int(sampled[1][0])): "shape", (2, int(sampled[2][0])): "straggle"}
run = functools.partial(training.run_fedavg, models.make_softmax_regression, federations["iid"],
                        clients_per_round=10, local_epochs=1, batch_size=SETTING["batch_size"],
                        client_learning_rate=SETTING["client_learning_rate"],
                        test_data=test_data, seed=SEED, progress=False)
faulty = run(num_rounds=4, client_hook=faults.FaultInjector(broken, straggler_seconds=90),
             deadline_seconds=30)

# %% tags=["nbval-check-output"]
for rejection in faulty.rejections:
    print(f"round {rejection.round}, client {rejection.client:2}: {rejection.reason}")
print(f"final accuracy {faulty.test_accuracy[-1]:.4f}, weights finite: "
      f"{all(np.isfinite(w).all() for w in faulty.final_weights)}")

# %% [markdown]
# **What a rejected client does to the average.** FedAvg averages over the clients it
# accepted: $\sum_{k \in A} n_k \Delta_k / \sum_{k \in A} n_k$, the weights renormalised over
# the accepted set $A$, so a missing client never drags the update towards zero.
#
# DP-FedAvg must **not** renormalise. It keeps dividing by the fixed expected number of clients
# $qN$ and adds its noise even if every client failed. Why the accounting stays valid: the
# server's output is $\frac{1}{qN}\big(\sum_k \tilde\Delta_k + \mathcal N(0, z^2C^2 I)\big)$
# where $\tilde\Delta_k$ is client $k$'s clipped update, or the zero vector if it was rejected.
# The zero vector has norm $\le C$ like any clipped update, and whether a client is rejected
# depends only on that client, so adding or removing one client still changes the sum by at
# most $C$: the same Gaussian mechanism, the same $\varepsilon$. Dividing by the number of
# accepted clients instead would let one client's failure change every other client's weight
# (and the divisor itself would reveal who failed). Who failed is private information: a
# private run reports its rejections only in its `diagnostics` (see notebook 04).
#
# **A round in which every client fails** leaves the model unchanged (DP-FedAvg: unchanged
# except for the noise), with a warning and the round listed in `skipped_rounds`; it never
# produces a NaN model. (If every client's update is NaN — training diverged — the run stops
# with an error that says so.)

# %%
all_fail = {(1, int(k)): "raise" for k in sampled[1]}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    outage = run(num_rounds=3, client_hook=faults.FaultInjector(all_fail))

# %% tags=["nbval-check-output"]
print("warning:", caught[0].message)
print("skipped rounds:", outage.skipped_rounds.tolist())
print("accuracy per round:", np.round(outage.test_accuracy, 4).tolist())

# %% [markdown]
# **Interrupt and resume.** With `checkpoint=path`, the loop writes its state after every round:
# the global weights, the next round, the figures so far, the rejections and the server
# optimizer's state (momentum here). The client sampling and every client's batches are
# functions of the seed and the round, so they need no saving; a private run's secret
# randomness is deliberately never written. The file is written to a temporary name and renamed
# (atomic), so a crash mid-write leaves the previous checkpoint. We interrupt a run after round 3
# and resume it:

# %%
class Interrupted(Exception):
    """Stands in for a crash or Ctrl-C."""


def crash_after_round_3(figures):
    if figures["round"] == 3:
        raise Interrupted


momentum = lambda: aggregation.ServerSGD(1.0, momentum=0.5)  # noqa: E731
uninterrupted = run(num_rounds=6, server_optimizer=momentum())
path = Path(tempfile.mkdtemp()) / "run.npz"
try:
    run(num_rounds=6, server_optimizer=momentum(), checkpoint=path, callback=crash_after_round_3)
except Interrupted:
    print("interrupted after round", int(checkpoints.load_checkpoint(path)["next_round"]))
resumed = run(num_rounds=6, server_optimizer=momentum(), checkpoint=path)

# %% tags=["nbval-check-output"]
identical = all(np.array_equal(a, b) for a, b in zip(resumed.final_weights,
                                                     uninterrupted.final_weights, strict=True))
print(f"resumed run bit-identical to the uninterrupted one: {identical}")
print("accuracy per round:", np.round(resumed.test_accuracy, 4).tolist())

# %% [markdown]
# ## Sanity check
#
# The claims of this notebook, asserted on the live runs and the stored grid.

# %%
sign = live["sign flip", "FedAvg"], live["sign flip", "median"]
assert sign[0].final_accuracy < 0.5 < 0.8 < sign[1].final_accuracy
backdoor = live["backdoor", "FedAvg"]
assert backdoor.backdoor_success > 0.9 and backdoor.final_accuracy > 0.8
assert live["backdoor", "median"].backdoor_success < 0.05
assert live["backdoor", "norm bound"].backdoor_success < backdoor.backdoor_success
attacks, robust_rules = robust_widgets.ATTACKS[1:], ("median", "trimmed mean", "Krum",
                                                     "Multi-Krum")
for split in ("iid", "dirichlet"):
    for q in (0.1, 0.2, 0.3):
        assert stored(split, "sign flip", q, "FedAvg")["accuracy"] < 0.2
        fedavg_backdoor = stored(split, "backdoor", q, "FedAvg")
        assert fedavg_backdoor["backdoor_success"] > 0.95 and fedavg_backdoor["accuracy"] > 0.83
        for attack in ("label flip", "Gaussian noise"):
            assert stored(split, attack, q, "FedAvg")["accuracy"] > (0.75 if split == "iid"
                                                                     else 0.65)
        assert min(stored(split, a, q, "Multi-Krum")["accuracy"] for a in attacks) > 0.84
    for rule in ("norm bound", "DP-FedAvg"):
        success = [stored(split, "backdoor", q, rule)["backdoor_success"] for q in (0.1, 0.2, 0.3)]
        if split == "iid":
            assert success == sorted(success) and success[0] < 0.15 and success[2] > 0.9
        else:
            assert success[0] < 0.2 and min(success[1:]) > 3 * success[0] and success[2] > 0.8
for rule in robust_rules:
    clean = stored("iid", "none", 0.0, rule)["accuracy"]
    for attack in attacks:
        for q in (0.1, 0.2, 0.3):
            row = stored("iid", attack, q, rule)
            assert row["accuracy"] > clean - 0.02 and row["backdoor_success"] < 0.02
assert stored("dirichlet", "sign flip", 0.3, "median")["accuracy"] < stored(
    "dirichlet", "none", 0.0, "median")["accuracy"] - 0.1
costs = {d: stored("dirichlet", "none", 0.0, d)["accuracy"] for d in robust_widgets.DEFENCES}
assert min(costs, key=costs.get) == "Krum"
assert GRID["aggregation_seconds"]["iid"]["Krum"] > GRID["aggregation_seconds"]["iid"]["FedAvg"]
assert identical and len(faulty.rejections) == len(broken)
print("all checks passed")

# %% [markdown]
# ## Exercises
#
# ### Exercise 1 ★ (predict)
#
# Krum's resilience condition (Blanchard et al. 2017, Proposition 1) is $m > 2f + 2$, and
# `robust.Krum(f)` refuses rounds that break it. A server wants Krum's guarantee against $f = 6$
# malicious clients per round. What is the smallest number of clients per round it may sample?
# Write your answer as `min_clients`.
#
# <details><summary>Hint</summary>Solve m > 2f + 2 for the smallest integer m, with f = 6.
# Each score sums the distances to the m − f − 2 nearest other updates; how many is that at your
# answer?</details>

# %%
min_clients = None  # your answer

# %%
def krum_accepts(m):
    try:
        robust.Krum(6).aggregate([deltas[0]] * m, np.ones(m), ctx)
        return True
    except ValueError:
        return False


if min_clients is None:
    print("Set min_clients, then run this cell again.")
elif krum_accepts(min_clients) and not krum_accepts(min_clients - 1):
    print(f"Correct: m = 2f + 3 = {min_clients}; each score then sums {min_clients - 6 - 2} "
          "distances.")
else:
    print("Not yet: Krum's resilience condition m > 2f + 2 fails at m <= 2f + 2; "
          "the smallest m that meets it is the next integer.")

# %% [markdown]
# ### Exercise 2 ★★ (modify)
#
# Norm bounding and the median defend against different things. Combine them: write
# `clipped_median(updates, clipping_norm)` that first clips every update (a list of per-layer
# arrays) to L2 norm at most `clipping_norm` over all its layers, then takes the coordinate-wise
# median. The check cell compares it with the composition
# `aggregation.NormBounded(aggregation.CoordinateMedian(), clipping_norm=...)` on the attacked
# round.
#
# <details><summary>Hint</summary>The factor for update k is min(1, C / ‖Δ_k‖), with the norm
# taken over all layers together (`aggregation.update_norm`). Then
# `np.median(np.stack(...), axis=0)` layer by layer.</details>

# %%
def clipped_median(updates, clipping_norm):
    return None  # your code


# %%
attempt = clipped_median(attacked, 0.5)
if attempt is None:
    print("Complete clipped_median, then run this cell again.")
else:
    expected = aggregation.NormBounded(aggregation.CoordinateMedian(),
                                       clipping_norm=0.5).aggregate(attacked, sizes, ctx)
    if all(np.allclose(a, b, atol=1e-6) for a, b in zip(attempt, expected, strict=True)):
        print("Correct: clipping then the median, layer by layer.")
    else:
        print("Not yet: clip each whole update (all layers at once), then take the median.")

# %% [markdown]
# ### Exercise 3 ★★★ (design)
#
# The median held against every attack above, because those attackers were loud: their updates
# were far from the honest ones. Baruch et al. 2019 ("A Little Is Enough", Section 3) attack it
# quietly: all $f$ attackers send $\mu - z_{\max}\sigma$, where $\mu$ and $\sigma$ are the
# per-coordinate mean and standard deviation of the honest updates and $z_{\max}$ is the largest
# shift at which enough honest clients still lie beyond the attackers for them to become the
# median. Implement it as a client hook (`training.run_fedavg(..., client_hook=...)` calls
# `hook(client_id, round_index, delta)` for every client, in id order), measure the accuracy it
# leaves at 20 % attackers against FedAvg, the median and the trimmed mean, on the IID and the
# Dirichlet split, and **predict before you run**: will it hurt here? Then explain what you
# measured, and what would have to change (model, data, rounds) for the attack to do the damage
# Baruch et al. report. There is no check cell: the answer is an argument.
#
# <details><summary>Hint</summary>Section 3 of the paper gives $s = \lfloor m/2 + 1\rfloor - f$
# and $z_{\max} = \Phi^{-1}((m - s)/m)$ (`scipy.stats.norm.ppf`). A hook that remembers the
# round's honest updates can compute $\mu$ and $\sigma$ exactly (the strongest attacker). A
# worked answer, with a surprise, is in
# `notebooks/solutions/07_robustness_solutions.ipynb`.</details>

# %% [markdown]
# ## Summary
#
# - FedAvg's mean gives every client unbounded influence: one boosted update can wreck it, and a
#   model-replacement backdoor can ride along with the main-task accuracy unchanged.
# - The coordinate-wise median, the trimmed mean and (Multi-)Krum bound what $f$ attackers of
#   $m$ can do, if $f$ stays below what they were set up for (Krum's resilience condition:
#   $m > 2f + 2$).
# - Norm bounding and DP-FedAvg's clip-and-noise limit boosted updates but only weaken a
#   persistent backdoor; robust rules cost accuracy without attackers, most on non-IID data.
# - A training loop should reject crashed, NaN, misshapen and late clients and log them;
#   FedAvg renormalises over the accepted clients, DP-FedAvg keeps its fixed divisor $qN$ and
#   its accounting, because a rejected client contributes a zero update.
# - A checkpoint of weights, round and optimizer state, written atomically, makes an interrupted
#   run resume bit for bit.

# %% [markdown]
# ## Further reading
#
# - P. Blanchard, E. M. El Mhamdi, R. Guerraoui, J. Stainer. *Machine Learning with Adversaries:
#   Byzantine Tolerant Gradient Descent*. NeurIPS 2017. Section 4 (Krum and Multi-Krum;
#   Proposition 1, the resilience condition $n > 2f + 2$), Section 5 (experiments).
# - D. Yin, Y. Chen, K. Ramchandran, P. Bartlett. *Byzantine-Robust Distributed Learning:
#   Towards Optimal Statistical Rates*. ICML 2018. Section 3 (coordinate-wise median and trimmed
#   mean), Section 4 (their error rates).
# - E. Bagdasaryan, A. Veit, Y. Hua, D. Estrin, V. Shmatikov. *How To Backdoor Federated
#   Learning*. AISTATS 2020. Section 3.3 (model replacement, the boost $\gamma = n/\eta$),
#   Section 4 (backdoor accuracy against main-task accuracy).
# - Z. Sun, P. Kairouz, A. T. Suresh, H. B. McMahan. *Can You Really Backdoor Federated
#   Learning?* 2019. Section 3 (norm bounding and weak differential privacy as defences),
#   Section 4 (how many attackers it takes).
# - G. Baruch, M. Baruch, Y. Goldberg. *A Little Is Enough: Circumventing Defenses For
#   Distributed Learning*. NeurIPS 2019. Section 3 (the quiet attack of Exercise 3, and
#   $z_{\max}$).
# - P. Kairouz, H. B. McMahan et al. *Advances and Open Problems in Federated Learning*.
#   Foundations and Trends in Machine Learning 14(1–2), 2021. Section 5.1 (adversarial attacks
#   and defences), Section 5.2 (non-malicious failure modes: client reporting failures, data
#   pipeline failures, noisy model updates).
