"""The command line ``python -m fl_helpers.experiment`` (installed as ``fl-experiment`` too).

Runs notebook 04's experiment headless: MNIST split among ``--num-clients`` clients, DP-FedAvg
for ``--num-rounds`` rounds with a budget (``--target-epsilon``) or a given
``--noise-multiplier`` (neither: non-private), a progress bar, a results table, and
``metrics.json`` and ``plot.png`` in ``--output``. Every flag is the parameter of
:func:`fl_helpers.experiment.run_experiment` (or :func:`~fl_helpers.experiment.make_federation`)
of the same name, and every value is checked once, by the function that uses it; a bad value
ends the program with one line ``error: --flag: <what was wrong>`` and exit status 2.

The heavy modules (TensorFlow) are imported only after the flags have been parsed, so
``--help`` is instant.

Example::

    python -m fl_helpers.experiment --num-clients 1000 --clients-per-round 100 \\
        --num-rounds 30 --target-epsilon 2 --clipping-norm 0.5 --output runs/eps2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fl_helpers import _command_line, experiment_defaults

if TYPE_CHECKING:
    from fl_helpers import schedule

_SPLITS = ("iid", "shards", "dirichlet")
_MODELS = ("softmax_regression", "2nn", "cnn")


def _batch_size(text: str) -> int | None:
    return None if text.strip().lower() == "full" else int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every flag documented; old spellings kept as hidden aliases)."""
    d = experiment_defaults.DEFAULTS
    parser = _command_line.OneLineParser(
        prog="python -m fl_helpers.experiment",
        description=(
            "Train a federated model on MNIST split among many clients, with client-level "
            "differential privacy (DP-FedAvg, McMahan et al. 2018): Poisson client sampling from "
            "a secret source, each update clipped to L2 norm C, Gaussian noise of std z*C on the "
            "sum, privacy accounted with dp-accounting. The epsilon is client-level: it bounds "
            "what the trained models reveal about adding or removing one client with all its data, "
            "against whoever sees them, with a trusted server (local DP: against the server too, "
            "replace-one relation). Prints a "
            "results table and writes OUTPUT/metrics.json and OUTPUT/plot.png. Without "
            "--target-epsilon and --noise-multiplier the run is non-private."),
        epilog=("example: python -m fl_helpers.experiment --num-clients 1000 "
                "--clients-per-round 100 --num-rounds 30 --target-epsilon 2 --output runs/eps2"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    fed = parser.add_argument_group("federation")
    fed.add_argument("--num-clients", type=int, default=d["num_clients"], metavar="N",
                     help="number of clients N sharing MNIST's 60,000 training images "
                          "(1..60000; for --split shards 2N must divide 60000)")
    fed.add_argument("--split", choices=_SPLITS, default=d["split"],
                     help="iid (random, equal sizes), shards (2 label shards per client, "
                          "McMahan et al. 2017) or dirichlet (label shares from "
                          "Dirichlet(alpha), unequal sizes)")
    fed.add_argument("--alpha", type=float, default=None, metavar="A",
                     help=f"Dirichlet concentration, > 0; smaller is more skewed (only with "
                          f"--split dirichlet; default {d['alpha']})")
    sampling = fed.add_mutually_exclusive_group()
    sampling.add_argument("--clients-per-round", type=int, default=None, metavar="M",
                          help="expected clients per round M (1..N); sets the sampling "
                               f"probability q = M / N (default {d['clients_per_round']}, or N "
                               "if N is smaller)")
    sampling.add_argument("--sampling-probability", type=float, default=None, metavar="Q",
                          help="probability q that a client takes part in a round (Poisson "
                               "sampling), in (0, 1]")
    train = parser.add_argument_group("training")
    train.add_argument("--num-rounds", "--rounds", type=int, default=d["num_rounds"],
                       metavar="T", help="number of federated rounds T (>= 1); with "
                                         "--target-epsilon the budget is spread over T rounds")
    train.add_argument("--model", choices=_MODELS, default=d["model"],
                       help="softmax_regression (7,850 parameters, fastest), 2nn (199,210) or "
                            "cnn (1.66 M, slow: trained client by client)")
    train.add_argument("--local-epochs", type=int, default=d["local_epochs"], metavar="E",
                       help="passes over its own data each client makes per round (>= 1)")
    train.add_argument("--batch-size", type=_batch_size, default=d["batch_size"], metavar="B",
                       help="examples per local SGD step (>= 1), or 'full'")
    train.add_argument("--client-learning-rate", "--client-lr", type=float,
                       default=d["client_learning_rate"], metavar="ETA",
                       help="local SGD learning rate (> 0)")
    train.add_argument("--server-learning-rate", "--server-lr", type=float,
                       default=d["server_learning_rate"], metavar="ETA_S",
                       help="server learning rate (> 0); 1 applies the averaged update as is")
    train.add_argument("--seed", type=int, default=d["seed"],
                       help="seed (>= 0) of the split, initial weights and batches; the noise "
                            "and sampling stay secret unless --reproducible-noise")
    priv = parser.add_argument_group("privacy")
    budget = priv.add_mutually_exclusive_group()
    budget.add_argument("--target-epsilon", type=float, default=None, metavar="EPS",
                        help="privacy budget epsilon (> 0, e.g. 0.5..8): the noise multiplier is "
                             "calibrated by the accountant so that T rounds spend it")
    budget.add_argument("--noise-multiplier", type=float, default=None, metavar="Z",
                        help="noise std divided by the clipping norm (>= 0; 0 clips without "
                             "noise); epsilon is then reported per round")
    priv.add_argument("--target-delta", type=float, default=d["target_delta"], metavar="DELTA",
                      help="delta of the (epsilon, delta) guarantee, in (0, 1); keep it well "
                           "below 1/N")
    priv.add_argument("--clipping-norm", type=float, default=d["clipping_norm"], metavar="C",
                      help="L2 bound C on each client's model update (> 0); private runs only")
    priv.add_argument("--noise-placement", choices=("central", "local"), default="central",
                      help="central: the server noises the sum (trusted server); local: every "
                           "client noises its own update (no trusted server, much more noise)")
    priv.add_argument("--accountant", choices=("discrete", "pld", "rdp"), default=None,
                      help="privacy accountant; default: the one that bounds the noise "
                           "(discrete for exact noise, pld for float). pld (privacy loss "
                           "distributions, the tightest) and rdp (Renyi DP) bound the continuous "
                           "Gaussian: --noise float only")
    priv.add_argument("--noise", choices=("exact", "float"), default="exact",
                      help="exact (default): the clipped updates on an integer grid, summed "
                           "exactly, plus exact discrete Gaussian noise (discrete accountant); "
                           "float: float32 Gaussian noise, NOT private (a floating-point attack "
                           "breaks it; kept as the attack's control)")
    priv.add_argument("--reproducible-noise", action="store_true",
                      help="derive the noise and sampling from --seed: reproducible, and NOT "
                           "private against anyone who knows the seed (teaching and tests)")
    priv.add_argument("--diagnostics", action="store_true",
                      help="also write per-client figures (sampled clients, update norms) to "
                           "metrics.json; they are NOT covered by epsilon")
    out = parser.add_argument_group("output")
    out.add_argument("--output", type=Path, default=Path("fl_experiment_output"), metavar="DIR",
                     help="folder for metrics.json and plot.png (created if missing)")
    out.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    return parser


def _flag_error(parser: argparse.ArgumentParser, err: Exception) -> None:
    """Exits with ``error: --flag: message`` for an error raised by the library's checks.

    The library's messages name the parameter, which is the flag's name with underscores
    (``clipping_norm must be > 0, got -1.0.``); the first flag named is the one reported.
    """
    message = str(err)
    flags = {a.dest: "--" + a.dest.replace("_", "-")
             for a in parser._actions}  # noqa: SLF001 (argparse has no public list)
    flag = _command_line.flag_named(message, flags)
    prefix = "" if flag is None else flag + ": "
    parser.exit(2, f"error: {prefix}{message} (see --help)\n")


def _randomness(args: argparse.Namespace) -> schedule.PrivateRandomness | None:
    """``--reproducible-noise`` as the run's randomness: ``PrivateRandomness.reproducible(
    --seed)`` (warning only when the run is private), else ``None`` (secret)."""
    if not args.reproducible_noise:
        return None
    from fl_helpers import schedule  # noqa: F811 (lazy, like the other imports here)

    private = args.target_epsilon is not None or args.noise_multiplier is not None
    return schedule.PrivateRandomness.reproducible(args.seed, warn=private)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the experiment from command-line flags; returns the exit status (0 on success).

    Args:
        argv: The flags, a list of strings (``sys.argv[1:]`` if ``None``); anything else
            raises ``TypeError``.

    Returns:
        0. Bad flags exit with status 2 and one line ``error: --flag: ...``.
    """
    if argv is not None:
        from fl_helpers import _validation

        argv = _validation.check_argv(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.alpha is not None and args.split != "dirichlet":
        parser.exit(2, f"error: --alpha: only applies to --split dirichlet, got --split "
                       f"{args.split} (see --help)\n")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from fl_helpers import experiment, plotting, reporting, reproducibility

    try:
        reproducibility.seed_everything(args.seed)
        federation = experiment.make_federation(
            args.num_clients, split=args.split, seed=args.seed,
            alpha=experiment_defaults.DEFAULTS["alpha"] if args.alpha is None else args.alpha)
        if args.sampling_probability is not None:
            q = args.sampling_probability
        else:
            m = args.clients_per_round
            if m is None:
                m = min(experiment_defaults.DEFAULTS["clients_per_round"], args.num_clients)
            if not 1 <= m <= args.num_clients:
                raise ValueError(f"clients_per_round must be in 1..{args.num_clients} "
                                 f"(--num-clients), got {m}.")
            q = m / args.num_clients
        result = experiment.run_experiment(
            federation.client_datasets, federation.test_data, num_rounds=args.num_rounds,
            sampling_probability=q, target_epsilon=args.target_epsilon,
            noise_multiplier=args.noise_multiplier, target_delta=args.target_delta,
            clipping_norm=args.clipping_norm, model=args.model,
            local_epochs=args.local_epochs, batch_size=args.batch_size,
            client_learning_rate=args.client_learning_rate,
            server_learning_rate=args.server_learning_rate, seed=args.seed,
            noise_placement=args.noise_placement, progress=not args.no_progress,
            randomness=_randomness(args), diagnostics=args.diagnostics,
            accountant=args.accountant, noise=args.noise,
            expected_clients=q * args.num_clients)  # --num-clients is public (the command line)
    except (ValueError, TypeError) as err:
        _flag_error(parser, err)
        return 2
    result.config.update({"split": args.split, "alpha": federation.alpha})

    print(reporting.results_table(result))
    print()
    print(reporting.summary_line(result))
    if result.history.reproducible_noise and result.privacy is not experiment.Privacy.NON_PRIVATE:
        print(f"warning: {reporting.REPRODUCIBLE_WARNING}")
    args.output.mkdir(parents=True, exist_ok=True)
    metrics_path = args.output / "metrics.json"
    metrics_path.write_text(json.dumps(reporting.to_json(result), indent=2, allow_nan=False)
                            + "\n")
    plotting.use_course_style()
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    label = ("non-private" if result.privacy is experiment.Privacy.NON_PRIVATE
             else f"DP-FedAvg, z = {result.config['noise_multiplier']:.3g}")
    plotting.plot_accuracy_and_epsilon({label: result.history},
                                       target_epsilon=args.target_epsilon, axes=axes)
    fig.suptitle(f"N = {result.config['num_clients']} clients ({args.split}), q = "
                 f"{result.config['sampling_probability']:.3g}, {args.model}", fontsize=10)
    fig.tight_layout()
    plot_path = args.output / "plot.png"
    fig.savefig(plot_path, dpi=100)
    print(f"wrote {metrics_path} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
