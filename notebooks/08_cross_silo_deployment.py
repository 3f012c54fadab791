# %% [markdown]
# # Four hospitals, one model: cross-silo federated learning on real data, deployed on Flower
#
# After this notebook you will be able to train a model across four real hospitals without
# moving their patients' records, protect every patient with example-level DP-SGD, and run the
# same code as separate Flower processes (a SuperLink and four SuperNodes) that give the same
# model as the simulation.
#
# *Runtime: about 2.5 min on a busy 2-core CPU (load average 6 when measured), including one real
# Flower deployment of 3 rounds.*
# Prerequisites: [03 Federated averaging](03_federated_averaging.ipynb) (rounds, client updates,
# the weighted average), [04 The multi-client experiment](04_multi_client_experiment.ipynb)
# (DP-FedAvg, accounting, the cross-device setting) and
# [01 Differential privacy](01_differential_privacy_noise.ipynb) (the Gaussian mechanism).

# %% [markdown]
# ## Learning goals
#
# - **Describe** a cross-silo federation on real data: four hospitals with different sizes, base
#   rates and missing values, all taking part in every round.
# - **Prepare** each hospital's data where it lives (split, imputation, standardisation) and
#   explain why pooled statistics leak and why private training needs public constants instead
#   of the hospital's own statistics.
# - **Compare** local-only, federated and pooled logistic regression per hospital, by accuracy and
#   AUC, and say where federation helps.
# - **Protect** patients with example-level DP-SGD inside each hospital, read each hospital's
#   $\varepsilon$ from the accountant, and explain why client-level DP is meaningless with four
#   clients.
# - **Deploy** the same client update on Flower as real processes, closed by default (TLS,
#   SuperNode authentication), with SecAgg+, and check that it reproduces the simulation.

# %% [markdown]
# ## Setup
#
# No TensorFlow here: the model is a logistic regression written in numpy
# (`fl_helpers.cross_silo`), because the same code has to run inside Flower's ClientApp, which
# starts a fresh process for every message.

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np

from fl_helpers import (accounting, cross_silo, cross_silo_widget, data, deploy, discrete_noise,
                        plotting, schedule)

SEED = 0
plotting.use_course_style()

# %% [markdown]
# ## The federation: four hospitals, one file each
#
# The UCI Heart Disease data (Janosi, Steinbrunn, Pfisterer & Detrano 1988, CC BY 4.0) records
# the same 14 attributes for patients of four hospitals: the Cleveland Clinic, the Hungarian
# Institute of Cardiology in Budapest, the University Hospitals of Zurich and Basel, and the V.A.
# Medical Center in Long Beach. Each hospital's file ships with the course and is checked
# against its SHA-256 when loaded. The task is to predict heart disease, $\mathrm{num} > 0$.

# %% tags=["nbval-check-output"]
tables = {name: data.load_heart_disease(name) for name in data.HOSPITALS}
print(f"{'hospital':<12} {'patients':>8} {'disease':>8} {'missing values':>15}")
for name, table in tables.items():
    print(f"{name:<12} {len(table):>8} {np.mean(table[:, -1] > 0):>8.0%} "
          f"{int(np.isnan(table).sum()):>15}")
print("values of num in Hungary's file:", np.unique(tables["hungary"][:, -1]).tolist())
print("values of num in Cleveland's file:", np.unique(tables["cleveland"][:, -1]).tolist())

# %% [markdown]
# Two things stand out. The base rates differ enormously: 93 % of the Swiss patients have the
# disease, 46 % of Cleveland's. And the Hungarian file stores only 0 and 1 in `num` (its donors
# already collapsed the severities 1–4 into 1), so the only task all four hospitals support is
# the binary one. Where are the gaps (the files mark them with `?`, read as NaN)?

# %% tags=["nbval-check-output"]
columns = list(data.HEART_DISEASE_COLUMNS)
print(f"{'missing':<9}" + "".join(f"{name:>13}" for name in data.HOSPITALS))
for column in ["trestbps", "chol", "fbs", "oldpeak", "slope", "ca", "thal"]:
    shares = [np.mean(np.isnan(t[:, columns.index(column)])) for t in tables.values()]
    print(f"{column:<9}" + "".join(f"{share:>13.0%}" for share in shares))

# %% [markdown]
# That table misses the largest gap of all. A serum cholesterol of 0 mg/dl is impossible: it is
# how some hospitals wrote "not measured", a **missing-value code** that no `?` marks:

# %% tags=["nbval-check-output"]
chol = columns.index("chol")
for name, table in tables.items():
    print(f"{name:<12} chol recorded as 0: {int(np.sum(table[:, chol] == 0)):>3} of {len(table)}")

# %% [markdown]
# Switzerland measured nobody's cholesterol, and VA a quarter of its patients' not at all. Read
# as a value, the 0 does damage: at VA the unmeasured patients sit far below everyone else after
# standardisation, so a model can learn "cholesterol not measured" as if it were "cholesterol
# very low"; and wherever Swiss and other patients meet in one table (pooled training below),
# `chol = 0` *identifies the hospital*, a shortcut rather than medicine. The right reading is
# "missing": impute it, and if missingness may carry information, add an explicit indicator.
# The private path of this notebook does that (`preprocessing="public"` below reads 0 as a gap
# in `chol` and `trestbps` and fills it with a clinical reference value). The comparison of
# local, FedAvg and pooled training keeps FLamby's protocol, which reads the 0 as a value, so
# that our figures stay comparable with FLamby's published ones; `cross_silo.load_hospital`'s
# local preparation does the same. (Treating 0 as missing there is not a one-line change:
# Switzerland would have no observed cholesterol to impute from, so the column needs a
# reference value or an indicator, and every figure of the comparison, the Flower app's and the
# tests' would move with it. Exercise for the reader: make the change and see which
# conclusions survive.)

# %%
fig, (ax_n, ax_rate) = plt.subplots(1, 2, figsize=(8, 2.8))
names = list(data.HOSPITALS)
ax_n.bar(names, [len(t) for t in tables.values()], color="C0")
ax_n.set_ylabel("patients")
ax_rate.bar(names, [np.mean(t[:, -1] > 0) for t in tables.values()], color="C3")
ax_rate.set_ylabel("share with disease")
ax_rate.set_ylim(0, 1)
fig.tight_layout()
plt.show()

# %% [markdown]
# This is a **cross-silo** federation, the opposite of notebook 04's cross-device MNIST setting:
# four clients instead of a thousand, each a stable institution with hundreds of records, all of
# them taking part in every round (no client sampling), and every one of them different
# (sizes 123–303, base rates 46–93 %, whole columns missing at some hospitals). `ca`, `thal` and
# `slope` are missing for most patients outside Cleveland; the FLamby benchmark (Ogier du Terrail
# et al. 2022) drops them, and so do we.

# %% [markdown]
# ## Preparing the data where it lives
#
# We follow FLamby's Fed-Heart-Disease protocol where it is public (its
# `fed_heart_disease/dataset.py`): drop `slope`, `ca` and `thal`; one-hot encode the chest-pain
# type `cp` and the resting ECG `restecg` without their first level (13 features); split each
# hospital 66 % / 34 % into train and test, stratified by label; standardise each hospital's
# features with the mean and standard deviation of *its own* training split. FLamby then drops
# every patient with a remaining gap (`missing="drop"`, 740 patients). Our default,
# `missing="impute"`, keeps all 920 patients and fills each remaining gap with the median of that
# column among the hospital's *own training* patients. Here is that imputation for one column at
# one hospital, written out:

# %%
va = tables["va"]
y_va = (va[:, -1] > 0).astype(float)
train, test = cross_silo.split_train_test(y_va, train_fraction=0.66,
                                          rng=np.random.default_rng([43, 3]))
trestbps = va[:, columns.index("trestbps")]
median = np.nanmedian(trestbps[train])  # VA's own training patients, nobody else
filled = np.where(np.isnan(trestbps), median, trestbps)
print(f"VA: {int(np.isnan(trestbps).sum())} gaps in trestbps, filled with VA's training "
      f"median {median:.0f} mm Hg")

# %% [markdown]
# `cross_silo.load_hospital` does this for every column and then standardises; the parity check
# confirms it fills VA's resting blood pressure exactly as above.

# %%
va_prepared = cross_silo.load_hospital("va")
np.testing.assert_array_equal(
    va_prepared.x_train_raw[:, cross_silo.FEATURE_NAMES.index("trestbps")], filled[train])

# %% [markdown]
# > **Pitfall: preprocessing statistics are a release too.** It is tempting to impute with the
# > median of all 920 patients, or to standardise with the pooled mean and standard deviation,
# > "as in a normal ML pipeline". In a federation that needs every hospital's raw values in one
# > place, which is what federated learning exists to avoid, and the statistics themselves leak:
# > a pooled median or mean is a function of every patient's record, shipped to every hospital
# > without any noise. Local statistics (each hospital's own training split, as here and in
# > FLamby) keep the raw values at home, and are fine *without* DP. They are **not** a fix for
# > differential privacy: the local median, mean and standard deviation depend on every patient,
# > so adding or removing one patient moves every other patient's features, and so their
# > gradients, and the model the hospital sends. Private training below therefore uses fixed
# > public constants instead. (Statistics from the test split would also leak the test set into
# > training.)

# %% tags=["nbval-check-output"]
federation = cross_silo.load_federation()  # missing="impute"
flamby_federation = cross_silo.load_federation(missing="drop")
print(f"{'hospital':<12} {'impute train/test':>18} {'FLamby train/test':>18} "
      f"{'FLamby no-disease':>18}")
for h, f in zip(federation, flamby_federation, strict=True):
    healthy = int((1 - f.y_train).sum() + (1 - f.y_test).sum())
    print(f"{h.name:<12} {h.num_train:>12}/{h.num_test:<5} {f.num_train:>12}/{f.num_test:<5} "
          f"{healthy:>18}")

# %% [markdown]
# The FLamby split sizes match its published 199/104, 172/89, 30/16 and 85/45; the rows differ
# (FLamby draws them with scikit-learn's generator, `random_state=43`). Dropping incomplete rows
# costs Switzerland 77 of its 123 patients and leaves it **one** patient without disease, so an
# AUC cannot even be computed on its test set. That is why the rest of the notebook uses the
# per-hospital imputation and reports both accuracy and AUC.

# %% [markdown]
# ## One client update, from scratch
#
# The model is a logistic regression, $p(x) = \sigma(x^\top w + b)$, trained on the mean
# binary cross-entropy. Its gradient for a batch $B$ has a closed form,
# $\nabla_w = \frac{1}{|B|}\sum_{i\in B} (p(x_i) - y_i)\,x_i$ and
# $\nabla_b = \frac{1}{|B|}\sum_{i\in B} (p(x_i) - y_i)$, so one SGD step is four lines:

# %%
cleveland = federation[0]
params = cross_silo.init_params()  # [w_1, ..., w_13, b], all zero
batch = np.random.default_rng(1).permutation(cleveland.num_train)[:8]
x_b, y_b = cleveland.x_train[batch], cleveland.y_train[batch]
p_b = 1.0 / (1.0 + np.exp(-(x_b @ params[:-1] + params[-1])))
by_hand = params - 0.05 * np.append((p_b - y_b) @ x_b, np.sum(p_b - y_b)) / len(batch)
library = cross_silo.sgd_update(params, cleveland.x_train, cleveland.y_train, local_steps=1,
                                batch_size=8, client_learning_rate=0.05,
                                rng=np.random.default_rng(1))
np.testing.assert_allclose(by_hand, library, rtol=1e-12)

# %% [markdown]
# `cross_silo.client_update` repeats this step `local_steps` times on batches drawn from a
# generator seeded by (seed, round, hospital), and it is the only training code in this
# notebook: the simulation calls it, and so does the Flower ClientApp further down. A test
# (`tests/test_cross_silo.py`) checks it against the same SGD written with TensorFlow.

# %% [markdown]
# ## Local-only, FedAvg and pooled
#
# Three ways to train, each evaluated on every hospital's own test set:
#
# - **local**: each hospital trains alone, on its training split only;
# - **FedAvg**: 20 rounds; in each, every hospital runs 10 local SGD steps from the global model
#   and the server averages the four results weighted by their training sizes (McMahan et al.
#   2017, Algorithm 1);
# - **pooled**: all 606 training patients in one place, standardised with pooled statistics, four
#   times the steps of one hospital. This is the upper bound nobody may compute in practice.
#
# Five seeds give the spread (the seed changes the batch order; the split is fixed).

# %% tags=["nbval-check-output"]
config = cross_silo.TrainingConfig()
print(config)

# %%
def summarise(runs, key):
    """(method, hospital) -> (mean, std) of `key` over the runs."""
    values = {}
    for rows in runs:
        for row in rows:
            values.setdefault((row["method"], row["hospital"]), []).append(row[key])
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in values.items()}


def print_table(runs, methods=("local", "fedavg", "pooled")):
    acc, auc = summarise(runs, "accuracy"), summarise(runs, "auc")
    print(f"{'':<8}" + "".join(f"{name:>19}" for name in data.HOSPITALS))
    for metric, table in (("accuracy", acc), ("AUC", auc)):
        for method in methods:
            cells = [f"{table[method, n][0]:.3f} ± {table[method, n][1]:.3f}"
                     for n in data.HOSPITALS]
            print(f"{method:<8}" + "".join(f"{c:>19}" for c in cells) + f"   {metric}")
    return acc, auc

# %%
runs = [cross_silo.compare_training(federation, dataclasses.replace(config, seed=s))
        for s in range(5)]
acc, auc = print_table(runs)

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
for i, method in enumerate(("local", "fedavg", "pooled")):
    means = [auc[method, n][0] for n in data.HOSPITALS]
    spread = [auc[method, n][1] for n in data.HOSPITALS]
    ax.bar(np.arange(4) + (i - 1) * 0.27, means, 0.27, yerr=spread, label=method)
ax.set_xticks(np.arange(4), data.HOSPITALS)
ax.set_ylabel("test AUC")
ax.set_ylim(0.4, 1.0)
ax.legend(frameon=False, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.18))
plt.show()

# %% [markdown]
# **Sanity check.** The bounds below are honest (they fail if the federation stops helping the
# small hospitals), and the printed base rate explains Switzerland's accuracies.

# %%
swiss = federation[2]
print(f"Switzerland's test set: {swiss.num_test} patients, {swiss.y_test.mean():.0%} with disease")
assert auc["fedavg", "switzerland"][0] > auc["local", "switzerland"][0] + 0.3
assert auc["fedavg", "va"][0] > auc["local", "va"][0] + 0.05
assert auc["fedavg", "cleveland"][0] > 0.85 and auc["pooled", "cleveland"][0] > 0.85
assert acc["fedavg", "switzerland"][0] < acc["local", "switzerland"][0]

# %% [markdown]
# How much do the AUCs of the small hospitals' test sets say? The ± above is the spread over
# training seeds; it says nothing about the handful of test patients. An AUC compares every
# patient with disease to every patient without, so a test set with few of either is a noisy
# yardstick. Counts and a 95 % bootstrap interval (2,000 resamples of the test patients,
# stratified by label so that both classes stay present) for the FedAvg model of seed 0:

# %% tags=["nbval-check-output"]
fed_params, _ = cross_silo.run_fedavg(federation, config)  # seed 0, as in the first run above
boot_rng = np.random.default_rng(SEED)
print(f"{'hospital':<12} {'disease/none':>12} {'FedAvg AUC':>11} {'95% bootstrap CI':>17}")
for h in federation:
    scores = cross_silo.predict_proba(fed_params, h.x_test)
    pos, neg = np.flatnonzero(h.y_test > 0.5), np.flatnonzero(h.y_test < 0.5)
    boot = [cross_silo.roc_auc(h.y_test[rows], scores[rows]) for rows in (
        np.concatenate([boot_rng.choice(pos, len(pos)), boot_rng.choice(neg, len(neg))])
        for _ in range(2000))]
    low, high = np.percentile(boot, [2.5, 97.5])
    print(f"{h.name:<12} {len(pos):>7}/{len(neg):<4} {cross_silo.roc_auc(h.y_test, scores):>11.3f}"
          f"     [{low:.3f}, {high:.3f}]")

# %% [markdown]
# Federation helps where data is scarce. Switzerland's local model has only five patients
# without disease to learn from; its AUC is about 0.5, no better than chance, while the
# federated model ranks the Swiss test patients almost perfectly (AUC ≈ 0.97). But that 0.97
# rests on **3** Swiss test patients without disease: its bootstrap interval runs from 0.880 to
# 1, and a resample (or another split) that draws a different healthy patient moves it by
# several points. What the data support is "far better than chance", not "almost perfect".
# The bootstrap treats the 42 test patients as the population, so even this interval is
# optimistic. VA gains about 0.1 in AUC, and its interval is wide too. The two large hospitals
# lose little or nothing.
#
# Accuracy tells a different story at Switzerland, and it is a story about the threshold, not
# the ranking. With 93 % positives, "everybody has the disease" is 93 % accurate, which is what
# the local model learnt. The federated model has one intercept for four hospitals whose base
# rates range from 46 % to 93 %, so at the 0.5 threshold it calls too many Swiss patients
# healthy. (The pooled model does not suffer as much: standardised with pooled statistics,
# Switzerland's cholesterol, recorded as 0 for every Swiss patient, identifies the hospital.)
#
# > **Pitfall: accuracy on a skewed hospital.** At a hospital where 93 % of patients are sick,
# > an accuracy of 0.93 means nothing (a constant does as well) and a drop in accuracy can hide
# > a much better model. Report a threshold-free metric such as AUC next to accuracy, and
# > calibrate the threshold (or the intercept) locally: exercise ★★★.

# %% [markdown]
# ### Against FLamby's published figures
#
# FLamby reports accuracy (its `metric.py`) for the same four test sets under its protocol
# (`missing="drop"`). Its results files (`flamby/results/results_benchmark_fed_heart_disease/`,
# five seeds, 42–46) give the means below; we run our trainers on the same protocol, split sizes
# and metric.

# %%
FLAMBY_ACCURACY = {  # mean over FLamby's seeds 42-46, from heart_seed4{2..6}.csv (commit edacf54)
    "local": [0.746, 0.746, 0.725, 0.702],   # "Local k" evaluated on client_test_k
    "fedavg": [0.731, 0.719, 0.650, 0.640],  # "FedAvg100"
    "pooled": [0.783, 0.764, 0.750, 0.644],  # "Pooled Training"
}
flamby_runs = [cross_silo.compare_training(flamby_federation, dataclasses.replace(config, seed=s))
               for s in range(5)]
ours = summarise(flamby_runs, "accuracy")
for method, theirs in FLAMBY_ACCURACY.items():
    print(f"{method:<7} ours " + " ".join(f"{ours[method, n][0]:.3f}" for n in data.HOSPITALS)
          + "   FLamby " + " ".join(f"{a:.3f}" for a in theirs))
gaps = [100 * (ours[method, n][0] - a) for method, theirs in FLAMBY_ACCURACY.items()
        for n, a in zip(data.HOSPITALS, theirs, strict=True)]
print(f"ours minus FLamby: from {min(gaps):+.1f} to {max(gaps):+.1f} points")

# %% [markdown]
# Our accuracies are higher than FLamby's at every hospital and for every method, by 3.6 to
# 27.5 points. The differences
# we know of: the test rows differ (same sizes, different draw); FLamby's FedAvg takes plain SGD
# steps with learning rate 0.001 (15 rounds of 100 steps of batch 4), ours 0.05, and its pooled
# model uses Adam; and Switzerland's test set has 16 patients (15 with disease), so one patient is 6
# points. The pattern agrees with FLamby's: at Switzerland and VA, FedAvg's accuracy is below the
# local model's (the intercept reason above), and pooled is best or close to it at the large
# hospitals. FLamby does not publish per-centre AUC (its metric is accuracy).

# %% [markdown]
# ## Privacy across hospitals: example-level DP-SGD inside each hospital
#
# > **Privacy statement.**
# > - **Unit**: a *patient*. Neighbouring data sets differ by adding or removing one patient's
# >   record in one hospital's training split.
# > - **Trusted**: each hospital with its own records (it holds them anyway), its own noise and
# >   its own test set.
# > - **Observer**: the server, the other hospitals and anyone who later sees the model. They
# >   see every message the hospital sends in every round: its noised model, its id and, where
# >   Flower wants a count, the hospital's *public* size. No exact count and no metric on its
# >   test set is sent in a private run; such metrics are an explicit opt-in
# >   (`clear_test_metrics=True`) that $\varepsilon$ does not cover.
# > - **Everything else is public**: the preprocessing constants, each hospital's sampling
# >   probability, divisor and FedAvg weight (from the published patient counts, not from the
# >   rows it holds), $\sigma$, $C$ and the number of steps.
#
# For the guarantee to hold, a patient may influence only their own clipped gradient. With the
# local statistics used so far that is false. `cross_silo.preprocess` prepares a training split
# either way; remove one Swiss patient at a time and measure how far the sum of clipped
# gradients (at the zero model, $C = 1$) moves. The accountant assumes at most $C$:

# %% tags=["nbval-check-output"]
swiss_raw = tables["switzerland"]
swiss_train, swiss_test = cross_silo.split_train_test(
    (swiss_raw[:, -1] > 0).astype(float), train_fraction=0.66, rng=np.random.default_rng([43, 2]))


def clipped_sum(rows, mode):
    """Sum of the clipped gradients (C = 1) at `params` of the training rows, prepared as `mode`."""
    x = cross_silo.preprocess(swiss_raw[rows], swiss_raw[swiss_test], preprocessing=mode)[0]
    g = cross_silo.per_example_gradients(params, x, (swiss_raw[rows, -1] > 0).astype(float))
    return cross_silo.clip_rows(g, 1.0).sum(axis=0)


for mode in ("local", "public"):
    full = clipped_sum(swiss_train, mode)
    shift = max(np.linalg.norm(full - clipped_sum(np.delete(swiss_train, i), mode))
                for i in range(len(swiss_train)))
    print(f"{mode:<7} preprocessing: removing one patient moves the sum by up to {shift:.2f} C")

# %% [markdown]
# With local statistics one patient moves the sum by more than twice what the accounting
# assumes, so the $\varepsilon$ printed below would not hold. With `preprocessing="public"`
# every record is imputed, clipped to a clinically plausible range and scaled with constants
# written down in `cross_silo.PUBLIC_FEATURES` (each with its source); a patient's features then
# depend on that patient alone, and removing them moves the sum by their own clipped gradient,
# at most $C$ (`tests/test_cross_silo_sensitivity.py` checks every patient of every hospital).
# Gaps get a clinical reference value, and the 0 that Switzerland records as every patient's
# cholesterol is read as a gap:

# %% tags=["nbval-check-output"]
for name, feature in cross_silo.PUBLIC_FEATURES.items():
    if feature.high - feature.low > 4:
        print(f"{name:<9} range [{feature.low:g}, {feature.high:g}], gap -> {feature.reference:g}")
public_federation = cross_silo.load_federation(preprocessing="public")
print("public training sizes:", [h.public_train_size for h in public_federation])

# %% [markdown]
# The public training size of a hospital comes from the published patient count of its file
# (`cross_silo.PUBLISHED_PATIENTS`, the UCI repository's counts); it sets the sampling
# probability, the divisor and the FedAvg weight, and with the shipped files it equals the number
# of training rows. Private training (`run_fedavg`, `compare_training`, the widget, the Flower
# ClientApp) refuses hospitals prepared with local statistics.
#
# So each hospital runs DP-SGD (Abadi et al. 2016, Algorithm 1) in its local training: every
# step includes each patient independently with probability $q = 8 / n_k$ (Poisson sampling,
# 8 patients expected, $n_k$ the public size), clips each patient's gradient to norm $C$ and
# puts it on an integer grid of $C / 2^{16}$, sums the integers exactly, adds discrete Gaussian
# integer noise of standard deviation $\sigma \cdot 2^{16}$ (exact, as in notebook 04: noise
# added in floating point would leak through its rounding), and only then scales back and
# divides by the expected batch size $q n_k = 8$. One step, by hand (with seeded randomness,
# `PrivateRandomness.reproducible(SEED)`, for the parity check only; training draws from the
# OS's entropy):

# %%
cleveland_pub = public_federation[0]
n_pub = cleveland_pub.public_train_size
q = config.expected_batch_size / n_pub
step_randomness = schedule.PrivateRandomness.reproducible(SEED, warn=False)  # NOT private: check
sampled = np.flatnonzero(step_randomness.sampling_rng(0).random(cleveland_pub.num_train) < q)
g = cross_silo.per_example_gradients(params, cleveland_pub.x_train[sampled],
                                     cleveland_pub.y_train[sampled])
GRID = discrete_noise.GRID_STEPS
integers = discrete_noise.clip_to_integer_grid(g, clipping_norm=1.0, steps=GRID).sum(axis=0)
noisy = integers + discrete_noise.discrete_gaussian(
    discrete_noise.exact_variance_at_least((1.0 * GRID) ** 2), integers.size,
    randomness=step_randomness, round_index=0)  # the update's noise: round 0's key
noisy_mean = noisy * (1.0 / GRID) / (q * n_pub)  # post-processing of the exact integers
by_hand = params - config.client_learning_rate * noisy_mean
library = cross_silo.dp_sgd_update(params, cleveland_pub.x_train, cleveland_pub.y_train,
                                   local_steps=1, sampling_probability=q,
                                   expected_batch_size=q * n_pub, clipping_norm=1.0,
                                   noise_multiplier=1.0,
                                   client_learning_rate=config.client_learning_rate,
                                   randomness=step_randomness)
np.testing.assert_allclose(by_hand, library, rtol=1e-12)

# %% [markdown]
# Every round every hospital takes part, so a hospital's patients go through
# $T = 20 \times 10 = 200$ subsampled Gaussian steps. The accountant
# (`accounting.dp_fedavg_epsilon` with its `"discrete"` accountant, the Rényi bound proved for
# the Poisson-subsampled discrete Gaussian) turns $(\sigma, q, T, \delta)$ into $\varepsilon$, with
# $\delta = 10^{-4}$, well below $1/n_k$ at every hospital:

# %% tags=["nbval-check-output"]
DELTA = 1e-4
private = dataclasses.replace(config, noise_multiplier=1.0)
for h in public_federation:
    n_k = h.public_train_size
    print(f"{h.name:<12} n={n_k:>3}  q={private.sampling_probability(n_k):.3f}  "
          f"epsilon={cross_silo.epsilon(private, n_k, target_delta=DELTA):.2f}")

# %% [markdown]
# Same noise, different privacy: the smallest hospital samples each patient more often, so its
# patients spend the most. To promise every patient $\varepsilon \le$ a target, we calibrate
# $\sigma$ for the smallest hospital (the others then do better), and for the pooled model we
# calibrate separately. Without DP first, on the public preparation (the reference for what
# follows), then two budgets, five runs each with secret noise:

# %%
public_runs = [cross_silo.compare_training(public_federation, dataclasses.replace(config, seed=s))
               for s in range(5)]
pub_acc, pub_auc = print_table(public_runs)  # no DP, public preparation
dp_runs = {eps: [cross_silo.compare_training(public_federation,
                                             dataclasses.replace(config, seed=s),
                                             target_epsilon=eps, target_delta=DELTA)
                 for s in range(5)] for eps in (1.0, 8.0)}
for eps, eps_runs in dp_runs.items():
    print(f"--- every patient epsilon <= {eps:g} (delta = {DELTA:g}); per-hospital epsilon:",
          ", ".join(f"{r['epsilon']:.2f}" for r in eps_runs[0] if r["method"] == "fedavg"))
    dp_acc, dp_auc = print_table(eps_runs)

# %%
sigmas = [0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0]
smallest = min(h.public_train_size for h in public_federation)
sweep_eps = [cross_silo.epsilon(dataclasses.replace(config, noise_multiplier=s), smallest,
                                target_delta=DELTA) for s in sigmas]
sweep_auc = []
for sigma in sigmas:
    models = [cross_silo.run_fedavg(public_federation, dataclasses.replace(
        config, noise_multiplier=sigma, seed=s))[0] for s in range(3)]
    sweep_auc.append([np.mean([cross_silo.evaluate(m, h.x_test, h.y_test)["auc"]
                               for m in models]) for h in public_federation])

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for k, name in enumerate(data.HOSPITALS):
    ax.plot(sweep_eps, [row[k] for row in sweep_auc], "o-", label=name)
    ax.axhline(pub_auc["fedavg", name][0], color=f"C{k}", ls=":", lw=1)
ax.set_xscale("log")
ax.set_xlabel(r"$\varepsilon$ of the smallest hospital ($\delta = 10^{-4}$)")
ax.set_ylabel("FedAvg test AUC")
ax.legend(frameon=False, ncols=4, fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# Dotted lines: without DP (public preparation). **Sanity check** (honest bounds, secret noise):

# %%
fed_auc_8, fed_acc_8 = summarise(dp_runs[8.0], "auc"), summarise(dp_runs[8.0], "accuracy")
fed_auc_1, fed_acc_1 = summarise(dp_runs[1.0], "auc"), summarise(dp_runs[1.0], "accuracy")
print(f"Cleveland FedAvg AUC: no DP {pub_auc['fedavg', 'cleveland'][0]:.3f}, "
      f"epsilon<=8 {fed_auc_8['fedavg', 'cleveland'][0]:.3f}, "
      f"epsilon<=1 {fed_auc_1['fedavg', 'cleveland'][0]:.3f}")
assert abs(fed_auc_8["fedavg", "cleveland"][0] - pub_auc["fedavg", "cleveland"][0]) < 0.05
assert fed_auc_1["fedavg", "va"][0] > fed_auc_1["local", "va"][0] + 0.05
assert sweep_auc[-1][0] < sweep_auc[0][0]

# %% [markdown]
# A logistic regression on 13 standardised features is a forgiving model for DP: the clipped
# gradients are small, and each step averages the noise over the expected batch. At
# $\varepsilon \le 8$ the models are as good as without DP, and even at $\varepsilon \le 1$ the
# federated model still ranks VA's patients far better than VA's local model; the AUC falls
# once the smallest hospital's $\varepsilon$ goes below about 1 (the points move a little from
# run to run: the noise is secret). The price of DP is also paid unevenly: the smallest hospital
# sets the noise for everyone. (Switzerland's *local* model moves a lot with the preparation and
# under DP-SGD, from run to run: with 5 healthy training patients, the scaling and the clipping
# of each patient's pull reshape it; read nothing into that column's AUC.)
#
# FLamby's repository has a DP experiment on this data set too (`flamby/dp_example/`: FedAvg
# with DP-SGD at each centre under its `missing="drop"` protocol, results for five seeds). It
# reports the accuracy averaged over the four test sets; ours, on our protocol, side by side:

# %%
FLAMBY_DP_MEAN_ACCURACY = {  # flamby/dp_example/results_fed_heart_disease.csv, delta = 1e-4
    "no DP": 0.712, "epsilon 10": 0.700, "epsilon 1": 0.685}
ours_mean = {"no DP": np.mean([pub_acc["fedavg", n][0] for n in data.HOSPITALS]),
             "epsilon 8": np.mean([fed_acc_8["fedavg", n][0] for n in data.HOSPITALS]),
             "epsilon 1": np.mean([fed_acc_1["fedavg", n][0] for n in data.HOSPITALS])}
print("FedAvg, mean test accuracy over the 4 hospitals")
print("  ours:  ", ", ".join(f"{k} {x:.3f}" for k, x in ours_mean.items()))
print("  FLamby:", ", ".join(f"{k} {x:.3f}" for k, x in FLAMBY_DP_MEAN_ACCURACY.items()))

# %% [markdown]
# Both show the same thing: on this data and model, example-level DP at $\varepsilon$ between
# 1 and 10 costs at most a few points of mean accuracy. (FLamby's $\varepsilon$ is per centre
# with its own accountant and its own $\delta$ grid; only the shape is comparable.)

# %% [markdown]
# ### Try it
#
# Move the noise multiplier $\sigma$ and watch each hospital's $\varepsilon$ and FedAvg test
# AUC (black marks: without DP). Every move retrains the federation twice; the widget's noise is
# derived from the seed, so the same $\sigma$ always draws the same picture, which also makes it
# **not private**: it is for exploring only. Where does Switzerland's $\varepsilon$ pass 1?

# %% tags=["nbval-ignore-output"]
cross_silo_widget.dp_federation_explorer(
    public_federation, config, noise_multiplier=2.0, target_delta=DELTA,
    reference_auc=[pub_auc["fedavg", n][0] for n in data.HOSPITALS])

# %% [markdown]
# ### Why not client-level DP?
#
# DP-FedAvg (notebook 04) protects a whole *client*: here, a whole
# hospital. With four hospitals that take part in every round, $q = 1$ (no amplification), and
# the noise on the average must hide one hospital's entire update among four:

# %% tags=["nbval-check-output"]
sigma_client = accounting.noise_multiplier_for_epsilon(
    target_epsilon=1.0, target_delta=DELTA, sampling_probability=1.0,
    num_rounds=config.num_rounds, accountant="discrete")
print(f"client-level DP, 4 hospitals every round, 20 rounds, epsilon = 1: "
      f"noise multiplier {sigma_client:.1f}")
print(f"noise std on each coordinate of the averaged update: {sigma_client / 4:.1f} x C; "
      f"noise norm about {sigma_client / 4 * np.sqrt(14):.0f} x C; signal norm at most 1 x C")

# %% [markdown]
# The noise on every coordinate of the average is several times larger than the largest
# possible update (and the noise *vector* of 14 coordinates is larger still): nothing can be
# learnt. And it protects the wrong thing: *that* Cleveland takes part is public, while what
# each hospital owes its patients is that no single patient's record shows. Client-level DP
# makes sense with thousands of clients (notebook 04); across a handful of silos, the unit is the
# record inside each silo.

# %% [markdown]
# ## Deployment on Flower
#
# So far everything ran in one Python process. A real federation runs as separate programs,
# possibly in separate hospitals. Flower 1.42 (an existing FL engine) splits them like this:
#
# - a **SuperLink** (`flower-superlink`) at the coordinator, through which all messages pass;
# - one **SuperNode** (`flower-supernode`) per hospital; it dials *out* to the SuperLink and is
#   told which hospital it is with `--node-config "hospital-id=K data-dir='...'"`;
# - the app (`flower_app/` in this repository, its `pyproject.toml` has `[tool.flwr.app]`): a
#   **ServerApp** (`heart_app/server_app.py`: Flower's FedAvg with the course's
#   `weighted_average`) and a **ClientApp** (`heart_app/client_app.py`: a `NumPyClient` whose
#   `fit` calls `cross_silo.client_update`, the function used above);
# - `flwr run flower_app <profile> --stream` ships the app to the SuperLink and starts the run.
#
# `deploy.run_deployment` (also `python -m fl_helpers.deploy --rounds 3`) starts all of this on
# 127.0.0.1 with free ports, a temporary `FLWR_HOME` (mode 0700), telemetry and update checks off
# (`FLWR_TELEMETRY_ENABLED=0`, `FLWR_DISABLE_UPDATE_CHECK=1`) and
# `--disable-runtime-dependency-installation` (no `uv sync`), waits until all four SuperNodes
# have connected, runs the app and stops every process it started, also on errors and Ctrl-C.
# It is closed by default:
#
# - **TLS and SuperNode authentication are on**: a throw-away certificate authority signs the
#   SuperLink's certificate, each SuperNode gets its own key pair, and only the four registered
#   keys may join (`tls=False, auth=False` is the named way to Flower's `--insecure`);
# - **no legacy doors from the environment**: every `FLWR_*` variable of the caller is dropped
#   before a Flower process starts (`FLWR_INTERNAL_GRPC_CONTROL_API=1`, for instance, would open
#   Flower's old gRPC control API on 0.0.0.0);
# - **nothing outlives a dead kernel**: each process gets a parent-death signal
#   (`prctl(PR_SET_PDEATHSIG)`), and a watchdog removes the processes and the folder with the
#   keys if the kernel is killed without cleaning up (`tests/test_deploy_hard_kill.py`).
#
# One door stays open on purpose: the SuperLink's Control API, through which `flwr run` submits
# an app, shares the SuperLink's port on 127.0.0.1, and Flower 1.42 authenticates its users only
# with OIDC, which we do not set up. Any process on this machine, under any account, could submit
# an app during the run, and the app would run next to the hospital files. On a single-user
# machine (a laptop, a Colab VM, a container) every such process is already yours and could read
# the files directly; on a machine shared with other users, do not run the launcher.
# Three rounds, plain aggregation (no DP, so FLamby's local preparation):

# %% tags=["nbval-ignore-output"]
deploy_config = dataclasses.replace(config, num_rounds=3)
deployed = deploy.run_deployment(config=deploy_config, evaluate_every_round=False)
fit_done = [r["fit_done"] for r in deployed["rounds"]]
print(f"wall time per deployed training round: {np.mean(np.diff(fit_done)):.1f} s; "
      f"whole deployment {deployed['wall_s']:.0f} s")

# %% [markdown]
# The result came back from the ServerApp process: the final model and each hospital's test
# metrics after the last round, computed by its own ClientApp (`evaluate_every_round=False`
# skips the evaluation of the earlier rounds: each one is another process per hospital). This
# run is not private, so each hospital also sent its exact training count (FedAvg's weight) and
# its test metrics in the clear. In a private run (`noise_multiplier > 0`) a hospital sends its
# noised model and its id only: Flower's count field carries the public size, the server
# weights by the public sizes, and no evaluation is requested unless the caller opts in with
# `clear_test_metrics=True` (metrics then marked as not covered by $\varepsilon$);
# `tests/test_deploy_private_messages.py` compares a hospital's replies with and without one
# patient, and the end-to-end test checks what the ServerApp received. Is the model the one of
# the in-process simulation with the same configuration?

# %% tags=["nbval-check-output"]
simulated, _ = cross_silo.run_fedavg(federation, deploy_config)
difference = np.max(np.abs(np.array(deployed["params"]) - simulated))
print(f"max |deployed - simulated| over the 14 parameters: {difference:.1e}")
for entry, h in zip(deployed["rounds"][-1]["evaluate"], federation, strict=True):
    print(f"{h.name:<12} deployed accuracy {entry['accuracy']:.3f}  AUC {entry['auc']:.3f}")

# %% [markdown]
# Bit for bit the same. That is not automatic: Flower hands the server the results in the order
# they arrive, which changes from run to run, and floating-point addition is not associative.
# The ServerApp therefore sorts the results by hospital id before averaging, in the order the
# simulation uses; the batches come from the same seeded generators, and the client code is the
# same function.
#
# **SecAgg+ and TLS.** With `secagg=True` the ServerApp uses Flower's `SecAggPlusWorkflow`
# (Bell et al. 2020) and the ClientApp Flower's `secaggplus_mod` (which needs the legacy
# `NumPyClient`/`LegacyContext` API we use): each hospital masks its weighted update with
# pairwise masks and secret-shares its keys (4 shares, any 3 reconstruct, so one hospital may
# drop out), and the server learns only the sum. Each round then takes four message exchanges
# instead of one, so it costs several times the wall time of a plain round. Updates are quantised
# to $2^{22}$ levels on $[-8, 8]$, so the model agrees with the simulation to about $10^{-5}$,
# not exactly. The test `tests/test_deploy.py` runs `run_deployment(secagg=True)` with DP-SGD
# for 3 rounds (over TLS with SuperNode authentication, the defaults) and checks the tolerance;
# from the command line:
#
# ```
# python -m fl_helpers.deploy --rounds 3 --secagg --noise-multiplier 1.0
# ```
#
# SecAgg+ hides the individual updates from the server, not from the final model; it is a
# complement to the DP-SGD above, not a replacement.
#
# **DP on Flower.** The deployment above is plain, to show exact parity in one run of the
# notebook's budget; a private deployment runs the same ClientApp with `noise_multiplier > 0`
# (its DP-SGD is `cross_silo.client_update`, so the noise, the public constants and the
# accounting are the ones of the privacy section), and `tests/test_deploy.py` runs one, with
# SecAgg+, on every full test run. The command above starts the same thing from a terminal.
#
# Flower also ships DP of its own, and it is worth knowing why this notebook does not use it:
#
# - `DifferentialPrivacyServerSideFixedClipping` and `DifferentialPrivacyClientSideFixedClipping`
#   (strategy wrappers; the client-side one with `fixedclipping_mod` on the ClientApp), and their
#   adaptive-clipping twins: DP-FedAvg, **client-level** DP. Its unit is a whole hospital, which
#   the section on client-level DP above showed to be meaningless with four hospitals, and the
#   server-side variant trusts the server with every clear update.
# - `LocalDpMod`: each client clips its model update and adds Gaussian noise of standard
#   deviation $\Delta\sqrt{2\ln(1.25/\delta)}/\varepsilon$ to it, the textbook bound, valid
#   for $\varepsilon < 1$ and for **one** release; nothing composes the rounds, so the
#   $\varepsilon$ you pass is not the run's.
# - Both draw floating-point noise from numpy's global generator: neither secret nor exact
#   (notebook 01's floating-point attack applies). The course's DP-SGD draws exact integer noise
#   from a secret source and reports $\varepsilon$ from an accountant for the whole run.
#
# They are good scaffolding for client-level DP with many clients (the cross-device case of
# notebook 04); for patients inside four hospitals the unit has to be the patient, which only
# example-level DP-SGD inside the ClientApp gives.

# %% [markdown]
# ## From loopback to four real hospitals
#
# The launcher puts everything on 127.0.0.1. On real machines the same programs run with real
# addresses and certificates:
#
# ```
# # coordinator (one public address, a certificate signed by a CA the hospitals trust)
# flower-superlink --host 0.0.0.0 --port 8000 --ssl-ca-certfile ca.pem \
#     --ssl-certfile superlink.pem --ssl-keyfile superlink.key \
#     --enable-supernode-auth --disable-runtime-dependency-installation
# flwr supernode register cleveland.pub coordinator   # once per hospital key
# # each hospital (outbound connection only; its own --port stays on 127.0.0.1)
# flower-supernode --superlink coordinator.example.org:8000 --root-certificates ca.pem \
#     --auth-supernode-private-key cleveland.key \
#     --node-config "hospital-id=0 data-dir='/data/heart'"
# # the researcher
# flwr run flower_app coordinator --stream
# ```
#
# - **Addresses and firewalls**: only the SuperLink's port must be reachable, and only from the
#   hospitals and the researcher; the hospitals accept no incoming connection.
# - **Certificates**: issued by a CA that every party trusts, with the coordinator's real name
#   in the subject alternative names, rotated before they expire; Flower 1.42 has no client
#   certificates (mTLS): SuperNodes prove who they are with the registered keys.
# - **Stragglers and failures**: with `min_fit_clients = 4` one slow hospital stalls every
#   round; SecAgg+ with threshold 3 survives one drop-out per round, plain FedAvg here does not
#   (the ServerApp fails loudly instead of averaging three hospitals silently). A SuperNode that
#   is idle polls the SuperLink every 3 s, which sets the latency floor of every message.
# - **Versions**: the same `flwr` and the same app on every machine (`flwr run` ships the app
#   as a bundle; its dependencies must already be installed, since runtime installation is off).
# - **Governance**: a real deployment also needs agreements on who may submit runs (`flwr login`
#   and the SuperLink's user authentication), what the final model may be used for, and audit
#   logs at each hospital.

# %% [markdown]
# ## Exercises
#
# ### ★ Predict: who spends the most?
#
# At the same noise multiplier $\sigma = 2$ for everyone, which hospital's patients have the
# largest $\varepsilon$? Set `largest_epsilon_hospital` to one of `data.HOSPITALS`, then run the
# check cell.
#
# <details><summary>Hint</summary>
#
# $\varepsilon$ grows with the sampling probability $q = 8 / n_k$.
# </details>

# %%
largest_epsilon_hospital = None  # replace None by "cleveland", "hungary", "switzerland" or "va"

# %%
# Check cell
two = dataclasses.replace(config, noise_multiplier=2.0)
truth = max(public_federation, key=lambda h: cross_silo.epsilon(two, h.public_train_size,
                                                                target_delta=DELTA)).name
if largest_epsilon_hospital is None:
    print("Set largest_epsilon_hospital above, then run this cell again.")
elif largest_epsilon_hospital == truth:
    print(f"Correct: {truth} has the fewest training patients, so the largest q.")
else:
    print("Not quite: look for the hospital with the fewest training patients.")

# %% [markdown]
# ### ★★ Modify: a larger expected batch
#
# Write `epsilons_for_batch(expected_batch_size)`, returning a dict hospital name →
# $\varepsilon$ after the default 20 × 10 steps with $\sigma = 1$ and $\delta = 10^{-4}$, when
# every hospital samples `expected_batch_size` patients per step. Does doubling the batch from 8
# to 16 raise or lower Switzerland's $\varepsilon$?
#
# <details><summary>Hint</summary>
#
# `dataclasses.replace(config, noise_multiplier=1.0, expected_batch_size=...)` and
# `cross_silo.epsilon(config, n, target_delta=DELTA)`; or, from scratch,
# `accounting.epsilon_per_round(..., accountant="discrete")[-1]` with $q = b / n_k$ and 200
# steps.
# </details>

# %%
def epsilons_for_batch(expected_batch_size):
    return None  # your code here

# %%
# Check cell
answer = epsilons_for_batch(16)
if answer is None:
    print("Complete epsilons_for_batch above, then run this cell again.")
else:
    sixteen = dataclasses.replace(config, noise_multiplier=1.0, expected_batch_size=16)
    expected = {h.name: cross_silo.epsilon(sixteen, h.public_train_size, target_delta=DELTA)
                for h in public_federation}
    if set(answer) == set(expected) and all(
            np.isclose(answer[k], expected[k], rtol=1e-6) for k in expected):
        print("Correct. Same noise, twice the sampling rate: every epsilon goes up.")
    else:
        print(f"Not quite: expected {expected}.")

# %% [markdown]
# ### ★★★ Design: a local intercept
#
# The federated model ranks Swiss patients well but calls too many of them healthy. Design a
# personalisation step that fixes this without sharing anything new: after FedAvg, each hospital
# re-fits only the intercept $b$ on its own training split (a few gradient steps on $b$ alone),
# keeping $w$. Measure the accuracy and AUC at each hospital. Why can the AUC not change? What
# would the DP cost of this extra local training be, and who would observe it?
#
# <details><summary>Hint</summary>
#
# The AUC depends only on the order of the scores, and changing $b$ shifts every score at a
# hospital by the same amount. The personalised model never leaves the hospital.
# </details>

# %% [markdown]
# ## Summary
#
# - Cross-silo FL has a few large, stable, very different clients that all take part in every
#   round; the UCI heart-disease hospitals differ in size, base rate (46–93 %) and missing
#   columns, and each prepares its data at home: with its own statistics without DP, with
#   public constants under DP (its own statistics let one patient move everyone's gradient).
# - Federation helps the small hospitals most: Switzerland's local model ranks patients no
#   better than chance, the federated one far better (with a handful of healthy Swiss test patients,
#   report counts and an interval, not just the AUC); a shared intercept can still hurt
#   accuracy where the base rate is extreme.
# - Missing values hide behind codes: `chol = 0` means "not measured" (every Swiss patient);
#   read it as a gap, or it becomes a feature that identifies the hospital.
# - The unit to protect is the patient: example-level DP-SGD inside each hospital, with an
#   $\varepsilon$ per hospital from the accountant; the smallest hospital spends the most. It
#   holds only if nothing else a hospital sends depends on its patients: public weights and
#   sizes, no counts, no clear test metrics.
#   Client-level DP with four clients drowns the model in noise and protects the wrong unit.
# - The same numpy client update runs in the simulation and as a Flower ClientApp; sorting the
#   results by hospital makes the deployed model bitwise equal to the simulated one, and SecAgg+
#   agrees within its quantisation.

# %% [markdown]
# ## Further reading
#
# - J. Ogier du Terrail et al., "FLamby: Datasets and Benchmarks for Cross-Silo Federated
#   Learning in Realistic Healthcare Settings", NeurIPS Datasets and Benchmarks 2022: Section 3
#   (Fed-Heart-Disease) and Section 4 (benchmark results).
# - P. Kairouz, H. B. McMahan et al., "Advances and Open Problems in Federated Learning", 2021:
#   Section 1 (Table 1: cross-device vs cross-silo) and Section 4 (privacy, including which unit
#   to protect).
# - M. Abadi et al., "Deep Learning with Differential Privacy", CCS 2016: Section 3.1
#   (Algorithm 1, DP-SGD) and Section 3.2 (the moments accountant).
# - J. H. Bell, K. A. Bonawitz, A. Gascón, T. Lepoint, M. Raykova, "Secure Single-Server
#   Aggregation with (Poly)Logarithmic Overhead", CCS 2020: the SecAgg+ protocol that Flower's
#   `SecAggPlusWorkflow` implements (masks shared with a sparse set of neighbours).
# - D. J. Beutel et al., "Flower: A Friendly Federated Learning Research Framework", 2020, and
#   Flower 1.42's documentation of the SuperLink / SuperNode deployment runtime.
# - R. Detrano et al., "International application of a new probability algorithm for the
#   diagnosis of coronary artery disease", American Journal of Cardiology 64(5), 1989: the
#   study the four hospitals' data come from.
