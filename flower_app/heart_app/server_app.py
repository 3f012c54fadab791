"""The coordinator's side: FedAvg over the hospitals, plain or with Flower's SecAgg+.

Uses Flower's legacy workflow API (``LegacyContext`` + ``DefaultWorkflow``), which SecAgg+
(``SecAggPlusWorkflow``) needs. The aggregation rule is the course's
``cross_silo.weighted_average``, applied to the results sorted by hospital id, so the plain
deployment sums in the same order as the in-process simulation. At the end it writes the final
model, the per-round, per-hospital metrics and timestamps to ``result-path`` (JSON).

In a private run (``noise-multiplier > 0``) the weights are the hospitals' public training sizes
(:func:`cross_silo.public_train_size`), not what they report, and no evaluation is requested
unless ``clear-test-metrics = true`` (then the metrics are labelled as not covered by epsilon).
Each round's record lists what the hospitals sent besides the model (``"received"``: the count
field and the metric names), so tests can check that a private run sends no count or metric.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import Context
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from fl_helpers import cross_silo, data
from heart_app.common import training_config


class CourseFedAvg(FedAvg):
    """Flower's FedAvg with the course's aggregation rule and a record of every round."""

    def __init__(self, num_hospitals: int, *, num_rounds: int, evaluate_every_round: bool,
                 private: bool = False, clear_test_metrics: bool = False,
                 public_weights: dict[int, float] | None = None, **kwargs) -> None:
        super().__init__(fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=num_hospitals,
                         min_evaluate_clients=num_hospitals,
                         min_available_clients=num_hospitals, **kwargs)
        self.params: np.ndarray | None = None
        self.rounds: list[dict] = []
        self.started = time.time()
        self.num_rounds = num_rounds
        self.evaluate_every_round = evaluate_every_round
        self.private, self.clear_test_metrics = private, clear_test_metrics
        self.public_weights = public_weights or {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        if self.private and not self.clear_test_metrics:
            return []  # test metrics of a private run are not covered by epsilon
        # Each evaluation is one more ClientApp process per hospital: optionally only at the end.
        if not self.evaluate_every_round and server_round < self.num_rounds:
            return []
        return super().configure_evaluate(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round, results, failures):
        if failures:
            raise RuntimeError(f"round {server_round}: {len(failures)} hospital(s) failed: "
                               f"{failures!r}")
        ordered = sorted(results, key=lambda r: int(r[1].metrics["hospital-id"]))
        updates = [parameters_to_ndarrays(fit.parameters)[0] for _, fit in ordered]
        ids = [int(fit.metrics["hospital-id"]) for _, fit in ordered]
        weights = ([self.public_weights[k] for k in ids] if self.private
                   else [fit.num_examples for _, fit in ordered])
        self.params = cross_silo.weighted_average(updates, weights)
        self.rounds.append({"round": server_round, "fit_done": time.time() - self.started,
                            "hospitals": ids,
                            "received": [{"num_examples": int(fit.num_examples),
                                          "metrics": sorted(fit.metrics)}
                                         for _, fit in ordered]})
        return ndarrays_to_parameters([self.params]), {}

    def aggregate_evaluate(self, server_round, results, failures):
        if failures:
            raise RuntimeError(f"round {server_round}: evaluation failed at {len(failures)} "
                               "hospital(s).")
        ordered = sorted(results, key=lambda r: int(r[1].metrics["hospital-id"]))
        per_hospital = [{"hospital-id": int(ev.metrics["hospital-id"]), "loss": ev.loss,
                         "num_test": ev.num_examples, "accuracy": ev.metrics["accuracy"],
                         "auc": ev.metrics["auc"]} for _, ev in ordered]
        self.rounds[-1].update(evaluate=per_hospital,
                               evaluate_done=time.time() - self.started)
        if self.private:
            self.rounds[-1]["evaluate_covered_by_epsilon"] = False
        mean_loss = float(np.average([e["loss"] for e in per_hospital],
                                     weights=[e["num_test"] for e in per_hospital]))
        return mean_loss, {}


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_config = context.run_config
    config = training_config(run_config)
    num_hospitals = int(run_config["num-hospitals"])
    missing = str(run_config["missing"])
    if config.private and str(run_config.get("preprocessing", "local")) != "public":
        raise ValueError("a private run needs preprocessing = 'public' (local statistics depend "
                         "on every patient).")
    strategy = CourseFedAvg(
        num_hospitals, num_rounds=config.num_rounds,
        evaluate_every_round=bool(run_config["evaluate-every-round"]),
        private=config.private,
        clear_test_metrics=bool(run_config.get("clear-test-metrics", False)),
        public_weights={k: float(cross_silo.public_train_size(k, missing=missing))
                        for k in range(data.NUM_HOSPITALS)},
        initial_parameters=ndarrays_to_parameters([cross_silo.init_params()]),
        on_fit_config_fn=lambda server_round: {"round-index": server_round - 1},
    )
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=config.num_rounds),
                           strategy=strategy)
    fit_workflow = None
    if bool(run_config["secagg"]):
        # Every hospital's share is needed by a majority: with 4 hospitals, 4 shares and a
        # threshold of 3 tolerate one drop-out. clipping_range bounds each parameter (|w| <= 8).
        fit_workflow = SecAggPlusWorkflow(num_shares=num_hospitals,
                                          reconstruction_threshold=max(2, num_hospitals - 1),
                                          clipping_range=8.0, quantization_range=2**22)
    DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)
    path = str(run_config["result-path"])
    if path:
        Path(path).write_text(json.dumps({
            "params": None if strategy.params is None else strategy.params.tolist(),
            "rounds": strategy.rounds, "config": config.to_dict(),
            "secagg": bool(run_config["secagg"]),
            "preprocessing": str(run_config.get("preprocessing", "local")),
            "clear_test_metrics": bool(run_config.get("clear-test-metrics", False)),
        }, indent=1))
