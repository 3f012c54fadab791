"""personalisation.evaluate_per_client evaluates Dense stacks in numpy: the same numbers as the
per-client loop's evaluator (client.evaluate), for clients of many different sizes (a compiled
evaluator would be traced and compiled again for every size)."""

from __future__ import annotations

import numpy as np
import pytest

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
