"""Notebook 05's Try-it panel (fl_helpers.attack_widgets): gradient inversion as DP noise grows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import test_attacks

from fl_helpers import quiet

quiet.import_tensorflow()

from fl_helpers import attack_widgets, attacks

mnist = test_attacks.mnist  # the fixtures: 2,000 MNIST images and the 2NN's weights
two_nn = test_attacks.two_nn


def test_noisy_inversion_from_exact_to_unrecognisable(mnist, two_nn):
    x, y = mnist
    w, act = two_nn
    update = [-0.1 * g for g in attacks.gradient(w, act, x[:1], y[:1])]
    exact = attack_widgets.noisy_inversion(update, x[0], clipping_norm=0.1, noise_multiplier=0)
    assert exact.ssim > 0.9999 and exact.update_norm > 0.1
    lost = attack_widgets.noisy_inversion(update, x[0], clipping_norm=0.1, noise_multiplier=0.3)
    assert lost.ssim < 0.3
    again = attack_widgets.noisy_inversion(update, x[0], clipping_norm=0.1,
                                           noise_multiplier=0.3)
    np.testing.assert_array_equal(lost.reconstruction, again.reconstruction)
    line = attack_widgets.inversion_summary_line(lost, clipping_norm=0.1, noise_multiplier=0.3)
    assert "clipped" in line and "SSIM" in line


def test_inversion_explorer_redraws(mnist, two_nn, monkeypatch):
    x, y = mnist
    w, act = two_nn
    update = [-0.1 * g for g in attacks.gradient(w, act, x[:1], y[:1])]
    calls = []
    real = attack_widgets.noisy_inversion

    def recording(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append((kwargs, result.ssim))
        return result

    monkeypatch.setattr(attack_widgets, "noisy_inversion", recording)
    panel = attack_widgets.inversion_explorer(update, x[0], noise_multiplier=0.001)
    assert set(panel.controls) == {"noise_multiplier", "clipping_norm"}
    assert math.isfinite(panel.last_seconds)
    assert calls[-1][0]["noise_multiplier"] == pytest.approx(0.001)
    panel.controls["noise_multiplier"].value = 0.1
    assert calls[-1][0]["noise_multiplier"] == pytest.approx(0.1)
    assert calls[-1][1] < calls[0][1]
    panel.controls["clipping_norm"].value = 1.0
    assert calls[-1][0]["clipping_norm"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="noise_multiplier must be in"):
        attack_widgets.inversion_explorer(update, x[0], noise_multiplier=5.0)
