"""Notebook 04b's adaptive-clipping panel: a plain replay function and its ``### Try it`` panel.

:func:`replay_adaptive_clipping` runs Andrew et al. 2021's quantile estimate (Algorithm 1: the
noised count of unclipped updates and the geometric step, with
:func:`fl_helpers.aggregation.noised_unclipped_fraction` and
:func:`fl_helpers.aggregation.geometric_clipping_update`) on recorded update norms, one array
per round, and returns the clipping norm it would have used each round next to the target
quantile of that round's norms. It is a *replay*: the norms were recorded in a real run
(``benchmarks/production_dp_fedavg.py``) and do not respond to the replayed ``C`` (they would,
a little, through the model), and the count noise is drawn from a labelled reproducible source
(an illustration, never a release). :func:`adaptive_clipping_explorer` wraps it in sliders for
the target quantile, the learning rate and the budget epsilon, with the noise split that budget
implies (:func:`fl_helpers.accounting.adaptive_clipping_update_noise_multiplier`).

The panel draws on its own :class:`matplotlib.figure.Figure` and ``display``s it (never pyplot
inside a callback, see :mod:`fl_helpers.widgets`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets
import numpy as np
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import accounting, aggregation, schedule, widgets

#: Target quantiles offered by :func:`adaptive_clipping_explorer`.
QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Learning rates ``eta_C`` offered.
LEARNING_RATES = (0.05, 0.1, 0.2, 0.5, 1.0)
#: Budgets epsilon offered.
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclasses.dataclass(frozen=True)
class Replay:
    """What :func:`replay_adaptive_clipping` computed, one value per round.

    Attributes:
        clipping_norms: ``C_t`` used in round ``t`` (``C_0`` first).
        target_norms: The ``gamma``-quantile of round ``t``'s recorded norms (where ``C``
            should settle).
        unclipped_fractions: The noised share ``b_bar`` of round ``t``.
        final_clipping_norm: ``C`` after the last round.
    """

    clipping_norms: np.ndarray
    target_norms: np.ndarray
    unclipped_fractions: np.ndarray
    final_clipping_norm: float


def _check_norms(update_norms: Any) -> list[np.ndarray]:
    if isinstance(update_norms, (str, bytes, np.ndarray)) or not isinstance(update_norms,
                                                                           Sequence):
        raise TypeError(f"update_norms must be a list with one 1-D array of norms per round, "
                        f"got {type(update_norms).__name__}.")
    if not 1 <= len(update_norms) <= 10_000:
        raise ValueError(f"update_norms must have 1..10000 rounds, got {len(update_norms)}.")
    rounds = []
    for t, norms in enumerate(update_norms):
        array = v.check_float_array(f"update_norms[{t}]", norms, ndim=1, min_size=1)
        if (array < 0).any():
            raise ValueError(f"update_norms[{t}] must be >= 0, got "
                             f"{v._fmt(float(array.min()))}.")
        rounds.append(array)
    return rounds


def replay_adaptive_clipping(update_norms: Sequence[np.ndarray], *,
                             target_quantile: float = 0.5, learning_rate: float = 0.2,
                             initial_clipping_norm: float = 0.1, count_stddev: float,
                             expected_clients: float, seed: int = 0) -> Replay:
    """Adaptive clipping's norm, replayed on recorded update norms.

    Round ``t``: the share of norms at most ``C_t``, its count noised exactly with std
    ``count_stddev`` (:func:`fl_helpers.aggregation.noised_unclipped_fraction`, divided by the
    public ``expected_clients``), then ``C_{t+1} = C_t exp(-eta (b_bar - gamma))``.

    Args:
        update_norms: One 1-D array of norms (finite, >= 0, non-empty) per round.
        target_quantile: ``gamma`` in (0, 1).
        learning_rate: ``eta_C`` > 0.
        initial_clipping_norm: ``C_0`` > 0.
        count_stddev: ``sigma_b`` >= 0 (0: no count noise).
        expected_clients: ``q N`` > 0.
        seed: Integer >= 0 of the count noise (a **reproducible** source: an illustration, not
            a private release).

    Returns:
        A :class:`Replay`.

    Raises:
        TypeError, ValueError: An argument is malformed (the message names it), or the norm
            leaves the floating-point range.
    """
    rounds = _check_norms(update_norms)
    settings = aggregation.AdaptiveClipping(initial_clipping_norm=initial_clipping_norm,
                                            target_quantile=target_quantile,
                                            learning_rate=learning_rate)  # checks the three
    count_stddev = v.check_non_negative("count_stddev", count_stddev)
    expected_clients = v.check_positive("expected_clients", expected_clients)
    seed = v.check_int("seed", seed, minimum=0)
    randomness = schedule.PrivateRandomness.reproducible(seed, warn=False) if count_stddev \
        else None
    norm = float(settings.initial_clipping_norm)
    used, targets, fractions = [], [], []
    for norms in rounds:
        fraction = aggregation.noised_unclipped_fraction(
            norms, clipping_norm=norm, count_stddev=count_stddev,
            expected_clients=expected_clients, randomness=randomness)
        used.append(norm)
        targets.append(float(np.quantile(norms, settings.target_quantile)))
        fractions.append(fraction)
        norm = aggregation.geometric_clipping_update(
            norm, unclipped_fraction=fraction, target_quantile=settings.target_quantile,
            learning_rate=settings.learning_rate)
    return Replay(np.asarray(used), np.asarray(targets), np.asarray(fractions), norm)


@functools.lru_cache(maxsize=64)
def _noise_split(target_epsilon: float, target_delta: float, sampling_probability: float,
                 num_rounds: int, count_stddev: float) -> tuple[float, float]:
    """``(z, z_Delta)`` for a budget (remembered: the accountant takes about a second)."""
    z = accounting.noise_multiplier_for_epsilon(
        target_epsilon=target_epsilon, target_delta=target_delta,
        sampling_probability=sampling_probability, num_rounds=num_rounds,
        accountant="discrete")
    return z, accounting.adaptive_clipping_update_noise_multiplier(
        noise_multiplier=z, count_stddev=count_stddev)


def summary_line(replay: Replay, *, target_quantile: float, target_epsilon: float,
                 noise_multiplier: float, update_noise_multiplier: float,
                 count_stddev: float) -> str:
    """Two lines, e.g. ``"γ = 0.5: C ends at 0.49 (the 0.5-quantile of the last round's norms is
    0.46)"`` and ``"ε = 2 needs z = 1.632 in total: ..."``.

    Raises:
        TypeError, ValueError: ``replay`` is not a :class:`Replay`, or a number is malformed.
    """
    if not isinstance(replay, Replay):
        raise TypeError(f"replay must be a Replay (from replay_adaptive_clipping), got "
                        f"{type(replay).__name__}.")
    for name, value in (("target_quantile", target_quantile), ("target_epsilon", target_epsilon),
                        ("noise_multiplier", noise_multiplier),
                        ("update_noise_multiplier", update_noise_multiplier),
                        ("count_stddev", count_stddev)):
        v.check_positive(name, value)
    return (f"γ = {target_quantile:g}: C ends at {replay.final_clipping_norm:.3g} "
            f"(the {target_quantile:g}-quantile of the last round's norms is "
            f"{replay.target_norms[-1]:.3g})\nε = {target_epsilon:g} needs z = "
            f"{noise_multiplier:.3f} in total: z_Δ = {update_noise_multiplier:.3f} on the "
            f"updates, σ_b = {count_stddev:g} on the count")


def adaptive_clipping_explorer(update_norms: Sequence[np.ndarray], *, expected_clients: float,
                               sampling_probability: float, target_delta: float,
                               target_quantile: float = 0.5, learning_rate: float = 0.2,
                               target_epsilon: float = 2.0,
                               initial_clipping_norm: float = 0.1) -> widgets.Explorer:
    """A panel that replays adaptive clipping as the target quantile, ``eta_C`` and epsilon move.

    Controls: ``gamma`` (:data:`QUANTILES`), ``eta_C`` (:data:`LEARNING_RATES`) and epsilon
    (:data:`EPSILONS`). Every change replays :func:`replay_adaptive_clipping` on the recorded
    norms (milliseconds) with ``sigma_b = expected_clients / 20``, asks the accountant for the
    total ``z`` of the budget over ``len(update_norms)`` rounds (remembered per budget) and
    splits it; it prints :func:`summary_line` and draws ``C_t`` against the
    ``gamma``-quantile of each round's norms.

    Returns:
        A :class:`fl_helpers.widgets.Explorer` (``last_seconds``: the last redraw's time).

    Raises:
        TypeError, ValueError: An argument is malformed, or a starting value is not offered.
    """
    rounds = _check_norms(update_norms)
    expected_clients = v.check_positive("expected_clients", expected_clients)
    sampling_probability = accounting.check_sampling_probability(sampling_probability)
    target_delta = v.check_open_unit("target_delta", target_delta)
    initial_clipping_norm = v.check_positive("initial_clipping_norm", initial_clipping_norm)
    for name, value, options in (("target_quantile", target_quantile, QUANTILES),
                                 ("learning_rate", learning_rate, LEARNING_RATES),
                                 ("target_epsilon", target_epsilon, EPSILONS)):
        if isinstance(value, bool) or value not in options:
            raise ValueError(f"{name} must be one of {options}, got {v._fmt(value)}.")
    count_stddev = expected_clients / 20
    style = {"description_width": "140px"}
    layout = ipywidgets.Layout(width="460px")
    quantile_slider = ipywidgets.SelectionSlider(
        options=[(f"{q:g}", q) for q in QUANTILES], value=target_quantile,
        description="target quantile γ", continuous_update=False, style=style, layout=layout)
    rate_slider = ipywidgets.SelectionSlider(
        options=[(f"{r:g}", r) for r in LEARNING_RATES], value=learning_rate,
        description="learning rate η", continuous_update=False, style=style, layout=layout)
    epsilon_slider = ipywidgets.SelectionSlider(
        options=[(f"{e:g}", e) for e in EPSILONS], value=target_epsilon,
        description="budget ε", continuous_update=False, style=style, layout=layout)
    output = ipywidgets.Output()

    def redraw(_change: Any = None) -> None:
        start = time.perf_counter()
        gamma, eta, eps = quantile_slider.value, rate_slider.value, epsilon_slider.value
        with panel.failures_shown():
            z, z_delta = _noise_split(eps, target_delta, sampling_probability, len(rounds),
                                      count_stddev)
            replay = replay_adaptive_clipping(
                rounds, target_quantile=gamma, learning_rate=eta,
                initial_clipping_norm=initial_clipping_norm, count_stddev=count_stddev,
                expected_clients=expected_clients)
            fig = Figure(figsize=(7.0, 3.0))
            ax = fig.subplots()
            t = np.arange(1, len(rounds) + 1)
            ax.plot(t, replay.target_norms, color="0.6", lw=3,
                    label=f"{gamma:g}-quantile of the round's norms")
            ax.plot(t, replay.clipping_norms, marker="o", ms=3, label="clipping norm C_t")
            ax.set(xlabel="round", ylabel="norm", yscale="log")
            ax.legend(loc="best", fontsize=8)
            fig.tight_layout()
            panel.show(summary_line(replay, target_quantile=gamma, target_epsilon=eps,
                                    noise_multiplier=z, update_noise_multiplier=z_delta,
                                    count_stddev=count_stddev), fig, started=start)

    for control in (quantile_slider, rate_slider, epsilon_slider):
        control.observe(redraw, names="value")
    panel = widgets.Explorer([quantile_slider, rate_slider, epsilon_slider, output],
                             controls={"target_quantile": quantile_slider,
                                       "learning_rate": rate_slider,
                                       "target_epsilon": epsilon_slider}, output=output)
    redraw()
    return panel

