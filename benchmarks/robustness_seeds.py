"""The spread over seeds of the robustness grid's points that notebook 07's text makes claims on.

``benchmarks/robustness_grid.py`` runs every attack against every defence once (seed 0). The
notebook's statements rest on a few of those points; this script reruns them with seeds 0-4 so
that the notebook can show how far one seed's figure is from another's. The seed picks the
malicious clients (:func:`fl_helpers.robust.malicious_ids`), every client's batch order and
DP-FedAvg's reproducible noise; the data split is the grid's (split seed 0), and so is
everything else (:data:`robustness_grid.SETTING`).

It writes ``benchmarks/results/robustness_seeds.json``. It never asserts.

Usage (from the repository root, about 5-10 minutes on a 2-core CPU)::

    .venv/bin/python benchmarks/robustness_seeds.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from fl_helpers import data, robust_widgets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import robustness_grid  # noqa: E402  (the grid's setting and federation, not a copy)

RESULTS = Path(__file__).resolve().parent / "results" / "robustness_seeds.json"
SEEDS = (0, 1, 2, 3, 4)
#: (split, attack, fraction, defence): the grid points the notebook's text makes claims on.
POINTS = (
    ("iid", "none", 0.0, "FedAvg"),
    ("iid", "sign flip", 0.2, "FedAvg"),
    ("iid", "sign flip", 0.2, "median"),
    ("iid", "backdoor", 0.2, "FedAvg"),
    ("iid", "backdoor", 0.2, "norm bound"),
    ("iid", "backdoor", 0.2, "median"),
    ("iid", "backdoor", 0.1, "norm bound"),
    ("iid", "backdoor", 0.3, "norm bound"),
    ("dirichlet", "none", 0.0, "median"),
    ("dirichlet", "sign flip", 0.3, "median"),
    ("dirichlet", "sign flip", 0.3, "Multi-Krum"),
    ("dirichlet", "none", 0.0, "FedAvg"),
    ("dirichlet", "none", 0.0, "Krum"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    mnist = data.load_mnist()
    setting = robustness_grid.SETTING
    options = {k: setting[k] for k in ("num_rounds", "local_epochs", "batch_size",
                                       "client_learning_rate")}
    federations = {split: robustness_grid.federation(split, mnist)
                   for split in {p[0] for p in POINTS}}
    runs = []
    start = time.perf_counter()
    for split, attack, fraction, defence in POINTS:
        clients, test = federations[split]
        for seed in SEEDS:
            result = robust_widgets.attack_experiment(
                clients, test, attack=attack, fraction=fraction, defence=defence, seed=seed,
                **options)
            runs.append({"split": split, "attack": attack, "fraction": fraction,
                         "defence": defence, "seed": seed,
                         "accuracy": round(result.final_accuracy, 4),
                         "backdoor_success": round(result.backdoor_success, 4)})
            print(f"{split:9} {attack:10} {fraction:4.0%} {defence:11} seed {seed}: "
                  f"acc {runs[-1]['accuracy']:.4f} backdoor {runs[-1]['backdoor_success']:.4f}",
                  flush=True)
    stored = {"setting": setting, "seeds": list(SEEDS), "runs": runs,
              "seconds": round(time.perf_counter() - start),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(stored, indent=1, allow_nan=False) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
