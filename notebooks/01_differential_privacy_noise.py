# %% [markdown]
# # Differential privacy: noise that hides one person
#
# After this notebook you will be able to release a statistic of private data with a
# differential-privacy guarantee, choosing and checking the amount of noise yourself.
#
# *Runtime: about 10 s on a laptop CPU.* Prerequisites:
# [00 Welcome](00_welcome_to_federated_learning.ipynb) (MNIST and the course helpers), basic
# probability (densities, expectations).

# %% [markdown]
# ## Learning goals
#
# - **Explain** why releasing an exact statistic can expose one person's record (a differencing
#   attack), and what the definition of $\varepsilon$-differential privacy promises instead.
# - **Compute** the sensitivity of a query and **calibrate** Laplace noise to it, and check the
#   guarantee by looking at the attacker's likelihood ratio.
# - **Calibrate** Gaussian noise for $(\varepsilon, \delta)$-DP correctly for every $\varepsilon$,
#   and recognise when the textbook formula fails.
# - **Bound** the sensitivity of a sum of vectors by clipping them, as later notebooks do with
#   model updates.
# - **Account** for many releases, by adding up $\varepsilon$ and with the tighter accountants of
#   `dp-accounting`.

# %% [markdown]
# ## Setup
#
# One cell of imports and seeds. `rng` is the numpy generator every random helper takes, so a
# re-run prints the same numbers. This notebook does not need TensorFlow.

# %%
import math

import dp_accounting
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from scipy import stats

from fl_helpers import accounting, data, plotting, privacy, reproducibility, widgets

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()

# %% [markdown]
# ## A query that gives one person away
#
# Picture 1,000 people, each of whom sent one handwritten digit to a server: the first 1,000
# MNIST training images. The server answers *counting queries*, for example "how many of the
# digits are a 7?". A count of a thousand records sounds harmless. It is not, if the attacker
# may ask twice: once about everybody, and once about everybody except Alice (record 15). The
# difference of the two exact answers is Alice's own answer. This is a **differencing attack**.

# %%
(x_train, y_train), _ = data.load_mnist()
labels = y_train[:1000]
ALICE = 15

count_all = int(np.sum(labels == 7))
count_without_alice = int(np.sum(np.delete(labels, ALICE) == 7))

# %% tags=["nbval-check-output"]
print(f"sevens among all 1000 records:   {count_all}")
print(f"sevens without Alice's record:   {count_without_alice}")
print(f"so Alice wrote a 7: {count_all - count_without_alice == 1}")

# %% [markdown]
# No single answer was "about Alice", yet together they reveal her record exactly. Refusing to
# answer small groups does not help, because both queries covered 999 people or more. The cure is
# to make every answer *random*, so that whether Alice is in the data changes the answer's
# distribution only a little.

# %% [markdown]
# ## The definition: ε-differential privacy
#
# Two datasets $D$ and $D'$ are **neighbours** if one is the other with one record added or
# removed (here: with or without Alice). A randomised algorithm $M$ is
# **$\varepsilon$-differentially private** (Dwork & Roth 2014, Definition 2.4 with $\delta = 0$) if
# for all neighbours $D, D'$ and every set $S$ of outputs
#
# $$\Pr[M(D) \in S] \;\le\; e^{\varepsilon}\, \Pr[M(D') \in S].$$
#
# Whatever the attacker does with the output, their view changes by a factor of at most
# $e^\varepsilon$ when one person joins or leaves. Small $\varepsilon$ (0.1, 1) is a strong
# promise; $\varepsilon = 10$ allows a factor of 22,000 and is weak.
#
# How much noise is needed depends on how much one record can move the answer: the **global L1
# sensitivity** (Dwork & Roth 2014, Definition 3.1)
#
# $$\Delta_1 f = \max_{D, D' \text{ neighbours}} \lVert f(D) - f(D') \rVert_1 .$$
#
# A count changes by at most 1 when one record is added or removed, so `sensitivity = 1`. A
# histogram of the 10 digits also has sensitivity 1: one record changes one bin by one.

# %% [markdown]
# ## The Laplace mechanism, from scratch
#
# Add noise from the Laplace distribution with density $p(z) = \frac{1}{2b} e^{-|z|/b}$ and
# scale
#
# $$b = \frac{\Delta_1 f}{\varepsilon}.$$
#
# This is $\varepsilon$-DP (Dwork & Roth 2014, Theorem 3.6): moving the true answer by at most
# $\Delta_1 f$ changes the density at any output by a factor of at most
# $e^{\Delta_1 f / b} = e^{\varepsilon}$. The whole mechanism is one line:

# %%
def laplace_from_scratch(true_answer, *, sensitivity, epsilon, rng):
    scale = sensitivity / epsilon  # the noise must grow with the sensitivity
    return true_answer + rng.laplace(loc=0.0, scale=scale, size=np.shape(true_answer))


EPSILON = 0.5
answers = laplace_from_scratch(np.array([count_all, count_without_alice], dtype=float),
                               sensitivity=1.0, epsilon=EPSILON, rng=np.random.default_rng(1))

# %% tags=["nbval-check-output"]
print(f"epsilon = {EPSILON}: Laplace scale b = {1.0 / EPSILON:.2f}")
print(f"noisy count with Alice:    {answers[0]:.2f}")
print(f"noisy count without Alice: {answers[1]:.2f}")

# %% [markdown]
# The difference of the two noisy answers is now dominated by noise of typical size $b = 2$, so
# it no longer tells whether Alice wrote a 7. From here on the course uses
# `privacy.laplace_mechanism`; with the same seed it gives exactly the same numbers:

# %%
np.testing.assert_allclose(
    privacy.laplace_mechanism(np.array([count_all, count_without_alice], dtype=float),
                              sensitivity=1.0, epsilon=EPSILON, rng=np.random.default_rng(1)),
    answers)

# %% [markdown]
# > **Pitfall: a noise scale that forgets the sensitivity.** Some widely read introductions
# > write the Laplace mechanism with scale $1/\varepsilon$. That is only right when the
# > sensitivity happens to be 1. Suppose each *client* holds up to 3 images and the server
# > counts the sevens over all clients: adding or removing one client moves the count by up to 3.
# > With scale $1/\varepsilon$ the likelihood ratio can reach $e^{3\varepsilon}$: the
# > mechanism claims $\varepsilon$ but only delivers $3\varepsilon$.
#
# We can catch the defect empirically. An auditor runs the mechanism many times on two
# neighbouring inputs (true answers 0 and 3), fixes a threshold $t$ in advance and counts how
# often the output exceeds it. If the mechanism were $\varepsilon$-DP, then
# $\Pr[M(D') > t] \le e^\varepsilon \Pr[M(D) > t]$, so the ratio of the two frequencies,
# with exact Clopper–Pearson confidence bounds on each, gives a **lower bound** on the true
# $\varepsilon$ that holds with 95% confidence (`privacy.empirical_epsilon_lower_bound`;
# Jagielski et al. 2020 audit DP-SGD this way).

# %%
def audit(scale, *, sensitivity=3.0, num_draws=100_000, seed=2):
    audit_rng = np.random.default_rng(seed)
    outputs_d = 0.0 + audit_rng.laplace(scale=scale, size=num_draws)
    outputs_d_prime = sensitivity + audit_rng.laplace(scale=scale, size=num_draws)
    return privacy.empirical_epsilon_lower_bound(outputs_d, outputs_d_prime,
                                                 threshold=sensitivity)


claimed = 1.0

# %% tags=["nbval-check-output"]
print(f"claimed epsilon: {claimed}")
print(f"audit, scale = sensitivity/epsilon = 3.0: epsilon >= {audit(3.0 / claimed):.3f}")
print(f"audit, scale = 1/epsilon (pitfall):       epsilon >= {audit(1.0 / claimed):.3f}")

# %% [markdown]
# The correct mechanism passes (the bound stays below the claimed 1), while the pitfall is proven
# to leak at least about three times what it claims, from nothing but its outputs.

# %% [markdown]
# ## The attacker's view
#
# Why does the noise protect Alice? The attacker sees one output $x$ and wants to know which of
# the neighbouring datasets produced it. The best they can do is compare the two densities: the
# **privacy loss** $\ln \frac{p(x \mid D)}{p(x \mid D')}$. For the Laplace mechanism it stays
# between $-\varepsilon$ and $\varepsilon$ *for every output* — that is the guarantee. For the
# Gaussian mechanism (next sections) it grows without bound in the tails, which is why that
# mechanism needs a $\delta$.

# %%
x = np.linspace(count_all - 40, count_all + 40, 1601)
laplace_loss = np.log(privacy.noise_pdf(x - count_all, "laplace", sensitivity=1.0,
                                        epsilon=EPSILON)
                      / privacy.noise_pdf(x - count_without_alice, "laplace", sensitivity=1.0,
                                          epsilon=EPSILON))
sigma_view = privacy.gaussian_sigma(sensitivity=1.0, epsilon=EPSILON, delta=1e-5)
gauss_loss = (stats.norm.logpdf(x, count_all, sigma_view)
              - stats.norm.logpdf(x, count_without_alice, sigma_view))

# %%
near = np.abs(x - count_all) <= 12  # the top panel zooms in on the centre
fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 5.2))
for truth, style, who in [(count_all, "-", "with Alice (D)"),
                          (count_without_alice, "--", "without Alice (D')")]:
    top.plot(x[near], privacy.noise_pdf(x[near] - truth, "laplace", sensitivity=1.0,
                                        epsilon=EPSILON),
             style, color="tab:blue", label=f"Laplace, {who}")
top.set_ylabel("density of the output")
top.set_xlabel("released answer x (zoomed in)")
top.legend(fontsize=8, frameon=False)
bottom.plot(x, laplace_loss, color="tab:blue", label="Laplace privacy loss")
bottom.plot(x, gauss_loss, color="tab:orange", label=f"Gaussian (σ = {sigma_view:.2f})")
bottom.axhspan(-EPSILON, EPSILON, color="tab:green", alpha=0.15, label="±ε")
bottom.set_ylim(-1.2, 1.2)
bottom.set_xlabel("released answer x")
bottom.set_ylabel("ln p(x|D) / p(x|D')")
bottom.legend(fontsize=8, frameon=False, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# Top: the attacker sees one draw from one of two almost identical curves. Bottom, over a wider
# range: the Laplace log-ratio is flat at $\pm\varepsilon$ in the tails and never leaves the
# green band, so every output is at most $e^{0.5} \approx 1.65$ times more likely under one
# dataset than the other. The Gaussian log-ratio (with $\sigma$ calibrated to
# $\varepsilon = 0.5$, $\delta = 10^{-5}$) is a straight line that leaves the band about 25
# counts from the truth, more than $3.5\sigma$ away; such outputs are rare enough to be covered
# by $\delta$.

# %% [markdown]
# ## The privacy–utility trade-off
#
# Privacy costs accuracy. For the Laplace mechanism the expected absolute error is exactly
# $\mathbb{E}|z| = b = \Delta_1 f / \varepsilon$: ten times more privacy means ten times more
# error. We check the formula against simulated releases.

# %%
epsilons = np.logspace(-2, 1, 31)
predicted = [privacy.expected_absolute_error("laplace", sensitivity=1.0, epsilon=e)
             for e in epsilons]
simulated = [np.mean(np.abs(privacy.laplace_mechanism(np.zeros(20_000), sensitivity=1.0,
                                                      epsilon=e, rng=rng)))
             for e in epsilons[::5]]
gaussian = [privacy.expected_absolute_error("gaussian", sensitivity=1.0, epsilon=e, delta=1e-5)
            for e in epsilons]
fig, ax = plt.subplots()
ax.loglog(epsilons, predicted, color="tab:blue", label="Laplace: Δ/ε")
ax.loglog(epsilons[::5], simulated, "o", color="tab:blue", label="Laplace, simulated")
ax.loglog(epsilons, gaussian, color="tab:orange", label="Gaussian, δ = 1e-5")
ax.set_xlabel("ε (← more privacy | less privacy →)")
ax.set_ylabel("expected |error| of a count")
ax.legend(frameon=False)
plt.show()

# %% tags=["nbval-check-output"]
for e in (0.1, 1.0, 10.0):
    error_gauss = privacy.expected_absolute_error("gaussian", sensitivity=1.0, epsilon=e,
                                                  delta=1e-5)
    print(f"epsilon = {e:5.1f}: expected |error| Laplace {1.0 / e:7.3f}, "
          f"Gaussian {error_gauss:7.3f}")

# %% [markdown]
# On log axes the Laplace error is a straight line of slope −1. For a count of 117 sevens,
# $\varepsilon = 1$ costs about one unit of error: cheap. For a count of 3 the same error would be
# a third of the answer: DP protects individuals, so it lets through statistics about many people
# far better than about few. For a
# single number the Gaussian mechanism is worse than Laplace; it wins for high-dimensional
# answers like model updates, because its noise is calibrated to the L2 sensitivity.

# %% [markdown]
# ## The Gaussian mechanism, calibrated for every ε
#
# Model updates are vectors with thousands of entries, and their natural bound is on the
# **L2 sensitivity** $\Delta_2 f = \max \lVert f(D) - f(D') \rVert_2$. The Gaussian mechanism
# adds $\mathcal{N}(0, \sigma^2)$ noise to every entry and gives the relaxed guarantee of
# **$(\varepsilon, \delta)$-DP** (Dwork & Roth 2014, Definition 2.4):
# $\Pr[M(D) \in S] \le e^\varepsilon \Pr[M(D') \in S] + \delta$, with $\delta$ a small
# probability of failure (well below $1/n$).
#
# How large must $\sigma$ be? Balle & Wang 2018 (Theorem 8) give the exact answer: the
# mechanism is $(\varepsilon, \delta)$-DP if and only if
#
# $$\delta(\sigma) =
#   \Phi\!\left(\frac{\Delta}{2\sigma} - \frac{\varepsilon\sigma}{\Delta}\right)
#   - e^{\varepsilon}\,
#   \Phi\!\left(-\frac{\Delta}{2\sigma} - \frac{\varepsilon\sigma}{\Delta}\right)
#   \le \delta,$$
#
# with $\Phi$ the standard normal CDF and $\Delta = \Delta_2 f$. $\delta(\sigma)$ falls as
# $\sigma$ grows, so bisection finds the smallest $\sigma$ that works:

# %%
def delta_of_sigma(sigma, *, sensitivity, epsilon):
    a = sensitivity / (2 * sigma) - epsilon * sigma / sensitivity
    b = sensitivity / (2 * sigma) + epsilon * sigma / sensitivity
    return stats.norm.cdf(a) - math.exp(epsilon) * stats.norm.cdf(-b)


def sigma_from_scratch(*, sensitivity, epsilon, delta, low=1e-3, high=1e3):
    for _ in range(100):  # bisection on log(sigma); the bracket shrinks 2^100-fold
        mid = math.sqrt(low * high)
        if delta_of_sigma(mid, sensitivity=sensitivity, epsilon=epsilon) > delta:
            low = mid  # too little noise
        else:
            high = mid
    return high


np.testing.assert_allclose(sigma_from_scratch(sensitivity=1.0, epsilon=1.0, delta=1e-5),
                           privacy.gaussian_sigma(sensitivity=1.0, epsilon=1.0, delta=1e-5),
                           rtol=1e-9)

# %% [markdown]
# `privacy.gaussian_sigma` solves the same equation (with more care for tiny $\delta$ and huge
# $\varepsilon$) and agrees with the cell above, and with `dp_accounting.get_sigma_gaussian`.
# Textbooks usually quote a simpler formula (Dwork & Roth 2014, Theorem A.1):
# $\sigma = \sqrt{2 \ln(1.25/\delta)}\, \Delta / \varepsilon$. Compare:

# %% tags=["nbval-check-output"]
DELTA = 1e-5
print(" epsilon  classic sigma  analytic sigma  true delta of classic sigma")
for e in (0.1, 0.5, 1.0, 5.0, 10.0, 20.0):
    classic = privacy.classic_gaussian_sigma(sensitivity=1.0, epsilon=e, delta=DELTA)
    analytic = privacy.gaussian_sigma(sensitivity=1.0, epsilon=e, delta=DELTA)
    true_delta = privacy.gaussian_delta(sigma=classic, sensitivity=1.0, epsilon=e)
    print(f"{e:8.1f}  {classic:13.4f}  {analytic:14.4f}  {true_delta:14.2e}"
          + ("  > 1e-5: broken!" if true_delta > DELTA else ""))

# %% [markdown]
# > **Pitfall: the classic Gaussian bound outside $\varepsilon < 1$.** Theorem A.1 is only
# > proven for $\varepsilon < 1$. Below 1 it is safe but adds more noise than needed (58% more
# > at $\varepsilon = 0.1$).
# > Above it the formula keeps shrinking $\sigma$ like $1/\varepsilon$, faster than is safe: at
# > $\varepsilon = 10$ it gives $\sigma = 0.48$, whose true $\delta$ is $2.3 \times 10^{-5}$, more
# > than twice the promised $10^{-5}$; at $\varepsilon = 20$ it is 150 times too large. Federated
# > learning routinely reports $\varepsilon$ between 1 and 10, exactly where this matters. Use the
# > analytic calibration (`privacy.gaussian_sigma`) or a numerical accountant.

# %%
grid = np.logspace(-1, math.log10(30), 60)
fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
classic_sigmas = [privacy.classic_gaussian_sigma(sensitivity=1.0, epsilon=e, delta=DELTA)
                  for e in grid]
true_deltas = [privacy.gaussian_delta(sigma=s, sensitivity=1.0, epsilon=e)
               for s, e in zip(classic_sigmas, grid, strict=True)]
left.loglog(grid, true_deltas, color="tab:red", label="true δ of the classic σ")
left.axhline(DELTA, color="k", ls="--", lw=1, label="promised δ = 1e-5")
left.axvspan(1, grid[-1], color="tab:red", alpha=0.08, label="ε ≥ 1: no proof")
left.set_xlabel("ε")
left.set_ylabel("δ")
left.legend(fontsize=8, frameon=False)
ratio = [s / privacy.gaussian_sigma(sensitivity=1.0, epsilon=e, delta=DELTA)
         for s, e in zip(classic_sigmas, grid, strict=True)]
right.semilogx(grid, ratio, color="tab:purple")
right.axhline(1, color="k", ls="--", lw=1)
right.set_xlabel("ε")
right.set_ylabel("classic σ / analytic σ")
right.set_title("> 1: wasted noise, < 1: too little", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Left: the classic $\sigma$ keeps its promise ($\delta$ below the dashed line) up to
# $\varepsilon \approx 8.4$ (for $\delta = 10^{-5}$) and then breaks it fast. Right: the
# analytic $\sigma$ is never larger than needed, so it also buys accuracy at small
# $\varepsilon$.

# %% [markdown]
# ## Bounding sensitivity by clipping
#
# What is the L2 sensitivity of a *sum of vectors*, say of 784-pixel images or of model updates?
# Without a bound on each vector, unbounded: one person could send a huge vector. The fix is to
# **clip** every vector $v$ to L2 norm at most $C$ (the `clipping_norm`) before summing:
#
# $$\operatorname{clip}(v) = v \cdot \min\!\left(1, \frac{C}{\lVert v \rVert_2}\right).$$
#
# Short vectors are kept, long ones are shrunk onto the sphere of radius $C$, keeping their
# direction. Adding or removing one clipped vector changes the sum by at most $C$ in L2: the
# sensitivity is $C$, whatever the data. DP-SGD and DP-FedAvg clip exactly like this.

# %%
def clip_from_scratch(vector, clipping_norm):
    norm = np.linalg.norm(vector)
    factor = min(1.0, clipping_norm / norm) if norm > 0 else 1.0  # the zero vector stays
    return vector * factor


points = rng.normal(scale=1.2, size=(40, 2))
limit = 1.1 * np.abs(points).max()
clipped_points = np.array([clip_from_scratch(p, 1.0) for p in points])
np.testing.assert_allclose(clipped_points,
                           [privacy.clip_by_l2_norm(p, 1.0)[0] for p in points])

# %%
fig, ax = plt.subplots(figsize=(6.0, 4.2))
ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, ls="--", color="k", label="‖v‖ = C = 1"))
for before, after in zip(points, clipped_points, strict=True):
    ax.annotate("", xy=after, xytext=before,
                arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.8})
ax.scatter(*points.T, s=14, color="tab:red", label="before clipping")
ax.scatter(*clipped_points.T, s=14, color="tab:blue", label="after clipping")
ax.set_aspect("equal")
ax.set_xlim(-limit, limit)
ax.set_ylim(-limit, limit)
ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
plt.show()

# %% [markdown]
# Points outside the circle move radially onto it; points inside do not move. Now a real use:
# the **private mean image** of the sevens. Each of the 117 images is clipped to $C = 5$ (a
# typical image has norm about 9), the clipped images are summed, Gaussian noise calibrated to
# L2 sensitivity $C$ is added to all 784 pixels at once, and the sum is divided by the count
# (treated as public here).

# %%
CLIPPING_NORM = 5.0
sevens = x_train[:1000][labels == 7].reshape(-1, 784).astype(np.float64)
clipped_sum = np.sum([privacy.clip_by_l2_norm(image, CLIPPING_NORM)[0] for image in sevens],
                     axis=0)
fig, axes = plt.subplots(1, 4, figsize=(7.0, 2.2))
axes[0].imshow(sevens.mean(axis=0).reshape(28, 28), cmap="gray_r")
axes[0].set_title("exact mean", fontsize=9)
for ax, e in zip(axes[1:], (0.5, 2.0, 10.0), strict=True):
    noisy_sum = privacy.gaussian_mechanism(clipped_sum, sensitivity=CLIPPING_NORM, epsilon=e,
                                           delta=DELTA, rng=rng)
    ax.imshow((noisy_sum / len(sevens)).reshape(28, 28), cmap="gray_r")
    ax.set_title(f"ε = {e:g}", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% tags=["nbval-check-output"]
for e in (0.5, 2.0, 10.0):
    sigma = privacy.gaussian_sigma(sensitivity=CLIPPING_NORM, epsilon=e, delta=DELTA)
    print(f"epsilon = {e:4.1f}: sigma of the sum = {sigma:6.3f}, "
          f"per-pixel noise on the mean = {sigma / len(sevens):.4f}")

# %% [markdown]
# At $\varepsilon = 10$ the private mean is hard to tell from the exact one; at $\varepsilon =
# 0.5$ the seven is buried in noise, because 117 people are few. Clipping also shrinks the
# longer images, which dims the private mean a little: a smaller $C$ means less noise but more
# of this bias. Later notebooks make the same trade-off for model updates.

# %% [markdown]
# ## Composition: many releases add up
#
# Every answer leaks a little. If we release $k$ answers, each $\varepsilon_0$-DP, the combination
# is $k\varepsilon_0$-DP (**basic composition**, Dwork & Roth 2014, Theorem 3.16): by hand,
# $\varepsilon$ simply adds up. That bound is safe but pessimistic. Rényi differential privacy
# (Mironov 2017) tracks the privacy loss more finely and composes by addition of Rényi
# divergences; the `dp-accounting` library converts the result back to $(\varepsilon, \delta)$.
# Its privacy-loss-distribution (PLD) accountant is tighter still, numerically almost exact.
# Below: $k$ Laplace releases with $\varepsilon_0 = 0.1$ each, at $\delta = 10^{-5}$ for the
# accountants.

# %%
EPSILON_0, NUM_RELEASES = 0.1, 1000
releases = np.arange(1, NUM_RELEASES + 1)
basic = releases * EPSILON_0  # basic composition: epsilon adds up
rdp = accounting.laplace_epsilon_per_release(epsilon=EPSILON_0, num_releases=NUM_RELEASES,
                                             target_delta=DELTA)
pld_releases = np.unique(np.geomspace(1, NUM_RELEASES, 13).round().astype(int))
pld = []
for k in pld_releases:
    pld_accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    pld_accountant.compose(dp_accounting.LaplaceDpEvent(1.0 / EPSILON_0), int(k))
    pld.append(pld_accountant.get_epsilon(DELTA))

# %%
fig, ax = plt.subplots()
ax.loglog(releases, basic, color="k", ls="--", label="basic composition: k·ε₀ (δ = 0)")
ax.loglog(releases, rdp, color="tab:blue", label="RDP accountant (δ = 1e-5)")
ax.loglog(pld_releases, pld, "o", color="tab:green", ms=4, label="PLD accountant (δ = 1e-5)")
ax.set_xlabel("number of releases k")
ax.set_ylabel("total ε")
ax.legend(frameon=False)
plt.show()

# %% tags=["nbval-check-output"]
for k in (1, 10, 100, 1000):
    print(f"k = {k:4d}: basic {k * EPSILON_0:6.2f}, RDP {rdp[k - 1]:6.3f}")

# %% [markdown]
# For a handful of releases adding up is as good as anything (RDP even pays a little for
# converting to $\delta$). From about ten releases on, the accountants win, and by 1,000
# releases basic composition claims $\varepsilon = 100$ where the truth is below 20: their total
# grows roughly like $\sqrt{k}$ rather than $k$. Training a model releases thousands of noisy
# updates, so this is what makes private training possible at all.
#
# The course's helper `accounting.dp_fedavg_epsilon` does this for the mechanism used in training:
# Gaussian noise on a random subset of the data each step. For the classic DP-SGD setting on MNIST
# (Abadi et al. 2016: noise multiplier 1.1, batches of 256 out of 60,000, 60 epochs = 14,062
# steps):

# %% tags=["nbval-check-output"]
epsilon_dpsgd = accounting.dp_fedavg_epsilon(noise_multiplier=1.1, sampling_probability=256 / 60000,
                                             num_rounds=14_062, target_delta=DELTA)
noise_back = accounting.noise_multiplier_for_epsilon(
    target_epsilon=epsilon_dpsgd, target_delta=DELTA, sampling_probability=256 / 60000,
    num_rounds=14_062)
print(f"epsilon after 14062 steps: {epsilon_dpsgd:.3f} (delta = 1e-5)")
print(f"noise multiplier for that epsilon: {noise_back:.3f}")

# %% [markdown]
# Notebook 04 uses these two functions to pick the noise for a privacy budget and to stop
# training when it is spent.

# %% [markdown]
# ### Try it
#
# The static figure first: the distribution of noisy answers to "how many sevens?" with the
# Laplace mechanism at $\varepsilon = 0.5$, with 2,000 simulated releases.

# %%
samples = privacy.laplace_mechanism(np.full(2000, float(count_all)), sensitivity=1.0,
                                    epsilon=EPSILON, rng=np.random.default_rng(3))
plotting.plot_noisy_answer_distribution(count_all, "laplace", sensitivity=1.0, epsilon=EPSILON,
                                        samples=samples)
plt.show()

# %% [markdown]
# Now move the sliders. Drag $\varepsilon$ towards "more privacy" and watch the answers spread;
# raise the sensitivity (e.g. 3 if each person may hold up to three images) and see that the
# noise must grow with it; switch to the Gaussian mechanism and vary $\delta$. The line above
# the plot gives the expected error. The x axis stays fixed at ±25 around the truth.

# %% tags=["nbval-ignore-output"]
display(widgets.noise_explorer(count_all, epsilon=EPSILON))

# %% [markdown]
# ## Exercises
#
# ### Exercise 1 ★ (predict)
#
# A count is released with the Laplace mechanism at $\varepsilon = 1$. You want ten times more
# privacy, $\varepsilon = 0.1$. By what factor does the expected absolute error change? Predict
# first, then set `answer_1` to a number.
#
# <details><summary>Hint</summary>The scale is sensitivity / ε, and the expected absolute error of
# Laplace(b) noise is b.</details>

# %%
answer_1 = None  # your prediction, e.g. 2.0

# %%
if answer_1 is None:
    print("Set answer_1 to your prediction, then run this cell again.")
else:
    expected = (privacy.expected_absolute_error("laplace", sensitivity=1.0, epsilon=0.1)
                / privacy.expected_absolute_error("laplace", sensitivity=1.0, epsilon=1.0))
    print("Correct!" if math.isclose(answer_1, expected) else
          f"Not quite: the error changes by a factor of {expected:g}. Look at the error plot.")

# %% [markdown]
# ### Exercise 2 ★★ (modify)
#
# Release the whole **histogram** of the 10 digits among the 1,000 records with
# $\varepsilon$-DP. Complete `noisy_histogram` using `privacy.laplace_mechanism` once on the
# vector of 10 counts. What is the L1 sensitivity of the histogram when one record is added or
# removed?
#
# <details><summary>Hint</summary>`np.bincount(labels, minlength=10)` gives the counts. One record
# changes exactly one bin, by one.</details>

# %%
def noisy_histogram(labels, *, epsilon, rng):
    """Returns the 10 digit counts of `labels` with Laplace noise, epsilon-DP."""
    return None  # replace with your code


# %%
attempt = noisy_histogram(labels, epsilon=1.0, rng=np.random.default_rng(5))
reference = privacy.laplace_mechanism(np.bincount(labels, minlength=10).astype(float),
                                      sensitivity=1.0, epsilon=1.0, rng=np.random.default_rng(5))
if attempt is None:
    print("Complete noisy_histogram, then run this cell again.")
elif np.shape(attempt) == (10,) and np.allclose(attempt, reference):
    print("Correct: sensitivity 1, one Laplace draw per bin.")
else:
    print("Not yet. Check the sensitivity (one record changes one bin by one) and call "
          "privacy.laplace_mechanism once on all 10 counts.")

# %% [markdown]
# ### Exercise 3 ★★★ (design)
#
# Someone hands you `mystery_mechanism` below and claims it is 1-DP for queries of sensitivity 1
# (neighbouring true answers 0 and 1). Design an experiment that can *refute* the claim with 95%
# confidence: choose the number of runs and a threshold **before** looking at any output, then
# use `privacy.empirical_epsilon_lower_bound`. Is the claim true? How many runs would you need
# to be confident if the mechanism were only slightly off (say truly 1.2-DP)?
#
# <details><summary>Hint</summary>Where is the likelihood ratio of two shifted Laplace densities
# largest? The audit in the Laplace section is a template. A solution is in
# `notebooks/solutions/01_differential_privacy_noise_solutions.ipynb`.</details>

# %%
def mystery_mechanism(true_answer, *, rng, size=None):
    return true_answer + rng.laplace(scale=0.7, size=size)


# %% [markdown]
# ## Summary
#
# - An exact statistic can expose one record through differencing; $\varepsilon$-DP bounds how
#   much any output can depend on one person, by a factor $e^\varepsilon$.
# - The Laplace mechanism adds noise of scale $\Delta_1 f / \varepsilon$; forgetting the
#   sensitivity silently multiplies the real $\varepsilon$ by it, and an empirical audit with
#   Clopper–Pearson bounds catches it.
# - The Gaussian mechanism gives $(\varepsilon, \delta)$-DP with L2 sensitivity; calibrate
#   $\sigma$ with the analytic formula of Balle & Wang, not the classic bound, which is
#   unproven for $\varepsilon \ge 1$ and breaks above $\varepsilon \approx 8.4$ for
#   $\delta = 10^{-5}$.
# - Clipping each vector to norm $C$ makes the sensitivity of a sum $C$, at the cost of some bias.
# - Privacy loss adds up over releases; RDP and PLD accountants show that it grows like
#   $\sqrt{k}$ rather than $k$, which is what private training relies on.

# %% [markdown]
# ## Further reading
#
# - C. Dwork and A. Roth, *The Algorithmic Foundations of Differential Privacy*, 2014:
#   Chapter 1 (why anonymisation and aggregate answers fail), Chapter 2 (the definition,
#   Definition 2.4), Chapter 3 (Section 3.3 the Laplace mechanism, Theorem 3.6; Section 3.5
#   composition, Theorems 3.16 and 3.20), Appendix A (the Gaussian mechanism, Theorem A.1).
# - B. Balle and Y.-X. Wang, "Improving the Gaussian Mechanism for Differential Privacy:
#   Analytical Calibration and Optimal Denoising", ICML 2018: Section 2 (the limits of the
#   classical analysis), Section 3 (Theorem 8 and Algorithm 1, the analytic calibration).
# - I. Mironov, "Rényi Differential Privacy", CSF 2017: Proposition 1 (composition),
#   Proposition 3 (conversion to $(\varepsilon, \delta)$), Table II (RDP of the Laplace and
#   Gaussian mechanisms).
# - M. Jagielski, J. Ullman and A. Oprea, "Auditing Differentially Private Machine Learning:
#   How Private is Private SGD?", NeurIPS 2020: turning an attack's success rates into a lower
#   bound on $\varepsilon$ with Clopper–Pearson intervals, as in our audit.
# - M. Abadi et al., "Deep Learning with Differential Privacy", CCS 2016: Section 3.1 (clipping
#   and noise in DP-SGD).
