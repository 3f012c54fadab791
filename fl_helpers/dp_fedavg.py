"""DP-FedAvg: federated averaging with client-level differential privacy, round by round.

The algorithm is DP-FedAvg of McMahan, Ramage, Talwar & Zhang 2018, "Learning Differentially
Private Recurrent Language Models", Algorithm 1, with every client weighted equally (``w_k = 1``):

* round ``t`` samples every client independently with probability ``q`` (Poisson sampling,
  :func:`sample_clients_poisson`, rng ``[seed, t]``), so the number of clients varies and may be 0;
* each sampled client ``k`` trains from the global weights exactly as in FedAvg
  (:func:`fl_helpers.federated.client_update`, seed ``[seed, t, k]``) and reports its update
  ``delta_k = w_k - w``;
* the server clips each update to L2 norm at most ``C`` (``delta_k * min(1, C / ||delta_k||)``,
  all layers as one vector), sums them, adds Gaussian noise of standard deviation ``z * C`` to the
  sum, divides by the *expected* number of clients ``q * N`` (fixed, so one client changes the
  average by at most ``C / (q N)``), and steps ``w <- w + server_learning_rate * average``.

One round is then a Poisson-subsampled Gaussian mechanism with noise multiplier ``z`` on the sum
of clipped updates, whose privacy over many rounds :mod:`fl_helpers.accounting` tracks with
dp-accounting (``epsilon`` after each round for a chosen ``target_delta``). The neighbouring
relation is adding or removing one client with all its data.

:func:`run_dp_fedavg` trains with the fast engine (:mod:`fl_helpers.engine`) by default, or with
the plain per-client loop (:func:`dp_fedavg_round`, what a reader can follow line by line); both
draw the same noise and agree up to float32 rounding.

With ``noise_placement="local"`` the same run models *local* DP instead: every sampled client
adds ``N(0, (z C)^2)`` to its own clipped update before sending it, so no server has to be
trusted, and the epsilon reported is each client's own (:func:`local_dp_epsilon_per_round`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from tqdm.auto import tqdm

from fl_helpers import _validation as v
from fl_helpers import accounting, federated, privacy
from fl_helpers import engine as engine_module

#: Engines :func:`run_dp_fedavg` accepts.
DP_ENGINES = ("auto", "fast", "loop")


def sample_clients_poisson(num_clients: int, *, sampling_probability: float, seed: int,
                           round_index: int) -> np.ndarray:
    """Poisson sampling: each client joins round ``round_index`` independently with prob. ``q``.

    Uses ``np.random.default_rng([seed, round_index])`` (the course's seed convention): one
    uniform draw per client, client ``k`` joins if its draw is below ``q``.

    Args:
        num_clients: ``N`` >= 1.
        sampling_probability: ``q`` in (0, 1].
        seed: The run's seed (>= 0).
        round_index: ``t``, 0-based.

    Returns:
        Sorted int64 ids of the sampled clients (possibly empty; ``q N`` on average).
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    sampling_probability = v.check_probability("sampling_probability", sampling_probability)
    seed = v.check_int("seed", seed, minimum=0)
    round_index = v.check_int("round_index", round_index, minimum=0)
    draws = np.random.default_rng([seed, round_index]).random(num_clients)
    return np.flatnonzero(draws < sampling_probability).astype(np.int64)


def busiest_client_counts(num_clients: int, *, sampling_probability: float, num_rounds: int,
                          seed: int) -> np.ndarray:
    """Reports sent so far by the most frequently sampled client, after each round.

    Replays :func:`sample_clients_poisson` for rounds ``0 .. num_rounds - 1``; the schedule
    depends only on the seed, never on the data.

    Returns:
        int64 array of shape ``(num_rounds,)``, non-decreasing: entry ``t`` is the largest number
        of rounds among ``0 .. t`` that any one client took part in.
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
    seen = np.zeros(num_clients, dtype=np.int64)
    busiest = np.empty(num_rounds, dtype=np.int64)
    for t in range(num_rounds):
        seen[sample_clients_poisson(num_clients, sampling_probability=sampling_probability,
                                    seed=seed, round_index=t)] += 1
        busiest[t] = seen.max()
    return busiest


def local_dp_epsilon_per_round(*, noise_multiplier: float, num_clients: int,
                               sampling_probability: float, num_rounds: int,
                               target_delta: float, seed: int) -> np.ndarray:
    """Epsilon of the busiest client after each round when every client noises its own update.

    Local DP: the server sees each client's report and who sent it, so sampling gives no
    amplification and a client's privacy loss is the composition of its own reports. Each report
    is a clipped update plus ``N(0, (z C)^2)``; it must hide the client's data against any other
    data, and two updates of norm at most ``C`` differ by up to ``2 C`` in L2 (replace-one
    sensitivity), so one report is a Gaussian mechanism with noise multiplier ``z / 2``. After
    ``t`` rounds the busiest client has sent :func:`busiest_client_counts` reports; its
    epsilon is that of so many Gaussian mechanisms composed (dp-accounting's RDP accountant with
    ``sampling_probability = 1``), 0 before its first report.

    Args:
        noise_multiplier: ``z`` > 0, the std of each client's noise divided by ``C``.
        num_clients: ``N`` >= 1.
        sampling_probability: ``q`` in (0, 1].
        num_rounds: ``T`` >= 1.
        target_delta: delta in (0, 1).
        seed: The run's seed (fixes the schedule).

    Returns:
        Float64 array of shape ``(num_rounds,)``, non-decreasing.
    """
    noise_multiplier = v.check_positive("noise_multiplier", noise_multiplier)
    busiest = busiest_client_counts(num_clients, sampling_probability=sampling_probability,
                                    num_rounds=num_rounds, seed=seed)
    per_report = accounting.epsilon_per_round(
        noise_multiplier=noise_multiplier / 2, sampling_probability=1.0,
        num_rounds=max(1, int(busiest[-1])), target_delta=target_delta)
    return np.where(busiest > 0, per_report[np.maximum(busiest, 1) - 1], 0.0)


def dp_fedavg_round(model: keras.Model, global_weights: Sequence[np.ndarray],
                    client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                    sampled_clients: np.ndarray, round_index: int, *, local_epochs: int,
                    batch_size: int | None, client_learning_rate: float, clipping_norm: float,
                    noise_multiplier: float, denominator: float,
                    server_learning_rate: float = 1.0,
                    seed: int = 0) -> tuple[list[np.ndarray], engine_module.RoundStats]:
    """One DP-FedAvg round, written out client by client (the reference for the fast engine).

    For each sampled client: :func:`federated.client_update`, its update ``delta_k``, clipped with
    :func:`privacy.clip_by_l2_norm`; then the sum plus the round's noise
    (:func:`fl_helpers.engine.gaussian_noise`, standard deviation ``z * C``), divided by
    ``denominator`` and applied with ``server_learning_rate``. McMahan et al. 2018, Algorithm 1.

    Args:
        model: Keras model used as a workspace (its weights are overwritten).
        global_weights: Current global per-layer weights.
        client_datasets: Every client's ``(x_k, y_k)``.
        sampled_clients: Ids of this round's clients (may be empty).
        round_index: ``t``, 0-based.
        local_epochs, batch_size, client_learning_rate: Local SGD, as for ``client_update``.
        clipping_norm: ``C`` > 0.
        noise_multiplier: ``z`` >= 0.
        denominator: Fixed divisor ``q N`` > 0.
        server_learning_rate: ``eta_s`` > 0.
        seed: The run's seed (client seeds ``[seed, t, k]``, noise seed from ``(seed, t)``).

    Returns:
        ``(new_global_weights, stats)`` as :meth:`fl_helpers.engine.MultiClientEngine.dp_round`
        returns.
    """
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
    denominator = v.check_positive("denominator", denominator)
    server_learning_rate = v.check_positive("server_learning_rate", server_learning_rate)
    global_weights = [np.asarray(w, dtype=np.float32) for w in global_weights]
    total = [np.zeros(w.shape, dtype=np.float64) for w in global_weights]
    norms, clipped_norms, sizes = [], [], []
    for k in np.asarray(sampled_clients, dtype=np.int64):
        x, y = client_datasets[k]
        weights, n_k = federated.client_update(
            model, global_weights, x, y, local_epochs=local_epochs, batch_size=batch_size,
            client_learning_rate=client_learning_rate,
            seed=federated.client_seed(seed, round_index, int(k)))
        delta = [w - w0 for w, w0 in zip(weights, global_weights, strict=True)]
        clipped, norm = privacy.clip_by_l2_norm(delta, clipping_norm)
        total = [t + c for t, c in zip(total, clipped, strict=True)]
        norms.append(norm)
        clipped_norms.append(math.sqrt(sum(float(np.sum(c**2)) for c in clipped)))
        sizes.append(n_k)
    noise = engine_module.gaussian_noise([w.shape for w in global_weights],
                                  noise_stddev=noise_multiplier * clipping_norm, seed=seed,
                                  round_index=round_index)
    new = [(w + server_learning_rate * (t + z) / denominator).astype(np.float32)
           for w, t, z in zip(global_weights, total, noise, strict=True)]
    stats = engine_module.RoundStats(np.asarray(norms, np.float64),
                                     np.asarray(clipped_norms, np.float64),
                                     np.asarray(sizes, np.int64))
    return new, stats


@dataclasses.dataclass(eq=False)
class DPHistory:
    """What :func:`run_dp_fedavg` measured, one entry per round trained.

    Attributes:
        rounds: Round numbers 1..T (int64); T < num_rounds if a budget or callback stopped early.
        test_accuracy: Accuracy on ``test_data`` after each round (empty without test data).
        test_loss: Mean cross-entropy on ``test_data`` after each round (empty likewise).
        epsilon: Epsilon spent after each round for ``target_delta`` (empty if no
            ``target_delta``; ``inf`` if ``noise_multiplier`` is 0).
        num_sampled: Number of clients sampled in each round.
        fraction_clipped: Share of the round's updates with norm > C (NaN for an empty round).
        mean_update_norm: Mean L2 norm of the round's updates before clipping (NaN if empty).
        update_norms: Per round, every sampled client's update norm before clipping.
        clipped_update_norms: Per round, every client's update norm after clipping (<= C).
        sampled_clients: Per round, the sampled client ids.
        seconds_per_round: Wall-clock seconds of each round's training (not the evaluation).
        final_weights: Global per-layer weights after the last round.
        engine: ``"fast"`` or ``"loop"``.
        noise_multiplier, clipping_norm, sampling_probability, target_delta: The run's settings.
        noise_placement: ``"central"`` (the server noised the sum) or ``"local"`` (every client
            noised its own update).
        stopped_early: Why training stopped before ``num_rounds`` (``""`` if it did not):
            ``"target_epsilon"`` or ``"callback"``.
    """

    rounds: np.ndarray
    test_accuracy: np.ndarray
    test_loss: np.ndarray
    epsilon: np.ndarray
    num_sampled: np.ndarray
    fraction_clipped: np.ndarray
    mean_update_norm: np.ndarray
    update_norms: list[np.ndarray]
    clipped_update_norms: list[np.ndarray]
    sampled_clients: list[np.ndarray]
    seconds_per_round: np.ndarray
    final_weights: list[np.ndarray]
    engine: str
    noise_multiplier: float
    clipping_norm: float
    sampling_probability: float
    target_delta: float | None
    stopped_early: str = ""
    noise_placement: str = "central"

    @property
    def total_seconds(self) -> float:
        """Training time over all rounds, in seconds."""
        return float(np.sum(self.seconds_per_round))

    def as_dict(self) -> dict[str, np.ndarray]:
        """The per-round series as plain numpy arrays, keyed by name (handy for plotting/JSON)."""
        return {name: getattr(self, name).copy() for name in (
            "rounds", "test_accuracy", "test_loss", "epsilon", "num_sampled", "fraction_clipped",
            "mean_update_norm", "seconds_per_round")}


def run_dp_fedavg(model_fn: Callable[[], keras.Model],
                  client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *, num_rounds: int,
                  sampling_probability: float, local_epochs: int, batch_size: int | None,
                  client_learning_rate: float, clipping_norm: float, noise_multiplier: float,
                  server_learning_rate: float = 1.0,
                  test_data: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0,
                  progress: bool = True, target_delta: float | None = None,
                  target_epsilon: float | None = None,
                  callback: Callable[[dict[str, Any]], bool | None] | None = None,
                  engine: str = "auto",
                  initial_weights: list[np.ndarray] | None = None,
                  noise_placement: str = "central") -> DPHistory:
    """DP-FedAvg (McMahan et al. 2018, Algorithm 1) for up to ``num_rounds`` rounds.

    Round ``t``: Poisson-sample clients with probability ``q`` (:func:`sample_clients_poisson`),
    train each locally (seed ``[seed, t, k]``), clip each update to norm ``C``, sum, add
    ``N(0, (z C)^2)`` noise, divide by ``q N``, step with ``server_learning_rate``; then evaluate.
    With ``target_delta`` the privacy spent after each round is accounted
    (:func:`accounting.epsilon_per_round`, the RDP accountant of dp-accounting for the
    Poisson-subsampled Gaussian mechanism); with ``target_epsilon`` as well, training stops
    before the first round that would exceed it. Same arguments, same history (up to timings).

    Args:
        model_fn: Builds the model (e.g. ``fl_helpers.models.make_2nn``); its initial weights are
            the starting point unless ``initial_weights`` is given.
        client_datasets: One ``(x_k, y_k)`` pair per client (the ``N`` clients).
        num_rounds: ``T`` >= 1.
        sampling_probability: ``q`` in (0, 1]: each client's chance to join a round.
        local_epochs: ``E`` >= 1.
        batch_size: ``B`` >= 1 or ``None`` (full batch).
        client_learning_rate: ``eta`` > 0.
        clipping_norm: ``C`` > 0, the bound on each update's L2 norm.
        noise_multiplier: ``z`` >= 0; the noise on the sum has standard deviation ``z * C``.
            0 gives clipping without noise (no privacy: epsilon is ``inf``).
        server_learning_rate: ``eta_s`` > 0 (1 is plain averaging).
        test_data: ``(x_test, y_test)`` evaluated after every round, or ``None``.
        seed: Integer >= 0 fixing sampling, client batches and noise.
        progress: Show a tqdm progress bar.
        target_delta: delta in (0, 1) for the epsilon reported after each round, or ``None``.
        target_epsilon: Privacy budget (> 0; needs ``target_delta``): stop before exceeding it.
        callback: Called after every round with a dict of that round's figures (``round``,
            ``test_accuracy``, ``test_loss``, ``epsilon``, ``num_sampled``, ``fraction_clipped``,
            ``mean_update_norm``); if it returns ``True``, training stops.
        engine: ``"fast"`` (:mod:`fl_helpers.engine`, Dense stacks only), ``"loop"``
            (:func:`dp_fedavg_round`), or ``"auto"`` (fast where it applies).
        initial_weights: Optional starting global weights.
        noise_placement: ``"central"`` (DP-FedAvg: the server adds ``N(0, (z C)^2)`` to the sum
            once) or ``"local"`` (local DP: every sampled client adds ``N(0, (z C)^2)`` to its
            own clipped update; the sum of ``m`` such updates then carries ``N(0, m (z C)^2)``,
            drawn here as one Gaussian with noise multiplier ``z sqrt(m)``, the same
            distribution). With ``"local"`` the epsilon reported (and the ``target_epsilon``
            stop) is the busiest client's own (:func:`local_dp_epsilon_per_round`).

    Returns:
        A :class:`DPHistory`.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it), or
            ``target_epsilon`` is already exceeded by the first round.
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}.")
    if engine not in DP_ENGINES:
        raise ValueError(f"engine must be one of {list(DP_ENGINES)}, got {engine!r}.")
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
    sampling_probability = v.check_probability("sampling_probability", sampling_probability)
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
    if batch_size is not None:
        batch_size = v.check_int("batch_size", batch_size, minimum=1)
    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    noise_multiplier = v.check_non_negative("noise_multiplier", noise_multiplier)
    server_learning_rate = v.check_positive("server_learning_rate", server_learning_rate)
    seed = v.check_int("seed", seed, minimum=0)
    if noise_placement not in ("central", "local"):
        raise ValueError(f"noise_placement must be 'central' or 'local', got {noise_placement!r}.")
    if target_delta is not None:
        target_delta = v.check_open_unit("target_delta", target_delta)
    if target_epsilon is not None:
        target_epsilon = v.check_positive("target_epsilon", target_epsilon)
        if target_delta is None:
            raise ValueError("target_epsilon needs target_delta: pass target_delta=1e-5 or "
                             "similar, so that epsilon can be accounted.")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}.")
    if isinstance(client_datasets, np.ndarray) or not isinstance(client_datasets, Sequence):
        raise TypeError("client_datasets must be a list of (x, y) pairs, one per client, got "
                        f"{type(client_datasets).__name__}.")
    if len(client_datasets) == 0:
        raise ValueError("client_datasets must hold at least one client, got 0.")

    model = model_fn()
    if not isinstance(model, keras.Model):
        raise TypeError(f"model_fn must return a keras.Model, got {type(model).__name__}.")
    datasets = []
    for k, pair in enumerate(client_datasets):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                f"client_datasets[{k}] must be an (x, y) pair, got {type(pair).__name__}.")
        datasets.append(federated._check_client_data(
            model, *pair, name_x=f"client_datasets[{k}] x", name_y=f"client_datasets[{k}] y"))
    if test_data is not None:
        if not isinstance(test_data, (tuple, list)) or len(test_data) != 2:
            raise TypeError(
                f"test_data must be an (x, y) pair or None, got {type(test_data).__name__}.")
        x_test, y_test = federated._check_client_data(model, *test_data, name_x="test_data x",
                                                      name_y="test_data y")
    if initial_weights is None:
        weights = model.get_weights()
    else:
        weights = [np.array(w) for w in federated._check_weights(model, initial_weights,
                                                                 "initial_weights")]

    num_clients = len(datasets)
    denominator = sampling_probability * num_clients
    if target_delta is None:
        epsilons = None
    elif noise_multiplier == 0:
        epsilons = np.full(num_rounds, np.inf)
    elif noise_placement == "local":
        epsilons = local_dp_epsilon_per_round(
            noise_multiplier=noise_multiplier, num_clients=num_clients,
            sampling_probability=sampling_probability, num_rounds=num_rounds,
            target_delta=target_delta, seed=seed)
    else:
        epsilons = accounting.epsilon_per_round(
            noise_multiplier=noise_multiplier, sampling_probability=sampling_probability,
            num_rounds=num_rounds, target_delta=target_delta)
    rounds_allowed = num_rounds
    if target_epsilon is not None:
        rounds_allowed = int(np.searchsorted(epsilons, target_epsilon, side="right"))
        if rounds_allowed == 0:
            raise ValueError(
                f"target_epsilon={target_epsilon} is exceeded by the first round already "
                f"(epsilon after one round is {epsilons[0]:.4g} at target_delta={target_delta}). "
                "Raise target_epsilon, or raise noise_multiplier / lower sampling_probability.")
    samples = [sample_clients_poisson(num_clients, sampling_probability=sampling_probability,
                                      seed=seed, round_index=t) for t in range(rounds_allowed)]

    use_fast = engine == "fast" or (engine == "auto" and engine_module.supports(model))
    if use_fast:
        fast = engine_module.MultiClientEngine(
            model, datasets, local_epochs=local_epochs, batch_size=batch_size,
            client_learning_rate=client_learning_rate, seed=seed,
            max_clients_per_round=max(1, max(len(s) for s in samples)))
        if test_data is not None:
            test_on_device = fast.evaluation_data(x_test, y_test)

    def train_round(weights: list[np.ndarray], sampled: np.ndarray, t: int):
        # Local DP: m independent N(0, (zC)^2) draws sum to one N(0, m (zC)^2) draw.
        z_sum = (noise_multiplier * math.sqrt(len(sampled)) if noise_placement == "local"
                 else noise_multiplier)
        if use_fast:
            return fast.dp_round(weights, sampled, t, clipping_norm=clipping_norm,
                                 noise_multiplier=z_sum, denominator=denominator,
                                 server_learning_rate=server_learning_rate)
        return dp_fedavg_round(
            model, weights, datasets, sampled, t, local_epochs=local_epochs,
            batch_size=batch_size, client_learning_rate=client_learning_rate,
            clipping_norm=clipping_norm, noise_multiplier=z_sum,
            denominator=denominator, server_learning_rate=server_learning_rate, seed=seed)

    name = "fast" if use_fast else "loop"
    columns: dict[str, list[Any]] = {key: [] for key in (
        "test_accuracy", "test_loss", "num_sampled", "fraction_clipped", "mean_update_norm",
        "update_norms", "clipped_update_norms", "seconds")}
    stopped = "target_epsilon" if rounds_allowed < num_rounds else ""
    bar = tqdm(range(rounds_allowed), desc=f"DP-FedAvg ({name})", unit="round",
               disable=not progress)
    for t in bar:
        start = time.perf_counter()
        weights, stats = train_round(weights, samples[t], t)
        columns["seconds"].append(time.perf_counter() - start)
        norms = stats.update_norms
        figures: dict[str, Any] = {
            "round": t + 1,
            "num_sampled": int(norms.size),
            "fraction_clipped": float(np.mean(norms > clipping_norm)) if norms.size else math.nan,
            "mean_update_norm": float(np.mean(norms)) if norms.size else math.nan,
            "epsilon": None if epsilons is None else float(epsilons[t]),
            "test_accuracy": None,
            "test_loss": None,
        }
        columns["update_norms"].append(norms)
        columns["clipped_update_norms"].append(stats.clipped_norms)
        for key in ("num_sampled", "fraction_clipped", "mean_update_norm"):
            columns[key].append(figures[key])
        if test_data is not None:
            if use_fast:
                loss, accuracy = fast.evaluate(weights, test_on_device)
            else:
                model.set_weights(weights)
                loss, accuracy = federated._evaluate_unchecked(model, x_test, y_test)
            figures["test_loss"], figures["test_accuracy"] = loss, accuracy
            columns["test_loss"].append(loss)
            columns["test_accuracy"].append(accuracy)
            bar.set_postfix(test_accuracy=f"{accuracy:.4f}", refresh=False)
        if callback is not None and callback(figures) is True:
            stopped = "callback"
            break
    bar.close()
    done = len(columns["seconds"])
    return DPHistory(
        rounds=np.arange(1, done + 1, dtype=np.int64),
        test_accuracy=np.asarray(columns["test_accuracy"], dtype=np.float64),
        test_loss=np.asarray(columns["test_loss"], dtype=np.float64),
        epsilon=np.zeros(0) if epsilons is None else epsilons[:done].copy(),
        num_sampled=np.asarray(columns["num_sampled"], dtype=np.int64),
        fraction_clipped=np.asarray(columns["fraction_clipped"], dtype=np.float64),
        mean_update_norm=np.asarray(columns["mean_update_norm"], dtype=np.float64),
        update_norms=columns["update_norms"],
        clipped_update_norms=columns["clipped_update_norms"],
        sampled_clients=samples[:done],
        seconds_per_round=np.asarray(columns["seconds"], dtype=np.float64),
        final_weights=weights,
        engine=name,
        noise_multiplier=noise_multiplier,
        clipping_norm=clipping_norm,
        sampling_probability=sampling_probability,
        target_delta=target_delta,
        stopped_early=stopped,
        noise_placement=noise_placement,
    )
