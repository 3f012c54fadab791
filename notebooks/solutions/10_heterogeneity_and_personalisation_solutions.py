# %% [markdown]
# # Solutions to the exercises of notebook 10 (when clients differ)
#
# Try the exercises in `../10_heterogeneity_and_personalisation.ipynb` first. This notebook
# rebuilds what the exercises need, so it runs on its own (about 35 s on a busy 2-core CPU).

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up lines
import numpy as np

from fl_helpers import aggregation, data, heterogeneity, models, reproducibility, training

SEED = 0
rng = reproducibility.seed_everything(SEED)

# %% [markdown]
# ## ★ Predict: how many updates does FedAvg keep?
#
# `kept_by_fedavg = 1`. 90 % of 10 sampled devices is 9 stragglers, so FedAvg averages the one
# device that finished; FedProx averages all 10, the stragglers' partial work included.

# %%
kept_by_fedavg = 1
late = heterogeneity.stragglers(10, straggler_fraction=0.9, seed=SEED, round_index=0)
print(f"stragglers in round 0: {int(late.sum())} of 10; FedAvg keeps {int((~late).sum())}")
assert int((~late).sum()) == kept_by_fedavg

# %% [markdown]
# ## ★ Predict: the upload of SCAFFOLD
#
# `scaffold_megabytes = 400`. Each client sends $\Delta y_i$ and $\Delta c_i$, each 1,000,000
# float32 numbers of 4 bytes: 8 MB per client, 400 MB for 50 clients (FedAvg: 200 MB).

# %%
scaffold_megabytes = 400
million = [np.zeros(1_000_000, dtype=np.float32)]
print(heterogeneity.upload_bytes_per_round(heterogeneity.SCAFFOLD(), million,
                                           clients_per_round=50) / 1e6, "MB")
assert heterogeneity.upload_bytes_per_round(heterogeneity.SCAFFOLD(), million,
                                            clients_per_round=50) == scaffold_megabytes * 10**6

# %% [markdown]
# ## ★★ Modify: SCAFFOLD's control update
#
# Option II, layer by layer: the new control variate is the client's old one, minus the
# server's, plus the average step it actually took, $(w_t - y)/(K\eta)$.

# %%
def control_update(c_i, c, w_t, y_k, num_steps, lr):
    return [ci - cc + (w - y) / (num_steps * lr) for ci, cc, w, y in zip(c_i, c, w_t, y_k,
                                                                          strict=True)]


w_t = [np.ones((2, 2)), np.zeros(2)]
y_k = [np.full((2, 2), 0.9), np.full(2, 0.1)]
print(control_update([np.zeros((2, 2)), np.zeros(2)], [np.zeros((2, 2)), np.zeros(2)], w_t, y_k,
                     10, 0.01))

# %% [markdown]
# ## ★★★ Design: SCAFFOLD under DP
#
# **The setting.** DP-FedAvg as the course runs it: unit one client, neighbours by adding or
# removing a client, each sampled client's contribution clipped to $C$, Gaussian noise of
# standard deviation $zC$ added by the trusted server (or by secure aggregation with distributed
# noise) to the sum, observer anyone who sees the released models. SCAFFOLD's clients upload
# two vectors, $\Delta y_i$ and $\Delta c_i$, and the server broadcasts $c$.
#
# **Answer 1: clip and noise the pair.** Treat $(\Delta y_i, \Delta c_i)$ as one vector of twice
# the model's size, clip it jointly to norm $C$ and add noise to both halves. Adding or removing
# a client moves the summed pair by at most $C$, so the Gaussian mechanism with the same $z$ has
# the same $\varepsilon$ as DP-FedAvg. The cost is utility, not privacy: the two halves share one
# clipping budget (each gets less of it), and twice as many coordinates carry noise. Clipping
# each half to $C$ separately would raise the sensitivity to $\sqrt{2}\,C$ and need $\sqrt{2}$
# times the noise for the same $\varepsilon$.
#
# **Answer 2: do not release $\Delta c_i$ at all.** With option II,
#
# $$\Delta c_i = c_i^+ - c_i = -c + \frac{w_t - y}{K_i\eta} = -c - \frac{\Delta y_i}{K_i \eta}.$$
#
# If every client takes the same, **public** number of steps $K$ (fixed local steps, not
# epochs over a private $n_k$), then
# $\mathrm{mean}(\Delta c_i) = -c - \mathrm{mean}(\Delta y_i)/(K\eta)$: the server computes the
# control update from the noised mean of $\Delta y_i$ it already has. That is post-processing,
# so SCAFFOLD then costs exactly DP-FedAvg's $\varepsilon$ and its upload is FedAvg's. What must
# be public: $K$, $\eta$ and the denominator of the mean (the expected number of clients, as in
# DP-FedAvg). Each client's own $c_i$ never leaves it and may depend on its data freely.
# (If $K_i$ depends on $n_k$, dividing by it weights clients by a private quantity, and the
# identity no longer gives the mean.)
#
# **Checked** on notebook 10's MNIST clients, all with 480 training images, so the same $K$: two
# rounds of the library's SCAFFOLD, and the server's control variate recomputed from the
# clients' $\Delta y_i$ alone. (The numbers here are not private; the check is of the identity.)

# %%
(x_all, y_all), _ = data.load_mnist()
x_small = data.downsample(x_all[:12_000], 2).reshape(12_000, 196)
clients = []
for part in data.partition_shards(y_all[:12_000], 20, shards_per_client=2, rng=rng):
    part = rng.permutation(part)[len(part) // 5:]
    clients.append((x_small[part], y_all[part]))


class Recording(heterogeneity.SCAFFOLD):
    """SCAFFOLD that also records, each round, c before the round and the clients' Delta y."""

    def __init__(self):
        super().__init__()
        self.rounds = []

    def train_round(self, trainer, weights, sampled, round_index):
        before = [c.copy() for c in self.server_control]
        results = super().train_round(trainer, weights, sampled, round_index)
        self.rounds.append((before, results.deltas, training.local_steps(trainer, sampled)))
        return results


scaffold = Recording()
training.run_fedavg(lambda: models.make_mlp((), input_shape=(196,), seed=SEED), clients,
                    num_rounds=2, clients_per_round=10, local_epochs=1, batch_size=20,
                    client_learning_rate=0.1, seed=SEED, progress=False,
                    client_algorithm=scaffold, server_optimizer=aggregation.ServerSGD(1.0))
c = [np.zeros_like(layer) for layer in scaffold.server_control]
for before, deltas, steps in scaffold.rounds:
    assert len(set(steps.tolist())) == 1  # the same K for every client
    mean_dy = [np.mean([d[i] for d in deltas], axis=0) for i in range(len(c))]
    mean_dc = [-cc - dy / (steps[0] * 0.1) for cc, dy in zip(before, mean_dy, strict=True)]
    c = [cc + len(deltas) / len(clients) * dc for cc, dc in zip(before, mean_dc, strict=True)]
gap = max(float(np.max(np.abs(a - b))) for a, b in zip(c, scaffold.server_control, strict=True))
print(f"K = {steps[0]} for every client; c recomputed from the Delta y alone differs from "
      f"SCAFFOLD's by at most {gap:.1e}")
assert gap < 1e-5
