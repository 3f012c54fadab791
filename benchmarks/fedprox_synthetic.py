"""The FedProx paper's systems-heterogeneity experiment on Synthetic(1, 1), with SCAFFOLD beside.

Li et al. 2020, "Federated Optimization in Heterogeneous Networks" (MLSys), Section 5.2 and
Figure 1: Synthetic(1, 1) (30 devices, :func:`fl_helpers.heterogeneity.synthetic_federation`),
multinomial logistic regression, 10 devices per round, E = 20 local epochs, B = 10, learning
rate 0.01; 0 %, 50 % and 90 % of each round's devices are stragglers that manage only x ~ U{1..E}
epochs. Methods: FedAvg (stragglers dropped), FedProx with mu = 0 (stragglers kept), FedProx
with mu = 1 (kept), and SCAFFOLD (stragglers dropped: its control update assumes the full K
steps; the straggler share only removes clients). Every run trains on the one loop
(:func:`fl_helpers.training.run_fedavg`, fast engine) and records the training loss on all
devices' training data and the accuracy on their pooled held-out data after every round.

The paper's qualitative result at 90 % stragglers: FedAvg (dropping them) becomes unstable;
FedProx with mu = 1, keeping their partial work, converges steadily. Instability shows in the
spread of the training loss over the last 100 rounds (its maximum and standard deviation, stored
for every run), not in the last round's value: an unstable curve can end on one of its low points.

Clients are sampled uniformly (10 of 30 a round) and their models averaged with weights n_k, as
the authors' public code does (``flearn/trainers/fedbase.py`` of litian96/FedProx: its
``select_clients`` draws uniformly, its ``aggregate`` weights by sample count).

Writes ``benchmarks/results/fedprox_synthetic.json`` (per straggler share and method: the
training-loss and accuracy curves, their final values, the last-100-round spread, seconds).
It never asserts.

Usage (from the repository root; about 10 minutes with 200 rounds on a 2-core CPU)::

    .venv/bin/python benchmarks/fedprox_synthetic.py [--rounds 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from fl_helpers import heterogeneity, models, paths, personalisation, training  # noqa: E402,E501

STRAGGLERS = (0.0, 0.5, 0.9)
SETTING = {"clients_per_round": 10, "local_epochs": 20, "batch_size": 10,
           "client_learning_rate": 0.01}


def methods(fraction: float, seed: int) -> dict[str, training.ClientAlgorithm]:
    """The compared client algorithms at one straggler share."""
    return {
        "FedAvg": heterogeneity.FedProx(0.0, straggler_fraction=fraction, drop_stragglers=True,
                                        seed=seed),
        "FedProx mu=0": heterogeneity.FedProx(0.0, straggler_fraction=fraction, seed=seed),
        "FedProx mu=1": heterogeneity.FedProx(1.0, straggler_fraction=fraction, seed=seed),
        "SCAFFOLD": _DroppingScaffold(fraction, seed),
    }


class _DroppingScaffold(heterogeneity.SCAFFOLD):
    """SCAFFOLD whose stragglers (the same draw as FedProx's) send nothing."""

    def __init__(self, fraction: float, seed: int) -> None:
        super().__init__()
        self.fraction, self.seed = fraction, seed

    def train_round(self, trainer, weights, sampled, round_index):  # type: ignore[no-untyped-def]
        late = heterogeneity.stragglers(len(sampled), straggler_fraction=self.fraction,
                                        seed=self.seed, round_index=round_index)
        kept = np.asarray(sampled, dtype=np.int64)[~late]
        results = super().train_round(trainer, weights, kept, round_index)
        results.clients = kept
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", default="auto", choices=("auto", "fast", "loop"))
    parser.add_argument("--output", default=None, help="JSON path (default: the results dir)")
    args = parser.parse_args()
    fed = heterogeneity.synthetic_federation(1.0, 1.0, seed=args.seed)
    train_x = np.concatenate([x for x, _ in fed.train])
    train_y = np.concatenate([y for _, y in fed.train])

    def model_fn():
        return models.make_mlp((), input_shape=(heterogeneity.SYNTHETIC_FEATURES,),
                               seed=args.seed)

    results: dict[str, dict[str, dict[str, object]]] = {}
    for fraction in STRAGGLERS:
        key = f"{round(100 * fraction)}% stragglers"
        results[key] = {}
        for name, algorithm in methods(fraction, args.seed).items():
            start = time.perf_counter()
            history = training.run_fedavg(
                model_fn, fed.train, num_rounds=args.rounds, **SETTING,
                test_data=(train_x, train_y), seed=args.seed, progress=False, engine=args.engine,
                client_algorithm=algorithm)
            # The final model on every device's own held-out data.
            per_client = personalisation.evaluate_per_client(
                model_fn, fed.test, weights=history.final_weights).summary()
            held_out_accuracy = per_client["pooled"]
            loss = history.test_loss
            results[key][name] = {
                "training_loss": [round(float(v), 5) for v in loss],
                "training_accuracy": [round(float(v), 5) for v in history.test_accuracy],
                "final_training_loss": float(loss[-1]),
                "min_training_loss": float(np.min(loss)),
                "last_100_max_training_loss": float(np.max(loss[-100:])),
                "last_100_std_training_loss": float(np.std(loss[-100:])),
                "final_held_out_accuracy": float(held_out_accuracy),
                "final_per_client_accuracy": {k: round(v, 4) for k, v in per_client.items()},
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(f"{key:16s} {name:14s} final training loss {loss[-1]:.4f} (min "
                  f"{np.min(loss):.4f}), held-out accuracy {held_out_accuracy:.4f}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    out = (paths.results_dir() / "fedprox_synthetic.json" if args.output is None
           else Path(args.output))
    out.write_text(json.dumps({
        "description": __doc__.splitlines()[0],
        "federation": fed.description,
        "setting": {**SETTING, "num_rounds": args.rounds, "seed": args.seed,
                    "engine": args.engine,
                    "model": "softmax regression (models.make_mlp((), input_shape=(60,)))",
                    "straggler_epochs": "x ~ U{1..E} (heterogeneity.straggler_epochs)"},
        "date": datetime.date.today().isoformat(),
        "results": results,
    }, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
