"""When clients differ: the FedProx paper's synthetic federation, FedProx and SCAFFOLD.

Non-IID clients pull their local models towards their own optima ("client drift"), so FedAvg's
average of many local steps lands away from the global optimum. The cures here change what each
client optimises, and plug into the one training loop as a
:class:`fl_helpers.training.ClientAlgorithm` (``run_fedavg(..., client_algorithm=...)``), on the
fast engine or the per-client loop alike:

* :func:`synthetic_federation`: Synthetic(alpha, beta) of Li et al. 2020, "Federated
  Optimization in Heterogeneous Networks" (MLSys), Section 5.1: 30 devices, 60 features,
  10 classes, power-law sizes; ``alpha`` controls how much the devices' models differ,
  ``beta`` how much their inputs differ.
* :class:`FedProx` (the same paper, Algorithm 2): each client minimises
  ``F_k(w) + mu/2 ||w - w_t||^2``, and stragglers' partial work (fewer local epochs) is kept;
  with ``mu = 0, drop_stragglers=True`` it is the paper's FedAvg baseline, which drops them.
* :class:`SCAFFOLD` (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for
  Federated Learning", ICML, Algorithm 1): server and client control variates ``c`` and
  ``c_i`` correct every local step, option II's control update; the upload is doubled.

Server optimizers (FedAvgM, FedAdam, FedYogi of Reddi et al. 2021) live beside their kin in
:mod:`fl_helpers.aggregation` (``ServerSGD(momentum=...)``, ``ServerAdam``, ``ServerYogi``);
personalisation (fine-tuning, Ditto) and per-client evaluation in
:mod:`fl_helpers.personalisation`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import client, schedule, training

Weights = list[np.ndarray]
Dataset = tuple[np.ndarray, np.ndarray]

#: Synthetic(alpha, beta)'s shape (Li et al. 2020, Section 5.1).
SYNTHETIC_CLIENTS = 30
SYNTHETIC_FEATURES = 60
SYNTHETIC_CLASSES = 10


@dataclasses.dataclass(eq=False)
class Federation:
    """Every client's training data and its own held-out data.

    Attributes:
        train: One ``(x_k, y_k)`` per client (float32 inputs, int64 labels).
        test: One held-out ``(x_k, y_k)`` per client, from the same distribution as its
            ``train`` (for federated, per-client evaluation).
        description: What generated it, with its settings.
    """

    train: list[Dataset]
    test: list[Dataset]
    description: str

    @property
    def num_clients(self) -> int:
        """The number of clients."""
        return len(self.train)

    @property
    def sizes(self) -> np.ndarray:
        """``n_k``: each client's number of training examples (int64)."""
        return np.asarray([len(y) for _, y in self.train], dtype=np.int64)

    def pooled_test(self) -> Dataset:
        """Every client's held-out data in one ``(x, y)`` (for a run's ``test_data``)."""
        return (np.concatenate([x for x, _ in self.test]),
                np.concatenate([y for _, y in self.test]))


def synthetic_federation(alpha: float, beta: float, *, num_clients: int = SYNTHETIC_CLIENTS,
                         held_out_fraction: float = 0.2, iid: bool = False,
                         seed: int = 0) -> Federation:
    """Synthetic(alpha, beta): the FedProx paper's federation (Li et al. 2020, Section 5.1).

    Client ``k``: ``u_k ~ N(0, alpha)``, its model ``W_k ~ N(u_k, 1)`` (60 x 10) and
    ``b_k ~ N(u_k, 1)`` (10); ``B_k ~ N(0, beta)``, ``v_k ~ N(B_k, 1)`` (60 values), inputs
    ``x ~ N(v_k, Sigma)`` with diagonal ``Sigma_jj = j^-1.2`` (j = 1..60), and labels
    ``y = argmax softmax(W_k^T x + b_k)``. The second argument of ``N`` is a standard deviation,
    as in the paper's published generator. Sizes follow a power law: ``n_k = floor(e^Z) + 50``
    with ``Z ~ N(4, 2)`` (a log-normal, heavy-tailed). ``iid=True`` is the paper's
    Synthetic-IID: one ``W``, ``b`` (entries ``N(0, 1)``) and ``v = 0`` for every client.
    Each client's examples are shuffled and split into its training and held-out shares.

    Args:
        alpha: How much the clients' labelling models differ, >= 0 (0 is one shared mean).
        beta: How much the clients' inputs differ, >= 0.
        num_clients: Clients, 1..10,000 (the paper: 30).
        held_out_fraction: Share of each client's examples held out, in (0, 1) (at least one
            example each side).
        iid: Synthetic-IID instead (``alpha`` and ``beta`` are then unused).
        seed: Integer >= 0; same seed, same federation.

    Returns:
        A :class:`Federation`.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    alpha = v.check_non_negative("alpha", alpha)
    beta = v.check_non_negative("beta", beta)
    num_clients = v.check_int("num_clients", num_clients, minimum=1, maximum=10_000)
    held_out_fraction = v.check_open_unit("held_out_fraction", held_out_fraction)
    iid = v.check_flag("iid", iid)
    seed = v.check_int("seed", seed, minimum=0)
    rng = schedule.public_rng(seed, "synthetic federation")
    d, c = SYNTHETIC_FEATURES, SYNTHETIC_CLASSES
    sizes = np.floor(rng.lognormal(4.0, 2.0, num_clients)).astype(np.int64) + 50
    sizes = np.minimum(sizes, 100_000)  # the log-normal's far tail, capped for memory
    means_w = rng.normal(0.0, alpha, num_clients)
    means_x = rng.normal(0.0, beta, num_clients)
    stddev_x = np.arange(1, d + 1, dtype=np.float64) ** -0.6  # sqrt(j^-1.2)
    shared_w, shared_b = rng.normal(0.0, 1.0, (d, c)), rng.normal(0.0, 1.0, c)
    train, test = [], []
    for k in range(num_clients):
        if iid:
            w, b, v_k = shared_w, shared_b, np.zeros(d)
        else:
            w = rng.normal(means_w[k], 1.0, (d, c))
            b = rng.normal(means_w[k], 1.0, c)
            v_k = rng.normal(means_x[k], 1.0, d)
        x = v_k + stddev_x * rng.standard_normal((int(sizes[k]), d))
        y = np.argmax(x @ w + b, axis=1).astype(np.int64)  # softmax keeps the argmax
        held = min(max(1, int(round(held_out_fraction * len(y)))), len(y) - 1)
        order = rng.permutation(len(y))
        train.append((x[order[held:]].astype(np.float32), y[order[held:]]))
        test.append((x[order[:held]].astype(np.float32), y[order[:held]]))
    name = "Synthetic-IID" if iid else f"Synthetic({alpha:g}, {beta:g})"
    return Federation(train=train, test=test,
                      description=f"{name}, {num_clients} clients, seed {seed}")


# --------------------------------------------------------------------------------------------
# FedProx, with stragglers
# --------------------------------------------------------------------------------------------


def straggler_epochs(num_sampled: int, *, straggler_fraction: float, local_epochs: int,
                     seed: int, round_index: int) -> np.ndarray:
    """Local epochs of each of a round's sampled clients when some are stragglers.

    As in the FedProx paper's systems-heterogeneity experiments (Li et al. 2020, Section 5.2):
    ``round(straggler_fraction * num_sampled)`` of the sampled clients, chosen uniformly, are
    stragglers and manage only ``x`` epochs, ``x`` uniform in ``1..local_epochs``; the others
    run all ``local_epochs``. Drawn from the public stream ``"stragglers"`` of ``seed`` and
    ``round_index`` (:func:`fl_helpers.schedule.public_rng`; who straggles is simulated, not
    private).

    Args:
        num_sampled: Clients sampled this round, >= 0.
        straggler_fraction: In [0, 1].
        local_epochs: ``E`` >= 1.
        seed, round_index: Integers >= 0.

    Returns:
        int64 epochs per sampled client; a straggler is marked by a value < ``local_epochs``
        or, when it drew ``local_epochs``, by :func:`stragglers` (use that to tell them apart).
    """
    epochs, _ = _straggler_draw(num_sampled, straggler_fraction, local_epochs, seed, round_index)
    return epochs


def stragglers(num_sampled: int, *, straggler_fraction: float, seed: int,
               round_index: int) -> np.ndarray:
    """Which of a round's sampled clients straggle (bool per sampled client), the same draw as
    :func:`straggler_epochs`."""
    _, mask = _straggler_draw(num_sampled, straggler_fraction, 1, seed, round_index)
    return mask


def _check_fraction(value: Any) -> float:
    return v.check_in_range("straggler_fraction", value, 0, 1)


def _straggler_draw(num_sampled: Any, fraction: Any, local_epochs: Any, seed: Any,
                    round_index: Any) -> tuple[np.ndarray, np.ndarray]:
    num_sampled = v.check_int("num_sampled", num_sampled, minimum=0)
    fraction = _check_fraction(fraction)
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1)
    seed = v.check_int("seed", seed, minimum=0)
    round_index = v.check_int("round_index", round_index, minimum=0)
    rng = schedule.public_rng(seed, "stragglers", (round_index,))
    chosen = rng.permutation(num_sampled)[:int(round(fraction * num_sampled))]
    mask = np.zeros(num_sampled, dtype=bool)
    mask[chosen] = True
    epochs = np.full(num_sampled, local_epochs, dtype=np.int64)
    # One draw per sampled client whatever local_epochs is, so the stragglers are the same.
    draws = rng.integers(0, 2**31, num_sampled)
    epochs[mask] = 1 + draws[mask] % local_epochs
    return epochs, mask


class FedProx(training.ClientAlgorithm):
    """FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks", Algorithm 2).

    Each sampled client ``k`` approximately minimises ``h_k(w) = F_k(w) + mu/2 ||w - w_t||^2``
    by its usual local SGD, so every step is ``w <- w - eta (grad F_k(w) + mu (w - w_t))``: the
    proximal term pulls the local model back towards the round's global model ``w_t``, limiting
    drift. With ``straggler_fraction`` > 0, that share of each round's sampled clients manage
    only ``x`` of the ``E`` local epochs (:func:`straggler_epochs`): FedProx keeps their partial
    work; ``drop_stragglers=True`` drops their updates, as the paper's FedAvg baseline does
    (FedProx with ``mu = 0`` and stragglers kept is the paper's other baseline).

    Args:
        proximal_mu: ``mu`` >= 0 (the paper tries 0.001, 0.01, 0.1, 1).
        straggler_fraction: Share of each round's sampled clients that straggle, in [0, 1].
        drop_stragglers: Drop the stragglers' updates (FedAvg) instead of keeping them.
        seed: Integer >= 0 fixing who straggles, and how much, in each round.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """

    name = "FedProx"

    def __init__(self, proximal_mu: float = 0.01, *, straggler_fraction: float = 0.0,
                 drop_stragglers: bool = False, seed: int = 0) -> None:
        self.proximal_mu = v.check_non_negative("proximal_mu", proximal_mu)
        self.straggler_fraction = _check_fraction(straggler_fraction)
        self.drop_stragglers = v.check_flag("drop_stragglers", drop_stragglers)
        self.seed = v.check_int("seed", seed, minimum=0)
        if self.drop_stragglers and self.proximal_mu == 0:
            self.name = "FedAvg (stragglers dropped)"

    def local_work(self, trainer: training.Trainer, weights: Weights, sampled: np.ndarray,
                   round_index: int) -> client.LocalWork | None:
        max_steps = None
        if self.straggler_fraction > 0 and not self.drop_stragglers:
            epochs = straggler_epochs(len(sampled), straggler_fraction=self.straggler_fraction,
                                      local_epochs=trainer.local_epochs, seed=self.seed,
                                      round_index=round_index)
            full = training.local_steps(trainer, sampled)
            max_steps = full // trainer.local_epochs * epochs
        if self.proximal_mu == 0 and max_steps is None:
            return None
        return client.LocalWork(proximal_mu=self.proximal_mu, max_steps=max_steps)

    def train_round(self, trainer: training.Trainer, weights: Weights, sampled: np.ndarray,
                    round_index: int) -> client.ClientResults:
        if self.drop_stragglers and self.straggler_fraction > 0:
            late = stragglers(len(sampled), straggler_fraction=self.straggler_fraction,
                              seed=self.seed, round_index=round_index)
            kept = np.asarray(sampled, dtype=np.int64)[~late]
            results = super().train_round(trainer, weights, kept, round_index)
            results.clients = kept
            return results
        return super().train_round(trainer, weights, sampled, round_index)

    def __repr__(self) -> str:
        return (f"FedProx(proximal_mu={self.proximal_mu}, straggler_fraction="
                f"{self.straggler_fraction}, drop_stragglers={self.drop_stragglers})")


# --------------------------------------------------------------------------------------------
# SCAFFOLD
# --------------------------------------------------------------------------------------------


class SCAFFOLD(training.ClientAlgorithm):
    """SCAFFOLD (Karimireddy et al. 2020, ICML, Algorithm 1, control update option II).

    The server keeps a control variate ``c`` and every client ``i`` its own ``c_i`` (zeros at
    the start, kept across rounds, also by clients not sampled). A sampled client starts from
    ``x = w_t`` and corrects every local step by the difference of the two estimates of the
    update direction: ``y <- y - eta (g_i(y) - c_i + c)``. After its ``K`` steps it sets
    ``c_i+ = c_i - c + (x - y) / (K eta)`` (option II) and uploads ``delta y_i = y - x`` and
    ``delta c_i = c_i+ - c_i``: twice FedAvg's upload (:attr:`uploads_per_client`). The server
    steps ``x <- x + eta_g mean(delta y_i)`` (the run's aggregation rule and
    ``server_optimizer=aggregation.ServerSGD(eta_g)``; the paper's mean is unweighted:
    ``uniform_weights=True`` reports ``n_k = 1`` to the rule) and
    ``c <- c + (|S| / N) mean(delta c_i)``.

    ``K`` is each client's own step count (``E ceil(n_k / B)``), so clients of different
    sizes are handled as in the paper's option II with per-client ``K_i``.

    Args:
        uniform_weights: Average the clients' updates with equal weights (the paper) instead of
            by ``n_k``.

    Attributes:
        server_control: ``c``, per layer (after :meth:`start`).
        client_controls: ``c_i`` per client, per layer.
    """

    name = "SCAFFOLD"
    uploads_per_client = 2
    stateful = True

    def __init__(self, *, uniform_weights: bool = True) -> None:
        self.uniform_weights = v.check_flag("uniform_weights", uniform_weights)
        self.server_control: Weights = []
        self.client_controls: list[Weights] = []

    def start(self, num_clients: int, weights: Weights) -> None:
        self.server_control = [np.zeros_like(w, dtype=np.float32) for w in weights]
        self.client_controls = [[np.zeros_like(w, dtype=np.float32) for w in weights]
                                for _ in range(num_clients)]

    def train_round(self, trainer: training.Trainer, weights: Weights, sampled: np.ndarray,
                    round_index: int) -> client.ClientResults:
        sampled = np.asarray(sampled, dtype=np.int64)
        c = self.server_control
        corrections = [[ci - cc for ci, cc in zip(c, self.client_controls[int(k)], strict=True)]
                       for k in sampled]
        results = trainer.train(weights, sampled, round_index,
                                client.LocalWork(corrections=corrections))
        steps = training.local_steps(trainer, sampled)
        eta = np.float32(trainer.client_learning_rate)
        change = [np.zeros_like(w, dtype=np.float32) for w in c]
        for k, delta, k_steps in zip(sampled, results.deltas, steps, strict=True):
            old = self.client_controls[int(k)]
            new = [ci - cc - d / (np.float32(k_steps) * eta)
                   for ci, cc, d in zip(old, c, delta, strict=True)]
            change = [(s + (n - o)).astype(np.float32)
                      for s, n, o in zip(change, new, old, strict=True)]
            self.client_controls[int(k)] = [n.astype(np.float32) for n in new]
        num_clients = len(self.client_controls)
        self.server_control = [(cc + s / np.float32(num_clients)).astype(np.float32)
                               for cc, s in zip(c, change, strict=True)]
        if self.uniform_weights:
            return client.ClientResults(deltas=results.deltas,
                                        num_examples=np.ones(len(sampled), dtype=np.int64))
        return results

    def __repr__(self) -> str:
        return f"SCAFFOLD(uniform_weights={self.uniform_weights})"


def upload_bytes_per_round(algorithm: training.ClientAlgorithm, weights: Weights, *,
                           clients_per_round: int) -> int:
    """Bytes all of a round's clients upload: ``clients_per_round`` times the algorithm's
    :meth:`~fl_helpers.training.ClientAlgorithm.upload_bytes` (float32 arrays, no framing).

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    if not isinstance(algorithm, training.ClientAlgorithm):
        raise TypeError(f"algorithm must be a training.ClientAlgorithm, got "
                        f"{type(algorithm).__name__}.")
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError(f"weights must be a non-empty list of per-layer arrays, got "
                        f"{type(weights).__name__}.")
    clients_per_round = v.check_int("clients_per_round", clients_per_round, minimum=0)
    return clients_per_round * algorithm.upload_bytes(list(weights))
