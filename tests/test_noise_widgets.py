"""Notebook 01's Try-it panel (fl_helpers.noise_widgets): the summary line, samples, controls."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import pytest

from fl_helpers import noise_widgets, privacy


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


def test_noise_explorer_rejects_out_of_range_start():
    with pytest.raises(ValueError, match="epsilon must be in"):
        noise_widgets.noise_explorer(0.0, epsilon=50.0)
    with pytest.raises(ValueError, match="mechanism must be one of"):
        noise_widgets.noise_explorer(0.0, mechanism="exponential")
