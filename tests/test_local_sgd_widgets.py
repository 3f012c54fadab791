"""Notebook 02's Try-it panel (fl_helpers.local_sgd_widgets): the summary line and retraining."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import pytest

from fl_helpers import local_sgd_widgets


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


def _tiny_client():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.random((12, 28, 28), dtype=np.float32), rng.integers(0, 10, size=12)


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
