# %% [markdown]
# # Solutions to the exercises of notebook 03 (federated averaging)
#
# Try the exercises in `../03_federated_averaging.ipynb` first. This notebook rebuilds what the
# exercises need, so it runs on its own (about 30 s on a laptop CPU).

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up lines (notebook 02 explains)
import matplotlib.pyplot as plt
import numpy as np

from fl_helpers import (aggregation, client, data, models, plotting, reproducibility, schedule,
                        training)

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()
(x_train, y_train), (x_test, y_test) = data.load_mnist()
iid_clients = data.client_datasets(x_train, y_train,
                                   data.partition_iid(y_train.size, 100, rng=rng))
shard_clients = data.client_datasets(
    x_train, y_train, data.partition_shards(y_train, 100, shards_per_client=2, rng=rng))
model = models.make_2nn(SEED)
global_weights = model.get_weights()

# %% [markdown]
# ## ★ Predict: when does the weighting not matter?
#
# **Yes, they are the same** (`same_when_equal_sizes = True`). With $n_k = 600$ for all $m$
# sampled clients, $n = 600\,m$ and every weight $n_k / n = 1/m$, so
# $\sum_k \frac{n_k}{n} w^k = \frac1m \sum_k w^k$. That is exactly why the unweighted-mean bug of
# the Pitfall box goes unnoticed on the 100 × 600 benchmark split, and shows up only with clients
# of different sizes. Checked on three IID clients (one local step each):

# %%
equal = [client.client_update(model, global_weights, *iid_clients[k], local_epochs=1,
                                 batch_size=None, client_learning_rate=0.1, seed=0)[0]
         for k in range(3)]
plain_mean = [np.mean([w[i] for w in equal], axis=0) for i in range(len(equal[0]))]
weighted = aggregation.fedavg(equal, [600, 600, 600])
gap = max(np.abs(a - b).max() for a, b in zip(plain_mean, weighted, strict=True))
print(f"largest difference between the unweighted and the weighted mean: {gap:.1e}")

# %% [markdown]
# The difference is float32 rounding (the two sums are accumulated differently), not a different
# average.

# %% [markdown]
# ## ★★ Modify: a server learning rate

# %%
def fedavg_with_server_lr(global_weights, client_weights, num_examples, *,
                          server_learning_rate):
    averaged = aggregation.fedavg(client_weights, num_examples)
    return [(w.astype(np.float64)
             + server_learning_rate * (a.astype(np.float64) - w.astype(np.float64))
             ).astype(np.float32)
            for w, a in zip(global_weights, averaged, strict=True)]


# %% [markdown]
# One round's worth of client updates (ten IID clients), averaged with three server learning
# rates. With $\eta_s = 1$ the step lands exactly on FedAvg's average; $\eta_s = 0.5$ goes half
# way, $\eta_s = 2$ twice as far along the same direction:

# %%
sampled = schedule.sample_clients(100, 10, seed=SEED, round_index=0)
results = [client.client_update(model, global_weights, *iid_clients[k], local_epochs=1,
                                   batch_size=10, client_learning_rate=0.1,
                                   seed=schedule.client_seed(SEED, 0, int(k)))
           for k in sampled]
client_weights = [w for w, _ in results]
num_examples = [n for _, n in results]
fedavg_weights = aggregation.fedavg(client_weights, num_examples)
for eta_s in (1.0, 0.5, 2.0):
    new = fedavg_with_server_lr(global_weights, client_weights, num_examples,
                                server_learning_rate=eta_s)
    step = np.sqrt(sum(np.sum((a - w) ** 2) for a, w in zip(new, global_weights, strict=True)))
    accuracy = client.evaluate(model, new, x_test, y_test)[1]
    print(f"eta_s = {eta_s}: step length {step:.3f}, test accuracy {accuracy:.3f}")
for a, b in zip(fedavg_with_server_lr(global_weights, client_weights, num_examples,
                                      server_learning_rate=1.0), fedavg_weights, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

# %% [markdown]
# Subtracting in float64 and rounding once at the end keeps $\eta_s = 1$ equal to FedAvg up to
# float32 rounding. In Reddi et al. 2021 ("Adaptive Federated Optimization", Algorithm 1) the
# average update $\sum_k \frac{n_k}{n}(w^k - w_t)$ is treated as a pseudo-gradient and handed
# to a server optimiser (SGD with $\eta_s$, Adam, Adagrad, ...); this function is the plain-SGD
# case.

# %% [markdown]
# ## ★★★ Design: how many local epochs on non-IID clients?
#
# One design that fits in a minute of CPU:
#
# - **Question.** On the shard split, does going from $E = 1$ to $E = 5$ local epochs reduce the
#   rounds needed, as it does on IID data?
# - **Held fixed.** The model (2NN), $q = 0.1$, $\eta = 0.1$, $B = 50$, the split, and 10 rounds.
#   With $B = 50$, $E = 5$ is $u = 60$ local steps per round, the same work as the notebook's
#   $E = 1$, $B = 10$ runs, and $E = 1$ is $u = 12$; so this compares 5× more local work per
#   round, not different batch sizes.
# - **Seeds.** A single non-IID run is noisy (notebook 03's curve jumps by 10 points between
#   rounds), so each setting runs with two seeds (which changes the sampled clients and the
#   batches); a real study would use more, and more rounds.
# - **Read-out.** Test accuracy per round, both seeds, and the mean of the last 3 rounds.

# %%
curves = {}
for local_epochs in (1, 5):
    for seed in (0, 1):
        history = training.run_fedavg(
            models.make_2nn, shard_clients, num_rounds=10, clients_per_round=10,
            local_epochs=local_epochs, batch_size=50, client_learning_rate=0.1,
            test_data=(x_test, y_test), seed=seed, progress=False)
        curves[f"E = {local_epochs}, seed {seed}"] = history
for label, history in curves.items():
    print(f"{label}: mean test accuracy over rounds 8-10 {history.test_accuracy[-3:].mean():.3f}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.4))
styles = {label: {"color": "C0" if label.startswith("E = 1") else "C1",
                  "ls": "-" if label.endswith("0") else "--"} for label in curves}
plotting.plot_accuracy_curves(curves, styles=styles, ax=ax)
ax.set_title("2NN, non-IID (2 shards), q = 0.1, B = 50, η = 0.1", fontsize=10)
ax.set_ylim(0, 1)
plt.show()

# %% [markdown]
# Five times more local work per round buys little here: $E = 5$ ends about four points ahead
# of $E = 1$ on average, which is less than the jumps between consecutive rounds. The curves of
# the same seed move up and down *together*, whatever $E$: on this split, which ten clients were
# sampled (and so which digits the round saw) matters more than how long each of them trained.
# That is client drift at work: more local steps on a two-digit client mostly fit those two
# digits better, and the average of ten such models improves the global model only a little more
# than shorter training did. McMahan et al. 2017 (Section 3, Table 2 and Figure 3) saw more local
# work help a lot on IID data, less on non-IID data, and very many local epochs eventually
# plateau or hurt. Pinning that down needs more rounds, more values of $E$ and more seeds than
# a minute allows; that is what `benchmarks/` is for.

# %%
late = {E: np.mean([h.test_accuracy[-3:].mean() for label, h in curves.items()
                    if label.startswith(f"E = {E}")]) for E in (1, 5)}
assert abs(late[5] - late[1]) < 0.1, late  # close: within this design's noise
print(f"mean over seeds and rounds 8-10: E = 1 {late[1]:.3f}, E = 5 {late[5]:.3f}")
