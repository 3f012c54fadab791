# %% [markdown]
# # Solutions to the exercises of notebook 08 (cross-silo federated learning, deployed on Flower)
#
# Try the exercises in `../08_cross_silo_deployment.ipynb` first. This notebook rebuilds what the
# exercises need, so it runs on its own (about 20 s on a laptop CPU; no Flower deployment).

# %%
import dataclasses

import numpy as np

from fl_helpers import accounting, cross_silo, data

DELTA = 1e-4
federation = cross_silo.load_federation()
config = cross_silo.TrainingConfig()

# %% [markdown]
# ## ★ Predict: who spends the most?
#
# $\varepsilon$ grows with the sampling probability $q = 8 / n_k$, and the noise multiplier is
# the same everywhere, so the hospital with the fewest training patients spends the most:
# Switzerland (81 training patients, $q \approx 0.099$).

# %%
largest_epsilon_hospital = "switzerland"
two = dataclasses.replace(config, noise_multiplier=2.0)
# The public training sizes (never the rows a hospital holds: they change with one patient).
public = {h.name: cross_silo.public_train_size(h.name) for h in federation}
spent = {name: cross_silo.epsilon(two, n, target_delta=DELTA) for name, n in public.items()}
print({name: round(eps, 2) for name, eps in spent.items()})
assert max(spent, key=spent.get) == largest_epsilon_hospital

# %% [markdown]
# ## ★★ Modify: a larger expected batch
#
# From scratch with the accountant: $q = b / n_k$ and $T = 20 \times 10$ steps. Doubling the
# expected batch doubles every $q$ at the same $\sigma$, so every $\varepsilon$ goes up, and
# Switzerland's the most. (With twice the batch, the same $\sigma$ also means half the noise
# *per example* in each averaged step: that is why DP-SGD likes large batches, at a fixed
# $\varepsilon$ one would raise $\sigma$ with the batch.)

# %%
def epsilons_for_batch(expected_batch_size):
    steps = config.num_rounds * config.local_steps
    sizes = {h.name: cross_silo.public_train_size(h.name) for h in federation}  # public n_k
    return {name: accounting.dp_fedavg_epsilon(
        noise_multiplier=1.0, sampling_probability=min(1.0, expected_batch_size / n),
        num_rounds=steps, target_delta=DELTA, accountant="discrete")  # exact noise's
        for name, n in sizes.items()}


eight, sixteen = epsilons_for_batch(8), epsilons_for_batch(16)
for name in data.HOSPITALS:
    print(f"{name:<12} batch 8: epsilon {eight[name]:6.2f}   "
          f"batch 16: epsilon {sixteen[name]:6.2f}")
expected = {h.name: cross_silo.epsilon(dataclasses.replace(
    config, noise_multiplier=1.0, expected_batch_size=16), cross_silo.public_train_size(h.name),
    target_delta=DELTA) for h in federation}
assert all(np.isclose(sixteen[k], expected[k], rtol=1e-6) for k in expected)
assert sixteen["switzerland"] > eight["switzerland"]

# %% [markdown]
# ## ★★★ Design: a local intercept
#
# After FedAvg each hospital keeps $w$ and re-fits only $b$ on its own training patients: a few
# gradient steps on the mean cross-entropy with respect to $b$ alone,
# $\partial L / \partial b = \frac1n \sum_i (p(x_i) - y_i)$. Nothing new leaves the hospital:
# the personalised model stays there.

# %%
def personalise_intercept(params, x, y, *, steps=200, learning_rate=0.5):
    params = np.array(params)
    for _ in range(steps):
        params[-1] -= learning_rate * np.mean(cross_silo.predict_proba(params, x) - y)
    return params


global_model, _ = cross_silo.run_fedavg(federation, config)
for h in federation:
    before = cross_silo.evaluate(global_model, h.x_test, h.y_test)
    mine = personalise_intercept(global_model, h.x_train, h.y_train)
    after = cross_silo.evaluate(mine, h.x_test, h.y_test)
    print(f"{h.name:<12} accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}   "
          f"AUC {before['auc']:.3f} -> {after['auc']:.3f}")
    assert after["auc"] == before["auc"]  # a shift of every score keeps their order

# %% [markdown]
# The AUC cannot change: adding the same constant to every logit at a hospital keeps the order
# of its patients' scores, and the AUC depends on that order only. The accuracy rises at every
# hospital, most where the base rate is far from the federation's (Switzerland, VA): the
# threshold now sits where that hospital's own patients need it.
#
# **Privacy cost.** The extra steps read the training patients again, so with DP they must be
# DP steps too (clipped per-patient gradients of $b$, noise, accounted as more steps of the same
# hospital). *Who observes* matters: if the personalised model is only used inside the
# hospital, no outside observer sees it, and the guarantee the other parties need (about
# everything the hospital *sent*) is unchanged; the hospital's own staff, who see the model,
# already see the records. Once the personalised model is released (published, or served to
# outsiders), its steps count towards the patients' $\varepsilon$.
