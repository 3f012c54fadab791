"""Personalisation (fl_helpers.personalisation): Ditto and local fine-tuning against from-scratch
numpy, per-client evaluation and its summary. evaluate_per_client evaluates Dense stacks in numpy:
the same numbers as the per-client loop's evaluator (client.evaluate), for clients of many
different sizes (a compiled evaluator would be traced and compiled again for every size).

The tiny federation and the from-scratch reference come from tests/test_heterogeneity.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_heterogeneity import (
    DATASETS,
    LOCAL,
    TEST,
    W0,
    _batches,
    _close,
    _local_sgd,
    _model_fn,
    _rounds,
    _run,
)

from fl_helpers import client, models, personalisation


@pytest.mark.parametrize("hidden, activation", [((), "tanh"), ((7,), "tanh"), ((5, 4), "relu"),
                                                ((6,), "sigmoid")])
def test_dense_evaluation_equals_the_loop(hidden, activation):
    def model_fn():
        return models.make_mlp(hidden, activation=activation, input_shape=(3, 4), seed=1)

    rng = np.random.default_rng(0)
    test = [(rng.normal(size=(n, 3, 4)).astype(np.float32), rng.integers(0, 10, n))
            for n in (1, 2, 3, 5, 8, 13, 21)]
    model = model_fn()
    personal = [[w + 0.3 * rng.normal(size=w.shape).astype(np.float32)
                 for w in model.get_weights()] for _ in test]
    result = personalisation.evaluate_per_client(model_fn, test, personal_weights=personal)
    for k, (x, y) in enumerate(test):
        loss, accuracy = client.evaluate(model, personal[k], x, y)
        assert result.loss[k] == pytest.approx(loss, rel=1e-5, abs=1e-6)
        assert result.accuracy[k] == pytest.approx(accuracy)
    assert result.num_examples.tolist() == [1, 2, 3, 5, 8, 13, 21]


def test_ditto_equals_from_scratch():
    lam = 0.3
    algorithm = personalisation.Ditto(lam)
    history = _run(algorithm, "loop", num_rounds=3, m=3)
    w = [a.copy() for a in W0]
    personal = [[a.copy() for a in W0] for _ in DATASETS]
    for t, sampled in enumerate(_rounds(3, 3)):
        new, sizes = [], []
        for k in sampled:
            x, y = DATASETS[k]
            batches = _batches(len(y), t, k)
            new.append(_local_sgd(w, w, x, y, batches, 0.1))
            personal[k] = _local_sgd(personal[k], w, x, y, batches, 0.1, mu=lam)
            sizes.append(len(y))
        share = np.asarray(sizes) / sum(sizes)
        w = [sum(s * c[i] for s, c in zip(share, new, strict=True)) for i in range(2)]
    _close(history.final_weights, w)
    for mine, theirs in zip(algorithm.personal_weights, personal, strict=True):
        _close(mine, theirs)
    # The global model is FedAvg's: Ditto adds the personal models and changes nothing else.
    _close(history.final_weights, _run(None, "loop", num_rounds=3, m=3).final_weights, atol=0)


@pytest.mark.parametrize("engine", ["fast", "loop"])
def test_fine_tune_equals_from_scratch(engine):
    start = [a.astype(np.float32) for a in W0]
    tuned = personalisation.fine_tune(_model_fn, start, DATASETS, **LOCAL, seed=3,
                                      engine=engine)
    capped = personalisation.fine_tune(_model_fn, start, DATASETS, **LOCAL, seed=3,
                                       engine=engine, max_steps=2)
    for k, (x, y) in enumerate(DATASETS):
        batches = _batches(len(y), 0, k, seed=3)
        _close(tuned[k], _local_sgd(W0, W0, x, y, batches, 0.1))
        _close(capped[k], _local_sgd(W0, W0, x, y, batches[:2], 0.1))
    zero = personalisation.fine_tune(_model_fn, start, DATASETS, **LOCAL, max_steps=0)
    _close(zero[0], start, atol=0)


def _evaluate_from_scratch(w, x, y):
    z = x.astype(np.float64) @ w[0] + w[1]
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean()), float(np.mean(z.argmax(axis=1) == y))


def test_per_client_evaluation_and_its_summary():
    rng = np.random.default_rng(1)
    personal = [[a + 0.5 * rng.normal(size=a.shape) for a in W0] for _ in TEST]
    test = [(x, np.asarray(y)) for x, y in TEST]
    result = personalisation.evaluate_per_client(_model_fn, test, personal_weights=personal)
    globally = personalisation.evaluate_per_client(_model_fn, test, weights=W0)
    for k, (x, y) in enumerate(test):
        loss, accuracy = _evaluate_from_scratch(personal[k], x, y)
        assert result.accuracy[k] == pytest.approx(accuracy)
        assert result.loss[k] == pytest.approx(loss, rel=1e-5)
        assert globally.accuracy[k] == pytest.approx(_evaluate_from_scratch(W0, x, y)[1])
    summary = result.summary()
    assert summary["worst"] == result.accuracy.min()
    assert summary["median"] == np.median(result.accuracy)
    assert summary["p10"] == pytest.approx(np.percentile(result.accuracy, 10))
    assert summary["worst"] <= summary["p10"] <= summary["median"]
    assert summary["pooled"] == pytest.approx(
        np.sum(result.accuracy * result.num_examples) / np.sum(result.num_examples))


def test_per_client_evaluation_works_on_a_cnn_federation():
    rng = np.random.default_rng(0)
    test = [(rng.random((3, 28, 28)).astype(np.float32), np.array([0, 1, 2])) for _ in range(2)]
    model = models.make_cnn()
    result = personalisation.evaluate_per_client(models.make_cnn, test,
                                                 weights=model.get_weights())
    for k, (x, y) in enumerate(test):
        loss, accuracy = client.evaluate(model, model.get_weights(), x, y)
        assert result.accuracy[k] == pytest.approx(accuracy)
        assert result.loss[k] == pytest.approx(loss, rel=1e-5)


def test_per_client_evaluation_needs_exactly_one_model_argument():
    with pytest.raises(ValueError, match="exactly one of weights"):
        personalisation.evaluate_per_client(_model_fn, TEST)
    with pytest.raises(ValueError, match="exactly one of weights"):
        personalisation.evaluate_per_client(_model_fn, TEST, weights=W0,
                                            personal_weights=[W0] * 5)
    with pytest.raises(ValueError, match=r"personal_weights must hold one model per client \(5"):
        personalisation.evaluate_per_client(_model_fn, TEST, personal_weights=[W0] * 4)
