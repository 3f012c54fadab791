"""Notebook 08's live widget: move the noise multiplier, see each hospital's epsilon and AUC.

:func:`dp_federation_summary` and :func:`draw_dp_federation` are plain functions (the tests call
them); :func:`dp_federation_explorer` wraps them in an ipywidgets slider. The callback draws on
its own ``matplotlib.figure.Figure`` and ``display``s it (never pyplot, see the README's
"Widgets not showing?"). Kept out of :mod:`fl_helpers.cross_silo` so that the Flower ClientApp,
which imports that module in every message, never imports ipywidgets or matplotlib.

The widget's DP noise is **reproducible** (derived from the seed) so that the same setting draws
the same picture: it is for exploring the trade-off, and is NOT private. Like every private run it
needs hospitals prepared with ``preprocessing="public"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import cross_silo, schedule


def dp_federation_summary(hospitals: Sequence[cross_silo.Hospital],
                          config: cross_silo.TrainingConfig, *, noise_multiplier: float,
                          target_delta: float = 1e-4, num_runs: int = 2) -> dict[str, Any]:
    """FedAvg with example-level DP-SGD at noise ``noise_multiplier``: epsilon, AUC and accuracy
    per hospital (mean over ``num_runs`` seeds, reproducible noise, NOT private).

    ``hospitals`` must be prepared with ``preprocessing="public"``; epsilon is per hospital, at
    its public training size.

    Returns:
        ``{"names", "epsilon", "auc", "accuracy", "noise_multiplier"}`` (lists in hospital order).
    """
    noise_multiplier = v.check_positive("noise_multiplier", noise_multiplier)
    num_runs = v.check_int("num_runs", num_runs, minimum=1)
    private = dataclasses.replace(config, noise_multiplier=noise_multiplier)
    scores = []
    for seed in range(num_runs):
        params, _ = cross_silo.run_fedavg(
            hospitals, dataclasses.replace(private, seed=seed),
            randomness=schedule.PrivateRandomness.reproducible(seed, warn=False))
        scores.append([cross_silo.evaluate(params, h.x_test, h.y_test) for h in hospitals])
    return {
        "names": [h.name for h in hospitals],
        "epsilon": [cross_silo.epsilon(private, h.public_train_size,
                                      target_delta=target_delta)
                    for h in hospitals],
        "auc": [float(np.mean([run[k]["auc"] for run in scores])) for k in range(len(hospitals))],
        "accuracy": [float(np.mean([run[k]["accuracy"] for run in scores]))
                     for k in range(len(hospitals))],
        "noise_multiplier": noise_multiplier,
    }


def summary_line(summary: dict[str, Any]) -> str:
    """One line: sigma, and epsilon / AUC per hospital."""
    parts = [f"{n} eps {e:.2f} AUC {a:.3f}" for n, e, a in
             zip(summary["names"], summary["epsilon"], summary["auc"], strict=True)]
    return f"sigma = {summary['noise_multiplier']:.2f}: " + "; ".join(parts)


def draw_dp_federation(summary: dict[str, Any], *, reference_auc: Sequence[float] | None = None,
                       fig: Figure | None = None) -> Figure:
    """Two panels: each hospital's epsilon, and its FedAvg test AUC (dotted: without DP)."""
    fig = fig if fig is not None else Figure(figsize=(8, 2.8), dpi=100)
    ax_eps, ax_auc = fig.subplots(1, 2)
    x = np.arange(len(summary["names"]))
    ax_eps.bar(x, summary["epsilon"], color="C3")
    ax_eps.set_ylabel(r"$\varepsilon$ per hospital")
    ax_auc.bar(x, summary["auc"], color="C1")
    if reference_auc is not None:
        ax_auc.scatter(x, reference_auc, marker="_", s=600, color="k")
        ax_auc.set_title("black: without DP", fontsize=9)
    ax_auc.set_ylim(0.4, 1.0)
    ax_auc.set_ylabel("FedAvg test AUC")
    for ax in (ax_eps, ax_auc):
        ax.set_xticks(x, summary["names"])
    fig.suptitle(f"noise multiplier {summary['noise_multiplier']:.2f} (reproducible noise: "
                 "not private)", fontsize=9)
    fig.tight_layout()
    return fig


def dp_federation_explorer(hospitals: Sequence[cross_silo.Hospital],
                           config: cross_silo.TrainingConfig, *, noise_multiplier: float = 1.0,
                           target_delta: float = 1e-4,
                           reference_auc: Sequence[float] | None = None):
    """A slider over the noise multiplier (0.5 to 16, log scale) and its live summary.

    Returns a :class:`fl_helpers.widgets.Explorer`: each redraw replaces the summary and the plot
    in one message (no blank frame between them).
    """
    import ipywidgets as widgets

    from fl_helpers import widgets as panels

    slider = widgets.FloatLogSlider(value=noise_multiplier, base=2, min=-1, max=4, step=0.25,
                                    description="noise multiplier σ",
                                    style={"description_width": "initial"},
                                    continuous_update=False)
    out = widgets.Output()

    def redraw(*_):
        with panel.failures_shown():
            summary = dp_federation_summary(hospitals, config, noise_multiplier=slider.value,
                                            target_delta=target_delta)
            fig = draw_dp_federation(summary, reference_auc=reference_auc)
            panel.show(summary_line(summary), fig)

    panel = panels.Explorer([slider, out], controls={"noise_multiplier": slider}, output=out)
    slider.observe(redraw, names="value")
    redraw()
    return panel
