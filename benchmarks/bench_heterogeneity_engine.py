"""Notebook 10's client algorithms on the fast engine against the per-client loop, side by side.

For FedAvg, FedProx (with 50 % stragglers), SCAFFOLD and Ditto, trains the same run with
``engine="fast"`` and ``engine="loop"`` and prints the median seconds per round (the first round,
which compiles, left out), their ratio, and the largest difference of the final weights (the two
engines agree up to float32 rounding). Two settings: the FedProx paper's (Synthetic(1, 1), 30
clients, 10 per round, E = 20, B = 10, softmax regression) and a wider one (100 clients of
Synthetic(1, 1), 20 per round, E = 5, B = 10, an MLP with two hidden layers of 200); with
``--mnist``, also MNIST in McMahan et al.'s two-shard non-IID split (100 clients of 600, 10 per
round, E = 1, B = 10, the 2NN), whose equal client sizes suit the engine's lockstep groups.

Prints only; never asserts a timing. Run from the repository root:

    .venv/bin/python benchmarks/bench_heterogeneity_engine.py [--rounds 6] [--mnist] [--only-mnist]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from fl_helpers import data, heterogeneity, models, personalisation, training  # noqa: E402

SETTINGS = {
    "paper (softmax regression, 30 clients, m=10, E=20)": dict(
        num_clients=30, hidden=(), clients_per_round=10, local_epochs=20),
    "wide (MLP 200-200, 100 clients, m=20, E=5)": dict(
        num_clients=100, hidden=(200, 200), clients_per_round=20, local_epochs=5),
}

ALGORITHMS = {
    "FedAvg": lambda: None,
    "FedProx mu=1, 50% stragglers": lambda: heterogeneity.FedProx(1.0, straggler_fraction=0.5),
    "SCAFFOLD": lambda: heterogeneity.SCAFFOLD(),
    "Ditto lam=0.5": lambda: personalisation.Ditto(0.5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--mnist", action="store_true", help="also the MNIST 2NN setting")
    parser.add_argument("--only-mnist", action="store_true", help="only the MNIST setting")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{args.rounds} rounds, seconds per round = median after round 1")
    runs = [] if args.only_mnist else [
        (title, heterogeneity.synthetic_federation(
            1.0, 1.0, num_clients=setting["num_clients"], seed=0).train, setting,
         lambda hidden=setting["hidden"]: models.make_mlp(hidden, activation="relu",
                                                          input_shape=(60,)))
        for title, setting in SETTINGS.items()]
    if args.mnist or args.only_mnist:
        (x, y), _ = data.load_mnist()
        parts = data.partition_shards(y, 100, rng=np.random.default_rng(0))
        runs.append(("MNIST 2-shard non-IID (2NN, 100 clients of 600, m=10, E=1)",
                     data.client_datasets(x, y, parts),
                     {"clients_per_round": 10, "local_epochs": 1}, models.make_2nn))
    for title, train, setting, model_fn in runs:
        print(f"\n{title}: {sum(len(y) for _, y in train)} training examples")
        print(f"{'algorithm':32s} {'fast s/round':>12s} {'loop s/round':>12s} {'loop/fast':>9s} "
              f"{'max |w diff|':>12s}")
        for name, make in ALGORITHMS.items():
            seconds, weights = {}, {}
            for engine in ("fast", "loop"):
                history = training.run_fedavg(
                    model_fn, train, num_rounds=args.rounds,
                    clients_per_round=setting["clients_per_round"],
                    local_epochs=setting["local_epochs"], batch_size=10,
                    client_learning_rate=0.01, seed=0, progress=False, engine=engine,
                    client_algorithm=make())
                seconds[engine] = float(np.median(history.seconds_per_round[1:]))
                weights[engine] = history.final_weights
            diff = max(float(np.max(np.abs(a - b)))
                       for a, b in zip(weights["fast"], weights["loop"], strict=True))
            print(f"{name:32s} {seconds['fast']:12.3f} {seconds['loop']:12.3f} "
                  f"{seconds['loop'] / seconds['fast']:9.2f} {diff:12.2e}", flush=True)

if __name__ == "__main__":
    main()
