"""The whole multi-client experiment: a federation, DP-FedAvg with a privacy budget, the result.

What notebook 04 does step by step, packaged so that the command line (:mod:`fl_helpers.cli`),
the ``### Try it`` widget and the benchmarks run exactly the same experiment:

* :func:`make_federation` splits MNIST's training set among ``num_clients`` clients (IID, the
  label shards of McMahan et al. 2017, or Dirichlet label skew);
* :func:`run_experiment` trains with DP-FedAvg (McMahan et al. 2018, "Learning Differentially
  Private Recurrent Language Models", Algorithm 1) through
  :func:`fl_helpers.training.run_dp_fedavg`. Given a ``target_epsilon`` it asks the accountant
  once for the smallest noise multiplier that keeps ``num_rounds`` rounds within the budget;
  given a ``noise_multiplier`` it reports the epsilon spent round by round; given neither it
  trains without privacy (no clipping, no noise).

Formatting the result (tables, one-line summaries, JSON) lives in :mod:`fl_helpers.reporting`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from fl_helpers import _validation as v
from fl_helpers import (
    accounting,
    aggregation,
    data,
    experiment_defaults,
    models,
    schedule,
    training,
)

#: How the training set can be split among clients (see :func:`make_federation`).
SPLITS: tuple[str, ...] = ("iid", "shards", "dirichlet")

#: The model factories :func:`run_experiment` accepts, by name.
MODELS: dict[str, Callable[..., keras.Model]] = {
    "softmax_regression": models.make_softmax_regression,
    "2nn": models.make_2nn,
    "cnn": models.make_cnn,
}

#: Label shards per client for ``split="shards"`` (McMahan et al. 2017, Section 3).
SHARDS_PER_CLIENT = 2

#: The clipping norm used for non-private runs: larger than any update can be, so the clipping
#: factor ``min(1, C / ||delta||)`` is exactly 1 and nothing is clipped.
NO_CLIPPING = 1e30

#: Defaults shared by the command line, the widget and the notebook (their one home is
#: :mod:`fl_helpers.experiment_defaults`, which the command line reads without TensorFlow).
DEFAULTS = experiment_defaults.DEFAULTS


class Privacy(enum.Enum):
    """What kind of run an experiment was."""

    NON_PRIVATE = "non-private"
    CLIPPING_ONLY = "clipping only"
    CENTRAL_DP = "central DP"
    LOCAL_DP = "local DP"


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
        mnist: The output of :func:`fl_helpers.data.load_mnist` if already loaded, else ``None``:
            ``((x_train, y_train), (x_test, y_test))``, finite numeric images and 1-D integer
            labels of the same lengths.

    Returns:
        A :class:`Federation`.

    Raises:
        TypeError, ValueError: ``split`` is unknown, ``mnist`` is malformed, or a partition
            argument is out of range.
    """
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {v._fmt(split)}.")
    seed = v.check_int("seed", seed, minimum=0)
    alpha = v.check_positive("alpha", alpha)
    (x_train, y_train), test_data = data.load_mnist() if mnist is None else _check_mnist(mnist)
    num_clients = v.check_int("num_clients", num_clients, minimum=1, maximum=len(y_train))
    rng = np.random.default_rng(seed)
    if split == "iid":
        partitions = data.partition_iid(len(y_train), num_clients, rng=rng)
    elif split == "shards":
        partitions = data.partition_shards(y_train, num_clients,
                                           shards_per_client=SHARDS_PER_CLIENT, rng=rng)
    else:
        partitions = data.partition_dirichlet(y_train, num_clients, alpha=alpha, rng=rng)
    return Federation(
        client_datasets=data.client_datasets(x_train, y_train, partitions),
        partitions=partitions, train_labels=y_train, test_data=test_data, split=split,
        alpha=alpha if split == "dirichlet" else None)


def _check_mnist(mnist: Any) -> tuple[tuple[np.ndarray, np.ndarray],
                                     tuple[np.ndarray, np.ndarray]]:
    """``mnist`` as ``((x_train, y_train), (x_test, y_test))``, each pair checked."""
    if not isinstance(mnist, (tuple, list)) or len(mnist) != 2:
        raise TypeError(f"mnist must be ((x_train, y_train), (x_test, y_test)) as from "
                        f"data.load_mnist(), got {type(mnist).__name__}.")
    checked = []
    for part, pair in zip(("train", "test"), mnist, strict=True):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"mnist's {part} part must be an (x, y) pair, got "
                            f"{type(pair).__name__}.")
        try:
            x, y = np.asarray(pair[0]), np.asarray(pair[1])
        except (TypeError, ValueError):
            raise TypeError(f"mnist's {part} part must hold arrays (x, y).") from None
        if x.ndim < 2 or not (np.issubdtype(x.dtype, np.floating)
                              or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"mnist's {part} images must be a numeric array of images, got shape "
                            f"{x.shape} and dtype {x.dtype}.")
        if not np.isfinite(x).all():
            raise ValueError(f"mnist's {part} images must be finite, got NaN or inf values.")
        if y.ndim != 1 or y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"mnist's {part} labels must be a 1-D integer array, got shape "
                            f"{y.shape} and dtype {y.dtype}.")
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"mnist's {part} images and labels must have the same length >= 1, "
                             f"got {len(x)} and {len(y)}.")
        checked.append((x, y))
    return checked[0], checked[1]


# --------------------------------------------------------------------------------------------
# Noise calibration
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _calibrated(target_epsilon: float, target_delta: float, sampling_probability: float,
                num_rounds: int, accountant: accounting.AccountantName) -> float:
    return accounting.noise_multiplier_for_epsilon(
        target_epsilon=target_epsilon, target_delta=target_delta,
        sampling_probability=sampling_probability, num_rounds=num_rounds,
        accountant=accountant)


def noise_multiplier_for_budget(
        *, target_epsilon: float, target_delta: float, sampling_probability: float,
        num_rounds: int, accountant: accounting.AccountantName = accounting.Accountant.DISCRETE
) -> float:
    """:func:`fl_helpers.accounting.noise_multiplier_for_epsilon`, remembered per setting.

    A widget asks for the same few budgets again and again; the accountant checks the arguments
    (this function does not) and a repeated setting costs nothing.
    """
    settings = (target_epsilon, target_delta, sampling_probability, num_rounds, accountant)
    if all(isinstance(x, (int, float, str)) for x in settings):
        return _calibrated(*settings)
    # Not cacheable (e.g. a numpy scalar or a bad type): the accountant checks and answers.
    return accounting.noise_multiplier_for_epsilon(
        target_epsilon=target_epsilon, target_delta=target_delta,
        sampling_probability=sampling_probability, num_rounds=num_rounds, accountant=accountant)


# --------------------------------------------------------------------------------------------
# One experiment
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class ExperimentResult:
    """One run of :func:`run_experiment`.

    Attributes:
        config: Every setting of the run, the derived ones included (``noise_multiplier``,
            ``sampling_probability``, ``expected_clients_per_round``, ``privacy``).
        history: The run's :class:`fl_helpers.training.DPHistory`.
        accountant_seconds: Time spent calibrating the noise (0 if ``z`` was given or cached).
        total_seconds: Wall-clock time of the whole run: calibration, setup, training and the
            evaluation after every round.
    """

    config: dict[str, Any]
    history: training.DPHistory
    accountant_seconds: float
    total_seconds: float

    @property
    def privacy(self) -> Privacy:
        """What kind of run this was."""
        return self.config["privacy"]

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
        """Rounds actually trained."""
        return int(self.history.rounds.size)


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
                   seed: int = DEFAULTS["seed"],
                   noise_placement: str | aggregation.NoisePlacement = "central",
                   progress: bool = False, callback: training.Callback | None = None,
                   randomness: schedule.PrivateRandomness | None = None,
                   diagnostics: bool = False, accountant: accounting.AccountantName | None = None,
                   expected_clients: float | None = None, noise: str = "exact"
                   ) -> ExperimentResult:
    """Trains one federated model with (or without) client-level differential privacy.

    Three modes, by which of ``target_epsilon`` and ``noise_multiplier`` is given:

    * ``target_epsilon``: the noise multiplier is the accountant's smallest ``z`` for which
      ``num_rounds`` rounds spend at most ``target_epsilon`` (calibrated once).
    * ``noise_multiplier``: ``z`` as given (0 clips without noise); epsilon is reported per round.
    * neither: no privacy, federated averaging of the unclipped updates (``z = 0`` and clipping
      norm :data:`NO_CLIPPING`) with the same Poisson sampling, drawn reproducibly from the
      seed; the reported epsilon is ``inf``.

    With ``noise_placement="local"`` every sampled client adds the noise to its own clipped
    update instead (local DP, no trusted server), and a ``target_epsilon`` is met by the busiest
    client of the run's (secret) schedule
    (:func:`fl_helpers.accounting.local_noise_multiplier`).

    Each argument is checked once, by the function that uses it (the accountant, the training
    loop or the aggregation rule).

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
        seed: Integer >= 0 fixing the model's initial weights and the clients' batches.
        noise_placement: ``"central"`` or ``"local"``; private runs only.
        progress: Show a tqdm progress bar.
        callback: Called after every round (see :func:`fl_helpers.training.run_dp_fedavg`).
        randomness: The noise's and the client sampling's
            :class:`fl_helpers.schedule.PrivateRandomness` (claimed by the run). ``None``
            (default): a fresh secret one for a private run (a non-private run's sampling is
            public and follows ``seed``). ``PrivateRandomness.reproducible(seed)``: NOT
            private; for teaching and tests (its warning says so).
        diagnostics: Also return per-client figures (NOT covered by epsilon).
        accountant: Calibrates the noise and reports epsilon: ``None`` (default) picks the one
            that bounds the noise (``"discrete"`` for exact noise, ``"pld"`` for float);
            ``"pld"`` and ``"rdp"`` only with ``noise="float"``.
        expected_clients: The public divisor ``q N`` of DP-FedAvg's average: ``q`` times the
            federation's published size, fixed before the run. Required for a private run
            (never counted from ``client_datasets``, whose size is private under add/remove;
            see :func:`fl_helpers.training.run_dp_fedavg`); a non-private run divides by
            ``q * len(client_datasets)`` unless given.
        noise: ``"exact"`` (default: integer sum and exact discrete Gaussian noise, accounted
            and calibrated by the ``"discrete"`` accountant) or ``"float"`` (float32 noise, not
            private against a floating-point attack, warns); see
            :class:`fl_helpers.aggregation.DPFedAvg`. A non-private run adds no noise and
            averages in float.

    Returns:
        An :class:`ExperimentResult`.

    Raises:
        TypeError, ValueError: An argument is malformed, both ``target_epsilon`` and
            ``noise_multiplier`` are given, or the budget cannot be met (the message says which).
    """
    start = time.perf_counter()
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {v._fmt(model)}.")
    if target_epsilon is not None:
        target_epsilon = v.check_positive("target_epsilon", target_epsilon)
    if noise_multiplier is not None:
        noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
    if target_epsilon is not None and noise_multiplier is not None:
        raise ValueError(
            f"give target_epsilon or noise_multiplier, not both, got target_epsilon="
            f"{target_epsilon} and noise_multiplier={noise_multiplier}.")
    target_delta = v.check_open_unit("target_delta", target_delta)
    if randomness is not None:
        randomness = schedule.resolve_randomness(randomness)
    placement = aggregation.NoisePlacement.parse(noise_placement)
    accountant = accounting.accountant_for_noise(accountant, aggregation.check_noise(noise))
    local = placement is aggregation.NoisePlacement.LOCAL
    if local and target_epsilon is None and noise_multiplier is None:
        raise ValueError("noise_placement='local' needs target_epsilon or noise_multiplier, got "
                         "neither (a non-private run adds no noise anywhere).")
    private = target_epsilon is not None or noise_multiplier is not None
    if randomness is None:  # a non-private run's sampling is public: it follows the seed
        randomness = (schedule.PrivateRandomness.secret() if private
                      else schedule.PrivateRandomness.reproducible(seed, warn=False))
    accountant_seconds = 0.0
    if target_epsilon is not None:
        tic = time.perf_counter()
        if local:
            schedule_ = randomness.poisson_schedule(
                len(client_datasets), sampling_probability=sampling_probability,
                num_rounds=num_rounds)
            busiest = int(schedule.busiest_client_counts(schedule_, len(client_datasets))[-1])
            z = accounting.local_noise_multiplier(
                target_epsilon=target_epsilon, target_delta=target_delta,
                busiest_reports=busiest, accountant=accountant)
        else:
            z = noise_multiplier_for_budget(
                target_epsilon=target_epsilon, target_delta=target_delta,
                sampling_probability=sampling_probability, num_rounds=num_rounds,
                accountant=accountant)
        accountant_seconds = time.perf_counter() - tic
        kind = Privacy.LOCAL_DP if local else Privacy.CENTRAL_DP
    elif noise_multiplier is not None:
        z = noise_multiplier
        kind = (Privacy.LOCAL_DP if local else Privacy.CENTRAL_DP) if z > 0 \
            else Privacy.CLIPPING_ONLY
    else:
        v.check_positive("clipping_norm", clipping_norm)  # unused here, but never garbage
        z, kind, clipping_norm = 0.0, Privacy.NON_PRIVATE, NO_CLIPPING
        noise = "float"  # nothing is noised, and the unclipped updates need no integer grid

    history = training.run_dp_fedavg(
        functools.partial(MODELS[model], seed=seed), client_datasets, num_rounds=num_rounds,
        sampling_probability=sampling_probability, local_epochs=local_epochs,
        batch_size=batch_size, client_learning_rate=client_learning_rate,
        clipping_norm=clipping_norm, noise_multiplier=z,
        server_learning_rate=server_learning_rate, test_data=test_data, seed=seed,
        progress=progress, target_delta=target_delta, callback=callback,
        noise_placement=placement, randomness=randomness, diagnostics=diagnostics,
        accountant=accountant, noise=noise,
        expected_clients=(accounting.check_sampling_probability(sampling_probability)
                          * len(client_datasets)
                          if expected_clients is None and kind is Privacy.NON_PRIVATE
                          else expected_clients))
    config = {
        "privacy": kind,
        "num_clients": len(client_datasets),
        "sampling_probability": history.sampling_probability,
        "expected_clients_per_round": history.expected_clients,
        "num_rounds": num_rounds,
        "target_epsilon": target_epsilon,
        "noise_multiplier": history.noise_multiplier,
        "target_delta": target_delta,
        "clipping_norm": None if kind is Privacy.NON_PRIVATE else history.clipping_norm,
        "model": model,
        "local_epochs": local_epochs,
        "batch_size": batch_size,
        "client_learning_rate": client_learning_rate,
        "server_learning_rate": server_learning_rate,
        "seed": seed,
        "engine": history.engine.value,
        "accountant": history.accountant,
        "reproducible_noise": history.reproducible_noise,
        "noise": history.noise,
    }
    return ExperimentResult(config=config, history=history,
                            accountant_seconds=accountant_seconds,
                            total_seconds=time.perf_counter() - start)


if __name__ == "__main__":
    # ``python -m fl_helpers.experiment`` runs the command line, which lives in its own module
    # (fl_helpers.cli imports this one; this module never imports it).
    import runpy

    runpy.run_module("fl_helpers.cli", run_name="__main__", alter_sys=True)
