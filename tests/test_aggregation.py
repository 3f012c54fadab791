"""FedAvg's weighted mean and the exponential average (fl_helpers.aggregation)."""

import numpy as np
import pytest

from fl_helpers import aggregation


def _random_weights(seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)]


def test_fedavg_of_identical_clients_is_that_client():
    client = _random_weights(0)
    averaged = aggregation.fedavg([client, client, client], [5, 17, 2])
    for a, b in zip(averaged, client, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_fedavg_weights_follow_the_example_counts():
    a, b, c = _random_weights(1), _random_weights(2), _random_weights(3)
    averaged = aggregation.fedavg([a, b, c], [1, 3, 6])
    for i in range(2):
        expected = 0.1 * a[i].astype(np.float64) + 0.3 * b[i] + 0.6 * c[i]
        np.testing.assert_allclose(averaged[i], expected, rtol=1e-6, atol=1e-7)
    # Only the proportions matter.
    scaled = aggregation.fedavg([a, b, c], [10.0, 30.0, 60.0])
    for x, y in zip(averaged, scaled, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_fedavg_differs_from_the_unweighted_mean():
    a, b = _random_weights(1), _random_weights(2)
    averaged = aggregation.fedavg([a, b], [1, 9])
    assert not np.allclose(averaged[0], (a[0] + b[0]) / 2)


@pytest.mark.parametrize(
    ("clients", "counts", "error", "match"),
    [
        ([], [], ValueError, "at least one client"),
        ([_random_weights(0)], [1, 2], ValueError, "one count per client"),
        ([_random_weights(0), _random_weights(1)[:1]], [1, 1], ValueError,
         r"client_weights\[1\] must have 2 layers"),
        ([_random_weights(0), [np.zeros((4, 3)), np.zeros(4)]], [1, 1], ValueError,
         r"client_weights\[1\]\[0\] must have shape \(3, 4\)"),
        ([_random_weights(0), [np.full((3, 4), np.nan), np.zeros(4)]], [1, 1], ValueError,
         r"client_weights\[1\]\[0\] must be finite"),
        ([_random_weights(0), [np.zeros((3, 4)), np.full(4, np.inf)]], [1, 1], ValueError,
         r"client_weights\[1\]\[1\] must be finite"),
        ([_random_weights(0), _random_weights(1)], [1, 0], ValueError,
         r"num_examples\[1\] must be > 0"),
        ([_random_weights(0), _random_weights(1)], [-3, 1], ValueError,
         r"num_examples\[0\] must be > 0"),
        ([_random_weights(0), _random_weights(1)], [1, float("inf")], ValueError,
         r"num_examples\[1\] must be finite"),
        ([_random_weights(0), _random_weights(1)], [1, float("nan")], ValueError,
         r"num_examples\[1\] must be finite"),
        (np.zeros((2, 3)), [1, 1], TypeError, "client_weights must be a list"),
    ],
)
def test_fedavg_rejects_bad_input(clients, counts, error, match):
    with pytest.raises(error, match=match):
        aggregation.fedavg(clients, counts)


def test_exponential_average_follows_the_global_models_without_changing_them():
    from fl_helpers import aggregation

    plain = aggregation.ServerSGD(0.5, momentum=0.9)
    averaged = aggregation.ExponentialAverage(aggregation.ServerSGD(0.5, momentum=0.9),
                                              decay=0.8)
    weights_a = weights_b = [np.zeros(3, np.float32)]
    expected = None
    for t in range(5):
        update = [np.full(3, t + 1.0, np.float32)]
        weights_a = plain.apply(weights_a, update)
        weights_b = averaged.apply(weights_b, update)
        np.testing.assert_array_equal(weights_a[0], weights_b[0])  # training is unchanged
        expected = weights_b[0] if expected is None else 0.8 * expected + 0.2 * weights_b[0]
        np.testing.assert_allclose(averaged.averaged_weights[0], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="decay must be in"):
        aggregation.ExponentialAverage(plain, decay=1.0)
    with pytest.raises(TypeError, match="optimizer must be a ServerOptimizer"):
        aggregation.ExponentialAverage(averaged)


def test_fedavg_bytes_per_round_counts_down_and_up():
    from fl_helpers import aggregation, models

    weights = models.make_2nn(0).get_weights()
    assert aggregation.fedavg_bytes_per_round(weights, 10) == 2 * 10 * 199_210 * 4 == 15_936_800
    assert aggregation.fedavg_bytes_per_round(weights, 1) == 1_593_680
    with pytest.raises(ValueError, match="clients_per_round must be >= 1"):
        aggregation.fedavg_bytes_per_round(weights, 0)
