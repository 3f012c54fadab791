"""Notebook 10's live widget: move the clients' heterogeneity and FedProx's mu, see every client.

:func:`per_client_summary` and :func:`draw_per_client` are plain functions (the tests call
them); :func:`per_client_explorer` wraps them in two sliders. Each move deals the given images
to 20 clients with a Dirichlet(alpha) label split (:func:`fl_helpers.data.partition_dirichlet`;
small alpha: each client holds few labels), keeps a fifth of every client's images as its own
held-out data, trains FedAvg and FedProx with the chosen ``mu`` on the one training loop,
fine-tunes FedAvg's model on every client, and scores each model on each client's own held-out
data (:func:`fl_helpers.personalisation.evaluate_per_client`). Nothing here is private or noised.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import data, heterogeneity, models, personalisation, schedule, training

#: The Dirichlet slider's values of alpha (small: each client holds few labels; 100: nearly IID).
ALPHA_VALUES = (0.05, 0.1, 0.3, 1.0, 10.0, 100.0)
#: The FedProx slider's values of ``mu``.
MU_VALUES = (0.0, 0.01, 0.1, 1.0)
#: The methods a summary holds, in drawing order.
METHODS = ("FedAvg", "FedProx", "FedAvg + fine-tuning")
#: The short run each move trains (softmax regression; about a second per method on a laptop).
SETTING: dict[str, Any] = {"num_rounds": 10, "clients_per_round": 10, "local_epochs": 1,
                           "batch_size": 20, "client_learning_rate": 0.1}
#: Clients of the federation, and the steps of local fine-tuning from FedAvg's model.
NUM_CLIENTS = 20
FINE_TUNE_STEPS = 5


def _check_alpha(value: Any) -> float:
    return v.check_in_range("alpha", value, 0.01, 1000)


def _check_mu(value: Any) -> float:
    return v.check_in_range("proximal_mu", value, 0, 10)


def _check_data(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = v.check_float_array("x", x, ndim=2)
    if len(x) < 5 * NUM_CLIENTS:
        raise ValueError(f"x must have at least {5 * NUM_CLIENTS} rows (5 per client), got "
                         f"{len(x)}.")
    if isinstance(y, np.ndarray) and y.dtype.kind not in "iu":
        raise TypeError(f"y must be an integer array of labels, got dtype {y.dtype}.")
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
        raise ValueError(f"y must be a 1-D integer array with one label per row of x "
                         f"({len(x)}), got shape {y.shape} of {y.dtype}.")
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"y must hold labels in 0..9, got {y.min()}..{y.max()}.")
    return x.astype(np.float32), y.astype(np.int64)


def _check_summary(summary: Any, name: str = "summary") -> dict[str, Any]:
    if not isinstance(summary, dict):
        raise TypeError(f"{name} must be a dict from per_client_summary, got "
                        f"{type(summary).__name__} {v._fmt(summary)}.")
    for key in ("alpha", "proximal_mu", "accuracy"):
        if key not in summary:
            raise ValueError(f"{name} must be a dict from per_client_summary, got one without "
                             f"{key!r}.")
    accuracy = summary["accuracy"]
    if not isinstance(accuracy, dict) or set(accuracy) != set(METHODS):
        raise ValueError(f"{name}['accuracy'] must map each of {METHODS} to per-client "
                         f"accuracies, got {v._fmt(accuracy)}.")
    for method in METHODS:
        values = v.check_float_array(f"{name}['accuracy'][{method!r}]", accuracy[method],
                                     ndim=1)
        if values.min() < 0 or values.max() > 1:
            raise ValueError(f"{name}['accuracy'][{method!r}] must hold accuracies in [0, 1], "
                             f"got {v._fmt(values)}.")
    return summary


def dirichlet_federation(x: np.ndarray, y: np.ndarray, *, alpha: float, seed: int = 0
                         ) -> heterogeneity.Federation:
    """:data:`NUM_CLIENTS` clients by a Dirichlet(alpha) label split, each holding out a fifth.

    A client dealt fewer than 2 examples receives the last examples of the largest client, so
    that every client has at least one example to train on and one to test on.

    Args:
        x: Float inputs, one flat row per example (e.g. 14 x 14 MNIST as 196 columns).
        y: Integer labels 0..9, one per row.
        alpha: Dirichlet concentration in [0.01, 1000].
        seed: Integer >= 0 fixing the split.

    Returns:
        A :class:`fl_helpers.heterogeneity.Federation`.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    x, y = _check_data(x, y)
    alpha = _check_alpha(alpha)
    seed = v.check_int("seed", seed, minimum=0)
    rng = schedule.public_rng(seed, "dirichlet split")
    parts = [np.asarray(p) for p in data.partition_dirichlet(y, NUM_CLIENTS, alpha=alpha,
                                                               rng=rng)]
    for k in range(NUM_CLIENTS):  # at least 2 examples each: one to train on, one to test
        while len(parts[k]) < 2:
            largest = int(np.argmax([len(p) for p in parts]))
            parts[k], parts[largest] = np.append(parts[k], parts[largest][-1]), parts[largest][:-1]
    train, test = [], []
    for part in parts:
        part = rng.permutation(part)
        held = min(max(1, len(part) // 5), len(part) - 1)
        test.append((x[part[:held]], y[part[:held]]))
        train.append((x[part[held:]], y[part[held:]]))
    return heterogeneity.Federation(train=train, test=test,
                                    description=f"Dirichlet({alpha:g}), {NUM_CLIENTS} clients")


def per_client_summary(x: np.ndarray, y: np.ndarray, *, alpha: float, proximal_mu: float,
                       seed: int = 0) -> dict[str, Any]:
    """Every client's held-out accuracy under FedAvg, FedProx and fine-tuned FedAvg.

    The federation of :func:`dirichlet_federation`, softmax regression, :data:`SETTING`;
    fine-tuning takes :data:`FINE_TUNE_STEPS` local steps from FedAvg's final model. Same
    arguments, same result.

    Args:
        x, y: As :func:`dirichlet_federation`.
        alpha: Dirichlet concentration in [0.01, 1000].
        proximal_mu: FedProx's ``mu`` in [0, 10].
        seed: Integer >= 0 fixing the split, the sampling and the batches.

    Returns:
        ``{"alpha", "proximal_mu", "accuracy", "pooled"}``: ``accuracy`` maps each of
        :data:`METHODS` to its per-client accuracies (float64, one per client), ``pooled`` to
        its accuracy on all clients' held-out data together.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it).
    """
    proximal_mu = _check_mu(proximal_mu)
    fed = dirichlet_federation(x, y, alpha=alpha, seed=seed)
    alpha = _check_alpha(alpha)
    features = fed.train[0][0].shape[1]

    def model_fn():  # softmax regression
        return models.make_mlp((), input_shape=(features,), seed=seed)

    common: dict[str, Any] = dict(SETTING, seed=seed, progress=False)
    fedavg = training.run_fedavg(model_fn, fed.train, **common)
    fedprox = training.run_fedavg(model_fn, fed.train, **common,
                                  client_algorithm=heterogeneity.FedProx(proximal_mu))
    tuned = personalisation.fine_tune(model_fn, fedavg.final_weights, fed.train,
                                      local_epochs=SETTING["local_epochs"],
                                      batch_size=SETTING["batch_size"],
                                      client_learning_rate=SETTING["client_learning_rate"],
                                      max_steps=FINE_TUNE_STEPS, seed=seed)
    evaluations = {
        "FedAvg": personalisation.evaluate_per_client(model_fn, fed.test,
                                                      weights=fedavg.final_weights),
        "FedProx": personalisation.evaluate_per_client(model_fn, fed.test,
                                                       weights=fedprox.final_weights),
        "FedAvg + fine-tuning": personalisation.evaluate_per_client(model_fn, fed.test,
                                                                    personal_weights=tuned),
    }
    return {"alpha": alpha, "proximal_mu": proximal_mu,
            "accuracy": {name: e.accuracy for name, e in evaluations.items()},
            "pooled": {name: e.summary()["pooled"] for name, e in evaluations.items()}}


def summary_line(summary: dict[str, Any]) -> str:
    """One line: the median, 10th percentile and worst client of each method."""
    summary = _check_summary(summary)
    parts = []
    for name in METHODS:
        a = np.asarray(summary["accuracy"][name], dtype=float)
        parts.append(f"{name}: median {np.median(a):.2f}, p10 {np.percentile(a, 10):.2f}, "
                     f"worst {a.min():.2f}")
    return f"Dirichlet({summary['alpha']:g}), mu = {summary['proximal_mu']:g}. " + "; ".join(parts)


def draw_per_client(summary: dict[str, Any], *, fig: Figure | None = None) -> Figure:
    """One dot per client per method, with the median (black), 10th percentile (red) and worst
    client (red triangle).

    Args:
        summary: From :func:`per_client_summary`.
        fig: A figure to draw on (a new 7 x 3 inch one if None).
    """
    summary = _check_summary(summary)
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure or None, got {type(fig).__name__} "
                        f"{v._fmt(fig)}.")
    fig = fig if fig is not None else Figure(figsize=(7, 3), dpi=100)
    ax = fig.subplots()
    for i, name in enumerate(METHODS):
        a = np.asarray(summary["accuracy"][name], dtype=float)
        jitter = np.random.default_rng(i).uniform(-0.2, 0.2, len(a))
        ax.scatter(i + jitter, a, s=14, color="C7", alpha=0.7, lw=0)
        ax.hlines([np.median(a), np.percentile(a, 10)], i - 0.3, i + 0.3, colors=["k", "C3"],
                  lw=[2, 1.5])
        ax.scatter([i], [a.min()], marker="v", color="C3", s=30, zorder=3)
    labels = [f"FedProx μ = {summary['proximal_mu']:g}" if n == "FedProx" else n
              for n in METHODS]
    ax.set_xticks(range(len(METHODS)), labels)
    ax.set(ylim=(-0.02, 1.02), ylabel="accuracy on own data")
    ax.set_title(f"Dirichlet({summary['alpha']:g}) split: one "
                 "dot per client (black: median, red: 10th percentile, ▼ worst)", fontsize=9)
    fig.tight_layout()
    return fig


def per_client_explorer(x: np.ndarray, y: np.ndarray, *, alpha: float = 0.1,
                        proximal_mu: float = 0.1, seed: int = 0,
                        first_summary: dict[str, Any] | None = None):
    """Sliders over the Dirichlet alpha and FedProx's mu, and the per-client picture.

    Returns a :class:`fl_helpers.widgets.Explorer`; every setting is computed once and
    remembered (moving back redraws at once). ``first_summary``, if given, is the
    :func:`per_client_summary` of ``x, y`` at the starting ``alpha``, ``proximal_mu`` and
    ``seed`` (e.g. the one a static figure above was drawn from), shown without recomputing.

    Raises:
        TypeError, ValueError: An argument is malformed, or not one of the sliders' values
            (:data:`ALPHA_VALUES`, :data:`MU_VALUES`).
    """
    x, y = _check_data(x, y)
    alpha = _check_alpha(alpha)
    proximal_mu = _check_mu(proximal_mu)
    seed = v.check_int("seed", seed, minimum=0)
    if alpha not in ALPHA_VALUES:
        raise ValueError(f"alpha must be one of {ALPHA_VALUES}, got {alpha}.")
    if proximal_mu not in MU_VALUES:
        raise ValueError(f"proximal_mu must be one of {MU_VALUES}, got {proximal_mu}.")

    import ipywidgets as widgets

    from fl_helpers import widgets as panels

    alpha_slider = widgets.SelectionSlider(options=[(f"{a:g}", a) for a in ALPHA_VALUES],
                                           value=alpha, description="Dirichlet α",
                                           style={"description_width": "initial"},
                                           continuous_update=False)
    mu_slider = widgets.SelectionSlider(options=[(f"{m:g}", m) for m in MU_VALUES],
                                        value=proximal_mu, description="FedProx μ",
                                        style={"description_width": "initial"},
                                        continuous_update=False)
    out = widgets.Output()
    remembered: dict[tuple[float, float], dict[str, Any]] = {}
    if first_summary is not None:
        first_summary = _check_summary(first_summary, "first_summary")
        if (first_summary["alpha"], first_summary["proximal_mu"]) != (alpha, proximal_mu):
            raise ValueError(f"first_summary must be for alpha = {alpha} and proximal_mu = "
                             f"{proximal_mu}, got {first_summary['alpha']} and "
                             f"{first_summary['proximal_mu']}.")
        remembered[alpha, proximal_mu] = first_summary

    def redraw(*_: Any) -> None:
        started = time.perf_counter()
        with panel.failures_shown():
            key = (alpha_slider.value, mu_slider.value)
            if key not in remembered:
                remembered[key] = per_client_summary(x, y, alpha=key[0], proximal_mu=key[1],
                                                     seed=seed)
            summary = remembered[key]
            panel.show(summary_line(summary), draw_per_client(summary), started=started)

    panel = panels.Explorer([alpha_slider, mu_slider, out],
                            controls={"alpha": alpha_slider, "proximal_mu": mu_slider},
                            output=out)
    alpha_slider.observe(redraw, names="value")
    mu_slider.observe(redraw, names="value")
    redraw()
    return panel
