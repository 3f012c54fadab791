"""Tests of the ``### Try it`` panels' shared base (fl_helpers.widgets): one redraw message, errors
in place of the plot, the prefetcher, log sliders, imports. Each notebook's panel module has its
own file (tests/test_noise_widgets.py, tests/test_fedavg_widgets.py, ...)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import pytest

from fl_helpers import noise_widgets, widgets

# --------------------------------------------------------------------------------------------
# A redraw (on notebook 01's panel)
# --------------------------------------------------------------------------------------------


def test_a_redraw_replaces_text_and_plot_in_one_message(monkeypatch):
    """Printing, then displaying the figure, sends two messages: in between, the browser shows
    the new text and no plot (a blank flash). A redraw sets the output's whole content at once:
    one change of ``outputs``, holding the text and a PNG that is not blank."""
    panel = noise_widgets.noise_explorer(100.0, epsilon=1.0)
    changes = []
    panel.output.observe(lambda change: changes.append(change["new"]), names="outputs")
    panel.controls["epsilon"].value = 0.1
    assert len(changes) == 1
    kinds = [o["output_type"] for o in changes[0]]
    assert kinds == ["stream", "display_data"]
    assert "epsilon = 0.1" in changes[0][0]["text"]
    import base64
    import io

    import matplotlib.image
    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(
        changes[0][1]["data"]["image/png"])), format="png")
    assert pixels.shape[0] > 100 and pixels.std() > 0.05  # a drawn plot, not a blank canvas


def test_a_failed_redraw_shows_its_error_in_place_of_the_plot(monkeypatch):
    panel = noise_widgets.noise_explorer(100.0, epsilon=1.0)

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(noise_widgets.plotting, "plot_noisy_answer_distribution", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):  # outside IPython it propagates
        panel.controls["epsilon"].value = 0.1
    assert panel.output.outputs == ()  # the stale plot is gone


# --------------------------------------------------------------------------------------------
# Notebook 03: fedavg_explorer
# --------------------------------------------------------------------------------------------


def test_prefetcher_computes_once_waits_and_forgets_errors():
    import threading

    computed = []
    release, started = threading.Event(), threading.Event()

    def slow(value):
        def compute():
            started.set()
            release.wait(5)
            computed.append(value)
            return value
        return compute

    ahead = widgets.Prefetcher()
    ahead.ahead([("a", slow("a")), ("b", slow("b"))])
    started.wait(5)  # the background thread holds "a" now
    assert "a" not in ahead
    release.set()
    assert ahead.get("a", lambda: pytest.fail("'a' is being prefetched")) == "a"
    ahead.wait()
    assert ahead.get("b", lambda: pytest.fail("'b' was prefetched")) == "b"
    assert computed == ["a", "b"] and "b" in ahead

    def broken():
        raise ValueError("no such setting")

    with pytest.raises(ValueError, match="no such setting"):
        ahead.get("c", broken)
    assert "c" not in ahead
    assert ahead.get("c", lambda: "fixed") == "fixed"
    ahead.ahead([("d", broken)])
    ahead.wait()
    assert "d" not in ahead  # a failed prefetch is forgotten, and raised to whoever asks
    with pytest.raises(ValueError, match="no such setting"):
        ahead.get("d", broken)


def _held_computation(computed: list):
    """A computation that starts, then waits for ``release`` before recording "first"."""
    import threading

    started, release = threading.Event(), threading.Event()

    def first():
        started.set()
        release.wait(5)
        computed.append("first")

    return first, started, release


def test_prefetcher_drops_neighbours_a_newer_move_made_stale():
    computed = []
    first, started, release = _held_computation(computed)
    ahead = widgets.Prefetcher()
    ahead.ahead([("first", first), ("stale", lambda: computed.append("stale"))])
    started.wait(5)
    ahead.ahead([("new", lambda: computed.append("new"))])
    release.set()
    ahead.wait()
    assert sorted(computed) == ["first", "new"]


def test_prefetcher_background_gives_way_while_the_foreground_computes():
    import threading
    import time

    ahead = widgets.Prefetcher()
    steps, running = [], threading.Event()

    def background():  # a prefetched run that calls pause() once a "round"
        for i in range(200):
            ahead.pause()
            steps.append(i)
            running.set()
            time.sleep(0.001)
        return "ahead"

    def foreground():  # the student's setting, computed on the caller's thread
        at_start = len(steps)
        time.sleep(0.3)  # long enough for the background to take 100+ steps if it did not wait
        return len(steps) - at_start

    ahead.ahead([("ahead", background)])
    running.wait(5)
    assert ahead.get("on screen", foreground) <= 1  # at most the step already past pause()
    ahead.pause()  # on the caller's thread: returns at once
    ahead.wait()
    assert steps == list(range(200)) and ahead.get("ahead", lambda: None) == "ahead"


# --------------------------------------------------------------------------------------------
# Notebook 04: dp_experiment_explorer
# --------------------------------------------------------------------------------------------


def test_log_slider_neighbours_snap_to_the_sliders_positions():
    slider = ipywidgets.FloatLogSlider(value=1.0, base=10, min=-0.5, max=1, step=0.1)
    assert widgets.log_slider_neighbours(slider) == pytest.approx([10 ** 0.1, 10 ** -0.1])
    slider.value = 2.0  # between the positions 10 ** 0.3 and 10 ** 0.4
    assert widgets.log_slider_neighbours(slider) == pytest.approx([10 ** 0.4, 10 ** 0.3])
    slider.value = 10.0  # the top: only the step down
    assert widgets.log_slider_neighbours(slider) == pytest.approx([10 ** 0.9])
    slider.value = 10 ** -0.5
    assert widgets.log_slider_neighbours(slider) == pytest.approx([10 ** -0.4])


def test_prefetcher_stop_drops_what_has_not_started():
    import threading

    computed = []
    first, started, release = _held_computation(computed)
    ahead = widgets.Prefetcher()
    ahead.ahead([("first", first), ("second", lambda: computed.append("second"))])
    started.wait(5)
    threading.Timer(0.2, release.set).start()
    ahead.stop()  # what interpreter exit calls: the running one finishes, the rest is dropped
    assert computed == ["first"] and "second" not in ahead


def test_log_slider_value_snaps_to_the_positions_floats():
    slider = ipywidgets.FloatLogSlider(value=10 ** 0.6000000000000001, base=10, min=-0.5, max=1,
                                       step=0.1)
    positions = widgets.log_slider_positions(slider)
    assert len(positions) == 16 and positions[11] == 10 ** 0.6
    assert widgets.log_slider_value(slider) == 10 ** 0.6  # the same float as the position
    slider.value = 2.0  # off the grid: kept
    assert widgets.log_slider_value(slider) == 2.0


def test_importing_the_widgets_has_no_side_effect():
    # The exit hook that lets prefetching threads finish is registered by the first
    # Prefetcher, not by the import (issue 25: no side effects at import).
    import subprocess
    import sys

    code = ("import atexit, unittest.mock as m\n"
            "with m.patch.object(atexit, 'register') as r:\n"
            "    import fl_helpers.widgets as w\n"
            "    mine = (w._finish_prefetching,)\n"
            "    ours = lambda: [c for c in r.call_args_list if c.args == mine]\n"
            "    assert not ours(), r.call_args_list\n"
            "    a = w.Prefetcher()\n"
            "    assert len(ours()) == 1\n"
            "    b = w.Prefetcher()\n"
            "    assert len(ours()) == 1  # not again while one lives\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_importing_the_base_imports_no_panel_and_the_panels_have_one_name():
    # Each panel lives in its notebook's module only (notebooks 01-04 import them directly).
    import subprocess
    import sys

    code = ("import sys; from fl_helpers import widgets; "
            "print(any(m.endswith('_widgets') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"  # importing the base imports no panel
    for name in ("noise_explorer", "local_sgd_explorer", "fedavg_explorer",
                 "dp_experiment_explorer"):
        assert not hasattr(widgets, name), f"widgets.{name} is a second name for a panel"
