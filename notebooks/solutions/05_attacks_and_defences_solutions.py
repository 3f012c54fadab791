# %% [markdown]
# # Solutions to the exercises of notebook 05 (attacks and defences)
#
# Try the exercises in `../05_attacks_and_defences.ipynb` first. This notebook rebuilds what the
# exercises need, so it runs on its own (about 20 s on a laptop CPU).

# %%
import math
import warnings

from fl_helpers import quiet

quiet.import_tensorflow()

import numpy as np  # noqa: E402

from fl_helpers import (
    accounting,
    aggregation,
    attacks,
    audit,
    data,
    models,
    reproducibility,
    schedule,
)

SEED = 0
rng = reproducibility.seed_everything(SEED)
(x_train, y_train), _ = data.load_mnist()
model = models.make_2nn(seed=SEED)
weights = [w.numpy() for w in model.weights]
activations = attacks.model_activations(model)
x_one, y_one = x_train[:1], y_train[:1]

# %% [markdown]
# ## ★ Predict: does a bigger learning rate protect the image?
#
# **No: SSIM 1, as with $\eta = 0.1$.** The update is $\Delta = -\eta\nabla L$, so
# $\Delta W_{:,j}/\Delta b_j = (-\eta\,\partial L/\partial W_{:,j}) / (-\eta\,\partial L/\partial
# b_j) = x$: the learning rate cancels, as any common scale does (clipping too). Checked for
# three learning rates:

# %% tags=["nbval-check-output"]
grad = attacks.gradient(weights, activations, x_one, y_one)
for eta in (0.01, 0.1, 10.0):
    candidates, _ = attacks.invert_dense_layer(-eta * grad[0], -eta * grad[1])
    print(f"eta = {eta:>5}: SSIM {attacks.ssim(candidates[0], x_one)[0]:.4f}")

# %% [markdown]
# ## ★★ Modify: is halving the noise caught?
#
# `HalfNoise` overrides `noise_stddev`. Halving the noise multiplier from 2 to 1 more than
# doubles the true one-round $\varepsilon$, yet the audit with 1,000 runs a side (500 to
# evaluate) measures an $\varepsilon_{LB}$ that is higher than the honest rule's and still below
# the claimed $\varepsilon$: **not caught**. The Gaussian test at $z = 1$ separates the two
# worlds by one standard deviation, and turning that into $\varepsilon$ at
# $\delta = 10^{-5}$ needs error rates far smaller than 500 runs can certify. Subtle bugs need
# bigger audits (more runs, or many canaries per run) or code review and unit tests of the noise
# scale (`tests/test_audit.py` and the tests of `aggregation.DPFedAvg.noise_stddev`).

# %%
Z_AUDIT, DELTA_AUDIT, TRIALS = 2.0, 1e-5, 1000
small = models.make_softmax_regression(seed=SEED)
small_w, small_act = [w.numpy() for w in small.weights], attacks.model_activations(small)
pool = np.random.default_rng(0).permutation(len(y_train))[:50]
others = [[-0.1 * g for g in attacks.gradient(small_w, small_act, x_train[pool[10 * k:10 * k + 10]],
                                               y_train[pool[10 * k:10 * k + 10]])]
          for k in range(5)]
canary = audit.canary_update([w.shape for w in small_w], norm=10.0, rng=np.random.default_rng(1))


class HalfNoise(aggregation.DPFedAvg):
    """BROKEN on purpose: half the noise standard deviation."""

    def noise_stddev(self, num_sampled):
        return super().noise_stddev(num_sampled) / 2


def audit_rule(rule_class):
    rule = rule_class(clipping_norm=1.0, noise_multiplier=Z_AUDIT, expected_clients=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reproducible noise, for stored outputs
        randomness = schedule.PrivateRandomness.reproducible(SEED)
    return audit.canary_audit(rule, others, canary, num_trials=TRIALS, num_clients=100,
                              delta=DELTA_AUDIT, randomness=randomness)


honest, half_noise_audit = audit_rule(aggregation.DPFedAvg), audit_rule(HalfNoise)
claimed, true_half = (accounting.dp_fedavg_epsilon(noise_multiplier=z, sampling_probability=1.0,
                                                   num_rounds=1, target_delta=DELTA_AUDIT,
                                                   accountant="discrete")  # exact noise's
                      for z in (Z_AUDIT, Z_AUDIT / 2))

# %% tags=["nbval-check-output"]
print(f"claimed epsilon {claimed:.2f}; true epsilon with half the noise {true_half:.2f}")
print(f"epsilon_LB: honest rule {honest.epsilon_lower_bound:.2f}, "
      f"HalfNoise {half_noise_audit.epsilon_lower_bound:.2f} -> "
      f"{'caught' if half_noise_audit.epsilon_lower_bound > claimed else 'not caught'}")

# %% [markdown]
# ## ★★★ Design: an audit of full training
#
# One design, following Steinke, Nasr, Jagielski 2023 (Section 5) in its "white-box, every
# round" form, which is the strongest observer DP-FedAvg's $\varepsilon$ covers:
#
# 1. **Canaries.** Add $m$ canary clients (say $m = 1{,}000$) to the $N$ real ones. Canary $i$
#    does not train: whenever it is sampled it sends a fixed random direction $u_i$ of norm
#    $\gg C$ (so it contributes exactly $C u_i$ after clipping). Each canary is *included* with
#    probability 1/2 by an independent coin flip before training; excluded canaries never
#    report.
# 2. **Observation.** The attacker sees every round's released update $\bar\Delta_t$ (the noised
#    sum divided by $qN$) and scores canary $i$ by $\sum_t \langle \bar\Delta_t, u_i\rangle$.
#    Random directions in $d \approx 8{,}000$ dimensions are nearly orthogonal, so canaries
#    hardly interfere.
# 3. **Test.** Guess "included" for the $k_+$ highest scores and "excluded" for the $k_-$ lowest,
#    abstain on the rest; count the correct guesses.
# 4. **Bound.** Steinke et al.'s Theorem 5.2 turns "$r$ correct out of $k_+ + k_-$ guesses" into
#    $\varepsilon_{LB}$ at confidence 95 % (a binomial tail with success probability
#    $e^\varepsilon/(1+e^\varepsilon)$, corrected for $\delta$); no Clopper-Pearson per pair of
#    worlds, and **one** training run.
# 5. **Budget.** One run of $T = 30$ rounds of softmax regression with $N + m$ clients on the fast
#    engine takes a few seconds; the canaries' updates cost nothing to compute. At
#    $\varepsilon = 2$ with $q = 0.1$, expect $\varepsilon_{LB}$ well below 2 (the subsampled
#    mechanism's worst case is rarely reached by an average canary); a bug that drops the noise
#    shows up as $\varepsilon_{LB}$ near the ceiling set by $m$.
#
# What to hold fixed: $z$, $q$, $T$, $C$ and the canary norm; vary $m$ and report
# $\varepsilon_{LB}$ with its confidence, next to the accountant's $\varepsilon$. Below, a quick
# numerical illustration of step 2 (the canary directions are nearly orthogonal):

# %% tags=["nbval-check-output"]
directions = np.stack([np.concatenate([p.ravel() for p in audit.canary_update(
    [w.shape for w in small_w], norm=1.0, rng=np.random.default_rng(100 + i))])
    for i in range(200)])
overlap = np.abs(directions @ directions.T)[np.triu_indices(200, k=1)]
print(f"200 random unit directions in {directions.shape[1]:,} dimensions: largest |cosine| "
      f"{overlap.max():.3f} (1 / sqrt(d) = {1 / math.sqrt(directions.shape[1]):.3f})")
