"""The privacy statement of a DP-FedAvg run names its unit, relation, divisor and noise."""

from __future__ import annotations

import numpy as np
import pytest

from fl_helpers import reporting, training


def _history(**changes) -> training.DPHistory:
    fields = dict(rounds=np.array([1, 2]), test_accuracy=np.array([0.5, 0.6]),
                  test_loss=np.array([1.0, 0.9]), final_weights=[np.zeros(2, np.float32)],
                  seconds_per_round=np.array([0.1, 0.1]), engine=training.Engine.LOOP,
                  aggregation="DP-FedAvg", epsilon=np.array([1.0, 1.5]), noise_multiplier=1.5,
                  clipping_norm=0.5, sampling_probability=0.1, target_delta=1e-5,
                  accountant="pld", expected_clients=100.0)
    fields.update(changes)
    return training.DPHistory(**fields)


@pytest.mark.parametrize("noise", ["float", "exact"])
def test_privacy_statement_names_the_public_divisor_and_the_noise(noise):
    text = reporting.privacy_statement(_history(noise=noise), num_clients=1000)
    assert "add or remove one client from the 1,000 clients" in text
    assert "divided by the public q·N = 100" in text
    if noise == "exact":
        assert "Noise: exact." in text
    else:
        assert "Noise: float32 Gaussian" in text and "noise='exact'" in text
