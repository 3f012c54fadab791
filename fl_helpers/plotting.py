"""Plots the notebooks share. Every function draws on an ``ax`` it is given (or a new one) and
returns the ``Axes``, so notebooks can compose figures."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from fl_helpers import data as fl_data

#: One colour per digit, the same in every notebook.
DIGIT_COLORS = plt.get_cmap("tab10").colors


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
