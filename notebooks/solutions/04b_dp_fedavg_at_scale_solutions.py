# %% [markdown]
# # Solutions to the exercises of notebook 04b (DP-FedAvg at scale)
#
# Try the exercises in `../04b_dp_fedavg_at_scale.ipynb` first. This notebook rebuilds what the
# exercises need, so it runs on its own (a few seconds).

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up lines (notebook 02 explains)
import json
import math

import numpy as np

from fl_helpers import accounting, dp_ftrl, paths

DELTA, C = 1e-5, 0.5
ACCOUNTANT = "discrete"  # the accountant of exact noise, as in notebooks 04 and 04b
RESULTS = paths.results_dir()  # benchmarks/results in the checkout
headline = json.loads((RESULTS / "private_mnist_headline.json").read_text())

# %% [markdown]
# ## ★ Predict: the noise on the average at 60,000 clients
#
# **About 13 times smaller** (`answer_noise_ratio = 12.9`). The noise on the average update
# has standard deviation $zC/(qN)$. Notebook 04's run: $z = 1.632$, $C = 0.5$, $qN = 100$, so $0.00816$. The
# 60,000-client run: $z = 3.803$ (larger, because its 1,000 rounds compose to the same
# $\varepsilon = 2$), $C = 0.5$, $qN = 0.05 \times 60{,}000 = 3{,}000$, so $0.000634$. The ratio
# is $30 \times 1.632 / 3.803 \approx 12.9$: thirty times more clients per round, of which the
# larger $z$ takes back a factor of about 2.3.

# %%
z_04 = accounting.noise_multiplier_for_epsilon(target_epsilon=2.0, target_delta=DELTA,
                                               sampling_probability=0.1, num_rounds=30,
                                               accountant=ACCOUNTANT)
qn_big = headline["sampling_probability"] * headline["num_clients"]
std_04 = z_04 * C / 100
std_big = headline["noise_multiplier"] * C / qn_big

# %% tags=["nbval-check-output"]
print(f"notebook 04: z = {z_04:.3f}, noise std on the average {std_04:.5f}")
print(f"60,000 clients: z = {headline['noise_multiplier']:.3f}, qN = {qn_big:,.0f}, "
      f"noise std on the average {std_big:.6f}")
print(f"ratio {std_04 / std_big:.1f}")

# %% [markdown]
# ## ★ Predict: the noise split with 20 clients per round
#
# **$z_\Delta \approx 2.83$** (`answer_z_delta = 2.83`), 73% more noise on the updates than the total $z = 1.632$. With
# $qN = 20$ the default count noise is $\sigma_b = 1$, so $(2\sigma_b)^{-2} = 1/4$ takes two
# thirds of $z^{-2}$; the updates keep only the rest. Adaptive clipping's count is cheap
# when many clients take part in a round and expensive when few do; a deployment with few clients
# per round would give the count a larger $\sigma_b$ (the estimate of the quantile gets noisier,
# the updates less so).

# %% tags=["nbval-check-output"]
production = json.loads((RESULTS / "production_dp_fedavg.json").read_text())
z_total = production["dp_fedavg_noise_multiplier"]
for qn in (100, 20):
    z_delta = accounting.adaptive_clipping_update_noise_multiplier(noise_multiplier=z_total,
                                                                   count_stddev=qn / 20)
    print(f"qN = {qn:3d}: sigma_b = {qn / 20:g}, z_Delta = {z_delta:.3f} "
          f"({z_delta / z_total - 1:+.1%} against z = {z_total:.3f})")

# %% [markdown]
# ## ★★ Find the bug: Flower 1.42's adaptive clipping
#
# **The bit and the step disagree on what they count.** Flower's bit says "this update was
# clipped" (its scaling factor was below 1), so the average of the bits is the share *clipped*,
# $1 - \bar b$. Andrew et al.'s step $C \leftarrow C\,e^{-\eta(\bar b - \gamma)}$ wants the share
# *not* clipped. Fed the clipped share, the step's sign flips: when most updates are clipped
# ($C$ too small), it shrinks $C$ further, and when few are, it grows $C$ further. The fixed
# point at the median is still there, but it now repels instead of attracting, which is why
# even $C_0 = 1.0$, a few per cent from the median, drifts away.
#
# The fix is one line: compare the **unclipped** share $1 - \text{mean(was\_clipped)}$ with
# $\gamma$ (equivalently, flip the sign of the step). `docs/flower_adaptive_clipping_bug.md` is
# the report for Flower's maintainers: the symptom, the two lines, and a reproduction.

# %%
def flower_style_step(clipping_norm, was_clipped, *, target_quantile=0.5, learning_rate=0.2):
    """Flower's step with the bit inverted: the unclipped share is compared with gamma."""
    unclipped_share = 1.0 - np.mean(was_clipped)
    return clipping_norm * math.exp(-learning_rate * (unclipped_share - target_quantile))


demo_norms = np.exp(np.random.default_rng(0).normal(0.0, 0.5, 100))
finals = {}
for start in (0.1, 1.0, 5.0):
    c = start
    for _ in range(300):
        c = flower_style_step(c, demo_norms > c)
    finals[start] = c
print("C after 300 rounds:", ", ".join(f"from {s:g}: {c:.3f}" for s, c in finals.items()),
      f"(median norm {np.median(demo_norms):.3f})")
assert all(abs(c / np.median(demo_norms) - 1) < 0.05 for c in finals.values())

# %% [markdown]
# ## ★★★ Design: DP-FTRL for a keyboard on a million phones
#
# One worked design (others are as good if they state their assumptions):
#
# - **Rounds.** 1,000 clients per round, 6 rounds a day: 6,000 updates a day, the server's
#   capacity. Three months is about 540 rounds.
# - **Participation bound and restarts.** A pass over 1,000,000 phones at 6,000 a day takes
#   about 167 days, longer than the three months. So **one tree for the whole run** (restart
#   period 540 rounds) and **each phone at most once** in it. The server enforces it: it keeps
#   the set of (pseudonymous) device ids that have contributed to the current tree and refuses a
#   second update; the check is the same as `dp_ftrl.check_participation`. A phone that checks
#   in again is simply not selected. (With a shorter restart period, say weekly, a phone could
#   contribute once a week, thirteen times in all, and $\varepsilon$ would compose over its
#   thirteen trees: computed below.)
# - **Noise.** $z = 7$ per tree node, $C$ from a public proxy (or adaptive clipping). The noise
#   on the released average is about $zC\sqrt{\lceil\log_2 540\rceil + 1}/m$, small with
#   $m = 1{,}000$.
# - **Accounting.** dp-accounting's tree-aggregation event, RDP, at $\delta = 10^{-7}$
#   ($\delta N = 0.1$).

# %% tags=["nbval-check-output"]
full_scale = accounting.dp_ftrl_epsilon(noise_multiplier=7.0, tree_sizes=[540],
                                        target_delta=1e-7, trees_per_client=1)
weekly = accounting.dp_ftrl_epsilon(noise_multiplier=7.0, tree_sizes=[42] * 13,
                                    target_delta=1e-7, trees_per_client=13)
# The same design scaled down 100 times (10,000 phones, 10 per round), each phone available in a
# round with probability 1/42 (once a week at 6 rounds a day): the schedule is checked, then
# accounted.
simulated = dp_ftrl.availability_schedule(10_000, clients_per_round=10, num_rounds=540,
                                          restart_every=540, availability=1 / 42, seed=0)
busiest = dp_ftrl.check_participation(simulated, num_clients=10_000, restart_every=540)
eps_sim = dp_ftrl.epsilon_for_schedule(simulated, num_clients=10_000, noise_multiplier=7.0,
                                       restart_every=540, target_delta=1e-7)
print(f"one tree of 540 rounds, each phone at most once: epsilon = {full_scale:.2f}")
print(f"weekly trees (13 of 42 rounds), a phone in each:   epsilon = {weekly:.2f}")
print(f"simulation (1/100 scale): busiest phone in {busiest} tree, "
      f"{min(len(r) for r in simulated)}-{max(len(r) for r in simulated)} phones per round, "
      f"epsilon = {eps_sim:.2f}")

# %% [markdown]
# **What this $\varepsilon$ assumes that DP-FedAvg's would not.** DP-FedAvg's accountant assumes
# each phone joins each round independently with a secret probability $q$; nobody outside the
# server knows who took part, and the $\varepsilon$ is amplified by that uncertainty. DP-FTRL
# assumes instead that the server really enforces "at most once per tree" (a bug or a
# re-installed app with a new id breaks it), and its relation, replacing a phone's updates with
# zeros, does not hide *that* or *when* a phone took part (the schedule may be public, or
# inferable from the device's traffic). Neither covers the choice of $z$, $C$ and the model on the
# private data, nor a person with two phones (group privacy).


# %% [markdown]
# ## Sanity check

# %%
assert 12 < std_04 / std_big < 14
assert 2.7 < z_delta < 2.9  # the split with 20 clients per round (z_delta of the last qN)
assert 1.5 < full_scale < weekly and busiest == 1 and abs(eps_sim - full_scale) < 1e-9
print("all checks passed")
