"""FedAvg: IID against non-IID clients, clients per round and batch size.

The *Try it* panel of notebook 03 (:mod:`fl_helpers.widgets` holds the shared
base: :class:`fl_helpers.widgets.Explorer`, the figure output and the log-slider helpers).
"""

from __future__ import annotations

import time

import ipywidgets
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import aggregation, plotting, widgets

# --------------------------------------------------------------------------------------------
# Notebook 03: a short FedAvg run as the client fraction C, epochs E, batch size B and split change.
# --------------------------------------------------------------------------------------------

#: Client fractions q offered by :func:`fedavg_explorer` (McMahan et al. 2017 call it C).
FEDAVG_CLIENT_FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)
#: Batch sizes B offered by :func:`fedavg_explorer`; ``None`` is full batch (B = inf).
FEDAVG_BATCH_SIZES = (10, 50, 100, None)


def fedavg_summary_line(history, *, split: str, num_clients: int, clients_per_round: int,
                        local_epochs: int, batch_size: int | None) -> str:
    """One line describing a short FedAvg run from :func:`fl_helpers.training.run_fedavg`.

    Args:
        history: The run's ``History`` (with test accuracy).
        split: Name of the data split, e.g. ``"IID"``.
        num_clients: ``N``, the number of clients in the federation.
        clients_per_round: ``m``, the clients sampled per round.
        local_epochs: ``E``.
        batch_size: ``B``, or ``None`` for full batch.

    Returns:
        E.g. ``"IID, q = 0.1 (10 of 100 clients), E = 1, B = 10: test accuracy 93.1% after 8
        rounds; 15.9 MB per round (up + down)"``.

    Raises:
        ValueError: The history has no test accuracy.
    """
    if len(history.test_accuracy) == 0:
        raise ValueError("history has no test accuracy; run it with test_data.")
    megabytes = aggregation.fedavg_bytes_per_round(history.final_weights,
                                                   clients_per_round) / 1e6
    return (f"{split}, q = {clients_per_round / num_clients:g} ({clients_per_round} of "
            f"{num_clients} clients), E = {local_epochs}, B = {batch_size or 'full'}: "
            f"test accuracy {history.test_accuracy[-1]:.1%} after {len(history.rounds)} rounds; "
            f"{megabytes:.1f} MB per round (up + down)")


def fedavg_explorer(model_fn, client_splits: dict, test_data, *, num_rounds: int = 8,
                    clients_per_round: int | None = None, local_epochs: int = 1,
                    batch_size: int | None = 10, split: str | None = None,
                    client_learning_rate: float = 0.1, seed: int = 0) -> widgets.Explorer:
    """A panel that reruns a short FedAvg training and redraws its test-accuracy curve.

    Controls: the local epochs E (an integer slider, 1 to 5), the fraction of clients per round
    ``q`` (one of :data:`FEDAVG_CLIENT_FRACTIONS`, i.e. ``m = max(round(q N), 1)`` clients per
    round; McMahan et al. 2017 call the fraction C), the batch size B (one of
    :data:`FEDAVG_BATCH_SIZES`) and the data split (a key of ``client_splits``). On every change
    :func:`fl_helpers.training.run_fedavg` trains ``num_rounds`` rounds from the same initial
    weights with the same ``seed`` (so only the settings change the result); the output area
    prints :func:`fedavg_summary_line` (final test accuracy, bytes per round) and draws the
    accuracy curve with :func:`fl_helpers.plotting.plot_accuracy_curves`, next to the curve of
    the starting settings in grey. A run costs about ``m E n_k / B`` SGD steps per round, so
    large E with small B and many clients takes longest. Every setting is trained once and
    remembered, and after each redraw the settings one step of the E slider away are trained
    in the background (:class:`Prefetcher`), so a one-step move answers at once.

    Args:
        model_fn: Builds the model, e.g. ``fl_helpers.models.make_2nn``.
        client_splits: Split name -> list of ``(x_k, y_k)`` client datasets (all splits with the
            same number of clients ``N``).
        test_data: ``(x_test, y_test)`` evaluated after every round.
        num_rounds: Rounds per run, in 1..100.
        clients_per_round: Initial ``m``, one of ``round(q N)`` for q in
            :data:`FEDAVG_CLIENT_FRACTIONS` (default: q = 0.1).
        local_epochs: Initial E, in 1..5.
        batch_size: Initial B, one of :data:`FEDAVG_BATCH_SIZES`.
        split: Initial split, a key of ``client_splits`` (default: the first).
        client_learning_rate: Learning rate of every run, > 0.
        seed: Seed of every run (client sampling and batch order).

    Returns:
        An :class:`Explorer` to display.

    Raises:
        ValueError: If an initial value is outside its control's range, or the splits are empty
            or differ in their number of clients.
    """
    from fl_helpers import training

    if not isinstance(client_splits, dict) or not client_splits:
        raise ValueError("client_splits must be a non-empty dict of split name -> client "
                         f"datasets, got {type(client_splits).__name__}.")
    sizes = {name: len(clients) for name, clients in client_splits.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"client_splits must all have the same number of clients, got {sizes}.")
    num_clients = next(iter(sizes.values()))
    split = next(iter(client_splits)) if split is None else split
    if split not in client_splits:
        raise ValueError(f"split must be one of {list(client_splits)}, got {split!r}.")
    num_rounds = v.check_int("num_rounds", num_rounds, minimum=1, maximum=100)
    choices = {min(max(round(q * num_clients), 1), num_clients): q
               for q in FEDAVG_CLIENT_FRACTIONS}
    if clients_per_round is None:
        clients_per_round = min(max(round(0.1 * num_clients), 1), num_clients)
    if clients_per_round not in choices:
        raise ValueError(f"clients_per_round must be one of {sorted(choices)}, got "
                         f"{clients_per_round!r}.")
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1, maximum=5)
    if batch_size not in FEDAVG_BATCH_SIZES:
        raise ValueError(f"batch_size must be one of {FEDAVG_BATCH_SIZES}, got {batch_size!r}.")
    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    seed = v.check_int("seed", seed, minimum=0)

    style = {"description_width": "110px"}
    layout = ipywidgets.Layout(width="420px")
    epochs_slider = ipywidgets.IntSlider(
        value=local_epochs, min=1, max=5, description="local epochs E",
        continuous_update=False, style=style, layout=layout)
    clients_slider = ipywidgets.SelectionSlider(
        options=[(f"{q:g} ({m} clients)", m) for m, q in choices.items()],
        value=clients_per_round, description="clients q", continuous_update=False, style=style,
        layout=layout)
    # Option values must not be None, so full batch is stored as 0 and mapped back.
    batch_slider = ipywidgets.SelectionSlider(
        options=[("full" if b is None else str(b), b or 0) for b in FEDAVG_BATCH_SIZES],
        value=batch_size or 0, description="batch size B", continuous_update=False,
        style=style, layout=layout)
    split_buttons = ipywidgets.ToggleButtons(options=list(client_splits), value=split,
                                             description="split", style=style)
    output = ipywidgets.Output()

    def settings() -> dict:
        return {"split": split_buttons.value, "clients_per_round": clients_slider.value,
                "local_epochs": epochs_slider.value, "batch_size": batch_slider.value or None}

    def train(chosen: dict) -> training.History:
        return training.run_fedavg(
            model_fn, client_splits[chosen["split"]], num_rounds=num_rounds,
            clients_per_round=chosen["clients_per_round"], local_epochs=chosen["local_epochs"],
            batch_size=chosen["batch_size"], client_learning_rate=client_learning_rate,
            test_data=test_data, seed=seed, progress=False, callback=runs.pause)

    runs = widgets.Prefetcher()

    def run(chosen: dict) -> training.History:
        return runs.get(tuple(sorted(chosen.items())), lambda: train(chosen))

    start = settings()
    reference = run(start)

    def label(chosen: dict) -> str:
        return (f"{chosen['split']}, q={chosen['clients_per_round'] / num_clients:g}, "
                f"E={chosen['local_epochs']}, B={chosen['batch_size'] or 'full'}")

    def neighbours(chosen: dict) -> list:
        """The settings one step of the E slider away, to train ahead of a move."""
        nearby = [dict(chosen, local_epochs=e) for e in (chosen["local_epochs"] + 1,
                                                         chosen["local_epochs"] - 1)
                  if epochs_slider.min <= e <= epochs_slider.max]
        return [(tuple(sorted(n.items())), lambda n=n: train(n)) for n in nearby]

    def redraw(_change=None) -> None:
        started = time.perf_counter()
        chosen = settings()
        history = run(chosen)
        with panel.failures_shown():
            fig = Figure(figsize=(7.0, 3.2))
            ax = fig.subplots()
            curves = {f"start: {label(start)}": reference, label(chosen): history}
            styles = {f"start: {label(start)}": {"color": "0.7", "lw": 3}}
            plotting.plot_accuracy_curves(curves, styles=styles, ax=ax)
            ax.set_xlim(0.5, num_rounds + 0.5)
            ax.set_ylim(0, 1)
            panel.show(fedavg_summary_line(history, num_clients=num_clients, **chosen), fig)
        panel.last_seconds = time.perf_counter() - started
        runs.ahead(neighbours(chosen))

    for control in (epochs_slider, clients_slider, batch_slider, split_buttons):
        control.observe(redraw, names="value")
    panel = widgets.Explorer(
        [epochs_slider, clients_slider, batch_slider, split_buttons, output],
        controls={"local_epochs": epochs_slider, "clients_per_round": clients_slider,
                  "batch_size": batch_slider, "split": split_buttons},
        output=output, prefetcher=runs)
    redraw()
    return panel
