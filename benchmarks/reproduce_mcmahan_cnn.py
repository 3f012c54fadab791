"""Reproduce the MNIST CNN rows of McMahan et al. 2017: rounds of FedAvg to reach 99% accuracy.

McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized Data",
Table 2 (number of communication rounds to reach a target accuracy; MNIST CNN, 99%), FedAvg with
E = 5, B = 10 and C = 0.1: 20 rounds on IID clients and 229 on pathological non-IID clients (two
label shards of 300 examples each). The setting here is the same: the CNN of Section 3
(``fl_helpers.models.make_cnn``, 1,663,370 parameters), K = 100 clients of 600 real MNIST
training examples, 10 clients per round, E = 5, B = 10, plain SGD, trained on the fast engine
(its convolutional path, ``fl_helpers.engine``).

As for the 2NN (``reproduce_mcmahan_2nn.py``, whose helpers this script reuses), the learning rate
is chosen from a small grid (``--lrs``) as the one that reaches 99% in the fewest rounds, and
"rounds to 99%" is the first round after which the global model's accuracy on the 10,000 MNIST
test images is >= 0.99. A CNN round costs about 2.2 TFLOP (30,000 example passes of 74 MFLOP),
about a minute on the course's 2-core CPU, so the default round budgets (60 IID, 300 non-IID)
take hours there: ``--max-rounds`` shortens them, and a run that stops before the target is
stored with its budget and the best accuracy it reached (``rounds_to_target`` null, the budget in
``num_rounds``), never as a reproduction.

Writes ``benchmarks/results/reproduce_mcmahan_cnn_{iid,noniid}.json`` (same format as the 2NN's),
updated after every run. Never asserts.

    .venv/bin/python benchmarks/reproduce_mcmahan_cnn.py --split iid --lrs 0.1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reproduce_mcmahan_2nn as twonn  # noqa: E402  (the shared split and summary helpers)

from fl_helpers import data, models, reproducibility, training  # noqa: E402

#: Rounds to 99% in McMahan et al. 2017, Table 2 (CNN, E = 5, B = 10, C = 0.1).
PAPER_ROUNDS = {"iid": 20, "noniid": 229}
DEFAULT_MAX_ROUNDS = {"iid": 60, "noniid": 300}
LOCAL_EPOCHS = 5
BATCH_SIZE = 10
TARGET = 0.99


def result_path(output_dir: Path, split: str) -> Path:
    return Path(output_dir) / f"reproduce_mcmahan_cnn_{split}.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["iid", "noniid", "both"], default="iid")
    parser.add_argument("--max-rounds", type=int, default=None,
                        help=f"rounds per run (default {DEFAULT_MAX_ROUNDS})")
    parser.add_argument("--lrs", default="0.05,0.1",
                        help="comma-separated client learning rates (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=twonn.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--save-every", type=int, default=5,
                        help="store a run's accuracies so far every this many rounds, so that an "
                             "interrupted run leaves its partial curve (default %(default)s)")
    parser.add_argument("--stop-at-target", action="store_true",
                        help="end a run at the first round that reaches the target")
    args = parser.parse_args(argv)
    twonn.check_grid_args(parser, args)
    return args


def partial_saver(path: Path, results: dict, lr: float, max_rounds: int, so_far: list[float],
                  start: float, *, save_every: int, stop_at_target: bool):
    """A ``run_fedavg`` callback that stores the run's curve so far every ``save_every`` rounds
    (marked ``in_progress``), so that an interrupted run leaves what it reached; it returns True
    (end the run) at the target if ``stop_at_target``."""
    def save(figures: dict) -> bool:
        so_far.append(float(figures["test_accuracy"]))
        if len(so_far) % save_every == 0:
            partial = {"client_learning_rate": lr, "num_rounds": max_rounds,
                       "in_progress": True, "rounds_run": len(so_far),
                       "rounds_to_target": twonn.rounds_to_target(np.array(so_far), TARGET),
                       "max_accuracy": max(so_far),
                       "wall_seconds": round(time.perf_counter() - start, 2),
                       "load_average": list(os.getloadavg()),
                       "test_accuracy": [round(a, 4) for a in so_far]}
            path.write_text(json.dumps(dict(results, runs=[*results["runs"], partial]),
                                       indent=1) + "\n")
        return stop_at_target and so_far[-1] >= TARGET

    return save


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    reproducibility.seed_everything(args.seed)
    (x_train, y_train), test_data = data.load_mnist()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    all_results = {}
    for split in ["iid", "noniid"] if args.split == "both" else [args.split]:
        max_rounds = args.max_rounds or DEFAULT_MAX_ROUNDS[split]
        clients = twonn.make_clients(split, args.seed, x_train, y_train)
        results = {
            "split": split,
            "config": {"model": "CNN (McMahan et al. 2017, Section 3), fl_helpers.models.make_cnn",
                       "num_clients": twonn.NUM_CLIENTS, "examples_per_client": 600,
                       "clients_per_round": twonn.CLIENTS_PER_ROUND,
                       "local_epochs": LOCAL_EPOCHS, "batch_size": BATCH_SIZE,
                       "target": TARGET, "learning_rates": args.lrs, "max_rounds": max_rounds,
                       "seed": args.seed},
            "paper_rounds": PAPER_ROUNDS[split],
            "paper_source": "McMahan et al. 2017, Table 2, CNN, FedAvg E=5, B=10, C=0.1",
            "engine": None, "git_commit": twonn.git_commit(), "started_utc": twonn.now_utc(),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "python": sys.version.split()[0]},
            "complete": False, "selected_lr": None, "runs": [],
        }
        path = result_path(args.output_dir, split)
        for lr in args.lrs:
            start = time.perf_counter()
            so_far: list[float] = []
            save_partial = partial_saver(path, results, lr, max_rounds, so_far, start,
                                         save_every=args.save_every,
                                         stop_at_target=args.stop_at_target)
            history = training.run_fedavg(
                models.make_cnn, clients, num_rounds=max_rounds,
                clients_per_round=twonn.CLIENTS_PER_ROUND, local_epochs=LOCAL_EPOCHS,
                batch_size=BATCH_SIZE, client_learning_rate=lr, test_data=test_data,
                seed=args.seed, progress=args.progress, callback=save_partial)
            accuracy = history.test_accuracy
            run = {"client_learning_rate": lr, "num_rounds": max_rounds,
                   "rounds_run": len(accuracy),
                   "engine": history.engine.value,
                   "rounds_to_target": twonn.rounds_to_target(accuracy, TARGET),
                   "max_accuracy": float(accuracy.max()), "final_accuracy": float(accuracy[-1]),
                   "diverged": bool(not np.isfinite(history.test_loss).all()),
                   "wall_seconds": round(time.perf_counter() - start, 2),
                   "training_seconds": round(history.total_seconds, 2),
                   "load_average": list(os.getloadavg()),
                   "test_accuracy": [round(float(a), 4) for a in accuracy]}
            results["runs"].append(run)
            twonn.summarise(results)
            path.write_text(json.dumps(results, indent=1) + "\n")
            reached = run["rounds_to_target"]
            print(f"{split}, lr={lr:g}: rounds to {TARGET:.0%} = "
                  f"{reached if reached is not None else f'> {max_rounds} (budget)'} (paper "
                  f"{PAPER_ROUNDS[split]}), max accuracy {run['max_accuracy']:.4f}, "
                  f"{run['wall_seconds']:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
        results["complete"] = True
        results["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        path.write_text(json.dumps(results, indent=1) + "\n")
        all_results[split] = results
    return all_results


if __name__ == "__main__":
    main()
