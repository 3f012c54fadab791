"""The one training loop of the course, and its two front doors: FedAvg and DP-FedAvg.

Every federated run -- plain FedAvg (McMahan et al. 2017, Algorithm 1), DP-FedAvg (McMahan et al.
2018, "Learning Differentially Private Recurrent Language Models", Algorithm 1), a robust rule
such as the coordinate-wise median -- is the same loop, round after round:

1. sample this round's clients (:mod:`fl_helpers.schedule`);
2. train each from the global weights (the fast engine :mod:`fl_helpers.engine`, or the
   per-client reference :class:`fl_helpers.client.LoopTrainer`);
3. aggregate their updates with an :class:`fl_helpers.aggregation.AggregationRule`;
4. apply the result with a server optimizer, evaluate, report.

:func:`run_fedavg` samples a fixed number of clients per round from the public seed and
averages with :class:`~fl_helpers.aggregation.FedAvg` (or any rule you pass).
:func:`run_dp_fedavg` Poisson-samples clients and adds noise from a **secret** source
(:class:`fl_helpers.schedule.PrivateRandomness`), aggregates with
:class:`~fl_helpers.aggregation.DPFedAvg`, accounts epsilon after every round with
:mod:`fl_helpers.accounting` and can stop when a budget is spent.
:func:`run_private_schedule` runs the same loop on a participation schedule the caller gives
and has checked (DP-FTRL, :func:`fl_helpers.dp_ftrl.run_dp_ftrl`: no sampling, each client at
most once per tree), with the caller's epsilon per round; it returns the fields of a history.

What a private run releases, and what its epsilon covers: the sequence of global models (and
figures computed from them on public test data) is what the epsilon of :class:`DPHistory`
protects. Everything else a run could report -- who was sampled, how many clients took part, each
client's update norm, the share clipped -- depends on the private data or the secret schedule and
is *not* covered. Such figures are only returned when asked for with ``diagnostics=True``, in a
separate :class:`Diagnostics` object, with a warning.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import dp_accounting
import keras
import numpy as np
from tqdm.auto import tqdm

from fl_helpers import _validation as v
from fl_helpers import accounting, aggregation, checkpoints, client, engine, faults, schedule

Weights = list[np.ndarray]
_engine_module = engine  # run_fedavg's argument ``engine`` shadows the module's name
Callback = Callable[[dict[str, Any]], "bool | None"]


class Engine(enum.Enum):
    """How the sampled clients of a round are trained."""

    #: ``FAST`` for Dense stacks (where it is measured faster), ``LOOP`` otherwise (the CNN).
    AUTO = "auto"
    #: All sampled clients in one XLA-compiled graph (:mod:`fl_helpers.engine`).
    FAST = "fast"
    #: One :func:`fl_helpers.client.client_update` per client (the reference).
    LOOP = "loop"


class StopReason(enum.Enum):
    """Why a run stopped before ``num_rounds``."""

    #: The next round would have spent more than ``target_epsilon``.
    BUDGET = "target_epsilon"
    #: The callback returned ``True``.
    CALLBACK = "callback"


@dataclasses.dataclass(eq=False)
class Diagnostics:
    """Per-round figures that depend on private data: **not covered by the run's epsilon**.

    Returned only when a run is called with ``diagnostics=True``. Releasing any of them can leak
    information about individual clients that the reported epsilon does not account for (e.g. a
    client's update norm, or whether it took part).

    Attributes:
        sampled_clients: Per round, the ids of the clients sampled.
        update_norms: Per round, every sampled client's update norm before clipping.
        clipped_update_norms: Per round, every sampled client's update norm after clipping.
        rejections: Client updates the server rejected (:class:`fl_helpers.faults.Rejection`:
            round, client id, reason); of a private run they are only reported here.
    """

    sampled_clients: list[np.ndarray]
    update_norms: list[np.ndarray]
    clipped_update_norms: list[np.ndarray]
    rejections: list[faults.Rejection] = dataclasses.field(default_factory=list)

    @property
    def num_sampled(self) -> np.ndarray:
        """Number of clients sampled in each round."""
        return np.asarray([len(s) for s in self.sampled_clients], dtype=np.int64)

    def fraction_clipped(self, clipping_norm: float) -> np.ndarray:
        """Share of each round's updates with norm > ``clipping_norm`` (NaN for an empty round)."""
        return np.asarray([np.mean(n > clipping_norm) if n.size else math.nan
                           for n in self.update_norms], dtype=np.float64)

    @property
    def mean_update_norm(self) -> np.ndarray:
        """Mean update norm before clipping in each round (NaN for an empty round)."""
        return np.asarray([np.mean(n) if n.size else math.nan for n in self.update_norms],
                          dtype=np.float64)


@dataclasses.dataclass(eq=False)
class History:
    """What a federated run measured, one entry per round trained.

    Attributes:
        rounds: Round numbers 1..T (int64); T < num_rounds if the run stopped early.
        test_accuracy: Accuracy of the global model on ``test_data`` after each round, in [0, 1]
            (empty if no ``test_data`` was given).
        test_loss: Mean cross-entropy on ``test_data`` after each round (empty likewise).
        final_weights: Global per-layer weights after the last round.
        seconds_per_round: Wall-clock seconds of each round's training (sampling, local updates,
            aggregation), without the evaluation. A round's time grows with the number of
            clients sampled, which is secret in a private run: there every entry is the mean
            over the run's rounds (the per-round times only with ``diagnostics=True``).
        engine: The engine that trained the clients (``AUTO`` resolved).
        aggregation: The name of the aggregation rule.
        stopped_early: Why training stopped before ``num_rounds``, or ``None``.
        diagnostics: Per-client figures, only if the run was asked for them (see
            :class:`Diagnostics`), else ``None``.
        rejections: Client updates the server rejected and did not use
            (:class:`fl_helpers.faults.Rejection`: round, client id, reason): the client raised,
            sent NaN/inf or wrongly shaped arrays, or missed the deadline. Always empty for a
            private run (who failed is private: see ``diagnostics``).
        skipped_rounds: Round numbers in which no sampled client's update was accepted: the
            model stayed unchanged (a private run still adds its noise; then empty, as above).
    """

    rounds: np.ndarray
    test_accuracy: np.ndarray
    test_loss: np.ndarray
    final_weights: Weights
    seconds_per_round: np.ndarray
    engine: Engine
    aggregation: str
    stopped_early: StopReason | None = None
    diagnostics: Diagnostics | None = None
    rejections: list[faults.Rejection] = dataclasses.field(default_factory=list)
    skipped_rounds: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def total_seconds(self) -> float:
        """Training time over all rounds, in seconds."""
        return float(np.sum(self.seconds_per_round))

    def as_dict(self) -> dict[str, np.ndarray]:
        """The per-round series as plain numpy arrays, keyed by name (handy for plotting/JSON)."""
        return {name: np.array(getattr(self, name)) for name in self._series()}

    def _series(self) -> tuple[str, ...]:
        return ("rounds", "test_accuracy", "test_loss", "seconds_per_round")


@dataclasses.dataclass(eq=False)
class DPHistory(History):
    """What :func:`run_dp_fedavg` measured: a :class:`History` plus the privacy spent.

    Attributes:
        epsilon: Epsilon spent after each round for ``target_delta`` (empty without
            ``target_delta``; ``inf`` if ``noise_multiplier`` is 0). Client-level: it protects
            all the data of one client (add/remove one client) against whoever sees the
            sequence of global models; see :func:`run_dp_fedavg` for the threat model.
        noise_multiplier, clipping_norm, sampling_probability, target_delta: The settings.
        noise_placement: Central (the server noised the sum) or local (every client noised its
            own update; epsilon is then the busiest client's, replace-one relation).
        accountant: The accountant that computed ``epsilon``.
        reproducible_noise: ``True`` if the noise and sampling were derived from the seed (the
            epsilon then does not hold against anyone who knows it).
        expected_clients: The public divisor ``q N`` the noisy sum was divided by (a constant
            of the run, not a count of the private data).
        noise: ``"exact"`` (integer sum, exact discrete Gaussian) or ``"float"`` (float32
            Gaussian, open to a floating-point attack).
        clipping_norms: ``C_t`` used in each round (float64): constant for a fixed ``C``, the
            adapted norm with adaptive clipping (public: a function of ``C_0`` and earlier
            noised releases only). ``clipping_norm`` is then ``C_0``.
        adaptive_clipping: The :class:`fl_helpers.aggregation.AdaptiveClipping` settings, or
            ``None`` for a fixed ``C``.
        update_noise_multiplier: ``z_Delta``, the multiplier of the noise on the updates: ``z``
            for a fixed ``C``; with adaptive clipping the larger share that the count's noise
            leaves (``noise_multiplier`` is the total ``z`` that ``epsilon`` accounts).
        clip_on: Who clipped (:class:`fl_helpers.aggregation.ClipPlacement`).
    """

    epsilon: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    noise_multiplier: float = 0.0
    clipping_norm: float = math.inf
    sampling_probability: float = 1.0
    target_delta: float | None = None
    noise_placement: aggregation.NoisePlacement = aggregation.NoisePlacement.CENTRAL
    accountant: str = "pld"
    reproducible_noise: bool = False
    expected_clients: float = math.nan
    noise: str = "float"
    clipping_norms: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    adaptive_clipping: aggregation.AdaptiveClipping | None = None
    update_noise_multiplier: float = 0.0
    clip_on: aggregation.ClipPlacement = aggregation.ClipPlacement.SERVER

    def _series(self) -> tuple[str, ...]:
        return (*super()._series(), "epsilon")


@dataclasses.dataclass(eq=False)
class DPFTRLHistory(DPHistory):
    """What :func:`fl_helpers.dp_ftrl.run_dp_ftrl` measured: a :class:`DPHistory` of DP-FTRL.

    DP-FTRL (Kairouz et al. 2021, "Practical and Private (Deep) Learning without Sampling or
    Shuffling") samples nobody: ``sampling_probability`` is 1 and means nothing here. Its
    ``epsilon`` is for the relation *one client's updates replaced by zeros* (dp-accounting's
    ``REPLACE_SPECIAL``), under the assumption that every client takes part at most once per
    tree, checked on the public schedule before the run.

    Attributes:
        restart_every: Rounds per tree (``None``: one tree for the whole run).
        clients_per_round: ``m``, the public divisor of the noised prefix sums (also in
            ``expected_clients``).
        trees_per_client: The most trees one client took part in (once each), from
            :func:`fl_helpers.dp_ftrl.check_participation`.
        schedule_rounds: Rounds in the checked schedule (the run may stop earlier by callback).
    """

    restart_every: int | None = None
    clients_per_round: float = math.nan
    trees_per_client: int = 0
    schedule_rounds: int = 0


# --------------------------------------------------------------------------------------------
# The client side as an object: what each sampled client optimises, and the state it keeps
# --------------------------------------------------------------------------------------------

#: What trains a round's clients: the per-client reference or the fast engine. Both offer
#: ``train(global_weights, sampled_clients, round_index, work=None)`` and the attributes
#: ``local_epochs``, ``batch_size``, ``client_learning_rate``, ``seed`` and ``client_datasets``
#: (the loop's) or ``sizes`` (the engine's).
Trainer = client.LoopTrainer | engine.MultiClientEngine


def client_sizes(trainer: Trainer) -> np.ndarray:
    """``n_k`` of every client the trainer holds (int64).

    Raises:
        TypeError: ``trainer`` is not a trainer.
    """
    if isinstance(trainer, engine.MultiClientEngine):
        return trainer.sizes
    if not isinstance(trainer, client.LoopTrainer):
        raise TypeError(f"trainer must be a client.LoopTrainer or an engine.MultiClientEngine, "
                        f"got {type(trainer).__name__}.")
    return np.asarray([len(y) for _, y in trainer.client_datasets], dtype=np.int64)


def local_steps(trainer: Trainer, clients: np.ndarray) -> np.ndarray:
    """The local SGD steps ``K`` that each of ``clients`` takes in a full round: ``E`` epochs of
    ``ceil(n_k / B)`` batches (one per epoch when ``B`` is ``None``), as
    :func:`fl_helpers.schedule.client_batches` cuts them.

    Raises:
        TypeError, ValueError: ``trainer`` is not a trainer, or ``clients`` are not ids of its
            clients.
    """
    all_sizes = client_sizes(trainer)
    sizes = all_sizes[v.check_ids("clients", clients, num=len(all_sizes))]
    if trainer.batch_size is None:
        per_epoch = np.ones_like(sizes)
    else:
        per_epoch = -(-sizes // np.minimum(trainer.batch_size, sizes))
    return (trainer.local_epochs * per_epoch).astype(np.int64)


class ClientAlgorithm:
    """The client side of a federated algorithm, plugged into the one loop.

    The loop (:func:`run_fedavg`'s ``client_algorithm``) calls :meth:`start` once with the
    number of clients and the initial weights, then every round :meth:`train_round` with the
    round's trainer (the fast engine or the per-client loop), the global weights ``w_t`` and
    the sampled ids; what it returns (every client's update ``delta_k``, and ``n_k``) goes to the
    aggregation rule, then the server optimizer, as usual. A subclass says what each client
    optimises by returning a :class:`fl_helpers.client.LocalWork` from :meth:`local_work`
    (FedProx's proximal term, stragglers' partial work), or overrides :meth:`train_round` to
    keep per-client state across rounds (SCAFFOLD's control variates, Ditto's personal models).
    This base class is plain local SGD: FedAvg's client (McMahan et al. 2017, Algorithm 1).

    A stateful algorithm serves one run (:meth:`start` resets it) and refuses checkpoints.
    """

    #: A short name for histories and plots.
    name = "FedAvg"
    #: Model-sized arrays each client uploads per round (SCAFFOLD: 2, the update and the
    #: change of its control variate).
    uploads_per_client = 1
    #: Whether the algorithm keeps state across rounds (then no checkpoint: it is not saved).
    stateful = False

    def start(self, num_clients: int, weights: Weights) -> None:
        """Called once before the first round (``weights`` is ``w_0``)."""
        del num_clients, weights

    def local_work(self, trainer: Trainer, weights: Weights, sampled: np.ndarray,
                   round_index: int) -> client.LocalWork | None:
        """What the sampled clients optimise this round; ``None`` is plain local SGD."""
        del trainer, weights, sampled, round_index
        return None

    def train_round(self, trainer: Trainer, weights: Weights, sampled: np.ndarray,
                    round_index: int) -> client.ClientResults:
        """Every sampled client's update ``w_k - w_t`` and ``n_k``, for the aggregation rule."""
        work = self.local_work(trainer, weights, sampled, round_index)
        return trainer.train(weights, sampled, round_index, work)

    def upload_bytes(self, weights: Weights) -> int:
        """Bytes one client uploads per round: ``uploads_per_client`` float32 model copies."""
        return self.uploads_per_client * 4 * int(sum(np.size(w) for w in weights))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# --------------------------------------------------------------------------------------------
# Checks of the shared arguments, at the front doors
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Setup:
    model: keras.Model
    datasets: list[tuple[np.ndarray, np.ndarray]]
    test_data: tuple[np.ndarray, np.ndarray] | None
    weights: Weights
    trainer: client.LoopTrainer | engine.MultiClientEngine
    engine: Engine


def _check_engine(value: Any) -> Engine:
    try:
        return Engine(value.value if isinstance(value, Engine) else value)
    except ValueError:
        raise ValueError(f"engine must be one of {[e.value for e in Engine]}, got "
                         f"{value!r}.") from None


def _setup(model_fn: Any, client_datasets: Any, *, num_rounds: Any, local_epochs: Any,
           batch_size: Any, client_learning_rate: Any, test_data: Any, seed: Any,
           engine_choice: Any, initial_weights: Any, callback: Any,
           max_clients_per_round: int | None = None,
           clients_per_round_is_fixed: bool = False) -> tuple[_Setup, int]:
    """Validates the arguments every run shares, builds the model, data and trainer.

    With ``clients_per_round_is_fixed`` (FedAvg), ``max_clients_per_round`` is the user's
    ``clients_per_round`` and is checked against the number of clients here, after the
    datasets themselves (so that a malformed ``client_datasets`` is named as such).
    """
    if isinstance(model_fn, keras.Model):
        raise TypeError(f"model_fn must be a function that builds a model, got the model "
                        f"{model_fn.name!r} itself. Pass e.g. models.make_softmax_regression.")
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}.")
    chosen = _check_engine(engine_choice)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1, maximum=10**7)
    local_epochs = schedule.check_local_epochs(local_epochs)
    batch_size = schedule.check_batch_size(batch_size)
    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    seed = v.check_int("seed", seed, minimum=0)
    _check_callable("callback", callback, {"round": 1})
    model = model_fn()
    if not isinstance(model, keras.Model):
        raise TypeError(f"model_fn must return a keras.Model, got {type(model).__name__}.")
    datasets = client.check_datasets(model, client_datasets)
    if clients_per_round_is_fixed:
        v.check_int("clients_per_round", max_clients_per_round, minimum=1, maximum=len(datasets))
    local_epochs = schedule.check_local_epochs(
        local_epochs, num_examples=max(len(x) for x, _ in datasets))
    test = None if test_data is None else client.check_pair(model, test_data, "test_data")
    if initial_weights is None:
        weights = [np.array(w, dtype=np.float32) for w in model.get_weights()]
    else:
        weights = [np.array(w, dtype=np.float32)
                   for w in client.check_weights(model, initial_weights, "initial_weights")]
    if chosen is Engine.FAST and not engine.supports(model):
        raise ValueError(f"engine='fast' needs a Sequential of Flatten/Reshape/Dense/Conv2D/"
                         f"MaxPooling2D layers ending in logits, got model {model.name!r}. "
                         "Use engine='auto'.")
    # "auto" takes the fast engine where it is measured faster: Dense stacks. Convolutional
    # models run on it too (engine="fast"), but on a CPU their round is bound by the
    # convolutions' arithmetic and the per-client loop was as fast or faster (benchmarks/
    # bench_engine_speed.py --cnn).
    dense = engine.dense_activations(model) is not None
    resolved = Engine.FAST if chosen is Engine.FAST or (chosen is Engine.AUTO and dense) \
        else Engine.LOOP
    local = {"local_epochs": local_epochs, "batch_size": batch_size,
             "client_learning_rate": client_learning_rate, "seed": seed}
    trainer: client.LoopTrainer | engine.MultiClientEngine
    if resolved is Engine.FAST:
        trainer = engine.MultiClientEngine(model, datasets,
                                           max_clients_per_round=max_clients_per_round, **local)
    else:
        trainer = client.LoopTrainer._from_checked(model, datasets, **local)
    return _Setup(model, datasets, test, weights, trainer, resolved), num_rounds


def make_trainer(model: keras.Model, client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                 *, local_epochs: int, batch_size: int | None, client_learning_rate: float,
                 seed: int = 0, engine: str | Engine = "auto") -> Trainer:
    """The trainer the loop would use for these clients, checked: for work outside a run
    (local fine-tuning, :func:`fl_helpers.personalisation.fine_tune`).

    Args:
        model: The architecture (a Keras model, used as a workspace by the per-client loop).
        client_datasets, local_epochs, batch_size, client_learning_rate, seed, engine: As
            :func:`run_fedavg`.

    Returns:
        A :class:`fl_helpers.engine.MultiClientEngine` (``"fast"``, or ``"auto"`` with a Dense
        stack) or a :class:`fl_helpers.client.LoopTrainer`; call its ``train(weights, ids,
        round_index, work=None)``.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model = client.check_model(model)
    chosen = _check_engine(engine)
    datasets = client.check_datasets(model, client_datasets)
    epochs = schedule.check_local_epochs(local_epochs,
                                         num_examples=max(len(x) for x, _ in datasets))
    batch = schedule.check_batch_size(batch_size)
    rate = v.check_positive("client_learning_rate", client_learning_rate)
    seed = v.check_int("seed", seed, minimum=0)
    dense = _engine_module.dense_activations(model) is not None
    if chosen is Engine.FAST or (chosen is Engine.AUTO and dense):
        return _engine_module.MultiClientEngine(model, datasets, local_epochs=epochs,
                                                batch_size=batch, client_learning_rate=rate,
                                                seed=seed)
    return client.LoopTrainer._from_checked(model, datasets, local_epochs=epochs,
                                            batch_size=batch, client_learning_rate=rate,
                                            seed=seed)


def _round_update(setup: _Setup, rule: aggregation.AggregationRule, weights: Weights,
                  sampled: np.ndarray, context: aggregation.RoundContext,
                  hook: faults.ClientHook | None = None, deadline: float | None = None,
                  algorithm: ClientAlgorithm | None = None
                  ) -> tuple[Weights, np.ndarray, np.ndarray, list[faults.Rejection]]:
    """The rule's update for one round, the clients' update norms before/after clipping, and
    the clients rejected (:func:`fl_helpers.faults.screen_round`).

    Fast path (no hook, no deadline, a linear rule on the fast engine): the engine's fused
    clipped sum. If a client's update came out NaN/inf there, the round is trained again client
    by client (same seeds, same updates) and screened, so the faulty client is rejected.

    Rejected clients contribute nothing. FedAvg then averages over the accepted clients' n_k
    (renormalised). DP-FedAvg keeps dividing by the fixed ``q N`` and adds its noise even if
    every client failed: a rejected client's contribution is the zero vector, which has norm
    <= C like any clipped update, so the sum's sensitivity to one client stays ``C``, the
    divisor does not depend on who failed, and the accounting is unchanged.
    """
    trainer = setup.trainer
    linear = rule if isinstance(rule, aggregation.LinearRule) else None
    if hook is None and deadline is None and linear is not None and algorithm is None \
            and isinstance(trainer, engine.MultiClientEngine):
        sizes = np.asarray([len(setup.datasets[int(k)][0]) for k in sampled], dtype=np.int64)
        if linear.fusable:
            summed = trainer.clipped_sum(weights, sampled, context.round_index,
                                         scales=linear.client_scales(sizes),
                                         clipping_norm=linear.clipping_norm)
            if np.isfinite(summed.update_norms).all():
                update = linear.finalize(summed.total, summed.num_examples, context)
                return update, summed.update_norms, summed.clipped_norms, []
        elif linear.takes_factors and trainer.takes_factors and len(sampled) \
                and linear.clipping_norm is not None:
            layers, norms = trainer.clipped_factors(weights, sampled,
                                                    clipping_norm=linear.clipping_norm)
            if np.isfinite(norms).all() and all(np.isfinite(a).all() and np.isfinite(w).all()
                                                for a, w in layers):
                update = linear.aggregate_factors(layers, sizes, context)
                return update, norms, np.minimum(norms, linear.clipping_norm), []
    if algorithm is None:
        results = trainer.train(weights, sampled, context.round_index)
    else:
        results = algorithm.train_round(trainer, weights, sampled, context.round_index)
        if results.clients is not None:
            sampled = results.clients
    deltas, sizes, rejected = faults.screen_round(
        hook, sampled, context.round_index, results.deltas, results.num_examples,
        [w.shape for w in weights], deadline)
    norms = np.asarray([aggregation.update_norm(d) for d in deltas], dtype=np.float64)
    clipped = norms
    if linear is not None and linear.clipping_norm is not None:
        clipped = np.minimum(norms, linear.clipping_norm)
        if getattr(rule, "clip_on", None) is aggregation.ClipPlacement.CLIENT:
            norms = clipped  # the server never sees an unclipped update, nor its norm
    if deltas:
        update = rule.aggregate(deltas, sizes, context)
    else:  # a private rule noises an empty round too, whoever failed
        update = rule.aggregate_empty([w.shape for w in weights], context)
    return update, norms, clipped, rejected


def _loop(setup: _Setup, *, rule: aggregation.AggregationRule,
          server_optimizer: aggregation.ServerOptimizer, rounds: list[np.ndarray],
          randomness: schedule.PrivateRandomness | None, epsilons: np.ndarray | None,
          progress: bool, description: str, callback: Callback | None,
          diagnostics: bool, client_hook: faults.ClientHook | None = None,
          deadline: float | None = None, checkpoint: str | os.PathLike | None = None,
          checkpoint_every: int = 1,
          client_algorithm: ClientAlgorithm | None = None) -> dict[str, Any]:
    """The one training loop: sample (given), train, aggregate, step, evaluate, report.

    With ``checkpoint``, the run's state is written there (atomically) every
    ``checkpoint_every`` rounds and after the last, and a run that finds the file resumes from it
    (see :func:`_save_state`).
    """
    evaluate: Callable[[Weights], tuple[float, float]] | None = None
    if setup.test_data is not None:
        if isinstance(setup.trainer, engine.MultiClientEngine):
            evaluate = setup.trainer.evaluator(*setup.test_data)
        else:
            evaluate = client.Evaluator(setup.model, *setup.test_data)
    weights = setup.weights
    columns: dict[str, list[Any]] = {key: [] for key in (
        "test_accuracy", "test_loss", "seconds", "update_norms", "clipped_norms")}
    stopped: StopReason | None = None
    rejections: list[faults.Rejection] = []
    skipped: list[int] = []
    # Who failed is private in a private run: reported only with diagnostics=True.
    report_faults = randomness is None or diagnostics
    key = f"{rule.name}|{len(rounds)}|{len(setup.datasets)}|{[w.shape for w in weights]}"
    first = 0
    if checkpoint is not None and os.path.exists(checkpoint):
        weights, first = _load_state(checkpoint, key, columns, rejections, skipped,
                                     server_optimizer, rule)
    if client_algorithm is not None:
        client_algorithm.start(len(setup.datasets), [np.array(w) for w in weights])
    bar = tqdm(range(first, len(rounds)), desc=f"{description} ({setup.engine.value})",
               unit="round", disable=not progress, initial=first, total=len(rounds))
    for t in bar:
        start = time.perf_counter()
        context = aggregation.RoundContext(round_index=t, num_clients=len(setup.datasets),
                                           randomness=randomness)
        update, norms, clipped, rejected = _round_update(setup, rule, weights, rounds[t],
                                                         context, client_hook, deadline,
                                                         client_algorithm)
        # In a private run, that a round's clients all failed is private (it can single out
        # the round where only the target was sampled): the round's noise is applied as
        # always, and nothing is said unless diagnostics=True (not covered by epsilon).
        if rejected and len(rejected) == len(rounds[t]) and report_faults:
            if all(r.reason.startswith("non-finite") for r in rejected):
                raise ValueError(
                    f"every client's update in round {t + 1} holds NaN or inf values: the "
                    "clients' training diverged. Try a smaller client_learning_rate.")
            unchanged = " except for the noise" if rule.draws_run_noise else ""
            warnings.warn(f"round {t + 1}: every sampled client's update was rejected; the "
                          f"global model is unchanged{unchanged}.", RuntimeWarning, stacklevel=3)
            skipped.append(t + 1)
        if report_faults:
            rejections.extend(rejected)
        weights = server_optimizer.apply(weights, update)
        if not all(np.isfinite(w).all() for w in weights):
            raise ValueError(
                f"the global weights hold NaN or inf values after round {t + 1}: a client's "
                "training diverged. Try a smaller client_learning_rate.")
        columns["seconds"].append(time.perf_counter() - start)
        columns["update_norms"].append(norms)
        columns["clipped_norms"].append(clipped)
        figures: dict[str, Any] = {"round": t + 1, "test_accuracy": None, "test_loss": None}
        if epsilons is not None:
            figures["epsilon"] = float(epsilons[t])
        if isinstance(rule, aggregation.AdaptiveClipDPFedAvg):
            figures["clipping_norm"] = rule.clipping_norms[-1]  # C_t: public
        if diagnostics:
            figures["num_sampled"] = int(len(rounds[t]))
            figures["mean_update_norm"] = float(np.mean(norms)) if norms.size else math.nan
        if evaluate is not None:
            loss, accuracy = evaluate(weights)
            figures["test_loss"], figures["test_accuracy"] = loss, accuracy
            columns["test_loss"].append(loss)
            columns["test_accuracy"].append(accuracy)
            bar.set_postfix(test_accuracy=f"{accuracy:.4f}", refresh=False)
        if checkpoint is not None and ((t + 1) % checkpoint_every == 0 or t + 1 == len(rounds)):
            _save_state(checkpoint, key, weights, t + 1, columns if diagnostics else {
                **columns, "update_norms": [], "clipped_norms": []}, rejections, skipped,
                server_optimizer, rule)
        if callback is not None and callback(figures) is True:
            stopped = StopReason.CALLBACK
            break
    bar.close()
    done = len(columns["seconds"])
    if not report_faults and done:
        # A round's time tells how many clients were sampled (the schedule is secret): a
        # private run reports every round at the mean time (the total is unchanged).
        columns["seconds"] = [float(np.mean(columns["seconds"]))] * done
    return {
        "rounds": np.arange(1, done + 1, dtype=np.int64),
        "test_accuracy": np.asarray(columns["test_accuracy"], dtype=np.float64),
        "test_loss": np.asarray(columns["test_loss"], dtype=np.float64),
        "final_weights": weights,
        "seconds_per_round": np.asarray(columns["seconds"], dtype=np.float64),
        "engine": setup.engine,
        "aggregation": rule.name,
        "stopped_early": stopped,
        "diagnostics": Diagnostics(sampled_clients=[np.array(r) for r in rounds[:done]],
                                   update_norms=columns["update_norms"],
                                   clipped_update_norms=columns["clipped_norms"],
                                   rejections=list(rejections))
        if diagnostics else None,
        "rejections": rejections if randomness is None else [],
        "skipped_rounds": np.asarray(skipped if randomness is None else [], dtype=np.int64),
    }


_CHECKPOINT_FORMAT = "fl_helpers.training checkpoint 1"


def _save_state(path: str | os.PathLike, key: str, weights: Weights, next_round: int,
                columns: dict[str, list[Any]], rejections: list[faults.Rejection],
                skipped: list[int], server_optimizer: aggregation.ServerOptimizer,
                rule: aggregation.AggregationRule) -> None:
    """Writes a checkpoint: everything the loop needs to continue exactly where it stopped.

    The global weights, the next round, the per-round figures so far, the rejections, the
    server optimizer's whole state (every attribute: momentum, Adam's moments) and the rule's
    (:meth:`fl_helpers.aggregation.AggregationRule.state_arrays`: adaptive clipping's norm).
    The client schedule and the clients' batches are functions of the seed and the round (and, for a
    private run, of its :class:`fl_helpers.schedule.PrivateRandomness`, which is never written:
    a file holding the noise's secret would let its reader remove the noise), so they need no
    saving. Nothing here is pickled; :func:`fl_helpers.checkpoints.save_checkpoint` writes
    atomically.
    """
    arrays: dict[str, Any] = {"format": _CHECKPOINT_FORMAT, "key": key,
                              "next_round": next_round, "skipped": np.asarray(skipped, np.int64)}
    arrays.update({f"weights/{i}": w for i, w in enumerate(weights)})
    for name in ("test_accuracy", "test_loss", "seconds"):
        arrays[f"columns/{name}"] = np.asarray(columns[name], dtype=np.float64)
    for name in ("update_norms", "clipped_norms"):
        arrays.update(checkpoints.pack_ragged(f"columns/{name}", columns[name]))
    arrays.update(checkpoints.rejections_to_arrays(rejections))
    arrays.update(_optimizer_arrays("optimizer", server_optimizer))
    arrays.update({f"rule/{name}": a for name, a in rule.state_arrays().items()})
    checkpoints.save_checkpoint(path, arrays)


def _optimizer_arrays(prefix: str, optimizer: aggregation.ServerOptimizer) -> dict[str, Any]:
    """Every attribute of ``optimizer`` as named arrays (a wrapped optimizer's too, nested)."""
    arrays: dict[str, Any] = {}
    for name, value in vars(optimizer).items():
        if isinstance(value, aggregation.ServerOptimizer):
            arrays.update(_optimizer_arrays(f"{prefix}/{name}", value))
        elif value is None:
            arrays[f"{prefix}/{name}/none"] = 0
        elif isinstance(value, list):
            arrays[f"{prefix}/{name}/count"] = len(value)
            arrays.update({f"{prefix}/{name}/{i}": a for i, a in enumerate(value)})
        else:
            arrays[f"{prefix}/{name}"] = value
    return arrays


def _restore_optimizer(prefix: str, optimizer: aggregation.ServerOptimizer,
                       arrays: dict[str, Any]) -> None:
    """Sets ``optimizer``'s attributes from :func:`_optimizer_arrays`' arrays."""
    for name, value in vars(optimizer).items():
        if isinstance(value, aggregation.ServerOptimizer):
            _restore_optimizer(f"{prefix}/{name}", value, arrays)
        elif f"{prefix}/{name}/none" in arrays:
            setattr(optimizer, name, None)
        elif f"{prefix}/{name}/count" in arrays:
            setattr(optimizer, name, [arrays[f"{prefix}/{name}/{i}"] for i in
                                      range(int(arrays[f"{prefix}/{name}/count"]))])
        else:
            setattr(optimizer, name, arrays[f"{prefix}/{name}"].item())


def _load_state(path: str | os.PathLike, key: str, columns: dict[str, list[Any]],
                rejections: list[faults.Rejection], skipped: list[int],
                server_optimizer: aggregation.ServerOptimizer,
                rule: aggregation.AggregationRule) -> tuple[Weights, int]:
    """Reads a checkpoint of :func:`_save_state` into the loop's state; the weights and round."""
    arrays = checkpoints.load_checkpoint(path)
    if str(arrays.get("format", "")) != _CHECKPOINT_FORMAT or str(arrays["key"]) != key:
        raise ValueError(f"checkpoint {os.fspath(path)!r} belongs to another run (rule, "
                         f"rounds, clients or model differ): expected {key!r}, got "
                         f"{str(arrays.get('key', 'no key'))!r}. Delete it or pass another "
                         "checkpoint path.")
    count = sum(1 for name in arrays if name.startswith("weights/"))
    weights = [arrays[f"weights/{i}"] for i in range(count)]
    for name in ("test_accuracy", "test_loss", "seconds"):
        columns[name].extend(float(x) for x in arrays[f"columns/{name}"])
    for name in ("update_norms", "clipped_norms"):
        columns[name].extend(checkpoints.unpack_ragged(arrays, f"columns/{name}"))
    rejections.extend(checkpoints.rejections_from_arrays(arrays))
    skipped.extend(int(t) for t in arrays["skipped"])
    _restore_optimizer("optimizer", server_optimizer, arrays)
    rule.restore_state({name[5:]: a for name, a in arrays.items() if name.startswith("rule/")})
    return weights, int(arrays["next_round"])



def _check_callable(name: str, value: Any, *example_args: Any) -> None:
    """``value`` must be ``None`` or callable with ``example_args`` (checked, not called).

    A function of the wrong arity would otherwise fail only in the first round (a callback), or
    be taken for a faulty client every round (a client hook).
    """
    if value is None:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__} "
                        f"{v._fmt(value)}.")
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return
    try:
        signature.bind(*example_args)
    except TypeError:
        raise TypeError(f"{name} must accept {len(example_args)} positional argument"
                        f"{'s' if len(example_args) > 1 else ''}, got {value!r} with signature "
                        f"{signature}.") from None


def _check_fault_options(client_hook: Any, deadline_seconds: Any, checkpoint: Any,
                         checkpoint_every: Any) -> dict[str, Any]:
    """The fault-handling and checkpoint arguments of both front doors, checked."""
    _check_callable("client_hook", client_hook, 0, 0, [])
    if deadline_seconds is not None:
        deadline_seconds = v.check_positive("deadline_seconds", deadline_seconds)
    if checkpoint is not None:
        checkpoints.check_path("checkpoint", checkpoint)
    checkpoint_every = v.check_int("checkpoint_every", checkpoint_every, minimum=1)
    return {"client_hook": client_hook, "deadline": deadline_seconds, "checkpoint": checkpoint,
            "checkpoint_every": checkpoint_every}


FAULT_ARGS_DOC = """
        client_hook: ``hook(client_id, round_index, delta) -> delta`` applied to every client's
            update before the server sees it (an attack, or injected faults:
            :class:`fl_helpers.robust.MaliciousClients`, :class:`fl_helpers.faults.FaultInjector`),
            or ``None``. A client whose hook raises, or whose update is NaN/inf or wrongly
            shaped, is rejected and logged (``History.rejections``) and the round goes on
            without it.
        deadline_seconds: Reject clients whose :class:`fl_helpers.faults.ClientReply` reports a
            (simulated) reply time above this, or ``None``.
        checkpoint: A ``.npz`` path: the run's state is written there atomically every
            ``checkpoint_every`` rounds and after the last; a run that finds the file resumes
            from it, and repeats the uninterrupted run exactly.
        checkpoint_every: Rounds between checkpoints, >= 1."""


def _check_client_algorithm(value: Any, checkpoint: Any, *, private: bool) -> None:
    """``client_algorithm`` of a front door: a :class:`ClientAlgorithm` or ``None``; a stateful
    one takes no checkpoint, and a private run refuses one that uploads more than its update."""
    if value is None:
        return
    if not isinstance(value, ClientAlgorithm):
        raise TypeError(f"client_algorithm must be a training.ClientAlgorithm or None, got "
                        f"{type(value).__name__}.")
    if private and value.uploads_per_client != 1:
        raise ValueError(
            f"client_algorithm={value!r} uploads {value.uploads_per_client} model-sized arrays "
            "per client, but DP-FedAvg clips and noises only the update: the others would be "
            "released outside epsilon. Use a client algorithm that uploads only its update "
            "(e.g. heterogeneity.FedProx).")
    if value.stateful and checkpoint is not None:
        raise ValueError(f"checkpoint must be None with client_algorithm={value!r}: its "
                         "per-client state is not saved in a checkpoint.")


def _warn_diagnostics() -> None:
    warnings.warn("diagnostics=True: the run's Diagnostics (who was sampled, every client's "
                  "update norm) are computed from private data and are NOT covered by the "
                  "reported epsilon. Do not publish them.", UserWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# Front door 1: FedAvg (and any aggregation rule), fixed number of clients per round
# --------------------------------------------------------------------------------------------


def run_fedavg(model_fn: Callable[[], keras.Model],
               client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *, num_rounds: int,
               clients_per_round: int, local_epochs: int, batch_size: int | None,
               client_learning_rate: float,
               test_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
               progress: bool = True, engine: str | Engine = "auto",
               initial_weights: Weights | None = None,
               aggregation_rule: aggregation.AggregationRule | None = None,
               server_optimizer: aggregation.ServerOptimizer | None = None,
               callback: Callback | None = None, diagnostics: bool = False,
               client_hook: faults.ClientHook | None = None,
               deadline_seconds: float | None = None,
               checkpoint: str | os.PathLike | None = None,
               checkpoint_every: int = 1,
               client_algorithm: ClientAlgorithm | None = None) -> History:
    """FederatedAveraging (McMahan et al. 2017, Algorithm 1) for ``num_rounds`` rounds.

    Round ``t`` (0-based): sample ``clients_per_round`` clients uniformly with
    :func:`fl_helpers.schedule.sample_clients` (the public stream ``"client sampling"``; McMahan
    et al. write this ``m = max(C K, 1)``), train each from the current global weights for
    ``local_epochs`` epochs of SGD with ``batch_size`` and ``client_learning_rate`` (client ``k``
    seeded with ``[seed, t, k]``), aggregate their updates with ``aggregation_rule`` (default
    :class:`~fl_helpers.aggregation.FedAvg`: weighted by ``n_k``), apply the result with
    ``server_optimizer`` (default: plain averaging), then evaluate on ``test_data``. Same
    arguments, same history (up to the timings). Not private: nothing here is noised.

    Args:
        model_fn: Builds the model, e.g. ``fl_helpers.models.make_2nn``; called once, and its
            initial weights are the starting point unless ``initial_weights`` is given.
        client_datasets: One ``(x_k, y_k)`` pair of numpy arrays per client, of any sizes >= 1.
        num_rounds: ``T`` >= 1.
        clients_per_round: ``m`` in 1..len(client_datasets).
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1, or ``None`` for full-batch local steps (FedSGD with ``E = 1``).
        client_learning_rate: ``eta`` > 0, finite.
        test_data: ``(x_test, y_test)`` evaluated after every round, or ``None``.
        seed: Integer >= 0 fixing client sampling and every client's batch order.
        progress: Show a tqdm progress bar (notebook-aware) with the latest test accuracy.
        engine: ``"auto"`` (default: ``"fast"`` for Dense stacks, ``"loop"`` otherwise),
            ``"fast"`` or ``"loop"`` (see :class:`Engine`); they agree up to float32 rounding.
        initial_weights: Optional starting global weights (per-layer arrays fitting the model).
        aggregation_rule: An :class:`~fl_helpers.aggregation.AggregationRule`, e.g.
            ``aggregation.CoordinateMedian()``; default ``aggregation.FedAvg()``.
        server_optimizer: An :class:`~fl_helpers.aggregation.ServerOptimizer`; default
            ``aggregation.ServerSGD(1.0)``.
        callback: Called after every round with ``{"round", "test_accuracy", "test_loss"}``;
            returning ``True`` stops training.
        diagnostics: Also return every client's update norm and the sampled ids
            (:class:`Diagnostics`).
        client_hook, deadline_seconds, checkpoint, checkpoint_every: Faults and resuming, see
            :data:`FAULT_ARGS_DOC`.
        client_algorithm: What each sampled client optimises and the per-client state kept
            across rounds (a :class:`ClientAlgorithm`: e.g.
            :class:`fl_helpers.heterogeneity.FedProx`, :class:`fl_helpers.heterogeneity.SCAFFOLD`,
            :class:`fl_helpers.personalisation.Ditto`); default plain local SGD. It runs on
            either engine; a stateful one serves one run and takes no ``checkpoint``.

    Returns:
        A :class:`History`.

    Raises:
        TypeError, ValueError: An argument is malformed, e.g. an empty client, ``x_k``/``y_k`` of
            different lengths, ``clients_per_round`` out of range, an unknown engine (the message
            names it); or training diverged (NaN weights).
    """
    rule = aggregation.FedAvg() if aggregation_rule is None else aggregation_rule
    if not isinstance(rule, aggregation.AggregationRule):
        raise TypeError(f"aggregation_rule must be an AggregationRule, got "
                        f"{type(rule).__name__}.")
    if rule.draws_run_noise:
        raise ValueError(
            f"aggregation_rule={type(rule).__name__}(...) adds noise from a private run's secret "
            "randomness, which run_fedavg (a fixed number of clients sampled from the public "
            "seed, no accounting) does not have: use training.run_dp_fedavg, which samples "
            "clients with that randomness and accounts epsilon.")
    event = rule.dp_event(sampling_probability=1.0)
    if event is not None and not isinstance(event, dp_accounting.NonPrivateDpEvent):
        raise ValueError(
            f"aggregation_rule={type(rule).__name__}(...) describes a private release "
            f"({type(event).__name__}), which run_fedavg would neither sample secretly nor "
            "account: use training.run_dp_fedavg (or the rule's own private front door), "
            "which accounts epsilon from the rule's dp_event.")
    optimizer = aggregation.ServerSGD() if server_optimizer is None else server_optimizer
    if not isinstance(optimizer, aggregation.ServerOptimizer):
        raise TypeError(f"server_optimizer must be a ServerOptimizer, got "
                        f"{type(optimizer).__name__}.")
    progress = v.check_flag("progress", progress)
    diagnostics = v.check_flag("diagnostics", diagnostics)
    faults = _check_fault_options(client_hook, deadline_seconds, checkpoint, checkpoint_every)
    _check_client_algorithm(client_algorithm, checkpoint, private=False)
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=1)
    setup, num_rounds = _setup(
        model_fn, client_datasets, num_rounds=num_rounds, local_epochs=local_epochs,
        batch_size=batch_size, client_learning_rate=client_learning_rate, test_data=test_data,
        seed=seed, engine_choice=engine, initial_weights=initial_weights, callback=callback,
        max_clients_per_round=clients_per_round, clients_per_round_is_fixed=True)
    rounds = [schedule.sample_clients(len(setup.datasets), clients_per_round, seed=seed,
                                      round_index=t) for t in range(num_rounds)]
    description = rule.name if client_algorithm is None else \
        f"{client_algorithm.name} + {rule.name}"
    fields = _loop(setup, rule=rule, server_optimizer=optimizer, rounds=rounds, randomness=None,
                   epsilons=None, progress=progress, description=description, callback=callback,
                   diagnostics=diagnostics, client_algorithm=client_algorithm, **faults)
    return History(**fields)


# --------------------------------------------------------------------------------------------
# Front door 2: DP-FedAvg with accounting
# --------------------------------------------------------------------------------------------


def run_dp_fedavg(model_fn: Callable[[], keras.Model],
                  client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *, num_rounds: int,
                  sampling_probability: float, local_epochs: int, batch_size: int | None,
                  client_learning_rate: float,
                  clipping_norm: float | aggregation.AdaptiveClipping,
                  noise_multiplier: float, server_learning_rate: float = 1.0,
                  test_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
                  progress: bool = True, target_delta: float | None = None,
                  target_epsilon: float | None = None, callback: Callback | None = None,
                  engine: str | Engine = "auto", initial_weights: Weights | None = None,
                  noise_placement: str | aggregation.NoisePlacement = "central",
                  server_optimizer: aggregation.ServerOptimizer | None = None,
                  diagnostics: bool = False,
                  randomness: schedule.PrivateRandomness | None = None,
                  client_hook: faults.ClientHook | None = None,
                  deadline_seconds: float | None = None,
                  checkpoint: str | os.PathLike | None = None,
                  checkpoint_every: int = 1,
                  accountant: accounting.AccountantName | None = None,
                  expected_clients: float | None = None, noise: str = "exact",
                  clip_on: str | aggregation.ClipPlacement = "server",
                  client_algorithm: ClientAlgorithm | None = None) -> DPHistory:
    """DP-FedAvg (McMahan et al. 2018, Algorithm 1) for up to ``num_rounds`` rounds.

    Round ``t``: Poisson-sample clients with probability ``q``, train each locally (seed
    ``[seed, t, k]``), clip each update to norm ``C``, sum, add ``N(0, (z C)^2)`` noise, divide by
    ``q N`` (:class:`fl_helpers.aggregation.DPFedAvg`), step with the server optimizer; then
    evaluate. With ``target_delta`` the privacy spent after each round is accounted: the rule
    describes its round as a dp-accounting event
    (:meth:`fl_helpers.aggregation.AggregationRule.dp_event`) and
    :func:`fl_helpers.accounting.epsilon_per_round_of_event` composes it over the schedule, so
    the loop never asks which rule it runs; with ``target_epsilon`` as well, training stops
    before the first round that would exceed it.

    What the epsilon means (central noise): **client-level** differential privacy -- it bounds
    what the sequence of released global models reveals about whether any one client, with all
    its examples, took part (add/remove one client). It holds against anyone who sees those
    models, if the server that samples, aggregates and noises is trusted and its randomness is
    secret: the server itself sees every clipped update before noise (secure aggregation,
    notebook 06, removes that trust). With ``noise_placement="local"`` no server is trusted:
    every client noises its own report, and the epsilon is the busiest client's own, for the
    replace-one relation. Not covered: anything in :class:`Diagnostics`, the choice of
    hyperparameters on the same data, and runs with
    ``randomness=PrivateRandomness.reproducible(seed)``.

    Args:
        model_fn: Builds the model; its initial weights are the start unless ``initial_weights``.
        client_datasets: One ``(x_k, y_k)`` pair per client (the ``N`` clients).
        num_rounds: ``T`` >= 1.
        sampling_probability: ``q`` in (0, 1]: each client's chance to join a round.
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1 or ``None`` (full batch).
        client_learning_rate: ``eta`` > 0.
        clipping_norm: ``C`` > 0, the bound on each update's L2 norm; or an
            :class:`fl_helpers.aggregation.AdaptiveClipping` (e.g. ``AdaptiveClipping()``:
            ``C_0 = 0.1``, median, ``eta_C = 0.2``, ``sigma_b = expected_clients / 20``) to
            adapt ``C`` to a quantile of the update norms each round
            (:class:`fl_helpers.aggregation.AdaptiveClipDPFedAvg`; central exact noise only; a
            checkpoint saves the adapted norm). ``DPHistory.clipping_norms`` records ``C`` per
            round.
        noise_multiplier: ``z`` >= 0; the noise on the sum has standard deviation ``z * C``.
            0 gives clipping without noise (no privacy: epsilon is ``inf``). With adaptive
            clipping ``z`` is the total, split between the updates (``z_Delta`` > ``z``) and
            the count (:func:`fl_helpers.accounting.adaptive_clipping_update_noise_multiplier`);
            epsilon is accounted for ``z``.
        server_learning_rate: ``eta_s`` > 0 of the default server optimizer (1 = averaging).
        test_data: ``(x_test, y_test)`` evaluated after every round, or ``None``.
        seed: Integer >= 0 fixing the clients' batches (public; the noise and the client
            sampling come from ``randomness``).
        progress: Show a tqdm progress bar.
        target_delta: delta in (0, 1) for the epsilon reported after each round, or ``None``.
        target_epsilon: Privacy budget (> 0; needs ``target_delta``): stop before exceeding it.
        callback: Called after every round with ``{"round", "test_accuracy", "test_loss",
            "epsilon"}`` (plus ``"clipping_norm"``, the round's ``C_t``, with adaptive clipping,
            and diagnostics figures if ``diagnostics``); ``True`` stops training.
        engine: ``"auto"``, ``"fast"`` or ``"loop"`` (see :class:`Engine`).
        initial_weights: Optional starting global weights.
        noise_placement: ``"central"`` (default) or ``"local"`` (see above).
        server_optimizer: Default ``aggregation.ServerSGD(server_learning_rate)``; e.g.
            ``aggregation.ServerAdam()`` for DP-FedAdam (noise is added before it: privacy is
            unchanged).
        diagnostics: Also return per-client figures (:class:`Diagnostics`, NOT covered by
            epsilon; a warning says so).
        randomness: The noise's and the client sampling's
            :class:`fl_helpers.schedule.PrivateRandomness` (claimed by this run). ``None``
            (default): a fresh ``PrivateRandomness.secret()``. A caller's own lets it see the
            schedule first (e.g. for local-DP calibration);
            ``PrivateRandomness.reproducible(seed)`` derives noise and sampling from a seed (for
            teaching and tests): the run is then **not private** against anyone who knows the
            seed; its warning says so and the history records it.
        accountant: ``None`` (default: the one that bounds the noise, ``"discrete"`` for exact
            noise, ``"pld"`` for float), or a name (:class:`fl_helpers.accounting.Accountant`;
            ``"pld"`` and ``"rdp"`` only with float noise, see
            :func:`fl_helpers.accounting.accountant_for_noise`).
        expected_clients: The fixed divisor ``q N`` of the average, a **public** constant
            chosen before the run (required). The add/remove analysis assumes the divisor does
            not depend on whether a client is present, so it is never counted from
            ``client_datasets``: adding or removing one client would change it, and the scale of
            every released update would tell (measured: N = 100 told from N = 101 in 200 of 200
            trials). Pass ``q`` times the federation's published size.
        noise: ``"exact"`` (default: the clipped updates on an integer grid, summed exactly,
            exact discrete Gaussian noise, accounted by the ``"discrete"`` accountant) or
            ``"float"`` (float32 Gaussian noise, **not private** against a floating-point
            attack; kept as the attack's control, warns; see
            :class:`fl_helpers.aggregation.DPFedAvg`).
        clip_on: ``"server"`` (default: the server clips, and sees every unclipped update) or
            ``"client"`` (each client clips its own update before sending it, McMahan et al.
            2018, Algorithm 1; the server sees only clipped ones, and ``diagnostics`` report
            the clipped norms). Same released models on the same inputs
            (:class:`fl_helpers.aggregation.ClipPlacement`).
        client_hook, deadline_seconds, checkpoint, checkpoint_every: Faults and resuming, see
            :data:`FAULT_ARGS_DOC`. Rejected clients count as sending a zero update (the
            accounting stays valid, see :func:`_round_update`); who was rejected is reported
            only in ``diagnostics``. A checkpoint never holds the secret randomness: a resumed
            private run takes a fresh ``PrivateRandomness.secret()`` (the old one is refused: on
            changed data its noise would cancel), and its remaining rounds are sampled and noised
            afresh, which central DP's accounting allows (local DP's does not: refused). So
            that no round already released is run again (a second, unaccounted release), a
            private run with a checkpoint saves it after every round, before the round's model
            reaches the callback (``checkpoint_every`` > 1 is refused). A reproducible run (not
            private) may resume with the same ``randomness`` and repeats the uninterrupted run
            exactly.
        client_algorithm: What each client optimises (:class:`ClientAlgorithm`), e.g.
            :class:`fl_helpers.heterogeneity.FedProx`: a change of the client's local training,
            whose update is then clipped and noised as any other, so the accounting is
            unchanged (a straggler whose update is dropped counts as a zero update, as a
            rejected client). Refused if it uploads more than the update
            (``uploads_per_client`` > 1, e.g. SCAFFOLD: its control variates would be released
            unclipped and unnoised, outside epsilon). Ditto's personal models stay on the
            clients; only its global model is released and accounted.

    Returns:
        A :class:`DPHistory`.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it), or
            ``target_epsilon`` is already exceeded by the first round.
    """
    sampling_probability = accounting.check_sampling_probability(sampling_probability)
    noise = aggregation.check_noise(noise)
    # Checked also when there is no target_delta.
    accountant = accounting.accountant_for_noise(accountant, noise)
    placement = aggregation.NoisePlacement.parse(noise_placement)
    diagnostics = v.check_flag("diagnostics", diagnostics)
    progress = v.check_flag("progress", progress)
    faults = _check_fault_options(client_hook, deadline_seconds, checkpoint, checkpoint_every)
    _check_client_algorithm(client_algorithm, checkpoint, private=True)
    if checkpoint is not None and placement is aggregation.NoisePlacement.LOCAL:
        raise ValueError("checkpoint is not supported with noise_placement='local': local DP's "
                         "epsilon depends on the whole schedule, which a resumed run would "
                         "redraw. Use noise_placement='central' or checkpoint=None.")
    if target_delta is not None:
        target_delta = v.check_open_unit("target_delta", target_delta)
    if target_epsilon is not None:
        target_epsilon = v.check_positive("target_epsilon", target_epsilon)
        if target_delta is None:
            raise ValueError("target_epsilon needs target_delta: pass target_delta=1e-5 or "
                             "similar, so that epsilon can be accounted.")
    server_learning_rate = v.check_positive("server_learning_rate", server_learning_rate)
    if server_optimizer is None:
        server_optimizer = aggregation.ServerSGD(server_learning_rate)
    elif not isinstance(server_optimizer, aggregation.ServerOptimizer):
        raise TypeError(f"server_optimizer must be a ServerOptimizer, got "
                        f"{type(server_optimizer).__name__}.")
    randomness = schedule.resolve_randomness(randomness)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1, maximum=10**7)
    seed = v.check_int("seed", seed, minimum=0)
    reproducible_noise = randomness.is_reproducible
    if checkpoint is not None and not reproducible_noise and faults["checkpoint_every"] != 1:
        raise ValueError(
            f"checkpoint_every must be 1 in a private run with a checkpoint, got "
            f"{faults['checkpoint_every']}: a resume starts at the last checkpoint, and rounds "
            "released after it would be run again with fresh noise, a release the accounting "
            "never counted.")
    randomness.claim("run_dp_fedavg")
    if diagnostics:
        _warn_diagnostics()
    if isinstance(client_datasets, Sequence) and not isinstance(client_datasets, str):
        num_clients = max(1, len(client_datasets))
    else:
        num_clients = 1  # _setup raises the type error
    if expected_clients is None:
        raise ValueError(
            "expected_clients must be given, got None: the divisor q N of DP-FedAvg is a "
            "public constant, never counted from the private client datasets (adding or "
            "removing a client would change it, and the scale of the released updates would "
            "show it). Pass q times the federation's published size, e.g. expected_clients="
            f"{sampling_probability * num_clients:g} if N = {num_clients} is public.")
    clip_on = aggregation.ClipPlacement.parse(clip_on)
    # The rule checks clipping_norm, noise_multiplier and expected_clients (once, here).
    rule: aggregation.DPFedAvg
    adaptive: aggregation.AdaptiveClipping | None = None
    if isinstance(clipping_norm, aggregation.AdaptiveClipping):
        adaptive = clipping_norm
        if placement is not aggregation.NoisePlacement.CENTRAL:
            raise ValueError("noise_placement must be 'central' with adaptive clipping, got "
                             "'local': the count of unclipped updates is noised once, centrally "
                             "(Andrew et al. 2021).")
        rule = aggregation.AdaptiveClipDPFedAvg(
            clipping=adaptive, noise_multiplier=noise_multiplier,
            expected_clients=expected_clients, noise=noise, clip_on=clip_on)
    else:
        rule = aggregation.DPFedAvg(clipping_norm=clipping_norm,
                                    noise_multiplier=noise_multiplier,
                                    expected_clients=expected_clients,
                                    placement=placement, noise=noise, clip_on=clip_on)
    noise_multiplier = rule.accounted_noise_multiplier  # the total z with adaptive clipping
    clipping_norm = rule.clipping_norm  # C_0 with adaptive clipping
    rounds = randomness.poisson_schedule(num_clients, sampling_probability=sampling_probability,
                                         num_rounds=num_rounds)
    # The rule describes its round's release; the accountant composes it over the schedule.
    epsilons = None if target_delta is None else accounting.epsilon_per_round_of_event(
        rule.dp_event(sampling_probability=sampling_probability), schedule=rounds,
        num_clients=num_clients, target_delta=target_delta, accountant=accountant)
    rounds_allowed = num_rounds
    if target_epsilon is not None and epsilons is not None:
        rounds_allowed = int(np.searchsorted(epsilons, target_epsilon, side="right"))
        if rounds_allowed == 0:
            raise ValueError(
                f"target_epsilon={target_epsilon} is exceeded by the first round already "
                f"(epsilon after one round is {epsilons[0]:.4g} at target_delta={target_delta}). "
                "Raise target_epsilon, or raise noise_multiplier / lower sampling_probability.")
    setup, _ = _setup(
        model_fn, client_datasets, num_rounds=num_rounds, local_epochs=local_epochs,
        batch_size=batch_size, client_learning_rate=client_learning_rate, test_data=test_data,
        seed=seed, engine_choice=engine, initial_weights=initial_weights, callback=callback,
        max_clients_per_round=max(1, max(len(r) for r in rounds)))
    fields = _loop(setup, rule=rule, server_optimizer=server_optimizer,
                   rounds=rounds[:rounds_allowed], randomness=randomness, epsilons=epsilons,
                   progress=progress, description="DP-FedAvg", callback=callback,
                   diagnostics=diagnostics, client_algorithm=client_algorithm, **faults)
    if fields["stopped_early"] is None and rounds_allowed < num_rounds:
        fields["stopped_early"] = StopReason.BUDGET
    done = len(fields["rounds"])
    if isinstance(rule, aggregation.AdaptiveClipDPFedAvg):
        clipping_norms = np.asarray(rule.clipping_norms[:done], dtype=np.float64)
    else:
        clipping_norms = np.full(done, clipping_norm, dtype=np.float64)
    return DPHistory(
        **fields,
        epsilon=np.zeros(0) if epsilons is None else epsilons[:done].copy(),
        noise_multiplier=noise_multiplier, clipping_norm=clipping_norm,
        sampling_probability=sampling_probability, target_delta=target_delta,
        noise_placement=placement, accountant=accounting.Accountant(accountant).value,
        reproducible_noise=reproducible_noise, expected_clients=rule.expected_clients,
        noise=rule.noise, clipping_norms=clipping_norms, adaptive_clipping=adaptive,
        update_noise_multiplier=rule.noise_multiplier, clip_on=clip_on)


# --------------------------------------------------------------------------------------------
# The loop on a given participation schedule (DP-FTRL's entry: fl_helpers.dp_ftrl.run_dp_ftrl)
# --------------------------------------------------------------------------------------------


def _check_epsilons(value: Any, num_rounds: int) -> np.ndarray:
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"epsilons must be an array of one epsilon per round, got "
                        f"{type(value).__name__}.")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"epsilons must be an array of real numbers, got "
                        f"{type(value).__name__}.") from error
    if array.shape != (num_rounds,):
        raise ValueError(f"epsilons must have one value per round of the schedule ({num_rounds}),"
                         f" got shape {array.shape}.")
    if np.isnan(array).any() or (array < 0).any() or (np.diff(array) < 0).any():
        raise ValueError("epsilons must be >= 0, not NaN and non-decreasing (privacy spent "
                         f"after each round), got {array.tolist()[:6]}...")
    return array


def run_private_schedule(model_fn: Callable[[], keras.Model],
                         client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *,
                         rounds: Sequence[np.ndarray],
                         aggregation_rule: aggregation.AggregationRule,
                         randomness: schedule.PrivateRandomness, epsilons: np.ndarray,
                         local_epochs: int, batch_size: int | None, client_learning_rate: float,
                         server_learning_rate: float = 1.0,
                         test_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
                         progress: bool = True, engine: str | Engine = "auto",
                         initial_weights: Weights | None = None,
                         callback: Callback | None = None,
                         diagnostics: bool = False) -> dict[str, Any]:
    """The one training loop on a participation schedule given by the caller, with a private
    rule whose noise comes from ``randomness``: the entry of DP-FTRL
    (:func:`fl_helpers.dp_ftrl.run_dp_ftrl`, which checks the schedule and accounts epsilon)
    and of distributed DP (:func:`fl_helpers.distributed_dp.run_distributed_dp`, which draws a
    secret Poisson schedule from ``randomness`` and accounts the rule's ``dp_event``).

    Round ``t`` trains the clients ``rounds[t]`` (which may be empty: a private rule still adds
    its noise), aggregates with ``aggregation_rule`` (its noise drawn from ``randomness``'s key
    of round ``t``), steps with ``ServerSGD(server_learning_rate)`` and evaluates. This function
    samples nobody (who took part shows only in ``diagnostics``, which epsilon does not cover):
    the privacy of the run is what the caller's accounting of this schedule says
    (``epsilons``), amplified by sampling only if the caller drew the schedule secretly and
    accounted for that. It checks its arguments and claims ``randomness`` for the run; it does
    not account.

    Args:
        model_fn, client_datasets, local_epochs, batch_size, client_learning_rate, test_data,
            seed, progress, engine, initial_weights, callback, diagnostics: As
            :func:`run_dp_fedavg` (the callback's figures carry ``epsilons[t]``).
        rounds: Per round, the distinct ids (0..N-1) of the clients taking part.
        aggregation_rule: An :class:`fl_helpers.aggregation.AggregationRule`, fresh for this
            run (a stateful rule such as :class:`fl_helpers.dp_ftrl.DPFTRL` serves one run).
        randomness: The run's :class:`fl_helpers.schedule.PrivateRandomness` (claimed here: a
            secret one serves one run).
        epsilons: Epsilon after each round of ``rounds`` (>= 0, non-decreasing), reported in the
            callback and returned.
        server_learning_rate: ``eta_s`` > 0 of the server's SGD step.

    Returns:
        The loop's fields, keyword arguments of :class:`History` (the caller builds its history
        class from them, e.g. :class:`DPFTRLHistory`), plus ``"epsilon"``: ``epsilons`` of the
        rounds trained.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    if not isinstance(aggregation_rule, aggregation.AggregationRule):
        raise TypeError(f"aggregation_rule must be an AggregationRule, got "
                        f"{type(aggregation_rule).__name__}.")
    if not isinstance(randomness, schedule.PrivateRandomness):
        raise TypeError(f"randomness must be a PrivateRandomness, got "
                        f"{type(randomness).__name__}.")
    if isinstance(rounds, (str, bytes, np.ndarray)) or not isinstance(rounds, Sequence):
        raise TypeError(f"rounds must be a list with one array of client ids per round, got "
                        f"{type(rounds).__name__}.")
    if not 1 <= len(rounds) <= 10**7:
        raise ValueError(f"rounds must hold 1..{10**7} rounds, got {len(rounds)}.")
    server = aggregation.ServerSGD(
        v.check_positive("server_learning_rate", server_learning_rate))
    progress = v.check_flag("progress", progress)
    diagnostics = v.check_flag("diagnostics", diagnostics)
    # The ids' range once client_datasets is checked (by _setup), the rest first.
    checked = [v.check_ids(f"rounds[{t}]", ids, num=2**62, unique=True)
               for t, ids in enumerate(rounds)]
    epsilons = _check_epsilons(epsilons, len(checked))
    setup, _ = _setup(
        model_fn, client_datasets, num_rounds=len(checked), local_epochs=local_epochs,
        batch_size=batch_size, client_learning_rate=client_learning_rate, test_data=test_data,
        seed=seed, engine_choice=engine, initial_weights=initial_weights, callback=callback,
        max_clients_per_round=max(1, max(len(r) for r in checked)))
    for t, ids in enumerate(checked):
        if ids.size and ids.max() >= len(setup.datasets):
            raise ValueError(f"rounds[{t}] must hold ids in 0..{len(setup.datasets) - 1} (the "
                             f"clients of client_datasets), got {int(ids.max())}.")
    randomness.claim(aggregation_rule.name)
    if diagnostics:
        _warn_diagnostics()
    fields = _loop(setup, rule=aggregation_rule, server_optimizer=server, rounds=checked,
                   randomness=randomness, epsilons=epsilons, progress=progress,
                   description=aggregation_rule.name, callback=callback,
                   diagnostics=diagnostics)
    fields["epsilon"] = epsilons[:len(fields["rounds"])].copy()
    return fields


# --------------------------------------------------------------------------------------------
# One DP-FedAvg round, checked (the reference that notebook 04 compares its hand-written round to)
# --------------------------------------------------------------------------------------------


def dp_fedavg_round(model: keras.Model, global_weights: Weights,
                    client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                    sampled_clients: Any, round_index: int, *, local_epochs: int,
                    batch_size: int | None, client_learning_rate: float, clipping_norm: float,
                    noise_multiplier: float, expected_clients: float,
                    randomness: schedule.PrivateRandomness, server_learning_rate: float = 1.0,
                    seed: int = 0, noise: str = "exact") -> Weights:
    """One DP-FedAvg round, client by client, with every argument checked.

    Trains each sampled client with :class:`fl_helpers.client.LoopTrainer`, aggregates with
    :class:`fl_helpers.aggregation.DPFedAvg` (clip, sum, noise from ``randomness`` for
    ``round_index``, divide by ``expected_clients``) and steps with ``server_learning_rate``.

    Args:
        model: Keras model used as a workspace (its weights are overwritten).
        global_weights: Current global per-layer weights.
        client_datasets: Every client's ``(x_k, y_k)``.
        sampled_clients: Distinct integer ids of this round's clients (may be empty).
        round_index: ``t`` >= 0, an integer.
        local_epochs, batch_size, client_learning_rate: Local SGD, as for ``client_update``.
        clipping_norm: ``C`` > 0.
        noise_multiplier: ``z`` >= 0.
        expected_clients: The fixed divisor ``q N`` > 0.
        randomness: Where the noise comes from (:class:`fl_helpers.schedule.PrivateRandomness`).
        server_learning_rate: ``eta_s`` > 0.
        seed: The run's seed (client seeds ``[seed, t, k]``).
        noise: ``"exact"`` (default) or ``"float"`` (not private, warns; see
            :class:`fl_helpers.aggregation.DPFedAvg`).

    Returns:
        The new global weights.

    Raises:
        TypeError, ValueError: e.g. a client id repeated (which would double its sensitivity),
            a non-integer id or round index, an id out of range.
    """
    model = client.check_model(model)
    weights = [np.asarray(w, dtype=np.float32)
               for w in client.check_weights(model, global_weights, "global_weights")]
    datasets = client.check_datasets(model, client_datasets)
    sampled = _check_client_ids(sampled_clients, len(datasets))
    round_index = v.check_int("round_index", round_index, minimum=0)
    if not isinstance(randomness, schedule.PrivateRandomness):
        raise TypeError(f"randomness must be a PrivateRandomness, got "
                        f"{type(randomness).__name__}.")
    trainer = client.LoopTrainer._from_checked(
        model, datasets, local_epochs=schedule.check_local_epochs(
            local_epochs, num_examples=max(len(x) for x, _ in datasets)),
        batch_size=schedule.check_batch_size(batch_size),
        client_learning_rate=v.check_positive("client_learning_rate", client_learning_rate),
        seed=v.check_int("seed", seed, minimum=0))
    rule = aggregation.DPFedAvg(clipping_norm=clipping_norm, noise_multiplier=noise_multiplier,
                                expected_clients=expected_clients, noise=noise)
    server = aggregation.ServerSGD(server_learning_rate)  # every check before the noise is drawn
    results = trainer.train(weights, sampled, round_index)
    context = aggregation.RoundContext(round_index=round_index, num_clients=len(datasets),
                                       randomness=randomness)
    if len(results.deltas):
        update = rule.aggregate(results.deltas, results.num_examples, context)
    else:  # nobody sampled: the noise alone is released
        update = rule.aggregate_empty([w.shape for w in weights], context)
    return server.apply(weights, update)


def _check_client_ids(value: Any, num_clients: int) -> np.ndarray:
    ids = np.asarray(value)
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if ids.ndim != 1 or ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"sampled_clients must be a 1-D array of integer client ids, got "
                        f"{value!r} (dtype {ids.dtype}).")
    if ids.min() < 0 or ids.max() >= num_clients:
        raise ValueError(f"sampled_clients must hold ids in 0..{num_clients - 1}, got "
                         f"values in {ids.min()}..{ids.max()}.")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"sampled_clients must not repeat a client (that would double its "
                         f"sensitivity), got {value!r}.")
    return ids.astype(np.int64)
