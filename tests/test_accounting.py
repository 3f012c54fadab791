"""Tests of fl_helpers.accounting against dp-accounting's RDP accountant and closed forms."""

from __future__ import annotations

import functools
import logging
import math

import dp_accounting
import numpy as np
import pytest
from absl import logging as absl_logging
from dp_accounting.rdp import rdp_privacy_accountant

from fl_helpers import accounting

DELTA = 1e-5

# (noise_multiplier, sampling_probability, num_rounds, expected epsilon, tolerance):
# DP-SGD on MNIST (Abadi et al. 2016 setting: batch 256 of 60,000, 60 epochs = 14,062 steps),
# a DP-FedAvg setting (120 of 3,383 clients per round, 100 rounds), and a coarse q = 0.1.
REFERENCES = [
    (1.1, 256 / 60000, 14_062, 2.597, 1e-3),
    (1.2, 120 / 3383, 100, 1.986, 1e-3),
    (1.0, 0.1, 100, 7.90, 1e-2),
]


@functools.cache
def reference_epsilon(noise_multiplier, sampling_probability, num_rounds, target_delta=DELTA):
    """dp-accounting used directly, with its default orders."""
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            sampling_probability, dp_accounting.GaussianDpEvent(noise_multiplier)),
        num_rounds))
    return accountant.get_epsilon(target_delta)


@pytest.mark.parametrize(("noise", "q", "rounds", "expected", "tol"), REFERENCES)
def test_dp_fedavg_epsilon_reference_values(noise, q, rounds, expected, tol):
    epsilon = accounting.dp_fedavg_epsilon(noise_multiplier=noise, sampling_probability=q,
                                           num_rounds=rounds, target_delta=DELTA)
    assert epsilon == pytest.approx(expected, abs=tol)
    assert epsilon == pytest.approx(reference_epsilon(noise, q, rounds), rel=1e-12)


def test_orders_are_dp_accounting_defaults():
    assert accounting.RDP_ORDERS == tuple(
        float(order) for order in rdp_privacy_accountant.DEFAULT_RDP_ORDERS)
    assert len(accounting.RDP_ORDERS) == len(set(accounting.RDP_ORDERS)) == 156


def test_full_batch_matches_closed_form_gaussian_rdp():
    # q = 1: RDP of the Gaussian mechanism is alpha / (2 z^2) per round (Mironov 2017,
    # Table II), converted with Canonne, Kamath & Steinke 2020, Proposition 12.
    noise, rounds = 5.0, 30
    orders = np.array(accounting.RDP_ORDERS)
    rdp = rounds * orders / (2 * noise**2)
    eps = rdp + np.log1p(-1 / orders) - np.log(DELTA * orders) / (orders - 1)
    expected = float(np.min(eps[orders > 1.01]))
    epsilon = accounting.dp_fedavg_epsilon(noise_multiplier=noise, sampling_probability=1.0,
                                           num_rounds=rounds, target_delta=DELTA)
    assert epsilon == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("noise", "q", "rounds", "expected", "tol"), REFERENCES)
def test_epsilon_per_round_equals_accountant(noise, q, rounds, expected, tol):
    curve = accounting.epsilon_per_round(noise_multiplier=noise, sampling_probability=q,
                                         num_rounds=rounds, target_delta=DELTA)
    assert curve.shape == (rounds,)
    assert np.all(np.diff(curve) >= 0)
    for t in sorted({1, 7, rounds}):
        assert curve[t - 1] == pytest.approx(reference_epsilon(noise, q, t), rel=1e-12, abs=1e-15)
    assert curve[-1] == pytest.approx(expected, abs=tol)


def test_laplace_epsilon_per_release_equals_accountant_and_beats_basic_composition():
    curve = accounting.laplace_epsilon_per_release(epsilon=0.1, num_releases=300,
                                                   target_delta=DELTA)
    for k in (1, 5, 100, 300):
        accountant = rdp_privacy_accountant.RdpAccountant()
        accountant.compose(dp_accounting.LaplaceDpEvent(1 / 0.1), k)
        assert curve[k - 1] == pytest.approx(accountant.get_epsilon(DELTA), rel=1e-12)
    assert curve[0] > 0.1  # one release: converting to delta costs a little
    assert curve[-1] < 0.5 * 300 * 0.1  # many releases: far below basic composition


@pytest.mark.parametrize(("noise", "q", "rounds", "expected", "tol"), REFERENCES)
def test_noise_multiplier_for_epsilon_round_trip(noise, q, rounds, expected, tol):
    target = accounting.dp_fedavg_epsilon(noise_multiplier=noise, sampling_probability=q,
                                          num_rounds=rounds, target_delta=DELTA)
    found = accounting.noise_multiplier_for_epsilon(target_epsilon=target, target_delta=DELTA,
                                                    sampling_probability=q, num_rounds=rounds)
    assert found == pytest.approx(noise, rel=1e-3)
    achieved = accounting.dp_fedavg_epsilon(noise_multiplier=found, sampling_probability=q,
                                            num_rounds=rounds, target_delta=DELTA)
    assert achieved <= target
    assert achieved == pytest.approx(target, rel=1e-3)


def test_noise_multiplier_for_epsilon_unreachable_targets():
    # q = 1 keeps this fast (closed-form RDP); even noise_multiplier = 1000 gives epsilon 0.01.
    with pytest.raises(ValueError, match=r"target_epsilon=0.001 cannot be reached"):
        accounting.noise_multiplier_for_epsilon(target_epsilon=0.001, target_delta=DELTA,
                                                sampling_probability=1.0, num_rounds=10)
    with pytest.raises(ValueError, match=r"meaningless"):
        accounting.noise_multiplier_for_epsilon(target_epsilon=1e9, target_delta=DELTA,
                                                sampling_probability=1.0, num_rounds=10)


def test_absl_warnings_silenced_and_verbosity_restored(caplog):
    before = absl_logging.get_verbosity()
    with caplog.at_level(logging.DEBUG):
        # q = 0.1, z = 1 makes dp-accounting warn about orders 1.1 to 1.5.
        accounting.dp_fedavg_epsilon(noise_multiplier=1.0, sampling_probability=0.1,
                                     num_rounds=1, target_delta=DELTA)
        accounting.epsilon_per_round(noise_multiplier=1.0, sampling_probability=0.1,
                                     num_rounds=3, target_delta=DELTA)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert absl_logging.get_verbosity() == before


GOOD = {"noise_multiplier": 1.0, "sampling_probability": 0.01, "num_rounds": 10,
        "target_delta": DELTA}
BAD = [
    ("noise_multiplier", 0.0), ("noise_multiplier", -1.0), ("noise_multiplier", math.nan),
    ("noise_multiplier", math.inf),
    ("sampling_probability", 0.0), ("sampling_probability", 1.5), ("sampling_probability", -0.1),
    ("sampling_probability", math.nan),
    ("num_rounds", 0), ("num_rounds", -3),
    ("target_delta", 0.0), ("target_delta", 1.0), ("target_delta", math.nan),
]


@pytest.mark.parametrize(("name", "value"), BAD)
@pytest.mark.parametrize("function", [accounting.dp_fedavg_epsilon, accounting.epsilon_per_round])
def test_bad_arguments_rejected(function, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be .*got {value}"):
        function(**{**GOOD, name: value})


def test_inverse_bad_arguments_rejected():
    good = {"target_epsilon": 1.0, "target_delta": DELTA, "sampling_probability": 0.01,
            "num_rounds": 10}
    for name, value in [("target_epsilon", 0.0), ("target_epsilon", -2.0),
                        ("target_epsilon", math.nan), ("target_epsilon", math.inf),
                        ("target_delta", 0.0), ("sampling_probability", 2.0),
                        ("num_rounds", 0)]:
        with pytest.raises(ValueError, match=rf"^{name} must be"):
            accounting.noise_multiplier_for_epsilon(**{**good, name: value})
    with pytest.raises(TypeError, match="num_rounds must be an integer"):
        accounting.dp_fedavg_epsilon(**{**GOOD, "num_rounds": 2.5})
    with pytest.raises(ValueError, match="num_releases must be >= 1"):
        accounting.laplace_epsilon_per_release(epsilon=1.0, num_releases=0, target_delta=DELTA)
