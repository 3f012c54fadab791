# %% [markdown]
# # Solutions to the exercises of notebook 06 (secure aggregation and distributed DP)
#
# Try the exercises in `../06_secure_aggregation.ipynb` first. This notebook runs on its own
# (about 5 s on a laptop CPU); it needs no TensorFlow.

# %%
import math

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from fl_helpers import secagg_protocol

SEED = 0
rng = np.random.default_rng(SEED)  # teaching data only

# %% [markdown]
# ## ★ Predict: how many bits does the sum need?
#
# **$b = 20$.** The sum of 100 coordinates in $[-2^{12}, 2^{12}]$ lies in
# $[-409{,}600, 409{,}600]$. It must fit in $[-2^{b-1}, 2^{b-1})$, so we need
# $409{,}600 < 2^{b-1}$: $2^{18} = 262{,}144$ is too small and $2^{19} = 524{,}288$ is enough,
# hence $b - 1 = 19$. In general $b = \lceil \log_2(m \cdot \max|x|) \rceil + 1$: every doubling
# of the number of clients costs one more bit per coordinate, which is the $\log_2 n$ term of
# Bonawitz et al.'s expansion factor. The helper rejects 19 bits and sums exactly with 20:

# %% tags=["nbval-check-output"]
min_bits = (100 * 2**12).bit_length() + 1
top = [np.full(1, 2**12, dtype=np.int64)] * 100
try:
    secagg_protocol.secure_sum(top, modulus_bits=min_bits - 1)
except ValueError as error:
    print("ValueError:", error)
print(f"min_bits = {min_bits}; the sum with {min_bits} bits:",
      secagg_protocol.secure_sum(top, modulus_bits=min_bits).total)

# %% [markdown]
# With Kairouz et al.'s random rotation every coordinate would be about $\|x\|_2/\sqrt{d}$ instead
# of up to $\|x\|_2$, which is how they get away with about 16 bits for large models.
#
# ## ★★ Modify: secure aggregation of two clients
#
# `recover_other` is one subtraction: the sum minus your own input is the other input. Secure
# aggregation hides an input only among the others; with two clients there is nothing to hide
# among. This is why deployments require a minimum number of clients per round, and why the
# noise (Step 5) is needed even with many clients: the sum can still reveal one client if the
# others' updates are predictable.

# %% tags=["nbval-check-output"]
def recover_other(my_input, secure_total):
    return secure_total - my_input


pair = [rng.integers(-50, 50, 8) for _ in range(2)]
total = secagg_protocol.secure_sum(pair, modulus_bits=16, threshold=2).total
print("recovered:", recover_other(pair[0], total))
print("client 2: ", pair[1])

# %% [markdown]
# ## ★★★ Design: a consistency check against a lying server
#
# **The attack.** Before the unmasking round the server sends each client the list of clients
# whose masked input it received. A lying server tells some clients "5 is included" (they send
# their share of $b_5$) and others "5 dropped" (they send their share of 5's mask key); with
# $t$ of each it unmasks $x_5$.
#
# **The fix (Bonawitz et al. 2017, Figure 4, round 3 "ConsistencyCheck").** Every client has a
# long-term signing key registered with a public-key infrastructure (so the server cannot invent
# clients). After receiving the list $U_3$ of included clients, each client signs
# $(\text{round id}, U_3)$ and sends the signature to the server; the server forwards the set of
# at least $t$ signatures to every client. A client reveals shares only if it receives at least
# $t$ valid signatures from distinct registered clients, all on the *same* $U_3$ it was given;
# otherwise it aborts. Since every honest client signs only one list per round, a server cannot
# gather $t$ signatures on two different lists if $t > (n + \text{corrupted})/2$, which is why the
# actively secure version needs $t > 2n/3$ and at most $n/3$ corrupted clients.
#
# **The cost:** one extra round trip; per client one signature sent and up to $n$ received
# (64 bytes each with Ed25519), plus $n$ verifications: $O(n)$, the same order as the shares.
# A sketch with Ed25519 from `cryptography`:

# %%
signing = {u: ed25519.Ed25519PrivateKey.generate() for u in range(1, 7)}
registry = {u: key.public_key() for u, key in signing.items()}  # the PKI
T = math.ceil(2 * 6 / 3)


def sign_list(u, round_id, included):
    return u, signing[u].sign(round_id + bytes(sorted(included)))


def willing_to_unmask(my_list, round_id, signatures):
    signers = set()
    for u, signature in signatures:
        try:
            registry[u].verify(signature, round_id + bytes(sorted(my_list)))
            signers.add(u)
        except InvalidSignature:
            pass
    return len(signers) >= T


# %% tags=["nbval-check-output"]
honest_list = [1, 2, 3, 4, 5]
signatures = [sign_list(u, b"round 7", honest_list) for u in honest_list]
print("honest server, everyone told", honest_list, "->",
      willing_to_unmask(honest_list, b"round 7", signatures))
# A lying server: clients 1-3 are told 5 is included, clients 4-5 that it dropped.
split = [sign_list(u, b"round 7", [1, 2, 3, 4, 5]) for u in (1, 2, 3)] + \
        [sign_list(u, b"round 7", [1, 2, 3, 4]) for u in (4, 5)]
print("lying server, client 1 checks its list ->",
      willing_to_unmask([1, 2, 3, 4, 5], b"round 7", split))
print("lying server, client 4 checks its list ->",
      willing_to_unmask([1, 2, 3, 4], b"round 7", split))

# %% [markdown]
# With the honest server all signatures match and the clients unmask. With the lying server
# neither group collects $t = 4$ signatures on its own list, so every honest client aborts and the
# server learns nothing. (A complete protocol also signs the round-0 keys, so the server cannot
# substitute its own keys for a client's; that is the other half of the malicious-server
# defence, and neither half is implemented in `fl_helpers.secagg_protocol`.)
