"""The course's server optimizers and FedProx against Flower 1.42's strategies, same inputs.

Each test feeds the same three rounds of client weights (3 clients with 5, 10 and 20 examples,
two layers) to a Flower strategy's ``aggregate_fit`` and to the course's FedAvg rule followed by
its server optimizer, and compares the global weights after every round (float64 inputs:
agreement to 1e-6 relative; the course casts to float32).

* FedAvgM (Hsu et al. 2019): ``ServerSGD(eta, momentum=beta)`` equals Flower's ``FedAvgM``.
* FedYogi (Reddi et al. 2021, Algorithm 2): ``ServerYogi`` equals Flower's ``FedYogi`` once both
  start ``v`` at the same value: Flower starts it at 0, the course at ``tau^2`` (Algorithm 2
  asks ``v_{-1} >= tau^2``), so ``initial_second_moment=0`` is passed here.
* FedAdam: Flower's ``FedAdam`` differs from ``ServerAdam`` in two stated conventions, checked
  here on the numbers: it starts ``v`` at 0 and scales ``eta`` by Adam's bias correction
  ``sqrt(1 - beta_2^(t+1)) / (1 - beta_1^(t+1))`` (Kingma & Ba 2015, Section 2); the course
  follows Reddi et al.'s Algorithm 2 (``v_{-1} = tau^2``, no correction).
* FedProx: Flower's ``FedProx`` strategy aggregates with FedAvg and only sends ``proximal_mu``
  to the clients (the proximal term is the client's to add); the course's FedAvg rule gives the
  same global model, and :class:`fl_helpers.heterogeneity.FedProx` adds the term on the client.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fl_helpers import aggregation

flwr = pytest.importorskip("flwr")
from flwr.common import (  # noqa: E402
    Code,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import strategy as flwr_strategy  # noqa: E402

SIZES = np.array([5, 10, 20])
_RNG = np.random.default_rng(0)
START = [_RNG.normal(size=(4, 3)), _RNG.normal(size=3)]
#: Per round, each client's update (the clients' weights are the round's start plus these).
UPDATES = [[[0.1 * _RNG.normal(size=w.shape) for w in START] for _ in SIZES] for _ in range(3)]


@pytest.fixture(autouse=True)
def _quiet_flower():
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _flower_path(strategy, current=None):
    """The global weights after each round of ``strategy.aggregate_fit``."""
    weights = [w.copy() for w in START]
    path = []
    for server_round, deltas in enumerate(UPDATES, start=1):
        results = [(None, FitRes(status=Status(Code.OK, ""),
                                 parameters=ndarrays_to_parameters(
                                     [w + d for w, d in zip(weights, delta, strict=True)]),
                                 num_examples=int(n), metrics={}))
                   for delta, n in zip(deltas, SIZES, strict=True)]
        parameters, _ = strategy.aggregate_fit(server_round, results, [])
        weights = parameters_to_ndarrays(parameters)
        path.append(weights)
    return path


def _course_path(optimizer):
    weights = [w.astype(np.float32) for w in START]
    path = []
    rule = aggregation.FedAvg()
    for t, deltas in enumerate(UPDATES):
        # The clients' deltas relative to the course's current weights, as Flower sees them.
        update = rule.aggregate([[d.astype(np.float32) for d in delta] for delta in deltas],
                                SIZES, aggregation.RoundContext(round_index=t, num_clients=3,
                                                                randomness=None))
        weights = optimizer.apply(weights, update)
        path.append(weights)
    return path


def _assert_paths_close(ours, theirs, rtol=1e-5, atol=1e-6):
    for mine, flower in zip(ours, theirs, strict=True):
        for a, b in zip(mine, flower, strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_fedavgm_equals_flower():
    flower = flwr_strategy.FedAvgM(initial_parameters=ndarrays_to_parameters(START),
                                   server_learning_rate=0.7, server_momentum=0.9)
    _assert_paths_close(_course_path(aggregation.ServerSGD(0.7, momentum=0.9)),
                        _flower_path(flower))


def test_fedyogi_equals_flower_with_the_same_initial_second_moment():
    settings = {"eta": 0.05, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3}
    flower = flwr_strategy.FedYogi(initial_parameters=ndarrays_to_parameters(START),
                                   **settings)
    ours = aggregation.ServerYogi(settings["eta"], beta_1=0.9, beta_2=0.99, tau=1e-3,
                                  initial_second_moment=0.0)
    _assert_paths_close(_course_path(ours), _flower_path(flower))
    # The course's default (v starts at tau^2) differs, in the first rounds only slightly.
    default = _course_path(aggregation.ServerYogi(0.05, beta_1=0.9, beta_2=0.99, tau=1e-3))
    assert not np.allclose(default[0][0], _course_path(ours)[0][0], rtol=1e-6, atol=0)


def test_fedadam_differs_from_flower_only_by_its_stated_conventions():
    eta, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    flower = _flower_path(flwr_strategy.FedAdam(
        initial_parameters=ndarrays_to_parameters(START), eta=eta, beta_1=b1, beta_2=b2,
        tau=tau))
    ours = _course_path(aggregation.ServerAdam(eta, beta_1=b1, beta_2=b2, tau=tau))

    def adam(v0, corrected):
        weights = [w.copy() for w in START]
        m = [np.zeros_like(w) for w in START]
        v = [np.full_like(w, v0) for w in START]
        path = []
        for t, deltas in enumerate(UPDATES, start=1):
            share = SIZES / SIZES.sum()
            update = [sum(s * d[i] for s, d in zip(share, deltas, strict=True))
                      for i in range(len(START))]
            m = [b1 * a + (1 - b1) * u for a, u in zip(m, update, strict=True)]
            v = [b2 * a + (1 - b2) * u * u for a, u in zip(v, update, strict=True)]
            step = eta * np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1)) if corrected else eta
            weights = [w + step * a / (np.sqrt(b) + tau)
                       for w, a, b in zip(weights, m, v, strict=True)]
            path.append(weights)
        return path

    _assert_paths_close(flower, adam(0.0, corrected=True))
    _assert_paths_close(ours, adam(tau**2, corrected=False))
    assert not np.allclose(flower[0][0], ours[0][0], rtol=1e-3)


def test_fedprox_server_side_is_fedavg_and_mu_goes_to_the_clients():
    flower = flwr_strategy.FedProx(proximal_mu=0.5,
                                   initial_parameters=ndarrays_to_parameters(START))
    _assert_paths_close(_course_path(aggregation.ServerSGD(1.0)), _flower_path(flower))

    class _Manager:
        def num_available(self):
            return 3

        def sample(self, num_clients, min_num_clients=None, criterion=None):
            return [object()] * num_clients

    instructions = flower.configure_fit(1, ndarrays_to_parameters(START), _Manager())
    assert instructions and all(fit.config["proximal_mu"] == 0.5 for _, fit in instructions)
