"""Tests of fl_helpers.plotting (the data drawn, not the looks)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_helpers import federated, plotting


def _history(accuracy):
    accuracy = np.asarray(accuracy, dtype=float)
    return federated.History(
        rounds=np.arange(1, accuracy.size + 1), test_accuracy=accuracy,
        test_loss=np.zeros_like(accuracy), final_weights=[],
        seconds_per_round=np.ones_like(accuracy), sampled_clients=np.zeros((accuracy.size, 1)),
        engine="loop")


def test_plot_accuracy_curves_draws_each_history_and_the_target():
    fig, ax = plt.subplots()
    as_object = _history([0.2, 0.5, 0.9])
    as_dict = {"rounds": [1, 2], "test_accuracy": [0.3, 0.4]}
    plotting.plot_accuracy_curves({"a": as_object, "b": as_dict}, target=0.97,
                                  styles={"b": {"color": "red"}}, ax=ax)
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["a"].get_ydata(), [0.2, 0.5, 0.9])
    np.testing.assert_array_equal(lines["b"].get_xdata(), [1, 2])
    assert lines["b"].get_color() == "red"
    np.testing.assert_array_equal(lines["target 97%"].get_ydata(), [0.97, 0.97])
    assert ax.get_xlabel() == "communication rounds"
    plt.close(fig)


def test_plot_accuracy_curves_rejects_runs_without_accuracy():
    with pytest.raises(ValueError, match="has no test accuracy"):
        plotting.plot_accuracy_curves({"run": _history([])})
    with pytest.raises(ValueError, match="as many rounds as accuracies"):
        plotting.plot_accuracy_curves({"run": {"rounds": [1, 2, 3], "test_accuracy": [0.5]}})
    plt.close("all")
