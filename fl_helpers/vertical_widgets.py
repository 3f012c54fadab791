"""Notebook 09's live widget: move the label-DP budget, see what the bureau still reads.

:func:`label_dp_summary` and :func:`draw_label_dp` are plain functions (the tests call them);
:func:`label_dp_explorer` wraps them in an ipywidgets slider over the target epsilon. Each move
retrains split learning (:mod:`fl_helpers.split_learning`) with the label-DP defence at the noise
multiplier the accountant gives for that epsilon, then runs Li et al.'s label-leakage attacks on
the gradients the bureau received.

The widget's noise is **reproducible** (derived from a public seed) so that the same setting
draws the same picture: it is for exploring the trade-off, and is NOT private. The notebook's
own defended runs above it use secret noise.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import schedule, split_learning

#: The slider's range of target epsilons (log scale, base 2): 1/4 .. 32.
EPSILON_RANGE = (0.25, 32.0)


def _strongest(values: np.ndarray) -> float:
    """How far an attack's AUC is from guessing, read either way: max(AUC, 1 - AUC)."""
    return float(max(np.max(values), 1.0 - np.min(values)))


def _check_target_epsilon(target_epsilon: Any) -> float:
    target_epsilon = v.check_positive("target_epsilon", target_epsilon)
    low, high = EPSILON_RANGE
    if not low <= target_epsilon <= high:
        raise ValueError(f"target_epsilon must be in [{low}, {high}], got {target_epsilon}.")
    return target_epsilon


def _check_auc(name: str, value: Any) -> float | None:
    """An optional reference AUC: None (no line) or a number in (0, 1]."""
    return None if value is None else v.check_probability(name, value)


def _check_summary(summary: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """Checks the fields ``keys`` of ``summary`` (from :func:`label_dp_summary`)."""
    if not isinstance(summary, dict):
        raise TypeError(f"summary must be a dict from label_dp_summary, got "
                        f"{type(summary).__name__} {v._fmt(summary)}.")
    for key in keys:
        if key not in summary:
            raise ValueError(f"summary must be a dict from label_dp_summary, got one without "
                             f"{key!r}.")
    for key in ("epsilon", "noise_multiplier", "test_auc"):
        if key in keys:
            v.check_non_negative(f"summary[{key!r}]", summary[key])
    attacks = summary["attacks"]
    if not isinstance(attacks, dict) or not attacks:
        raise ValueError(f"summary['attacks'] must map each attack to its AUC per epoch, got "
                         f"{v._fmt(attacks)}.")
    for name, values in attacks.items():
        v.check_float_array(f"summary['attacks'][{name!r}]", values, ndim=1)
    return summary


def label_dp_summary(data: split_learning.SplitData, *, target_epsilon: float,
                     epochs: int = 5, target_delta: float = 1e-5, seed: int = 0
                     ) -> dict[str, Any]:
    """Split learning with the label-DP defence at ``target_epsilon``, and the attacks on it.

    The noise is reproducible from ``seed`` (NOT private): the same settings give the same
    summary.

    Args:
        data: From ``split_learning.credit_split_data``.
        target_epsilon: The budget for one customer's label against the bureau, in
            :data:`EPSILON_RANGE`.
        epochs: Training epochs, 1..20.
        target_delta: In (0, 1).
        seed: Public seed of the initialisation, the batch order and the (reproducible) noise.

    Returns:
        ``{"target_epsilon", "epsilon", "noise_multiplier", "test_auc", "attacks"}``:
        ``attacks`` maps each attack to its label-recovery AUC per epoch.
    """
    if not isinstance(data, split_learning.SplitData):
        raise TypeError(f"data must be a split_learning.SplitData, got {type(data).__name__}.")
    target_epsilon = _check_target_epsilon(target_epsilon)
    epochs = v.check_int("epochs", epochs, minimum=1, maximum=20)
    target_delta = v.check_open_unit("target_delta", target_delta)
    seed = v.check_int("seed", seed, minimum=0)
    z = split_learning.noise_multiplier_for_label_dp(target_epsilon=target_epsilon,
                                                     epochs=epochs, target_delta=target_delta)
    # Reproducible on purpose (the same setting draws the same picture), labelled not private
    # in the docstring, the summary line's figure title and the notebook's text.
    randomness = schedule.PrivateRandomness.reproducible(seed, warn=False)
    run = split_learning.train_split(data, epochs=epochs, seed=seed, noise_multiplier=z,
                                     target_delta=target_delta, randomness=randomness)
    attacks = split_learning.attack_aucs(run, data.labels_train)
    return {"target_epsilon": target_epsilon, "epsilon": float(run.epsilon),
            "noise_multiplier": float(z), "test_auc": float(run.test_auc),
            "attacks": {name: np.asarray(values, dtype=float) for name, values in attacks.items()}}


def summary_line(summary: dict[str, Any]) -> str:
    """One line: epsilon, z, the model's AUC and the strongest attack."""
    summary = _check_summary(summary, ("epsilon", "noise_multiplier", "test_auc", "attacks"))
    strongest = max(_strongest(values) for values in summary["attacks"].values())
    return (f"epsilon = {summary['epsilon']:.2f} (z = {summary['noise_multiplier']:.2f}): "
            f"model test AUC {summary['test_auc']:.3f}, strongest attack AUC {strongest:.2f}")


def draw_label_dp(summary: dict[str, Any], *, bank_alone_auc: float | None = None,
                  plain_auc: float | None = None, fig: Figure | None = None) -> Figure:
    """Two panels: each attack's AUC by epoch, and the model's AUC beside the strongest attack.

    Args:
        summary: From :func:`label_dp_summary`.
        bank_alone_auc: The bank's model without the bureau (a dotted line), or None.
        plain_auc: Split learning without noise (a dashed line), or None.
        fig: A figure to draw on (a new 9 x 3 inch one if None).
    """
    summary = _check_summary(summary, ("epsilon", "test_auc", "attacks"))
    bank_alone_auc = _check_auc("bank_alone_auc", bank_alone_auc)
    plain_auc = _check_auc("plain_auc", plain_auc)
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure or None, got {type(fig).__name__} "
                        f"{v._fmt(fig)}.")
    fig = fig if fig is not None else Figure(figsize=(9, 3), dpi=100)
    ax_attacks, ax_model = fig.subplots(1, 2)
    for name, values in summary["attacks"].items():
        ax_attacks.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
    ax_attacks.axhline(0.5, color="k", lw=0.8)
    ax_attacks.set(xlabel="epoch", ylabel="label-recovery AUC (0.5: guessing)", ylim=(0, 1.02),
                   xticks=np.arange(1, len(values) + 1))
    ax_attacks.legend(fontsize=7, loc="lower left", ncol=3)
    strongest = max(_strongest(values) for values in summary["attacks"].values())
    ax_model.bar([0, 1], [strongest, summary["test_auc"]], color=["C3", "C0"])
    ax_model.set_xticks([0, 1], ["strongest attack", "model test AUC"])
    if bank_alone_auc is not None:
        ax_model.axhline(bank_alone_auc, color="C0", ls=":", label="bank alone")
    if plain_auc is not None:
        ax_model.axhline(plain_auc, color="C0", ls="--", label="no noise")
    if bank_alone_auc is not None or plain_auc is not None:
        ax_model.legend(fontsize=8, loc="upper right")
    ax_model.axhline(0.5, color="k", lw=0.8)
    ax_model.set(ylim=(0.4, 1.02), ylabel="AUC")
    fig.suptitle(f"label DP at epsilon {summary['epsilon']:.2f} against the bureau "
                 "(reproducible noise: not private)", fontsize=9)
    fig.tight_layout()
    return fig


def label_dp_explorer(data: split_learning.SplitData, *, target_epsilon: float = 2.0,
                      bank_alone_auc: float | None = None, plain_auc: float | None = None,
                      seed: int = 0):
    """A slider over the target epsilon (1/4 to 32, log scale) and its live summary.

    Returns a :class:`fl_helpers.widgets.Explorer`: each redraw replaces the summary and the plot
    in one message (no blank frame between them).
    """
    if not isinstance(data, split_learning.SplitData):
        raise TypeError(f"data must be a split_learning.SplitData, got {type(data).__name__}.")
    target_epsilon = _check_target_epsilon(target_epsilon)
    bank_alone_auc = _check_auc("bank_alone_auc", bank_alone_auc)
    plain_auc = _check_auc("plain_auc", plain_auc)
    seed = v.check_int("seed", seed, minimum=0)

    import ipywidgets as widgets

    from fl_helpers import widgets as panels

    low, high = EPSILON_RANGE
    slider = widgets.FloatLogSlider(value=target_epsilon, base=2, min=np.log2(low),
                                    max=np.log2(high), step=0.5, description="target ε",
                                    style={"description_width": "initial"},
                                    continuous_update=False)
    out = widgets.Output()

    def redraw(*_: Any) -> None:
        started = time.perf_counter()
        with panel.failures_shown():
            summary = label_dp_summary(data, target_epsilon=slider.value, seed=seed)
            fig = draw_label_dp(summary, bank_alone_auc=bank_alone_auc, plain_auc=plain_auc)
            panel.show(summary_line(summary), fig, started=started)

    panel = panels.Explorer([slider, out], controls={"target_epsilon": slider}, output=out)
    slider.observe(redraw, names="value")
    redraw()
    return panel
