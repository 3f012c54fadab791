"""Run-config keys shared by the ClientApp and the ServerApp (numpy and flwr only)."""

from __future__ import annotations

from typing import Any

from fl_helpers import cross_silo

#: run-config key -> TrainingConfig field
TRAINING_KEYS = {
    "num-rounds": "num_rounds",
    "local-steps": "local_steps",
    "batch-size": "batch_size",
    "client-learning-rate": "client_learning_rate",
    "noise-multiplier": "noise_multiplier",
    "clipping-norm": "clipping_norm",
    "expected-batch-size": "expected_batch_size",
    "seed": "seed",
    "noise": "noise",
}


def training_config(run_config: dict[str, Any]) -> cross_silo.TrainingConfig:
    """The TrainingConfig described by a Flower run config."""
    return cross_silo.TrainingConfig.from_dict(
        {field: run_config[key] for key, field in TRAINING_KEYS.items()})
