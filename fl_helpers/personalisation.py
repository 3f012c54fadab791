"""Personalisation and per-client evaluation: one model per client, judged on its own data.

A single global model trades some clients for others; the average accuracy hides its tails.
This module measures every client on its own held-out data (:func:`evaluate_per_client`, a
federated evaluation, summarised by the median, the 10th percentile and the worst client) and
offers two ways to give each client its own model:

* :func:`fine_tune`: a few local SGD steps from the global model on each client's own data
  (what Wang et al. 2019, "Federated Evaluation of On-device Personalization", measure).
* :class:`Ditto` (Li, Hu, Beirami & Smith 2021, "Ditto: Fair and Robust Federated Learning
  Through Personalization", ICML, Algorithm 1): alongside the global FedAvg model ``w``, every
  client keeps a personal model ``v_k`` trained on ``F_k(v) + lambda/2 ||v - w_t||^2``; it runs
  on the one training loop as a :class:`fl_helpers.training.ClientAlgorithm`.

Both run on the fast engine for Dense stacks and on the per-client loop otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from fl_helpers import _validation as v
from fl_helpers import client, engine, training

Weights = list[np.ndarray]


# --------------------------------------------------------------------------------------------
# Per-client (federated) evaluation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class PerClientEvaluation:
    """Every client's accuracy and loss on its own held-out data.

    Attributes:
        accuracy: Per client, in [0, 1] (float64).
        loss: Per client, mean cross-entropy (float64).
        num_examples: Per client, its held-out examples (int64).
    """

    accuracy: np.ndarray
    loss: np.ndarray
    num_examples: np.ndarray

    def summary(self) -> dict[str, float]:
        """The distribution of the clients' accuracies: ``mean`` (over clients, unweighted),
        ``median``, ``p10`` (10th percentile, linear interpolation), ``worst`` (minimum) and
        ``pooled`` (weighted by held-out examples: the accuracy on all held-out data)."""
        a = self.accuracy
        return {"mean": float(np.mean(a)), "median": float(np.median(a)),
                "p10": float(np.percentile(a, 10)), "worst": float(np.min(a)),
                "pooled": float(np.sum(a * self.num_examples) / np.sum(self.num_examples))}


def evaluate_per_client(model_fn: Callable[[], keras.Model],
                        client_test_data: Sequence[tuple[np.ndarray, np.ndarray]], *,
                        weights: Weights | None = None,
                        personal_weights: Sequence[Weights] | None = None
                        ) -> PerClientEvaluation:
    """Each client's accuracy and loss on its own data, for one model or one model per client.

    Federated evaluation: client ``k`` scores ``weights`` (the global model) or
    ``personal_weights[k]`` (its own) on ``client_test_data[k]``. Give exactly one of the two.

    Args:
        model_fn: Builds the architecture (e.g. ``lambda: models.make_mlp((), input_shape=(60,))``).
        client_test_data: One held-out ``(x_k, y_k)`` per client (any sizes >= 1).
        weights: One model's per-layer weights, evaluated on every client.
        personal_weights: One model per client (same number as ``client_test_data``).

    Returns:
        A :class:`PerClientEvaluation` (its :meth:`~PerClientEvaluation.summary` gives the
        median, 10th percentile, worst client and mean).

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model = _build(model_fn)
    datasets = client.check_datasets(model, client_test_data, "client_test_data")
    if (weights is None) == (personal_weights is None):
        raise ValueError("evaluate_per_client needs exactly one of weights (one model for "
                         "every client) and personal_weights (one per client), got "
                         f"{'both' if weights is not None else 'neither'}.")
    if personal_weights is not None:
        if isinstance(personal_weights, np.ndarray) or not isinstance(personal_weights,
                                                                      Sequence):
            raise TypeError(f"personal_weights must be a list with one model's weights per "
                            f"client, got {type(personal_weights).__name__}.")
        if len(personal_weights) != len(datasets):
            raise ValueError(f"personal_weights must hold one model per client "
                             f"({len(datasets)}), got {len(personal_weights)}.")
        per_client = [client.check_weights(model, w, f"personal_weights[{k}]")
                      for k, w in enumerate(personal_weights)]
    else:
        per_client = [client.check_weights(model, weights, "weights")] * len(datasets)
    program = engine.layer_program(model)
    dense = program is not None and engine._is_dense_stack(program)
    accuracy, loss = [], []
    for (x, y), w in zip(datasets, per_client, strict=True):
        if dense and program is not None:  # numpy: a compiled evaluator would recompile
            # for every distinct client size
            value_loss, value_accuracy = _dense_evaluate(program, w, x, y)
            loss.append(value_loss)
            accuracy.append(value_accuracy)
            continue
        evaluate = (engine.FastEvaluator(program, x, y) if program is not None
                    else client.Evaluator(model, x, y))
        value_loss, value_accuracy = evaluate(w)
        loss.append(value_loss)
        accuracy.append(value_accuracy)
    return PerClientEvaluation(accuracy=np.asarray(accuracy, dtype=np.float64),
                               loss=np.asarray(loss, dtype=np.float64),
                               num_examples=np.asarray([len(y) for _, y in datasets], np.int64))


_NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda a: a,
    "relu": lambda a: np.maximum(a, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
}


def _dense_evaluate(program: tuple[Any, ...], weights: Weights, x: np.ndarray,
                    y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a Dense stack (``engine.layer_program``), in numpy.

    The same forward pass as the engine (float32 matmuls), the loss in float64. Per-client
    evaluation calls this once per client: a compiled evaluator would be traced and compiled
    again for every distinct client size (TensorFlow's retracing warning after five).
    """
    h = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    layers = iter(weights)
    for op in program:
        if op[0] == "dense":
            kernel, bias = (np.asarray(next(layers), np.float32) for _ in range(2))
            h = _NUMPY_ACTIVATIONS[op[1]](h @ kernel + bias).astype(np.float32)
    z = h.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    labels = np.asarray(y, dtype=np.int64)
    return (float(-log_p[np.arange(len(labels)), labels].mean()),
            float(np.mean(z.argmax(axis=1) == labels)))


def _build(model_fn: Any) -> keras.Model:
    if isinstance(model_fn, keras.Model):
        raise TypeError(f"model_fn must be a function that builds a model, got the model "
                        f"{model_fn.name!r} itself. Pass e.g. models.make_softmax_regression.")
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}.")
    model = model_fn()
    if not isinstance(model, keras.Model):
        raise TypeError(f"model_fn must return a keras.Model, got {type(model).__name__}.")
    return model


# --------------------------------------------------------------------------------------------
# Local fine-tuning
# --------------------------------------------------------------------------------------------


def fine_tune(model_fn: Callable[[], keras.Model], global_weights: Weights,
              client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], *, local_epochs: int,
              batch_size: int | None, client_learning_rate: float,
              max_steps: int | None = None, seed: int = 0,
              engine: str | training.Engine = "auto") -> list[Weights]:
    """Every client's own model: the global model fine-tuned by local SGD on the client's data.

    Client ``k`` starts from ``global_weights`` and takes ``local_epochs`` epochs of SGD with
    ``batch_size`` and ``client_learning_rate`` on its own ``(x_k, y_k)`` (batches from the seed
    ``[seed, 0, k]``, as :func:`fl_helpers.client.client_update`), or only its first
    ``max_steps`` steps. All clients at once on the fast engine for Dense stacks.

    Args:
        model_fn: Builds the architecture of ``global_weights``.
        global_weights: The global model's per-layer weights.
        client_datasets: One ``(x_k, y_k)`` per client (its training share).
        local_epochs, batch_size, client_learning_rate, seed, engine: As
            :func:`fl_helpers.training.run_fedavg`.
        max_steps: At most this many SGD steps per client (>= 0; 0 returns the global model),
            or ``None`` (all ``local_epochs`` epochs).

    Returns:
        One list of per-layer float32 weights per client.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    model = _build(model_fn)
    start = [np.asarray(w, np.float32)
             for w in client.check_weights(model, global_weights, "global_weights")]
    trainer = training.make_trainer(model, client_datasets, local_epochs=local_epochs,
                                    batch_size=batch_size,
                                    client_learning_rate=client_learning_rate, seed=seed,
                                    engine=engine)
    ids = np.arange(len(training.client_sizes(trainer)), dtype=np.int64)
    work = None
    if max_steps is not None:
        max_steps = v.check_int("max_steps", max_steps, minimum=0)
        work = client.LocalWork(max_steps=np.full(len(ids), max_steps, dtype=np.int64))
    results = trainer.train(start, ids, 0, work)
    return [[(w + d).astype(np.float32) for w, d in zip(start, delta, strict=True)]
            for delta in results.deltas]


# --------------------------------------------------------------------------------------------
# Ditto
# --------------------------------------------------------------------------------------------


class Ditto(training.ClientAlgorithm):
    """Ditto (Li, Hu, Beirami & Smith 2021, ICML, Algorithm 1) on the one training loop.

    The global model is FedAvg's: each sampled client trains ``w_t`` by plain local SGD and its
    update is aggregated as usual. In the same round it also trains its personal model ``v_k``
    (kept across rounds; ``v_k = w_0`` at the start) on
    ``h_k(v) = F_k(v) + lambda/2 ||v - w_t||^2``, with the same local SGD (epochs, batch size,
    learning rate and batches as its global training; ``personal_steps`` caps the steps): every
    step is ``v <- v - eta (grad F_k(v) + lambda (v - w_t))``. ``lambda = 0`` is purely local
    training; a large ``lambda`` pulls ``v_k`` to the global model. Clients not sampled keep
    their ``v_k``. The personal models never leave the clients: the upload is FedAvg's.

    Args:
        lam: ``lambda`` >= 0 (the paper tunes it in {0.05, 0.1, 0.2, 0.5, 1, 2}).
        personal_steps: At most this many local steps on the personal objective per round
            (>= 1), or ``None`` (as many as the global training).

    Attributes:
        personal_weights: ``v_k`` per client, per layer (after the run's first round starts).
    """

    name = "Ditto"
    stateful = True

    def __init__(self, lam: float = 0.1, *, personal_steps: int | None = None) -> None:
        self.lam = v.check_non_negative("lam", lam)
        self.personal_steps = None if personal_steps is None else v.check_int(
            "personal_steps", personal_steps, minimum=1)
        self.personal_weights: list[Weights] = []

    def start(self, num_clients: int, weights: Weights) -> None:
        self.personal_weights = [[np.array(w, dtype=np.float32) for w in weights]
                                 for _ in range(num_clients)]

    def train_round(self, trainer: training.Trainer, weights: Weights, sampled: np.ndarray,
                    round_index: int) -> client.ClientResults:
        sampled = np.asarray(sampled, dtype=np.int64)
        results = trainer.train(weights, sampled, round_index)
        if len(sampled):
            max_steps = None if self.personal_steps is None else np.full(
                len(sampled), self.personal_steps, dtype=np.int64)
            work = client.LocalWork(proximal_mu=self.lam, max_steps=max_steps,
                                    starts=[self.personal_weights[int(k)] for k in sampled])
            personal = trainer.train(weights, sampled, round_index, work)
            for k, delta in zip(sampled, personal.deltas, strict=True):
                self.personal_weights[int(k)] = [(w + d).astype(np.float32)
                                                 for w, d in zip(weights, delta, strict=True)]
        return results

    def __repr__(self) -> str:
        return f"Ditto(lam={self.lam}, personal_steps={self.personal_steps})"
