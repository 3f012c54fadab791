"""Notebook 08's DP-federation panel (fl_helpers.cross_silo_widget): summary, plot and redraw."""

from __future__ import annotations

import dataclasses

import pytest
import test_cross_silo

from fl_helpers import cross_silo

CFG = test_cross_silo.CFG
public_federation = test_cross_silo.public_federation  # the fixture: the shipped federation


def test_widget_summary_and_drawing(public_federation):
    federation = public_federation
    from matplotlib.figure import Figure

    from fl_helpers import cross_silo_widget

    config = dataclasses.replace(CFG, num_rounds=3)
    a = cross_silo_widget.dp_federation_summary(federation, config, noise_multiplier=2.0)
    b = cross_silo_widget.dp_federation_summary(federation, config, noise_multiplier=2.0)
    assert a == b  # reproducible noise: the same setting draws the same picture
    assert a["epsilon"] == [cross_silo.epsilon(dataclasses.replace(config, noise_multiplier=2.0),
                                               h.public_train_size, target_delta=1e-4)
                            for h in federation]
    assert "switzerland eps" in cross_silo_widget.summary_line(a)
    fig = cross_silo_widget.draw_dp_federation(a, reference_auc=[0.9] * 4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="noise_multiplier must be > 0"):
        cross_silo_widget.dp_federation_summary(federation, config, noise_multiplier=0.0)


def test_the_dp_federation_panel_redraws_in_one_message():
    """Notebook 08's panel replaces its summary and plot in one change of its output (no blank
    frame between the text and the plot), like every Try-it panel."""
    from fl_helpers import cross_silo_widget

    federation = cross_silo.load_federation(preprocessing="public")
    panel = cross_silo_widget.dp_federation_explorer(
        federation, cross_silo.TrainingConfig(num_rounds=2))
    changes = []
    panel.output.observe(lambda change: changes.append(change["new"]), names="outputs")
    panel.controls["noise_multiplier"].value = 4.0
    assert len(changes) == 1
    assert [o["output_type"] for o in changes[0]] == ["stream", "display_data"]
    assert changes[0][0]["text"].startswith("sigma = 4.00")
