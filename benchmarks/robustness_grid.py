"""Poisoning attacks against robust aggregation rules: accuracy, backdoor success, cost, time.

Notebook 07 (``notebooks/07_robustness.ipynb``) reads the stored results of this script and
reruns a few of its points live.

The setting (:data:`SETTING`): the first 10,000 MNIST training images split among N = 20 clients
(IID, or Dirichlet(0.5) label skew; split seed 0), softmax regression, every client in every
round (so the share of attackers per round is exactly f/n), T = 15 rounds of E = 1 local epoch
of SGD with B = 50 and learning rate 0.1. A share f/n in {0, 10 %, 20 %, 30 %} of the clients
is malicious and runs one attack of :data:`fl_helpers.robust_widgets.ATTACKS`; the server uses
one defence of :data:`fl_helpers.robust_widgets.DEFENCES` with the knobs of
:class:`fl_helpers.robust_widgets.Setting` (the robust rules are set up for 30 % attackers:
trimmed mean beta = 0.3, Krum f = 6, Multi-Krum keeps 14; norm bound and DP-FedAvg clip to
C = 0.5, DP-FedAvg adds noise z = 0.3 from a reproducible seed: a robustness baseline, not a
private run). Measured on the 10,000 test images: the final main-task accuracy, and the
backdoor's success rate (triggered test images not of the target label 0 that the model labels 0).

With no attacker it also times every defence: the median seconds per round of the run
(training + aggregation), and the aggregation alone on 20 honest updates (median of 20 calls).

It prints the tables and writes ``benchmarks/results/robustness_grid.json``. It never asserts;
timings depend on the machine and its load (read them side by side, from one run).

Usage (from the repository root, about 10-15 minutes on a 2-core CPU)::

    .venv/bin/python benchmarks/robustness_grid.py
    .venv/bin/python benchmarks/robustness_grid.py --splits iid --fractions 0,0.2   # a part
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fl_helpers import aggregation, data, engine, models, robust_widgets, schedule

RESULTS = Path(__file__).resolve().parent / "results" / "robustness_grid.json"

SETTING = {
    "num_examples": 10_000,
    "num_clients": 20,
    "alpha": 0.5,
    "split_seed": 0,
    "model": "softmax_regression",
    "num_rounds": 15,
    "local_epochs": 1,
    "batch_size": 50,
    "client_learning_rate": 0.1,
    "seed": 0,
}
FRACTIONS = (0.0, 0.1, 0.2, 0.3)
SPLITS = ("iid", "dirichlet")


def federation(split: str, mnist=None) -> tuple[list, tuple]:
    """The benchmark's clients (``split`` = ``"iid"`` or ``"dirichlet"``) and test data."""
    (x, y), test = mnist or data.load_mnist()
    n, num_clients = SETTING["num_examples"], SETTING["num_clients"]
    rng = np.random.default_rng(SETTING["split_seed"])
    parts = (data.partition_iid(n, num_clients, rng=rng) if split == "iid" else
             data.partition_dirichlet(y[:n], num_clients, alpha=SETTING["alpha"], rng=rng))
    return data.client_datasets(x[:n], y[:n], parts), test


def aggregation_seconds(clients) -> dict[str, float]:
    """Median seconds of one ``aggregate`` call of each defence on 20 honest updates."""
    model = models.make_softmax_regression()
    fast = engine.MultiClientEngine(model, clients, local_epochs=1,
                                    batch_size=SETTING["batch_size"],
                                    client_learning_rate=SETTING["client_learning_rate"], seed=0)
    results = fast.train(model.get_weights(), np.arange(len(clients)), 0)
    context = aggregation.RoundContext(
        round_index=0, num_clients=len(clients),
        randomness=schedule.PrivateRandomness.reproducible(0, warn=False))
    setting = robust_widgets.Setting()
    out = {}
    for name in robust_widgets.DEFENCES:
        rule = robust_widgets.make_defence(name, num_clients=len(clients), setting=setting)
        if rule is None:
            rule = aggregation.DPFedAvg(clipping_norm=setting.clipping_norm,
                                        noise_multiplier=setting.noise_multiplier,
                                        expected_clients=len(clients))
        times = []
        for _ in range(20):
            start = time.perf_counter()
            rule.aggregate(results.deltas, results.num_examples, context)
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--fractions", default=",".join(f"{f:g}" for f in FRACTIONS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    splits = [s for s in args.splits.split(",") if s]
    fractions = [float(f) for f in args.fractions.split(",") if f]
    mnist = data.load_mnist()
    stored = json.loads(args.output.read_text()) if args.output.exists() else {"runs": []}
    stored["setting"] = SETTING
    stored["knobs"] = dataclasses.asdict(robust_widgets.Setting())
    stored["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                         "python": sys.version.split()[0]}
    stored.setdefault("aggregation_seconds", {})
    training_options = {k: SETTING[k] for k in ("num_rounds", "local_epochs", "batch_size",
                                                "client_learning_rate", "seed")}
    for split in splits:
        clients, test = federation(split, mnist)
        stored["aggregation_seconds"][split] = aggregation_seconds(clients)
        start = time.perf_counter()
        for fraction in fractions:
            attacks = ("none",) if fraction == 0 else robust_widgets.ATTACKS[1:]
            for attack in attacks:
                for defence in robust_widgets.DEFENCES:
                    result = robust_widgets.attack_experiment(
                        clients, test, attack=attack, fraction=fraction, defence=defence,
                        **training_options)
                    record = {"split": split, "attack": attack, "fraction": fraction,
                              "defence": defence,
                              "accuracy": round(result.final_accuracy, 4),
                              "backdoor_success": round(result.backdoor_success, 4),
                              "seconds_per_round": round(result.seconds_per_round, 4),
                              "accuracy_per_round": [round(float(a), 4)
                                                     for a in result.accuracy]}
                    stored["runs"] = [r for r in stored["runs"] if (
                        r["split"], r["attack"], r["fraction"], r["defence"]) != (
                        split, attack, fraction, defence)] + [record]
                    print(f"{split:9} {attack:14} {fraction:4.0%} {defence:12} "
                          f"acc {record['accuracy']:.3f}  backdoor "
                          f"{record['backdoor_success']:.3f}  "
                          f"{record['seconds_per_round']:.3f} s/round", flush=True)
            stored["date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC")
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(stored, indent=1, allow_nan=False) + "\n")
        print(f"{split}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
