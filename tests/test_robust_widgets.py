"""Notebook 07's experiment and explorer (fl_helpers.robust_widgets)."""

import functools
import math

import numpy as np
import pytest

from fl_helpers import data


@pytest.fixture(scope="module")
def small_federation():
    (x, y), (x_test, y_test) = data.load_mnist()
    parts = data.partition_iid(2000, 10, rng=np.random.default_rng(0))
    return data.client_datasets(x[:2000], y[:2000], parts), (x_test[:1000], y_test[:1000])


def test_attack_experiment_backdoor_beats_fedavg_but_not_the_median(small_federation):
    from fl_helpers import robust_widgets
    clients, test = small_federation
    run = functools.partial(robust_widgets.attack_experiment, clients, test, attack="backdoor",
                            fraction=0.2, num_rounds=6)
    fedavg, median = run(defence="FedAvg"), run(defence="median")
    assert len(fedavg.malicious) == 2
    assert fedavg.backdoor_success > 0.8 and median.backdoor_success < 0.1
    assert median.final_accuracy > 0.7
    clean = robust_widgets.attack_experiment(clients, test, attack="none", fraction=0.0,
                                             defence="DP-FedAvg", num_rounds=2)
    assert clean.malicious.size == 0 and np.isfinite(clean.accuracy).all()
    with pytest.raises(ValueError, match="defence must be one of"):
        run(defence="average")
    with pytest.raises(ValueError, match="attack must be one of"):
        robust_widgets.attack_experiment(clients, test, attack="x", fraction=0.1,
                                         defence="FedAvg")


def test_robustness_explorer_redraws_and_reports_its_time(small_federation):
    from fl_helpers import robust_widgets, widgets
    clients, test = small_federation
    panel = robust_widgets.robustness_explorer(clients, test, num_rounds=3)
    assert isinstance(panel, widgets.Explorer)
    first = panel.last_seconds
    assert math.isfinite(first)
    panel.controls["defence"].value = "median"
    assert math.isfinite(panel.last_seconds)
    panel.controls["fraction"].value = 0.3
    assert set(panel.controls) == {"fraction", "defence", "attack"}
    with pytest.raises(ValueError, match="fraction must be one of"):
        robust_widgets.robustness_explorer(clients, test, fraction=0.25)
