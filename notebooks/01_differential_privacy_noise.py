# %% [markdown]
# # Differential privacy: noise that hides one person
#
# After this notebook you will be able to release a statistic of private data with a
# differential-privacy guarantee, choosing and checking the amount of noise yourself.
#
# *Runtime: about 20 s on a busy 2-core CPU (load average 2 when measured).*
# Prerequisites:
# [00 Welcome](00_welcome_to_federated_learning.ipynb) (MNIST and the course helpers), basic
# probability (densities, expectations).

# %% [markdown]
# ## Learning goals
#
# - **Explain** why releasing an exact statistic can expose one person's record (a differencing
#   attack), and what $\varepsilon$-differential privacy promises instead: for which unit, under
#   which neighbouring relation, against which observer.
# - **Compute** the sensitivity of a query and **calibrate** Laplace noise to it, and check the
#   guarantee by looking at the attacker's likelihood ratio.
# - **Calibrate** Gaussian noise for $(\varepsilon, \delta)$-DP correctly for every $\varepsilon$,
#   say what $\delta$ really measures, and recognise when the textbook formula fails.
# - **Bound** the sensitivity of a sum of vectors by clipping them, as later notebooks do with
#   model updates.
# - **Account** for many releases, by hand with Rényi DP and with the tighter accountants of
#   `dp-accounting`.
# - **Use** the rest of the toolbox: randomized response (local DP), post-processing and group
#   privacy, the exponential mechanism and a private median.

# %% [markdown]
# ## Setup
#
# One cell of imports and seeds. `rng` is the numpy generator for everything that is *not* DP
# noise (example points, the from-scratch sampler, the audits' stand-ins), so a re-run prints the
# same numbers.
#
# The course's mechanisms (`privacy.laplace_mechanism`, `privacy.gaussian_mechanism`) draw their
# noise from the operating system's entropy by default: secret, different on every run, and the
# only mode in which their $\varepsilon$ holds. This notebook stores its outputs, and a stored
# output must come out the same on every run, so every call below that needs it opts in by name:
# `randomness=seeded(seed)` (a `PrivateRandomness.reproducible(seed)`). Noise from a known seed is
# **not private**: whoever knows the seed can regenerate and subtract it. That is fine for a
# lesson; never publish a release made that way.

# %%
import math

import dp_accounting
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from scipy import optimize, stats

from fl_helpers import (
    accounting,
    audit,
    data,
    noise_widgets,
    plotting,
    privacy,
    reproducibility,
    schedule,
)

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()


def seeded(seed):  # reproducible randomness: NOT private; for stored outputs and checks only
    return schedule.PrivateRandomness.reproducible(seed, warn=False)

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
# A privacy guarantee is about a **unit** (here: one record, i.e. one person's digit) and a
# **neighbouring relation** between datasets that differ in one unit. Two relations are in use:
#
# - **add/remove** (unbounded DP): $D'$ is $D$ with one record added or removed (here: with or
#   without Alice). It hides whether Alice took part at all.
# - **replace-one** (bounded DP): $D'$ is $D$ with one record replaced by any other. It hides
#   what Alice's record is, in a dataset whose size is public.
#
# A randomised algorithm $M$ is **$\varepsilon$-differentially private** (Dwork & Roth 2014,
# Definition 2.4 with $\delta = 0$) if for all neighbours $D, D'$ and every set $S$ of outputs
#
# $$\Pr[M(D) \in S] \;\le\; e^{\varepsilon}\, \Pr[M(D') \in S].$$
#
# Whatever an observer of the output does with it, their view changes by a factor of at most
# $e^\varepsilon$ when one unit changes. Here the **curator** (the server that holds the 1,000
# records and computes the count) is trusted; the **observer** is anyone who sees the released
# answers, with any side knowledge. Small $\varepsilon$ (0.1, 1) is a strong promise;
# $\varepsilon = 10$ allows a factor of 22,000 and is weak.
#
# How much noise is needed depends on how much one unit can move the answer: the **global L1
# sensitivity** (Dwork & Roth 2014, Definition 3.1)
#
# $$\Delta_1 f = \max_{D, D' \text{ neighbours}} \lVert f(D) - f(D') \rVert_1 .$$
#
# It depends on the relation. A count moves by at most 1 under both. A histogram of the 10
# digits moves by 1 under add/remove (one bin changes by one) but by 2 under replace-one (one
# bin loses one, another gains one). A sum of vectors each clipped to norm $C$ moves by $C$ in L2
# under add/remove and by $2C$ under replace-one; notebook 04's local DP uses the latter.

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
# $e^{\Delta_1 f / b} = e^{\varepsilon}$. Written with numpy's sampler, the whole mechanism is one
# line (we will see shortly that this line is not safe to deploy):

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
# `privacy.laplace_mechanism`. It draws its noise differently (see the pitfall below), so the
# parity check compares distributions, not individual draws: both samplers must have mean
# absolute error $b$ (20,000 draws each, tolerance 3%, four standard errors), and the helper's
# 10%, 50% and 90% quantiles must match those of the Laplace distribution.

# %%
NUM_PARITY = 20_000
scratch_noise = laplace_from_scratch(np.zeros(NUM_PARITY), sensitivity=1.0, epsilon=EPSILON,
                                     rng=np.random.default_rng(2))
helper_noise = privacy.laplace_mechanism(np.zeros(NUM_PARITY), sensitivity=1.0, epsilon=EPSILON,
                                         randomness=seeded(2))
np.testing.assert_allclose(np.mean(np.abs(scratch_noise)), 1.0 / EPSILON, rtol=0.03)
np.testing.assert_allclose(np.mean(np.abs(helper_noise)), 1.0 / EPSILON, rtol=0.03)
np.testing.assert_allclose(np.quantile(helper_noise, [0.1, 0.5, 0.9]),
                           stats.laplace.ppf([0.1, 0.5, 0.9], scale=1.0 / EPSILON),
                           atol=0.2)  # about five standard errors of these quantiles

# %% [markdown]
# ## Pitfall: the least significant bits give the input away
#
# > **Pitfall: floating-point noise is not Laplace noise.** A computer cannot draw from a
# > continuous distribution. numpy draws a uniform $u$ on the grid $j \cdot 2^{-53}$, computes
# > $b \ln(2u)$ in floating point and adds it to the answer, rounding again. The set of floats
# > that can come out depends on the true answer: near 0 the floats are dense, near 1 they are
# > spaced $2^{-52}$ apart, and the noise values are a fixed, sparse set. Mironov 2012 ("On
# > Significance of the Least Significant Bits for Differential Privacy") showed
# > that an observer who replays the sampler can rule inputs out *with certainty* — a privacy
# > loss of infinity.
#
# `privacy.mironov_impossible_outputs` is that replay. For each output from input 0 it searches
# all $2^{53} - 1$ uniform draws numpy could have made (by bisection: the output grows with $j$)
# and asks whether any of them gives exactly that float from the neighbouring input 1.

# %%
NUM_ATTACK = 3000
replay = {"other_input": 1.0, "sensitivity": 1.0, "epsilon": EPSILON}
naive_outputs = laplace_from_scratch(np.zeros(NUM_ATTACK), sensitivity=1.0, epsilon=EPSILON,
                                     rng=np.random.default_rng(4))
naive_impossible = privacy.mironov_impossible_outputs(naive_outputs, sampler="naive", **replay)
# Soundness: under the input that really produced them, every output is possible.
assert not privacy.mironov_impossible_outputs(naive_outputs, sampler="naive",
                                              **{**replay, "other_input": 0.0}).any()
helper_outputs = privacy.laplace_mechanism(np.zeros(NUM_ATTACK), sensitivity=1.0,
                                           epsilon=EPSILON,
                                           randomness=seeded(4))
helper_impossible = privacy.mironov_impossible_outputs(helper_outputs, sampler="helper",
                                                       **replay)

# %% tags=["nbval-check-output"]
print(f"naive numpy sampler: {naive_impossible.sum()} of {NUM_ATTACK} outputs from input 0 "
      "are impossible under input 1")
print(f"privacy.laplace_mechanism: {helper_impossible.sum()} of {NUM_ATTACK}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 2.8), width_ratios=(2, 1))
bins = np.linspace(-8, 8, 33)
left.hist([naive_outputs[naive_impossible], naive_outputs[~naive_impossible]], bins=bins,
          stacked=True, color=["tab:red", "0.75"],
          label=["impossible under input 1", "possible under input 1"])
left.set_xlabel("released answer (true answer 0)")
left.set_ylabel("outputs")
left.set_title("naive sampler", fontsize=9)
left.legend(fontsize=8, frameon=False)
right.bar(["naive", "helper"], [naive_impossible.sum(), helper_impossible.sum()],
          color=["tab:red", "tab:blue"])
right.set_ylabel("outputs that rule out input 1")
right.set_title(f"of {NUM_ATTACK} releases", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# With the naive sampler most releases prove that the input was not 1: no amount of
# $\varepsilon$ covers that. The impossible outputs are spread over the whole range (left), so
# this is not a rare tail event. The helper's mechanism follows Canonne, Kamath & Steinke 2020
# ("The Discrete Gaussian for Differential Privacy", Algorithms 1–3): it rounds the
# answer to a power-of-two grid ($2^{-40}$ for sensitivity 1), adds an integer number of grid
# steps drawn *exactly* from the discrete Laplace distribution with integer arithmetic only, and
# converts the result to a float. Every grid point is possible from every input, so the replay
# finds nothing. Rounding two neighbouring answers can move them one grid step further apart;
# the helper calibrates to that, and its $\varepsilon$ is exact:

# %% tags=["nbval-check-output"]
spec = privacy.laplace_mechanism_spec(sensitivity=1.0, epsilon=EPSILON)
print(f"grid {spec.granularity:.3g} = 2^{int(math.log2(spec.granularity))}, sensitivity on the "
      f"grid {spec.sensitivity_on_grid:.0f} steps, scale {spec.noise_scale:.12f}")
print(f"epsilon = {spec.epsilon}, delta = {spec.delta}")

# %% [markdown]
# > **Pitfall: a noise scale that forgets the sensitivity.** Some introductions
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
# $\varepsilon$ that holds with 95% confidence (`audit.empirical_epsilon_lower_bound`;
# Jagielski et al. 2020 audit DP-SGD this way). We audit the helper's mechanism, once told the
# right sensitivity (3) and once the pitfall's 1.

# %%
def audit_laplace(claimed_sensitivity, *, true_shift=3.0, num_draws=100_000, seed=2):
    audit_randomness = seeded(seed)
    kwargs = {"sensitivity": claimed_sensitivity, "epsilon": claimed,
              "randomness": audit_randomness}
    outputs_d = privacy.laplace_mechanism(np.zeros(num_draws), **kwargs)
    outputs_d_prime = privacy.laplace_mechanism(np.full(num_draws, true_shift), **kwargs)
    return audit.empirical_epsilon_lower_bound(outputs_d, outputs_d_prime,
                                               threshold=true_shift)


claimed = 1.0

# %% tags=["nbval-check-output"]
print(f"claimed epsilon: {claimed}")
print(f"audit, sensitivity 3 (correct):  epsilon >= {audit_laplace(3.0):.3f}")
print(f"audit, sensitivity 1 (pitfall):  epsilon >= {audit_laplace(1.0):.3f}")

# %% [markdown]
# The audit fails to refute the correct mechanism (its lower bound stays below the claimed 1),
# and proves that the pitfall leaks at least about three times what it claims, from nothing but
# its outputs. Note the asymmetry: an audit can never *pass* a mechanism, only fail to refute
# it — a low bound may simply mean the attack was weak (the floating-point attack above is a
# far stronger test than a threshold).

# %% [markdown]
# ## The attacker's view
#
# Why does the noise protect Alice? The attacker sees one output $x$ and wants to know which of
# the neighbouring datasets produced it. The best they can do is compare the two densities: the
# **privacy loss** $L(x) = \ln \frac{p(x \mid D)}{p(x \mid D')}$. For the Laplace mechanism it
# stays between $-\varepsilon$ and $\varepsilon$ *for every output* — that is the guarantee. For
# the Gaussian mechanism (next sections) it grows without bound in the tails, which is why that
# mechanism needs a $\delta$. This figure is about the mathematics of the two densities, so it
# uses the continuous Gaussian's analytic $\sigma$ (`privacy.gaussian_sigma`, below).

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
# $\varepsilon = 0.5$, $\delta = 10^{-5}$) is a straight line that does leave the band. Where,
# measured from which dataset's answer?

# %%
# L(x) = ((x - D')^2 - (x - D)^2) / (2 sigma^2) with D - D' = 1 is linear; solve L(x) = -epsilon.
band_left = (count_all + count_without_alice) / 2 - EPSILON * sigma_view**2
mu = 1.0 / (2 * sigma_view**2)  # for outputs drawn from D, L ~ N(mu, 2 mu)
tail = stats.norm.sf(EPSILON, loc=mu, scale=math.sqrt(2 * mu))  # P[L > epsilon]
loss = np.linspace(EPSILON, mu + 40 * math.sqrt(2 * mu), 200_001)
integrand = -np.expm1(EPSILON - loss) * stats.norm.pdf(loss, mu, math.sqrt(2 * mu))
delta_by_expectation = np.sum((integrand[1:] + integrand[:-1]) / 2 * np.diff(loss))

# %% tags=["nbval-check-output"]
print(f"the loss leaves the band at x = {band_left:.1f}: {count_all - band_left:.1f} counts "
      f"= {(count_all - band_left) / sigma_view:.2f} sigma from D's answer, "
      f"{(count_without_alice - band_left) / sigma_view:.2f} sigma from its neighbour's")
print(f"P[L > epsilon]             = {tail:.2e} ({tail / 1e-5:.0f} x delta)")
print(f"E[(1 - e^(epsilon - L))+]  = {delta_by_expectation:.3e}")
print(f"Balle-Wang delta(sigma)    = "
      f"{privacy.gaussian_delta(sigma=sigma_view, sensitivity=1.0, epsilon=EPSILON):.3e}")

# %% [markdown]
# The band is left about 25 counts from the truth: 3.59σ from D's answer (117) and 3.44σ from
# its neighbour's (116). It is tempting to read $\delta$ as "the probability that the privacy
# loss exceeds $\varepsilon$". It is not: here $\Pr[L > \varepsilon] \approx 2.9 \times 10^{-4}$,
# 29 times $\delta$. The exact relation is
#
# $$\delta = \mathbb{E}_{x \sim M(D)}\big[(1 - e^{\varepsilon - L(x)})_+\big] \;\le\;
#   \Pr[L > \varepsilon]:$$
#
# outputs with a loss just above $\varepsilon$ cost almost nothing, only the excess counts.
# The cell checks that the expectation, integrated numerically, equals Balle & Wang's closed form
# $1.0 \times 10^{-5}$. So $\delta$ is not a failure probability, but an (ε, δ) guarantee with
# $\delta$ well below $1/n$ still bounds what the rare, high-loss outputs can reveal.

# %% [markdown]
# ## The privacy–utility trade-off
#
# Privacy costs accuracy. For the Laplace mechanism the expected absolute error is exactly
# $\mathbb{E}|z| = b = \Delta_1 f / \varepsilon$: inversely proportional to $\varepsilon$. We
# check the formula against simulated releases of the helper's mechanism.

# %%
epsilons = np.logspace(-2, 1, 31)
predicted = [privacy.expected_absolute_error("laplace", sensitivity=1.0, epsilon=e)
             for e in epsilons]
simulated = [np.mean(np.abs(privacy.laplace_mechanism(
    np.zeros(5_000), sensitivity=1.0, epsilon=e, randomness=seeded(7))))
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
for e in (0.5, 2.0, 10.0):
    error_gauss = privacy.expected_absolute_error("gaussian", sensitivity=1.0, epsilon=e,
                                                  delta=1e-5)
    print(f"epsilon = {e:5.1f}: expected |error| Laplace {1.0 / e:7.3f}, "
          f"Gaussian {error_gauss:7.3f}")

# %% [markdown]
# On log axes the Laplace error is a straight line of slope −1. For a count of 117 sevens,
# $\varepsilon = 2$ costs about half a unit of error: cheap. For a count of 3 the same error would
# be a sixth of the answer: DP protects individuals, so it lets through statistics about many
# people far better than about few. For a single number the Gaussian mechanism is worse than
# Laplace; it wins for high-dimensional answers like model updates, because its noise is
# calibrated to the L2 sensitivity.

# %% [markdown]
# ## The Gaussian mechanism, calibrated for every ε
#
# Model updates are vectors with thousands of entries, and their natural bound is on the
# **L2 sensitivity** $\Delta_2 f = \max \lVert f(D) - f(D') \rVert_2$. The Gaussian mechanism
# adds $\mathcal{N}(0, \sigma^2)$ noise to every entry and gives the relaxed guarantee of
# **$(\varepsilon, \delta)$-DP** (Dwork & Roth 2014, Definition 2.4):
# $\Pr[M(D) \in S] \le e^\varepsilon \Pr[M(D') \in S] + \delta$ for every set $S$. As the
# attacker's view showed, $\delta$ is not the probability that privacy fails; choose it well
# below $1/n$ for $n$ units.
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
# That is the theory of the *continuous* Gaussian. The release `privacy.gaussian_mechanism`
# samples a discrete Gaussian on the same $2^{-40}$-grid as the Laplace mechanism (Canonne,
# Kamath & Steinke 2020, Algorithm 3), whose privacy is proven through its Rényi divergence (the
# same $\alpha\Delta^2/(2\sigma^2)$ as the continuous one) and converted to
# $(\varepsilon, \delta)$; that conversion is not tight, so it needs a few per cent more noise.
# The $\delta$ it reports is computed from the $\sigma$ it uses:

# %% tags=["nbval-check-output"]
for e in (0.5, 1.0, 10.0):
    released = privacy.gaussian_mechanism_spec(sensitivity=1.0, epsilon=e, delta=1e-5)
    analytic = privacy.gaussian_sigma(sensitivity=1.0, epsilon=e, delta=1e-5)
    print(f"epsilon = {e:4.1f}: analytic sigma {analytic:.3f}, helper's discrete sigma "
          f"{released.noise_scale:.3f} (+{released.noise_scale / analytic - 1:.1%}), "
          f"computed delta {released.delta:.3g}")

# %% [markdown]
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
# > than twice the promised $10^{-5}$; at $\varepsilon = 20$ it is 153 times too large. Federated
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
ax.set_xlabel("first coordinate of v")
ax.set_ylabel("second coordinate of v")
ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
plt.show()

# %% [markdown]
# Points outside the circle move radially onto it; points inside do not move. Now a real use:
# the **private mean image** of the sevens. Each of the 117 images is clipped to $C = 5$, the
# clipped images are summed, Gaussian noise is added to all 784 pixels at once, and the sum is
# divided by the number of sevens. That division needs care. Under add/remove the exact count of
# sevens is itself private (adding Alice's seven changes it by one), so dividing by it would leak
# it. Two honest options: release a noisy count too (spending part of $\varepsilon$) and divide by
# that, or use the **replace-one** relation on the data set of sevens, where neighbours swap one
# seven's image for another and the number of sevens, 117, is public. We take the second: it
# hides what each seven looks like, not whether someone wrote a seven. Swapping one clipped image
# for another moves the sum by up to $2C$ in L2, so the noise is calibrated to sensitivity $2C$.
# First, how much does clipping alone change?


# %%
CLIPPING_NORM = 5.0
sevens = x_train[:1000][labels == 7].reshape(-1, 784).astype(np.float64)
norms = np.linalg.norm(sevens, axis=1)
clipped_sevens = np.array([privacy.clip_by_l2_norm(image, CLIPPING_NORM)[0] for image in sevens])
clipped_sum = clipped_sevens.sum(axis=0)
factors = np.minimum(1.0, CLIPPING_NORM / norms)

# %% tags=["nbval-check-output"]
print(f"{len(sevens)} sevens, norms {norms.min():.1f} to {norms.max():.1f} "
      f"(mean {norms.mean():.1f})")
print(f"share clipped at C = {CLIPPING_NORM:g}: {np.mean(norms > CLIPPING_NORM):.0%}, "
      f"mean scaling factor {factors.mean():.2f}")

# %% [markdown]
# Every one of the 117 sevens has a norm above $C = 5$ (mean 8.6), so all are clipped, scaled by
# 0.59 on average: the clipped mean is a seven about 41% fainter before any noise is added.
# The figure shows this on one colour scale for all panels (0 = white, 1 = black; noise outside
# that range is drawn at the ends), with the noisy versions next to it.

# %%
panels = [("exact mean", sevens.mean(axis=0)),
          ("clipped, no noise", clipped_sum / len(sevens))]
for e in (0.5, 2.0, 10.0):
    noisy_sum = privacy.gaussian_mechanism(clipped_sum, sensitivity=2 * CLIPPING_NORM,
                                           epsilon=e, delta=DELTA,
                                           randomness=seeded(6))
    panels.append((f"ε = {e:g}", noisy_sum / len(sevens)))
fig, axes = plt.subplots(1, len(panels), figsize=(9.0, 2.3))
for ax, (title, image) in zip(axes, panels, strict=True):
    shown = ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0.0, vmax=1.0)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.colorbar(shown, ax=axes, shrink=0.8, label="pixel value")
plt.show()

# %% tags=["nbval-check-output"]
for e in (0.5, 2.0, 10.0):
    sigma = privacy.gaussian_mechanism_spec(sensitivity=2 * CLIPPING_NORM, epsilon=e,
                                            delta=DELTA, size=784).noise_scale
    print(f"epsilon = {e:4.1f}: sigma of the sum = {sigma:6.3f}, "
          f"per-pixel noise on the mean = {sigma / len(sevens):.4f}")

# %% [markdown]
# At $\varepsilon = 10$ the private mean is close to the *clipped* mean, not the exact one: the
# noise is small, the bias from clipping is not. At $\varepsilon = 0.5$ the seven is buried in
# noise, because 117 people are few. A smaller $C$ means less noise but more of this bias, a
# larger $C$ the opposite. Later notebooks make the same trade-off for model updates.

# %% [markdown]
# ## Composition: many releases add up
#
# Every answer leaks a little. If we release $k$ answers, each $\varepsilon_0$-DP, the combination
# is $k\varepsilon_0$-DP (**basic composition**, Dwork & Roth 2014, Theorem 3.16): by hand,
# $\varepsilon$ simply adds up. That bound is safe but pessimistic. **Rényi differential
# privacy** (Mironov 2017) describes a mechanism by a curve $\varepsilon(\alpha)$, the Rényi
# divergence of order $\alpha > 1$ between the output distributions on neighbours; curves of
# composed mechanisms simply add (Proposition 1), and a curve converts to $(\varepsilon, \delta)$
# at the end. Before using a library, we do this once by hand for the plain Gaussian mechanism
# with noise multiplier $z = \sigma / \Delta$ released $T$ times:
#
# $$\varepsilon_{\text{RDP}}(\alpha) = \frac{\alpha T}{2 z^2}
#   \quad\text{(Mironov 2017, Table II, composed } T \text{ times)},$$
#
# $$\varepsilon = \min_\alpha \Big[\varepsilon_{\text{RDP}}(\alpha)
#   + \frac{\ln(1/\delta)}{\alpha - 1}\Big]
#   \quad\text{(Mironov 2017, Proposition 3)},$$
#
# or the slightly tighter conversion that `dp-accounting` uses (Canonne, Kamath & Steinke 2020,
# Proposition 12):
# $\min_\alpha \big[\varepsilon_{\text{RDP}}(\alpha) + \ln(1 - 1/\alpha) - \frac{\ln(\delta \alpha)}{\alpha - 1}\big]$.
# $T$ Gaussian releases with multiplier $z$ are
# also *exactly* one Gaussian release with multiplier $z/\sqrt{T}$, so Balle & Wang's formula
# gives the true $\varepsilon$ to compare with.

# %%
Z, T = 10.0, 100
orders = np.array(accounting.RDP_ORDERS)
rdp_curve = orders * T / (2 * Z**2)
eps_mironov = np.min(rdp_curve + np.log(1 / DELTA) / (orders - 1))
eps_by_hand = np.min(rdp_curve + np.log1p(-1 / orders) - np.log(DELTA * orders) / (orders - 1))
library = dp_accounting.rdp.RdpAccountant(list(orders))
library.compose(dp_accounting.GaussianDpEvent(Z), T)
np.testing.assert_allclose(eps_by_hand, library.get_epsilon(DELTA), rtol=1e-9)
eps_exact = optimize.brentq(lambda e: privacy.gaussian_delta(
    sigma=Z / math.sqrt(T), sensitivity=1.0, epsilon=e) - DELTA, 1e-6, 100.0, xtol=1e-12)

# %% tags=["nbval-check-output"]
print(f"z = {Z:g}, T = {T}: RDP by hand (Mironov conversion) epsilon = {eps_mironov:.3f}")
print(f"RDP by hand (CKS conversion) epsilon = {eps_by_hand:.3f}, "
      f"dp-accounting RDP {library.get_epsilon(DELTA):.3f}")
print(f"exact (one Gaussian of multiplier z / sqrt(T)): epsilon = {eps_exact:.3f}")

# %% [markdown]
# The hand computation and the library agree to nine digits, and both sit above the exact value:
# RDP is a safe but not tight description. The library does the same for mechanisms whose curve
# has no one-line formula, such as Laplace releases or subsampled Gaussians. Its
# privacy-loss-distribution (PLD) accountant is tighter still, numerically almost exact.
# Below: $k$ Laplace releases with $\varepsilon_0 = 0.1$ each, at $\delta = 10^{-5}$ for the
# accountants.

# %%
EPSILON_0, NUM_RELEASES = 0.1, 1000
releases = np.arange(1, NUM_RELEASES + 1)
basic = releases * EPSILON_0  # basic composition: epsilon adds up
rdp = accounting.laplace_epsilon_per_release(epsilon=EPSILON_0, num_releases=NUM_RELEASES,
                                             target_delta=DELTA, accountant="rdp")
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
print(f"from k = 100 to 1000: RDP grows x{rdp[999] / rdp[99]:.1f} "
      f"(sqrt(10) = {math.sqrt(10):.2f}, basic composition x10)")
print(f"k * eps0^2 = {100 * EPSILON_0**2:.0f} at k = 100 and {1000 * EPSILON_0**2:.0f} at "
      f"k = 1000, against ln(1/delta) = {math.log(1 / DELTA):.1f}")

# %% [markdown]
# For a handful of releases adding up is as good as anything (RDP even pays a little for
# converting to $\delta$). From about ten releases on, the accountants win, and by 1,000
# releases basic composition claims $\varepsilon = 100$ where RDP gives 18.58. Their total grows
# much more slowly than $k$ but, over this range, faster than $\sqrt{k}$: from 100 to 1,000
# releases RDP goes from 4.53 to 18.58, ×4.1 where $\sqrt{10} \approx 3.16$. Advanced
# composition (Dwork & Roth 2014, Theorem 3.20) shows why: $k$ releases of $\varepsilon_0$ are
# $(\varepsilon, \delta)$-DP with
# $\varepsilon = \varepsilon_0\sqrt{2k\ln(1/\delta)} + k\varepsilon_0(e^{\varepsilon_0} - 1)$.
# The first term grows like $\sqrt{k}$ and dominates while $k\varepsilon_0^2 \ll \ln(1/\delta)$;
# the second grows linearly (about $k\varepsilon_0^2$) and takes over for large $k$. So
# $\sqrt{k}$ is the behaviour for *moderate* $k$, and for very large $k$ the total tends to grow
# linearly again, though with a slope far below basic composition's $\varepsilon_0$. Here
# $k\varepsilon_0^2$ is 1 at $k = 100$ and 10 at $k = 1{,}000$, against $\ln(1/\delta) = 11.5$:
# we are leaving the $\sqrt{k}$ regime, hence ×4.1. Training a model releases thousands of noisy
# updates, each with a small $\varepsilon_0$, so this is what makes private training possible at
# all.
#
# The course's helper `accounting.dp_fedavg_epsilon` does this for the mechanism used in training:
# Gaussian noise on a random subset of the data each step. Its accountant **assumes each batch is
# Poisson-sampled** (every example joins independently with probability $q$), which is what the
# amplification-by-sampling analysis covers; shuffling and taking fixed-size batches is a
# different mechanism. The settings below — noise multiplier 1.1, batches of 256 out of 60,000,
# 60 epochs = 14,062 steps — are close to those of the TensorFlow Privacy MNIST tutorial (its
# README table: $z = 1.12$, 256 microbatches, 60 epochs, $\varepsilon = 2.92$), not a result of
# Abadi et al. 2016, who introduced DP-SGD and the moments accountant. The unit here is one
# *example* (example-level DP), not a client.

# %% tags=["nbval-check-output"]
Q_DPSGD, STEPS = 256 / 60000, 14_062
epsilon_dpsgd = accounting.dp_fedavg_epsilon(noise_multiplier=1.1, sampling_probability=Q_DPSGD,
                                             num_rounds=STEPS, target_delta=DELTA,
                                             accountant="rdp")
noise_back = accounting.noise_multiplier_for_epsilon(
    target_epsilon=epsilon_dpsgd, target_delta=DELTA, sampling_probability=Q_DPSGD,
    num_rounds=STEPS, accountant="rdp")
print(f"z = 1.1: epsilon after {STEPS} steps: {epsilon_dpsgd:.3f} (RDP, delta = 1e-5)")
print(f"noise multiplier for that epsilon: {noise_back:.3f}")

# %% [markdown]
# Why 2.597 and not the tutorial's 2.92? Two reasons, both measurable: the tutorial's $z$ is
# 1.12, and it converts the same RDP curve to $(\varepsilon, \delta)$ with Mironov 2017's
# Proposition 3, where dp-accounting uses the tighter conversion from the hand computation above.
# The RDP curve of the subsampled Gaussian has no one-line formula, so we take it from the
# library's accountant and convert it both ways; the PLD accountant (this course's default) is
# tighter again.

# %%
tutorial = dp_accounting.rdp.RdpAccountant(list(orders))
tutorial.compose(dp_accounting.PoissonSampledDpEvent(
    Q_DPSGD, dp_accounting.GaussianDpEvent(1.12)), STEPS)
tutorial_curve = np.array(tutorial.rdp)  # the composed RDP curve, one value per order
eps_tutorial_mironov = np.min(tutorial_curve + np.log(1 / DELTA) / (orders - 1))
eps_tutorial_cks = tutorial.get_epsilon(DELTA)
eps_tutorial_pld = accounting.dp_fedavg_epsilon(noise_multiplier=1.12,
                                                sampling_probability=Q_DPSGD,
                                                num_rounds=STEPS, target_delta=DELTA)

# %% tags=["nbval-check-output"]
print(f"z = 1.12, RDP, Mironov conversion: epsilon = {eps_tutorial_mironov:.3f}")
print(f"z = 1.12, RDP, CKS conversion:     epsilon = {eps_tutorial_cks:.3f}")
print(f"z = 1.12, PLD accountant:          epsilon = {eps_tutorial_pld:.3f}")

# %% [markdown]
# With the tutorial's $z$ and its conversion we get its 2.92 back; the conversion alone is worth
# 0.40 of $\varepsilon$, the PLD accountant another 0.20. Notebook 04 uses these accountants to
# pick the noise for a privacy budget and to stop training when it is spent.

# %% [markdown]
# ### Try it
#
# The static figure first: the distribution of noisy answers to "how many sevens?" with the
# Laplace mechanism at $\varepsilon = 0.5$, with 2,000 simulated releases, and, dashed, the
# distribution the answers would have without Alice. Privacy is about how alike the two curves
# are, not only about how wide they are.

# %%
samples = privacy.laplace_mechanism(np.full(2000, float(count_all)), sensitivity=1.0,
                                    epsilon=EPSILON, randomness=seeded(3))
plotting.plot_noisy_answer_distribution(count_all, "laplace", sensitivity=1.0, epsilon=EPSILON,
                                        samples=samples, neighbour_answer=count_without_alice)
plt.show()

# %% [markdown]
# Now move the sliders. Drag $\varepsilon$ towards "more privacy" and watch the two curves merge;
# drag it to "less privacy" and watch them separate, which is when an observer can tell whether
# Alice is in. Raise the sensitivity (e.g. 3 if each person may hold up to three images) and see
# that the noise must grow with it; switch to the Gaussian mechanism and vary $\delta$. The line
# above the plot gives the expected error. The x axis stays fixed at ±25 around the truth. (The
# widget's samples use a fixed seed so that the picture only changes with the settings.)

# %% tags=["nbval-ignore-output"]
display(noise_widgets.noise_explorer(count_all, epsilon=EPSILON, neighbour_answer=count_without_alice))


# %% [markdown]
# ## Four more tools from the DP toolbox
#
# Everything so far added noise to a number held by a trusted curator. Four more ideas come up in
# every course on differential privacy, and later notebooks lean on each of them: a mechanism
# that needs no trusted curator at all, two theorems that say what may be done with a release,
# a mechanism for choosing rather than counting, and a private median. Each is short, and each
# has an exercise with a check cell (Exercises 4–7).
#
# ### Randomized response: local DP without a trusted curator
#
# Suppose the server itself is not trusted. Each of the 1,000 people answers "is your digit a
# 7?" by **randomized response** (Warner 1965): with probability $p$ tell the truth, otherwise
# say the opposite. Whatever the true bit, either report has probability $p$ or $1 - p$, so
# changing the bit changes the probability of any report by a factor of at most
# $p / (1 - p)$: each report is $\varepsilon$-DP with
#
# $$\varepsilon = \ln\frac{p}{1 - p} \quad (\text{Dwork \& Roth 2014, Section 3.2: } p = 3/4
#   \text{ gives } \ln 3).$$
#
# The unit is one person's bit and the relation replace-one (the bit changes); the **trusted
# party is nobody**, because each person randomises before anything leaves their device, and the
# observer is everyone, the server included. This is **local DP**. The server still learns the
# share $s$ of sevens: a report is 1 with probability $\pi = ps + (1 - p)(1 - s)$, so
# $\hat s = (\bar r - (1 - p)) / (2p - 1)$ is unbiased. From scratch, with numpy's coin:

# %%
TRUTH_P = 0.75  # p, the probability of a truthful report
is_seven = (labels == 7).astype(int)  # each person's private bit
coin_rng = np.random.default_rng(21)  # from scratch: numpy's float coin, for the lesson only
truthful = coin_rng.random(is_seven.size) < TRUTH_P
reports_scratch = np.where(truthful, is_seven, 1 - is_seven)
share_scratch = (reports_scratch.mean() - (1 - TRUTH_P)) / (2 * TRUTH_P - 1)
epsilon_rr = math.log(TRUTH_P / (1 - TRUTH_P))
pi_rr = TRUTH_P * is_seven.mean() + (1 - TRUTH_P) * (1 - is_seven.mean())
se_rr = math.sqrt(pi_rr * (1 - pi_rr) / is_seven.size) / (2 * TRUTH_P - 1)
se_central = math.sqrt(2) / epsilon_rr / is_seven.size  # Laplace count / n, same epsilon

# %% tags=["nbval-check-output"]
print(f"p = {TRUTH_P}: epsilon = ln(p / (1 - p)) = {epsilon_rr:.4f} per person")
print(f"true share of sevens {is_seven.mean():.3f}, estimate from the reports {share_scratch:.3f}")
print(f"standard error: randomized response {se_rr:.4f}, central Laplace count "
      f"{se_central:.4f} (x{se_rr / se_central:.0f})")

# %% [markdown]
# The helper `privacy.randomized_response` flips an **exact** coin: $p$ is a float, hence a
# fraction $a / 2^k$, and a report is truthful when a uniform integer below $2^k$ is below $a$
# (secret bits by default, like the mechanisms above). Its estimator is the same formula, and
# its coin lands truthful with probability $p$ (parity check), so the spread of many simulated
# surveys is the one just computed:

# %%
np.testing.assert_allclose(privacy.randomized_response_estimate(
    reports_scratch, truth_probability=TRUTH_P), share_scratch, rtol=1e-12)
many = privacy.randomized_response(np.zeros(20_000, dtype=int), truth_probability=TRUTH_P,
                                   randomness=seeded(22))
np.testing.assert_allclose(1 - many.mean(), TRUTH_P, atol=4 * math.sqrt(3 / 16 / 20_000))
surveys = np.array([privacy.randomized_response_estimate(privacy.randomized_response(
    is_seven, truth_probability=TRUTH_P, randomness=seeded(100 + i)),
    truth_probability=TRUTH_P) for i in range(200)])
central = privacy.laplace_mechanism(np.full(200, float(is_seven.sum())), sensitivity=1.0,
                                    epsilon=epsilon_rr,
                                    randomness=seeded(23)) / is_seven.size
fig, ax = plt.subplots(figsize=(6.0, 3.2))
bins = np.linspace(0.0, 0.25, 51)
ax.hist(surveys, bins=bins, color="tab:orange", label="randomized response\n(local DP)")
ax.hist(central, bins=bins, color="tab:blue", label="Laplace count / n\n(trusted curator)")
ax.axvline(is_seven.mean(), color="k", ls="--", lw=1, label="true share")
ax.set_xlabel("estimated share of sevens, 200 surveys, ε = ln 3 each")
ax.set_ylabel("surveys")
ax.legend(frameon=False, fontsize=8, loc="upper right")
plt.show()

# %% tags=["nbval-check-output"]
print(f"200 surveys: randomized response mean {surveys.mean():.3f}, sd {surveys.std():.3f}; "
      f"central Laplace mean {central.mean():.3f}, sd {central.std():.4f}")

# %% [markdown]
# Both are unbiased and both give every person $\varepsilon = \ln 3$, but the local estimate is
# 23 times noisier: every one of the 1,000 reports carries its own noise, and the errors add
# up like $\sqrt{n}$, where the trusted curator adds one noise to the sum. That is the price of
# trusting nobody, and the reason notebook 06 measures local DP against distributed noise with
# secure aggregation. (Exercise 4 checks the formula for $\varepsilon$.)

# %% [markdown]
# ### Two theorems: post-processing and group privacy
#
# **Post-processing** (Dwork & Roth 2014, Proposition 2.1). If $M$ is
# $(\varepsilon, \delta)$-DP and $f$ is any function, random or not, that does not look at the
# data again, then $f \circ M$ is $(\varepsilon, \delta)$-DP. *Proof idea:* for a deterministic
# $f$, $\Pr[f(M(D)) \in S] = \Pr[M(D) \in f^{-1}(S)]$, and the definition holds for the set
# $f^{-1}(S)$; a random $f$ is a mixture of deterministic ones. This is why the estimator
# $\hat s$ above costs nothing, why dividing a noisy sum by a *public* count is free, and why the
# helpers may turn their exact integer noise into floats at the end.
#
# **Group privacy** (Dwork & Roth 2014, Theorem 2.2 for $\delta = 0$). If $M$ is
# $(\varepsilon, \delta)$-DP for one unit, then for datasets that differ in $k$ units it is
#
# $$\big(k\varepsilon,\; \delta\,(1 + e^{\varepsilon} + \dots + e^{(k-1)\varepsilon})\big)
#   \text{-DP}, \qquad \delta\,(1 + \dots + e^{(k-1)\varepsilon}) \le k\, e^{(k-1)\varepsilon}
#   \delta.$$
#
# *Proof idea:* join the two datasets by a chain of $k$ neighbours and apply the definition $k$
# times; each step multiplies the probability by $e^{\varepsilon}$ and adds $\delta$, and the
# earlier $\delta$'s are multiplied by the later $e^{\varepsilon}$'s. So $\varepsilon$ grows
# linearly but $\delta$ grows exponentially. The DP-SGD guarantee above ($\varepsilon = 2.597$
# for one *example*) seen by a writer who contributed several examples:

# %% tags=["nbval-check-output"]
for k in (1, 2, 3, 10):
    group_eps, group_delta = privacy.group_privacy(epsilon=epsilon_dpsgd, delta=DELTA,
                                                   group_size=k)
    bound = min(1.0, k * math.exp((k - 1) * epsilon_dpsgd) * DELTA)
    print(f"k = {k:2d} examples: epsilon = {group_eps:6.2f}, delta = {group_delta:.2e} "
          f"(bound k e^((k-1) eps) delta = {bound:.2e})")

# %% [markdown]
# With three examples $\delta$ is already $1.94 \times 10^{-3}$, almost 200 times the
# $10^{-5}$ we started from; with ten, $\delta$ reaches 1 and the guarantee says nothing. A
# record-level guarantee does not stretch to people with many records; that is why federated
# learning protects the *client*, the unit that holds all of one person's data (notebook 04).
# Exercise 5 checks the $\delta$ of a group.

# %% [markdown]
# ### Choosing, not counting: the exponential mechanism
#
# Some answers are not numbers: *which* digit is the most common? Adding noise to the winner's
# name makes no sense. The **exponential mechanism** (McSherry & Talwar 2007; Dwork & Roth 2014,
# Section 3.4) scores every candidate $r$ by a utility $u(D, r)$ whose sensitivity $\Delta u$ is
# the most one unit can move any score, and picks $r$ with probability
#
# $$\Pr[r] \propto \exp\Big(\frac{\varepsilon\, u(D, r)}{2\Delta u}\Big),$$
#
# which is $\varepsilon$-DP (Dwork & Roth 2014, Theorem 3.10): numerator and normaliser each move
# by at most $e^{\varepsilon/2}$. Here the score is the digit's count, $\Delta u = 1$ under
# add/remove. From scratch, a float softmax (which, like the Laplace one-liner, is for the
# lesson only):

# %%
digit_counts = np.bincount(labels, minlength=10)
EPSILON_CHOICE = 0.5
weights = np.exp(EPSILON_CHOICE * (digit_counts - digit_counts.max()) / 2)
choice_probs = weights / weights.sum()
choice_scratch = coin_rng.choice(10, p=choice_probs)
neighbour_counts = np.bincount(np.delete(labels, ALICE), minlength=10)  # without Alice
neighbour_probs = privacy.exponential_mechanism_probabilities(
    neighbour_counts, sensitivity=1.0, epsilon=EPSILON_CHOICE)

# %% tags=["nbval-check-output"]
print("counts:", digit_counts.tolist())
print("P[digit] at epsilon = 0.5:", np.round(choice_probs, 3).tolist())
worst_log_ratio = np.max(np.abs(np.log(choice_probs / neighbour_probs)))
print(f"worst log ratio with and without Alice: {worst_log_ratio:.3f} <= {EPSILON_CHOICE}")

# %% [markdown]
# Sevens (117) beat ones (116) by a single image, Alice's. Without her the two tie, so no
# private mechanism may call 7 the winner with confidence: it picks 7 with probability 0.535
# and 1 with 0.417, and the log ratio with and without Alice stays within 0.5 (the worst one,
# 0.126, is well below it because counts only grow when a record is added; for scores that can
# move only one way the factor 2 can be dropped, see Dwork & Roth 2014, Section 3.4).
#
# `privacy.exponential_mechanism` samples this distribution **exactly**: it proposes a
# candidate uniformly and accepts it with probability
# $\exp(-\varepsilon (u_{\max} - u(D, r)) / (2\Delta u))$, a Bernoulli$(e^{-\gamma})$ with a
# rational $\gamma$, drawn with the same integer-only algorithm as the discrete Laplace noise
# (Canonne, Kamath & Steinke 2020, Algorithm 1). **Report noisy max**, the other textbook route
# (add noise to every score, release the index of the largest), samples the same distribution
# with Gumbel noise, and is also $\varepsilon$-DP with Laplace noise of scale $1/\varepsilon$ on
# counts (Dwork & Roth 2014, Claim 3.9), a different distribution with the same guarantee.
# Gumbel noise needs a float logarithm, so the helper samples the exponential mechanism itself,
# with integer arithmetic only. Parity with the closed form, over 1,000 draws:

# %%
np.testing.assert_allclose(privacy.exponential_mechanism_probabilities(
    digit_counts, sensitivity=1.0, epsilon=EPSILON_CHOICE), choice_probs, rtol=1e-12)
choice_randomness = seeded(24)
picks = np.array([privacy.exponential_mechanism(digit_counts, sensitivity=1.0,
                                                epsilon=EPSILON_CHOICE,
                                                randomness=choice_randomness)
                  for _ in range(1000)])
np.testing.assert_allclose(np.bincount(picks, minlength=10) / 1000, choice_probs, atol=0.05)

# %% tags=["nbval-check-output"]
print(f"1000 exact draws: 7 chosen {np.mean(picks == 7):.3f}, 1 chosen {np.mean(picks == 1):.3f}")

# %% [markdown]
# ### A private median
#
# A median sounds safe to release, yet its global sensitivity is the whole range of the data:
# the median of $\{0, 0, 10, 10, 10\}$ is 10, and replacing one 10 by a 0 makes it 0. The
# Laplace mechanism would need noise as wide as the range.
# (Smooth sensitivity, Nissim, Raskhodnikova & Smith 2007, calibrates to the dataset at hand,
# but it needs care we skip here.) The exponential mechanism does it cleanly: fix a **public**
# grid of candidates before looking at the data, and score each candidate $g$ by its rank error
#
# $$u(D, g) = -\big|\#\{i : x_i \le g\} - q\,n\big|,$$
#
# for the quantile $q$ ($q = 1/2$ is the median). One record moves the count by at most 1 and,
# under add/remove, $qn$ by $q$, so $\Delta u = 1$ under either relation. Our values: the L2
# norm of each of the 1,000 images, on the grid $0, 0.1, \dots, 28$ (public, because pixels lie
# in $[0, 1]$ and an image has 784 of them). The median norm is the clipping norm that would
# clip half of the images.

# %%
EPSILON_MEDIAN = 0.1
image_norms = np.linalg.norm(x_train[:1000].reshape(1000, -1).astype(np.float64), axis=1)
GRID = np.round(np.arange(0.0, 28.05, 0.1), 1)  # public candidates
ranks = np.searchsorted(np.sort(image_norms), GRID, side="right")  # #{x_i <= g}
rank_scores = -np.abs(ranks - 0.5 * image_norms.size)
median_weights = np.exp(EPSILON_MEDIAN * (rank_scores - rank_scores.max()) / 2)
median_probs = median_weights / median_weights.sum()
median_scratch = coin_rng.choice(GRID, p=median_probs)  # float sampler: for the lesson only
np.testing.assert_allclose(privacy.exponential_mechanism_probabilities(
    rank_scores, sensitivity=1.0, epsilon=EPSILON_MEDIAN), median_probs, rtol=1e-9)
median_randomness = seeded(25)
medians = np.array([privacy.private_quantile(image_norms, quantile=0.5, candidates=GRID,
                                             epsilon=EPSILON_MEDIAN,
                                             randomness=median_randomness) for _ in range(100)])

# %% tags=["nbval-check-output"]
print(f"exact median norm {np.median(image_norms):.3f}")
print(f"epsilon = {EPSILON_MEDIAN}: 100 exact draws, 90% of them in "
      f"[{np.quantile(medians, 0.05):.1f}, {np.quantile(medians, 0.95):.1f}], "
      f"mean absolute error {np.mean(np.abs(medians - np.median(image_norms))):.2f}")

# %% [markdown]
# Even at $\varepsilon = 0.1$, 90% of the private medians lie in [8.9, 9.4] around the exact
# 9.174: with 1,000 values, a candidate a few grid steps away already has a rank error of
# dozens, and its weight $e^{-0.05 \cdot \text{error}}$ collapses. Two later places need exactly
# this:
#
# - **Adaptive clipping** (Andrew et al. 2021, "Differentially Private Learning with Adaptive
#   Clipping"): instead of guessing the clipping norm $C$, DP-FedAvg tracks a quantile of the
#   clients' update norms. Each round every sampled client sends one bit, "my norm was at most
#   $C$", the server adds noise to the *count* of those bits, and moves $C$ geometrically towards
#   the target quantile (the course's `aggregation.AdaptiveClipDPFedAvg`). That is a private
#   quantile estimated from a noised count, one round at a
#   time, paid for from the same privacy budget.
# - **Preprocessing** (notebook 08): filling a hospital's missing values with a median, or
#   standardising with a mean and a spread, is a release too when it crosses a silo boundary; a
#   private quantile on a public grid is how to share it.
#
# Exercises 6 and 7 use both helpers.


# %% [markdown]
# ## Exercises
#
# ### Exercise 1 ★ (predict)
#
# A count of sevens is released with the Laplace mechanism at $\varepsilon = 1$, each person
# holding one image. Next year you want ten times more privacy, $\varepsilon = 0.1$, and each
# person may send up to three images, all of which count. By what factor does the expected
# absolute error of the released count change? Predict first, then set `answer_1` to a number.
#
# <details><summary>Hint</summary>Two things changed. For each, ask which way the noise scale
# must move to keep the promise, and by how much; the trade-off plot shows one of them.</details>

# %%
answer_1 = None  # your prediction, e.g. 2.0

# %%
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
# ### Exercise 2 ★★ (modify)
#
# Release the whole **histogram** of the 10 digits among the 1,000 records with
# $\varepsilon$-DP. Complete `noisy_histogram` using `privacy.laplace_mechanism` once on the
# vector of 10 counts. What is the L1 sensitivity of the histogram when one record is added or
# removed?
#
# <details><summary>Hint</summary>`np.bincount(labels, minlength=10)` gives the counts. One record
# changes exactly one bin, by one. Pass `randomness=randomness` so that the check cell can compare
# your release with its own (a real release would leave it out, for secret noise).</details>

# %%
def noisy_histogram(labels, *, epsilon, randomness):
    """Returns the 10 digit counts of `labels` with Laplace noise, epsilon-DP."""
    return None  # replace with your code


# %%
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
# ### Exercise 3 ★★★ (design)
#
# Someone hands you `mystery_mechanism` below and claims it is 1-DP for queries of sensitivity 1
# (neighbouring true answers 0 and 1). Design an experiment that can *refute* the claim with 95%
# confidence: choose the number of runs and a threshold **before** looking at any output, then
# use `audit.empirical_epsilon_lower_bound`. Is the claim true? How many runs would you need
# to be confident if the mechanism were only slightly off (say truly 1.2-DP)?
#
# <details><summary>Hint</summary>Where is the likelihood ratio of two shifted Laplace densities
# largest? The audit in the Laplace section is a template. A solution is in
# `notebooks/solutions/01_differential_privacy_noise_solutions.ipynb`.</details>

# %%
def mystery_mechanism(true_answer, *, rng, size=None):
    return true_answer + rng.laplace(scale=0.7, size=size)


# %% [markdown]
# ### Exercise 4 ★ (predict)
#
# *Randomized response.* Which truthful probability $p$ gives exactly $\varepsilon = 1$? Set
# `answer_rr` to it (four decimals are enough).

# %%
answer_rr = None  # your p

# %%
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
# ### Exercise 5 ★ (predict)
#
# *Group privacy.* A release is $(0.5, 10^{-6})$-DP for one record. What does it guarantee
# a person with 3 records? Set `answer_group = (epsilon, delta)`.

# %%
answer_group = None  # e.g. (1.0, 2e-6)

# %%
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
# ### Exercise 6 ★★ (modify)
#
# *The exponential mechanism.* Choose the **least** common digit privately at $\varepsilon = 0.5$:
# complete `private_rarest_digit` with one call to `privacy.exponential_mechanism`.
#
# <details><summary>Hint</summary>The mechanism picks high scores. What score is high for a rare
# digit, and what is its sensitivity? Pass `randomness=randomness` for the check.</details>

# %%
def private_rarest_digit(labels, *, epsilon, randomness):
    """The least common digit among `labels`, chosen with epsilon-DP."""
    return None  # replace with your code


# %%
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
# ### Exercise 7 ★★ (modify)
#
# *A private quantile.* Release the **90th percentile** of the image norms at
# $\varepsilon = 0.1$ with `privacy.private_quantile`, on the same grid. Set `answer_q90` to your
# release (use `randomness=seeded(9)` so that the check can repeat it).

# %%
answer_q90 = None  # your release

# %%
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


# %% [markdown]
# ## Summary
#
# - An exact statistic can expose one record through differencing; $\varepsilon$-DP bounds how
#   much any output can depend on one unit (here one record), under a stated neighbouring
#   relation (add/remove or replace-one, which can double the sensitivity), by a factor
#   $e^\varepsilon$, against anyone who sees the outputs of a trusted curator.
# - The Laplace mechanism adds noise of scale $\Delta_1 f / \varepsilon$; forgetting the
#   sensitivity silently multiplies the real $\varepsilon$ by it, and an empirical audit with
#   Clopper–Pearson bounds catches it (an audit can refute a claim, never prove it).
# - Floating-point noise leaks through its last bits (Mironov 2012): the course's mechanisms
#   sample discrete noise exactly on a power-of-two grid, from a secret source unless you ask for
#   reproducible (not private) noise by name.
# - The Gaussian mechanism gives $(\varepsilon, \delta)$-DP with L2 sensitivity; calibrate
#   $\sigma$ with the analytic formula of Balle & Wang, not the classic bound, which is
#   unproven for $\varepsilon \ge 1$ and breaks above $\varepsilon \approx 8.4$ for
#   $\delta = 10^{-5}$. $\delta = \mathbb{E}[(1 - e^{\varepsilon - L})_+]$ is smaller than the
#   probability that the loss exceeds $\varepsilon$.
# - Clipping each vector to norm $C$ makes the sensitivity of a sum $C$, at the cost of bias.
#   Privacy loss composes: Rényi curves add up (by hand for the Gaussian, $\alpha T / (2z^2)$),
#   and RDP and PLD accountants grow far slower than $k\varepsilon_0$.
# - Randomized response is $\ln(p / (1 - p))$-DP with no trusted party (local DP), at the price
#   of $\sqrt{n}$ times the error of a trusted curator. Post-processing never costs privacy;
#   a group of $k$ units gets $(k\varepsilon, \le k e^{(k-1)\varepsilon}\delta)$. The
#   exponential mechanism chooses privately (the most common digit, a median on a public grid),
#   sampled exactly.

# %% [markdown]
# ## Further reading
#
# - C. Dwork and A. Roth, *The Algorithmic Foundations of Differential Privacy*, 2014:
#   Chapter 1 (why anonymisation and aggregate answers fail), Chapter 2 (the definition,
#   Definition 2.4), Chapter 3 (Section 3.3 the Laplace mechanism, Theorem 3.6; Section 3.5
#   composition, Theorems 3.16 and 3.20), Appendix A (the Gaussian mechanism, Theorem A.1).
# - I. Mironov, "On Significance of the Least Significant Bits for Differential Privacy",
#   CCS 2012: the floating-point attack on textbook Laplace samplers, and the snapping
#   mechanism as a defence.
# - C. Canonne, G. Kamath and T. Steinke, "The Discrete Gaussian for Differential Privacy",
#   NeurIPS 2020: the Rényi / concentrated-DP analysis of the discrete Gaussian, Proposition 12
#   (RDP to $(\varepsilon, \delta)$, numbered as in arXiv v4), Algorithms 1–3 (exact sampling,
#   as in our helpers).
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
#   and noise in DP-SGD, Poisson-style "lots"), Section 3.2 (the moments accountant). The
#   settings $z = 1.12$, 256, 60 epochs, $\varepsilon = 2.92$ are from the TensorFlow Privacy
#   MNIST tutorial's README, not from the paper.
# - S. L. Warner, "Randomized Response: A Survey Technique for Eliminating Evasive Answer Bias",
#   JASA 1965: the coin and the unbiased estimator; Dwork & Roth 2014, Section 3.2 (Claim 3.5),
#   as local DP.
# - F. McSherry and K. Talwar, "Mechanism Design via Differential Privacy", FOCS 2007: the
#   exponential mechanism (Dwork & Roth 2014, Section 3.4, Theorem 3.10; report noisy max,
#   Section 3.3, Claim 3.9).
# - A. Smith, "Privacy-Preserving Statistical Estimation with Optimal Convergence Rates",
#   STOC 2011: private quantiles with the exponential mechanism; K. Nissim, S. Raskhodnikova and
#   A. Smith, "Smooth Sensitivity and Sampling in Private Data Analysis", STOC 2007.
# - G. Andrew, O. Thakkar, H. B. McMahan and S. Ramaswamy, "Differentially Private Learning with
#   Adaptive Clipping", NeurIPS 2021: Section 3 and Algorithm 1 (the quantile estimate from a noised
#   count of clipped clients, and its geometric update).
