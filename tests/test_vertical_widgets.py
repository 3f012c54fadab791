"""Notebook 09's label-DP widget: the plain functions it draws with, and one slider move."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from fl_helpers import split_learning, vertical, vertical_widgets


@pytest.fixture(scope="module")
def split_data():
    return split_learning.credit_split_data(vertical.credit_parties(seed=0))


def test_summary_is_reproducible_and_accounted(split_data):
    a = vertical_widgets.label_dp_summary(split_data, target_epsilon=2.0)
    b = vertical_widgets.label_dp_summary(split_data, target_epsilon=2.0)
    assert a["test_auc"] == b["test_auc"]
    for name in a["attacks"]:
        np.testing.assert_array_equal(a["attacks"][name], b["attacks"][name])
    # The accountant's epsilon for the noise multiplier it chose: at most the target.
    assert 1.9 < a["epsilon"] <= 2.0
    assert a["epsilon"] == pytest.approx(split_learning.label_dp_epsilon(
        noise_multiplier=a["noise_multiplier"], epochs=5, target_delta=1e-5))
    line = vertical_widgets.summary_line(a)
    assert line.startswith("epsilon = 2.00 (z = 4.81)") and "strongest attack AUC" in line


def test_more_budget_leaks_more(split_data):
    tight = vertical_widgets.label_dp_summary(split_data, target_epsilon=0.25)
    loose = vertical_widgets.label_dp_summary(split_data, target_epsilon=32.0)
    strongest = {name: max(vertical_widgets._strongest(values)
                           for values in summary["attacks"].values())
                 for name, summary in (("tight", tight), ("loose", loose))}
    assert strongest["tight"] < 0.62 < strongest["loose"]
    assert tight["test_auc"] < loose["test_auc"]


def test_draw_has_two_panels(split_data):
    summary = vertical_widgets.label_dp_summary(split_data, target_epsilon=8.0)
    fig = vertical_widgets.draw_label_dp(summary, bank_alone_auc=0.71, plain_auc=0.76)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "not private" in fig._suptitle.get_text()


def test_slider_move_redraws_once(split_data):
    panel = vertical_widgets.label_dp_explorer(split_data, target_epsilon=2.0)
    changes = []
    panel.output.observe(lambda change: changes.append(change["new"]), names="outputs")
    panel.controls["target_epsilon"].value = 8.0
    assert len(changes) == 1
    assert [o["output_type"] for o in changes[0]] == ["stream", "display_data"]
    assert changes[0][0]["text"].startswith("epsilon = ")


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"target_epsilon": 0.1}, ValueError, "target_epsilon"),
    ({"target_epsilon": 64.0}, ValueError, "target_epsilon"),
    ({"target_epsilon": "2"}, TypeError, "target_epsilon"),
    ({"target_epsilon": 2.0, "epochs": 0}, ValueError, "epochs"),
    ({"target_epsilon": 2.0, "target_delta": 1.0}, ValueError, "target_delta"),
    ({"target_epsilon": 2.0, "seed": -1}, ValueError, "seed"),
])
def test_bad_input_named(split_data, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        vertical_widgets.label_dp_summary(split_data, **kwargs)


def test_data_must_be_split_data():
    with pytest.raises(TypeError, match="data"):
        vertical_widgets.label_dp_summary({}, target_epsilon=2.0)
    summary = {"attacks": {"norm": np.array([0.5])}, "test_auc": 0.7, "epsilon": 1.0}
    with pytest.raises(ValueError, match="bank_alone_auc"):
        vertical_widgets.draw_label_dp(summary, bank_alone_auc=1.5)
