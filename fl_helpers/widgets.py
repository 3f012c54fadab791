"""Interactive ``### Try it`` panels for the notebooks (ipywidgets).

Each panel is built by one function that returns the widget to ``display``. The panels only
wire sliders to plain functions of the domain modules (``privacy``, ``accounting``, ...) and to
the plots in ``plotting``; those plain functions are what the unit tests check. Every panel
is self-contained: its own imports, helpers and tests.

Callbacks draw on a :class:`matplotlib.figure.Figure` of their own, never on pyplot: in
JupyterLab 4 with ipykernel 7 widget messages are handled on a second kernel thread, and pyplot's
global figures can be redrawn by the kernel while a callback is still drawing them, which leaves
a blank or half-drawn plot (``tests/browser`` caught this). They hand the finished text and figure
to :meth:`Explorer.show`, which replaces the whole output in one message: printing and then
``display``-ing sends two, and between them the browser shows the new text with no plot (a blank
flash a student sees, and a frame a test may judge).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import ipywidgets
from matplotlib.figure import Figure

from fl_helpers import _validation as v
from fl_helpers import aggregation, plotting


class Explorer(ipywidgets.VBox):
    """A ``### Try it`` panel: its controls by name, its output area, its last response time.

    Args:
        children: The widgets shown, top to bottom.
        controls: The controls by name (the keys are the parameter names they set).
        output: The output area the callbacks draw into.
        prefetcher: The :class:`Prefetcher` the panel computes its settings with, if any.
    """

    def __init__(self, children: list[ipywidgets.Widget], *,
                 controls: dict[str, ipywidgets.Widget], output: ipywidgets.Output,
                 prefetcher: Prefetcher | None = None) -> None:
        super().__init__(children)
        self.controls = controls
        self.output = output
        #: The panel's :class:`Prefetcher` if it computes likely next settings ahead, else None.
        self.prefetcher = prefetcher
        #: Seconds the last redraw took (training, accounting and drawing), NaN before one.
        self.last_seconds = math.nan

    def show(self, text: str, fig: Figure | None = None, *, started: float | None = None
             ) -> None:
        """Replaces the output with ``text`` and ``fig`` at once (one message to the browser).

        Given the redraw's start time, also records how long the redraw took (training,
        accounting and drawing the figure) and prints it below the plot
        (``responded in X s``).

        Args:
            text: The summary printed above the plot.
            fig: The plot, or ``None`` for text only.
            started: ``time.perf_counter()`` when the redraw began, or ``None``.
        """
        outputs = [_stream_output(text)]
        if fig is not None:
            outputs.append(figure_output(fig))
        if started is not None:
            self.last_seconds = time.perf_counter() - started
            outputs.append(_stream_output(f"responded in {self.last_seconds:.1f} s "
                                          "(training, accounting and drawing)"))
        self.output.outputs = tuple(outputs)

    @contextlib.contextmanager
    def failures_shown(self) -> Iterator[None]:
        """Shows an exception raised in the block in the output area, in place of the old plot.

        In a notebook the traceback is shown there and the exception ends; elsewhere (tests) it
        propagates.
        """
        try:
            yield
        except Exception:
            self.output.outputs = ()
            with self.output:
                raise


def _stream_output(text: str) -> dict[str, str]:
    return {"output_type": "stream", "name": "stdout",
            "text": text if text.endswith("\n") else text + "\n"}


def figure_output(fig: Figure) -> dict[str, Any]:
    """``fig`` as a notebook output (a PNG, rendered as the inline backend renders it).

    The dictionary is what ``display(fig)`` would send, so it can be put in an
    :class:`ipywidgets.Output`'s ``outputs`` together with other outputs in one assignment.
    """
    from IPython.core.pylabtools import print_figure

    png = print_figure(fig, "png")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(png).decode("ascii"),
                     "text/plain": repr(fig)}}


def log_slider_positions(slider: ipywidgets.FloatLogSlider) -> list[float]:
    """Every value a log slider can take, ``base ** (min + k * step)``, from ``min`` up."""
    last = round((slider.max - slider.min) / slider.step)
    return [slider.base ** round(slider.min + k * slider.step, 10) for k in range(last + 1)]


def log_slider_value(slider: ipywidgets.FloatLogSlider) -> float:
    """The slider's value as the position it stands on (see :func:`log_slider_positions`).

    The browser computes ``base ** exponent`` itself, which may differ from Python's in the last
    bit; settings snapped to the positions' exact floats are found again in the caches (and a
    start value off the grid, such as 2.0, is kept as it is).
    """
    position = (math.log(slider.value, slider.base) - slider.min) / slider.step
    if abs(position - round(position)) > 1e-6:
        return float(slider.value)
    positions = log_slider_positions(slider)
    return positions[min(max(round(position), 0), len(positions) - 1)]


def log_slider_neighbours(slider: ipywidgets.FloatLogSlider) -> list[float]:
    """The values one step up and one step down from a log slider's value, within its range.

    A value between two positions (a start value off the grid) has the positions on either side
    as its neighbours.
    """
    position = (math.log(slider.value, slider.base) - slider.min) / slider.step
    positions = log_slider_positions(slider)
    up, down = math.floor(position + 1e-6) + 1, math.ceil(position - 1e-6) - 1
    return [positions[k] for k in (up, down) if 0 <= k < len(positions)]


#: Every live prefetcher, so that interpreter exit can let their threads finish (below).
_PREFETCHERS: weakref.WeakSet[Prefetcher] = weakref.WeakSet()


def _finish_prefetching() -> None:
    """At exit, drops the settings not yet started and waits for the running computations:
    TensorFlow aborts the process if it is torn down under a running daemon thread. Registered
    with ``atexit`` by the first :class:`Prefetcher` (importing this module has no side effect).
    """
    for prefetcher in list(_PREFETCHERS):
        prefetcher.stop()


class Prefetcher:
    """Results by setting, computed when asked for or ahead of time in a background thread.

    A panel asks :meth:`get` for the result of the setting on screen; after drawing it, it
    hands :meth:`ahead` the settings a student is likely to pick next (the main slider's
    neighbours), which one daemon thread computes while the student reads. A move to such a
    setting then only waits for what is still running; a move anywhere else computes at once,
    as without a prefetcher. Each setting is computed once and remembered, so returning to a
    setting shows the same result (for a private run: the noise it drew then, not a new draw).
    A newer :meth:`ahead` call supersedes an older one: the settings it has not started are
    dropped. A computation that raised is forgotten (the next :meth:`get` raises it afresh).
    A computation that calls :meth:`pause` now and then (e.g. as a training callback, once a
    round) gives way to the student: in the background, it waits there while :meth:`get`
    computes a setting on screen, so that the two do not share the CPU.
    """

    def __init__(self) -> None:
        self._futures: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._threads: list[threading.Thread] = []
        self._foreground = 0  # computations running in get(), on the caller's thread
        self._quiet = threading.Condition()
        self._background = threading.local()
        if not _PREFETCHERS:  # the first live prefetcher: make exit wait for its threads
            atexit.unregister(_finish_prefetching)  # once, however many come and go
            atexit.register(_finish_prefetching)
        _PREFETCHERS.add(self)

    def pause(self, *_: Any) -> None:
        """Waits while a :meth:`get` computes in the foreground, if called from this
        prefetcher's background thread; returns at once otherwise. Returns ``None``, so it can
        serve as a training callback (``callback=prefetcher.pause``)."""
        if getattr(self._background, "active", False):
            with self._quiet:
                self._quiet.wait_for(lambda: self._foreground == 0)

    def _claim(self, key: Hashable) -> tuple[Future, bool]:
        """The future for ``key`` and whether the caller must compute it."""
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                return future, False
            future = self._futures[key] = Future()
            return future, True

    def _compute(self, key: Hashable, future: Future, compute: Callable[[], Any]) -> None:
        try:
            future.set_result(compute())
        except BaseException as error:  # handed to whoever waits on this setting
            with self._lock:
                self._futures.pop(key, None)
            future.set_exception(error)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The result for ``key``: remembered, awaited if being prefetched, or computed now."""
        future, mine = self._claim(key)
        if mine:
            with self._quiet:
                self._foreground += 1
            try:
                self._compute(key, future, compute)
            finally:
                with self._quiet:
                    self._foreground -= 1
                    self._quiet.notify_all()
        return future.result()

    def ahead(self, items: Sequence[tuple[Hashable, Callable[[], Any]]]) -> None:
        """Computes ``(key, compute)`` pairs in order in the background, skipping known keys."""
        with self._lock:
            self._generation += 1
            generation = self._generation

        def work() -> None:
            self._background.active = True
            for key, compute in items:
                self.pause()  # the student's setting first
                with self._lock:
                    if generation != self._generation:
                        return  # a newer call has other neighbours in mind
                future, mine = self._claim(key)
                if mine:
                    self._compute(key, future, compute)

        thread = threading.Thread(target=work, name="fl_helpers-prefetch", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self) -> None:
        """Blocks until the background threads have finished (for tests and timing)."""
        for thread in list(self._threads):
            thread.join()

    def stop(self) -> None:
        """Drops the settings not yet started and waits for the ones running."""
        with self._lock:
            self._generation += 1
        self.wait()

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key``'s result is known (computed, not merely started)."""
        with self._lock:
            future = self._futures.get(key)
        return future is not None and future.done() and future.exception() is None


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
    ``reproducible_rng=np.random.default_rng(seed)`` (same ``seed`` every time, so only the
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
        rng = np.random.default_rng(seed)  # reproducible picture, not a private release
        truth = np.full(num_samples, true_answer)
        if kind == "laplace":
            samples = privacy.laplace_mechanism(truth, reproducible_rng=rng, **kwargs)
        else:
            samples = privacy.gaussian_mechanism(truth, reproducible_rng=rng, **kwargs)
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
    panel = Explorer([epsilon_row, sensitivity_slider,
                      ipywidgets.HBox([mechanism_menu, delta_slider]), output],
                     controls={"epsilon": epsilon_slider, "sensitivity": sensitivity_slider,
                               "mechanism": mechanism_menu, "delta": delta_slider},
                     output=output)
    redraw()
    return panel


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
    panel = Explorer([rate_slider, batch_slider, epochs_slider, output],
                     controls={"client_learning_rate": rate_slider, "batch_size": batch_slider,
                               "local_epochs": epochs_slider}, output=output)
    redraw()
    return panel


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
                    client_learning_rate: float = 0.1, seed: int = 0) -> Explorer:
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

    runs = Prefetcher()

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
    panel = Explorer([epochs_slider, clients_slider, batch_slider, split_buttons, output],
                     controls={"local_epochs": epochs_slider, "clients_per_round": clients_slider,
                               "batch_size": batch_slider, "split": split_buttons},
                     output=output, prefetcher=runs)
    redraw()
    return panel


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
    target_epsilon = v.check_positive("target_epsilon", target_epsilon)
    if not 0.3 <= target_epsilon <= 10:
        raise ValueError(f"target_epsilon must be in [0.3, 10], got {target_epsilon}.")
    options = [m for m in DP_CLIENTS_PER_ROUND if m <= num_clients]
    if clients_per_round not in options:
        raise ValueError(f"clients_per_round must be one of {options}, got {clients_per_round!r}.")
    clipping_norm = v.check_positive("clipping_norm", clipping_norm)
    if not 0.05 <= clipping_norm <= 3.2:
        raise ValueError(f"clipping_norm must be in [0.05, 3.2], got {clipping_norm}.")
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
    runs = Prefetcher()
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
        clip = log_slider_value(clipping_slider)
        here = math.log10(log_slider_value(epsilon_slider))
        others = sorted(log_slider_positions(epsilon_slider),
                        key=lambda value: abs(math.log10(value) - here))
        return ([private_run(q, value, clip) for value in log_slider_neighbours(epsilon_slider)]
                + [accounting_for(q, value) for value in others])

    def redraw(_change=None) -> None:
        start = time.perf_counter()
        q = clients_slider.value / num_clients
        reference = runs.get(("non-private", q), lambda: run(sampling_probability=q))
        result = runs.get(*private_run(q, log_slider_value(epsilon_slider),
                                       log_slider_value(clipping_slider)))
        with panel.failures_shown():
            fig = Figure(figsize=(9.5, 3.2))
            axes = fig.subplots(1, 2)
            plotting.plot_accuracy_and_epsilon(
                {"non-private": reference.history, "DP-FedAvg": result.history},
                target_epsilon=epsilon_slider.value,
                styles={"non-private": {"color": "0.5", "ls": "--"}}, axes=axes)
            fig.tight_layout()
            panel.show(reporting.summary_line(result, baseline=reference), fig, started=start)
        runs.ahead(ahead(q))

    for control in (epsilon_slider, clients_slider, clipping_slider):
        control.observe(redraw, names="value")
    epsilon_row = ipywidgets.HBox([ipywidgets.Label("more privacy"), epsilon_slider,
                                ipywidgets.Label("less privacy")])
    panel = Explorer([epsilon_row, clients_slider, clipping_slider, output],
                     controls={"target_epsilon": epsilon_slider,
                               "clients_per_round": clients_slider,
                               "clipping_norm": clipping_slider}, output=output,
                     prefetcher=runs)
    redraw()
    return panel
