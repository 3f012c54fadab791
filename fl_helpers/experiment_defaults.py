"""The defaults of notebook 04's experiment, in a module that imports nothing.

:data:`DEFAULTS` is shared by :func:`fl_helpers.experiment.run_experiment` (re-exported there as
``experiment.DEFAULTS``), the widget, the notebook and the command line (:mod:`fl_helpers.cli`),
which reads it without importing TensorFlow so that ``--help`` stays instant.
"""

from __future__ import annotations

from typing import Any

#: Defaults shared by the command line, the widget and the notebook.
DEFAULTS: dict[str, Any] = {
    "num_clients": 1000,
    "clients_per_round": 100,
    "num_rounds": 30,
    "target_delta": 1e-5,
    "clipping_norm": 0.5,
    "split": "dirichlet",
    "alpha": 0.5,
    "local_epochs": 1,
    "batch_size": 10,
    "client_learning_rate": 0.1,
    "server_learning_rate": 1.0,
    "model": "softmax_regression",
    "seed": 0,
}
