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


def test_privacy_statement_of_adaptive_clipping_states_its_settings_and_the_norms_reached():
    from fl_helpers import aggregation
    adaptive = aggregation.AdaptiveClipping(initial_clipping_norm=0.1, target_quantile=0.5,
                                            learning_rate=0.2)
    history = _history(adaptive_clipping=adaptive, clipping_norm=0.1, noise_multiplier=1.0,
                       update_noise_multiplier=1.0051, expected_clients=100.0,
                       clipping_norms=np.array([0.4, 1.1]), noise="exact")
    text = reporting.privacy_statement(history, num_clients=1000)
    assert "adaptive clipping" in text
    for part in ("initial C = 0.1", "γ = 0.5", "η = 0.2", "σ_b = 5 ", "z total = 1 ",
                 "z_Δ = 1.01", "C ended at 1.1", "median over the 2 rounds 0.75"):
        assert part in text, part
    assert "q = 0.1, C = 0.1" not in text  # C_0 is not quoted as the run's clipping norm
    # A fixed C is stated as before.
    assert "q = 0.1, C = 0.5," in reporting.privacy_statement(_history(), num_clients=1000)


def test_privacy_statement_of_dp_ftrl_names_unit_relation_assumption_accountant_and_parties():
    from fl_helpers import dp_ftrl
    history = training.DPFTRLHistory(
        rounds=np.array([1, 2, 3]), test_accuracy=np.zeros(0), test_loss=np.zeros(0),
        final_weights=[np.zeros(2, np.float32)], seconds_per_round=np.full(3, 0.1),
        engine=training.Engine.FAST, aggregation="DP-FTRL", epsilon=np.array([3.0, 4.0, 4.0]),
        noise_multiplier=2.0, clipping_norm=0.5, target_delta=1e-6,
        accountant=dp_ftrl.ACCOUNTANT, expected_clients=10.0, noise="exact", restart_every=3,
        clients_per_round=10.0, trees_per_client=1, schedule_rounds=3)
    text = reporting.privacy_statement(history, num_clients=30, examples_per_client=600)
    for part in ("Unit protected: one client", "~600 examples",
                 "replaced by zero vectors", "REPLACE_SPECIAL", "whether and when it took part",
                 "at most once per tree (a tree restarted every 3 rounds",
                 "No sampling", "(ε = 4.000, δ = 1e-06) after 3 rounds",
                 "SingleEpochTreeAggregationDpEvent", dp_ftrl.ACCOUNTANT, "z = 2 per tree node",
                 "public m = 10", "Observer: anyone who sees the 3 released global models",
                 "Trusted: the server that clips, sums and adds the tree's noise",
                 "Not covered: the participation schedule itself"):
        assert part in text, part
    assert "add or remove" not in text and "q = " not in text


def test_privacy_statement_of_a_real_dp_ftrl_run():
    import warnings

    from fl_helpers import dp_ftrl, models
    rng = np.random.default_rng(1)
    clients = [(rng.random((6, 28, 28)).astype(np.float32), rng.integers(0, 10, 6))
               for _ in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        history = dp_ftrl.run_dp_ftrl(
            models.make_softmax_regression, clients,
            schedule=dp_ftrl.cyclic_schedule(4, clients_per_round=2, num_rounds=2),
            clipping_norm=1.0, clients_per_round=2, restart_every=2, target_delta=1e-5,
            local_epochs=1, batch_size=3, client_learning_rate=0.1, noise_multiplier=1.0,
            progress=False, reproducible_noise=True)
    text = reporting.privacy_statement(history, num_clients=4)
    assert f"(ε = {history.epsilon[-1]:.3f}" in text and "THIS RUN used reproducible" in text
