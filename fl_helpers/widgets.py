"""The shared base of the notebooks' interactive ``### Try it`` panels (ipywidgets).

Each notebook's panel lives in a module of its own (``noise_widgets`` for notebook 01,
``local_sgd_widgets`` 02, ``fedavg_widgets`` 03, ``dp_experiment_widgets`` 04, ``attack_widgets``
05, ``robust_widgets`` 07, ...); this module holds what they share: :class:`Explorer`, the
figure output, the log-slider helpers and the :class:`Prefetcher`.

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
        accounting and drawing the figure) in :attr:`last_seconds`, for the tests; it is not
        printed, because a latency stored in a notebook's output only says how busy the machine
        that ran it was.

        Args:
            text: The summary printed above the plot.
            fig: The plot, or ``None`` for text only.
            started: ``time.perf_counter()`` when the redraw began, or ``None``.
        """
        outputs = [_stream_output(text)]
        if fig is not None:
            outputs.append(figure_output(fig))
        self.output.outputs = tuple(outputs)
        if started is not None:
            self.last_seconds = time.perf_counter() - started

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
