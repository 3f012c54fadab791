"""Notebook 07's poisoning experiment, as a plain function and as a ``### Try it`` panel.

:func:`attack_experiment` runs one federation in which a share of the clients attack (an attack
of :data:`ATTACKS`) and the server aggregates with a defence of :data:`DEFENCES`; it returns the
final main-task accuracy and the backdoor's success rate. ``benchmarks/robustness_grid.py``
sweeps it over attacks, defences, shares of malicious clients and data splits;
:func:`robustness_explorer` reruns it live as the share and the rule change.

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
from fl_helpers import aggregation, faults, models, robust, schedule, training, widgets

#: The attacks :func:`attack_experiment` knows.
ATTACKS = ("none", "label flip", "sign flip", "Gaussian noise", "backdoor")
#: The defences (aggregation rules) :func:`attack_experiment` knows.
DEFENCES = ("FedAvg", "median", "trimmed mean", "Krum", "Multi-Krum", "norm bound", "DP-FedAvg")
#: The label the backdoor's trigger should produce.
TARGET_LABEL = 0


@dataclasses.dataclass(frozen=True)
class Setting:
    """The knobs of the attacks and defences (defaults: those of notebook 07 and the benchmark).

    Attributes:
        sign_flip_boost: A sign-flipping client sends ``-boost * delta``.
        noise_stddev: A Gaussian-noise client sends ``N(0, stddev^2)`` per coordinate.
        backdoor_fraction: Share of a backdoor client's examples that carry the trigger.
        assumed_malicious: The share of malicious clients the robust rules are set up for:
            trimmed mean's ``beta`` and Krum's ``f = floor(share * m)``.
        clipping_norm: ``C`` of norm bounding and of DP-FedAvg.
        noise_multiplier: ``z`` of DP-FedAvg as a defence.
    """

    # Attacks.
    sign_flip_boost: float = 10.0
    noise_stddev: float = 0.3
    backdoor_fraction: float = 0.5
    # Defences.
    assumed_malicious: float = 0.3
    clipping_norm: float = 0.5
    noise_multiplier: float = 0.3


@dataclasses.dataclass(eq=False)
class AttackResult:
    """One poisoned federation: what the attack did and what the defence kept.

    Attributes:
        accuracy: Main-task test accuracy after each round.
        backdoor_success: Share of triggered test images (true label not the target) the final
            model labels :data:`TARGET_LABEL`.
        seconds_per_round: Median wall-clock seconds of a round (training + aggregation).
        malicious: The malicious client ids.
        history: The run's :class:`fl_helpers.training.History`.
    """

    accuracy: np.ndarray
    backdoor_success: float
    seconds_per_round: float
    malicious: np.ndarray
    history: training.History

    @property
    def final_accuracy(self) -> float:
        """Main-task accuracy after the last round."""
        return float(self.accuracy[-1])


def make_defence(name: str, *, num_clients: int, setting: Setting = Setting()
                 ) -> aggregation.AggregationRule | None:
    """The aggregation rule called ``name`` (one of :data:`DEFENCES`) for ``num_clients`` per
    round; ``None`` for ``"DP-FedAvg"``, which :func:`attack_experiment` runs with
    :func:`fl_helpers.training.run_dp_fedavg`."""
    if name not in DEFENCES:
        raise ValueError(f"defence must be one of {DEFENCES}, got {name!r}.")
    f = int(setting.assumed_malicious * num_clients)
    return {
        "FedAvg": lambda: aggregation.FedAvg(),
        "median": lambda: aggregation.CoordinateMedian(),
        "trimmed mean": lambda: robust.TrimmedMean(setting.assumed_malicious),
        "Krum": lambda: robust.Krum(f),
        "Multi-Krum": lambda: robust.MultiKrum(f, num_clients - f),
        "norm bound": lambda: aggregation.NormBounded(aggregation.FedAvg(),
                                                      clipping_norm=setting.clipping_norm),
        "DP-FedAvg": lambda: None,
    }[name]()


def poison(client_datasets: Sequence[tuple[np.ndarray, np.ndarray]], malicious: np.ndarray,
           attack: str, *, num_clients_per_round: int, setting: Setting = Setting(),
           seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], faults.ClientHook | None]:
    """The clients' data after a data attack, and the client hook of an update attack.

    Label flipping changes the malicious clients' labels; the backdoor changes their data
    (:func:`fl_helpers.robust.backdoor_data`) *and* boosts their update by
    ``gamma = m / f`` (model replacement, Bagdasaryan et al. 2020, eq. 3, with server learning
    rate 1 and the ``f`` attackers sharing the boost); sign flipping and Gaussian noise change
    the update only.
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}.")
    datasets = list(client_datasets)
    if attack == "none" or len(malicious) == 0:
        return datasets, None
    rng = schedule.public_rng(seed, "poisoned data")
    for k in malicious:
        x, y = datasets[int(k)]
        if attack == "label flip":
            datasets[int(k)] = (x, robust.flip_labels(y))
        elif attack == "backdoor":
            datasets[int(k)] = robust.backdoor_data(x, y, target_label=TARGET_LABEL,
                                                    fraction=setting.backdoor_fraction, rng=rng)
    update_attack = {
        "sign flip": functools.partial(robust.sign_flip, boost=setting.sign_flip_boost),
        "Gaussian noise": functools.partial(robust.gaussian_update,
                                            stddev=setting.noise_stddev),
        "backdoor": functools.partial(robust.scale_update,
                                      factor=num_clients_per_round / len(malicious)),
    }.get(attack)
    hook = None if update_attack is None else robust.MaliciousClients(malicious, update_attack,
                                                                       seed=seed)
    return datasets, hook


def attack_experiment(client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                      test_data: tuple[np.ndarray, np.ndarray], *, attack: str,
                      fraction: float, defence: str, num_rounds: int = 15,
                      local_epochs: int = 1, batch_size: int = 50,
                      client_learning_rate: float = 0.1, setting: Setting = Setting(),
                      seed: int = 0) -> AttackResult:
    """A federation of softmax-regression clients, ``fraction`` of them malicious.

    Every client takes part in every round (``m = N``, as in a cross-silo federation, so the
    share of attackers per round is exactly ``fraction``), the malicious ids are
    :func:`fl_helpers.robust.malicious_ids` ``(N, fraction, seed)``. The DP-FedAvg defence
    (clip to ``setting.clipping_norm``, noise ``setting.noise_multiplier``) uses reproducible
    noise derived from ``seed``: it is a robustness baseline here, **not** a private run.

    Args:
        client_datasets: The honest ``(x_k, y_k)`` of every client (images ``(n, 28, 28)``).
        test_data: ``(x_test, y_test)``: main-task accuracy, and the backdoor's success on the
            triggered copies of the test images.
        attack: One of :data:`ATTACKS`.
        fraction: Share of malicious clients in [0, 1).
        defence: One of :data:`DEFENCES`.
        num_rounds, local_epochs, batch_size, client_learning_rate: The training.
        setting: The attacks' and defences' knobs (:class:`Setting`).
        seed: Integer >= 0.

    Returns:
        An :class:`AttackResult`.
    """
    num_clients = len(client_datasets)
    fraction = v.check_in_range("fraction", fraction, 0, 1, high_open=True)
    malicious = robust.malicious_ids(num_clients, fraction, seed=seed)
    datasets, hook = poison(client_datasets, malicious, attack,
                            num_clients_per_round=num_clients, setting=setting, seed=seed)
    common: dict[str, Any] = {
        "num_rounds": num_rounds, "local_epochs": local_epochs, "batch_size": batch_size,
        "client_learning_rate": client_learning_rate, "test_data": test_data, "seed": seed,
        "progress": False, "client_hook": hook}
    rule = make_defence(defence, num_clients=num_clients, setting=setting)
    if rule is None:
        history: training.History = training.run_dp_fedavg(
            models.make_softmax_regression, datasets, sampling_probability=1.0,
            clipping_norm=setting.clipping_norm, noise_multiplier=setting.noise_multiplier,
            expected_clients=float(num_clients),  # q = 1: every one of the public N clients
            randomness=schedule.PrivateRandomness.reproducible(seed, warn=False), **common)
    else:
        history = training.run_fedavg(models.make_softmax_regression, datasets,
                                      clients_per_round=num_clients, aggregation_rule=rule,
                                      **common)
    x_test, y_test = test_data
    predicted = robust.dense_predict(history.final_weights, robust.add_trigger(x_test))
    return AttackResult(
        accuracy=history.test_accuracy.copy(),
        backdoor_success=robust.backdoor_success(predicted, y_test, target_label=TARGET_LABEL),
        seconds_per_round=float(np.median(history.seconds_per_round)),
        malicious=malicious, history=history)


def summary_line(result: AttackResult, *, attack: str, fraction: float, defence: str) -> str:
    """E.g. ``"sign flip, 20% malicious, median: accuracy 88.1%, backdoor success 1.2%"``."""
    return (f"{attack}, {fraction:.0%} malicious, {defence}: accuracy "
            f"{result.final_accuracy:.1%}, backdoor success {result.backdoor_success:.1%}")


#: Shares of malicious clients offered by :func:`robustness_explorer`.
FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4)


def robustness_explorer(client_datasets: Sequence[tuple[np.ndarray, np.ndarray]],
                        test_data: tuple[np.ndarray, np.ndarray], *, attack: str = "sign flip",
                        fraction: float = 0.2, defence: str = "FedAvg", num_rounds: int = 8,
                        seed: int = 0) -> widgets.Explorer:
    """A panel that reruns :func:`attack_experiment` as the share of attackers and the rule change.

    Controls: the share of malicious clients (:data:`FRACTIONS`), the defence
    (:data:`DEFENCES`) and the attack (:data:`ATTACKS`). Every change trains ``num_rounds``
    rounds (about 1 s for 20 clients of 300 images on a laptop CPU), prints
    :func:`summary_line` and draws the accuracy per round next to FedAvg without attackers
    (grey). Runs are remembered by setting.

    Returns:
        A :class:`fl_helpers.widgets.Explorer` (``last_seconds``: the last redraw's time).
    """
    if fraction not in FRACTIONS:
        raise ValueError(f"fraction must be one of {FRACTIONS}, got {fraction!r}.")
    if defence not in DEFENCES:
        raise ValueError(f"defence must be one of {DEFENCES}, got {defence!r}.")
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}.")
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1, maximum=50)
    style = {"description_width": "120px"}
    layout = ipywidgets.Layout(width="440px")
    fraction_slider = ipywidgets.SelectionSlider(
        options=[(f"{q:.0%}", q) for q in FRACTIONS], value=fraction,
        description="malicious f/n", continuous_update=False, style=style, layout=layout)
    defence_menu = ipywidgets.Dropdown(options=DEFENCES, value=defence, description="defence",
                                       style=style, layout=layout)
    attack_menu = ipywidgets.Dropdown(options=ATTACKS, value=attack, description="attack",
                                      style=style, layout=layout)
    output = ipywidgets.Output()
    runs: dict = {}

    def run(key: tuple) -> AttackResult:
        if key not in runs:
            runs[key] = attack_experiment(client_datasets, test_data, attack=key[0],
                                          fraction=key[1], defence=key[2],
                                          num_rounds=num_rounds, seed=seed)
        return runs[key]

    def redraw(_change=None) -> None:
        start = time.perf_counter()
        chosen = (attack_menu.value, fraction_slider.value, defence_menu.value)
        reference, result = run(("none", 0.0, "FedAvg")), run(chosen)
        with panel.failures_shown():
            fig = Figure(figsize=(7.0, 3.0))
            ax = fig.subplots()
            rounds = np.arange(1, num_rounds + 1)
            ax.plot(rounds, reference.accuracy, color="0.7", lw=3, label="FedAvg, no attack")
            ax.plot(rounds, result.accuracy, marker="o", label=f"{chosen[2]} under {chosen[0]}")
            ax.set(xlabel="round", ylabel="test accuracy", ylim=(0, 1))
            ax.legend(loc="lower right")
            fig.tight_layout()
            panel.show(summary_line(result, attack=chosen[0], fraction=chosen[1],
                                    defence=chosen[2]), fig, started=start)

    for control in (fraction_slider, defence_menu, attack_menu):
        control.observe(redraw, names="value")
    panel = widgets.Explorer([fraction_slider, defence_menu, attack_menu, output],
                             controls={"fraction": fraction_slider, "defence": defence_menu,
                                       "attack": attack_menu}, output=output)
    redraw()
    return panel
