# %% [markdown]
# # Solutions: differential privacy noise
#
# Worked solutions to the exercises of
# [01 Differential privacy: noise that hides one person](../01_differential_privacy_noise.ipynb).
# Try them yourself first. Each solution ends with the same check cell as the notebook.

# %%
import math

import numpy as np

from fl_helpers import audit, data, privacy, reproducibility, schedule

SEED = 0
rng = reproducibility.seed_everything(SEED)
(x_train, y_train), _ = data.load_mnist()
labels = y_train[:1000]


def seeded(seed):  # reproducible randomness: NOT private; for stored outputs and checks only
    return schedule.PrivateRandomness.reproducible(seed, warn=False)

# %% [markdown]
# ## Exercise 1 ★ (predict)
#
# The expected absolute error of the Laplace mechanism is its scale, $b = \Delta_1 f /
# \varepsilon$. Going from $\varepsilon = 1$ to $\varepsilon = 0.1$ multiplies it by 10: ten
# times more privacy costs ten times more error. And when one person can contribute up to three
# images that all count, adding or removing that person moves the count by up to 3: the
# sensitivity $\Delta_1 f$ triples, and so does the noise. Together: $3 / 0.1 = 30$ times the
# error of $1 / 1$. (Forgetting the sensitivity gives 10, and a promise that holds only for
# people with one image.)

# %%
answer_1 = 30.0

# %% tags=["nbval-check-output"]
if answer_1 is None:
    print("Set answer_1 to your prediction, then run this cell again.")
else:
    expected = (privacy.expected_absolute_error("laplace", sensitivity=3.0, epsilon=0.1)
                / privacy.expected_absolute_error("laplace", sensitivity=1.0, epsilon=1.0))
    if math.isclose(answer_1, expected):
        print("Correct!")
    elif math.isclose(answer_1, 10.0):
        print("Not quite: that accounts for epsilon only. What does the sensitivity become?")
    else:
        print("Not quite: look at the error plot, and at what one person can change.")

# %% [markdown]
# ## Exercise 2 ★★ (modify)
#
# Adding or removing one record changes exactly one of the 10 bins, by one, so the histogram's
# L1 sensitivity is 1 — not 10, even though there are 10 numbers. (Under the replace-one
# relation, two bins could change and the sensitivity would be 2.) One call of the Laplace
# mechanism on the whole vector adds independent noise of scale $1/\varepsilon$ to each bin
# (discrete, on the helper's fine grid, see the notebook's floating-point pitfall).

# %%
def noisy_histogram(labels, *, epsilon, randomness):
    """Returns the 10 digit counts of `labels` with Laplace noise, epsilon-DP."""
    counts = np.bincount(labels, minlength=10).astype(float)
    # randomness=randomness only so that the check below can compare; a real release omits it
    # and gets secret noise from the operating system.
    return privacy.laplace_mechanism(counts, sensitivity=1.0, epsilon=epsilon,
                                     randomness=randomness)


# %% tags=["nbval-check-output"]
attempt = noisy_histogram(labels, epsilon=1.0, randomness=seeded(5))
reference = privacy.laplace_mechanism(np.bincount(labels, minlength=10).astype(float),
                                      sensitivity=1.0, epsilon=1.0,
                                      randomness=seeded(5))
if attempt is None:
    print("Complete noisy_histogram, then run this cell again.")
elif np.shape(attempt) == (10,) and np.allclose(attempt, reference):
    print("Correct: sensitivity 1, one Laplace draw per bin.")
else:
    print("Not yet. Check the sensitivity (one record changes one bin by one) and call "
          "privacy.laplace_mechanism once on all 10 counts, with randomness=randomness.")

# %% [markdown]
# ## Exercise 3 ★★★ (design)
#
# **Where to look.** For two Laplace densities centred at 0 and 1, the log-likelihood ratio
# $\ln p_1(x) / p_0(x)$ is constant and maximal for every $x \ge 1$. So any threshold $t \ge 1$
# exposes the full ratio $\Pr[M(1) > t] / \Pr[M(0) > t]$, and the smallest such threshold,
# $t = 1$, has the most outputs above it and hence the tightest confidence intervals. We fix
# $t = 1$ and 100,000 runs per input **before** drawing anything; choosing the threshold after
# seeing the data would void the 95% guarantee.

# %%
def mystery_mechanism(true_answer, *, rng, size=None):
    return true_answer + rng.laplace(scale=0.7, size=size)


THRESHOLD, NUM_RUNS = 1.0, 100_000
audit_rng = np.random.default_rng(11)
outputs_0 = mystery_mechanism(0.0, rng=audit_rng, size=NUM_RUNS)
outputs_1 = mystery_mechanism(1.0, rng=audit_rng, size=NUM_RUNS)
bound = audit.empirical_epsilon_lower_bound(outputs_0, outputs_1, threshold=THRESHOLD)

# %% tags=["nbval-check-output"]
print(f"with 95% confidence, epsilon >= {bound:.3f} (claimed: 1)")
print("claim refuted" if bound > 1.0 else "claim not refuted")

# %% [markdown]
# The claim is false: the noise scale 0.7 makes the mechanism $1/0.7 \approx 1.43$-DP, and the
# audit proves $\varepsilon > 1$ from outputs alone.
#
# **How many runs for a subtler defect?** For a mechanism that is truly 1.2-DP, the lower bound
# only exceeds 1 once the confidence intervals are narrow enough. We repeat the audit for growing
# numbers of runs (5 repetitions each, to see the spread):

# %%
def audit_true_epsilon(true_epsilon, num_runs, seed):
    run_rng = np.random.default_rng(seed)
    scale = 1.0 / true_epsilon
    return audit.empirical_epsilon_lower_bound(
        run_rng.laplace(scale=scale, size=num_runs),
        1.0 + run_rng.laplace(scale=scale, size=num_runs), threshold=THRESHOLD)


for num_runs in (1_000, 3_000, 10_000, 30_000, 100_000):
    bounds = [audit_true_epsilon(1.2, num_runs, seed) for seed in range(5)]
    print(f"{num_runs:7d} runs: lower bounds {np.round(bounds, 2)}, "
          f"refuted {sum(b > 1.0 for b in bounds)}/5")

# %% [markdown]
# With 1,000 runs per input the bound stays just below 1 and the 20% excess goes unnoticed; from
# about 3,000 runs on it is refuted every time, and the bound creeps up towards the true 1.2. In
# general the margin you can detect shrinks like $1/\sqrt{n}$: halving it needs four times the
# runs. Note the asymmetry of auditing: a high lower bound *proves* a bug, but a low one
# proves nothing — the threshold test may simply be the wrong attack.

# %% [markdown]
# ## Exercise 4 ★ (predict)
#
# Randomized response with truthful probability $p$ is $\ln(p / (1 - p))$-DP. Setting that to 1
# gives $p / (1 - p) = e$, so $p = e / (1 + e) \approx 0.7311$: each person tells the truth
# about 73% of the time. (The textbook coin, $p = 3/4$, gives $\ln 3 \approx 1.10$.)

# %%
answer_rr = math.e / (1 + math.e)

# %% tags=["nbval-check-output"]
if answer_rr is None:
    print("Set answer_rr to your p, then run this cell again.")
elif not 0.5 < answer_rr < 1:
    print("Not quite: p must lie between 0.5 (pure noise) and 1 (no privacy).")
elif math.isclose(privacy.randomized_response_epsilon(truth_probability=answer_rr), 1.0,
                  abs_tol=1e-3):
    print("Correct: p = e / (1 + e), about 0.7311.")
else:
    print("Not quite: solve ln(p / (1 - p)) = 1 for p.")

# %% [markdown]
# ## Exercise 5 ★ (predict)
#
# Two datasets that differ in the person's 3 records are joined by a chain of 3 neighbours.
# Along it, $\varepsilon$ adds up to $3 \times 0.5 = 1.5$, and each step multiplies what came
# before by $e^{0.5}$ and adds $\delta$:
# $\delta_3 = \delta(1 + e^{0.5} + e^{1}) \approx 5.37 \times 10^{-6}$, below the simpler bound
# $3 e^{1} \delta \approx 8.2 \times 10^{-6}$. Answering $3\delta$ forgets that the earlier
# $\delta$'s are multiplied too.

# %%
answer_group = (1.5, 1e-6 * (1 + math.exp(0.5) + math.exp(1.0)))

# %% tags=["nbval-check-output"]
if answer_group is None:
    print("Set answer_group to (epsilon, delta), then run this cell again.")
else:
    right = privacy.group_privacy(epsilon=0.5, delta=1e-6, group_size=3)
    if np.allclose(answer_group, right, rtol=1e-3, atol=0):
        print(f"Correct: ({right[0]:g}, {right[1]:.3g}), at most 3 e^1 1e-6 = 8.2e-06.")
    elif math.isclose(answer_group[0], 1.5) and math.isclose(answer_group[1], 3e-6):
        print("Not quite: epsilon is right, but delta grows faster than k. Follow the chain.")
    else:
        print("Not quite: epsilon adds up along the chain of 3 neighbours; what happens to delta?")

# %% [markdown]
# ## Exercise 6 ★★ (modify)
#
# The exponential mechanism favours high scores, so a rare digit needs a high score: minus its
# count. Adding or removing one record moves one count, hence one score, by one: the
# sensitivity is 1, as for the most common digit.

# %%
def private_rarest_digit(labels, *, epsilon, randomness):
    """The least common digit among `labels`, chosen with epsilon-DP."""
    counts = np.bincount(labels, minlength=10)
    # randomness=randomness only for the check; a real release omits it (secret noise).
    return privacy.exponential_mechanism(-counts, sensitivity=1.0, epsilon=epsilon,
                                         randomness=randomness)


# %% tags=["nbval-check-output"]
attempt = private_rarest_digit(labels, epsilon=0.5, randomness=seeded(8))
reference = privacy.exponential_mechanism(-np.bincount(labels, minlength=10), sensitivity=1.0,
                                          epsilon=0.5, randomness=seeded(8))
if attempt is None:
    print("Complete private_rarest_digit, then run this cell again.")
elif attempt == reference:
    print(f"Correct: scores -count (sensitivity 1); this draw chose {reference}.")
else:
    print("Not yet: score each digit by minus its count, sensitivity 1, and pass "
          "randomness=randomness.")

# %% [markdown]
# ## Exercise 7 ★★ (modify)
#
# `privacy.private_quantile` scores each public candidate $g$ by
# $-|\#\{x_i \le g\} - 0.9\,n|$ (sensitivity 1 under either relation) and samples the
# exponential mechanism exactly. The norms and the grid are those of the notebook.

# %%
image_norms = np.linalg.norm(x_train[:1000].reshape(1000, -1).astype(np.float64), axis=1)
GRID = np.round(np.arange(0.0, 28.05, 0.1), 1)  # public candidates
answer_q90 = privacy.private_quantile(image_norms, quantile=0.9, candidates=GRID, epsilon=0.1,
                                      randomness=seeded(9))

# %% tags=["nbval-check-output"]
reference = privacy.private_quantile(image_norms, quantile=0.9, candidates=GRID,
                                     epsilon=0.1, randomness=seeded(9))
if answer_q90 is None:
    print("Set answer_q90, then run this cell again.")
elif math.isclose(answer_q90, reference):
    print(f"Correct: {reference:.1f} (exact 90th percentile {np.quantile(image_norms, 0.9):.2f}).")
elif math.isclose(answer_q90, privacy.private_quantile(
        image_norms, quantile=0.1, candidates=GRID, epsilon=0.1,
        randomness=seeded(9))):
    print("Not quite: that is the 10th percentile. quantile is the share at or below.")
else:
    print("Not yet: quantile=0.9, candidates=GRID, epsilon=0.1 and randomness=seeded(9).")
