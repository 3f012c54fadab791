"""Private MNIST headline: DP-FedAvg at client-level epsilon <= 2 (delta = 1e-5), and its levers.

The claim the JSON supports: the final global model was produced by DP-FedAvg (McMahan et al.
2018, "Learning Differentially Private Recurrent Language Models", Algorithm 1) whose guarantee
is client-level (epsilon, delta)-DP, ``delta = 1e-5`` much smaller than ``1 / N``: neighbouring
federations differ by adding or removing one client with all of its data; the server is trusted
to clip, sum and add Gaussian noise drawn from OS entropy (``run_dp_fedavg``'s secret default),
and the observer sees every global model of every round (so epsilon covers the whole training
trajectory). Clients are sampled by Poisson sampling with probability ``q`` per round; epsilon
comes from ``fl_helpers.accounting.dp_fedavg_epsilon`` for ``(z, q, T)`` (PLD by default).
With one example per client (N = 60,000) client-level DP is example-level DP. The test accuracy
on the 10,000 MNIST test images is measured after training; it is not private information (the
test set is public).

The levers (``--ablation``), each changed alone from the chosen configuration and measured in
the same run: the number of clients N (``experiment.make_federation``, IID), the model (2NN or
CNN), the server optimizer (``aggregation.ServerSGD`` with and without momentum, i.e.
DP-FedAvgM, and ``aggregation.ServerAdam``, DP-FedAdam of Reddi et al. 2021, "Adaptive
Federated Optimization", Algorithm 2; the noise is added to the clipped sum before the server
optimizer sees it, so privacy is unchanged), PLD against RDP accounting (the same epsilon bought
with less noise), the client learning rate and the local epochs. The noise multiplier of every
private run is calibrated to epsilon = 2 for its own (q, T) by ``noise_multiplier_for_epsilon``.

Writes ``benchmarks/results/private_mnist_headline.json`` (the chosen run, its non-private twin
with the same configuration and noise 0, and the ablation rows). Prints figures, never asserts.

    .venv/bin/python benchmarks/private_mnist_headline.py            # headline + twin
    .venv/bin/python benchmarks/private_mnist_headline.py --ablation # + each lever
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "private_mnist_headline.json"
TARGET_EPSILON = 2.0
TARGET_DELTA = 1e-5


@dataclasses.dataclass(frozen=True)
class Config:
    """One DP-FedAvg configuration (see the module docstring for each lever)."""

    num_clients: int = 60_000
    model: str = "2nn"
    sampling_probability: float = 0.05
    num_rounds: int = 40
    local_epochs: int = 1
    batch_size: int = 10
    client_learning_rate: float = 0.5
    clipping_norm: float = 1.0
    server: str = "momentum"  # "sgd", "momentum" or "adam"
    server_learning_rate: float = 1.0
    momentum: float = 0.9
    accountant: str = "pld"


def server_optimizer(config: Config):
    from fl_helpers import aggregation

    if config.server == "adam":
        return aggregation.ServerAdam(config.server_learning_rate, beta_1=0.9, beta_2=0.99,
                                      tau=1e-3)
    momentum = config.momentum if config.server == "momentum" else 0.0
    return aggregation.ServerSGD(config.server_learning_rate, momentum=momentum)


def run(config: Config, *, private: bool, mnist) -> dict:
    """One run of ``config``; private runs use secret noise and a calibrated z."""
    from fl_helpers import accounting, experiment, models, training

    federation = experiment.make_federation(config.num_clients, split="iid", seed=0,
                                            mnist=mnist)
    model_fn = {"2nn": models.make_2nn, "cnn": models.make_cnn}[config.model]
    z = accounting.noise_multiplier_for_epsilon(
        target_epsilon=TARGET_EPSILON, target_delta=TARGET_DELTA,
        sampling_probability=config.sampling_probability, num_rounds=config.num_rounds,
        accountant=config.accountant) if private else 0.0
    start = time.perf_counter()
    history = training.run_dp_fedavg(
        model_fn, federation.client_datasets, num_rounds=config.num_rounds,
        sampling_probability=config.sampling_probability, local_epochs=config.local_epochs,
        batch_size=config.batch_size, client_learning_rate=config.client_learning_rate,
        # The twin: run_dp_fedavg needs z > 0; 1e-12 adds noise far below float32 rounding.
        clipping_norm=config.clipping_norm, noise_multiplier=z if private else 1e-12,
        test_data=None, seed=0, progress=False, server_optimizer=server_optimizer(config),
        accountant=config.accountant, target_delta=TARGET_DELTA if private else None)
    wall = time.perf_counter() - start
    from fl_helpers import client

    loss, accuracy = client.evaluate(model_fn(), history.final_weights, *federation.test_data)
    epsilon = (accounting.dp_fedavg_epsilon(
        noise_multiplier=z, sampling_probability=config.sampling_probability,
        num_rounds=config.num_rounds, target_delta=TARGET_DELTA, accountant=config.accountant)
        if private else None)
    return {"config": dataclasses.asdict(config), "private": private,
            "test_accuracy": round(float(accuracy), 4), "test_loss": round(float(loss), 4),
            "noise_multiplier": z, "epsilon": epsilon, "wall_seconds": round(wall, 1),
            "seconds_per_round_median": round(float(sorted(history.seconds_per_round)[
                len(history.seconds_per_round) // 2]), 3),
            "engine": history.engine.value, "load_average": list(os.getloadavg())}


def ablation_configs(base: Config) -> list[tuple[str, Config]]:
    """Each lever changed alone from ``base``, most informative first."""
    replace = dataclasses.replace
    return [
        ("N = 6,000 clients (10 examples each)", replace(base, num_clients=6_000)),
        ("2x rounds at q / 2 (same compute)", replace(
            base, num_rounds=2 * base.num_rounds,
            sampling_probability=base.sampling_probability / 2)),
        ("4x rounds at q / 4 (same compute)", replace(
            base, num_rounds=4 * base.num_rounds,
            sampling_probability=base.sampling_probability / 4)),
        ("E = 2 local epochs", replace(base, local_epochs=2)),
        ("server SGD, no momentum", replace(base, server="sgd")),
        ("server Adam (DP-FedAdam), lr 0.01", replace(base, server="adam",
                                                     server_learning_rate=0.01)),
        ("client lr / 2", replace(base, client_learning_rate=base.client_learning_rate / 2)),
        ("CNN instead of 2NN", replace(base, model="cnn")),
    ]


def noise_for_accountants(base: Config) -> dict:
    """The noise multiplier that buys epsilon = 2 for ``base``'s (q, T) under PLD and RDP."""
    from fl_helpers import accounting

    return {name: accounting.noise_multiplier_for_epsilon(
        target_epsilon=TARGET_EPSILON, target_delta=TARGET_DELTA,
        sampling_probability=base.sampling_probability, num_rounds=base.num_rounds,
        accountant=name) for name in ("pld", "rdp")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablation", action="store_true", help="also run each lever alone")
    parser.add_argument("--rounds", type=int, default=None, help="override T (a quick try)")
    parser.add_argument("--num-clients", type=int, default=None, help="override N")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="ablation rows to skip, by a word of their label (e.g. CNN)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only the ablation rows with one of these words in their label "
                             "(with --reuse the other stored rows are kept)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the stored headline and non-private runs if their "
                             "configuration is the same (to add ablation rows)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fl_helpers import data

    base = Config()
    if args.rounds is not None:
        base = dataclasses.replace(base, num_rounds=args.rounds)
    if args.num_clients is not None:
        base = dataclasses.replace(base, num_clients=args.num_clients)
    mnist = data.load_mnist()
    print(f"load average at start: {os.getloadavg()}")
    stored = json.loads(args.output.read_text()) if args.reuse and args.output.exists() else None
    if stored is not None and stored["config"] == dataclasses.asdict(base):
        headline, twin = stored["headline_run"], stored["non_private_run"]
        print(f"reusing the stored headline and non-private runs of {args.output}")
    else:
        headline = run(base, private=True, mnist=mnist)
        twin = run(base, private=False, mnist=mnist)
    result = {
        "claim": ("client-level (epsilon, delta)-DP, add/remove one client's data; trusted "
                  "server adds Gaussian noise from OS entropy to the clipped sum; the observer "
                  "sees every round's global model"),
        "test_accuracy": headline["test_accuracy"], "epsilon": headline["epsilon"],
        "delta": TARGET_DELTA, "noise_multiplier": headline["noise_multiplier"],
        "sampling_probability": base.sampling_probability, "num_rounds": base.num_rounds,
        "num_clients": base.num_clients, "accountant": base.accountant,
        "wall_seconds": headline["wall_seconds"],
        "non_private_test_accuracy": twin["test_accuracy"],
        "config": dataclasses.asdict(base), "headline_run": headline, "non_private_run": twin,
        "noise_multiplier_by_accountant": noise_for_accountants(base),
        "ablation": [], "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }
    if stored is not None and stored["config"] == dataclasses.asdict(base):
        result["ablation"] = list(stored.get("ablation", []))  # kept unless re-run below
    print(f"headline: accuracy {headline['test_accuracy']:.4f} at epsilon "
          f"{headline['epsilon']:.3f} (delta {TARGET_DELTA:g}, z {headline['noise_multiplier']:.3f}"
          f"), {headline['wall_seconds']:.0f} s; non-private {twin['test_accuracy']:.4f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    if args.ablation:
        rows = [(label, config) for label, config in ablation_configs(base)
                if not any(word.lower() in label.lower() for word in args.skip)
                and (args.only is None
                     or any(word.lower() in label.lower() for word in args.only))]
        rerun = {label for label, _ in rows}
        result["ablation"] = [row for row in result["ablation"] if row["lever"] not in rerun]
        for label, config in rows:
            row = run(config, private=True, mnist=mnist)
            row["lever"] = label
            row["gain_vs_headline"] = round(headline["test_accuracy"] - row["test_accuracy"], 4)
            result["ablation"].append(row)
            args.output.write_text(json.dumps(result, indent=1) + "\n")  # after every row
            print(f"{label:<40} accuracy {row['test_accuracy']:.4f}  "
                  f"z {row['noise_multiplier']:.3f}  eps {row['epsilon']:.3f}  "
                  f"{row['wall_seconds']:.0f} s  (headline's lead "
                  f"{row['gain_vs_headline']:+.4f})", flush=True)
    print(f"written {args.output}; load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
