# %% [markdown]
# # Solutions to the exercises of notebook 09 (vertical and transfer federated learning)
#
# Try the exercises in `../09_vertical_and_transfer_learning.ipynb` first. This notebook rebuilds
# what the exercises need, so it runs on its own (about 10 s on a laptop CPU).

# %%
import numpy as np

from fl_helpers import paillier, psi, split_learning, vertical

SEED = 0
parties = vertical.credit_parties(seed=SEED)
bank, bureau = parties.bank, parties.bureau

# %% [markdown]
# ## ★ Predict: what does the bureau learn from the alignment?
#
# `bureau_learns = "the size of the bank's list"`. The bureau receives one message, $H(x)^a$ for
# each bank customer $x$, shuffled. Without $a$ it cannot compute $H(x)^a$ for any candidate id,
# so the elements are, to it, random points of the curve: it learns how many there are and
# nothing else. The intersection is learned only by the bank (unless `reveal_to_b=True`).

# %%
bureau_learns = "the size of the bank's list"
alignment = psi.intersect(bank.ids, bureau.ids)
print(alignment.view_b.describe())
assert alignment.view_b.intersection is None
assert alignment.view_b.other_set_size == len(bank.ids)

# %% [markdown]
# ## ★ Predict: four times the epochs
#
# `epsilon_factor = 2`. Each epoch is one more Gaussian mechanism on every label, and with no
# sampling the Rényi DP of $E$ epochs is $E$ times that of one: $E\alpha / (2z^2)$ at order
# $\alpha$. Converting to $(\varepsilon, \delta)$ minimises
# $E\alpha/(2z^2) + \log(1/\delta)/(\alpha - 1)$ over $\alpha$, which gives roughly
# $\sqrt{2E\log(1/\delta)}/z$: four times the epochs, about twice the $\varepsilon$.

# %%
epsilon_factor = 2
delta = 1e-5
z = split_learning.noise_multiplier_for_label_dp(target_epsilon=2.0, epochs=5, target_delta=delta)
twenty = split_learning.label_dp_epsilon(noise_multiplier=z, epochs=20, target_delta=delta)
print(f"z = {z:.3f}: 5 epochs epsilon 2.00, 20 epochs epsilon {twenty:.2f} "
      f"(x{twenty / 2:.2f})")
assert round(twenty / 2) == epsilon_factor

# %% [markdown]
# ## ★★ Modify: an encrypted score
#
# Start from an encryption of 0 and add $E(m_i)^{w_i}$ for each pair: the product of
# ciphertexts is the encryption of the sum, and a ciphertext raised to $w$ encrypts $w$ times
# its plaintext (a negative $w$ works modulo $n$, which the decoding reads back as negative).

# %%
public_key, private_key = paillier.generate_keypair(key_bits=1024)


def encrypted_dot(public_key, ciphertexts, weights):
    total = paillier.encrypt(public_key, 0)
    for ciphertext, weight in zip(ciphertexts, weights, strict=True):
        total = paillier.add(public_key, total,
                             paillier.multiply_plain(public_key, ciphertext, weight))
    return total


rng = np.random.default_rng(SEED)
m = [int(v) for v in rng.integers(-1000, 1000, size=6)]
w = [int(v) for v in rng.integers(-50, 50, size=6)]
cts = [paillier.encrypt(public_key, paillier.encode(public_key, v, precision_bits=0)) for v in m]
value = paillier.decode(public_key, paillier.decrypt(private_key, encrypted_dot(public_key, cts, w)),
                        precision_bits=0)
assert value == sum(a * b for a, b in zip(m, w, strict=True))
print(f"encrypted dot product decrypts to {value:.0f}, as in the clear")

# %% [markdown]
# `paillier.dot_columns` is the same operation for a whole matrix at once, with a batched
# exponentiation (Pippenger's method) that shares the squarings between entries.
#
# ## ★★★ Design: how many, not who
#
# In step 2 the bureau returns $H(x)^{ab}$ *in the bank's order*; that order is what lets the
# bank map a match back to its customer. If the bureau **shuffles** that reply too, the bank can
# still count how many of its double-blinded elements appear among the bureau's, but no longer
# say which of its customers they belong to: it learns $|X \cap Y|$ (and $|Y|$), not
# $X \cap Y$. This is PSI-cardinality, the first half of Ion et al.'s private
# intersection-sum (EuroS&P 2020, Section 3.1).
#
# What the bank loses: the alignment itself. Vertical training needs the shared customers in the
# same order at both parties, so a cardinality-only run can only answer "is federating worth
# it?" (how many shared customers; an estimate of the gain needs more, e.g. a private
# intersection-sum of a statistic). Built from the course's group operations:

# %%
import secrets

group = psi.GROUPS["p256"]
bank_ids, bureau_ids = bank.ids[:3000], bureau.ids[:3000]  # a slice, to keep this quick
a_secret, b_secret = group.new_secret(), group.new_secret()
step1 = group.hash_and_blind([psi.encode_id(int(i)) for i in bank_ids], a_secret)  # bank ->
step2a = group.blind(step1, b_secret)                # the bureau reblinds the bank's elements ...
secrets.SystemRandom().shuffle(step2a)               # ... and shuffles them, secretly
step2b = group.hash_and_blind([psi.encode_id(int(i)) for i in bureau_ids], b_secret)
count = len(set(step2a) & set(group.blind(step2b, a_secret)))  # at the bank
print(f"the bank learns only the number of shared customers: {count:,}")
assert count == len(np.intersect1d(bank_ids, bureau_ids))

# %% [markdown]
# Two cautions. The shuffle must be secret (the bureau's own cryptographic randomness, here the
# operating system's, through `secrets`), or the bank could undo it. And a bank that runs the protocol repeatedly
# with lists that differ in one customer learns whether that customer is shared: a count is
# still a release about individuals, which is where differential privacy (noise on the count)
# would come in.
