"""Tests of the ``### Try it`` panels: fl_helpers.widgets and each notebook's panel module."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import pytest

from fl_helpers import (
    dp_experiment_widgets,
    fedavg_widgets,
    local_sgd_widgets,
    noise_widgets,
    privacy,
    widgets,
)

# --------------------------------------------------------------------------------------------
# Notebook 01: noise_explorer
# --------------------------------------------------------------------------------------------


def test_noise_summary_line_reports_expected_error():
    line = noise_widgets.noise_summary_line(100.0, "laplace", sensitivity=2.0, epsilon=0.5)
    assert line == ("Laplace, epsilon = 0.5, sensitivity = 2: scale b = 4.00, expected |error| "
                    "= 4.00, 95% of answers in [88.0, 112.0]")
    line = noise_widgets.noise_summary_line(100.0, "gaussian", sensitivity=1.0, epsilon=1.0,
                                      delta=1e-5)
    error = privacy.expected_absolute_error("gaussian", sensitivity=1.0, epsilon=1.0, delta=1e-5)
    # The sigma of the helper's discrete Gaussian (analytic continuous sigma: 3.73).
    sigma = privacy.noise_scale("gaussian", sensitivity=1.0, epsilon=1.0, delta=1e-5)
    assert f"expected |error| = {error:.2f}" in line and f"sigma = {sigma:.2f}" in line
    assert "sigma = 4.05" in line


def test_noisy_answer_plot_shows_the_neighbouring_dataset():
    import numpy as np
    from matplotlib.figure import Figure

    from fl_helpers import plotting

    ax = Figure().subplots()
    plotting.plot_noisy_answer_distribution(117.0, "laplace", sensitivity=1.0, epsilon=0.5,
                                            neighbour_answer=116.0, ax=ax)
    curves = {line.get_label(): line for line in ax.get_lines()}
    ours, neighbour = curves["Laplace density"], curves["neighbouring dataset (answer 116)"]
    x = ours.get_xdata()
    np.testing.assert_allclose(ours.get_ydata(), np.exp(-np.abs(x - 117.0) / 2.0) / 4.0)
    np.testing.assert_allclose(neighbour.get_ydata(), np.exp(-np.abs(x - 116.0) / 2.0) / 4.0)
    # Indistinguishability: the two densities never differ by more than e^epsilon.
    assert np.max(np.abs(np.log(ours.get_ydata() / neighbour.get_ydata()))) <= 0.5 + 1e-12


def test_noise_explorer_draws_reproducible_samples_and_the_neighbour(monkeypatch):
    from fl_helpers import plotting

    drawn = []
    monkeypatch.setattr(plotting, "plot_noisy_answer_distribution",
                        lambda *args, **kwargs: drawn.append(kwargs))
    panel = noise_widgets.noise_explorer(100.0, epsilon=1.0, neighbour_answer=99.0, num_samples=50)
    panel.controls["epsilon"].value = 0.1
    panel.controls["epsilon"].value = 1.0
    assert drawn[-1]["neighbour_answer"] == 99.0
    # Same seed, same picture after a round trip (the histogram's noise is reproducible).
    assert (drawn[0]["samples"] == drawn[-1]["samples"]).all()
    assert not (drawn[0]["samples"] == drawn[1]["samples"]).all()


def test_noise_explorer_controls_and_redraw(monkeypatch):
    calls = []
    monkeypatch.setattr(noise_widgets, "noise_summary_line",
                        lambda *args, **kwargs: calls.append(kwargs) or "line")
    panel = noise_widgets.noise_explorer(100.0, epsilon=1.0)
    controls = panel.controls
    slider = controls["epsilon"]
    assert isinstance(slider, ipywidgets.FloatLogSlider)
    assert (slider.base, slider.min, slider.max) == (10, -2, 1)  # 0.01 ... 10
    labels = [child.value for child in panel.children[0].children
              if isinstance(child, ipywidgets.Label)]
    assert labels == ["more privacy", "less privacy"]
    assert controls["delta"].disabled  # Laplace needs no delta
    assert calls[-1] == {"sensitivity": 1.0, "epsilon": 1.0}
    slider.value = 0.1
    assert calls[-1]["epsilon"] == pytest.approx(0.1)
    controls["mechanism"].value = "gaussian"
    assert not controls["delta"].disabled
    assert calls[-1]["delta"] == pytest.approx(1e-5)
    controls["sensitivity"].value = 3.0
    assert calls[-1]["sensitivity"] == 3.0


def _shown_text(panel) -> str:
    """The text a panel's output area shows (its stream outputs, joined)."""
    return "".join(o["text"] for o in panel.output.outputs if o["output_type"] == "stream")


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


def test_noise_explorer_rejects_out_of_range_start():
    with pytest.raises(ValueError, match="epsilon must be in"):
        noise_widgets.noise_explorer(0.0, epsilon=50.0)
    with pytest.raises(ValueError, match="mechanism must be one of"):
        noise_widgets.noise_explorer(0.0, mechanism="exponential")


# --------------------------------------------------------------------------------------------
# Notebook 02: local_sgd_explorer
# --------------------------------------------------------------------------------------------


def _tiny_client():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.random((12, 28, 28), dtype=np.float32), rng.integers(0, 10, size=12)


def test_local_sgd_summary_line():
    import numpy as np

    from fl_helpers import client

    curve = client.LossCurve(steps=np.array([0, 10]), examples_seen=np.array([0, 40]),
                                loss=np.array([2.3, 0.5]), num_examples=20, final_weights=[],
                                diverged=False)
    assert local_sgd_widgets.local_sgd_summary_line(curve, test_accuracy=0.625) == (
        "10 steps over 2.0 epochs: training loss 2.300 -> 0.500, test accuracy 62.5%")
    curve.diverged = True
    curve.loss = np.array([2.3, np.nan])
    assert local_sgd_widgets.local_sgd_summary_line(curve).startswith(
        "diverged: the loss became nan")


def test_local_sgd_explorer_retrains_with_the_chosen_settings(monkeypatch):
    from fl_helpers import client, models

    calls = []
    original = client.sgd_loss_curve

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "sgd_loss_curve", recording)
    summaries = []
    original_line = local_sgd_widgets.local_sgd_summary_line
    monkeypatch.setattr(local_sgd_widgets, "local_sgd_summary_line",
                        lambda *args, **kwargs: summaries.append((args, kwargs)) or "line")
    x, y = _tiny_client()
    panel = local_sgd_widgets.local_sgd_explorer(models.make_softmax_regression, x, y,
                                                 test_data=(x, y), client_learning_rate=0.01,
                                                 batch_size=10, local_epochs=2)
    controls = panel.controls
    assert isinstance(controls["client_learning_rate"], ipywidgets.FloatLogSlider)
    assert isinstance(controls["batch_size"], ipywidgets.SelectionSlider)
    assert calls[-1]["client_learning_rate"] == pytest.approx(0.01)
    assert (calls[-1]["batch_size"], calls[-1]["local_epochs"]) == (10, 2)
    controls["batch_size"].value = 0  # the "full" option
    assert calls[-1]["batch_size"] is None
    controls["local_epochs"].value = 3
    assert calls[-1]["local_epochs"] == 3
    controls["client_learning_rate"].value = 0.1
    assert calls[-1]["client_learning_rate"] == pytest.approx(0.1)
    line = original_line(*summaries[-1][0], **summaries[-1][1])
    assert "steps over 3.0 epochs" in line and "test accuracy" in line


def test_local_sgd_explorer_rejects_out_of_range_start():
    from fl_helpers import models

    x, y = _tiny_client()
    with pytest.raises(ValueError, match="batch_size must be one of"):
        local_sgd_widgets.local_sgd_explorer(models.make_softmax_regression, x, y, batch_size=7)
    with pytest.raises(ValueError, match="client_learning_rate must be in"):
        local_sgd_widgets.local_sgd_explorer(models.make_softmax_regression, x, y,
                                             client_learning_rate=5.0)


# --------------------------------------------------------------------------------------------
# Notebook 03: fedavg_explorer
# --------------------------------------------------------------------------------------------


def _fake_history(accuracy=(0.5, 0.8, 0.931), weights=None):
    import types

    import numpy as np

    weights = weights if weights is not None else [np.zeros((784, 10), np.float32),
                                                   np.zeros(10, np.float32)]
    return types.SimpleNamespace(rounds=np.arange(1, len(accuracy) + 1),
                                 test_accuracy=np.array(accuracy), final_weights=weights)


def test_fedavg_bytes_per_round_counts_down_and_up():
    from fl_helpers import aggregation, models

    weights = models.make_2nn(0).get_weights()
    assert aggregation.fedavg_bytes_per_round(weights, 10) == 2 * 10 * 199_210 * 4 == 15_936_800
    assert aggregation.fedavg_bytes_per_round(weights, 1) == 1_593_680
    with pytest.raises(ValueError, match="clients_per_round must be >= 1"):
        aggregation.fedavg_bytes_per_round(weights, 0)


def test_fedavg_summary_line():
    line = fedavg_widgets.fedavg_summary_line(_fake_history(), split="IID", num_clients=100,
                                       clients_per_round=10, local_epochs=1, batch_size=10)
    # Softmax regression: 7,850 float32 parameters, 2 * 10 * 7,850 * 4 bytes = 0.628 MB.
    assert line == ("IID, q = 0.1 (10 of 100 clients), E = 1, B = 10: test accuracy 93.1% "
                    "after 3 rounds; 0.6 MB per round (up + down)")
    line = fedavg_widgets.fedavg_summary_line(_fake_history(), split="non-IID", num_clients=100,
                                       clients_per_round=1, local_epochs=5, batch_size=None)
    assert "q = 0.01 (1 of 100 clients), E = 5, B = full" in line
    with pytest.raises(ValueError, match="no test accuracy"):
        fedavg_widgets.fedavg_summary_line(_fake_history(accuracy=()), split="IID", num_clients=10,
                                    clients_per_round=1, local_epochs=1, batch_size=10)


def test_fedavg_explorer_reruns_with_the_chosen_settings(monkeypatch):
    from fl_helpers import models, training

    calls = []

    def fake_run_fedavg(model_fn, clients, **kwargs):
        calls.append(dict(kwargs, clients=clients))
        return _fake_history()

    monkeypatch.setattr(training, "run_fedavg", fake_run_fedavg)
    summaries = []
    monkeypatch.setattr(fedavg_widgets, "fedavg_summary_line",
                        lambda history, **kwargs: summaries.append(kwargs) or "line")
    iid, noniid = [("iid", k) for k in range(20)], [("noniid", k) for k in range(20)]
    panel = fedavg_widgets.fedavg_explorer(models.make_2nn, {"IID": iid, "non-IID": noniid},
                                    ("x", "y"), num_rounds=3, client_learning_rate=0.05)
    controls = panel.controls
    assert isinstance(controls["local_epochs"], ipywidgets.IntSlider)
    assert isinstance(controls["clients_per_round"], ipywidgets.SelectionSlider)
    assert isinstance(controls["batch_size"], ipywidgets.SelectionSlider)
    # One training for the starting settings, reused for the first drawing; then E = 2, one
    # step of the E slider away, is trained ahead in the background.
    panel.prefetcher.wait()
    assert len(summaries) == 1
    assert [c["local_epochs"] for c in calls] == [1, 2]
    first = calls[0]
    assert first["clients"] is iid
    assert (first["num_rounds"], first["clients_per_round"], first["local_epochs"],
            first["batch_size"], first["client_learning_rate"]) == (3, 2, 1, 10, 0.05)
    assert first["test_data"] == ("x", "y") and first["progress"] is False
    controls["local_epochs"].value = 2  # prefetched: nothing is trained for the move itself
    assert summaries[-1]["local_epochs"] == 2
    panel.prefetcher.wait()
    assert sorted(c["local_epochs"] for c in calls) == [1, 2, 3]  # E = 1 is known, 3 is new
    controls["local_epochs"].value = 4
    panel.prefetcher.wait()
    assert summaries[-1]["local_epochs"] == 4
    assert sorted(c["local_epochs"] for c in calls) == [1, 2, 3, 4, 5]  # each trained once
    # q = 0.01 of 20 clients rounds to 0: at least 1 client.
    assert [m for _, m in controls["clients_per_round"].options] == [1, 2, 4, 10]
    controls["clients_per_round"].value = 1
    panel.prefetcher.wait()
    assert summaries[-1]["clients_per_round"] == 1
    assert {c["local_epochs"] for c in calls if c["clients_per_round"] == 1} == {3, 4, 5}
    controls["batch_size"].value = 0  # the "full" option
    assert summaries[-1]["batch_size"] is None
    controls["split"].value = "non-IID"
    panel.prefetcher.wait()
    assert summaries[-1]["split"] == "non-IID"
    assert {id(c["clients"]) for c in calls if c["batch_size"] is None} == {id(iid), id(noniid)}
    # Back to a setting seen before: nothing is trained again.
    before = len(calls)
    controls["split"].value = "IID"
    panel.prefetcher.wait()
    assert len(calls) == before and summaries[-1]["split"] == "IID"


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


def test_fedavg_explorer_rejects_bad_start():
    from fl_helpers import models

    splits = {"IID": [None] * 10}
    with pytest.raises(ValueError, match="clients_per_round must be one of"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, clients_per_round=3)
    with pytest.raises(ValueError, match="batch_size must be one of"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, batch_size=7)
    with pytest.raises(ValueError, match="local_epochs must be <= 5"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, local_epochs=6)
    with pytest.raises(ValueError, match="split must be one of"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, split="shards")
    with pytest.raises(ValueError, match="same number of clients"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, {"a": [None] * 10, "b": [None] * 5}, None)


# --------------------------------------------------------------------------------------------
# Notebook 04: dp_experiment_explorer
# --------------------------------------------------------------------------------------------


def _fake_accounting(monkeypatch, accounted=None):
    """Replaces the accountant calls the epsilon panel makes ahead of moves with quick fakes."""
    from fl_helpers import accounting, experiment

    def calibrate(**kwargs):
        if accounted is not None:
            accounted.append(kwargs["target_epsilon"])
        return 1.0

    monkeypatch.setattr(experiment, "noise_multiplier_for_budget", calibrate)
    monkeypatch.setattr(accounting, "epsilon_per_round", lambda **kwargs: None)


def _fake_experiment(calls):
    """Stands in for experiment.run_experiment: records its arguments, returns a small result."""
    import types

    import numpy as np

    from fl_helpers import experiment

    def run(clients, test_data, **kwargs):
        calls.append(kwargs)
        eps = kwargs.get("target_epsilon")
        rounds = np.arange(1, kwargs["num_rounds"] + 1)
        history = types.SimpleNamespace(
            rounds=rounds, test_accuracy=np.linspace(0.5, 0.9 if eps is None else 0.8, rounds.size),
            epsilon=np.zeros(0) if eps is None else np.linspace(eps / 2, eps, rounds.size))
        config = {"privacy": experiment.Privacy.NON_PRIVATE if eps is None
                  else experiment.Privacy.CENTRAL_DP,
                  "sampling_probability": kwargs["sampling_probability"], "target_epsilon": eps,
                  "noise_multiplier": 0.0 if eps is None else 1.0 / eps,
                  "clipping_norm": kwargs.get("clipping_norm"),
                  "target_delta": kwargs["target_delta"], "num_rounds": kwargs["num_rounds"]}
        return experiment.ExperimentResult(config=config, history=history,
                                           accountant_seconds=0.0, total_seconds=0.1)

    return run


def test_dp_experiment_explorer_controls_and_redraw(monkeypatch):
    from fl_helpers import experiment

    calls, accounted = [], []
    monkeypatch.setattr(experiment, "run_experiment", _fake_experiment(calls))
    _fake_accounting(monkeypatch, accounted)
    clients = [None] * 500
    panel = dp_experiment_widgets.dp_experiment_explorer(clients, ("x", "y"), target_epsilon=2.0,
                                           clients_per_round=100, clipping_norm=0.5,
                                           num_rounds=4, local_epochs=2)
    controls = panel.controls
    slider = controls["target_epsilon"]
    assert isinstance(slider, ipywidgets.FloatLogSlider)
    assert (slider.base, slider.min, slider.max) == (10, -0.5, 1)
    labels = [child.value for child in panel.children[0].children
              if isinstance(child, ipywidgets.Label)]
    assert labels == ["more privacy", "less privacy"]
    assert controls["clients_per_round"].options == (10, 20, 50, 100, 200)
    # The baseline (no epsilon) and the private run, both with q = 100 / 500 (then, in the
    # background, the neighbours checked below).
    assert [c.get("target_epsilon") for c in calls[:2]] == [None, 2.0]
    assert all(c["sampling_probability"] == 0.2 and c["local_epochs"] == 2 for c in calls)
    first = _shown_text(panel)
    assert "target ε = 2" in first and "(non-private 90.0%)" in first
    # The panel's latency is measured for the tests, never printed into a stored output.
    assert "responded in" not in first and not re.search(r"\d\.\d s\b", first)
    # Ahead of a move, the private runs one step of the epsilon slider away (2.0 lies between
    # its positions 10 ** 0.3 and 10 ** 0.4).
    panel.prefetcher.wait()
    assert sorted(c.get("target_epsilon") or 0 for c in calls) == pytest.approx(
        [0, 10 ** 0.3, 2.0, 10 ** 0.4])
    # ... then the accounting of every position of the slider, nearest first (data-free).
    assert sorted(accounted) == pytest.approx([10 ** (k / 10) for k in range(-5, 11)])
    assert accounted[:2] == pytest.approx([10 ** 0.3, 10 ** 0.4])
    slider.value = 1.0
    panel.prefetcher.wait()
    assert "target ε = 1" in _shown_text(panel)
    private = [c for c in calls if c.get("target_epsilon") is not None]
    assert sum(c["target_epsilon"] == pytest.approx(1.0) for c in private) == 1
    assert sum(c.get("target_epsilon") is None for c in calls) == 1  # baseline kept
    controls["clipping_norm"].value = 1.0
    panel.prefetcher.wait()
    assert any(c.get("clipping_norm") == pytest.approx(1.0)
               and c.get("target_epsilon") == pytest.approx(1.0) for c in calls)
    controls["clients_per_round"].value = 50  # a new q: a new baseline, then the private run
    panel.prefetcher.wait()
    assert sum(c.get("target_epsilon") is None and c["sampling_probability"] == 0.1
               for c in calls) == 1
    assert any(c["sampling_probability"] == 0.1 and c.get("target_epsilon") == pytest.approx(1.0)
               for c in calls)
    assert panel.last_seconds >= 0
    # Back to a setting seen before: its remembered run is shown again, nothing is retrained
    # (each private run drew secret noise, so a retrain would show a different run).
    before = len(calls)
    controls["clients_per_round"].value = 100
    panel.prefetcher.wait()
    assert len(calls) == before


def test_dp_experiment_explorer_reuses_a_given_baseline_and_rejects_bad_start(monkeypatch):
    from fl_helpers import experiment

    calls = []
    fake = _fake_experiment(calls)
    monkeypatch.setattr(experiment, "run_experiment", fake)
    _fake_accounting(monkeypatch)
    baseline = fake(None, None, num_rounds=3, sampling_probability=0.1, target_delta=1e-5)
    calls.clear()
    panel = dp_experiment_widgets.dp_experiment_explorer([None] * 1000, None, num_rounds=3,
                                                         baseline=baseline)
    panel.prefetcher.wait()
    assert all(c.get("target_epsilon") for c in calls)  # only private runs: no new baseline
    assert calls[0]["target_epsilon"] == 2.0
    with pytest.raises(ValueError, match="target_epsilon must be in"):
        dp_experiment_widgets.dp_experiment_explorer([None] * 1000, None, target_epsilon=20.0)
    with pytest.raises(ValueError, match="clients_per_round must be one of"):
        dp_experiment_widgets.dp_experiment_explorer([None] * 30, None, clients_per_round=50)
    with pytest.raises(ValueError, match="clipping_norm must be in"):
        dp_experiment_widgets.dp_experiment_explorer([None] * 1000, None, clipping_norm=10.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        dp_experiment_widgets.dp_experiment_explorer([None] * 1000, None, epochs=3)


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


def test_the_panels_of_notebooks_01_to_04_keep_their_old_names_without_an_import_cycle():
    # Notebooks 01-04 call widgets.noise_explorer etc.; the panels live in their own modules.
    import subprocess
    import sys

    code = ("import sys; from fl_helpers import widgets; "
            "print(any(m.endswith('_widgets') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"  # importing the base imports no panel
    for name, module in widgets._PANEL_MODULES.items():
        panel_module = sys.modules.get(f"fl_helpers.{module}") or __import__(
            f"fl_helpers.{module}", fromlist=[name])
        assert getattr(widgets, name) is getattr(panel_module, name)
    with pytest.raises(AttributeError, match="no attribute 'no_such_panel'"):
        widgets.no_such_panel  # noqa: B018
