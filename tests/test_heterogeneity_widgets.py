"""Notebook 10's per-client widget: the Dirichlet federation, the summary it draws, one move."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from fl_helpers import data, heterogeneity_widgets


@pytest.fixture(scope="module")
def mnist():
    (x, y), _ = data.load_mnist()
    return data.downsample(x[:3000], 2).reshape(3000, 196), y[:3000]


def _tiny(rows: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 4)).astype(np.float32), rng.integers(0, 10, rows)


X_TINY, Y_TINY = _tiny()


def test_dirichlet_federation_splits_everything_once(mnist):
    x, y = mnist
    fed = heterogeneity_widgets.dirichlet_federation(x, y, alpha=0.1, seed=3)
    again = heterogeneity_widgets.dirichlet_federation(x, y, alpha=0.1, seed=3)
    assert fed.num_clients == heterogeneity_widgets.NUM_CLIENTS
    total = sum(len(b) for _, b in fed.train) + sum(len(b) for _, b in fed.test)
    assert total == len(y)
    for (xa, ya), (xb, yb), (_, yt) in zip(fed.train, again.train, fed.test, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        assert len(yt) >= 1 and abs(len(yt) - (len(ya) + len(yt)) / 5) <= 1

    def labels_per_client(alpha):
        federation = heterogeneity_widgets.dirichlet_federation(x, y, alpha=alpha, seed=3)
        return np.mean([len(np.unique(b)) for _, b in federation.train])

    assert labels_per_client(0.05) < 5 < labels_per_client(100.0)


def test_summary_is_reproducible_and_fine_tuning_helps_non_iid_clients(mnist):
    x, y = mnist
    a = heterogeneity_widgets.per_client_summary(x, y, alpha=0.1, proximal_mu=0.1)
    b = heterogeneity_widgets.per_client_summary(x, y, alpha=0.1, proximal_mu=0.1)
    for name in heterogeneity_widgets.METHODS:
        np.testing.assert_array_equal(a["accuracy"][name], b["accuracy"][name])
        assert a["accuracy"][name].shape == (heterogeneity_widgets.NUM_CLIENTS,)
    # Few labels per client: a few local steps from the global model serve each client better.
    assert (np.median(a["accuracy"]["FedAvg + fine-tuning"])
            > np.median(a["accuracy"]["FedAvg"]) + 0.05)
    line = heterogeneity_widgets.summary_line(a)
    assert line.startswith("Dirichlet(0.1), mu = 0.1. FedAvg: median ")
    assert line.count("worst") == 3


def test_draw_has_one_panel_with_every_client():
    summary = {"alpha": 0.3, "proximal_mu": 1.0,
               "accuracy": {name: np.linspace(0, 1, 20) for name in heterogeneity_widgets.METHODS}}
    fig = heterogeneity_widgets.draw_per_client(summary)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert "Dirichlet(0.3)" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][1] == "FedProx μ = 1"


def test_slider_move_redraws_once_and_remembers():
    first = heterogeneity_widgets.per_client_summary(X_TINY, Y_TINY, alpha=0.1, proximal_mu=0.1)
    panel = heterogeneity_widgets.per_client_explorer(X_TINY, Y_TINY, alpha=0.1, proximal_mu=0.1,
                                                      first_summary=first)
    assert panel.output.outputs[0]["text"] == heterogeneity_widgets.summary_line(first) + "\n"
    changes = []
    panel.output.observe(lambda change: changes.append(change["new"]), names="outputs")
    panel.controls["alpha"].value = 1.0
    assert len(changes) == 1
    assert [o["output_type"] for o in changes[0]] == ["stream", "display_data"]
    assert changes[0][0]["text"].startswith("Dirichlet(1), mu = 0.1.")
    panel.controls["alpha"].value = 0.1  # seen before: the same text again
    assert changes[-1][0]["text"] == heterogeneity_widgets.summary_line(first) + "\n"


def test_first_summary_must_match_the_sliders():
    first = heterogeneity_widgets.per_client_summary(X_TINY, Y_TINY, alpha=0.1, proximal_mu=0.1)
    with pytest.raises(ValueError, match="first_summary"):
        heterogeneity_widgets.per_client_explorer(X_TINY, Y_TINY, alpha=1.0, proximal_mu=0.1,
                                                  first_summary=first)


_SUMMARY = {"alpha": 0.1, "proximal_mu": 0.1,
            "accuracy": {name: np.full(20, 0.5) for name in heterogeneity_widgets.METHODS}}
_METHODS = heterogeneity_widgets.METHODS
_BAD_SUMMARY = [None, 3, "x", {}, {"alpha": 0.1, "proximal_mu": 0.1},
                {**_SUMMARY, "accuracy": {"FedAvg": np.ones(3)}},
                {**_SUMMARY, "accuracy": {n: np.full(3, 2.0) for n in _METHODS}},
                {**_SUMMARY, "accuracy": {n: np.full(3, np.nan) for n in _METHODS}},
                {**_SUMMARY, "accuracy": {n: "x" for n in _METHODS}}]
_BAD_X = [None, "x", np.ones(5), np.ones((10, 4)), np.full((120, 4), np.nan), [["a"]]]
_BAD_Y = [None, "x", np.ones(120), np.zeros((120, 1), dtype=int), np.zeros(7, dtype=int),
          np.full(120, 10), np.full(120, -1)]
_BAD_ALPHA = [None, "x", 0.0, -1.0, 0.001, 1e4, float("nan"), float("inf")]
_BAD_MU = [None, "x", -1.0, 11.0, float("nan"), float("inf")]
_BAD_SEED = [None, -1, 1.5, "0"]

#: (function, valid keyword arguments, {argument: [bad values]}) for tests/test_bad_inputs.py.
FUZZ = [
    (heterogeneity_widgets.dirichlet_federation, {"x": X_TINY, "y": Y_TINY, "alpha": 0.5},
     {"x": _BAD_X, "y": _BAD_Y, "alpha": _BAD_ALPHA, "seed": _BAD_SEED}),
    (heterogeneity_widgets.per_client_summary,
     {"x": X_TINY, "y": Y_TINY, "alpha": 0.5, "proximal_mu": 0.1},
     {"x": _BAD_X, "y": _BAD_Y, "alpha": _BAD_ALPHA, "proximal_mu": _BAD_MU,
      "seed": _BAD_SEED}),
    (heterogeneity_widgets.summary_line, {"summary": _SUMMARY}, {"summary": _BAD_SUMMARY}),
    (heterogeneity_widgets.draw_per_client, {"summary": _SUMMARY, "fig": None},
     {"summary": _BAD_SUMMARY, "fig": [3, "fig", object()]}),
    (heterogeneity_widgets.per_client_explorer,
     {"x": X_TINY, "y": Y_TINY, "alpha": 0.1, "proximal_mu": 0.1, "first_summary": _SUMMARY},
     {"x": _BAD_X, "y": _BAD_Y, "alpha": _BAD_ALPHA + [0.2], "proximal_mu": _BAD_MU + [0.5],
      "seed": _BAD_SEED, "first_summary": _BAD_SUMMARY[1:] + [{**_SUMMARY, "alpha": 1.0}]}),
]


