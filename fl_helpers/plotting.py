"""Plots the notebooks share. Every function draws on an ``ax`` it is given (or a new one) and
returns the ``Axes``, so notebooks can compose figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from fl_helpers import _validation as v
from fl_helpers import data as fl_data

#: One colour per digit, the same in every notebook.
DIGIT_COLORS = plt.get_cmap("tab10").colors


# Every plot checks its arguments before it opens a figure (no half-drawn figure on bad input).

def _check_ax(name: str, ax: Any) -> None:
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"{name} must be a matplotlib Axes or None, got {type(ax).__name__} "
                        f"{v._fmt(ax)}.")


def _check_optional(check: Any, name: str, value: Any) -> Any:
    return None if value is None else check(name, value)


def _check_runs(name: str, runs: Any) -> None:
    if not isinstance(runs, Mapping) or not runs:
        raise TypeError(f"{name} must be a non-empty dict of label -> run, got "
                        f"{type(runs).__name__} {v._fmt(runs)}.")


def _check_styles(styles: Any) -> dict:
    if styles is None:
        return {}
    if not isinstance(styles, Mapping) or not all(isinstance(s, Mapping)
                                                  for s in styles.values()):
        raise TypeError(f"styles must be a dict of label -> dict of plot keywords or None, got "
                        f"{type(styles).__name__} {v._fmt(styles)}.")
    return dict(styles)


def _check_unit(name: str, value: Any) -> float:
    return v.check_in_range(name, value, 0, 1)


def _real_array(name: str, value: Any, *, allow_nan: bool = False) -> np.ndarray:
    """A 1-D array of reals (inf allowed, NaN if asked: the caller says what they mean)."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__} "
                        f"{v._fmt(value)}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers, got a ragged "
                        f"{type(value).__name__}.") from error
    if array.dtype == np.bool_ or array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}.")
    if array.ndim != 1 or (not allow_nan and np.isnan(array.astype(float)).any()):
        raise ValueError(f"{name} must be a 1-D array without NaN, got shape {array.shape}.")
    return array.astype(np.float64)


def _series(name: str, run: Any, key: str, *, finite: bool = True,
            allow_nan: bool = False) -> np.ndarray:
    """``run.key`` (or ``run[key]`` for a dict) as a 1-D float array."""
    try:
        values = run[key] if isinstance(run, Mapping) else getattr(run, key)
    except (KeyError, AttributeError):
        raise TypeError(f"{name} must have {key!r}, got {type(run).__name__} "
                        f"{v._fmt(run)}.") from None
    if not finite:
        return _real_array(f"{name}.{key}", values, allow_nan=allow_nan)
    return v.check_float_array(f"{name}.{key}", values, ndim=1, min_size=0)


def use_course_style() -> None:
    """Small, readable figures at 100 dpi (keeps the stored notebook outputs small)."""
    mpl.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "figure.figsize": (7.0, 3.6),
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "font.size": 10,
    })


def plot_label_distribution(labels: np.ndarray, partitions: list[np.ndarray], *,
                            max_clients: int = 20, normalize: bool = False,
                            title: str | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Stacked bars: how many examples of each digit every client holds.

    Args:
        labels: 1-D labels of the whole data set.
        partitions: One index array per client (from ``fl_helpers.data.partition_*``).
        max_clients: Show at most this many clients (the first ones).
        normalize: Show the fraction of each client's data instead of counts.
        title: Axes title.
        ax: Where to draw; a new figure if ``None``.

    Returns:
        The axes drawn on.
    """
    max_clients = v.check_int("max_clients", max_clients, minimum=1)
    v.check_flag("normalize", normalize)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string or None, got {type(title).__name__} "
                        f"{v._fmt(title)}.")
    _check_ax("ax", ax)
    counts = fl_data.label_counts(labels, partitions)[:max_clients].astype(float)
    if normalize:
        counts = counts / counts.sum(axis=1, keepdims=True)
    if ax is None:
        _, ax = plt.subplots()
    clients = np.arange(len(counts))
    bottom = np.zeros(len(counts))
    for digit in range(counts.shape[1]):
        ax.bar(clients, counts[:, digit], bottom=bottom, color=DIGIT_COLORS[digit],
               width=0.85, label=str(digit))
        bottom += counts[:, digit]
    ax.set_xlabel("client")
    ax.set_ylabel("share of examples" if normalize else "examples")
    ax.set_xticks(clients[:: max(1, len(clients) // 10)])
    ax.grid(axis="x", visible=False)
    if title:
        ax.set_title(title)
    ax.legend(title="digit", ncols=2, fontsize=8, title_fontsize=8,
              bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return ax


def plot_federated_loop(client_images: list[np.ndarray] | None = None, *,
                        ax: plt.Axes | None = None) -> plt.Axes:
    """Draws one federated round: global model down, local training, updates up, weighted average.

    The picture follows Algorithm 1 (FederatedAveraging) of McMahan et al. 2017, "Communication-
    Efficient Learning of Deep Networks from Decentralized Data", Section 2.

    Args:
        client_images: One array of shape ``(m, 28, 28)`` per client: a few of that client's
            images, drawn inside its box (at most 3 each). ``None`` draws four clients with text.
        ax: Where to draw; a new 9 x 4.2 inch figure if ``None``.

    Returns:
        The axes drawn on.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if client_images is not None and (isinstance(client_images, (str, bytes))
                                      or not hasattr(client_images, "__len__")):
        raise TypeError(f"client_images must be a list of image arrays or None, got "
                        f"{type(client_images).__name__} {v._fmt(client_images)}.")
    num_clients = 4 if client_images is None else len(client_images)
    if not 1 <= num_clients <= 6:
        raise ValueError(f"client_images must hold 1 to 6 clients, got {num_clients}.")
    if client_images is not None:
        client_images = [v.check_float_array(f"client_images[{k}]", images, ndim=3, min_size=0)
                         for k, images in enumerate(client_images)]
    _check_ax("ax", ax)
    if ax is None:
        _, ax = plt.subplots(figsize=(9.0, 4.2))
    width = 10.0
    ax.set_xlim(0, width)
    ax.set_ylim(-0.4, 6.2)
    ax.set_axis_off()
    # Data units per inch differ in x and y; this keeps the digit images square.
    position = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches()
    x_to_y = (position.width * fig_w / width) / (position.height * fig_h / 6.6)
    down, up = "#1f77b4", "#ff7f0e"

    server = FancyBboxPatch((3.4, 4.5), 3.2, 1.3, boxstyle="round,pad=0.05", fc="#eeeeee", ec="k")
    ax.add_patch(server)
    ax.text(5.0, 5.45, "server", ha="center", va="center", fontsize=11, weight="bold")
    ax.text(5.0, 4.9, r"$w_{t+1} = \sum_k \frac{n_k}{n}\, w^k_{t+1}$", ha="center",
            va="center", fontsize=11)

    slot = width / num_clients
    for k in range(num_clients):
        cx = slot * (k + 0.5)
        box = FancyBboxPatch((cx - 0.45 * slot + 0.1, 0.0), 0.9 * slot - 0.2, 1.75,
                             boxstyle="round,pad=0.05", fc="white", ec="k")
        ax.add_patch(box)
        ax.text(cx, -0.25, f"client {k + 1}", ha="center", va="center", fontsize=9)
        if client_images is None:
            ax.text(cx, 0.9, "local data\n(never leaves)", ha="center", va="center", fontsize=8)
        else:
            images = np.asarray(client_images[k])[:3]
            size = min(0.7, (0.9 * slot - 0.5) / max(len(images), 1))
            height = size * x_to_y
            start = cx - size * len(images) / 2
            for i, image in enumerate(images):
                ax.imshow(image, cmap="gray_r", aspect="auto", zorder=3,
                          extent=(start + i * size, start + (i + 1) * size, 0.6, 0.6 + height))
            ax.text(cx, 0.3, "data stays here", ha="center", va="center", fontsize=8)
        for dx, colour, tail, head in ((-0.18, down, 4.45, 1.85), (0.18, up, 1.85, 4.45)):
            top_x = 5.0 + (cx - 5.0) * 0.35 + dx
            start_xy, end_xy = ((top_x, tail), (cx + dx, head)) if colour == down else \
                ((cx + dx, tail), (top_x, head))
            ax.add_patch(FancyArrowPatch(start_xy, end_xy, arrowstyle="-|>", mutation_scale=12,
                                         color=colour, lw=1.5))
    ax.text(0.0, 5.6, r"1. server sends the global model $w_t$", color=down, fontsize=9)
    ax.text(0.0, 5.15, "2. clients train on their own data", fontsize=9)
    ax.text(7.0, 5.6, r"3. clients send updates $w^k_{t+1}$", color=up, fontsize=9)
    ax.text(7.0, 5.15, "4. server averages; repeat", fontsize=9)
    return ax


MECHANISM_COLORS = {"laplace": "tab:blue", "gaussian": "tab:orange"}


def plot_noisy_answer_distribution(true_answer: float, mechanism: str, *, sensitivity: float,
                                   epsilon: float, delta: float | None = None,
                                   samples: np.ndarray | None = None,
                                   half_range: float | None = None,
                                   neighbour_answer: float | None = None,
                                   ax: plt.Axes | None = None) -> plt.Axes:
    """The distribution of a mechanism's noisy answers around the true answer.

    Draws the density of ``true_answer + noise`` (from ``fl_helpers.privacy.noise_pdf``), shades
    the central 95% range, marks the true answer, and overlays a histogram of ``samples`` (noisy
    answers actually drawn) if given. With ``neighbour_answer`` (the answer on the neighbouring
    dataset, e.g. without one person) it also draws that dataset's density, dashed: the two
    curves are what an observer must tell apart.

    Args:
        true_answer: The exact answer of the query.
        mechanism: ``"laplace"`` or ``"gaussian"``.
        sensitivity: Sensitivity of the query, > 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1), for ``"gaussian"``.
        samples: Optional noisy answers to histogram.
        half_range: Show ``true_answer +- half_range``; by default 1.5 times the 95% range, so
            the picture adapts to the noise. Fix it to compare settings on one scale.
        neighbour_answer: Optional exact answer on the neighbouring dataset.
        ax: Where to draw; a new figure if ``None``.

    Returns:
        The axes drawn on.
    """
    from fl_helpers import privacy  # local import: keeps this module's imports unchanged

    summary = privacy.noisy_answer_summary(true_answer, mechanism, sensitivity=sensitivity,
                                           epsilon=epsilon, delta=delta)
    true_answer = v.check_real("true_answer", true_answer)
    if samples is not None:
        samples = v.check_float_array("samples", samples).ravel()
    half_range = _check_optional(v.check_positive, "half_range", half_range)
    neighbour_answer = _check_optional(v.check_real, "neighbour_answer", neighbour_answer)
    _check_ax("ax", ax)
    if half_range is None:
        half_range = 1.5 * (summary["high"] - true_answer)
    if ax is None:
        _, ax = plt.subplots()
    x = np.linspace(true_answer - half_range, true_answer + half_range, 801)
    density = privacy.noise_pdf(x - true_answer, mechanism, sensitivity=sensitivity,
                                epsilon=epsilon, delta=delta)
    colour = MECHANISM_COLORS[mechanism.lower()]
    if samples is not None:
        samples = np.asarray(samples, dtype=float).ravel()
        bins = 60
        # Normalise by *all* samples, so the bars match the density even when many answers
        # fall outside the window (density=True would only count the ones inside).
        weights = np.full(samples.size, bins / (samples.size * (x[-1] - x[0])))
        ax.hist(samples, bins=bins, range=(x[0], x[-1]), weights=weights, color=colour,
                alpha=0.3, label=f"{samples.size} noisy answers")
    ax.plot(x, density, color=colour, lw=2, label=f"{mechanism.capitalize()} density")
    if neighbour_answer is not None:
        neighbour_answer = float(neighbour_answer)
        neighbour = privacy.noise_pdf(x - neighbour_answer, mechanism, sensitivity=sensitivity,
                                      epsilon=epsilon, delta=delta)
        ax.plot(x, neighbour, color="0.3", lw=1.5, ls="--",
                label=f"neighbouring dataset (answer {neighbour_answer:g})")
    inside = (x >= summary["low"]) & (x <= summary["high"])
    ax.fill_between(x, density, where=inside, color=colour, alpha=0.15)
    for end in (summary["low"], summary["high"]):
        ax.axvline(end, color=colour, ls=":", lw=1.2,
                   label="95% of answers" if end == summary["low"] else None)
    ax.axvline(true_answer, color="k", ls="--", lw=1, label=f"true answer {true_answer:g}")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("released answer")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    return ax


def plot_loss_curves(curves: dict, *, x_axis: str = "epochs", log_x: bool = False,
                     ax: plt.Axes | None = None) -> plt.Axes:
    """Training-loss curves of local SGD runs, against steps or against data passes.

    Args:
        curves: Label -> :class:`fl_helpers.client.LossCurve` (anything with ``steps``,
            ``epochs`` and ``loss`` arrays and a ``diverged`` flag).
        x_axis: ``"steps"`` (SGD steps taken) or ``"epochs"`` (examples seen / examples held).
        log_x: Logarithmic x axis (the first point, at 0, is then left out).
        ax: Where to draw; a new figure if ``None``.

    Returns:
        The axes drawn on.

    Raises:
        ValueError: ``x_axis`` is not ``"steps"`` or ``"epochs"``.
    """
    if not isinstance(x_axis, str) or x_axis not in ("steps", "epochs"):
        raise ValueError(f"x_axis must be 'steps' or 'epochs', got {v._fmt(x_axis)}.")
    _check_runs("curves", curves)
    series = {}
    for label, curve in curves.items():
        name = f"curves[{label!r}]"
        xs = _series(name, curve, x_axis)
        # (a diverged run's loss may be inf or NaN: it is drawn up to where it blew up)
        ys = _series(name, curve, "loss", finite=False, allow_nan=True)
        if xs.shape != ys.shape:
            raise ValueError(f"{name} must have one loss per {x_axis[:-1]}, got {xs.size} and "
                             f"{ys.size}.")
        series[label] = (xs, ys)
    v.check_flag("log_x", log_x)
    _check_ax("ax", ax)
    if ax is None:
        _, ax = plt.subplots()
    for label, curve in curves.items():
        xs, ys = series[label]
        if log_x:
            xs, ys = xs[1:], ys[1:]
        if getattr(curve, "diverged", False):
            label = f"{label} (diverged)"
        ax.plot(xs, ys, marker="." if len(xs) <= 30 else None, lw=1.5, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("SGD steps" if x_axis == "steps" else "epochs (examples seen / examples held)")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.legend(fontsize=8, frameon=False)
    return ax


def plot_accuracy_curves(histories: dict, *, target: float | None = None,
                         styles: dict | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Test accuracy of the global model against communication rounds, one line per run.

    The picture of McMahan et al. 2017, Figure 2: how many rounds a federated algorithm needs to
    reach a given accuracy.

    Args:
        histories: Label -> a run's history: a :class:`fl_helpers.training.History`, or any
            object or mapping with ``rounds`` and ``test_accuracy`` (e.g. ``History.as_dict()``).
        target: Accuracy in (0, 1) drawn as a dotted horizontal line, or ``None``.
        styles: Optional label -> extra keyword arguments for ``ax.plot`` (colour, line style).
        ax: Where to draw; a new figure if ``None``.

    Returns:
        The axes drawn on.

    Raises:
        ValueError: A history has no test accuracy (the run had no ``test_data``), or its
            ``rounds`` and ``test_accuracy`` differ in length.
    """
    _check_runs("histories", histories)
    series = {}
    for label, history in histories.items():
        rounds = _series(f"histories[{label!r}]", history, "rounds")
        accuracy = _series(f"histories[{label!r}]", history, "test_accuracy")
        if accuracy.size == 0:
            raise ValueError(f"histories[{label!r}] has no test accuracy; run it with test_data.")
        if rounds.shape != accuracy.shape:
            raise ValueError(
                f"histories[{label!r}] must have as many rounds as accuracies, got "
                f"{rounds.size} and {accuracy.size}."
            )
        series[label] = (rounds, accuracy)
    target = _check_optional(_check_unit, "target", target)
    styles = _check_styles(styles)
    _check_ax("ax", ax)
    if ax is None:
        _, ax = plt.subplots()
    for label, (rounds, accuracy) in series.items():
        kwargs = {"lw": 1.5, "marker": "." if rounds.size <= 30 else None}
        kwargs.update(styles.get(label, {}))
        ax.plot(rounds, accuracy, label=label, **kwargs)
    if target is not None:
        ax.axhline(target, color="0.4", ls=":", lw=1, label=f"target {target:.0%}")
    ax.set_xlabel("communication rounds")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, frameon=False)
    return ax


# --------------------------------------------------------------------------------------------
# Notebook 04: DP-FedAvg runs, accuracy and epsilon round by round; the privacy-utility curve.
# --------------------------------------------------------------------------------------------


def plot_accuracy_and_epsilon(runs: dict, *, target_epsilon: float | None = None,
                              styles: dict | None = None, axes=None) -> tuple:
    """Two panels: test accuracy against rounds (left) and epsilon spent against rounds (right).

    Args:
        runs: Label -> a run's history (a :class:`fl_helpers.training.DPHistory` or anything
            with ``rounds``, ``test_accuracy`` and ``epsilon`` arrays). Runs without privacy (no
            epsilon, or ``inf``) appear on the accuracy panel only.
        target_epsilon: The budget, drawn as a dotted line on the epsilon panel, or ``None``.
        styles: Optional label -> extra keyword arguments for ``plot`` (colour, line style).
        axes: Two axes to draw on; a new 10 x 3.6 inch figure if ``None``.

    Returns:
        The two axes ``(accuracy_ax, epsilon_ax)``.

    Raises:
        ValueError: A run has no test accuracy, or ``axes`` is not a pair.
    """
    _check_runs("runs", runs)
    series = {}
    for label, run in runs.items():
        name = f"runs[{label!r}]"
        rounds = _series(name, run, "rounds")
        accuracy = _series(name, run, "test_accuracy")
        if accuracy.size == 0:
            raise ValueError(f"runs[{label!r}] has no test accuracy; run it with test_data.")
        epsilon = _series(name, run, "epsilon", finite=False)
        if rounds.shape != accuracy.shape or (epsilon.size and epsilon.shape != rounds.shape):
            raise ValueError(f"{name} must have one accuracy (and epsilon) per round, got "
                             f"{rounds.size}, {accuracy.size} and {epsilon.size}.")
        series[label] = (rounds, accuracy, epsilon)
    target_epsilon = _check_optional(v.check_positive, "target_epsilon", target_epsilon)
    styles = _check_styles(styles)
    if axes is not None:
        if isinstance(axes, (str, bytes)) or not hasattr(axes, "__len__") or len(axes) != 2:
            raise ValueError(f"axes must be two axes, got {v._fmt(axes)}.")
        _check_ax("axes[0]", axes[0])
        _check_ax("axes[1]", axes[1])
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    acc_ax, eps_ax = axes
    for label, (rounds, accuracy, epsilon) in series.items():
        kwargs = {"lw": 1.5, **styles.get(label, {})}
        line, = acc_ax.plot(rounds, accuracy, label=label, **kwargs)
        if epsilon.size and np.isfinite(epsilon).all():
            eps_ax.plot(rounds, epsilon, label=label, color=line.get_color(),
                        **{k: val for k, val in kwargs.items() if k != "color"})
    if target_epsilon is not None:
        eps_ax.axhline(target_epsilon, color="0.3", ls=":", lw=1.2,
                       label=f"budget ε = {target_epsilon:g}")
    acc_ax.set_xlabel("round")
    acc_ax.set_ylabel("test accuracy")
    acc_ax.legend(fontsize=8, frameon=False, loc="lower right")
    eps_ax.set_xlabel("round")
    eps_ax.set_ylabel("ε spent")
    eps_ax.set_ylim(bottom=0)
    if eps_ax.get_legend_handles_labels()[0]:
        eps_ax.legend(fontsize=8, frameon=False, loc="upper left")
    return acc_ax, eps_ax


def plot_privacy_utility(epsilons, accuracies, *, errors=None, baseline: float | None = None,
                         label: str = "DP-FedAvg", ax: plt.Axes | None = None) -> plt.Axes:
    """Final test accuracy against the privacy budget epsilon (log axis): the price of privacy.

    Args:
        epsilons: Finite budgets epsilon > 0.
        accuracies: Final test accuracy of each, in [0, 1].
        errors: Optional spread of each accuracy (e.g. the standard deviation over seeds),
            drawn as error bars.
        baseline: Accuracy of the non-private run (epsilon = inf), a dashed line, or ``None``.
        label: Legend label of the curve.
        ax: Where to draw; a new figure if ``None``.

    Returns:
        The axes drawn on.

    Raises:
        ValueError: ``epsilons`` and ``accuracies`` differ in length, or an epsilon is not > 0.
    """
    epsilons = _real_array("epsilons", epsilons)
    accuracies = v.check_float_array("accuracies", accuracies, ndim=1)
    if accuracies.min() < 0 or accuracies.max() > 1:
        raise ValueError(f"accuracies must lie in [0, 1], got {accuracies.tolist()}.")
    if epsilons.shape != accuracies.shape:
        raise ValueError(f"epsilons and accuracies must have the same length, got "
                         f"{epsilons.size} and {accuracies.size}.")
    if not np.all(np.isfinite(epsilons) & (epsilons > 0)):
        raise ValueError(f"epsilons must be finite and > 0, got {epsilons.tolist()}.")
    if errors is not None:
        errors = v.check_float_array("errors", errors, ndim=1)
        if errors.shape != epsilons.shape or errors.min() < 0:
            raise ValueError(f"errors must hold one spread >= 0 per epsilon, got "
                             f"{errors.tolist()}.")
    baseline = _check_optional(_check_unit, "baseline", baseline)
    if not isinstance(label, str):
        raise TypeError(f"label must be a string, got {type(label).__name__} {v._fmt(label)}.")
    _check_ax("ax", ax)
    if ax is None:
        _, ax = plt.subplots()
    ax.errorbar(epsilons, accuracies, yerr=errors, marker="o", lw=1.5, capsize=3, label=label)
    if baseline is not None:
        ax.axhline(baseline, color="0.3", ls="--", lw=1.2,
                   label=f"non-private (ε = ∞): {baseline:.1%}")
    ax.set_xscale("log")
    ax.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
    ax.minorticks_off()
    ax.set_xlabel("privacy budget ε (log scale; smaller is more private)")
    ax.set_ylabel("final test accuracy")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return ax
