"""The whole multi-client experiment: a federation, DP-FedAvg with a privacy budget, the results.

What notebook 04 does step by step, packaged so that a command line, the ``### Try it`` widget
and the benchmarks run exactly the same experiment:

* :func:`make_federation` splits MNIST's training set among ``num_clients`` clients (IID, the
  label shards of McMahan et al. 2017, or Dirichlet label skew);
* :func:`run_experiment` trains with DP-FedAvg (McMahan et al. 2018, "Learning Differentially
  Private Recurrent Language Models", Algorithm 1) through
  :func:`fl_helpers.dp_fedavg.run_dp_fedavg` and its fast engine. Given a ``target_epsilon``
  it asks the accountant (:func:`fl_helpers.accounting.noise_multiplier_for_epsilon`) for the
  smallest noise multiplier that keeps ``num_rounds`` rounds within the budget; given a
  ``noise_multiplier`` it reports the epsilon spent round by round; given neither it trains
  without privacy (no clipping, no noise);
* :func:`main` is the command line ``python -m fl_helpers.experiment`` (also installed as
  ``fl-experiment``): a progress bar, a results table, ``metrics.json`` and ``plot.png``.

Example::

    python -m fl_helpers.experiment --num-clients 1000 --clients-per-round 100 --rounds 30 \\
        --target-epsilon 2 --clipping-norm 0.5 --output runs/eps2
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fl_helpers import _validation as v

#: How the training set can be split among clients (see :func:`make_federation`).
SPLITS: tuple[str, ...] = ("iid", "shards", "dirichlet")

#: Model names accepted by :func:`run_experiment`, mapped to the factory in ``fl_helpers.models``.
MODELS: dict[str, str] = {
    "softmax_regression": "make_softmax_regression",
    "2nn": "make_2nn",
    "cnn": "make_cnn",
}

#: Label shards per client for ``split="shards"`` (McMahan et al. 2017, Section 3).
SHARDS_PER_CLIENT = 2

#: The clipping norm used for non-private runs: larger than any update can be, so the clipping
#: factor ``min(1, C / ||delta||)`` is exactly 1 and nothing is clipped.
NO_CLIPPING = 1e30

#: Defaults shared by the command line, the widget and the notebook.
DEFAULTS: dict[str, Any] = {
    "num_clients": 1000,
    "clients_per_round": 100,
    "num_rounds": 30,
    "target_delta": 1e-5,
    "clipping_norm": 0.5,
    "split": "dirichlet",
    "alpha": 0.5,
    "local_epochs": 1,
    "batch_size": 10,
    "client_learning_rate": 0.1,
    "server_learning_rate": 1.0,
    "model": "softmax_regression",
    "seed": 0,
}


# --------------------------------------------------------------------------------------------
# The federation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Federation:
    """MNIST split among clients.

    Attributes:
        client_datasets: One ``(x_k, y_k)`` pair per client (float32 images, int64 labels).
        partitions: One index array into the training set per client.
        train_labels: Labels of the whole training set (for label-skew plots).
        test_data: The held-out ``(x_test, y_test)``.
        split: ``"iid"``, ``"shards"`` or ``"dirichlet"``.
        alpha: The Dirichlet concentration for ``"dirichlet"``, else ``None``.
    """

    client_datasets: list[tuple[np.ndarray, np.ndarray]]
    partitions: list[np.ndarray]
    train_labels: np.ndarray
    test_data: tuple[np.ndarray, np.ndarray]
    split: str
    alpha: float | None

    @property
    def num_clients(self) -> int:
        """Number of clients ``N``."""
        return len(self.client_datasets)


def make_federation(num_clients: int, *, split: str = "dirichlet", alpha: float = 0.5,
                    seed: int = 0, mnist: tuple | None = None) -> Federation:
    """Splits MNIST's 60,000 training images among ``num_clients`` clients.

    Args:
        num_clients: ``N`` in 1..60,000. For ``"shards"``, ``2 N`` must divide 60,000.
        split: ``"iid"`` (:func:`fl_helpers.data.partition_iid`), ``"shards"`` (two label shards
            per client, :func:`fl_helpers.data.partition_shards`) or ``"dirichlet"`` (label
            proportions from Dirichlet(``alpha``), :func:`fl_helpers.data.partition_dirichlet`).
        alpha: Dirichlet concentration (> 0); small values give strongly skewed clients. Only
            used by ``"dirichlet"``.
        seed: Integer >= 0; the split is drawn from ``np.random.default_rng(seed)``.
        mnist: The output of :func:`fl_helpers.data.load_mnist` if already loaded, else ``None``.

    Returns:
        A :class:`Federation`.

    Raises:
        ValueError: ``split`` is unknown, or a partition argument is out of range.
    """
    from fl_helpers import data

    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    seed = v.check_int("seed", seed, minimum=0)
    (x_train, y_train), test_data = data.load_mnist() if mnist is None else mnist
    num_clients = v.check_int("num_clients", num_clients, minimum=1, maximum=len(y_train))
    rng = np.random.default_rng(seed)
    if split == "iid":
        partitions = data.partition_iid(len(y_train), num_clients, rng=rng)
    elif split == "shards":
        partitions = data.partition_shards(y_train, num_clients,
                                           shards_per_client=SHARDS_PER_CLIENT, rng=rng)
    else:
        alpha = v.check_positive("alpha", alpha)
        partitions = data.partition_dirichlet(y_train, num_clients, alpha=alpha, rng=rng)
    return Federation(
        client_datasets=data.client_datasets(x_train, y_train, partitions),
        partitions=partitions, train_labels=y_train, test_data=test_data, split=split,
        alpha=alpha if split == "dirichlet" else None)


# --------------------------------------------------------------------------------------------
# Noise calibration
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _cached_noise_multiplier(target_epsilon: float, target_delta: float,
                             sampling_probability: float, num_rounds: int) -> float:
    from fl_helpers import accounting

    return accounting.noise_multiplier_for_epsilon(
        target_epsilon=target_epsilon, target_delta=target_delta,
        sampling_probability=sampling_probability, num_rounds=num_rounds)


def noise_multiplier_for_budget(*, target_epsilon: float, target_delta: float,
                                sampling_probability: float, num_rounds: int) -> float:
    """The noise multiplier ``z`` with which ``num_rounds`` rounds spend ``target_epsilon``.

    :func:`fl_helpers.accounting.noise_multiplier_for_epsilon` (dp-accounting's RDP accountant for
    the Poisson-subsampled Gaussian mechanism), remembered for repeated settings, since a widget
    asks for the same few values again and again and each search costs about a second.

    Args:
        target_epsilon: Budget epsilon > 0.
        target_delta: delta in (0, 1).
        sampling_probability: ``q`` in (0, 1].
        num_rounds: ``T`` >= 1.

    Returns:
        ``z`` with ``dp_fedavg_epsilon(z, q, T, delta) <= target_epsilon`` (within 1e-4 of the
        smallest such value).

    Raises:
        ValueError: An argument is out of range, or the budget cannot be met (see the accountant).
    """
    return _cached_noise_multiplier(
        v.check_positive("target_epsilon", target_epsilon),
        v.check_open_unit("target_delta", target_delta),
        v.check_probability("sampling_probability", sampling_probability),
        v.check_int("num_rounds", num_rounds, minimum=1))


def local_noise_multiplier(*, target_epsilon: float, target_delta: float, num_clients: int,
                           sampling_probability: float, num_rounds: int,
                           seed: int) -> tuple[float, int]:
    """The noise multiplier of *local* DP: each client noises its own clipped update.

    With local DP (no trusted server) every report a client sends must itself be private:

    * the server sees who reports, so sampling gives no amplification; a client's privacy loss is
      the composition of its own reports. The sampling schedule depends only on the seed, so the
      noise is calibrated for the busiest client of the run
      (:func:`fl_helpers.dp_fedavg.busiest_client_counts`);
    * a report must hide the client's data against any other data, and two updates clipped to
      norm ``C`` differ by up to ``2 C`` in L2 (replace-one sensitivity). The Gaussian noise
      ``N(0, (z C)^2)`` then has noise multiplier ``z / 2`` relative to that sensitivity.

    So ``z = 2 z_G`` where ``z_G`` is the accountant's noise multiplier for ``busiest`` Gaussian
    releases without sampling (:func:`fl_helpers.accounting.noise_multiplier_for_epsilon` with
    ``sampling_probability = 1``); :func:`fl_helpers.dp_fedavg.local_dp_epsilon_per_round` is
    the accounting this inverts. Kairouz et al. 2021, Section 4.2.2, compares local and central DP.

    Args:
        target_epsilon: Budget epsilon > 0 of every client.
        target_delta: delta in (0, 1).
        num_clients: ``N`` >= 1.
        sampling_probability: ``q`` in (0, 1].
        num_rounds: ``T`` >= 1.
        seed: The run's seed (fixes the schedule).

    Returns:
        ``(z, busiest)``: the per-client noise multiplier and the busiest client's number of
        reports (at least 1 report is assumed when calibrating).

    Raises:
        ValueError: An argument is out of range, or the budget cannot be met.
    """
    from fl_helpers import dp_fedavg

    busiest = int(dp_fedavg.busiest_client_counts(
        num_clients, sampling_probability=v.check_probability("sampling_probability",
                                                              sampling_probability),
        num_rounds=num_rounds, seed=seed)[-1])
    z_gaussian = _cached_noise_multiplier(
        v.check_positive("target_epsilon", target_epsilon),
        v.check_open_unit("target_delta", target_delta), 1.0, max(busiest, 1))
    return 2.0 * z_gaussian, busiest


# --------------------------------------------------------------------------------------------
# One experiment
# --------------------------------------------------------------------------------------------


def _json_number(value: Any) -> Any:
    """Floats for JSON: NaN and infinities become ``None`` (strict JSON has neither)."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclasses.dataclass(eq=False)
class ExperimentResult:
    """One run of :func:`run_experiment`.

    Attributes:
        config: Every setting of the run, the derived ones included (``noise_multiplier``,
            ``sampling_probability``, ``expected_clients_per_round``, ``privacy``), JSON-ready.
        history: The :class:`fl_helpers.dp_fedavg.DPHistory` with the per-round figures.
        accountant_seconds: Time spent calibrating the noise (0 if ``z`` was given or cached).
        total_seconds: Wall-clock time of the whole run: calibration, setup, training and the
            evaluation after every round.
    """

    config: dict[str, Any]
    history: Any
    accountant_seconds: float
    total_seconds: float

    @property
    def final_accuracy(self) -> float:
        """Test accuracy after the last round trained (NaN without test data)."""
        accuracy = self.history.test_accuracy
        return float(accuracy[-1]) if accuracy.size else math.nan

    @property
    def epsilon_spent(self) -> float:
        """Epsilon after the last round for ``target_delta`` (``inf`` without privacy)."""
        epsilon = self.history.epsilon
        return float(epsilon[-1]) if epsilon.size else math.inf

    @property
    def rounds_trained(self) -> int:
        """Rounds actually trained (fewer than ``num_rounds`` if the budget ran out)."""
        return int(self.history.rounds.size)

    def to_json(self) -> dict[str, Any]:
        """Config, summary and per-round metrics as plain JSON types (NaN/inf become null)."""
        h = self.history
        per_round = []
        for i in range(self.rounds_trained):
            per_round.append({
                "round": int(h.rounds[i]),
                "num_sampled": int(h.num_sampled[i]),
                "fraction_clipped": _json_number(h.fraction_clipped[i]),
                "mean_update_norm": _json_number(h.mean_update_norm[i]),
                "epsilon": _json_number(h.epsilon[i]) if h.epsilon.size else None,
                "test_accuracy": _json_number(h.test_accuracy[i]) if h.test_accuracy.size
                else None,
                "test_loss": _json_number(h.test_loss[i]) if h.test_loss.size else None,
                "seconds": _json_number(h.seconds_per_round[i]),
            })
        summary = {
            "rounds_trained": self.rounds_trained,
            "stopped_early": h.stopped_early,
            "final_test_accuracy": _json_number(self.final_accuracy),
            "epsilon_spent": _json_number(self.epsilon_spent),
            "training_seconds": _json_number(h.total_seconds),
            "total_seconds": _json_number(self.total_seconds),
        }
        return {"config": {k: _json_number(val) for k, val in self.config.items()},
                "summary": summary, "rounds": per_round}


def run_experiment(client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                   test_data: tuple[np.ndarray, np.ndarray] | None, *, num_rounds: int,
                   sampling_probability: float, target_epsilon: float | None = None,
                   noise_multiplier: float | None = None,
                   target_delta: float = DEFAULTS["target_delta"],
                   clipping_norm: float = DEFAULTS["clipping_norm"],
                   model: str = DEFAULTS["model"], local_epochs: int = DEFAULTS["local_epochs"],
                   batch_size: int | None = DEFAULTS["batch_size"],
                   client_learning_rate: float = DEFAULTS["client_learning_rate"],
                   server_learning_rate: float = DEFAULTS["server_learning_rate"],
                   seed: int = DEFAULTS["seed"], noise_placement: str = "central",
                   progress: bool = False,
                   callback: Callable[[dict[str, Any]], bool | None] | None = None
                   ) -> ExperimentResult:
    """Trains one federated model with (or without) client-level differential privacy.

    Three modes, by which of ``target_epsilon`` and ``noise_multiplier`` is given:

    * ``target_epsilon``: the noise multiplier is the accountant's smallest ``z`` for which
      ``num_rounds`` rounds spend at most ``target_epsilon`` (:func:`noise_multiplier_for_budget`);
      training stops when the budget is spent, which is after ``num_rounds`` rounds.
    * ``noise_multiplier``: ``z`` as given (0 clips without noise); epsilon is reported per round.
    * neither: no privacy, plain federated averaging of the unclipped updates (``z = 0`` and
      clipping norm :data:`NO_CLIPPING`); the reported epsilon is ``inf``.

    Every round samples each client with probability ``sampling_probability`` (Poisson), trains
    the sampled clients locally, clips each update to ``clipping_norm``, adds Gaussian noise of
    standard deviation ``z * clipping_norm`` to their sum and divides by the expected number of
    clients (McMahan et al. 2018, Algorithm 1; :func:`fl_helpers.dp_fedavg.run_dp_fedavg`).

    With ``noise_placement="local"`` every sampled client adds that noise to its own clipped
    update instead (local DP, no trusted server), and a ``target_epsilon`` is met for every
    client's own reports (:func:`local_noise_multiplier`); the epsilon reported per round is
    then the busiest client's so far.

    Args:
        client_datasets: One ``(x_k, y_k)`` pair per client (the ``N`` clients).
        test_data: ``(x_test, y_test)`` evaluated after every round, or ``None``.
        num_rounds: ``T`` >= 1.
        sampling_probability: ``q`` in (0, 1]; ``q N`` clients per round on average.
        target_epsilon: Privacy budget (> 0), or ``None``.
        noise_multiplier: ``z`` >= 0, or ``None``. At most one of the two may be given.
        target_delta: delta in (0, 1) of the guarantee; keep it well below ``1 / N``.
        clipping_norm: ``C`` > 0, the bound on each client update's L2 norm (private runs only).
        model: A key of :data:`MODELS`.
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1, or ``None`` for full-batch local steps.
        client_learning_rate: Local SGD step size > 0.
        server_learning_rate: Server step size > 0 (1 applies the average update as it is).
        seed: Integer >= 0 fixing the model's initial weights, sampling, batches and noise.
        noise_placement: ``"central"`` (the server noises the sum once, DP-FedAvg) or
            ``"local"`` (each client noises its own update); private runs only.
        progress: Show a tqdm progress bar.
        callback: Called after every round with that round's figures (see
            :func:`fl_helpers.dp_fedavg.run_dp_fedavg`); returning ``True`` stops training.

    Returns:
        An :class:`ExperimentResult`.

    Raises:
        TypeError, ValueError: An argument is malformed, both ``target_epsilon`` and
            ``noise_multiplier`` are given, or the budget cannot be met (the message says which).
    """
    from fl_helpers import dp_fedavg, models

    start = time.perf_counter()
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}.")
    if target_epsilon is not None and noise_multiplier is not None:
        raise ValueError(
            f"give target_epsilon or noise_multiplier, not both, got target_epsilon="
            f"{target_epsilon} and noise_multiplier={noise_multiplier}.")
    if noise_placement not in ("central", "local"):
        raise ValueError(f"noise_placement must be 'central' or 'local', got {noise_placement!r}.")
    if noise_placement == "local" and target_epsilon is None and noise_multiplier is None:
        raise ValueError("noise_placement='local' needs target_epsilon or noise_multiplier, got "
                         "neither (a non-private run adds no noise anywhere).")
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
    sampling_probability = v.check_probability("sampling_probability", sampling_probability)
    target_delta = v.check_open_unit("target_delta", target_delta)
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    seed = v.check_int("seed", seed, minimum=0)

    accountant_seconds = 0.0
    if target_epsilon is not None:
        target_epsilon = v.check_positive("target_epsilon", target_epsilon)
        tic = time.perf_counter()
        if noise_placement == "local":
            z, _ = local_noise_multiplier(
                target_epsilon=target_epsilon, target_delta=target_delta,
                num_clients=len(client_datasets), sampling_probability=sampling_probability,
                num_rounds=num_rounds, seed=seed)
        else:
            z = noise_multiplier_for_budget(
                target_epsilon=target_epsilon, target_delta=target_delta,
                sampling_probability=sampling_probability, num_rounds=num_rounds)
        accountant_seconds = time.perf_counter() - tic
        privacy, clip = f"{noise_placement} DP", clipping_norm
    elif noise_multiplier is not None:
        z = v.check_non_negative("noise_multiplier", noise_multiplier)
        privacy = f"{noise_placement} DP" if z > 0 else "clipping only"
        clip = clipping_norm
    else:
        z, privacy, clip = 0.0, "non-private", NO_CLIPPING

    model_fn = functools.partial(getattr(models, MODELS[model]), seed=seed)
    history = dp_fedavg.run_dp_fedavg(
        model_fn, client_datasets, num_rounds=num_rounds,
        sampling_probability=sampling_probability, local_epochs=local_epochs,
        batch_size=batch_size, client_learning_rate=client_learning_rate, clipping_norm=clip,
        noise_multiplier=z, server_learning_rate=server_learning_rate, test_data=test_data,
        seed=seed, progress=progress, target_delta=target_delta,
        target_epsilon=target_epsilon, callback=callback, noise_placement=noise_placement)
    num_clients = len(client_datasets)
    config = {
        "privacy": privacy,
        "num_clients": num_clients,
        "sampling_probability": sampling_probability,
        "expected_clients_per_round": sampling_probability * num_clients,
        "num_rounds": num_rounds,
        "target_epsilon": target_epsilon,
        "noise_multiplier": z,
        "target_delta": target_delta,
        "clipping_norm": clip if privacy != "non-private" else None,
        "model": model,
        "local_epochs": local_epochs,
        "batch_size": batch_size,
        "client_learning_rate": client_learning_rate,
        "server_learning_rate": server_learning_rate,
        "seed": seed,
        "engine": history.engine,
    }
    return ExperimentResult(config=config, history=history,
                            accountant_seconds=accountant_seconds,
                            total_seconds=time.perf_counter() - start)


def summary_line(result: ExperimentResult, *, baseline: ExperimentResult | None = None) -> str:
    """One line with what matters of a run: accuracy, epsilon, z, q, C, rounds and the time.

    Args:
        result: The run to describe.
        baseline: A non-private run to compare the accuracy with, or ``None``.

    Returns:
        E.g. ``"target ε = 2: z = 1.63, q = 0.100, C = 0.5, 30 rounds -> test accuracy 86.7%
        (non-private 87.7%), ε spent 1.999 at δ = 1e-05, 4.1 s"``.
    """
    c = result.config
    if c["privacy"] == "non-private":
        setting = f"non-private: q = {c['sampling_probability']:.3f}"
    else:
        budget = (f"target ε = {c['target_epsilon']:.3g}" if c["target_epsilon"] is not None
                  else c["privacy"])
        setting = (f"{budget}: z = {c['noise_multiplier']:.3g}, q = "
                   f"{c['sampling_probability']:.3f}, C = {c['clipping_norm']:.3g}")
    line = f"{setting}, {result.rounds_trained} rounds -> test accuracy {result.final_accuracy:.1%}"
    if baseline is not None:
        line += f" (non-private {baseline.final_accuracy:.1%})"
    if math.isfinite(result.epsilon_spent):
        line += f", ε spent {result.epsilon_spent:.3f} at δ = {c['target_delta']:.0e}"
    return line + f", {result.total_seconds:.1f} s"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Prints one line, ``error: --flag must be ..., got X``, and exits with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse words it "argument --rounds: must be ..."; the course's template is
        # "--rounds must be ...".
        match = re.match(r"argument (\S+?)(?:/\S+)?: (.*)$", message, flags=re.DOTALL)
        if match:
            flag, rest = match.groups()
            message = f"{flag} {rest}" if rest.startswith("must") else f"{flag}: {rest}"
        self.exit(2, f"error: {message} (see --help)\n")


def _number_type(kind: type, test: Callable[[float], bool], wanted: str) -> Callable[[str], Any]:
    """An argparse ``type`` that parses ``kind`` and checks ``test``, or says what was wanted."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if (isinstance(value, float) and not math.isfinite(value)) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _batch_size_type(text: str) -> int | None:
    if text.strip().lower() == "full":
        return None
    return _number_type(int, lambda b: b >= 1, "an integer >= 1 or 'full'")(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m fl_helpers.experiment`` (every flag documented)."""
    d = DEFAULTS
    parser = _Parser(
        prog="python -m fl_helpers.experiment",
        description=(
            "Train a federated model on MNIST split among many clients, with client-level "
            "differential privacy (DP-FedAvg, McMahan et al. 2018): Poisson client sampling, "
            "each update clipped to L2 norm C, Gaussian noise of std z*C on the sum, privacy "
            "accounted with dp-accounting's RDP accountant. Prints a results table and writes "
            "OUTPUT/metrics.json and OUTPUT/plot.png. Without --target-epsilon and "
            "--noise-multiplier the run is non-private (no clipping, no noise)."),
        epilog=("example: python -m fl_helpers.experiment --num-clients 1000 "
                "--clients-per-round 100 --rounds 30 --target-epsilon 2 --output runs/eps2"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    fed = parser.add_argument_group("federation")
    fed.add_argument("--num-clients", type=_number_type(int, lambda n: 1 <= n <= 60000,
                                                        "an integer in 1..60000"),
                     default=d["num_clients"], metavar="N",
                     help="number of clients N sharing MNIST's 60,000 training images "
                          "(integer, 1..60000; for --split shards 2N must divide 60000)")
    fed.add_argument("--split", choices=SPLITS, default=d["split"],
                     help="how the data is split: iid (random, equal sizes), shards (2 label "
                          "shards per client, McMahan et al. 2017) or dirichlet (label shares "
                          "from Dirichlet(alpha), unequal sizes)")
    fed.add_argument("--alpha", type=_number_type(float, lambda a: a > 0, "a number > 0"),
                     default=None, metavar="A",
                     help=f"Dirichlet concentration, > 0; smaller is more skewed (only with "
                          f"--split dirichlet; default {d['alpha']})")
    sampling = fed.add_mutually_exclusive_group()
    sampling.add_argument("--clients-per-round", type=_number_type(int, lambda m: m >= 1,
                                                                   "an integer >= 1"),
                          default=None, metavar="M",
                          help="expected clients per round M (integer, 1..N); sets the "
                               f"sampling probability q = M / N (default {d['clients_per_round']},"
                               " or N if N is smaller)")
    sampling.add_argument("--sampling-probability", type=_number_type(
        float, lambda q: 0 < q <= 1, "a number in (0, 1]"), default=None, metavar="Q",
        help="probability q that a client takes part in a round (Poisson sampling), in (0, 1]")

    train = parser.add_argument_group("training")
    train.add_argument("--rounds", type=_number_type(int, lambda t: t >= 1, "an integer >= 1"),
                       default=d["num_rounds"], metavar="T",
                       help="number of federated rounds T (integer >= 1); with "
                            "--target-epsilon the budget is spread over exactly T rounds")
    train.add_argument("--model", choices=list(MODELS), default=d["model"],
                       help="softmax_regression (7,850 parameters, fastest), 2nn (199,210) or "
                            "cnn (1.66 M, slow: trained client by client)")
    train.add_argument("--local-epochs", type=_number_type(int, lambda e: e >= 1,
                                                           "an integer >= 1"),
                       default=d["local_epochs"], metavar="E",
                       help="passes over its own data each client makes per round (integer >= 1)")
    train.add_argument("--batch-size", type=_batch_size_type, default=d["batch_size"],
                       metavar="B",
                       help="examples per local SGD step (integer >= 1), or 'full' for one "
                            "full-batch step per epoch")
    train.add_argument("--client-lr", type=_number_type(float, lambda r: r > 0, "a number > 0"),
                       default=d["client_learning_rate"], metavar="ETA",
                       help="local SGD learning rate (> 0)")
    train.add_argument("--server-lr", type=_number_type(float, lambda r: r > 0, "a number > 0"),
                       default=d["server_learning_rate"], metavar="ETA_S",
                       help="server learning rate (> 0); 1 applies the averaged update as is")
    train.add_argument("--seed", type=_number_type(int, lambda s: s >= 0, "an integer >= 0"),
                       default=d["seed"],
                       help="seed (integer >= 0) of the split, initial weights, sampling, "
                            "batches and noise: same seed, same numbers")

    priv = parser.add_argument_group("privacy")
    budget = priv.add_mutually_exclusive_group()
    budget.add_argument("--target-epsilon", type=_number_type(float, lambda e: e > 0,
                                                              "a number > 0"),
                        default=None, metavar="EPS",
                        help="privacy budget epsilon (> 0, e.g. 0.5..8): the noise multiplier "
                             "is calibrated by the accountant so that T rounds spend it")
    budget.add_argument("--noise-multiplier", type=_number_type(float, lambda z: z >= 0,
                                                                "a number >= 0"),
                        default=None, metavar="Z",
                        help="noise std divided by the clipping norm (>= 0; 0 clips without "
                             "noise); epsilon is then reported per round")
    priv.add_argument("--target-delta", type=_number_type(float, lambda x: 0 < x < 1,
                                                          "a number in (0, 1)"),
                      default=d["target_delta"], metavar="DELTA",
                      help="delta of the (epsilon, delta) guarantee, in (0, 1); keep it well "
                           "below 1/N")
    priv.add_argument("--clipping-norm", type=_number_type(float, lambda c: c > 0,
                                                           "a number > 0"),
                      default=d["clipping_norm"], metavar="C",
                      help="L2 bound C on each client's model update (> 0, in weight units); "
                           "private runs only")

    out = parser.add_argument_group("output")
    out.add_argument("--output", type=Path, default=Path("fl_experiment_output"), metavar="DIR",
                     help="folder for metrics.json and plot.png (created if missing)")
    out.add_argument("--no-progress", action="store_true",
                     help="do not show the progress bar")
    return parser


def _resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Checks the flags against each other and turns them into run_experiment's arguments."""
    n = args.num_clients
    if args.split == "shards" and 60000 % (SHARDS_PER_CLIENT * n) != 0:
        parser.error(f"--num-clients must make {SHARDS_PER_CLIENT}*N divide 60000 with --split "
                     f"shards, got {n}")
    if args.alpha is not None and args.split != "dirichlet":
        parser.error(f"--alpha only applies to --split dirichlet, got --split {args.split}")
    if args.sampling_probability is not None:
        q = args.sampling_probability
    else:
        m = args.clients_per_round
        if m is None:
            m = min(DEFAULTS["clients_per_round"], n)
        if m > n:
            parser.error(f"--clients-per-round must be <= --num-clients ({n}), got {m}")
        q = m / n
    return {"num_rounds": args.rounds, "sampling_probability": q,
            "target_epsilon": args.target_epsilon, "noise_multiplier": args.noise_multiplier,
            "target_delta": args.target_delta, "clipping_norm": args.clipping_norm,
            "model": args.model, "local_epochs": args.local_epochs,
            "batch_size": args.batch_size, "client_learning_rate": args.client_lr,
            "server_learning_rate": args.server_lr, "seed": args.seed}


def results_table(result: ExperimentResult, *, max_rows: int = 12) -> str:
    """The per-round results as a fixed-width text table (at most ``max_rows`` rounds shown).

    Shows round 1, evenly spaced rounds and the last round, with the clients sampled, the share
    of updates clipped, epsilon spent, test accuracy and test loss.
    """
    h = result.history
    count = result.rounds_trained
    shown = np.unique(np.linspace(0, count - 1, min(max_rows, count)).round().astype(int))
    lines = [f"{'round':>5}  {'clients':>7}  {'clipped':>7}  {'epsilon':>8}  "
             f"{'test acc':>8}  {'test loss':>9}",
             "-" * 54]
    for i in shown:
        eps = h.epsilon[i] if h.epsilon.size else math.inf
        clipped = h.fraction_clipped[i]
        acc = f"{h.test_accuracy[i]:8.2%}" if h.test_accuracy.size else f"{'-':>8}"
        loss = f"{h.test_loss[i]:9.4f}" if h.test_loss.size else f"{'-':>9}"
        lines.append(f"{int(h.rounds[i]):5d}  {int(h.num_sampled[i]):7d}  "
                     f"{('-' if math.isnan(clipped) else f'{clipped:.0%}'):>7}  "
                     f"{('inf' if not math.isfinite(eps) else f'{eps:.3f}'):>8}  {acc}  {loss}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the experiment from command-line flags; returns the exit status (0 on success).

    Args:
        argv: The flags (``sys.argv[1:]`` if ``None``).

    Returns:
        0. Bad flags exit with status 2 and one line ``error: --flag must be ..., got X``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    kwargs = _resolve(args, parser)
    # Heavy imports only once the flags are known to be good, so --help and errors are instant.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fl_helpers import plotting, reproducibility

    if kwargs["target_epsilon"] is not None:
        try:
            noise_multiplier_for_budget(
                target_epsilon=kwargs["target_epsilon"], target_delta=kwargs["target_delta"],
                sampling_probability=kwargs["sampling_probability"],
                num_rounds=kwargs["num_rounds"])
        except ValueError as err:
            parser.error(f"--target-epsilon cannot be met with these settings: {err}")
    import tensorflow  # noqa: F401  (imported before seeding, so that TF is seeded too)

    reproducibility.seed_everything(args.seed)
    federation = make_federation(args.num_clients, split=args.split,
                                 alpha=DEFAULTS["alpha"] if args.alpha is None else args.alpha,
                                 seed=args.seed)
    result = run_experiment(federation.client_datasets, federation.test_data,
                            progress=not args.no_progress, **kwargs)
    result.config.update({"split": args.split, "alpha": federation.alpha})

    print(results_table(result))
    print()
    print(summary_line(result))
    args.output.mkdir(parents=True, exist_ok=True)
    metrics_path = args.output / "metrics.json"
    metrics_path.write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    plotting.use_course_style()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    label = ("non-private" if result.config["privacy"] == "non-private"
             else f"DP-FedAvg, z = {result.config['noise_multiplier']:.3g}")
    plotting.plot_accuracy_and_epsilon({label: result.history},
                                       target_epsilon=kwargs["target_epsilon"], axes=axes)
    fig.suptitle(f"N = {result.config['num_clients']} clients ({args.split}), q = "
                 f"{result.config['sampling_probability']:.3g}, {args.model}", fontsize=10)
    fig.tight_layout()
    plot_path = args.output / "plot.png"
    fig.savefig(plot_path, dpi=100)
    plt.close(fig)
    print(f"wrote {metrics_path} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
