# %% [markdown]
# # Solutions to the exercises of notebook 04b (DP-FedAvg at scale)
#
# Try the exercises in `../04b_dp_fedavg_at_scale.ipynb` first. This notebook rebuilds what the
# exercises need, so it runs on its own (a few seconds).

# %%
from fl_helpers import quiet

quiet.import_tensorflow()  # without TensorFlow's C++ start-up lines (notebook 02 explains)
import json

from fl_helpers import accounting, paths

DELTA, C = 1e-5, 0.5
ACCOUNTANT = "discrete"  # the accountant of exact noise, as in notebooks 04 and 04b
headline = json.loads((paths.results_dir() / "private_mnist_headline.json").read_text())

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
# ## Sanity check

# %%
assert 12 < std_04 / std_big < 14
print("all checks passed")
