"""Notebook 04b's adaptive-clipping replay and its panel (fl_helpers.production_widgets)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from fl_helpers import aggregation, production_widgets

_RNG = np.random.default_rng(0)
#: 20 rounds of 100 log-normal norms around 1 whose median shrinks to about 0.5.
NORMS = [np.exp(_RNG.normal(np.log(1.0 - 0.025 * t), 0.4, 100)) for t in range(20)]


def test_noise_free_replay_is_the_rule_on_the_same_norms():
    """With sigma_b = 0 the replay's path is AdaptiveClipDPFedAvg's on updates of those norms."""
    replay = production_widgets.replay_adaptive_clipping(
        NORMS, count_stddev=0.0, expected_clients=100, initial_clipping_norm=0.3)
    rule = aggregation.AdaptiveClipDPFedAvg(
        clipping=aggregation.AdaptiveClipping(initial_clipping_norm=0.3), noise_multiplier=0.0,
        expected_clients=100)
    for t, norms in enumerate(NORMS):
        rule.aggregate([[np.array([n, 0.0])] for n in norms], np.ones(norms.size),
                       aggregation.RoundContext(round_index=t, num_clients=100, randomness=None))
    np.testing.assert_allclose(replay.clipping_norms, rule.clipping_norms, rtol=1e-12)
    np.testing.assert_allclose(replay.unclipped_fractions, rule.unclipped_fractions, rtol=1e-12)
    assert replay.final_clipping_norm == pytest.approx(rule.clipping_norm, rel=1e-12)


@pytest.mark.parametrize("gamma", [0.2, 0.5, 0.8])
def test_replay_settles_near_the_target_quantile(gamma):
    """Fixed norms, 200 rounds, default sigma_b = 5 of 100 clients: C ends within 15 % of the
    gamma-quantile (the count noise moves b_bar by about 0.05 a round, eta = 0.2)."""
    norms = [NORMS[0]] * 200
    replay = production_widgets.replay_adaptive_clipping(
        norms, target_quantile=gamma, count_stddev=5.0, expected_clients=100, seed=3)
    target = np.quantile(NORMS[0], gamma)
    assert abs(replay.final_clipping_norm / target - 1) < 0.15
    np.testing.assert_allclose(replay.target_norms, target)


def test_replay_is_reproducible_by_seed_and_noise_changes_it():
    args = dict(count_stddev=5.0, expected_clients=100)
    a = production_widgets.replay_adaptive_clipping(NORMS, seed=1, **args)
    b = production_widgets.replay_adaptive_clipping(NORMS, seed=1, **args)
    c = production_widgets.replay_adaptive_clipping(NORMS, seed=2, **args)
    np.testing.assert_array_equal(a.clipping_norms, b.clipping_norms)
    assert not np.array_equal(a.unclipped_fractions, c.unclipped_fractions)


def test_explorer_redraws_when_a_slider_moves():
    panel = production_widgets.adaptive_clipping_explorer(
        NORMS, expected_clients=100, sampling_probability=0.1, target_delta=1e-5)
    first = panel.output.outputs[0]["text"]
    assert first.startswith("γ = 0.5: C ends at") and "ε = 2 needs z =" in first
    assert "σ_b = 5 on the count" in first
    panel.controls["target_quantile"].value = 0.8
    second = panel.output.outputs[0]["text"]
    assert second.startswith("γ = 0.8: C ends at") and second != first
    panel.controls["target_epsilon"].value = 8.0
    assert "ε = 8 needs z =" in panel.output.outputs[0]["text"]
    assert any("image/png" in out.get("data", {}) for out in panel.output.outputs)


def test_summary_line_states_the_split():
    replay = production_widgets.Replay(np.array([0.1, 0.2]), np.array([0.5, 0.4]),
                                       np.array([0.0, 0.1]), 0.25)
    text = production_widgets.summary_line(replay, target_quantile=0.5, target_epsilon=2.0,
                                           noise_multiplier=1.632, update_noise_multiplier=1.655,
                                           count_stddev=5.0)
    assert text == ("γ = 0.5: C ends at 0.25 (the 0.5-quantile of the last round's norms is "
                    "0.4)\nε = 2 needs z = 1.632 in total: z_Δ = 1.655 on the updates, σ_b = 5 "
                    "on the count")


# ------------------------------------------------------------------ bad inputs, named

_BAD_NORMS = [None, "x", np.ones(3), [], [[]], [[-1.0]], [[np.nan]], [[[1.0]]], [["a"]]]
_BAD_POSITIVE = [None, "x", 0.0, -1.0, float("nan"), float("inf")]
_BAD_UNIT = [None, "x", 0.0, 1.0, -0.1, 1.5, float("nan")]

#: (function, valid keyword arguments, {argument: [bad values]}) for tests/test_bad_inputs.py.
FUZZ = [
    (production_widgets.replay_adaptive_clipping,
     {"update_norms": NORMS[:2], "count_stddev": 1.0, "expected_clients": 100},
     {"update_norms": _BAD_NORMS, "target_quantile": _BAD_UNIT,
      "learning_rate": _BAD_POSITIVE, "initial_clipping_norm": _BAD_POSITIVE,
      "count_stddev": [None, "x", -1.0, float("nan"), float("inf")],
      "expected_clients": _BAD_POSITIVE, "seed": [None, -1, 1.5, "0"]}),
    (production_widgets.summary_line,
     {"replay": production_widgets.Replay(np.ones(1), np.ones(1), np.ones(1), 1.0),
      "target_quantile": 0.5, "target_epsilon": 2.0, "noise_multiplier": 1.0,
      "update_noise_multiplier": 1.0, "count_stddev": 1.0},
     {"replay": [None, "x", 3], "target_quantile": _BAD_POSITIVE,
      "target_epsilon": _BAD_POSITIVE, "noise_multiplier": _BAD_POSITIVE,
      "update_noise_multiplier": _BAD_POSITIVE, "count_stddev": _BAD_POSITIVE}),
    (production_widgets.adaptive_clipping_explorer,
     {"update_norms": NORMS[:2], "expected_clients": 100, "sampling_probability": 0.1,
      "target_delta": 1e-5},
     {"update_norms": _BAD_NORMS, "expected_clients": _BAD_POSITIVE,
      "sampling_probability": [None, "x", 0.0, -0.1, 1.5, float("nan")],
      "target_delta": _BAD_UNIT,
      "target_quantile": [None, 0.55, "0.5", True], "learning_rate": [None, 0.3, "0.2"],
      "target_epsilon": [None, 3.0, "2"], "initial_clipping_norm": _BAD_POSITIVE}),
]


def test_fuzz_covers_every_public_function():
    public = {name for name, member in inspect.getmembers(production_widgets, inspect.isfunction)
              if not name.startswith("_") and member.__module__ == production_widgets.__name__}
    assert public == {f.__name__ for f, _, _ in FUZZ}
