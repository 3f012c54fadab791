"""Notebook 10's library: Synthetic(alpha, beta), FedProx with stragglers, SCAFFOLD, FedYogi, on
the one training loop and both engines (Ditto, fine-tuning and per-client evaluation are tested
in tests/test_personalisation.py, with this file's tiny federation and reference).

Every algorithm is checked against a plain numpy from-scratch version (float64) on a tiny
softmax-regression federation: 5 clients of 6-17 examples, 4 features, 10 classes. The
library trains in float32, so the tolerance is 2e-5 absolute on weights of size ~0.1-1 after a
few rounds (float32 rounding of ~100 SGD steps, measured below 2e-6). The fast engine and the
per-client loop are compared at 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

from fl_helpers import (
    aggregation,
    client,
    heterogeneity,
    models,
    personalisation,
    schedule,
    training,
)

FEATURES = 4


def _model_fn():
    return models.make_mlp((), input_shape=(FEATURES,), seed=0)


def _tiny(seed: int = 0, sizes=(6, 17, 9, 12, 8)) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate(sizes):
        x = (rng.normal(size=(n, FEATURES)) + k * 0.3).astype(np.float32)
        y = ((np.arange(n) + k) % 3 + 3 * (k % 2)).astype(np.int64)  # labels differ by client
        out.append((x, y))
    return out


DATASETS = _tiny()
TEST = _tiny(1, sizes=(5, 5, 5, 5, 5))
W0 = [w.astype(np.float64) for w in _model_fn().get_weights()]
LOCAL = {"local_epochs": 2, "batch_size": 4, "client_learning_rate": 0.1}


# ------------------------------------------------------------ from-scratch numpy references


def _gradient(w, x, y):
    """Gradient of the mean cross-entropy of softmax regression ``x W + b`` (numpy, float64)."""
    kernel, bias = w
    z = x @ kernel + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return [x.T @ p / len(y), p.mean(axis=0)]


def _local_sgd(start, anchor, x, y, batches, lr, *, mu=0.0, correction=None):
    """Local SGD with FedProx's proximal term and SCAFFOLD's correction, from scratch."""
    w = [a.copy() for a in start]
    for batch in batches:
        g = _gradient(w, x[batch].astype(np.float64), y[batch])
        for i in range(len(w)):
            step = g[i] + mu * (w[i] - anchor[i])
            if correction is not None:
                step = step + correction[i]
            w[i] = w[i] - lr * step
    return w


def _batches(n, t, k, seed=0, epochs=LOCAL["local_epochs"], batch_size=LOCAL["batch_size"]):
    return schedule.client_batches(n, local_epochs=epochs, batch_size=batch_size,
                                   rng=np.random.default_rng(schedule.client_seed(seed, t, k)))


def _rounds(num_rounds, m, seed=0):
    return [schedule.sample_clients(len(DATASETS), m, seed=seed, round_index=t)
            for t in range(num_rounds)]


def _run(algorithm, engine, num_rounds=3, m=3, optimizer=None, rule=None):
    return training.run_fedavg(_model_fn, DATASETS, num_rounds=num_rounds, clients_per_round=m,
                               **LOCAL, seed=0, progress=False, engine=engine,
                               client_algorithm=algorithm, server_optimizer=optimizer,
                               aggregation_rule=rule)


def _close(library, reference, atol=2e-5):
    for a, b in zip(library, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


# --------------------------------------------------------------------------- Synthetic data


def test_synthetic_is_seeded_shaped_and_power_law():
    fed = heterogeneity.synthetic_federation(1.0, 1.0, seed=3)
    again = heterogeneity.synthetic_federation(1.0, 1.0, seed=3)
    assert fed.num_clients == 30 and fed.description == "Synthetic(1, 1), 30 clients, seed 3"
    for (x, y), (x2, y2), (_xt, yt) in zip(fed.train, again.train, fed.test, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1] == 60
        assert y.min() >= 0 and y.max() < 10
        n = len(y) + len(yt)
        assert n >= 50 and abs(len(yt) - 0.2 * n) <= 1
    # log(n_k - 50) ~ N(4, 2): heavy-tailed sizes, the largest far above the median.
    sizes = fed.sizes + np.asarray([len(y) for _, y in fed.test])
    assert sizes.max() > 3 * np.median(sizes)
    assert heterogeneity.synthetic_federation(1.0, 1.0, seed=4).sizes.tolist() != \
        fed.sizes.tolist()


def test_synthetic_alpha_beta_control_the_heterogeneity():
    # beta moves the clients' input means apart; alpha their labelling models (label shares).
    def spread_of_means(fed):
        return np.std([x.mean() for x, _ in fed.train])

    def label_disagreement(fed):
        shares = np.array([np.bincount(y, minlength=10) / len(y) for _, y in fed.train])
        return np.abs(shares - shares.mean(axis=0)).sum(axis=1).mean()

    iid = heterogeneity.synthetic_federation(0, 0, iid=True, seed=0)
    homogeneous = heterogeneity.synthetic_federation(0, 0, seed=0)
    mixed = heterogeneity.synthetic_federation(1, 1, seed=0)
    assert spread_of_means(iid) < 0.15 < spread_of_means(mixed)
    assert label_disagreement(iid) < label_disagreement(mixed)
    assert label_disagreement(homogeneous) < label_disagreement(mixed) + 0.5
    # The input covariance is diagonal with Sigma_jj = j^-1.2 (IID: v = 0 for every client).
    x = np.concatenate([x for x, _ in iid.train])
    np.testing.assert_allclose(x.var(axis=0)[[0, 9, 59]], [1.0, 10**-1.2, 60**-1.2], rtol=0.1)


# ---------------------------------------------------------------------- the engines agree


def test_local_work_is_the_same_on_both_engines():
    model = models.make_mlp((6,), input_shape=(FEATURES,), activation="tanh")
    w = [a.astype(np.float32) for a in model.get_weights()]
    rng = np.random.default_rng(5)
    loop = client.LoopTrainer(model, DATASETS, **LOCAL, seed=2)
    fast = training.make_trainer(model, DATASETS, **LOCAL, seed=2, engine="fast")
    sampled = np.array([4, 0, 2])
    work = client.LocalWork(
        proximal_mu=0.7,
        corrections=[[0.1 * rng.normal(size=a.shape).astype(np.float32) for a in w]
                     for _ in sampled],
        starts=[[a + 0.1 * rng.normal(size=a.shape).astype(np.float32) for a in w]
                for _ in sampled],
        max_steps=np.array([3, 100, 0]))
    a, b = loop.train(w, sampled, 1, work), fast.train(w, sampled, 1, work)
    for da, db in zip(a.deltas, b.deltas, strict=True):
        _close(da, db, atol=1e-5)
    # Zero steps: the update is the start minus the global weights.
    _close(b.deltas[2], [s - g for s, g in zip(work.starts[2], w, strict=True)], atol=1e-7)
    # A LocalWork that asks nothing is plain local SGD.
    plain = fast.train(w, sampled, 1, client.LocalWork(max_steps=np.full(3, 10**6)))
    for da, db in zip(loop.train(w, sampled, 1).deltas, plain.deltas, strict=True):
        _close(da, db, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: heterogeneity.FedProx(0.5, straggler_fraction=0.5),
    lambda: heterogeneity.FedProx(0.0, straggler_fraction=0.6, drop_stragglers=True),
    lambda: heterogeneity.SCAFFOLD(),
    lambda: personalisation.Ditto(0.3, personal_steps=3),
], ids=["fedprox", "fedavg_drop", "scaffold", "ditto"])
def test_algorithms_run_the_same_on_the_fast_engine_and_the_loop(make):
    runs = {}
    for engine in ("fast", "loop"):
        algorithm = make()
        history = _run(algorithm, engine)
        assert history.engine.value == engine
        runs[engine] = (history.final_weights, algorithm)
    _close(runs["fast"][0], runs["loop"][0], atol=1e-5)
    if isinstance(runs["fast"][1], personalisation.Ditto):
        for v_fast, v_loop in zip(runs["fast"][1].personal_weights,
                                  runs["loop"][1].personal_weights, strict=True):
            _close(v_fast, v_loop, atol=1e-5)


# --------------------------------------------------------------- FedProx, from scratch


def test_fedprox_with_stragglers_equals_from_scratch():
    mu, fraction, seed = 0.5, 0.5, 4
    history = training.run_fedavg(
        _model_fn, DATASETS, num_rounds=3, clients_per_round=4, **LOCAL, progress=False,
        engine="loop", client_algorithm=heterogeneity.FedProx(mu, straggler_fraction=fraction,
                                                              seed=seed))
    w = [a.copy() for a in W0]
    for t, sampled in enumerate(_rounds(3, 4)):
        epochs = heterogeneity.straggler_epochs(len(sampled), straggler_fraction=fraction,
                                                local_epochs=2, seed=seed, round_index=t)
        new, sizes = [], []
        for k, e in zip(sampled, epochs, strict=True):
            x, y = DATASETS[k]
            per_epoch = -(-len(y) // 4)
            batches = _batches(len(y), t, k)[:e * per_epoch]  # a straggler's first e epochs
            new.append(_local_sgd(w, w, x, y, batches, 0.1, mu=mu))
            sizes.append(len(y))
        share = np.asarray(sizes) / sum(sizes)
        w = [sum(s * c[i] for s, c in zip(share, new, strict=True)) for i in range(2)]
    _close(history.final_weights, w)


def test_fedavg_drops_stragglers_and_fedprox_keeps_them():
    fraction = 0.5
    late = heterogeneity.stragglers(4, straggler_fraction=fraction, seed=0, round_index=0)
    epochs = heterogeneity.straggler_epochs(4, straggler_fraction=fraction, local_epochs=5,
                                            seed=0, round_index=0)
    assert late.sum() == 2 and np.all(epochs[~late] == 5) and np.all(epochs[late] >= 1)
    assert np.all(epochs[late] <= 5)
    # FedAvg with stragglers dropped = FedAvg on the non-stragglers only.
    dropped = training.run_fedavg(
        _model_fn, DATASETS, num_rounds=1, clients_per_round=4, **LOCAL, progress=False,
        engine="loop", diagnostics=False,
        client_algorithm=heterogeneity.FedProx(0.0, straggler_fraction=fraction,
                                               drop_stragglers=True))
    sampled = _rounds(1, 4)[0]
    kept = sampled[~late]
    new = [_local_sgd(W0, W0, *DATASETS[k], _batches(len(DATASETS[k][1]), 0, k), 0.1)
           for k in kept]
    share = np.asarray([len(DATASETS[k][1]) for k in kept], np.float64)
    share /= share.sum()
    _close(dropped.final_weights,
           [sum(s * c[i] for s, c in zip(share, new, strict=True)) for i in range(2)])
    # mu = 0 and no stragglers is FedAvg exactly (the same trainer path is skipped).
    plain = _run(None, "loop")
    _close(_run(heterogeneity.FedProx(0.0), "loop").final_weights, plain.final_weights, atol=0)


# --------------------------------------------------------------- SCAFFOLD, from scratch


def _scaffold_from_scratch(num_rounds, m, eta_g, lr=0.1):
    n_clients = len(DATASETS)
    w = [a.copy() for a in W0]
    c = [np.zeros_like(a) for a in W0]
    c_i = [[np.zeros_like(a) for a in W0] for _ in range(n_clients)]
    for t, sampled in enumerate(_rounds(num_rounds, m)):
        dys, dcs = [], []
        for k in sampled:
            x, y = DATASETS[k]
            batches = _batches(len(y), t, k)
            y_k = _local_sgd(w, w, x, y, batches, lr,
                             correction=[cc - ci for cc, ci in zip(c, c_i[k], strict=True)])
            steps = len(batches)
            new_ci = [ci - cc + (xw - yw) / (steps * lr)   # option II
                      for ci, cc, xw, yw in zip(c_i[k], c, w, y_k, strict=True)]
            dys.append([yw - xw for yw, xw in zip(y_k, w, strict=True)])
            dcs.append([n - o for n, o in zip(new_ci, c_i[k], strict=True)])
            c_i[k] = new_ci
        w = [xw + eta_g * np.mean([d[i] for d in dys], axis=0) for i, xw in enumerate(w)]
        c = [cc + len(sampled) / n_clients * np.mean([d[i] for d in dcs], axis=0)
             for i, cc in enumerate(c)]
    return w, c, c_i


def test_scaffold_equals_from_scratch():
    algorithm = heterogeneity.SCAFFOLD()
    history = _run(algorithm, "loop", num_rounds=4, m=3,
                   optimizer=aggregation.ServerSGD(0.8))
    w, c, c_i = _scaffold_from_scratch(4, 3, eta_g=0.8)
    _close(history.final_weights, w)
    _close(algorithm.server_control, c)
    for mine, theirs in zip(algorithm.client_controls, c_i, strict=True):
        _close(mine, theirs)
    assert any(np.abs(ci[0]).max() > 0 for ci in algorithm.client_controls)


def test_scaffold_doubles_the_upload():
    weights = _model_fn().get_weights()
    one = 4 * sum(w.size for w in weights)
    assert training.ClientAlgorithm().upload_bytes(weights) == one
    assert heterogeneity.SCAFFOLD().upload_bytes(weights) == 2 * one
    assert heterogeneity.upload_bytes_per_round(heterogeneity.SCAFFOLD(), weights,
                                                clients_per_round=10) == 20 * one
    assert heterogeneity.upload_bytes_per_round(personalisation.Ditto(), weights,
                                                clients_per_round=10) == 10 * one


def test_stateful_algorithms_refuse_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="checkpoint must be None"):
        training.run_fedavg(_model_fn, DATASETS, num_rounds=1, clients_per_round=2, **LOCAL,
                            progress=False, client_algorithm=heterogeneity.SCAFFOLD(),
                            checkpoint=tmp_path / "c.npz")


# ------------------------------------------------------------------ FedYogi, from scratch


def test_server_yogi_equals_reddi_algorithm_2():
    rng = np.random.default_rng(0)
    eta, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    weights = [rng.normal(size=(3, 2)).astype(np.float32)]
    optimizer = aggregation.ServerYogi(eta, beta_1=b1, beta_2=b2, tau=tau)
    x, m, v = weights[0].astype(np.float64), np.zeros((3, 2)), np.full((3, 2), tau**2)
    for _ in range(6):
        delta = rng.normal(scale=0.1, size=(3, 2)).astype(np.float32)
        weights = optimizer.apply(weights, [delta])
        m = b1 * m + (1 - b1) * delta
        v = v - (1 - b2) * delta**2 * np.sign(v - delta**2)
        x = x + eta * m / (np.sqrt(v) + tau)
        np.testing.assert_allclose(weights[0], x, rtol=1e-5, atol=1e-6)
    # Yogi's v moves additively: after one huge update it rises by (1 - beta_2) delta^2 at most.
    big = aggregation.ServerYogi(eta)
    big.apply([np.zeros(1, np.float32)], [np.array([10.0], np.float32)])
    assert big._v is not None and big._v[0][0] <= 1e-6 + 0.01 * 100


def test_server_yogi_runs_on_the_loop_with_either_engine():
    runs = [_run(None, engine, optimizer=aggregation.ServerYogi(0.05)).final_weights
            for engine in ("fast", "loop")]
    _close(runs[0], runs[1], atol=1e-4)


# --------------------------------------------------------- Ditto and fine-tuning, from scratch


# ------------------------------------------------------------------ per-client evaluation


# ------------------------------------------------------------------------ bad inputs (fuzz)

_BAD_NON_NEGATIVE = [None, "x", -0.1, float("nan"), float("inf"), True, [1.0]]
_BAD_FRACTION = _BAD_NON_NEGATIVE + [1.5]
_BAD_INT = [None, "x", -1, 1.5, True]
_BAD_COUNT = _BAD_INT + [0]
_BAD_OPTIONAL_INT = _BAD_INT[1:]  # None is valid (no cap)
_BAD_FLAG = [None, "x", 1, 0.0]
_BAD_MODEL_FN = [None, 3, _model_fn(), lambda: 3]
_BAD_DATASETS = [None, "x", [], [(np.zeros((2, 3), np.float32), np.zeros(2, np.int64))],
                 [(np.zeros((2, FEATURES), np.float32), np.zeros(3, np.int64))]]
_BAD_WEIGHTS = [None, "x", [np.zeros(3)], [np.zeros((FEATURES, 10)), np.zeros(9)]]
_TRAINER = training.make_trainer(_model_fn(), DATASETS, **LOCAL, engine="loop")

#: (function, valid keyword arguments, {argument: [bad values]}) for tests/test_bad_inputs.py.
FUZZ = [
    (heterogeneity.synthetic_federation, {"alpha": 0.5, "beta": 0.5, "num_clients": 3},
     {"alpha": _BAD_NON_NEGATIVE, "beta": _BAD_NON_NEGATIVE,
      "num_clients": _BAD_COUNT + [10**5], "held_out_fraction": [None, "x", 0.0, 1.0, -0.5,
                                                                 float("nan")],
      "iid": _BAD_FLAG, "seed": _BAD_INT}),
    (heterogeneity.straggler_epochs,
     {"num_sampled": 4, "straggler_fraction": 0.5, "local_epochs": 3, "seed": 0,
      "round_index": 0},
     {"num_sampled": _BAD_INT, "straggler_fraction": _BAD_FRACTION,
      "local_epochs": _BAD_COUNT, "seed": _BAD_INT, "round_index": _BAD_INT}),
    (heterogeneity.stragglers,
     {"num_sampled": 4, "straggler_fraction": 0.5, "seed": 0, "round_index": 0},
     {"num_sampled": _BAD_INT, "straggler_fraction": _BAD_FRACTION, "seed": _BAD_INT,
      "round_index": _BAD_INT}),
    (heterogeneity.FedProx, {"proximal_mu": 0.1},
     {"proximal_mu": _BAD_NON_NEGATIVE, "straggler_fraction": _BAD_FRACTION,
      "drop_stragglers": _BAD_FLAG, "seed": _BAD_INT}),
    (heterogeneity.SCAFFOLD, {}, {"uniform_weights": _BAD_FLAG}),
    (heterogeneity.upload_bytes_per_round,
     {"algorithm": heterogeneity.SCAFFOLD(), "weights": W0, "clients_per_round": 3},
     {"algorithm": [None, "scaffold", aggregation.FedAvg()], "weights": [None, "x", [], W0[0]],
      "clients_per_round": _BAD_INT}),
    (personalisation.Ditto, {"lam": 0.1},
     {"lam": _BAD_NON_NEGATIVE, "personal_steps": _BAD_OPTIONAL_INT + [0]}),
    (personalisation.fine_tune,
     {"model_fn": _model_fn, "global_weights": W0, "client_datasets": DATASETS, **LOCAL},
     {"model_fn": _BAD_MODEL_FN, "global_weights": _BAD_WEIGHTS,
      "client_datasets": _BAD_DATASETS, "local_epochs": _BAD_COUNT,
      "batch_size": [0, -1, 1.5, "x", True], "client_learning_rate": _BAD_NON_NEGATIVE + [0.0],
      "max_steps": _BAD_OPTIONAL_INT, "seed": _BAD_INT, "engine": [None, "gpu", 3]}),
    (personalisation.evaluate_per_client,
     {"model_fn": _model_fn, "client_test_data": TEST, "weights": W0},
     {"model_fn": _BAD_MODEL_FN, "client_test_data": _BAD_DATASETS,
      "weights": _BAD_WEIGHTS[1:], "personal_weights": ["x", W0[0], [W0] * 2, [None] * 5]}),
    (training.make_trainer, {"model": _model_fn(), "client_datasets": DATASETS, **LOCAL},
     {"model": [None, _model_fn, "x"], "client_datasets": _BAD_DATASETS,
      "local_epochs": _BAD_COUNT, "batch_size": [0, -1, 1.5, "x", True],
      "client_learning_rate": _BAD_NON_NEGATIVE + [0.0], "seed": _BAD_INT,
      "engine": [None, "gpu", 3]}),
    (training.client_sizes, {"trainer": _TRAINER}, {"trainer": [None, "x", DATASETS]}),
    (training.local_steps, {"trainer": _TRAINER, "clients": [0, 1]},
     {"trainer": [None, "x", DATASETS], "clients": [None, "x", [5], [-1], [0.5], [[0]],
                                                   [True]]}),
    (aggregation.ServerYogi, {"server_learning_rate": 0.01},
     {"server_learning_rate": _BAD_NON_NEGATIVE + [0.0], "beta_1": _BAD_NON_NEGATIVE + [1.0],
      "beta_2": _BAD_NON_NEGATIVE + [1.0], "tau": _BAD_NON_NEGATIVE + [0.0],
      "initial_second_moment": _BAD_NON_NEGATIVE[1:]}),
]


def test_run_fedavg_names_a_bad_client_algorithm():
    with pytest.raises(TypeError, match="client_algorithm must be a training.ClientAlgorithm"):
        training.run_fedavg(_model_fn, DATASETS, num_rounds=1, clients_per_round=2, **LOCAL,
                            progress=False, client_algorithm="fedprox")


# ------------------------------------------------------------------------ with DP-FedAvg


def test_fedprox_composes_with_dp_fedavg_and_scaffold_is_refused():
    # FedProx only changes the clients' training: with noise off and C huge, DP-FedAvg of
    # FedProx clients is FedProx with the fixed divisor q N instead of sum n_k (uniform
    # sampling q = 1 here: every client every round, divided by N = 5).
    settings = dict(num_rounds=2, sampling_probability=1.0, **LOCAL, clipping_norm=1e6,
                    noise_multiplier=0.0, expected_clients=5.0,
                    progress=False, engine="loop", noise="float")
    with pytest.warns(UserWarning, match="reproducible noise"):
        dp = training.run_dp_fedavg(_model_fn, DATASETS, **settings,
                                    randomness=schedule.PrivateRandomness.reproducible(0),
                                    client_algorithm=heterogeneity.FedProx(0.5))
    w = [a.copy() for a in W0]
    for t in range(2):
        new = [_local_sgd(w, w, x, y, _batches(len(y), t, k), 0.1, mu=0.5)
               for k, (x, y) in enumerate(DATASETS)]
        w = [wi + sum(c[i] - wi for c in new) / 5 for i, wi in enumerate(w)]
    _close(dp.final_weights, w, atol=1e-4)
    with pytest.raises(ValueError, match="SCAFFOLD.*uploads 2 model-sized arrays"):
        training.run_dp_fedavg(_model_fn, DATASETS, **settings,
                               client_algorithm=heterogeneity.SCAFFOLD())
