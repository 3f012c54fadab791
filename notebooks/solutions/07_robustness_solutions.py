# %% [markdown]
# # Solutions to the exercises of notebook 07 (poisoning and robust aggregation)
#
# Try the exercises in `../07_robustness.ipynb` first. This notebook rebuilds what the exercises
# need, so it runs on its own (about 20 s on a laptop CPU).

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up lines (notebook 02 explains)
import numpy as np

from fl_helpers import (
    aggregation,
    data,
    engine,
    models,
    plotting,
    privacy,
    reproducibility,
    robust,
    training,
)

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()
(x_train, y_train), (x_test, y_test) = data.load_mnist()
NUM_CLIENTS, N = 20, 10_000  # notebook 07's IID federation
clients = data.client_datasets(x_train[:N], y_train[:N], data.partition_iid(
    N, NUM_CLIENTS, rng=np.random.default_rng(0)))
model = models.make_softmax_regression(SEED)
w0 = model.get_weights()
fast = engine.MultiClientEngine(model, clients, local_epochs=1, batch_size=50,
                                client_learning_rate=0.1, seed=SEED)
honest = fast.train(w0, np.arange(NUM_CLIENTS), 0)
deltas, sizes = honest.deltas, honest.num_examples
attacked = [[np.float32(-10) * d for d in delta] if k < 4 else delta
            for k, delta in enumerate(deltas)]
ctx = aggregation.RoundContext(round_index=0, num_clients=NUM_CLIENTS)

# %% [markdown]
# ## ★ Predict: how many clients does Krum need for f = 6?
#
# Krum needs $m > 2f + 2 = 14$, so **`min_clients = 15`**. Each score then sums the squared
# distances to $m - f - 2 = 7$ neighbours: a majority of the 14 others, so at least one of
# them is honest whatever the 6 attackers do, which is what the proof needs
# (Blanchard et al. 2017, Section 4). Checked:

# %%
def krum_accepts(m):
    try:
        robust.Krum(6).aggregate([deltas[0]] * m, np.ones(m), ctx)
        return True
    except ValueError:
        return False


print("m = 14 accepted:", krum_accepts(14), "| m = 15 accepted:", krum_accepts(15))

# %% [markdown]
# ## ★★ Modify: clip, then take the median
#
# Clip every update as a whole (all layers at once) with `privacy.clip_by_l2_norm`, then take
# the coordinate-wise median layer by layer:

# %%
def clipped_median(updates, clipping_norm):
    clipped = [privacy.clip_by_l2_norm(u, clipping_norm)[0] for u in updates]
    return [np.median(np.stack(layers), axis=0) for layers in zip(*clipped, strict=True)]


expected = aggregation.NormBounded(aggregation.CoordinateMedian(),
                                   clipping_norm=0.5).aggregate(attacked, sizes, ctx)
ours = clipped_median(attacked, 0.5)
assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(ours, expected, strict=True))
print("clipped_median agrees with NormBounded(CoordinateMedian())")

# %% [markdown]
# ## ★★★ Design: a quiet attack ("A little is enough")
#
# Baruch et al. 2019 (Section 3) observe that the median and the trimmed mean only look at each
# coordinate's *rank*. An attacker value that stays inside the honest spread is as eligible to be
# the median as an honest one, and if all $f$ attackers sit on the same side, the median is
# pulled towards them in **every** coordinate, every round.
#
# Our version: before training, the 4 colluding attackers estimate the per-coordinate standard
# deviation $\sigma$ of honest updates from their own 4 honest updates of the first round. In
# every round each attacker sends its own honest update minus $z\sigma$, with $z = 1.5$: a small
# shift (the attackers' updates stay close in norm to the honest ones), always in the same
# direction.

# %%
malicious = np.arange(4)
sigma = [np.std(np.stack([deltas[k][i] for k in malicious]), axis=0)
         for i in range(len(deltas[0]))]


def little_is_enough(delta, rng, z=1.5):
    return [d - np.float32(z) * s for d, s in zip(delta, sigma, strict=True)]


hook = robust.MaliciousClients(malicious, little_is_enough, seed=SEED)
quiet_norm = aggregation.update_norm(little_is_enough(deltas[0], None))
honest_norm = aggregation.update_norm(deltas[0])
print(f"an attacker's update norm {quiet_norm:.3f} vs honest {honest_norm:.3f}")

# %%
results = {}
for name, rule in [("FedAvg", aggregation.FedAvg()), ("median", aggregation.CoordinateMedian()),
                   ("trimmed mean", robust.TrimmedMean(0.3))]:
    for attack, client_hook in [("no attack", None), ("quiet attack", hook)]:
        history = training.run_fedavg(
            models.make_softmax_regression, clients, num_rounds=15, clients_per_round=20,
            local_epochs=1, batch_size=50, client_learning_rate=0.1,
            test_data=(x_test, y_test), seed=SEED, progress=False, aggregation_rule=rule,
            client_hook=client_hook)
        results[name, attack] = history.test_accuracy[-1]
for name in ("FedAvg", "median", "trimmed mean"):
    print(f"{name:13} no attack {results[name, 'no attack']:.1%}   quiet attack "
          f"{results[name, 'quiet attack']:.1%}")

# %% [markdown]
# How to read it: the attackers' updates are no larger than honest ones, so a norm check would
# not flag them. On these IID clients, with 4 attackers estimating $\sigma$ from 4 updates and
# $z = 1.5$, the shift is small and the accuracy moves by less than a point (the cell below
# checks it): IID clients agree closely, so there is little room to hide, and softmax
# regression has a single, convex optimum that the honest majority keeps pulling towards.
# Baruch et al. report large drops on deep networks with many more clients, where small
# coordinated shifts in millions of coordinates add up. Try larger $z$ (say 5 or 20) and the
# Dirichlet split: too large and the attackers leave the honest range, where the median
# ignores them again. The lesson: robust statistics bound the damage of *far-away* updates;
# they do not detect a coordinated minority that stays inside the honest spread.

# %%
for name in ("FedAvg", "median", "trimmed mean"):
    assert abs(results[name, "quiet attack"] - results[name, "no attack"]) < 0.01, name
print("the quiet attack at z = 1.5 moved every rule's accuracy by less than one point")
