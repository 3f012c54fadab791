"""DP-FedAvg: the privacy-utility trade-off of notebook 04's experiment.

The *Try it* panel of notebook 04 (:mod:`fl_helpers.widgets` holds the shared
base: :class:`fl_helpers.widgets.Explorer`, the figure output and the log-slider helpers).
"""

from __future__ import annotations

import math
import time

import ipywidgets
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import plotting, widgets

# --------------------------------------------------------------------------------------------
# Notebook 04: a DP-FedAvg run trained live as the privacy budget, clients per round and C change.
# --------------------------------------------------------------------------------------------

#: Expected clients per round offered by :func:`dp_experiment_explorer`.
DP_CLIENTS_PER_ROUND = (10, 20, 50, 100, 200)


def dp_experiment_explorer(client_datasets, test_data, *, target_epsilon: float = 2.0,
                           clients_per_round: int = 100, clipping_norm: float = 0.5,
                           num_rounds: int = 20, target_delta: float = 1e-5, seed: int = 0,
                           baseline=None, **training):
    """A panel that retrains DP-FedAvg for a privacy budget and redraws accuracy and epsilon.

    Controls: the target epsilon on a log slider from 0.32 ("more privacy") to 10 ("less
    privacy"), the expected number of clients per round (:data:`DP_CLIENTS_PER_ROUND`, i.e. the
    sampling probability ``q = clients_per_round / N``) and the clipping norm ``C`` on a log
    slider from 0.05 to 3.2. On every change the noise multiplier is calibrated by the accountant
    and the model is trained for ``num_rounds`` rounds, both by
    :func:`fl_helpers.experiment.run_experiment`; the output area prints
    :func:`fl_helpers.reporting.summary_line` (final accuracy, epsilon spent, ``z``, the
    seconds it took) and redraws accuracy and epsilon per round
    (:func:`fl_helpers.plotting.plot_accuracy_and_epsilon`) against a non-private run with the
    same clients per round (trained once per setting and remembered). Each private run draws
    secret noise; every run is remembered by its setting, so going back to a setting shows the
    same run again. After each redraw the private runs one step of the epsilon slider away are
    trained in the background (:class:`Prefetcher`), each with its own secret noise, and then the
    noise multiplier and epsilon curve of every other position of the slider are computed (they
    depend on the budget, q, T and delta only), so a move anywhere on the slider only trains.

    Args:
        client_datasets: One ``(x_k, y_k)`` pair per client.
        test_data: ``(x_test, y_test)``.
        target_epsilon: Initial budget, in [0.3, 10].
        clients_per_round: Initial expected clients per round, one of
            :data:`DP_CLIENTS_PER_ROUND` (at most the number of clients).
        clipping_norm: Initial ``C``, in [0.05, 3.2].
        num_rounds: Rounds per run, >= 1 (about 0.1 s each for softmax regression on a laptop).
        target_delta: delta of the guarantee, in (0, 1).
        seed: Seed of the runs (same seed every time, so only the settings change the result).
        baseline: An :class:`fl_helpers.experiment.ExperimentResult` of the non-private run with
            the initial settings, if already trained (saves one run), or ``None``.
        **training: Further keyword arguments of ``run_experiment`` (``model``,
            ``local_epochs``, ``batch_size``, ``client_learning_rate``, ``server_learning_rate``).

    Returns:
        An :class:`Explorer` to display (``last_seconds``: the time the last redraw took).

    Raises:
        ValueError: If an initial value is outside its control's range.
    """
    from fl_helpers import accounting, experiment, reporting

    num_clients = len(client_datasets)
    target_epsilon = v.check_in_range("target_epsilon", target_epsilon, 0.3, 10)
    options = [m for m in DP_CLIENTS_PER_ROUND if m <= num_clients]
    if clients_per_round not in options:
        raise ValueError(f"clients_per_round must be one of {options}, got {clients_per_round!r}.")
    clipping_norm = v.check_in_range("clipping_norm", clipping_norm, 0.05, 3.2)
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1)
    target_delta = v.check_open_unit("target_delta", target_delta)
    seed = v.check_int("seed", seed, minimum=0)
    unknown = set(training) - {"model", "local_epochs", "batch_size", "client_learning_rate",
                               "server_learning_rate"}
    if unknown:
        raise TypeError(f"unexpected keyword arguments {sorted(unknown)}.")

    style = {"description_width": "120px"}
    layout = ipywidgets.Layout(width="440px")
    epsilon_slider = ipywidgets.FloatLogSlider(
        value=target_epsilon, base=10, min=-0.5, max=1, step=0.1, description="target ε",
        readout_format=".2f", continuous_update=False, style=style, layout=layout)
    clients_slider = ipywidgets.SelectionSlider(
        options=options, value=clients_per_round, description="clients per round",
        continuous_update=False, style=style, layout=layout)
    clipping_slider = ipywidgets.FloatLogSlider(
        value=clipping_norm, base=10, min=-1.3, max=0.5, step=0.1, description="clipping norm C",
        readout_format=".2f", continuous_update=False, style=style, layout=layout)
    output = ipywidgets.Output()
    runs = widgets.Prefetcher()
    if baseline is not None:
        runs.get(("non-private", baseline.config["sampling_probability"]), lambda: baseline)

    def run(**kwargs):
        # runs.pause: a run trained ahead waits, between rounds, while the one on screen trains.
        # The divisor q N uses the size of the notebook's federation, which the notebook made
        # from public data and published: a public constant, as DP-FedAvg requires.
        return experiment.run_experiment(client_datasets, test_data, num_rounds=num_rounds,
                                         target_delta=target_delta, seed=seed,
                                         callback=runs.pause,
                                         expected_clients=kwargs["sampling_probability"]
                                         * num_clients, **training, **kwargs)

    def private_key(q: float, epsilon: float, clip: float) -> tuple:
        # Log sliders: the browser computes 10 ** exponent itself, which may differ from
        # Python's in the last bit, so settings are known by their rounded exponents.
        return ("private", q, round(math.log10(epsilon), 4), round(math.log10(clip), 4))

    def private_run(q: float, epsilon: float, clip: float):
        # Each private run draws secret noise; a setting seen before shows the run it got then.
        return (private_key(q, epsilon, clip),
                lambda: run(sampling_probability=q, target_epsilon=epsilon, clipping_norm=clip))

    # The accountant the runs will use (discrete for the default exact noise), so that what is
    # computed ahead is what the run looks up.
    accountant = accounting.accountant_for_noise(training.get("accountant"),
                                                 training.get("noise", "exact"))

    def accounting_for(q: float, epsilon: float):
        """Calibrates z for a budget and accounts its epsilon curve (cached for the run)."""
        def compute() -> None:
            z = experiment.noise_multiplier_for_budget(
                target_epsilon=epsilon, target_delta=target_delta, sampling_probability=q,
                num_rounds=num_rounds, accountant=accountant)
            accounting.epsilon_per_round(noise_multiplier=z, sampling_probability=q,
                                         num_rounds=num_rounds, target_delta=target_delta,
                                         accountant=accountant)
        return ("accounting", q, round(math.log10(epsilon), 4)), compute

    def ahead(q: float) -> list:
        """What to compute before the next move: the private runs one step of the epsilon
        slider away, then the accounting of every other epsilon (nearest first), which does not
        depend on the data, so that any move only trains."""
        clip = widgets.log_slider_value(clipping_slider)
        here = math.log10(widgets.log_slider_value(epsilon_slider))
        others = sorted(widgets.log_slider_positions(epsilon_slider),
                        key=lambda value: abs(math.log10(value) - here))
        neighbours = widgets.log_slider_neighbours(epsilon_slider)
        return ([private_run(q, value, clip) for value in neighbours]
                + [accounting_for(q, value) for value in others])

    def redraw(_change=None) -> None:
        start = time.perf_counter()
        q = clients_slider.value / num_clients
        reference = runs.get(("non-private", q), lambda: run(sampling_probability=q))
        result = runs.get(*private_run(q, widgets.log_slider_value(epsilon_slider),
                                       widgets.log_slider_value(clipping_slider)))
        with panel.failures_shown():
            fig = Figure(figsize=(9.5, 3.2))
            axes = fig.subplots(1, 2)
            plotting.plot_accuracy_and_epsilon(
                {"non-private": reference.history, "DP-FedAvg": result.history},
                target_epsilon=epsilon_slider.value,
                styles={"non-private": {"color": "0.5", "ls": "--"}}, axes=axes)
            fig.tight_layout()
            panel.show(reporting.summary_line(result, baseline=reference, seconds=False), fig,
                       started=start)
        runs.ahead(ahead(q))

    for control in (epsilon_slider, clients_slider, clipping_slider):
        control.observe(redraw, names="value")
    epsilon_row = ipywidgets.HBox([ipywidgets.Label("more privacy"), epsilon_slider,
                                ipywidgets.Label("less privacy")])
    panel = widgets.Explorer(
        [epsilon_row, clients_slider, clipping_slider, output],
        controls={"target_epsilon": epsilon_slider, "clients_per_round": clients_slider,
                  "clipping_norm": clipping_slider}, output=output, prefetcher=runs)
    redraw()
    return panel
