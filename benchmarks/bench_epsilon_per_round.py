"""Epsilon after every round: ``accounting.epsilon_per_round`` against one accountant per round.

Notebook 04 plots epsilon round by round and stops training when a budget is spent, which needs
epsilon after each of up to tens of thousands of rounds. The naive way composes a fresh
dp-accounting ``RdpAccountant`` for every round count; ``epsilon_per_round`` computes the RDP of
one round once and scales it by the round number. This script times both on the DP-SGD MNIST
setting (noise multiplier 1.1, q = 256/60000, 14,062 steps, delta = 1e-5) and a DP-FedAvg setting
(noise multiplier 1.0, q = 0.1, 1,000 rounds), checks that they agree on a sample of rounds, and
prints the speed-up. The naive time is measured on ``--sample`` rounds and extrapolated.

    .venv/bin/python benchmarks/bench_epsilon_per_round.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fl_helpers import accounting

SETTINGS = [
    ("DP-SGD MNIST", 1.1, 256 / 60000, 14_062),
    ("DP-FedAvg q=0.1", 1.0, 0.1, 1_000),
]
DELTA = 1e-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=20,
                        help="rounds at which the naive per-round accountant is timed")
    args = parser.parse_args()
    for name, noise, q, rounds in SETTINGS:
        start = time.perf_counter()
        curve = accounting.epsilon_per_round(noise_multiplier=noise, sampling_probability=q,
                                             num_rounds=rounds, target_delta=DELTA)
        fast = time.perf_counter() - start
        sample = np.unique(np.linspace(1, rounds, args.sample).round().astype(int))
        start = time.perf_counter()
        naive = [accounting.dp_fedavg_epsilon(noise_multiplier=noise, sampling_probability=q,
                                              num_rounds=int(t), target_delta=DELTA)
                 for t in sample]
        naive_total = (time.perf_counter() - start) / len(sample) * rounds
        worst = float(np.max(np.abs(np.array(naive) - curve[sample - 1])))
        print(f"{name:17s} {rounds:6d} rounds: epsilon_per_round {fast:6.3f} s, one accountant "
              f"per round ~{naive_total:8.1f} s (extrapolated from {len(sample)}), "
              f"speed-up x{naive_total / fast:,.0f}; final epsilon {curve[-1]:.4f}, "
              f"max |difference| {worst:.1e}")


if __name__ == "__main__":
    main()
