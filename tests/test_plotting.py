"""Tests of fl_helpers.plotting (the data drawn, not the looks)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_helpers import plotting, training


def _history(accuracy):
    accuracy = np.asarray(accuracy, dtype=float)
    return training.History(
        rounds=np.arange(1, accuracy.size + 1), test_accuracy=accuracy,
        test_loss=np.zeros_like(accuracy), final_weights=[],
        seconds_per_round=np.ones_like(accuracy), engine=training.Engine.LOOP,
        aggregation="FedAvg")


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


def test_plot_accuracy_and_epsilon_skips_epsilon_of_non_private_runs():
    import types

    private = types.SimpleNamespace(rounds=np.arange(1, 4), test_accuracy=[0.5, 0.6, 0.7],
                                    epsilon=[0.8, 1.4, 2.0])
    plain = types.SimpleNamespace(rounds=np.arange(1, 4), test_accuracy=[0.6, 0.7, 0.8],
                                  epsilon=[np.inf] * 3)
    acc_ax, eps_ax = plotting.plot_accuracy_and_epsilon({"dp": private, "plain": plain},
                                                        target_epsilon=2.0)
    assert [line.get_label() for line in acc_ax.lines] == ["dp", "plain"]
    np.testing.assert_array_equal(acc_ax.lines[0].get_ydata(), [0.5, 0.6, 0.7])
    drawn = [line for line in eps_ax.lines if line.get_label() == "dp"]
    assert len(drawn) == 1 and list(drawn[0].get_ydata()) == [0.8, 1.4, 2.0]
    assert "plain" not in [line.get_label() for line in eps_ax.lines]
    assert any(line.get_label() == "budget ε = 2" for line in eps_ax.lines)
    plt.close("all")
    with pytest.raises(ValueError, match="no test accuracy"):
        plotting.plot_accuracy_and_epsilon({"x": types.SimpleNamespace(
            rounds=[], test_accuracy=[], epsilon=[])})


def test_plot_privacy_utility_draws_points_and_baseline():
    ax = plotting.plot_privacy_utility([0.5, 1, 2], [0.8, 0.85, 0.86], errors=[0.01] * 3,
                                       baseline=0.88)
    line = ax.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [0.5, 1, 2])
    np.testing.assert_array_equal(line.get_ydata(), [0.8, 0.85, 0.86])
    assert ax.get_xscale() == "log"
    assert any("non-private" in text.get_text() for text in ax.get_legend().get_texts())
    plt.close("all")
    with pytest.raises(ValueError, match="same length"):
        plotting.plot_privacy_utility([1, 2], [0.5])
    with pytest.raises(ValueError, match="finite and > 0"):
        plotting.plot_privacy_utility([1, np.inf], [0.5, 0.6])


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
