"""The experiment module (the command line is tested in tests/test_cli.py).

DP-FedAvg's own properties (z = 0 and a huge C is FedAvg, clipped norms <= C, noise std z*C on
the sum, secret noise, epsilon from the accountant) are tested on
:func:`fl_helpers.training.run_dp_fedavg` in ``tests/test_dp_fedavg.py``. Here: what this module
adds on top -- the budget calibration (the epsilon reported is the accountant's for the run's
q, the calibrated z and the rounds), the non-private mode, local DP (noise std z*C*sqrt(m) on the
sum of m clients, and its calibration on the run's own schedule), reproducibility, JSON output.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fl_helpers import (
    accounting,
    aggregation,
    data,
    experiment,
    models,
    reporting,
    schedule,
    training,
)


@pytest.fixture(scope="module")
def small():
    """24 IID clients of 50 examples and 1,000 test images: a run of a few rounds takes ~1 s."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    parts = data.partition_iid(1200, 24, rng=np.random.default_rng(0))
    return data.client_datasets(x_train[:1200], y_train[:1200], parts), (x_test[:1000],
                                                                       y_test[:1000])


def _run(small, **kwargs):
    clients, test = small
    args = dict(num_rounds=3, sampling_probability=0.25, seed=3, clipping_norm=0.5)
    args.update(kwargs)
    if args.get("target_epsilon") is not None or args.get("noise_multiplier") is not None:
        args.setdefault("expected_clients", args["sampling_probability"] * len(clients))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return experiment.run_experiment(clients, test, **args)


# --------------------------------------------------------------------------------------------
# run_experiment
# --------------------------------------------------------------------------------------------


def test_budget_is_calibrated_and_reported_epsilon_is_the_accountants(small):
    result = _run(small, target_epsilon=3.0, target_delta=1e-5)
    z = result.config["noise_multiplier"]
    # Exact noise (the default): calibrated and accounted by the discrete accountant.
    assert result.history.noise == "exact" and result.history.accountant == "discrete"
    assert z == accounting.noise_multiplier_for_epsilon(
        target_epsilon=3.0, target_delta=1e-5, sampling_probability=0.25, num_rounds=3,
        accountant="discrete")
    expected = accounting.epsilon_per_round(noise_multiplier=z, sampling_probability=0.25,
                                            num_rounds=3, target_delta=1e-5,
                                            accountant="discrete")
    np.testing.assert_allclose(result.history.epsilon, expected, rtol=1e-12)
    assert result.rounds_trained == 3 and result.history.stopped_early is None
    assert result.epsilon_spent <= 3.0  # the whole budget, never more
    assert result.epsilon_spent == pytest.approx(3.0, rel=1e-3)
    assert result.privacy is experiment.Privacy.CENTRAL_DP
    assert result.config["clipping_norm"] == 0.5


def test_given_noise_multiplier_reports_the_accountants_epsilon(small):
    result = _run(small, noise_multiplier=1.3, target_delta=1e-6)
    expected = accounting.dp_fedavg_epsilon(noise_multiplier=1.3, sampling_probability=0.25,
                                            num_rounds=3, target_delta=1e-6,
                                            accountant="discrete")
    assert result.epsilon_spent == pytest.approx(expected, rel=1e-12)
    floating = _run(small, noise_multiplier=1.3, target_delta=1e-6, noise="float")
    assert floating.epsilon_spent == pytest.approx(accounting.dp_fedavg_epsilon(
        noise_multiplier=1.3, sampling_probability=0.25, num_rounds=3, target_delta=1e-6,
        accountant="pld"), rel=1e-12)


def test_exact_noise_refuses_an_accountant_that_does_not_bound_it(small):
    for name in ("pld", "rdp"):
        with pytest.raises(ValueError, match=f"accountant='{name}' accounts the continuous"):
            _run(small, noise_multiplier=1.3, accountant=name)
    assert _run(small, noise_multiplier=1.3, accountant="discrete").history.accountant \
        == "discrete"


def test_float_noise_warns_that_it_is_not_private(small):
    with pytest.warns(aggregation.FloatNoiseWarning, match="NOT differentially private"):
        experiment.run_experiment(*small, num_rounds=1, sampling_probability=0.25,
                                  noise_multiplier=1.0, noise="float",
                                  expected_clients=0.25 * len(small[0]))


def test_non_private_run_neither_clips_nor_noises(small):
    # Behaviour, not configuration: the non-private run equals DP-FedAvg's loop with z = 0 and
    # no clipping on the same schedule, and no update was shortened.
    clients, test = small
    result = _run(small, clipping_norm=1e-3, diagnostics=True)  # 1e-3 would clip everything
    h = result.history
    assert result.privacy is experiment.Privacy.NON_PRIVATE
    for before, after in zip(h.diagnostics.update_norms, h.diagnostics.clipped_update_norms,
                             strict=True):
        np.testing.assert_array_equal(after, before)
    assert np.concatenate(h.diagnostics.update_norms).min() > 1e-3
    same = training.run_dp_fedavg(
        lambda: models.make_softmax_regression(seed=3), clients, num_rounds=3,
        sampling_probability=0.25, local_epochs=1, batch_size=10, client_learning_rate=0.1,
        clipping_norm=1e30,
        noise_multiplier=0.0, seed=3, progress=False, test_data=test,
        randomness=schedule.PrivateRandomness.reproducible(3, warn=False),
        expected_clients=0.25 * len(clients))
    for a, b in zip(h.final_weights, same.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert math.isinf(result.epsilon_spent)
    assert reporting.to_json(result)["summary"]["epsilon_spent"] is None  # strict JSON, no inf


def test_same_seed_same_result_only_with_reproducible_noise(small):
    kwargs = dict(target_epsilon=4.0,
                  randomness=schedule.PrivateRandomness.reproducible(3, warn=False))
    first, again = _run(small, **kwargs), _run(small, **kwargs)
    for a, b in zip(first.history.final_weights, again.history.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert reporting.to_json(first)["summary"]["warning"] == reporting.REPRODUCIBLE_WARNING
    assert "not private" in reporting.summary_line(first)
    secret = [_run(small, target_epsilon=4.0) for _ in range(2)]
    assert not np.array_equal(secret[0].history.final_weights[0],
                              secret[1].history.final_weights[0])
    assert "warning" not in reporting.to_json(secret[0])["summary"]
    # The non-private baseline is reproducible (nothing secret to protect) and says nothing.
    base = [_run(small), _run(small)]
    np.testing.assert_array_equal(base[0].history.final_weights[0],
                                  base[1].history.final_weights[0])


def test_json_has_no_per_client_figures_unless_asked(small):
    plain = reporting.to_json(_run(small, noise_multiplier=1.0))
    assert "diagnostics_not_covered_by_epsilon" not in plain
    assert set(plain["rounds"][0]) == {"round", "epsilon", "test_accuracy", "test_loss"}
    asked = reporting.to_json(_run(small, noise_multiplier=1.0, diagnostics=True))
    assert len(asked["diagnostics_not_covered_by_epsilon"]["num_sampled"]) == 3


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(target_epsilon=1.0, noise_multiplier=1.0), "not both"),
        (dict(model="resnet"), "model must be one of"),
        (dict(noise_placement="nowhere"), "noise_placement must be"),
        (dict(noise_placement="local"), "needs target_epsilon or noise_multiplier"),
        (dict(target_epsilon=-1.0), "target_epsilon must be > 0"),
        (dict(target_delta=1.0), "target_delta must be in"),
        (dict(sampling_probability=0.0), "sampling_probability must be in"),
    ],
)
def test_run_experiment_rejects_bad_arguments(small, change, match):
    with pytest.raises(ValueError, match=match):
        _run(small, **change)


# --------------------------------------------------------------------------------------------
# Local DP
# --------------------------------------------------------------------------------------------


def test_local_noise_multiplier_is_twice_the_gaussians_for_the_busiest_client():
    z = accounting.local_noise_multiplier(target_epsilon=2.0, target_delta=1e-5,
                                          busiest_reports=5)
    z_gaussian = accounting.noise_multiplier_for_epsilon(
        target_epsilon=2.0, target_delta=1e-5, sampling_probability=1.0, num_rounds=5,
        accountant="discrete")  # the default, as exact noise is
    assert z == pytest.approx(2 * z_gaussian, rel=1e-12)
    # Each report of the busiest client: Gaussian with std z*C, sensitivity 2C, composed.
    spent = accounting.dp_fedavg_epsilon(noise_multiplier=z / 2, sampling_probability=1.0,
                                         num_rounds=5, target_delta=1e-5, accountant="discrete")
    assert spent <= 2.0


def test_local_noise_on_the_sum_has_std_z_c_sqrt_m(small):
    # One round, clean vs noisy: the difference of the new weights times the denominator q N is
    # the noise on the sum. With m sampled clients each adding N(0, (zC)^2), its std is
    # z C sqrt(m). 7,850 draws: relative standard error of the std 0.8 %, bound 5 %.
    clients, _ = small
    kwargs = dict(num_rounds=1, sampling_probability=0.5, local_epochs=1, batch_size=10,
                  client_learning_rate=0.1, clipping_norm=0.3, seed=2, progress=False,
                  expected_clients=0.5 * len(clients))
    model_fn = models.make_softmax_regression
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        clean = training.run_dp_fedavg(
            model_fn, clients, noise_multiplier=0.0, diagnostics=True,
            randomness=schedule.PrivateRandomness.reproducible(2, warn=False), **kwargs)
        noisy = training.run_dp_fedavg(
            model_fn, clients, noise_multiplier=2.0, noise_placement="local", diagnostics=True,
            randomness=schedule.PrivateRandomness.reproducible(2, warn=False), **kwargs)
    m = int(noisy.diagnostics.num_sampled[0])
    assert m == clean.diagnostics.num_sampled[0] > 1
    noise = np.concatenate([(a - b).ravel() for a, b in
                            zip(noisy.final_weights, clean.final_weights, strict=True)])
    noise *= 0.5 * len(clients)
    assert abs(np.std(noise) / (2.0 * 0.3 * math.sqrt(m)) - 1) < 0.05


def test_local_run_reports_the_busiest_clients_epsilon(small):
    result = _run(small, target_epsilon=4.0, target_delta=1e-5, noise_placement="local",
                  diagnostics=True)
    z = result.config["noise_multiplier"]
    seen = np.zeros(24, dtype=int)
    busiest_so_far = []
    for ids in result.history.diagnostics.sampled_clients:
        seen[ids] += 1
        busiest_so_far.append(seen.max())
    per_report = accounting.epsilon_per_round(noise_multiplier=z / 2, sampling_probability=1.0,
                                              num_rounds=max(busiest_so_far), target_delta=1e-5,
                                              accountant="discrete")
    expected = [per_report[c - 1] if c else 0.0 for c in busiest_so_far]
    np.testing.assert_allclose(result.history.epsilon, expected, rtol=1e-12)
    assert result.epsilon_spent <= 4.0
    assert result.privacy is experiment.Privacy.LOCAL_DP
