"""The distribution of noisy answers as epsilon, sensitivity and mechanism change.

The *Try it* panel of notebook 01 (:mod:`fl_helpers.widgets` holds the shared
base: :class:`fl_helpers.widgets.Explorer`, the figure output and the log-slider helpers).
"""

from __future__ import annotations

import ipywidgets
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import plotting, schedule, widgets

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
                   num_samples: int = 2000, seed: int = 0,
                   neighbour_answer: float | None = None):
    """A panel that redraws the distribution of noisy answers as epsilon and the rest change.

    Controls: epsilon on a log slider from 0.01 ("more privacy") to 10 ("less privacy"), the
    sensitivity, the mechanism (Laplace or Gaussian) and, for the Gaussian, delta on a log
    slider. On every change the output area prints :func:`noise_summary_line` (with the expected
    absolute error) and redraws :func:`fl_helpers.plotting.plot_noisy_answer_distribution` with
    ``num_samples`` fresh noisy answers from :func:`fl_helpers.privacy.laplace_mechanism` or
    :func:`fl_helpers.privacy.gaussian_mechanism`. Their noise is drawn with
    ``randomness=PrivateRandomness.reproducible(seed)`` (same ``seed`` every time, so only the
    settings change the picture): reproducible, hence *not* a private release -- it is a picture
    of the distribution, not an answer to publish. With ``neighbour_answer`` the plot also shows
    the density on the neighbouring dataset, so the reader sees how hard the two are to tell
    apart, not only how wide the noise is.

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
        seed: Seed of the (reproducible, not private) noise drawn for the histogram.
        neighbour_answer: Exact answer on the neighbouring dataset (e.g. without one person),
            drawn as a second, dashed density; ``None`` for none.

    Returns:
        An :class:`Explorer` to display.

    Raises:
        ValueError: If an initial value is outside its slider's range.
    """
    import numpy as np

    from fl_helpers import privacy

    true_answer = v.check_real("true_answer", true_answer)
    epsilon = v.check_in_range("epsilon", epsilon, 0.01, 10)
    max_sensitivity = v.check_positive("max_sensitivity", max_sensitivity)
    sensitivity = v.check_positive("sensitivity", sensitivity)
    if sensitivity > max_sensitivity:
        raise ValueError(f"sensitivity must be <= max_sensitivity={max_sensitivity}, "
                         f"got {sensitivity}.")
    delta = v.check_in_range("delta", delta, 1e-10, 0.1)
    if mechanism not in privacy.MECHANISMS:
        raise ValueError(f"mechanism must be one of {privacy.MECHANISMS}, got {mechanism!r}.")
    half_range = (25.0 * sensitivity if half_range is None
                  else v.check_positive("half_range", half_range))
    num_samples = v.check_int("num_samples", num_samples, minimum=1)
    seed = v.check_int("seed", seed, minimum=0)
    if neighbour_answer is not None:
        neighbour_answer = v.check_real("neighbour_answer", neighbour_answer)

    style = {"description_width": "80px"}
    epsilon_slider = ipywidgets.FloatLogSlider(
        value=epsilon, base=10, min=-2, max=1, step=0.05, description="epsilon ε",
        readout_format=".3f", continuous_update=False, style=style,
        layout=ipywidgets.Layout(width="420px"))
    sensitivity_slider = ipywidgets.FloatSlider(
        value=sensitivity, min=0.1, max=max_sensitivity, step=0.1, description="sensitivity",
        continuous_update=False, style=style, layout=ipywidgets.Layout(width="420px"))
    mechanism_menu = ipywidgets.Dropdown(options=[("Laplace", "laplace"), ("Gaussian", "gaussian")],
                                      value=mechanism, description="mechanism", style=style)
    delta_slider = ipywidgets.FloatLogSlider(
        value=delta, base=10, min=-10, max=-1, step=1, description="delta δ",
        readout_format=".0e", continuous_update=False, style=style,
        disabled=mechanism == "laplace")
    output = ipywidgets.Output()

    def redraw(_change=None) -> None:
        kind = mechanism_menu.value
        delta_slider.disabled = kind == "laplace"
        kwargs = {"sensitivity": sensitivity_slider.value, "epsilon": epsilon_slider.value}
        if kind == "gaussian":
            kwargs["delta"] = delta_slider.value
        # A reproducible picture, not a private release.
        randomness = schedule.PrivateRandomness.reproducible(seed, warn=False)
        truth = np.full(num_samples, true_answer)
        if kind == "laplace":
            samples = privacy.laplace_mechanism(truth, randomness=randomness, **kwargs)
        else:
            samples = privacy.gaussian_mechanism(truth, randomness=randomness, **kwargs)
        with panel.failures_shown():
            fig = Figure(figsize=(7.0, 3.2))
            ax = fig.subplots()
            plotting.plot_noisy_answer_distribution(true_answer, kind, samples=np.asarray(samples),
                                                    half_range=half_range, ax=ax,
                                                    neighbour_answer=neighbour_answer, **kwargs)
            panel.show(noise_summary_line(true_answer, kind, **kwargs), fig)

    for control in (epsilon_slider, sensitivity_slider, mechanism_menu, delta_slider):
        control.observe(redraw, names="value")
    epsilon_row = ipywidgets.HBox([ipywidgets.Label("more privacy"), epsilon_slider,
                                ipywidgets.Label("less privacy")])
    panel = widgets.Explorer(
        [epsilon_row, sensitivity_slider, ipywidgets.HBox([mechanism_menu, delta_slider]), output],
        controls={"epsilon": epsilon_slider, "sensitivity": sensitivity_slider,
                  "mechanism": mechanism_menu, "delta": delta_slider},
        output=output)
    redraw()
    return panel
