"""Local SGD: batch size and learning rate against the loss curve.

The *Try it* panel of notebook 02 (:mod:`fl_helpers.widgets` holds the shared
base: :class:`fl_helpers.widgets.Explorer`, the figure output and the log-slider helpers).
"""

from __future__ import annotations

import ipywidgets
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import plotting, widgets

# --------------------------------------------------------------------------------------------
# Notebook 02: one client's local SGD as the learning rate, batch size and epochs change.
# --------------------------------------------------------------------------------------------

#: Batch sizes offered by :func:`local_sgd_explorer`; ``None`` is full-batch gradient descent.
LOCAL_SGD_BATCH_SIZES = (1, 10, 32, 100, None)


def local_sgd_summary_line(curve, *, test_accuracy: float | None = None) -> str:
    """One line describing a local training run from :func:`fl_helpers.client.sgd_loss_curve`.

    Args:
        curve: A ``LossCurve``.
        test_accuracy: Accuracy of the trained model on a test set, in [0, 1], or ``None``.

    Returns:
        E.g. ``"220 steps over 10.0 epochs: training loss 2.327 -> 0.072, test accuracy 63.0%"``,
        or a line saying where the loss became NaN/inf if the run diverged.
    """
    steps = int(curve.steps[-1])
    epochs = float(curve.epochs[-1])
    if curve.diverged:
        return (f"diverged: the loss became {curve.loss[-1]} after {steps} steps "
                f"({epochs:.1f} epochs). Try a smaller learning rate.")
    line = (f"{steps} steps over {epochs:.1f} epochs: training loss {curve.loss[0]:.3f} -> "
            f"{curve.loss[-1]:.3f}")
    if test_accuracy is not None:
        line += f", test accuracy {test_accuracy:.1%}"
    return line


def local_sgd_explorer(model_fn, x, y, *, test_data=None, client_learning_rate: float = 0.1,
                       batch_size: int | None = 32, local_epochs: int = 3, seed: int = 0):
    """A panel that retrains a model on one client's data and redraws its loss curve.

    Controls: the learning rate on a log slider from 0.001 to 1, the batch size (1, 10, 32, 100
    or full batch) and the number of epochs (1 to 10). On every change the model is trained from
    the same initial weights with :func:`fl_helpers.client.sgd_loss_curve` (same ``seed``, so
    only the settings change the result); the output area prints
    :func:`local_sgd_summary_line` (with the test accuracy if ``test_data`` is given) and draws
    the training loss against epochs with :func:`fl_helpers.plotting.plot_loss_curves`, next to
    the curve of the starting settings in grey for comparison.

    Args:
        model_fn: Builds the model, e.g. ``fl_helpers.models.make_2nn``; called once.
        x: The client's inputs.
        y: The client's integer labels.
        test_data: ``(x_test, y_test)`` for the accuracy in the summary line, or ``None``.
        client_learning_rate: Initial learning rate, in [0.001, 1].
        batch_size: Initial batch size, one of :data:`LOCAL_SGD_BATCH_SIZES`.
        local_epochs: Initial number of epochs, in 1..10.
        seed: Seed of the batch order.

    Returns:
        An :class:`Explorer` to display.

    Raises:
        ValueError: If an initial value is outside its control's range.
    """
    from fl_helpers import client

    client_learning_rate = v.check_in_range("client_learning_rate", client_learning_rate,
                                            0.001, 1)
    if batch_size not in LOCAL_SGD_BATCH_SIZES:
        raise ValueError(f"batch_size must be one of {LOCAL_SGD_BATCH_SIZES}, got {batch_size!r}.")
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1, maximum=10)
    seed = v.check_int("seed", seed, minimum=0)
    model = model_fn()
    initial_weights = model.get_weights()

    style = {"description_width": "110px"}
    rate_slider = ipywidgets.FloatLogSlider(
        value=client_learning_rate, base=10, min=-3, max=0, step=0.125,
        description="learning rate η", readout_format=".3f", continuous_update=False,
        style=style, layout=ipywidgets.Layout(width="420px"))
    # Option values must not be None, so full batch is stored as 0 and mapped back.
    batch_slider = ipywidgets.SelectionSlider(
        options=[("full" if b is None else str(b), b or 0) for b in LOCAL_SGD_BATCH_SIZES],
        value=batch_size or 0, description="batch size B", continuous_update=False,
        style=style, layout=ipywidgets.Layout(width="420px"))
    epochs_slider = ipywidgets.IntSlider(
        value=local_epochs, min=1, max=10, description="epochs E", continuous_update=False,
        style=style, layout=ipywidgets.Layout(width="420px"))
    output = ipywidgets.Output()

    def train() -> tuple:
        curve = client.sgd_loss_curve(
            model, initial_weights, x, y, local_epochs=epochs_slider.value,
            batch_size=batch_slider.value or None, client_learning_rate=rate_slider.value,
            seed=seed)
        accuracy = None
        if test_data is not None and not curve.diverged:
            accuracy = client.evaluate(model, None, *test_data)[1]
        return curve, accuracy

    reference, _ = train()
    reference_label = (f"start: η={client_learning_rate:g}, B={batch_size or 'full'}, "
                       f"E={local_epochs}")

    def redraw(_change=None) -> None:
        curve, accuracy = train()
        label = (f"η={rate_slider.value:.3g}, B={batch_slider.value or 'full'}, "
                 f"E={epochs_slider.value}")
        with panel.failures_shown():
            fig = Figure(figsize=(7.0, 3.2))
            ax = fig.subplots()
            ax.plot(reference.epochs, reference.loss, color="0.7", lw=3, label=reference_label)
            plotting.plot_loss_curves({label: curve}, x_axis="epochs", ax=ax)
            ax.set_xlim(0, 10)
            ax.set_ylim(0, max(3.0, float(reference.loss[0]) * 1.1))
            panel.show(local_sgd_summary_line(curve, test_accuracy=accuracy), fig)

    for control in (rate_slider, batch_slider, epochs_slider):
        control.observe(redraw, names="value")
    panel = widgets.Explorer(
        [rate_slider, batch_slider, epochs_slider, output],
        controls={"client_learning_rate": rate_slider, "batch_size": batch_slider,
                  "local_epochs": epochs_slider}, output=output)
    redraw()
    return panel
