"""Notebook 03's Try-it panel (fl_helpers.fedavg_widgets): the summary line and rerunning FedAvg."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import pytest

from fl_helpers import fedavg_widgets


def _fake_history(accuracy=(0.5, 0.8, 0.931), weights=None):
    import types

    import numpy as np

    weights = weights if weights is not None else [np.zeros((784, 10), np.float32),
                                                   np.zeros(10, np.float32)]
    return types.SimpleNamespace(rounds=np.arange(1, len(accuracy) + 1),
                                 test_accuracy=np.array(accuracy), final_weights=weights)


def test_fedavg_summary_line():
    line = fedavg_widgets.fedavg_summary_line(_fake_history(), split="IID", num_clients=100,
                                       clients_per_round=10, local_epochs=1, batch_size=10)
    # Softmax regression: 7,850 float32 parameters, 2 * 10 * 7,850 * 4 bytes = 0.628 MB.
    assert line == ("IID, q = 0.1 (10 of 100 clients), E = 1, B = 10: test accuracy 93.1% "
                    "after 3 rounds; 0.6 MB per round (up + down)")
    line = fedavg_widgets.fedavg_summary_line(_fake_history(), split="non-IID", num_clients=100,
                                       clients_per_round=1, local_epochs=5, batch_size=None)
    assert "q = 0.01 (1 of 100 clients), E = 5, B = full" in line
    with pytest.raises(ValueError, match="no test accuracy"):
        fedavg_widgets.fedavg_summary_line(_fake_history(accuracy=()), split="IID", num_clients=10,
                                    clients_per_round=1, local_epochs=1, batch_size=10)


def test_fedavg_explorer_reruns_with_the_chosen_settings(monkeypatch):
    from fl_helpers import models, training

    calls = []

    def fake_run_fedavg(model_fn, clients, **kwargs):
        calls.append(dict(kwargs, clients=clients))
        return _fake_history()

    monkeypatch.setattr(training, "run_fedavg", fake_run_fedavg)
    summaries = []
    monkeypatch.setattr(fedavg_widgets, "fedavg_summary_line",
                        lambda history, **kwargs: summaries.append(kwargs) or "line")
    iid, noniid = [("iid", k) for k in range(20)], [("noniid", k) for k in range(20)]
    panel = fedavg_widgets.fedavg_explorer(models.make_2nn, {"IID": iid, "non-IID": noniid},
                                    ("x", "y"), num_rounds=3, client_learning_rate=0.05)
    controls = panel.controls
    assert isinstance(controls["local_epochs"], ipywidgets.IntSlider)
    assert isinstance(controls["clients_per_round"], ipywidgets.SelectionSlider)
    assert isinstance(controls["batch_size"], ipywidgets.SelectionSlider)
    # One training for the starting settings, reused for the first drawing; then E = 2, one
    # step of the E slider away, is trained ahead in the background.
    panel.prefetcher.wait()
    assert len(summaries) == 1
    assert [c["local_epochs"] for c in calls] == [1, 2]
    first = calls[0]
    assert first["clients"] is iid
    assert (first["num_rounds"], first["clients_per_round"], first["local_epochs"],
            first["batch_size"], first["client_learning_rate"]) == (3, 2, 1, 10, 0.05)
    assert first["test_data"] == ("x", "y") and first["progress"] is False
    controls["local_epochs"].value = 2  # prefetched: nothing is trained for the move itself
    assert summaries[-1]["local_epochs"] == 2
    panel.prefetcher.wait()
    assert sorted(c["local_epochs"] for c in calls) == [1, 2, 3]  # E = 1 is known, 3 is new
    controls["local_epochs"].value = 4
    panel.prefetcher.wait()
    assert summaries[-1]["local_epochs"] == 4
    assert sorted(c["local_epochs"] for c in calls) == [1, 2, 3, 4, 5]  # each trained once
    # q = 0.01 of 20 clients rounds to 0: at least 1 client.
    assert [m for _, m in controls["clients_per_round"].options] == [1, 2, 4, 10]
    controls["clients_per_round"].value = 1
    panel.prefetcher.wait()
    assert summaries[-1]["clients_per_round"] == 1
    assert {c["local_epochs"] for c in calls if c["clients_per_round"] == 1} == {3, 4, 5}
    controls["batch_size"].value = 0  # the "full" option
    assert summaries[-1]["batch_size"] is None
    controls["split"].value = "non-IID"
    panel.prefetcher.wait()
    assert summaries[-1]["split"] == "non-IID"
    assert {id(c["clients"]) for c in calls if c["batch_size"] is None} == {id(iid), id(noniid)}
    # Back to a setting seen before: nothing is trained again.
    before = len(calls)
    controls["split"].value = "IID"
    panel.prefetcher.wait()
    assert len(calls) == before and summaries[-1]["split"] == "IID"


def test_fedavg_explorer_rejects_bad_start():
    from fl_helpers import models

    splits = {"IID": [None] * 10}
    with pytest.raises(ValueError, match="clients_per_round must be one of"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, clients_per_round=3)
    with pytest.raises(ValueError, match="batch_size must be one of"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, batch_size=7)
    with pytest.raises(ValueError, match="local_epochs must be <= 5"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, local_epochs=6)
    with pytest.raises(ValueError, match="split must be one of"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, splits, None, split="shards")
    with pytest.raises(ValueError, match="same number of clients"):
        fedavg_widgets.fedavg_explorer(models.make_2nn, {"a": [None] * 10, "b": [None] * 5}, None)
