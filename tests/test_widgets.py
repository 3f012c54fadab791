"""Tests of the ``### Try it`` panels in fl_helpers.widgets, one block per panel."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import pytest

from fl_helpers import privacy, widgets

# --------------------------------------------------------------------------------------------
# Notebook 01: noise_explorer
# --------------------------------------------------------------------------------------------


def test_noise_summary_line_reports_expected_error():
    line = widgets.noise_summary_line(100.0, "laplace", sensitivity=2.0, epsilon=0.5)
    assert line == ("Laplace, epsilon = 0.5, sensitivity = 2: scale b = 4.00, expected |error| "
                    "= 4.00, 95% of answers in [88.0, 112.0]")
    line = widgets.noise_summary_line(100.0, "gaussian", sensitivity=1.0, epsilon=1.0,
                                      delta=1e-5)
    error = privacy.expected_absolute_error("gaussian", sensitivity=1.0, epsilon=1.0, delta=1e-5)
    assert f"expected |error| = {error:.2f}" in line and "sigma = 3.73" in line


def test_noise_explorer_controls_and_redraw(monkeypatch):
    calls = []
    monkeypatch.setattr(widgets, "noise_summary_line",
                        lambda *args, **kwargs: calls.append(kwargs) or "line")
    panel = widgets.noise_explorer(100.0, epsilon=1.0)
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


def test_noise_explorer_rejects_out_of_range_start():
    with pytest.raises(ValueError, match="epsilon must be in"):
        widgets.noise_explorer(0.0, epsilon=50.0)
    with pytest.raises(ValueError, match="mechanism must be one of"):
        widgets.noise_explorer(0.0, mechanism="exponential")


# --------------------------------------------------------------------------------------------
# Notebook 02: local_sgd_explorer
# --------------------------------------------------------------------------------------------


def _tiny_client():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.random((12, 28, 28), dtype=np.float32), rng.integers(0, 10, size=12)


def test_local_sgd_summary_line():
    import numpy as np

    from fl_helpers import federated

    curve = federated.LossCurve(steps=np.array([0, 10]), examples_seen=np.array([0, 40]),
                                loss=np.array([2.3, 0.5]), num_examples=20, final_weights=[],
                                diverged=False)
    assert widgets.local_sgd_summary_line(curve, test_accuracy=0.625) == (
        "10 steps over 2.0 epochs: training loss 2.300 -> 0.500, test accuracy 62.5%")
    curve.diverged = True
    curve.loss = np.array([2.3, np.nan])
    assert widgets.local_sgd_summary_line(curve).startswith("diverged: the loss became nan")


def test_local_sgd_explorer_retrains_with_the_chosen_settings(monkeypatch):
    from fl_helpers import federated, models

    calls = []
    original = federated.sgd_loss_curve

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(federated, "sgd_loss_curve", recording)
    summaries = []
    original_line = widgets.local_sgd_summary_line
    monkeypatch.setattr(widgets, "local_sgd_summary_line",
                        lambda *args, **kwargs: summaries.append((args, kwargs)) or "line")
    x, y = _tiny_client()
    panel = widgets.local_sgd_explorer(models.make_softmax_regression, x, y, test_data=(x, y),
                                       client_learning_rate=0.01, batch_size=10, local_epochs=2)
    controls = panel.controls
    assert isinstance(controls["learning_rate"], ipywidgets.FloatLogSlider)
    assert isinstance(controls["batch_size"], ipywidgets.SelectionSlider)
    assert calls[-1]["client_learning_rate"] == pytest.approx(0.01)
    assert (calls[-1]["batch_size"], calls[-1]["local_epochs"]) == (10, 2)
    controls["batch_size"].value = 0  # the "full" option
    assert calls[-1]["batch_size"] is None
    controls["epochs"].value = 3
    assert calls[-1]["local_epochs"] == 3
    controls["learning_rate"].value = 0.1
    assert calls[-1]["client_learning_rate"] == pytest.approx(0.1)
    line = original_line(*summaries[-1][0], **summaries[-1][1])
    assert "steps over 3.0 epochs" in line and "test accuracy" in line


def test_local_sgd_explorer_rejects_out_of_range_start():
    from fl_helpers import models

    x, y = _tiny_client()
    with pytest.raises(ValueError, match="batch_size must be one of"):
        widgets.local_sgd_explorer(models.make_softmax_regression, x, y, batch_size=7)
    with pytest.raises(ValueError, match="client_learning_rate must be in"):
        widgets.local_sgd_explorer(models.make_softmax_regression, x, y, client_learning_rate=5.0)
