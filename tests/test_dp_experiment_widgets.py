"""Notebook 04's Try-it panel (fl_helpers.dp_experiment_widgets): controls, redraw, its baseline."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import pytest

from fl_helpers import dp_experiment_widgets


def _shown_text(panel) -> str:
    """The text a panel's output area shows (its stream outputs, joined)."""
    return "".join(o["text"] for o in panel.output.outputs if o["output_type"] == "stream")


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
