# %% [markdown]
# # A bank and a credit bureau: vertical federated learning, private set intersection and federated transfer learning
#
# After this notebook you will be able to align two organisations' customers without revealing
# the rest, train a credit-scoring model across features that live in different organisations
# under additively homomorphic encryption, measure what the plaintext version leaks, and
# transfer a label holder's knowledge to customers it has never seen.
#
# *Runtime: about 1.5 min on a busy 2-core CPU (load average 7 when measured), most of it real
# public-key cryptography on 20,000 and 24,000 customers.*
# Prerequisites: [01 Differential privacy](01_differential_privacy_noise.ipynb)
# (the Gaussian mechanism, ε and δ), [03 Federated averaging](03_federated_averaging.ipynb)
# (what a federation is), [06 Secure aggregation](06_secure_aggregation.ipynb) (key agreement,
# what a server sees) and [08 Cross-silo deployment](08_cross_silo_deployment.ipynb)
# (organisations as clients, AUC, logistic regression).

# %% [markdown]
# ## Learning goals
#
# - **Distinguish** horizontal, vertical and transfer federated learning by who holds which
#   rows and which columns, and say which one a bank and a credit bureau need.
# - **Align** two customer lists with a Diffie–Hellman private set intersection built from an
#   elliptic-curve group, state exactly what each side learns, and check it against a
#   maintained library.
# - **Build** Paillier encryption and train Hardy et al.'s vertical logistic regression with it,
#   proving that the encrypted gradients are the plaintext ones; measure the price in seconds
#   and bytes.
# - **Attack** plaintext split learning by reading the bank's labels from the gradients it
#   returns, and **defend** with exact label-DP noise whose ε names its unit and observer.
# - **Transfer** the bank's labels to the bureau's other customers with federated transfer
#   learning, and measure how much the overlap size matters.

# %% [markdown]
# ## Setup
#
# No TensorFlow: the models are logistic regressions and small networks written in numpy, and
# the cryptography comes from the `cryptography` package (elliptic curves) and Python's big
# integers (Paillier).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from fl_helpers import cross_silo, data, plotting, vertical

SEED = 0
plotting.use_course_style()

# %% [markdown]
# ## Three ways to split a table
#
# Notebooks 03–08 federate **rows**: every client holds the same columns (pixels, or the same
# 14 clinical attributes) for different people. Yang, Liu, Chen & Tong (2019, "Federated Machine
# Learning: Concept and Applications", Section 2.3) name this *horizontal* federated learning
# and describe two more settings:
#
# - **Vertical** federated learning: the parties hold **different columns about the same
#   people**. A bank knows its customers' balances and payments; a credit bureau knows the
#   same customers' repayment histories. Neither may hand its columns to the other.
# - **Federated transfer learning**: the parties hold different columns about **partly
#   overlapping** people, and the model must serve people only one of them knows.
#
# Our data: UCI's "Default of credit card clients" (Yeh & Lien 2009, CC BY 4.0), 30,000
# credit-card customers of a Taiwanese bank in 2005 and whether each defaulted the next month.
# We split it into two organisations with a public seed: a **bank** that holds 20,000 customers
# with their credit limit, bills, payments, a few demographics and the **label** (default or
# not), and a **credit bureau** that holds 24,000 customers with six months of **repayment
# status** (paid in full, revolving, one month late, ...).

# %% tags=["nbval-check-output"]
parties = vertical.credit_parties(seed=SEED)
bank, bureau = parties.bank, parties.bureau
bank_only_ids = np.setdiff1d(bank.ids, bureau.ids)
bureau_only_ids = np.setdiff1d(bureau.ids, bank.ids)
print(f"bank:   {len(bank.ids):>6,} customers x {bank.features.shape[1]} columns + labels")
print(f"bureau: {len(bureau.ids):>6,} customers x {bureau.features.shape[1]} columns")
print(f"both:   {len(parties.overlap_ids):>6,}   (training {len(parties.train_ids):,}, "
      f"held-out test {len(parties.test_ids):,})")
print(f"only the bank {len(bank_only_ids):,}, only the bureau {len(bureau_only_ids):,}, "
      f"neither {data.CREDIT_DEFAULT_ROWS - len(np.union1d(bank.ids, bureau.ids)):,}")
print(f"defaults among the bank's customers: {bank.labels.mean():.1%}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 3.2))
bank_cols, bureau_cols = bank.features.shape[1], bureau.features.shape[1]
blocks = [  # (first customer, customers, first column, columns, colour, text)
    (0, len(bank_only_ids), 0, bank_cols, "C0", "bank only"),
    (len(bank_only_ids), len(parties.overlap_ids), 0, bank_cols, "C0", "bank"),
    (len(bank_only_ids), len(parties.overlap_ids), bank_cols, bureau_cols, "C2", "bureau"),
    (len(bank.ids), len(bureau_only_ids), bank_cols, bureau_cols, "C2", "bureau only"),
]
for y0, height, x0, width, colour, text in blocks:
    ax.add_patch(plt.Rectangle((x0, y0), width, height, color=colour, alpha=0.55, lw=0))
    ax.text(x0 + width / 2, y0 + height / 2, f"{text}\n{height:,} customers", ha="center",
            va="center", fontsize=9)
ax.add_patch(plt.Rectangle((0, len(bank_only_ids)), bank_cols + bureau_cols,
                           len(parties.overlap_ids), fill=False, lw=2, ls="--"))
ax.set_xlim(0, bank_cols + bureau_cols + 1)
ax.set_ylim(len(bank.ids) + len(bureau_only_ids), 0)
ax.set_xlabel(f"columns: {bank_cols} at the bank (+ labels), {bureau_cols} at the bureau")
ax.set_ylabel("customers")
ax.set_title("Vertical FL uses the dashed overlap; transfer learning reaches 'bureau only'")
fig.tight_layout()
plt.show()

# %% [markdown]
# The dashed box is where **vertical** federated learning works: customers both parties know,
# with the bank's columns and labels on the left and the bureau's on the right. The lower right
# block is where **transfer** learning is needed: the bureau's customers the bank has never
# seen, for whom the bureau would like a default prediction but has no labels at all.
#
# **The threat model of this notebook.** Both organisations are *honest but curious*: they run
# the protocol as written, and try to learn what they can from the messages they receive. Each
# may learn which customers they share (that is the point of aligning), and nothing else about
# the other's customers: not who the other's other customers are, not a single feature value,
# not a label. Even the intersection is personal data: it tells the bureau that a person is a
# customer of this bank. That is why the default variant below lets **only the bank** learn it.
#
# All encodings are public constants: an amount becomes $\operatorname{sign}(x)\log(1+|x|)/15$,
# each month's repayment status becomes five 0/1 columns. No statistic of one party's data
# reaches the other. Each party standardises its own columns with its own statistics, and those
# never leave it.

# %% [markdown]
# ## What the bureau's columns are worth
#
# Before any cryptography, the yardsticks, computed in the clear by us (the evaluator, who sees
# everything; no party can). All models are logistic regressions scored by AUC on the same
# 3,201 held-out shared customers:
#
# - **bank alone**: the bank's columns, trained on all of its own customers;
# - **vertical**: both parties' columns, trained on the shared customers (what the protocols
#   below compute without pooling);
# - **pooled**: every column and every customer outside the test set, the upper bound that no
#   real party can reach.

# %%
test_ids, train_ids = parties.test_ids, parties.train_ids
y_test = parties.labels_of(test_ids)
bank_train_ids = np.setdiff1d(bank.ids, test_ids)
x_bank_own, x_bank_test = vertical.standardise(bank.features[bank.rows(bank_train_ids)],
                                               bank.features[bank.rows(test_ids)])
w_bank = vertical.fit_logistic(x_bank_own, bank.labels[bank.rows(bank_train_ids)])

x_a, x_a_test = vertical.standardise(bank.features[bank.rows(train_ids)],
                                     bank.features[bank.rows(test_ids)])
x_b, x_b_test = vertical.standardise(bureau.features[bureau.rows(train_ids)],
                                     bureau.features[bureau.rows(test_ids)])
y_train = bank.labels[bank.rows(train_ids)]
w_vertical = vertical.fit_logistic(np.hstack([x_a, x_b]), y_train)
w_taylor = vertical.fit_logistic(np.hstack([x_a, x_b]), y_train, loss="taylor")

everyone = np.setdiff1d(np.arange(1, data.CREDIT_DEFAULT_ROWS + 1), test_ids)
x_pool, y_pool = parties.pooled(everyone)
x_pool, x_pool_test = vertical.standardise(x_pool, parties.pooled(test_ids)[0])
w_pooled = vertical.fit_logistic(x_pool, y_pool)

auc = {
    "bank alone": cross_silo.roc_auc(y_test, vertical.scores(w_bank, x_bank_test)),
    "vertical (logistic loss)": cross_silo.roc_auc(
        y_test, vertical.scores(w_vertical, np.hstack([x_a_test, x_b_test]))),
    "vertical (Taylor loss)": cross_silo.roc_auc(
        y_test, vertical.scores(w_taylor, np.hstack([x_a_test, x_b_test]))),
    "pooled": cross_silo.roc_auc(y_test, vertical.scores(w_pooled, x_pool_test)),
}

# %% tags=["nbval-check-output"]
for name, value in auc.items():
    print(f"{name:<26} AUC {value:.3f}")

# %% [markdown]
# The bureau's repayment histories lift the bank's AUC from 0.710 to 0.763, and training on
# only the 12,804 shared customers loses almost nothing against pooling everyone (0.765). The
# **Taylor loss**, the quadratic approximation
# $\log(1 + e^{-yz}) \approx \log 2 - \tfrac12 yz + \tfrac18 z^2$ (for $y \in \{-1, +1\}$) that
# makes the encrypted protocol possible, costs nothing measurable here. These are the numbers
# the private protocols must reproduce.

# %% [markdown]
# ## Entity alignment: private set intersection
#
# Vertical training needs the shared customers, in the same order at both parties. The naive
# way, "send me your customer list", hands the bureau the 3,995 bank customers it does not serve.
# Hashing the ids first does not help: customer numbers (or names, or phone numbers) come from a
# small space, so the receiver hashes every possible id and reads the list back. A **private set
# intersection** (PSI) lets the two parties find $X \cap Y$ and nothing else.
#
# The Diffie–Hellman PSI (Meadows 1986; Huberman, Franklin & Hogg 1999, Section 3) uses one
# fact: in a group where exponentiation commutes, $(H(x)^a)^b = H(x)^{ab} = (H(x)^b)^a$. The bank
# picks a secret $a$, the bureau a secret $b$, and $H$ hashes an id onto the group:
#
# 1. the bank sends $H(x)^a$ for each of its ids $x$, shuffled;
# 2. the bureau raises each of those to $b$ and returns them **in the bank's order**, together
#    with $H(y)^b$ for each of its own ids $y$, shuffled;
# 3. the bank raises the bureau's elements to $a$: its id $x_i$ is shared exactly when
#    $H(x_i)^{ab}$ is among the $H(y)^{ba}$.
#
# First in plain integers, in the 2048-bit group of RFC 3526 (a safe prime $p = 2q + 1$; we
# square the hash to land in the subgroup of prime order $q$):

# %%
import hashlib
import secrets

from fl_helpers import psi

p = psi.MODP2048_P


def hash_to_group(customer_id):
    """H(x): SHA-256 stretched to 2,048 bits, then squared into the prime-order subgroup."""
    stretched = b"".join(hashlib.sha256(b"notebook 09" + int(customer_id).to_bytes(8, "big")
                                        + bytes([k])).digest() for k in range(8))
    return pow(int.from_bytes(stretched, "big") % p, 2, p)


a, b = secrets.randbits(256), secrets.randbits(256)  # the bank's and the bureau's secrets
x = int(bank.ids[0])
print(pow(pow(hash_to_group(x), a, p), b, p) == pow(pow(hash_to_group(x), b, p), a, p))

# %% [markdown]
# Now the whole protocol on 300 customers of each party, from scratch, and the course's
# `psi.intersect` on the same ids (in the same group; it draws its own secrets, so only the
# intersection can be compared):

# %%
small_x, small_y = bank.ids[:300], bureau.ids[:300]
step1 = [pow(hash_to_group(i), a, p) for i in small_x]                 # bank -> bureau
step2a = [pow(m, b, p) for m in step1]                                 # bureau -> bank
step2b = {pow(hash_to_group(i), b, p) for i in small_y}                # bureau -> bank
bureau_elements = {pow(m, a, p) for m in step2b}                       # at the bank
by_hand = np.array([i for i, m in zip(small_x, step2a) if m in bureau_elements])

library_run = psi.intersect(small_x, small_y, group="modp2048")
np.testing.assert_array_equal(by_hand, library_run.intersection)
np.testing.assert_array_equal(by_hand, np.intersect1d(small_x, small_y))
print(f"{len(by_hand)} shared customers among the first 300 of each; both versions agree")

# %% [markdown]
# Plain 2048-bit integers are slow: every exponentiation costs milliseconds. Deployments use an
# elliptic curve with the same structure, and so does `psi.intersect` by default: NIST P-256, a
# group of prime order with about 128-bit security, whose elements are 32 bytes instead of 256.
# (The `cryptography` package exposes its scalar multiplication only as ECDH, which returns the
# x-coordinate of a point; blinding x-coordinates still commutes, because $P$ and $-P$ share
# theirs. The module's docstring has the argument.) Here is the real alignment, all 20,000 and
# 24,000 customers:

# %%
started = time.perf_counter()
alignment = psi.intersect(bank.ids, bureau.ids)  # default: P-256, only the bank learns it
psi_seconds = time.perf_counter() - started
np.testing.assert_array_equal(alignment.intersection, parties.overlap_ids)

# %% tags=["nbval-check-output"]
print(alignment.describe().split("\nbytes")[0])
print(f"bytes bank -> bureau: {alignment.bytes_a_to_b:,}; bureau -> bank: "
      f"{alignment.bytes_b_to_a:,}")

# %% tags=["nbval-ignore-output"]
print(f"P-256 PSI on {len(bank.ids):,} x {len(bureau.ids):,} customers: {psi_seconds:.1f} s")

# %% [markdown]
# **What each side learns**, for parties that follow the protocol and under the decisional
# Diffie–Hellman assumption on the group (with $H$ modelled as a random function): the bank
# learns the intersection and the size of the bureau's list; the bureau learns the size of the
# bank's list and nothing else, not even the intersection. Every other element either of them
# receives looks like a random group element to it. What PSI does **not** hide: the sizes (pad
# the lists with dummies to hide them), and anything a *cheating* party gains, for example a
# bank that puts every possible customer number into its list learns the bureau's whole list.
# Malicious-secure PSI protocols exist; this one assumes honest-but-curious parties.
#
# Why only the bank learns the intersection: the intersection is itself personal data ("this
# person banks here"). The bank needs it to line up its labels; the bureau only needs the rows in
# the right order, which the bank can send as opaque row numbers. `reveal_to_b=True` is the
# variant where both learn it.

# %% [markdown]
# > **Pitfall: hashing is not blinding.** If step 1 sent the bare hashes $H(x)$, the bureau
# > could hash every possible customer number and read the bank's whole list off the message.
# > The course keeps that broken step, for the attack only:

# %%
broken = psi.unblinded_hashes_broken(bank.ids[:2000])
found = psi.dictionary_attack(broken, np.arange(1, data.CREDIT_DEFAULT_ROWS + 1))
print(f"the bureau recovers {len(found):,} of the 2,000 bank customers in the broken message")

# %% [markdown]
# On the real message, $H(x)^a$, the same attack finds nothing, even when the bureau also
# raises every candidate to its own $b$: without $a$ it cannot form $H(x)^a$
# (`tests/test_psi.py` runs both attacks on every id from 1 to 30,000: 0 hits).
#
# A maintained implementation gives the same answer: OpenMined's `openmined-psi` (Apache-2.0,
# ECDH on P-256 in C++), in its exact "raw" mode.

# %%
import private_set_intersection.python as openmined

started = time.perf_counter()
client = openmined.client.CreateWithNewKey(True)  # the bank, which learns the intersection
server = openmined.server.CreateWithNewKey(True)  # the bureau
setup = server.CreateSetupMessage(0.0, len(bank.ids), [str(i) for i in bureau.ids],
                                  openmined.DataStructure.RAW)
response = server.ProcessRequest(client.CreateRequest([str(i) for i in bank.ids]))
shared_rows = np.asarray(client.GetIntersection(setup, response), dtype=np.int64)
openmined_seconds = time.perf_counter() - started
np.testing.assert_array_equal(np.sort(bank.ids[shared_rows]), alignment.intersection)
print(f"openmined-psi agrees: {len(shared_rows):,} shared customers")

# %% tags=["nbval-ignore-output"]
print(f"seconds for the same alignment: the course's {psi_seconds:.1f}, openmined-psi "
      f"{openmined_seconds:.1f}")

# %% [markdown]
# ## Paillier: adding numbers nobody can read
#
# To train across the two column sets, the parties must combine per-customer quantities
# (scores, residuals) without showing them. **Additively homomorphic** encryption lets anyone
# holding only the public key add ciphertexts and multiply them by known numbers; only the key
# holder can decrypt. Paillier's scheme (1999) with $g = n + 1$:
#
# - keys: two secret primes $p, q$ of equal size, public $n = pq$;
# - encrypt $m \in \mathbb{Z}_n$: $E(m) = (1 + mn)\, r^n \bmod n^2$ with a fresh secret random
#   $r$ (so encrypting the same $m$ twice gives unrelated ciphertexts);
# - decrypt: $m = L(c^\lambda \bmod n^2)\, \lambda^{-1} \bmod n$ with $\lambda = \operatorname{lcm}(p-1, q-1)$
#   and $L(u) = (u - 1) / n$;
# - $E(a)\,E(b) \bmod n^2 = E(a + b)$ and $E(a)^k \bmod n^2 = E(ka)$.
#
# In a dozen lines (the primes come from the `cryptography` package's RSA key generation, which
# makes secret primes of exactly half the size each):

# %%
import math

from cryptography.hazmat.primitives.asymmetric import rsa

from fl_helpers import paillier

primes = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_numbers()
n = primes.p * primes.q
n2 = n * n
lam = math.lcm(primes.p - 1, primes.q - 1)
mu = pow(lam, -1, n)  # with g = n + 1, L(g^lam mod n^2) = lam mod n


def encrypt(m):
    r = secrets.randbelow(n - 1) + 1
    return (1 + m * n) * pow(r, n, n2) % n2


def decrypt(c):
    return (pow(c, lam, n2) - 1) // n * mu % n


c_a, c_b = encrypt(1_234), encrypt(5_678)
print("D(E(1234) E(5678)) =", decrypt(c_a * c_b % n2))
print("D(E(1234)^3)       =", decrypt(pow(c_a, 3, n2)))
print("E(7) == E(7)?       ", encrypt(7) == encrypt(7))

# %% [markdown]
# The sum and the triple come out right, and two encryptions of 7 differ. The course's
# `paillier` module is the same scheme, with decryption by the Chinese remainder theorem (about
# four times faster), `gmpy2` for the big integers when it is installed, and checks everywhere.
# Built from the same primes, it decrypts our ciphertexts and we decrypt its:

# %%
public_key, private_key = paillier.keypair_from_primes(primes.p, primes.q)
assert paillier.decrypt(private_key, c_a) == 1_234
assert decrypt(paillier.multiply_plain(public_key, paillier.encrypt(public_key, 5), 4)) == 20
print(f"key: {public_key.key_bits} bits; a ciphertext takes {public_key.ciphertext_bytes} bytes")

# %% [markdown]
# **Real numbers.** Paillier encrypts integers modulo $n$. A real $x$ is sent as the integer
# $\operatorname{round}(x \cdot 2^{k})$ with a public number of fractional bits $k$ (here 32),
# and a negative value $-a$ as $n - a$. Decoding reads the bottom third of $\mathbb{Z}_n$ as
# positive and the top third as negative; the middle third is a **gap** no valid value occupies,
# so an overflowing computation is caught instead of wrapping around into a wrong number:

# %%
for value in [0.7071, -3.25, 1e-9]:
    encoded = paillier.encode(public_key, value)
    back = paillier.decode(public_key, paillier.decrypt(
        private_key, paillier.encrypt(public_key, encoded)))
    print(f"{value:>8} -> encoded {str(encoded)[:12]}... -> decrypted {back:.10f}")
try:
    paillier.encode(public_key, float(n))
except paillier.PlaintextOverflowError as error:
    print("PlaintextOverflowError:", str(error)[:90], "...")

# %% [markdown]
# A maintained library agrees: LightPHE (MIT licence) decrypts sums and products computed by
# ours and the other way round. (We do not use it to *make* keys: its key generation draws the
# primes with Python's `random` module, which is not a secret source. The popular `phe` package
# is GPL-licensed, so the MIT-licensed course keeps it out of its dependencies.)

# %%
from lightphe.cryptosystems.Paillier import Paillier as LightPaillier

light = LightPaillier(keys={"public_key": {"n": n, "g": n + 1},
                            "private_key": {"phi": (primes.p - 1) * (primes.q - 1)}})
ours_c = paillier.encrypt(public_key, 41)
assert light.decrypt(paillier.add(public_key, ours_c, light.encrypt(1))) == 42
assert paillier.decrypt(private_key, light.multiply_by_constant(ours_c, 3)) == 123
print("LightPHE and the course's Paillier decrypt each other's sums and products")

# %% [markdown]
# ## Vertical logistic regression under encryption (Hardy et al. 2017)
#
# Hardy, Henecka, Ivey-Law, Nock, Patrini, Smith & Thorne (2017, "Private federated learning on
# vertically partitioned data via entity resolution and additively homomorphic encryption",
# Sections 3–4) train a logistic regression across the two column sets with three parties: the
# bank **A** (its columns, the labels and the intercept), the bureau **B** (its columns) and a
# **coordinator C** that holds the Paillier private key and no data. The score of a customer is
# $z = u_A + u_B$ with $u_A = X_A w_A + b$ and $u_B = X_B w_B$.
#
# The logistic loss's gradient, $-y/(1 + e^{yz})$, is not something one can compute by adding
# and scaling ciphertexts. Its **Taylor expansion** $\log 2 - \tfrac12 yz + \tfrac18 z^2$ has
# gradient $d = \tfrac14 z - \tfrac12 y$, which is **linear** in the two parties' scores. One
# mini-batch:
#
# 1. B encrypts $[\![u_B/4]\!]$ under C's public key and sends it to A;
# 2. A adds its plaintext part: $[\![d]\!] = [\![u_B/4]\!] + u_A/4 - y/2$, and sends
#    $[\![d]\!]$ to B;
# 3. each party computes its encrypted gradient $[\![X^\top d]\!]$ (ciphertexts raised to its own
#    plaintext feature values), adds a secret random mask $r$, and sends it to C;
# 4. C decrypts $X^\top d + r$ and returns it; each party removes its mask and takes a step.
#
# The parties get their gradients; C sees only masked numbers, uniformly random to it; neither
# party sees a plaintext of the other's scores. Here is one batch of 1,024 shared customers,
# encrypted with a 1,024-bit key, next to the same arithmetic in floats:

# %%
from fl_helpers import vertical_protocol

LEARNING_RATE, BATCH, EPOCHS, L2 = 0.1, 1024, 20, 1e-3
started = time.perf_counter()
vfl = vertical_protocol.train_vertical(
    x_a, x_b, y_train, num_epochs=EPOCHS, batch_size=BATCH, learning_rate=LEARNING_RATE,
    rng=np.random.default_rng(SEED), l2=L2, encrypted_batches=2, key_bits=1024)
vfl_seconds = time.perf_counter() - started
auc["vertical, Hardy et al. (2 batches encrypted)"] = cross_silo.roc_auc(
    y_test, vfl.scores(x_a_test, x_b_test))

# %% [markdown]
# Who saw what in the first encrypted batch (`vfl.log` records every message; its sizes are
# those of the real ciphertexts):

# %% tags=["nbval-check-output"]
print(f"{'from':<5}{'to':<4}{'content':<22}{'protection':<11}{'elements':>9}{'bytes':>10}")
for row in vfl.log.table():
    if row["batch"] in (-1, 0):
        print(f"{row['sender']:<5}{row['receiver']:<4}{row['content']:<22}"
              f"{row['protection']:<11}{row['elements']:>9,}{row['num_bytes']:>10,}")

# %% [markdown]
# A and B exchange one ciphertext per customer of the batch (256 bytes each with a 1,024-bit
# key), and C sees one masked number per weight. Do the encrypted gradients equal the plaintext
# ones? `train_vertical` checks every encrypted batch against the float Taylor gradients at the
# same weights; the only difference allowed is the rounding of the 32-bit fixed-point encoding,
# whose worst case for this batch it also computes:

# %% tags=["nbval-check-output"]
print(f"encrypted batches: {vfl.encrypted_batches}; largest |encrypted - float| gradient entry "
      f"below the fixed-point bound: {vfl.max_gradient_difference < vfl.gradient_bound}")
print(f"fixed-point bound: {vfl.gradient_bound:.1e}")

# %% tags=["nbval-ignore-output"]
print(f"largest difference: {vfl.max_gradient_difference:.1e}")
print(f"{vfl.encrypted_batches} encrypted batches of {BATCH}: {vfl.seconds_encrypted:.1f} s; "
      f"the other {EPOCHS * -(-len(y_train) // BATCH) - vfl.encrypted_batches} batches in "
      f"floats: {vfl.seconds_plaintext:.2f} s")
print(f"one encrypted epoch would send {vfl.bytes_per_epoch / 1e6:.1f} MB")

# %% [markdown]
# After the two encrypted batches the rest of training runs the *same arithmetic* in floats
# (encrypting all 260 batches would take about ten minutes; nothing about the maths changes). The
# benchmark `benchmarks/vertical_fl_costs.py` measures what full encryption costs at deployment
# key sizes; its stored results:

# %%
import json

from fl_helpers import paths

costs = json.loads((paths.results_dir() / "vertical_fl_costs.json").read_text())
print(f"measured {costs['runs']['training']['date']} on {costs['runs']['training']['cpus']} "
      f"cores, gmpy2 {costs['runs']['training']['gmpy2']}; per 1,000 aligned customers:")
print(f"{'one training epoch':<24}{'seconds':>9}{'kB sent':>10}")
for row in costs["training"]:
    slow = ", no gmpy2" if row.get("backend") == "python" else ""
    name = "plaintext (floats)" if row["key_bits"] is None else \
        f"Paillier {row['key_bits']} bits{slow}"
    print(f"{name:<24}{row['seconds_per_1000_customers']:>9.4g}"
          f"{row['bytes_per_1000_customers'] / 1e3:>10.0f}")
print(f"{'PSI':<24}{'seconds':>9}{'kB sent':>10}")
for row in costs["psi"]:
    print(f"{row['implementation']:<32}{row['seconds_per_1000_customers']:>6.2f}"
          f"{row['bytes_per_1000_customers'] / 1e3:>9.0f}")

# %% [markdown]
# Encryption makes an epoch thousands of times slower than floats and costs about 0.6 MB per
# 1,000 customers at the class's 1,024-bit key; at 2,048 bits, the smallest key deployments
# should use (NIST rates it at 112 bits of security), an epoch over the 12,804 shared customers
# takes minutes, and at 3,072 bits (128-bit security) about ten minutes on this 2-core CPU.
# Most of the time goes into encrypting $u_B/4$, one full exponentiation per customer per
# batch. Aligning the customers once with PSI is cheap by comparison.
#
# And the model? Every vertical model against the yardsticks, on the same held-out customers:

# %% tags=["nbval-check-output"]
for name, value in auc.items():
    print(f"{name:<46} AUC {value:.3f}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 2.6))
names = list(auc)
ax.barh(names, [auc[k] for k in names], color=["C0", "C2", "C2", "C7", "C1"])
ax.set_xlim(0.5, 0.8)
ax.axvline(0.5, color="k", lw=0.8)
for i, k in enumerate(names):
    ax.text(auc[k] + 0.003, i, f"{auc[k]:.3f}", va="center", fontsize=9)
ax.set_xlabel("test AUC on 3,201 shared customers (0.5 = guessing; the axis starts there)")
ax.invert_yaxis()
fig.tight_layout()
plt.show()

# %% [markdown]
# **Sanity check.** The encrypted protocol's model must beat the bank alone and land within
# 0.01 of the pooled upper bound:

# %%
hardy = auc["vertical, Hardy et al. (2 batches encrypted)"]
assert hardy > auc["bank alone"] + 0.03, hardy
assert abs(hardy - auc["pooled"]) < 0.01, (hardy, auc["pooled"])
print("passed")

# %% [markdown]
# ## What leaks: the labels in split learning's gradients
#
# Encryption is slow, so many vertical systems send plaintext instead. The common design is
# **split learning**: the bureau runs a *bottom model* on its columns and sends the bank an
# embedding $h_i$ per customer; the bank runs the *top model* on its own columns and $h_i$, and
# returns the gradient $g_i = \partial L / \partial h_i$ so the bureau can train its half.
# No raw feature and no label crosses. Li, Sun, Yang, Gao, Zhang, Xie, Smith & Wang (2022, "Label Leakage
# and Protection in Two-party Split Learning", Section 3) showed that the returned gradients give
# the labels away anyway. For the logistic loss, $g_i = (p_i - y_i)\, \partial z_i / \partial h_i$:
#
# - **norm scoring**: defaulters are the minority, so the model gives them small $p_i$ and their
#   gradients are larger: score a customer by $\lVert g_i \rVert$;
# - **direction scoring**: the sign of $p_i - y_i$ is $-1$ for every defaulter and $+1$ for every
#   other customer, so all defaulters' gradients point one way: score a customer by the cosine
#   of $g_i$ with the gradient of one customer the bureau knows defaulted (or, with no known
#   defaulter, by which side of the batch's main direction it falls on).
#
# The adversary is the bureau: it knows its own columns and model, the protocol, the code and
# the batch order; it does not know a single label. We train split learning (a tanh embedding
# of 8 numbers at the bureau, a logistic top model at the bank, 5 epochs) and score both attacks
# on every epoch's returned gradients, against the true labels of the training customers:

# %%
from fl_helpers import split_learning

split_data = split_learning.credit_split_data(parties)
plain_split = split_learning.train_split(split_data, seed=SEED)
plain_attacks = split_learning.attack_aucs(plain_split, split_data.labels_train)

# %% tags=["nbval-ignore-output"]
print(f"split learning test AUC {plain_split.test_auc:.3f}")
for attack, per_epoch in plain_attacks.items():
    print(f"{attack:<24} label-recovery AUC by epoch: {np.round(per_epoch, 2)}")

# %% [markdown]
# The direction attack reads the bank's labels perfectly from the first epoch on; the norm
# attack gets better as the model learns that defaults are rare. Encrypting the protocol (as
# above) is one defence: the bureau then sees ciphertexts and one batch-summed gradient
# $X_B^\top d$ per batch, never a gradient per customer (a batch of one customer would still
# leak it; batches of 1,024 sum over many labels).
#
# The other defence is **label differential privacy**, with exact noise. The label enters
# training only through the residual $p_i - y_i$, so the bank noises exactly that, once per
# customer per epoch: it puts the residual on an integer grid,
# $R_i = \operatorname{rint}(p_i S) - y_i S$ (a label flip moves $R_i$ by exactly $S$, since $p_i$
# depends only on earlier noisy releases), adds discrete Gaussian noise of scale $\sigma \ge zS$
# from a secret source, and
# only then converts to floats. The returned gradients *and* the bank's own update use the noisy
# residual, so the whole model is covered. The guarantee:

# %%
split_delta = 1e-5
target_epsilons = [8.0, 2.0, 0.5]
defended = {}
for target in target_epsilons:
    z = split_learning.noise_multiplier_for_label_dp(target_epsilon=target, epochs=5,
                                                     target_delta=split_delta)
    run = split_learning.train_split(split_data, seed=SEED, noise_multiplier=z,
                                     target_delta=split_delta)
    defended[target] = (run, split_learning.attack_aucs(run, split_data.labels_train))
print(defended[2.0][0].privacy_statement())

# %% [markdown]
# Read it as the course reads every claim: the **unit** is one training customer's label, the
# **neighbouring** training sets differ in that one label (the features are the parties' own),
# the **trusted** party is the bank, which holds the labels and draws the noise, and the
# **observer** is the bureau, which sees every returned gradient of every epoch. There is no
# sampling to amplify privacy: every customer is in every epoch, so five epochs compose five
# times. $\delta = 10^{-5}$ is below one over the 12,804 training customers.
#
# How much each attack recovers, and what the model keeps (the noise is secret, so these
# numbers change a little from run to run; an AUC below 0.5 is as informative as its mirror
# image, so we plot the strongest attack's $\max(\mathrm{AUC}, 1 - \mathrm{AUC})$ over attacks
# and epochs):

# %%
def strongest(attacks):
    return max(max(np.max(a), 1 - np.min(a)) for a in attacks.values())


settings = ["no noise"] + [f"ε = {t:g}" for t in target_epsilons]
model_auc = [plain_split.test_auc] + [defended[t][0].test_auc for t in target_epsilons]
attack_auc = [strongest(plain_attacks)] + [strongest(defended[t][1]) for t in target_epsilons]
fig, (ax_epochs, ax_trade) = plt.subplots(1, 2, figsize=(9, 3.2))
for attack, per_epoch in plain_attacks.items():
    ax_epochs.plot(np.arange(1, len(per_epoch) + 1), per_epoch, marker="o", label=attack)
ax_epochs.set(xlabel="epoch", ylabel="label-recovery AUC", ylim=(0.4, 1.02),
              xticks=np.arange(1, len(per_epoch) + 1),
              title="attacks on plaintext split learning (both direction attacks at 1.0)")
ax_epochs.legend(fontsize=8)
x = np.arange(len(settings))
ax_trade.bar(x - 0.2, attack_auc, 0.4, color="C3", label="strongest attack AUC")
ax_trade.bar(x + 0.2, model_auc, 0.4, color="C0", label="model test AUC")
ax_trade.axhline(0.5, color="k", lw=0.8)
ax_trade.axhline(auc["bank alone"], color="C0", ls=":", lw=1, label="bank alone")
ax_trade.set_xticks(x, settings)
ax_trade.set(ylim=(0.4, 1.02), title="label DP on the returned gradients")
ax_trade.legend(fontsize=8, loc="upper right")
fig.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
for name, attack, model in zip(settings, attack_auc, model_auc, strict=True):
    print(f"{name:<9} strongest attack AUC {attack:.2f}   model test AUC {model:.3f}")

# %% [markdown]
# Without noise the bureau recovers every label. At ε = 8 the attacks fall to about 0.6 and the
# model keeps most of its edge over the bank alone (0.710); at ε = 2 the attacks are near chance
# and the model is no better than the bank alone: the noise that protects the labels has eaten
# what the bureau's columns were worth; at ε = 0.5 the model is far worse than not federating.
# **Sanity check** (loose bounds, because the noise is secret):

# %%
assert strongest(plain_attacks) > 0.95
assert strongest(defended[0.5][1]) < 0.65 and strongest(defended[2.0][1]) < 0.7
assert defended[8.0][0].test_auc > 0.68
print("passed")

# %% [markdown]
# ### Try it
#
# Move the target $\varepsilon$ and watch the attacks (left, by epoch) and the model (right;
# dotted: the bank alone, dashed: split learning without noise). Every move retrains split
# learning with the noise the accountant asks for and reruns the three attacks, in under a
# second. The widget's noise is derived from a public seed, so the same $\varepsilon$ always
# draws the same picture, which also makes it **not private**: it is for exploring only. Where
# does the strongest attack reach chance, and what is the model worth there?

# %% tags=["nbval-ignore-output"]
from fl_helpers import vertical_widgets

vertical_widgets.label_dp_explorer(split_data, target_epsilon=2.0,
                                   bank_alone_auc=auc["bank alone"],
                                   plain_auc=plain_split.test_auc)

# %% [markdown]
# ## Federated transfer learning: customers only the bureau knows
#
# Vertical learning scores only customers both parties hold. The bureau's 7,995 customers that
# the bank does not serve get nothing: the bureau has their repayment histories but no labels,
# and the bank has never seen them. **Federated transfer learning** (Liu, Kang, Xing, Chen & Yang
# 2020, "A Secure Federated Transfer Learning Framework", Section 4) transfers the bank's labels
# across the overlap:
#
# - each party learns a representation of its own columns, $u^A_i = \mathrm{Net}_A(x^A_i)$ at the
#   bank and $u^B_j = \mathrm{Net}_B(x^B_j)$ at the bureau (here a tanh layer of 8 numbers);
# - the bank summarises its labelled customers in one vector,
#   $\Phi_A = \frac{1}{N_A}\sum_i y_i u^A_i$ ($y_i \in \{-1, +1\}$), and the bureau predicts any
#   of its customers by $\varphi(u^B_j) = \Phi_A \cdot u^B_j$;
# - training minimises, over the overlap, the logistic loss of $y_i \varphi(u^B_i)$ plus an
#   **alignment** term $\gamma \lVert u^A_i - u^B_i \rVert^2$ that ties the two representations
#   of the same customer together (plus the bank's own loss on its customers and a ridge term).
#
# Per step, the bureau sends the bank $u^B$ of the overlap customers and receives
# $\partial L / \partial u^B$; at the end the bank sends $\Phi_A$ once. In plaintext, these
# messages leak: the sign of $\partial L / \partial u^B_i \cdot \Phi_A$ is $-y_i$, the label
# itself (`tests/test_transfer.py` runs that attack). Liu et al. therefore exchange them under
# Paillier encryption with masks, like Hardy et al.'s protocol above, or with secret sharing; here
# we measure what the method can reach, in plaintext.
#
# How well does it score the 7,995 customers outside the overlap, as the overlap grows? Against
# two baselines: the bureau **alone, with no labels** (a trained model is at chance; a
# domain-knowledge score, the number of months late, needs no labels), and the bureau training a
# logistic regression on **the overlap's labels**, which the bank would have to hand over:

# %%
from fl_helpers import transfer

overlap_sizes = [200, 500, 2_000, 10_000, len(train_ids)]
started = time.perf_counter()
curve = transfer.overlap_curve(parties, overlap_sizes, seed=SEED)
ftl_seconds = time.perf_counter() - started
outside = transfer.non_overlap_ids(parties)
months_late = cross_silo.roc_auc(parties.labels_of(outside),
                                 transfer.months_late_scores(parties, outside))

# %% tags=["nbval-check-output"]
print(f"bureau customers outside the overlap: {len(outside):,}")
print(f"{'overlap':>8}{'FTL':>8}{'labels shared':>15}")
for point in curve:
    print(f"{point.overlap_size:>8,}{point.ftl_auc:>8.3f}{point.labels_only_auc:>15.3f}")
print(f"no labels, months-late score: {months_late:.3f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.plot(overlap_sizes, [c.ftl_auc for c in curve], marker="o", color="C1",
        label="federated transfer learning")
ax.plot(overlap_sizes, [c.labels_only_auc for c in curve], marker="s", ls="--", color="C2",
        label="bureau's regression on shared labels")
ax.axhline(months_late, color="C7", ls=":", label="no labels: months-late score")
ax.axhline(0.5, color="k", lw=0.8, label="no labels: a trained model (chance)")
ax.set_xscale("log")
ax.set_xticks(overlap_sizes, [f"{size:,}" for size in overlap_sizes])
ax.minorticks_off()
ax.set(xlabel="customers in the overlap (log scale)", ylim=(0.45, 0.8),
       ylabel="AUC, bureau-only customers")
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
print(f"{len(curve)} FTL runs and baselines: {ftl_seconds:.1f} s")

# %% [markdown]
# An honest result. The bank's labels do reach customers it has never seen: from 0.740 with
# 500 shared customers to 0.755 with all of them. But on this data FTL is **no better than
# the bureau fitting a regression on the shared labels**: the two curves lie on top of each
# other. The reason is in the data. Both organisations drew their customers from one
# population, so there is no shift for a representation to bridge, and the bureau's repayment
# columns are the stronger predictors; aligning to the bank's representation does not add
# information (the module docstring of `transfer` records the tuning that showed this). Even the
# label-free months-late score reaches 0.737. What FTL does buy is **where the labels stay**:
# with its messages encrypted, the bureau gets a model as good as label sharing without ever
# holding a label. FTL earns its keep when the two parties' customers differ (another country,
# another product) and the overlap is the only bridge.
#
# **Sanity check:**

# %%
assert all(point.ftl_auc > 0.7 for point in curve)
assert abs(curve[-1].ftl_auc - curve[-1].labels_only_auc) < 0.01
print("passed")

# %% [markdown]
# ## Exercises
#
# ### ★ Predict: what does the bureau learn from the alignment?
#
# In the default PSI above, which of these does the bureau learn? Set `bureau_learns` to one of
# `"nothing"`, `"the size of the bank's list"`, `"the intersection"` or `"the bank's list"`.
#
# <details><summary>Hint</summary>
#
# Look at what the bureau received in step 1, and at `alignment.view_b.describe()`.
# </details>

# %%
bureau_learns = None  # replace None by one of the four answers

# %%
# Check cell
if bureau_learns is None:
    print("Set bureau_learns above, then run this cell again.")
elif bureau_learns == "the size of the bank's list":
    print(f"Correct: it received {alignment.view_b.other_set_size:,} blinded elements, one per "
          "bank customer, and nothing it can link to an id.")
else:
    print("Not quite: count the elements of the one message the bureau received.")

# %% [markdown]
# ### ★ Predict: four times the epochs
#
# The label-DP defence above spends $\varepsilon = 2$ in 5 epochs. At the same noise multiplier,
# the bank trains 20 epochs instead. By about what factor does $\varepsilon$ grow? Set
# `epsilon_factor` to `1`, `2`, `4` or `16`.
#
# <details><summary>Hint</summary>
#
# Every epoch is one more Gaussian mechanism on each label, without sampling. Rényi DP adds
# up linearly over the epochs, but converting it to $(\varepsilon, \delta)$ takes a square
# root, roughly.
# </details>

# %%
epsilon_factor = None  # replace None by 1, 2, 4 or 16

# %%
# Check cell
z_two = split_learning.noise_multiplier_for_label_dp(target_epsilon=2.0, epochs=5,
                                                     target_delta=split_delta)
ratio = split_learning.label_dp_epsilon(noise_multiplier=z_two, epochs=20,
                                        target_delta=split_delta) / 2.0
if epsilon_factor is None:
    print("Set epsilon_factor above, then run this cell again.")
elif epsilon_factor == 2:
    print(f"Correct: epsilon grows by {ratio:.2f}, close to the square root of 4.")
else:
    print(f"Not quite: the accountant says x{ratio:.2f}.")

# %% [markdown]
# ### ★★ Modify: an encrypted score
#
# The heart of Hardy et al.'s protocol is a dot product between an encrypted vector and a
# plaintext one. Write `encrypted_dot(public_key, ciphertexts, weights)` that returns one
# ciphertext of $\sum_i w_i m_i$, given ciphertexts of integers $m_i$ and plaintext integers
# $w_i$ (some negative), using only `paillier.multiply_plain` and `paillier.add`.
#
# <details><summary>Hint</summary>
#
# Start from `paillier.encrypt(public_key, 0)` and add `multiply_plain(public_key, c, w)` for
# each pair.
# </details>

# %%
def encrypted_dot(public_key, ciphertexts, weights):
    return None  # your code here

# %%
# Check cell
rng = np.random.default_rng(SEED)
m = [int(v) for v in rng.integers(-1000, 1000, size=6)]
w = [int(v) for v in rng.integers(-50, 50, size=6)]
cts = [paillier.encrypt(public_key, paillier.encode(public_key, v, precision_bits=0)) for v in m]
answer = encrypted_dot(public_key, cts, w)
if answer is None:
    print("Complete encrypted_dot above, then run this cell again.")
else:
    value = paillier.decode(public_key, paillier.decrypt(private_key, answer), precision_bits=0)
    if value == sum(a * b for a, b in zip(m, w, strict=True)):
        print(f"Correct: the coordinator would decrypt {value:.0f} and see nothing else.")
    else:
        print(f"Not quite: expected {sum(a * b for a, b in zip(m, w, strict=True))}, got {value}.")

# %% [markdown]
# ### ★★★ Design: how many, not who
#
# Before signing a contract, the bank and the bureau want to know whether federating is worth
# it: **how many** customers they share, without either learning **which**. Change the PSI so
# that the bank learns only the size of the intersection. What must the bureau do to its reply
# in step 2, and what does the bank lose that it needs for vertical training? (A worked answer is
# in the solutions notebook.)
#
# <details><summary>Hint</summary>
#
# The bank maps the reply back to its ids only because step 2a keeps the bank's order.
# </details>

# %% [markdown]
# ## Summary
#
# - Horizontal FL splits rows, vertical FL splits columns about the same people, and federated
#   transfer learning bridges parties whose people only partly overlap. A bank with labels and a
#   bureau with repayment histories is the vertical case: together they raise the AUC from 0.710
#   to 0.763, within 0.002 of pooling everything.
# - Private set intersection aligns the customers: with Diffie–Hellman blinding on P-256, the
#   bank learns the 16,005 shared customers and the bureau's list size, the bureau only the
#   bank's list size. Hashing without blinding gives every id away.
# - Paillier encryption lets anyone add and scale ciphertexts; Hardy et al.'s protocol uses it,
#   with the Taylor loss, to compute exactly the plaintext gradients (up to fixed-point
#   rounding) while a coordinator sees only masked numbers, at thousands of times the cost.
# - Plaintext split learning leaks the labels through the returned gradients (direction attack
#   AUC 1.0); exact label-DP noise on the residual stops it, with an $\varepsilon$ for one
#   customer's label against the bureau, and costs accuracy: at $\varepsilon = 2$ the model is
#   worth about what the bank had alone.
# - Federated transfer learning carries the bank's labels to the bureau's other customers; on
#   this data it matches a regression on shared labels, and what it buys is that the labels stay
#   at the bank, provided its messages are encrypted.

# %% [markdown]
# ## Further reading
#
# - Q. Yang, Y. Liu, T. Chen, Y. Tong, "Federated Machine Learning: Concept and Applications",
#   ACM TIST 10(2), 2019: Section 2.3 (horizontal, vertical and transfer FL) and Section 3.
# - S. Hardy, W. Henecka, H. Ivey-Law, R. Nock, G. Patrini, G. Smith, B. Thorne, "Private
#   federated learning on vertically partitioned data via entity resolution and additively
#   homomorphic encryption", arXiv 1711.10677, 2017: Section 3 (the Taylor loss) and Section 4
#   (the protocol).
# - Y. Liu, Y. Kang, C. Xing, T. Chen, Q. Yang, "A Secure Federated Transfer Learning
#   Framework", IEEE Intelligent Systems 35(4), 2020: the transfer loss and its training under
#   homomorphic encryption and under secret sharing.
# - O. Li, J. Sun, X. Yang, W. Gao, H. Zhang, J. Xie, V. Smith, C. Wang, "Label Leakage and
#   Protection in Two-party Split Learning", ICLR 2022: Section 3 (norm and direction
#   attacks) and Section 4 (Marvell, a defence that optimises its noise).
# - K. Cheng, T. Fan, Y. Jin, Y. Liu, T. Chen, D. Papadopoulos, Q. Yang, "SecureBoost: A
#   Lossless Federated Learning Framework", IEEE Intelligent Systems 36(6), 2021: vertical
#   gradient-boosted trees, the other workhorse of vertical FL in finance.
# - P. Paillier, "Public-Key Cryptosystems Based on Composite Degree Residuosity Classes",
#   EUROCRYPT 1999: Sections 3–4 (the scheme) and 7 (decryption with the CRT).
# - B. A. Huberman, M. Franklin, T. Hogg, "Enhancing Privacy and Trust in Electronic
#   Communities", ACM EC 1999: Section 3 (the Diffie–Hellman intersection); M. Ion et al., "On
#   Deploying Secure Computing: Private Intersection-Sum-with-Cardinality", EuroS&P 2020, for
#   the same protocol in production.
# - I.-C. Yeh, C.-H. Lien, "The comparisons of data mining techniques for the predictive
#   accuracy of probability of default of credit card clients", Expert Systems with
#   Applications 36(2), 2009: the data.
