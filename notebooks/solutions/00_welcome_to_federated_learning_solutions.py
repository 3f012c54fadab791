# %% [markdown]
# # Solutions to the exercises of notebook 00 (welcome to federated learning)
#
# Try the exercises in `../00_welcome_to_federated_learning.ipynb` first. This notebook rebuilds
# what the exercises need, so it runs on its own.

# %%
import matplotlib.pyplot as plt
import numpy as np

from fl_helpers import _validation, data, plotting, reproducibility

SEED = 0
rng = reproducibility.seed_everything(SEED)
plotting.use_course_style()
(x_train, y_train), _ = data.load_mnist()

# %% [markdown]
# ## ★ Predict: how many digits does a shard client hold?
#
# **Two.** Each digit has 5,421 to 6,742 examples, so after sorting, a digit spans 18 to 23 shards
# of 300. Only the shards that straddle a boundary between two digits (at most 9 of the 200) hold
# two labels. A client draws 2 shards: usually two different digits, sometimes the same digit
# twice (1 digit), and now and then a straddling shard (3 digits, rarely 4).
#
# Counted on a fresh shard split (a different draw from the notebook's, with the same answer):

# %%
shard_split = data.partition_shards(y_train, 100, shards_per_client=2, rng=rng)
shard_digits = (data.label_counts(y_train, shard_split) > 0).sum(axis=1)
print("clients holding 1, 2, 3, 4 digits:", np.bincount(shard_digits, minlength=5)[1:].tolist())

# %% [markdown]
# ## ★★ Modify: find the alpha where Dirichlet clients become nearly IID

# %%
def largest_digit_share(alpha):
    split = data.partition_dirichlet(y_train, 100, alpha=alpha, rng=np.random.default_rng(SEED))
    counts = data.label_counts(y_train, split)
    return float((counts.max(axis=1) / counts.sum(axis=1)).mean())


shares = {alpha: largest_digit_share(alpha) for alpha in [0.01, 0.1, 1, 10, 100]}
alpha_nearly_iid = min(alpha for alpha, share in shares.items() if share < 0.14)
for alpha, share in shares.items():
    print(f"alpha = {alpha:>6}: largest digit's share {share:.3f}")
print(f"smallest alpha with share below 0.14: {alpha_nearly_iid}")

# %% [markdown]
# The share falls from nearly 1 (each client holds mostly one digit) towards 0.1 (all ten digits
# equally) as alpha grows. It never reaches 0.1 exactly: with 600 examples per client, even an
# IID split has a largest digit a little above 1/10 by chance.

# %% [markdown]
# ## ★★★ Design: clients that differ in size, not in labels
#
# Draw log-sizes from a normal distribution, turn them into shares that sum to 1, give each client
# one example first (so none is empty) and the rest in proportion to the shares, then deal a
# random permutation of the examples in those sizes. Because the permutation ignores labels, each
# client's labels are an IID sample, only the amounts differ.

# %%
def partition_by_size(num_examples, num_clients, *, sigma, rng):
    num_examples = _validation.check_int("num_examples", num_examples, minimum=1)
    num_clients = _validation.check_int("num_clients", num_clients, minimum=1,
                                        maximum=num_examples)
    sigma = _validation.check_non_negative("sigma", sigma)
    rng = _validation.check_rng("rng", rng)
    shares = np.exp(rng.normal(scale=sigma, size=num_clients))
    shares /= shares.sum()
    spare = num_examples - num_clients
    sizes = 1 + np.floor(shares * spare).astype(np.int64)
    sizes[: spare - (sizes.sum() - num_clients)] += 1  # hand out the rounding remainder
    order = rng.permutation(num_examples)
    return [np.sort(part) for part in np.split(order, np.cumsum(sizes)[:-1])]


# %% [markdown]
# How to test it: the same properties `tests/test_data.py` checks for the course's partitions
# (disjoint and complete, every client non-empty, same seed same split), plus the two things this
# split promises: sizes vary more as `sigma` grows, and labels stay IID, e.g. the largest digit's
# share stays near 0.1 on large clients.

# %%
split = partition_by_size(y_train.size, 100, sigma=1.0, rng=np.random.default_rng(SEED))
everything = np.concatenate(split)
assert everything.size == y_train.size and np.array_equal(np.sort(everything),
                                                          np.arange(y_train.size))
assert min(part.size for part in split) >= 1
same = partition_by_size(y_train.size, 100, sigma=1.0, rng=np.random.default_rng(SEED))
assert all(np.array_equal(a, b) for a, b in zip(split, same, strict=True))
sizes = np.array([part.size for part in split])
print(f"client sizes from {sizes.min()} to {sizes.max()}, median {int(np.median(sizes))}")
plotting.plot_label_distribution(y_train, split, max_clients=20,
                                 title="log-normal sizes, sigma = 1")
plt.show()
