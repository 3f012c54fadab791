"""Tests of fl_helpers.accounting against dp-accounting's PLD and RDP accountants and closed forms.

The RDP tests pin the numbers the course had before the PLD became the default (``accountant=
"rdp"`` must keep giving them); the PLD tests compare the default with dp-accounting's
``PLDAccountant`` on the same grid, with RDP (never looser) and with the exact Gaussian
composition of Balle & Wang 2018 (q = 1).
"""

from __future__ import annotations

import functools
import logging
import math

import dp_accounting
import numpy as np
import pytest
from absl import logging as absl_logging
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from scipy import optimize, special

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
                                           num_rounds=rounds, target_delta=DELTA,
                                           accountant="rdp")
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
                                           num_rounds=rounds, target_delta=DELTA,
                                           accountant=accounting.Accountant.RDP)
    assert epsilon == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("noise", "q", "rounds", "expected", "tol"), REFERENCES)
def test_epsilon_per_round_equals_accountant(noise, q, rounds, expected, tol):
    curve = accounting.epsilon_per_round(noise_multiplier=noise, sampling_probability=q,
                                         num_rounds=rounds, target_delta=DELTA, accountant="rdp")
    assert curve.shape == (rounds,)
    assert np.all(np.diff(curve) >= 0)
    for t in sorted({1, 7, rounds}):
        assert curve[t - 1] == pytest.approx(reference_epsilon(noise, q, t), rel=1e-12, abs=1e-15)
    assert curve[-1] == pytest.approx(expected, abs=tol)


def test_laplace_epsilon_per_release_equals_accountant_and_beats_basic_composition():
    curve = accounting.laplace_epsilon_per_release(epsilon=0.1, num_releases=300,
                                                   target_delta=DELTA, accountant="rdp")
    for k in (1, 5, 100, 300):
        accountant = rdp_privacy_accountant.RdpAccountant()
        accountant.compose(dp_accounting.LaplaceDpEvent(1 / 0.1), k)
        assert curve[k - 1] == pytest.approx(accountant.get_epsilon(DELTA), rel=1e-12)
    assert curve[0] > 0.1  # one release: converting to delta costs a little
    assert curve[-1] < 0.5 * 300 * 0.1  # many releases: far below basic composition


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize(("noise", "q", "rounds", "expected", "tol"), REFERENCES)
def test_noise_multiplier_for_epsilon_round_trip(noise, q, rounds, expected, tol, accountant):
    target = accounting.dp_fedavg_epsilon(noise_multiplier=noise, sampling_probability=q,
                                          num_rounds=rounds, target_delta=DELTA,
                                          accountant=accountant)
    found = accounting.noise_multiplier_for_epsilon(target_epsilon=target, target_delta=DELTA,
                                                    sampling_probability=q, num_rounds=rounds,
                                                    accountant=accountant)
    assert found == pytest.approx(noise, rel=1e-3)
    achieved = accounting.dp_fedavg_epsilon(noise_multiplier=found, sampling_probability=q,
                                            num_rounds=rounds, target_delta=DELTA,
                                            accountant=accountant)
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


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_absl_warnings_silenced_and_verbosity_restored(caplog, accountant):
    before = absl_logging.get_verbosity()
    with caplog.at_level(logging.DEBUG):
        # q = 0.1, z = 1 makes dp-accounting warn about orders 1.1 to 1.5 (z = 0.99: no cache).
        accounting.dp_fedavg_epsilon(noise_multiplier=0.99, sampling_probability=0.1,
                                     num_rounds=1, target_delta=DELTA, accountant=accountant)
        accounting.epsilon_per_round(noise_multiplier=0.99, sampling_probability=0.1,
                                     num_rounds=40, target_delta=DELTA, accountant=accountant)
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


# ---------------------------------------------------------------------------- the PLD default

VDI = accounting.PLD_VALUE_DISCRETIZATION_INTERVAL


def pld_reference(noise_multiplier, sampling_probability, num_rounds, target_delta=DELTA):
    """dp-accounting's PLD accountant used directly, on the same grid."""
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=VDI)
    step = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_probability < 1:
        step = dp_accounting.PoissonSampledDpEvent(sampling_probability, step)
    accountant.compose(dp_accounting.SelfComposedDpEvent(step, num_rounds))
    return accountant.get_epsilon(target_delta)


def test_default_accountant_is_pld():
    kwargs = {"noise_multiplier": 1.2, "sampling_probability": 0.05, "num_rounds": 50,
              "target_delta": DELTA}
    default = accounting.dp_fedavg_epsilon(**kwargs)
    assert default == accounting.dp_fedavg_epsilon(**kwargs, accountant="pld")
    assert default == accounting.dp_fedavg_epsilon(**kwargs, accountant=accounting.Accountant.PLD)
    assert default < accounting.dp_fedavg_epsilon(**kwargs, accountant="rdp")


@pytest.mark.parametrize(("noise", "q", "rounds"), [
    (1.1, 256 / 60000, 14_062), (1.2, 120 / 3383, 100), (1.0, 0.1, 30), (1.5, 0.1, 30),
    (0.8, 0.5, 7), (3.0, 1.0, 20), (0.6, 0.01, 1000),
])
def test_pld_equals_dp_accounting_pld_accountant(noise, q, rounds):
    epsilon = accounting.dp_fedavg_epsilon(noise_multiplier=noise, sampling_probability=q,
                                           num_rounds=rounds, target_delta=DELTA)
    assert epsilon == pld_reference(noise, q, rounds)  # the same computation, bit for bit


def test_pld_docstring_states_the_grid():
    assert VDI == 1e-3
    doc = accounting.__doc__
    assert "value_discretization_interval" in doc and "pessimistic" in doc


GRID = [(z, q, t) for z in (0.7, 1.5, 4.0) for q in (0.01, 0.1, 1.0) for t in (1, 30, 300)]


@pytest.mark.parametrize(("noise", "q", "rounds"), GRID)
def test_pld_never_exceeds_rdp(noise, q, rounds):
    kwargs = {"noise_multiplier": noise, "sampling_probability": q, "num_rounds": rounds,
              "target_delta": DELTA}
    pld = accounting.dp_fedavg_epsilon(**kwargs)
    rdp = accounting.dp_fedavg_epsilon(**kwargs, accountant="rdp")
    assert pld <= rdp
    if 0.05 < rdp < 100:  # where there is privacy to gain, PLD is clearly tighter
        assert pld < 0.97 * rdp


def _log_gaussian_delta(sigma, epsilon):
    """log delta(epsilon) of the Gaussian mechanism of std sigma, sensitivity 1 (Balle & Wang
    2018, Theorem 8): Phi(1/(2 sigma) - epsilon sigma) - e^epsilon Phi(-1/(2 sigma) - epsilon
    sigma), written independently of fl_helpers.privacy."""
    a = 0.5 / sigma - epsilon * sigma
    b = -0.5 / sigma - epsilon * sigma
    first, second = special.log_ndtr(a), epsilon + special.log_ndtr(b)
    return first + np.log1p(-np.exp(second - first))


@pytest.mark.parametrize(("noise", "rounds"), [(1.0, 1), (3.0, 10), (5.0, 30), (2.0, 4),
                                               (10.0, 100)])
def test_pld_full_batch_matches_exact_gaussian_composition(noise, rounds):
    # T rounds of Gaussian noise of std z on the full data are exactly one Gaussian mechanism of
    # std z / sqrt(T); its epsilon at delta solves the equation of Balle & Wang 2018, Theorem 8.
    sigma = noise / math.sqrt(rounds)
    exact = optimize.brentq(lambda e: _log_gaussian_delta(sigma, e) - math.log(DELTA),
                            0.0, 200.0, xtol=1e-12)
    assert exact == pytest.approx(dp_accounting.get_epsilon_gaussian(sigma, DELTA), abs=1e-6)
    pld = accounting.dp_fedavg_epsilon(noise_multiplier=noise, sampling_probability=1.0,
                                       num_rounds=rounds, target_delta=DELTA)
    # Pessimistic: never below the truth, and above it by less than two grid steps.
    assert exact - 1e-9 <= pld <= exact + 2 * VDI
    curve = accounting.epsilon_per_round(noise_multiplier=noise, sampling_probability=1.0,
                                         num_rounds=rounds, target_delta=DELTA)
    assert curve[-1] == pld


@pytest.mark.parametrize(("noise", "q", "rounds"), [(1.0, 0.1, 30), (1.3, 0.05, 200),
                                                    (1.1, 256 / 60000, 2000), (2.0, 1.0, 50)])
def test_pld_epsilon_per_round(noise, q, rounds):
    kwargs = {"noise_multiplier": noise, "sampling_probability": q, "num_rounds": rounds,
              "target_delta": DELTA}
    curve = accounting.epsilon_per_round(**kwargs)
    rdp = accounting.epsilon_per_round(**kwargs, accountant="rdp")
    assert curve.shape == (rounds,) and np.all(np.diff(curve) >= 0)
    assert curve[-1] == accounting.dp_fedavg_epsilon(**kwargs)
    assert np.all(curve <= rdp)
    wanted = {1, 2, 17, accounting.PLD_CURVE_POINTS, rounds // 3, rounds - 1}
    for t in sorted(t for t in wanted if 1 <= t <= rounds):
        reference = pld_reference(noise, q, t)
        if t <= accounting.PLD_CURVE_POINTS:  # every one of the first rounds is evaluated
            assert curve[t - 1] == pytest.approx(reference, rel=1e-9)
        else:  # later ones are a valid upper bound (the next evaluated round, or RDP)
            assert reference * (1 - 1e-9) <= curve[t - 1] <= rdp[t - 1]
    assert accounting.epsilon_per_round(**kwargs) is not curve  # a fresh copy from the cache


def test_pld_laplace_per_release():
    curve = accounting.laplace_epsilon_per_release(epsilon=0.1, num_releases=300,
                                                   target_delta=DELTA)
    rdp = accounting.laplace_epsilon_per_release(epsilon=0.1, num_releases=300,
                                                 target_delta=DELTA, accountant="rdp")
    for k in (1, 5, 32, 300):
        reference = pld_privacy_accountant.PLDAccountant(value_discretization_interval=VDI)
        reference.compose(dp_accounting.LaplaceDpEvent(1 / 0.1), k)
        assert curve[k - 1] == pytest.approx(reference.get_epsilon(DELTA), rel=1e-9)
    assert np.all(curve <= rdp) and np.all(np.diff(curve) >= 0)
    assert np.all(curve <= 0.1 * np.arange(1, 301) + 1e-12)  # never worse than basic composition


def test_pld_out_of_range_reports_rdp():
    # Too small a delta for the PLD's truncated tails, too little noise for its grid: the RDP
    # bound (valid, looser) is reported instead of an infinite or enormous computation.
    for kwargs in [{"noise_multiplier": 1.0, "sampling_probability": 0.1, "num_rounds": 10,
                    "target_delta": 1e-300},
                   {"noise_multiplier": 0.05, "sampling_probability": 0.1, "num_rounds": 10,
                    "target_delta": DELTA},
                   {"noise_multiplier": 0.3, "sampling_probability": 1.0, "num_rounds": 1000,
                    "target_delta": DELTA}]:
        pld = accounting.dp_fedavg_epsilon(**kwargs)
        assert math.isfinite(pld)
        assert pld == accounting.dp_fedavg_epsilon(**kwargs, accountant="rdp")
        curve = accounting.epsilon_per_round(**kwargs)
        assert curve[-1] == pld


@pytest.mark.parametrize("target", [1.0, 2.0, 4.0])
def test_pld_calibration_notebook_04_setting(target):
    kwargs = {"target_delta": DELTA, "sampling_probability": 0.1, "num_rounds": 30}
    z_pld = accounting.noise_multiplier_for_epsilon(target_epsilon=target, **kwargs)
    z_rdp = accounting.noise_multiplier_for_epsilon(target_epsilon=target, **kwargs,
                                                    accountant="rdp")
    assert z_pld < 0.95 * z_rdp  # the tighter accountant needs clearly less noise
    spent = accounting.dp_fedavg_epsilon(noise_multiplier=z_pld, sampling_probability=0.1,
                                         num_rounds=30, target_delta=DELTA)
    assert target * (1 - 1e-3) <= spent <= target
    # Nearly the smallest such z: 0.1% less noise would overspend.
    assert accounting.dp_fedavg_epsilon(noise_multiplier=z_pld * 0.999, sampling_probability=0.1,
                                        num_rounds=30, target_delta=DELTA) > target
    assert spent == pytest.approx(pld_reference(z_pld, 0.1, 30), rel=1e-12)


def test_calibration_straddling_the_pld_range():
    # q = 1, T = 100: below z = 1 the noise per composed Gaussian, z / sqrt(T), drops under
    # PLD_MIN_NOISE_MULTIPLIER and the default accountant reports RDP's (larger) bound, so
    # epsilon jumps at z = 1: from RDP's 96.1 just below to the PLD's 91.8 at z = 1.
    kwargs = {"target_delta": DELTA, "sampling_probability": 1.0, "num_rounds": 100}
    assert accounting.dp_fedavg_epsilon(noise_multiplier=0.999, **kwargs) == \
        accounting.dp_fedavg_epsilon(noise_multiplier=0.999, **kwargs, accountant="rdp")
    assert accounting.dp_fedavg_epsilon(noise_multiplier=1.0, **kwargs) == \
        pld_reference(1.0, 1.0, 100)
    # Target 100 is reached below the jump (by RDP), target 95 exactly at it.
    z = accounting.noise_multiplier_for_epsilon(target_epsilon=100.0, **kwargs)
    spent = accounting.dp_fedavg_epsilon(noise_multiplier=z, **kwargs)
    assert z < 1.0 and 100.0 * (1 - 1e-3) <= spent <= 100.0
    z = accounting.noise_multiplier_for_epsilon(target_epsilon=95.0, **kwargs)
    assert z == pytest.approx(1.0, rel=2e-4)
    assert accounting.dp_fedavg_epsilon(noise_multiplier=z, **kwargs) <= 95.0


@pytest.mark.parametrize("rtol", [1e-16, 1e-9, 0.0, -1e-4, 1.0, math.nan])
def test_calibration_rejects_unreachable_rtol(rtol):
    # rtol = 1e-16 used to hang: the search could never get that close.
    with pytest.raises(ValueError, match=r"^rtol must be"):
        accounting.noise_multiplier_for_epsilon(target_epsilon=2, target_delta=1e-5,
                                                sampling_probability=0.1, num_rounds=30,
                                                rtol=rtol)


def test_calibration_finest_rtol_returns():
    z = accounting.noise_multiplier_for_epsilon(target_epsilon=2, target_delta=1e-5,
                                                sampling_probability=0.1, num_rounds=30,
                                                rtol=accounting.MIN_RTOL)
    spent = accounting.dp_fedavg_epsilon(noise_multiplier=z, sampling_probability=0.1,
                                         num_rounds=30, target_delta=1e-5)
    assert 2 * (1 - 1e-6) <= spent <= 2


@pytest.mark.parametrize(("value", "error"), [("moments", ValueError), ("", ValueError),
                                              (1, TypeError), (None, TypeError),
                                              (True, TypeError)])
def test_bad_accountant_rejected(value, error):
    with pytest.raises(error, match=r"^accountant must be 'pld', 'rdp' or 'discrete'"):
        accounting.dp_fedavg_epsilon(**GOOD, accountant=value)


def test_accountant_names_case_insensitive():
    assert accounting.dp_fedavg_epsilon(**GOOD, accountant="RDP") == \
        accounting.dp_fedavg_epsilon(**GOOD, accountant=accounting.Accountant.RDP)


@pytest.mark.parametrize("rounds", [2**64, 10**400, accounting.MAX_NUM_ROUNDS + 1])
def test_too_many_rounds_rejected(rounds):
    with pytest.raises(ValueError, match=r"^num_rounds must be <= 10000000"):
        accounting.epsilon_per_round(**{**GOOD, "num_rounds": rounds})


# -- the discrete accountant: an RDP bound proved for the discrete Gaussian on integers ---------

def _sampled_gaussian_rdp(z, q, orders):
    from dp_accounting.rdp import rdp_privacy_accountant as rdp_lib

    accountant = rdp_lib.RdpAccountant(orders=list(orders))
    accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)))
    return np.asarray(accountant.rdp)  # the per-order RDP after one step


@pytest.mark.parametrize("z, q", [(0.7, 0.3), (1.5, 0.1), (3.3, 0.05), (1.0, 1.0)])
def test_discrete_bound_is_at_least_the_sampled_gaussians(z, q):
    """Its remove direction is the sampled Gaussian's binomial expansion, so it equals
    dp-accounting's RDP of the sampled Gaussian (integer orders, 1e-9); the whole bound (with
    the add direction) is never below it."""
    orders = accounting.DISCRETE_RDP_ORDERS
    ours = accounting.sampled_discrete_gaussian_rdp(noise_multiplier=z, sampling_probability=q)
    gaussian = _sampled_gaussian_rdp(z, q, orders)
    assert np.all(ours >= gaussian * (1 - 1e-9))
    if q < 1.0:
        remove = np.array([accounting._log_binomial_moment(int(a), q, 1 / z**2) / (a - 1)
                           for a in orders])
        np.testing.assert_allclose(np.minimum(remove, np.asarray(orders) / (2 * z * z)),
                                   gaussian, rtol=1e-9)
    if q == 1.0:
        np.testing.assert_allclose(ours, np.asarray(orders) / (2 * z * z), rtol=1e-12)


def _discrete_pmf(sigma, shift, support):
    weights = np.exp(-((support - shift) ** 2) / (2 * sigma**2))
    return weights / weights.sum()


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.0])
@pytest.mark.parametrize("q", [0.05, 0.3, 0.7])
def test_discrete_bound_holds_for_the_one_dimensional_discrete_gaussian(sigma, q):
    """The exact Renyi divergences, both directions, of a Poisson-sampled 1-D discrete Gaussian
    with shift 1 (computed on its support to float64 precision), where it differs most from the
    continuous one (small sigma), never exceed the bound."""
    support = np.arange(-60 * max(1, int(sigma)) - 10, 60 * max(1, int(sigma)) + 11,
                        dtype=np.float64)
    mu0, mu1 = _discrete_pmf(sigma, 0.0, support), _discrete_pmf(sigma, 1.0, support)
    mixture = (1 - q) * mu0 + q * mu1
    orders = np.asarray(accounting.DISCRETE_RDP_ORDERS)
    bound = accounting.sampled_discrete_gaussian_rdp(noise_multiplier=sigma,
                                                     sampling_probability=q)
    keep = mu0 > 1e-300
    for order, limit in zip(orders[:40], bound[:40], strict=True):
        for p, r in ((mixture, mu0), (mu0, mixture)):
            with np.errstate(over="ignore", divide="ignore"):
                log_terms = order * np.log(p[keep]) + (1 - order) * np.log(r[keep])
            exact = np.logaddexp.reduce(log_terms) / (order - 1)
            assert exact <= limit * (1 + 1e-9) + 1e-12, (order, exact, limit)


def test_discrete_accountant_through_the_public_functions():
    kwargs = dict(sampling_probability=0.05, num_rounds=1000, target_delta=1e-5)
    discrete = accounting.dp_fedavg_epsilon(noise_multiplier=3.279, accountant="discrete",
                                            **kwargs)
    pld = accounting.dp_fedavg_epsilon(noise_multiplier=3.279, **kwargs)
    rdp = accounting.dp_fedavg_epsilon(noise_multiplier=3.279, accountant="rdp", **kwargs)
    assert pld < rdp <= discrete < 1.25 * pld  # the price of exactness: 2.00 -> 2.35
    curve = accounting.epsilon_per_round(noise_multiplier=3.279, accountant="discrete", **kwargs)
    assert curve[-1] == pytest.approx(discrete) and np.all(np.diff(curve) >= 0)
    z = accounting.noise_multiplier_for_epsilon(target_epsilon=2.0, accountant="discrete",
                                                **kwargs)
    assert accounting.dp_fedavg_epsilon(noise_multiplier=z, accountant="discrete",
                                        **kwargs) <= 2.0
    assert accounting.dp_fedavg_epsilon(noise_multiplier=z * 0.999, accountant="discrete",
                                        **kwargs) > 2.0


# ------------------------------------------- a rule's dp_event, composed over a run (issue 25)

def _own_accountant(name):
    if name == "rdp":
        return rdp_privacy_accountant.RdpAccountant(list(accounting.RDP_ORDERS))
    return pld_privacy_accountant.PLDAccountant(
        value_discretization_interval=accounting.PLD_VALUE_DISCRETIZATION_INTERVAL)


SCHEDULE = [np.array([0, 2]), np.array([], dtype=np.int64), np.array([2]), np.array([1, 2]),
            np.array([0])]  # client 2 reports in rounds 1, 3 and 4: busiest 1, 1, 2, 3, 3


@pytest.mark.parametrize("name", ["pld", "rdp"])
@pytest.mark.parametrize("event", [
    dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(1.2)),
    dp_accounting.PoissonSampledDpEvent(0.5, dp_accounting.GaussianDpEvent(3.0)),
])
def test_sampled_event_composes_every_round_as_dp_accounting_does(event, name):
    # The sample is secret: every round counts, whoever took part.
    curve = accounting.epsilon_per_round_of_event(event, schedule=SCHEDULE, num_clients=3,
                                                  target_delta=DELTA, accountant=name)
    for t in (1, 3, len(SCHEDULE)):
        own = _own_accountant(name)
        own.compose(event, t)
        assert curve[t - 1] == pytest.approx(own.get_epsilon(DELTA), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", ["pld", "rdp"])
def test_unsampled_event_composes_over_the_busiest_clients_reports(name):
    # No secret sample (local DP's reports): the busiest client's reports compose.
    event = dp_accounting.GaussianDpEvent(2.5)
    curve = accounting.epsilon_per_round_of_event(event, schedule=SCHEDULE, num_clients=3,
                                                  target_delta=DELTA, accountant=name)
    for t, reports in enumerate([1, 1, 2, 3, 3]):
        own = _own_accountant(name)
        own.compose(event, reports)
        assert curve[t] == pytest.approx(own.get_epsilon(DELTA), rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(curve, accounting.local_dp_epsilon_per_round(
        noise_multiplier=5.0, busiest_counts=np.array([1, 1, 2, 3, 3]), target_delta=DELTA,
        accountant=name))


def test_discrete_accountant_of_an_event_bounds_the_gaussians():
    # dp-accounting has no discrete Gaussian: the discrete bound is the course's own, and it
    # is never below dp-accounting's RDP of the continuous Gaussian with the same z and q.
    event = dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(1.504))
    curve = accounting.epsilon_per_round_of_event(event, schedule=[np.array([0])] * 30,
                                                  num_clients=1, target_delta=DELTA)
    np.testing.assert_array_equal(curve, accounting.epsilon_per_round(
        noise_multiplier=1.504, sampling_probability=0.1, num_rounds=30, target_delta=DELTA,
        accountant="discrete"))
    own = _own_accountant("rdp")
    own.compose(event, 30)
    assert curve[-1] >= own.get_epsilon(DELTA)


def test_non_private_event_is_infinite_epsilon():
    curve = accounting.epsilon_per_round_of_event(dp_accounting.NonPrivateDpEvent(),
                                                  schedule=SCHEDULE, num_clients=3,
                                                  target_delta=DELTA)
    assert curve.shape == (5,) and np.isinf(curve).all()


@pytest.mark.parametrize(("event", "error", "match"), [
    (None, TypeError, "event must be a dp_accounting.DpEvent"),
    (1.5, TypeError, "event must be a dp_accounting.DpEvent"),
    (dp_accounting.LaplaceDpEvent(1.0), ValueError, "event must be PoissonSampledDpEvent"),
    (dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.LaplaceDpEvent(1.0)), ValueError,
     "event must be PoissonSampledDpEvent"),
    (dp_accounting.GaussianDpEvent(0.0), ValueError, "event's noise_multiplier must be > 0"),
    (dp_accounting.GaussianDpEvent(math.nan), ValueError, "event's noise_multiplier"),
    (dp_accounting.PoissonSampledDpEvent(1.5, dp_accounting.GaussianDpEvent(1.0)), ValueError,
     r"event's sampling_probability must be in \(0, 1\], got 1.5"),
    (dp_accounting.ZCDpEvent(0.0), ValueError, "event's rho must be > 0, got 0"),
    (dp_accounting.ZCDpEvent(math.inf), ValueError, "event's rho"),
    (dp_accounting.ZCDpEvent("0.1"), TypeError, "event's rho"),
    (dp_accounting.ZCDpEvent(0.1, 0.5), ValueError, "event's xi must be 0"),
    (dp_accounting.ZCDpEvent(0.1, -1.0), ValueError, "event's xi must be >= 0"),
    (dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.ZCDpEvent(-1.0)), ValueError,
     "event's rho must be > 0"),
    (dp_accounting.PoissonSampledDpEvent(0.0, dp_accounting.ZCDpEvent(0.1)), ValueError,
     "event's sampling_probability"),
])
def test_bad_events_are_named(event, error, match):
    with pytest.raises(error, match=match):
        accounting.epsilon_per_round_of_event(event, schedule=SCHEDULE, num_clients=3,
                                              target_delta=DELTA)


def test_ddg_rho_is_the_discrete_gaussian_closed_form_for_large_noise():
    # tau underflows for sigma^2 = 100 per client: rho = Delta^2 / (2 n sigma^2).
    rho = accounting.ddg_rho(sensitivity=50.0, client_variance=100.0, num_clients=20,
                             dimension=1000)
    assert rho == pytest.approx(50.0**2 / (2 * 20 * 100.0), rel=1e-12)
    # tiny noise per client: tau is large and the bound much worse than the closed form
    loose = accounting.ddg_rho(sensitivity=1.0, client_variance=0.25, num_clients=20,
                               dimension=1000)
    assert loose > 10 * 1.0 / (2 * 20 * 0.25)
    with pytest.raises(ValueError, match="client_variance must be >= 1/4"):
        accounting.ddg_rho(sensitivity=1.0, client_variance=0.2, num_clients=2, dimension=1)


def test_poisson_subsampled_bound_is_above_the_tight_gaussian_accounting():
    # Zhu & Wang's general bound applied to a Gaussian (rho = 1 / (2 z^2)) can only be looser
    # than dp-accounting's tight subsampled-Gaussian RDP, and should not be much looser.
    z, q, rounds = 1.0, 0.1, 30
    ours = accounting.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5,
                          sampling_probability=q)
    orders = [float(a) for a in accounting.DDG_RDP_ORDERS]
    accountant = dp_accounting.rdp.RdpAccountant(orders=orders)
    accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)),
                       rounds)
    tight = accountant.get_epsilon(1e-5)
    assert tight * (1 - 1e-9) <= ours <= 1.5 * tight


def test_ddg_epsilon_matches_dp_accounting_for_an_unsampled_gaussian():
    # q = 1: T rounds of rho-CDP with rho = 1 / (2 z^2) is the Gaussian mechanism's RDP.
    z, rounds = 2.0, 10
    ours = accounting.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5)
    orders = [float(a) for a in accounting.DDG_RDP_ORDERS]
    accountant = dp_accounting.rdp.RdpAccountant(orders=orders)
    accountant.compose(dp_accounting.GaussianDpEvent(z), rounds)
    assert ours == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    sampled = accounting.ddg_epsilon(rho=1 / (2 * z**2), num_rounds=rounds, target_delta=1e-5,
                             sampling_probability=0.1)
    assert sampled < ours


# --------------------------------------------------------------------------------------------
# The distributed discrete Gaussian's round as an event (ZCDpEvent), and its rho over every
# client count a round can have
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sensitivity", "noise_variance", "max_clients", "dimension"), [
    (4184.6, 3e7, 60, 7850),  # the course's noise: tau underflows, n = 1 decides
    (3.0, 2.25, 40, 4),       # one unit of variance per client from n = 3 on: tau grows with n
    (2.0, 30.0, 80, 10),      # several blocks of equal ceil(sigma^2 / n), tau > 0 in each
    (20.0, 500.0, 300, 1000),
    (1.0, 0.1, 5, 1),         # sigma^2 < 1: every client adds variance 1
])
def test_ddg_rho_by_client_count_is_ddg_rho_for_every_count(sensitivity, noise_variance,
                                                            max_clients, dimension):
    rhos = accounting.ddg_rho_by_client_count(sensitivity=sensitivity,
                                              noise_variance=noise_variance,
                                              max_clients=max_clients, dimension=dimension)
    by_hand = [accounting.ddg_rho(sensitivity=sensitivity,
                                  client_variance=math.ceil(noise_variance / n), num_clients=n,
                                  dimension=dimension) for n in range(1, max_clients + 1)]
    assert rhos.shape == (max_clients,)
    np.testing.assert_allclose(rhos, by_hand, rtol=1e-12, atol=0)


def test_ddg_rho_by_client_count_is_linear_in_the_counts():
    # A million counts at one unit of variance per client (the worst case: tau is summed for
    # every n) is answered without the n^2 / 2 terms of one ddg_rho per count.
    rhos = accounting.ddg_rho_by_client_count(sensitivity=10.0, noise_variance=1000.0,
                                              max_clients=10**6, dimension=10**4)
    assert rhos.argmax() == 10**6 - 1  # tau grows with n once every client adds variance 1
    assert rhos[-1] == pytest.approx(accounting.ddg_rho(
        sensitivity=10.0, client_variance=1.0, num_clients=10**6, dimension=10**4), rel=1e-9)


@pytest.mark.parametrize("sampling_probability", [0.1, 0.5])
def test_sampled_zcdp_event_is_ddg_epsilon_round_by_round(sampling_probability):
    event = dp_accounting.PoissonSampledDpEvent(sampling_probability,
                                                dp_accounting.ZCDpEvent(0.3))
    curve = accounting.epsilon_per_round_of_event(event, schedule=SCHEDULE, num_clients=3,
                                                  target_delta=DELTA)
    by_hand = [accounting.ddg_epsilon(rho=0.3, num_rounds=t, target_delta=DELTA,
                                      sampling_probability=sampling_probability)
               for t in range(1, len(SCHEDULE) + 1)]
    np.testing.assert_allclose(curve, by_hand, rtol=1e-12)
    # the accountant named does not apply: a zCDP bound is all the event says
    for name in ("pld", "rdp"):
        np.testing.assert_array_equal(curve, accounting.epsilon_per_round_of_event(
            event, schedule=SCHEDULE, num_clients=3, target_delta=DELTA, accountant=name))


def test_unsampled_zcdp_event_is_dp_accountings_over_the_busiest_clients_rounds():
    # SCHEDULE's busiest client (2) reports in rounds 1, 3 and 4: 1, 1, 2, 3, 3 reports.
    curve = accounting.epsilon_per_round_of_event(dp_accounting.ZCDpEvent(0.2),
                                                  schedule=SCHEDULE, num_clients=3,
                                                  target_delta=DELTA)
    orders = [float(a) for a in accounting.DDG_RDP_ORDERS]
    expected = []
    for reports in (1, 1, 2, 3, 3):
        accountant = rdp_privacy_accountant.RdpAccountant(orders=orders)
        accountant.compose(dp_accounting.ZCDpEvent(0.2), reports)
        expected.append(accountant.get_epsilon(DELTA))
    np.testing.assert_allclose(curve, expected, rtol=1e-12)
    late = accounting.epsilon_per_round_of_event(
        dp_accounting.ZCDpEvent(0.2), schedule=[np.array([], dtype=np.int64), np.array([1])],
        num_clients=3, target_delta=DELTA)
    assert late[0] == 0.0 and late[1] == pytest.approx(expected[0], rel=1e-12)
