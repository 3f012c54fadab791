"""Reproduce the MNIST 2NN rows of McMahan et al. 2017: rounds of FedAvg to reach 97% accuracy.

McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized Data",
Table 1 (effect of the client fraction C; 2NN with E = 1), row B = 10, column C = 0.1: FedAvg
needs 87 rounds to reach 97% test accuracy on IID clients and 664 rounds on pathological non-IID
clients (2 label shards each). The setting here is the same: the 2NN (two hidden layers of 200
ReLU units, 199,210 parameters), the real MNIST training set split over K = 100 clients of 600
examples, C = 0.1 (10 clients per round), E = 1 local epoch, B = 10, plain SGD.

The paper tuned the learning rate for each setting; this script does the same over a small grid
(``--lrs``, by default 0.05, 0.1, 0.2 and 0.4, a factor of 2 apart), runs every rate for
``--max-rounds`` rounds (by default 200 for IID and 800 for non-IID), and reports, per split, the
rate that reaches the target in the fewest rounds. "Rounds to 97%" is the first round after which
the global model's accuracy on the 10,000 MNIST test images is >= 0.97 (the paper plots the best
accuracy so far, so the first crossing is the same number).

It prints a table and writes every run (with its per-round test accuracy) to one JSON file per
split, ``benchmarks/results/reproduce_mcmahan_2nn_{iid,noniid}.json``, updated after every run.
It never asserts: timings depend on the machine and on its load.

Usage (from the repository root)::

    .venv/bin/python benchmarks/reproduce_mcmahan_2nn.py                     # both splits
    .venv/bin/python benchmarks/reproduce_mcmahan_2nn.py --split iid --max-rounds 20 --lrs 0.1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fl_helpers import data, models, reproducibility, training

#: Rounds to 97% in McMahan et al. 2017, Table 1 (2NN, E = 1, B = 10, C = 0.1).
PAPER_ROUNDS = {"iid": 87, "noniid": 664}
#: Default --max-rounds per split: enough headroom over the paper's numbers.
DEFAULT_MAX_ROUNDS = {"iid": 200, "noniid": 800}
SPLIT_NAMES = {"iid": "IID", "noniid": "non-IID (2 shards)"}
NUM_CLIENTS = 100
CLIENTS_PER_ROUND = 10  # C = 0.1
LOCAL_EPOCHS = 1
BATCH_SIZE = 10
TARGET = 0.97
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"


def result_path(output_dir: Path, split: str) -> Path:
    """Where the results of one split are stored: one JSON file per split."""
    return Path(output_dir) / f"reproduce_mcmahan_2nn_{split}.json"


def make_clients(split: str, seed: int, x_train: np.ndarray,
                 y_train: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """100 clients of 600 training examples each, IID or 2 label shards of 300 per client."""
    rng = np.random.default_rng([seed, 0 if split == "iid" else 1])
    if split == "iid":
        parts = data.partition_iid(len(y_train), NUM_CLIENTS, rng=rng)
    else:
        parts = data.partition_shards(y_train, NUM_CLIENTS, shards_per_client=2, rng=rng)
    return data.client_datasets(x_train, y_train, parts)


def rounds_to_target(accuracy: np.ndarray, target: float) -> int | None:
    """First round (1-based) whose test accuracy is >= target, or None if none is."""
    hits = np.flatnonzero(np.asarray(accuracy) >= target)
    return int(hits[0]) + 1 if hits.size else None


def best_run(runs: list[dict]) -> dict | None:
    """The run that reaches the target in the fewest rounds; else the highest accuracy.

    Runs that diverged before finishing (no accuracy recorded) are never selected; ``None`` if
    every run diverged.
    """
    finished = [r for r in runs if r["max_accuracy"] is not None]
    reached = [r for r in finished if r["rounds_to_target"] is not None]
    if reached:
        return min(reached, key=lambda r: (r["rounds_to_target"], -r["max_accuracy"]))
    return max(finished, key=lambda r: r["max_accuracy"]) if finished else None


def check_grid_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Turns ``--lrs`` into floats and checks it and ``--max-rounds`` (shared with the CNN run)."""
    try:
        args.lrs = [float(s) for s in args.lrs.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--lrs must be comma-separated numbers, got {args.lrs!r}")
    if not args.lrs or any(not np.isfinite(lr) or lr <= 0 for lr in args.lrs):
        parser.error(f"--lrs must hold finite numbers > 0, got {args.lrs}")
    if args.max_rounds is not None and args.max_rounds < 1:
        parser.error(f"--max-rounds must be >= 1, got {args.max_rounds}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["iid", "noniid", "both"], default="both")
    parser.add_argument("--max-rounds", type=int, default=None,
                        help=f"rounds per run (default {DEFAULT_MAX_ROUNDS})")
    parser.add_argument("--lrs", default="0.05,0.1,0.2,0.4",
                        help="comma-separated client learning rates to try (default %(default)s)")
    parser.add_argument("--engine", default=None,
                        help="run_fedavg engine (default: run_fedavg's own default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="folder for the JSON results, one file per split "
                             "(default %(default)s)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per run")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the runs already stored for this split with the same settings "
                             "and only run the learning rates that are missing (to widen a grid)")
    args = parser.parse_args(argv)
    check_grid_args(parser, args)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    return args


def _fmt_rounds(rounds: int | None, max_rounds: int) -> str:
    return str(rounds) if rounds is not None else f"> {max_rounds}"


def print_table(all_results: dict) -> None:
    """The rounds-to-target table of every run, the selected learning rate marked with *."""
    print()
    print(f"McMahan et al. 2017, Table 1 (2NN, E=1, B=10, C=0.1): rounds to {TARGET:.0%} "
          "test accuracy")
    header = (f"{'split':<20} {'lr':>6} {'rounds':>8} {'paper':>6} {'max acc':>8} "
              f"{'final acc':>9} {'wall s':>8} {'s/round':>8}")
    print(header)
    print("-" * len(header))
    for split, results in all_results.items():
        for run in sorted(results["runs"], key=lambda r: r["client_learning_rate"]):
            if run["max_accuracy"] is None:
                print(f"{SPLIT_NAMES[split]:<20} {run['client_learning_rate']:>6g} "
                      f"{'diverged: the weights became NaN/inf, the run stopped':>50}")
                continue
            mark = " *" if run["client_learning_rate"] == results["selected_lr"] else ""
            print(f"{SPLIT_NAMES[split]:<20} {run['client_learning_rate']:>6g} "
                  f"{_fmt_rounds(run['rounds_to_target'], run['num_rounds']):>8} "
                  f"{PAPER_ROUNDS[split]:>6} {run['max_accuracy']:>8.4f} "
                  f"{run['final_accuracy']:>9.4f} {run['wall_seconds']:>8.1f} "
                  f"{run['wall_seconds'] / run['num_rounds']:>8.3f}{mark}"
                  f"{'  (loss became NaN)' if run.get('diverged') else ''}")
    print("* the learning rate selected for the split: fewest rounds to the target (or the highest "
          "accuracy if no rate reached it)")
    for split, results in all_results.items():
        machine = results["machine"]
        print(f"{SPLIT_NAMES[split]}: engine {results['engine']}, {machine['cpu_count']} CPUs "
              f"({machine['processor'] or machine['machine']})")
    print("Wall times include evaluating on the 10,000 test images after every round; they "
          "depend on the machine and its load.")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    splits = ["iid", "noniid"] if args.split == "both" else [args.split]
    reproducibility.seed_everything(args.seed)
    (x_train, y_train), test_data = data.load_mnist()
    engine_kwargs = {} if args.engine is None else {"engine": args.engine}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "machine": platform.machine(),
               "processor": platform.processor(), "cpu_count": os.cpu_count(),
               "python": sys.version.split()[0]}

    all_results = {}
    for split in splits:
        max_rounds = args.max_rounds or DEFAULT_MAX_ROUNDS[split]
        clients = make_clients(split, args.seed, x_train, y_train)
        results = {
            "split": split,
            "config": {
                "model": "2NN (McMahan et al. 2017, Section 3), fl_helpers.models.make_2nn",
                "num_clients": NUM_CLIENTS, "examples_per_client": len(y_train) // NUM_CLIENTS,
                "clients_per_round": CLIENTS_PER_ROUND, "local_epochs": LOCAL_EPOCHS,
                "batch_size": BATCH_SIZE, "target": TARGET, "learning_rates": args.lrs,
                "max_rounds": max_rounds, "seed": args.seed,
            },
            "paper_rounds": PAPER_ROUNDS[split],
            "paper_source": "McMahan et al. 2017, Table 1, 2NN with E=1, row B=10, column C=0.1",
            "engine": None,
            "machine": machine,
            "git_commit": git_commit(),
            "started_utc": now_utc(),
            "complete": False,
            "selected_lr": None,
            "runs": [],
        }
        path = result_path(args.output_dir, split)
        if args.reuse and path.exists():
            stored = json.loads(path.read_text())
            same = {key: value for key, value in stored["config"].items()
                    if key != "learning_rates"} == {
                key: value for key, value in results["config"].items()
                if key != "learning_rates"}
            if same:
                results["runs"] = [dict(r, engine=r.get("engine", stored.get("engine")))
                                   for r in stored["runs"] if r["client_learning_rate"] in args.lrs]
                results["started_utc"] = stored.get("started_utc", results["started_utc"])
                print(f"reusing {len(results['runs'])} stored runs from {path}")
            else:
                print(f"not reusing {path}: it was made with other settings")
        done = {r["client_learning_rate"] for r in results["runs"]}
        for lr in [lr for lr in args.lrs if lr not in done]:
            start = time.perf_counter()
            try:
                history = training.run_fedavg(
                    models.make_2nn, clients, num_rounds=max_rounds,
                    clients_per_round=CLIENTS_PER_ROUND, local_epochs=LOCAL_EPOCHS,
                    batch_size=BATCH_SIZE, client_learning_rate=lr, test_data=test_data,
                    seed=args.seed, progress=args.progress, **engine_kwargs)
            except ValueError as error:
                if "diverge" not in str(error):
                    raise
                # The weights became NaN/inf and run_fedavg stopped: a too large learning rate.
                run = {"client_learning_rate": lr, "num_rounds": max_rounds,
                       "engine": args.engine, "rounds_to_target": None,
                       "max_accuracy": None, "final_accuracy": None, "diverged": True,
                       "error": str(error), "wall_seconds": round(time.perf_counter() - start, 2),
                       "test_accuracy": []}
                results["runs"].append(run)
                summarise(results)
                path.write_text(json.dumps(results, indent=1) + "\n")
                print(f"{SPLIT_NAMES[split]}, lr={lr:g}: diverged ({error})", flush=True)
                continue
            wall = time.perf_counter() - start
            accuracy = history.test_accuracy
            run = {
                "client_learning_rate": lr, "num_rounds": max_rounds,
                "engine": history.engine.value,
                "rounds_to_target": rounds_to_target(accuracy, TARGET),
                "max_accuracy": float(accuracy.max()), "final_accuracy": float(accuracy[-1]),
                # NaN/inf test loss: the training blew up (a too large learning rate).
                "diverged": bool(not np.isfinite(history.test_loss).all()),
                "wall_seconds": round(wall, 2),
                "training_seconds": round(history.total_seconds, 2),
                "test_accuracy": [round(float(a), 4) for a in accuracy],
            }
            results["runs"].append(run)
            summarise(results)
            path.write_text(json.dumps(results, indent=1) + "\n")  # after every run
            print(f"{SPLIT_NAMES[split]}, lr={lr:g}: rounds to {TARGET:.0%} = "
                  f"{_fmt_rounds(run['rounds_to_target'], max_rounds)} (paper "
                  f"{PAPER_ROUNDS[split]}), max accuracy {run['max_accuracy']:.4f}, "
                  f"{wall:.1f} s", flush=True)
        summarise(results)
        results["complete"] = True
        results["finished_utc"] = now_utc()
        path.write_text(json.dumps(results, indent=1) + "\n")
        all_results[split] = results
        print(f"results written to {path}")
    print_table(all_results)
    return all_results


def summarise(results: dict) -> None:
    """Sorts the runs by learning rate and fills in the selected rate and the engines used."""
    results["runs"].sort(key=lambda r: r["client_learning_rate"])
    best = best_run(results["runs"])
    results["selected_lr"] = best["client_learning_rate"] if best else None
    results["engine"] = ", ".join(sorted({r["engine"] for r in results["runs"] if r["engine"]}))


def git_commit() -> str | None:
    """The repository's HEAD commit (the code measured), or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":
    main()
