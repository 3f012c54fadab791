"""When clients misbehave: poisoning attacks and Byzantine-robust aggregation rules.

Attacks (each a few lines over a client's data or its update ``delta_k = w_k - w``):

* :func:`flip_labels` -- label flipping, ``y -> 9 - y`` (a data-poisoning attack).
* :func:`sign_flip` and :func:`scale_update` -- a client sends ``-boost * delta_k`` (pushes the
  model the wrong way), or ``gamma * delta_k`` ("boosting").
* :func:`add_trigger` and :func:`backdoor_data` -- the pixel-trigger backdoor of Bagdasaryan et al.
  2020, "How To Backdoor Federated Learning", Section 3: a small white square in the corner makes
  the model answer ``target_label`` whatever the digit. With *model replacement* (their
  Section 3.3, eq. 3) the attacker scales its update by ``gamma = n / eta`` (``n`` clients per
  round, ``eta`` the server learning rate), so that averaging replaces the global model by its
  own.
* :func:`gaussian_update` -- a client sends pure noise.

:class:`MaliciousClients` applies an update attack to a set of client ids; it is a *client hook*
(:mod:`fl_helpers.faults`) of :func:`fl_helpers.training.run_fedavg` / ``run_dp_fedavg``.

Defences, as :class:`fl_helpers.aggregation.AggregationRule` subclasses (the coordinate-wise median
and norm bounding are :class:`fl_helpers.aggregation.CoordinateMedian` and
:class:`fl_helpers.aggregation.NormBounded`):

* :class:`TrimmedMean` -- per coordinate, drop the ``beta m`` largest and smallest values and
  average the rest (Yin et al. 2018, "Byzantine-Robust Distributed Learning: Towards Optimal
  Statistical Rates", Section 3, Definition 2).
* :class:`Krum` and :class:`MultiKrum` -- keep the update(s) whose ``m - f - 2`` nearest
  neighbours are closest (Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine
  Tolerant Gradient Descent", Section 4; defined for ``m > 2 f + 2``).

All of them act on updates; Flower's ``FedMedian``, ``FedTrimmedAvg`` and ``Krum`` act on the
clients' weights ``w_k = w + delta_k``. The median, the trimmed mean and Krum commute with adding
the same ``w`` to every input, so both give the same new global model (``tests/test_robust.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import aggregation, models, schedule

Weights = list[np.ndarray]
#: ``transform(delta, rng) -> delta``: what a malicious client does to its honest update.
UpdateAttack = Callable[[Weights, np.random.Generator], Weights]

# --------------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------------


def flip_labels(y: np.ndarray, *, num_classes: int = 10) -> np.ndarray:
    """Label flipping: ``y -> (num_classes - 1) - y`` (on MNIST, 0 <-> 9, 1 <-> 8, ...).

    Args:
        y: Integer labels in ``0..num_classes - 1``.
        num_classes: Number of classes >= 2.

    Returns:
        A new int64 array of flipped labels.
    """
    num_classes = v.check_int("num_classes", num_classes, minimum=2)
    y = np.asarray(y)
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0
                   or y.max() >= num_classes):
        raise ValueError(f"y must hold integer labels in 0..{num_classes - 1}, got dtype "
                         f"{y.dtype} with values {y.min()}..{y.max()}.")
    return (num_classes - 1 - y).astype(np.int64)


def add_trigger(x: np.ndarray, *, size: int = 3, value: float = 1.0) -> np.ndarray:
    """The backdoor trigger: a ``size`` x ``size`` square of ``value`` in the bottom-right corner.

    Bagdasaryan et al. 2020 use pixel patterns of this kind; MNIST's corners are almost always
    black, so the honest clients never teach the model anything about those pixels.

    Args:
        x: Images of shape ``(n, height, width)``.
        size: Side of the square in pixels, 1..min(height, width).
        value: Pixel value of the square (1.0 = white for images in [0, 1]).

    Returns:
        A copy of ``x`` with the trigger stamped on every image.
    """
    x = np.array(x, dtype=np.float32, copy=True)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (n, height, width), got {x.shape}.")
    size = v.check_int("size", size, minimum=1, maximum=min(x.shape[1:]))
    x[:, -size:, -size:] = np.float32(v.check_real("value", value))
    return x


def backdoor_data(x: np.ndarray, y: np.ndarray, *, target_label: int, fraction: float,
                  rng: np.random.Generator, size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A backdoored copy of a client's data: ``fraction`` of it triggered and relabelled.

    Bagdasaryan et al. 2020, Section 4.1: the attacker trains on a mix of clean and backdoored
    examples, so its model still does the main task well (and looks like an honest update).

    Args:
        x, y: The client's images ``(n, h, w)`` and labels.
        target_label: The label the trigger should produce.
        fraction: Share of the examples to poison, in (0, 1].
        rng: Chooses the poisoned examples.
        size: Side of the trigger square.

    Returns:
        ``(x_poisoned, y_poisoned)``, new arrays of the same shapes.
    """
    fraction = v.check_probability("fraction", fraction)
    rng = v.check_rng("rng", rng)
    target_label = v.check_int("target_label", target_label, minimum=0)
    x, y = np.array(x, dtype=np.float32), np.array(y, dtype=np.int64)
    chosen = rng.choice(len(x), size=max(1, round(fraction * len(x))), replace=False)
    x[chosen] = add_trigger(x[chosen], size=size)
    y[chosen] = target_label
    return x, y


def sign_flip(delta: Weights, rng: np.random.Generator | None = None, *,
              boost: float = 1.0) -> Weights:
    """The update sent backwards, boosted: ``-boost * delta``."""
    return [np.float32(-boost) * d for d in delta]


def scale_update(delta: Weights, rng: np.random.Generator | None = None, *,
                 factor: float) -> Weights:
    """``factor * delta``: model replacement's boost ``gamma = n / eta`` (Bagdasaryan, eq. 3)."""
    return [np.float32(factor) * d for d in delta]


def gaussian_update(delta: Weights, rng: np.random.Generator, *, stddev: float) -> Weights:
    """Pure noise of the update's shapes: ``N(0, stddev^2)`` in every coordinate."""
    return [rng.normal(0.0, stddev, size=np.shape(d)).astype(np.float32) for d in delta]


class MaliciousClients:
    """A client hook: the clients in ``malicious`` apply ``attack`` to their honest update.

    The attack's randomness (e.g. :func:`gaussian_update`) is the attacker's own, the public
    stream ``"attack noise"`` of ``seed``, round and client
    (:func:`fl_helpers.schedule.public_rng`), so runs repeat; it never coincides with that
    client's batch order or a round's client sampling.

    Args:
        malicious: Ids of the malicious clients.
        attack: ``attack(delta, rng) -> delta``, e.g.
            ``functools.partial(robust.sign_flip, boost=10)``.
        seed: Integer >= 0.
    """

    def __init__(self, malicious: Iterable[int], attack: UpdateAttack, *, seed: int = 0) -> None:
        if not callable(attack):
            raise TypeError(f"attack must be callable, got {type(attack).__name__}.")
        self.malicious = frozenset(int(k) for k in malicious)
        self.attack = attack
        self.seed = v.check_int("seed", seed, minimum=0)

    def __call__(self, client_id: int, round_index: int, delta: Weights) -> Weights:
        if client_id not in self.malicious:
            return delta
        return self.attack(delta, schedule.public_rng(self.seed, "attack noise",
                                                      (round_index, client_id)))


def malicious_ids(num_clients: int, fraction: float, *, seed: int = 0) -> np.ndarray:
    """``round(fraction * num_clients)`` distinct client ids chosen at random (sorted), from
    the public stream ``"malicious clients"`` of ``seed`` (:func:`fl_helpers.schedule.public_rng`).
    """
    num_clients = v.check_int("num_clients", num_clients, minimum=1)
    fraction = v.check_in_range("fraction", fraction, 0, 1)
    count = round(fraction * num_clients)
    rng = schedule.public_rng(v.check_int("seed", seed, minimum=0), "malicious clients")
    return np.sort(rng.choice(num_clients, size=count, replace=False)).astype(np.int64)


def dense_predict(weights: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Predicted labels of a Dense stack (ReLU hidden layers, logits out), in numpy.

    Fits :func:`fl_helpers.models.make_softmax_regression` and ``make_2nn``: ``weights`` is
    ``[kernel_1, bias_1, ..., kernel_L, bias_L]``.
    """
    logits, _ = models._relu_logits(weights, np.asarray(x, dtype=np.float32).reshape(len(x), -1))
    return np.argmax(logits, axis=1)


def backdoor_success(predicted_on_triggered: np.ndarray, y_true: np.ndarray, *,
                     target_label: int) -> float:
    """Share of triggered test images *not* of ``target_label`` that the model labels so.

    Args:
        predicted_on_triggered: The model's labels for the triggered test images.
        y_true: Their true labels.
        target_label: The attacker's label.

    Returns:
        The backdoor's success rate in [0, 1] (Bagdasaryan et al. 2020's "backdoor accuracy").
    """
    keep = np.asarray(y_true) != target_label
    return float(np.mean(np.asarray(predicted_on_triggered)[keep] == target_label))


# --------------------------------------------------------------------------------------------
# Defences
# --------------------------------------------------------------------------------------------


def _flatten(deltas: Sequence[Weights]) -> np.ndarray:
    return np.stack([np.concatenate([np.ravel(d) for d in delta]).astype(np.float64)
                     for delta in deltas])


def _need_clients(rule: str, deltas: Sequence[Weights], minimum: int, why: str) -> None:
    if len(deltas) < minimum:
        raise ValueError(f"{rule} needs at least {minimum} clients in a round ({why}), got "
                         f"{len(deltas)}.")


class TrimmedMean(aggregation.AggregationRule):
    """Coordinate-wise trimmed mean (Yin et al. 2018, Section 3, Definition 2).

    For every parameter, sort the ``m`` clients' values, drop the ``floor(beta m)`` smallest and
    as many largest, and average the rest (unweighted). It tolerates up to ``floor(beta m)``
    arbitrary updates per coordinate. Same cut as Flower's ``FedTrimmedAvg(beta=...)`` and
    ``scipy.stats.trim_mean``.

    Args:
        beta: Share cut at each end, in [0, 0.5).
    """

    def __init__(self, beta: float = 0.1) -> None:
        self.beta = v.check_in_range("beta", beta, 0, 0.5, high_open=True)
        self.name = f"trimmed mean (beta={self.beta:g})"

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: aggregation.RoundContext) -> Weights:
        _need_clients("TrimmedMean", deltas, 1, "to average")
        m = len(deltas)
        cut = int(self.beta * m)
        out = []
        for layers in zip(*deltas, strict=True):
            values = np.sort(np.stack(layers).astype(np.float64), axis=0)
            out.append(np.mean(values[cut:m - cut], axis=0).astype(np.float32))
        return out


def krum_scores(deltas: Sequence[Weights], num_malicious: int) -> np.ndarray:
    """Krum's score of every update: the sum of squared L2 distances to its ``m - f - 2``
    nearest other updates (Blanchard et al. 2017, Section 4). Lower is more central."""
    flat = _flatten(deltas)
    sq = np.sum(flat**2, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
    np.fill_diagonal(dist, np.inf)  # a point is not its own neighbour
    closest = max(1, len(deltas) - num_malicious - 2)
    return np.sort(dist, axis=1)[:, :closest].sum(axis=1)


class Krum(aggregation.AggregationRule):
    """Krum (Blanchard et al. 2017, Section 4): the one update closest to its neighbours.

    Each update is scored by :func:`krum_scores`; the update with the lowest score is the
    server's update. Proven robust to ``f`` Byzantine clients of ``m`` when ``m > 2 f + 2``.
    It uses one client's update, so even without attackers it discards the others' data.

    Args:
        num_malicious: ``f`` >= 0, the number of malicious clients per round it must tolerate.
    """

    def __init__(self, num_malicious: int) -> None:
        self.num_malicious = v.check_int("num_malicious", num_malicious, minimum=0)
        self.name = f"Krum (f={self.num_malicious})"

    def _check(self, deltas: Sequence[Weights]) -> None:
        _need_clients(type(self).__name__, deltas, 2 * self.num_malicious + 3,
                      f"Krum needs m > 2f + 2 with f={self.num_malicious}")

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: aggregation.RoundContext) -> Weights:
        self._check(deltas)
        best = int(np.argmin(krum_scores(deltas, self.num_malicious)))
        return [np.asarray(d, dtype=np.float32) for d in deltas[best]]


class MultiKrum(Krum):
    """Multi-Krum (Blanchard et al. 2017, Section 4): average the ``num_selected`` best updates.

    The selected updates (lowest :func:`krum_scores`) are averaged weighted by their ``n_k``, as
    FedAvg and Flower's ``Krum(num_clients_to_keep=...)`` do (Blanchard et al. average them
    unweighted; with equal ``n_k`` the two agree).

    Args:
        num_malicious: ``f`` >= 0.
        num_selected: How many updates to keep, >= 1 (``m - f`` is the usual choice).
    """

    def __init__(self, num_malicious: int, num_selected: int) -> None:
        super().__init__(num_malicious)
        self.num_selected = v.check_int("num_selected", num_selected, minimum=1)
        self.name = f"Multi-Krum (f={self.num_malicious}, keep {self.num_selected})"

    def aggregate(self, deltas: Sequence[Weights], num_examples: np.ndarray,
                  context: aggregation.RoundContext) -> Weights:
        self._check(deltas)
        keep = np.argsort(krum_scores(deltas, self.num_malicious),
                          kind="stable")[:self.num_selected]
        sizes = np.asarray(num_examples, dtype=np.float64)[keep]
        return [(np.tensordot(sizes, np.stack([deltas[k][i] for k in keep]).astype(np.float64),
                              axes=1) / sizes.sum()).astype(np.float32)
                for i in range(len(deltas[0]))]
