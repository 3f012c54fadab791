"""Interactive ``### Try it`` panels for the notebooks (ipywidgets).

Each panel is built by one function that returns the widget to ``display``. The panels only
wire sliders to plain functions of the domain modules (``privacy``, ``accounting``, ...) and to
the plots in ``plotting``; those plain functions are what the unit tests check. Every panel
is self-contained: its own imports, helpers and tests.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Notebook 01: the distribution of noisy answers as epsilon, sensitivity and mechanism change.
# --------------------------------------------------------------------------------------------


def noise_summary_line(true_answer: float, mechanism: str, *, sensitivity: float,
                       epsilon: float, delta: float | None = None) -> str:
    """One line describing a release: noise scale, expected absolute error and 95% range.

    Args:
        true_answer: The exact answer of the query.
        mechanism: ``"laplace"`` or ``"gaussian"``.
        sensitivity: Sensitivity of the query, >= 0.
        epsilon: Privacy parameter, > 0.
        delta: Privacy parameter in (0, 1), for ``"gaussian"`` (ignored for Laplace).

    Returns:
        E.g. ``"Laplace, epsilon = 1, sensitivity = 1: scale b = 1.00, expected |error| = 1.00,
        95% of answers in [97.0, 103.0]"`` for a true answer of 100.

    Raises:
        ValueError: As :func:`fl_helpers.privacy.noisy_answer_summary`.
    """
    from fl_helpers import privacy

    summary = privacy.noisy_answer_summary(true_answer, mechanism, sensitivity=sensitivity,
                                           epsilon=epsilon, delta=delta)
    if mechanism.lower() == "laplace":
        setting = f"Laplace, epsilon = {epsilon:.3g}, sensitivity = {sensitivity:.3g}"
        scale = f"scale b = {summary['scale']:.2f}"
    else:
        setting = (f"Gaussian, epsilon = {epsilon:.3g}, delta = {delta:.0e}, "
                   f"sensitivity = {sensitivity:.3g}")
        scale = f"sigma = {summary['scale']:.2f}"
    return (f"{setting}: {scale}, expected |error| = {summary['expected_absolute_error']:.2f}, "
            f"95% of answers in [{summary['low']:.1f}, {summary['high']:.1f}]")


def noise_explorer(true_answer: float, *, epsilon: float = 1.0, sensitivity: float = 1.0,
                   max_sensitivity: float = 10.0, mechanism: str = "laplace",
                   delta: float = 1e-5, half_range: float | None = None,
                   num_samples: int = 2000, seed: int = 0):
    """A panel that redraws the distribution of noisy answers as epsilon and the rest change.

    Controls: epsilon on a log slider from 0.01 ("more privacy") to 10 ("less privacy"), the
    sensitivity, the mechanism (Laplace or Gaussian) and, for the Gaussian, delta on a log
    slider. On every change the output area prints :func:`noise_summary_line` (with the expected
    absolute error) and redraws :func:`fl_helpers.plotting.plot_noisy_answer_distribution` with
    ``num_samples`` fresh noisy answers from :func:`fl_helpers.privacy.laplace_mechanism` or
    :func:`fl_helpers.privacy.gaussian_mechanism` (same ``seed`` every time, so only the
    settings change the picture).

    Args:
        true_answer: The exact answer of the query, at the centre of the plot.
        epsilon: Initial epsilon, in [0.01, 10].
        sensitivity: Initial sensitivity, in (0, max_sensitivity].
        max_sensitivity: Upper end of the sensitivity slider.
        mechanism: Initial mechanism, ``"laplace"`` or ``"gaussian"``.
        delta: Initial delta for the Gaussian mechanism, in [1e-10, 1e-1].
        half_range: Fixed half-width of the x axis around ``true_answer``, so that settings can
            be compared on one scale; by default ``25 * sensitivity`` of the initial setting.
        num_samples: Noisy answers drawn for the histogram, >= 1.
        seed: Seed of the noise drawn for the histogram.

    Returns:
        An ``ipywidgets.VBox`` to display; its ``output`` attribute is the output area and its
        ``controls`` attribute a dict of the controls by name.

    Raises:
        ValueError: If an initial value is outside its slider's range.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import numpy as np

    from fl_helpers import _validation as v
    from fl_helpers import plotting, privacy

    true_answer = v.check_real("true_answer", true_answer)
    epsilon = v.check_positive("epsilon", epsilon)
    if not 0.01 <= epsilon <= 10:
        raise ValueError(f"epsilon must be in [0.01, 10], got {epsilon}.")
    max_sensitivity = v.check_positive("max_sensitivity", max_sensitivity)
    sensitivity = v.check_positive("sensitivity", sensitivity)
    if sensitivity > max_sensitivity:
        raise ValueError(f"sensitivity must be <= max_sensitivity={max_sensitivity}, "
                         f"got {sensitivity}.")
    delta = v.check_open_unit("delta", delta)
    if not 1e-10 <= delta <= 0.1:
        raise ValueError(f"delta must be in [1e-10, 0.1], got {delta}.")
    if mechanism not in privacy.MECHANISMS:
        raise ValueError(f"mechanism must be one of {privacy.MECHANISMS}, got {mechanism!r}.")
    half_range = (25.0 * sensitivity if half_range is None
                  else v.check_positive("half_range", half_range))
    num_samples = v.check_int("num_samples", num_samples, minimum=1)
    seed = v.check_int("seed", seed, minimum=0)

    style = {"description_width": "80px"}
    epsilon_slider = widgets.FloatLogSlider(
        value=epsilon, base=10, min=-2, max=1, step=0.05, description="epsilon ε",
        readout_format=".3f", continuous_update=False, style=style,
        layout=widgets.Layout(width="420px"))
    sensitivity_slider = widgets.FloatSlider(
        value=sensitivity, min=0.1, max=max_sensitivity, step=0.1, description="sensitivity",
        continuous_update=False, style=style, layout=widgets.Layout(width="420px"))
    mechanism_menu = widgets.Dropdown(options=[("Laplace", "laplace"), ("Gaussian", "gaussian")],
                                      value=mechanism, description="mechanism", style=style)
    delta_slider = widgets.FloatLogSlider(
        value=delta, base=10, min=-10, max=-1, step=1, description="delta δ",
        readout_format=".0e", continuous_update=False, style=style,
        disabled=mechanism == "laplace")
    output = widgets.Output()

    def redraw(_change=None) -> None:
        kind = mechanism_menu.value
        delta_slider.disabled = kind == "laplace"
        kwargs = {"sensitivity": sensitivity_slider.value, "epsilon": epsilon_slider.value}
        if kind == "gaussian":
            kwargs["delta"] = delta_slider.value
        rng = np.random.default_rng(seed)
        truth = np.full(num_samples, true_answer)
        if kind == "laplace":
            samples = privacy.laplace_mechanism(truth, rng=rng, **kwargs)
        else:
            samples = privacy.gaussian_mechanism(truth, rng=rng, **kwargs)
        with output:
            output.clear_output(wait=True)
            print(noise_summary_line(true_answer, kind, **kwargs))
            _, ax = plt.subplots(figsize=(7.0, 3.2))
            plotting.plot_noisy_answer_distribution(true_answer, kind, samples=samples,
                                                    half_range=half_range, ax=ax, **kwargs)
            plt.show()

    for control in (epsilon_slider, sensitivity_slider, mechanism_menu, delta_slider):
        control.observe(redraw, names="value")
    epsilon_row = widgets.HBox([widgets.Label("more privacy"), epsilon_slider,
                                widgets.Label("less privacy")])
    panel = widgets.VBox([epsilon_row, sensitivity_slider,
                          widgets.HBox([mechanism_menu, delta_slider]), output])
    panel.output = output
    panel.controls = {"epsilon": epsilon_slider, "sensitivity": sensitivity_slider,
                      "mechanism": mechanism_menu, "delta": delta_slider}
    redraw()
    return panel


# --------------------------------------------------------------------------------------------
# Notebook 02: one client's local SGD as the learning rate, batch size and epochs change.
# --------------------------------------------------------------------------------------------

#: Batch sizes offered by :func:`local_sgd_explorer`; ``None`` is full-batch gradient descent.
LOCAL_SGD_BATCH_SIZES = (1, 10, 32, 100, None)


def local_sgd_summary_line(curve, *, test_accuracy: float | None = None) -> str:
    """One line describing a local training run from :func:`fl_helpers.federated.sgd_loss_curve`.

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
    the same initial weights with :func:`fl_helpers.federated.sgd_loss_curve` (same ``seed``, so
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
        An ``ipywidgets.VBox`` to display; its ``output`` attribute is the output area and its
        ``controls`` attribute a dict of the controls by name.

    Raises:
        ValueError: If an initial value is outside its control's range.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from fl_helpers import _validation as v
    from fl_helpers import federated, plotting

    client_learning_rate = v.check_positive("client_learning_rate", client_learning_rate)
    if not 0.001 <= client_learning_rate <= 1:
        raise ValueError(f"client_learning_rate must be in [0.001, 1], got {client_learning_rate}.")
    if batch_size not in LOCAL_SGD_BATCH_SIZES:
        raise ValueError(f"batch_size must be one of {LOCAL_SGD_BATCH_SIZES}, got {batch_size!r}.")
    local_epochs = v.check_int("local_epochs", local_epochs, minimum=1, maximum=10)
    seed = v.check_int("seed", seed, minimum=0)
    model = model_fn()
    initial_weights = model.get_weights()

    style = {"description_width": "110px"}
    rate_slider = widgets.FloatLogSlider(
        value=client_learning_rate, base=10, min=-3, max=0, step=0.125,
        description="learning rate η", readout_format=".3f", continuous_update=False,
        style=style, layout=widgets.Layout(width="420px"))
    # Option values must not be None, so full batch is stored as 0 and mapped back.
    batch_slider = widgets.SelectionSlider(
        options=[("full" if b is None else str(b), b or 0) for b in LOCAL_SGD_BATCH_SIZES],
        value=batch_size or 0, description="batch size B", continuous_update=False,
        style=style, layout=widgets.Layout(width="420px"))
    epochs_slider = widgets.IntSlider(
        value=local_epochs, min=1, max=10, description="epochs E", continuous_update=False,
        style=style, layout=widgets.Layout(width="420px"))
    output = widgets.Output()

    def train() -> tuple:
        curve = federated.sgd_loss_curve(
            model, initial_weights, x, y, local_epochs=epochs_slider.value,
            batch_size=batch_slider.value or None, client_learning_rate=rate_slider.value,
            seed=seed)
        accuracy = None
        if test_data is not None and not curve.diverged:
            accuracy = federated.evaluate(model, None, *test_data)[1]
        return curve, accuracy

    reference, _ = train()
    reference_label = (f"start: η={client_learning_rate:g}, B={batch_size or 'full'}, "
                       f"E={local_epochs}")

    def redraw(_change=None) -> None:
        curve, accuracy = train()
        label = (f"η={rate_slider.value:.3g}, B={batch_slider.value or 'full'}, "
                 f"E={epochs_slider.value}")
        with output:
            output.clear_output(wait=True)
            print(local_sgd_summary_line(curve, test_accuracy=accuracy))
            _, ax = plt.subplots(figsize=(7.0, 3.2))
            ax.plot(reference.epochs, reference.loss, color="0.7", lw=3, label=reference_label)
            plotting.plot_loss_curves({label: curve}, x_axis="epochs", ax=ax)
            ax.set_xlim(0, 10)
            ax.set_ylim(0, max(3.0, float(reference.loss[0]) * 1.1))
            plt.show()

    for control in (rate_slider, batch_slider, epochs_slider):
        control.observe(redraw, names="value")
    panel = widgets.VBox([rate_slider, batch_slider, epochs_slider, output])
    panel.output = output
    panel.controls = {"learning_rate": rate_slider, "batch_size": batch_slider,
                      "epochs": epochs_slider}
    redraw()
    return panel
