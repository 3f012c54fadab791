"""The price of privacy in DP-FedAvg: final accuracy against epsilon, C and the number of clients.

Notebook 04 (``notebooks/04_multi_client_experiment.ipynb``) reads the stored results of this
script; it reruns two of its points live (the non-private run and epsilon = 2, seed 0) and checks
that they agree with what is stored here.

The setting is the notebook's: MNIST's 60,000 training images split among N = 1,000 clients with
Dirichlet(0.5) label skew (split seed 0), softmax regression, Poisson client sampling with
q = 0.1 (100 clients per round on average), T = 30 rounds, E = 1 local epoch of SGD with B = 10
and learning rate 0.1, server learning rate 1, updates clipped to C = 0.5, delta = 1e-5. For a
target epsilon the noise multiplier z is the smallest for which the accountant
(:func:`fl_helpers.accounting.noise_multiplier_for_epsilon`) keeps 30 rounds within the budget.
The noise is the course's default, exact: the clipped updates on an integer grid, summed exactly,
plus exact discrete Gaussian noise, calibrated and accounted by the ``"discrete"`` accountant.
Noise and client sampling come from a secret source (the course's default), so a rerun gives other
numbers within the spread over seeds; the seed fixes the initial weights and the local batches
only.

Sweeps (each repeated with training seeds 0, 1 and 2):

* ``privacy_utility``: target epsilon in {0.5, 1, 2, 4, 8, inf} (inf: no clipping, no noise).
* ``clipping``: C in {0.1, 0.2, 0.5, 1, 2} at epsilon = 2, with the share of updates clipped.
* ``clients``: the first N in {100, 300, 1000} clients of the federation (all the same kind of
  client, about 60 examples each), q = 0.1, at epsilon = 2 and without privacy.
* ``local``: local DP at epsilon in {2, 8} (each client noises its own clipped update, see
  :func:`fl_helpers.experiment.run_experiment` with ``noise_placement="local"``), against the
  central runs of ``privacy_utility``.
* ``float_noise``: epsilon in {1, 2, 4} with float32 Gaussian noise calibrated by the PLD
  accountant, against the exact runs of ``privacy_utility``: what exactness costs in noise and
  accuracy. Float noise is NOT private (a floating-point attack breaks it, see notebook 04); these
  runs are the control, never a release.

The update norms and the share clipped are recorded with ``diagnostics=True``: they are not
covered by epsilon, which is fine for a benchmark that publishes no model.

It prints one table per sweep (mean and standard deviation over the seeds) and writes every run
to ``benchmarks/results/privacy_utility_sweep.json`` (updated after each sweep). It never asserts;
the timings depend on the machine and its load.

Usage (from the repository root)::

    .venv/bin/python benchmarks/privacy_utility_sweep.py                       # all sweeps
    .venv/bin/python benchmarks/privacy_utility_sweep.py --sweeps clipping --seeds 0
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fl_helpers import data, experiment, reporting, reproducibility

RESULTS = Path(__file__).resolve().parent / "results" / "privacy_utility_sweep.json"

#: The notebook's setting (see the module docstring).
SETTING = {
    "num_clients": 1000,
    "split": "dirichlet",
    "alpha": 0.5,
    "split_seed": 0,
    "model": "softmax_regression",
    "sampling_probability": 0.1,
    "num_rounds": 30,
    "local_epochs": 1,
    "batch_size": 10,
    "client_learning_rate": 0.1,
    "server_learning_rate": 1.0,
    "clipping_norm": 0.5,
    "target_delta": 1e-5,
}
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
CLIPPING_NORMS = (0.1, 0.2, 0.5, 1.0, 2.0)
CLIENT_COUNTS = (100, 300, 1000)
LOCAL_EPSILONS = (2.0, 8.0)
FLOAT_EPSILONS = (1.0, 2.0, 4.0)
SWEEPS = ("privacy_utility", "clipping", "clients", "local", "float_noise")


def _run(clients, test_data, *, target_epsilon: float, seed: int, clipping_norm: float,
         noise_placement: str = "central", noise: str = "exact") -> dict:
    """One run in the notebook's setting; returns its JSON record."""
    kwargs = {key: SETTING[key] for key in (
        "num_rounds", "sampling_probability", "local_epochs", "batch_size", "client_learning_rate",
        "server_learning_rate", "target_delta", "model")}
    private = math.isfinite(target_epsilon)
    if noise_placement != "central":
        kwargs["noise_placement"] = noise_placement
    result = experiment.run_experiment(
        clients, test_data, target_epsilon=target_epsilon if private else None,
        clipping_norm=clipping_norm, seed=seed, diagnostics=True, noise=noise,
        expected_clients=SETTING["sampling_probability"] * len(clients), **kwargs)  # N public
    h = result.history
    d = h.diagnostics
    return {
        "num_clients": len(clients),
        "target_epsilon": target_epsilon if private else None,
        "clipping_norm": clipping_norm if private else None,
        "noise_placement": noise_placement if private else None,
        "seed": seed,
        "noise": h.noise,
        "accountant": h.accountant,
        "noise_multiplier": result.config["noise_multiplier"],
        "epsilon_spent": reporting.json_number(result.epsilon_spent),
        "rounds_trained": result.rounds_trained,
        "final_test_accuracy": result.final_accuracy,
        "test_accuracy": [round(float(a), 4) for a in h.test_accuracy],
        "mean_fraction_clipped": float(np.nanmean(d.fraction_clipped(h.clipping_norm))),
        "median_update_norm": float(np.median(np.concatenate(d.update_norms))),
        "seconds": round(result.total_seconds, 2),
    }


def _table(runs: list[dict], key: str, title: str) -> str:
    """Mean and standard deviation over seeds of the final accuracy, grouped by ``key``."""
    lines = [title, f"{key:>16}  {'z':>7}  {'clipped':>7}  {'accuracy (mean ± sd over seeds)':>32}"]
    groups: dict = {}
    for run in runs:
        groups.setdefault((run[key], run.get("target_epsilon")), []).append(run)
    for (value, _), group in groups.items():
        acc = np.array([r["final_test_accuracy"] for r in group])
        clipped = np.mean([r["mean_fraction_clipped"] for r in group])
        shown = "inf" if value is None else f"{value:g}"
        lines.append(f"{shown:>16}  {group[0]['noise_multiplier']:7.3f}  {clipped:7.0%}  "
                     f"{acc.mean():>22.2%} ± {acc.std(ddof=1) if acc.size > 1 else 0:.2%}"
                     f"  (n={acc.size})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", default=",".join(SWEEPS),
                        help=f"comma-separated sweeps to run, of {', '.join(SWEEPS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to update")
    args = parser.parse_args(argv)
    sweeps = [s for s in args.sweeps.split(",") if s]
    unknown = sorted(set(sweeps) - set(SWEEPS))
    if unknown:
        parser.error(f"--sweeps must be among {', '.join(SWEEPS)}, got {', '.join(unknown)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    import warnings

    import tensorflow  # noqa: F401  (so that seed_everything seeds it too)

    warnings.filterwarnings("ignore", message="diagnostics=True")
    warnings.filterwarnings("ignore", message="noise='float'")  # the control sweep, labelled

    reproducibility.seed_everything(SETTING["split_seed"])
    mnist = data.load_mnist()
    federation = experiment.make_federation(
        SETTING["num_clients"], split=SETTING["split"], alpha=SETTING["alpha"],
        seed=SETTING["split_seed"], mnist=mnist)
    clients, test_data = federation.client_datasets, federation.test_data

    stored = json.loads(args.output.read_text()) if args.output.exists() else {"sweeps": {}}
    stored["setting"] = SETTING
    stored["machine"] = {"platform": platform.platform(), "processor": platform.machine(),
                         "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    for sweep in sweeps:
        start = time.perf_counter()
        runs = []
        if sweep == "privacy_utility":
            for eps in EPSILONS:
                for seed in seeds:
                    runs.append(_run(clients, test_data, target_epsilon=eps, seed=seed,
                                     clipping_norm=SETTING["clipping_norm"]))
            table = _table(runs, "target_epsilon", "privacy-utility (C = 0.5)")
        elif sweep == "clipping":
            for c in CLIPPING_NORMS:
                for seed in seeds:
                    runs.append(_run(clients, test_data, target_epsilon=2.0, seed=seed,
                                     clipping_norm=c))
            table = _table(runs, "clipping_norm", "clipping norm C (epsilon = 2)")
        elif sweep == "clients":
            for n in CLIENT_COUNTS:
                for eps in (2.0, math.inf):
                    for seed in seeds:
                        runs.append(_run(clients[:n], test_data, target_epsilon=eps, seed=seed,
                                         clipping_norm=SETTING["clipping_norm"]))
            table = _table(runs, "num_clients", "number of clients N (q = 0.1; eps = 2 and inf)")
        elif sweep == "float_noise":
            for eps in FLOAT_EPSILONS:
                for seed in seeds:
                    runs.append(_run(clients, test_data, target_epsilon=eps, seed=seed,
                                     clipping_norm=SETTING["clipping_norm"], noise="float"))
            table = _table(runs, "target_epsilon",
                           "float noise, PLD accountant (NOT private: the control; C = 0.5)")
        else:
            for eps in LOCAL_EPSILONS:
                for seed in seeds:
                    runs.append(_run(clients, test_data, target_epsilon=eps, seed=seed,
                                     clipping_norm=SETTING["clipping_norm"],
                                     noise_placement="local"))
            table = _table(runs, "target_epsilon", "local DP (C = 0.5)")
        seconds = time.perf_counter() - start
        stored["sweeps"].pop("accountants", None)  # the old float/RDP comparison, replaced
        print(table)
        print(f"({len(runs)} runs in {seconds:.0f} s)\n", flush=True)
        stored["sweeps"][sweep] = {"runs": runs, "seconds": round(seconds, 1),
                                   "date": datetime.datetime.now(datetime.timezone.utc)
                                   .strftime("%Y-%m-%d %H:%M UTC")}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(stored, indent=1, allow_nan=False) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
