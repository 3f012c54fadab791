"""Flower 1.42's adaptive clipping beside the course's, on identical update norms: the stored
paths of the clipping norm for notebook 04b's figure.

The setting is tests/test_flower_adaptive_clipping.py's: 100 fixed updates in R^4 whose norms are
log-normal around 1 (median 1.037, seed 0), all 100 clients in each of 300 rounds, no noise
(``noise_multiplier=0``: Flower's count is then exact, and so is ours), starting norms 0.1, 1.0
and 5.0, Andrew et al. 2021's defaults (target quantile 0.5, learning rate 0.2). Flower's path
is produced by its real ``DifferentialPrivacyServerSideAdaptiveClipping.aggregate_fit`` (the
wrapper around a strategy that aggregates nothing, so that only Flower's clipping and norm
update run); the course's by :class:`fl_helpers.aggregation.AdaptiveClipDPFedAvg`. The run takes
about 20 s on a shared 2-core CPU (Flower's wrapper logs and copies every update), too long for
the notebook, which reads ``benchmarks/results/flower_adaptive_clipping.json`` and recomputes
the course's paths itself.

Usage (from the repository root)::

    .venv/bin/python benchmarks/flower_adaptive_clipping.py
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from pathlib import Path

import numpy as np

from fl_helpers import aggregation

RESULTS = Path(__file__).resolve().parent / "results" / "flower_adaptive_clipping.json"
CLIENTS, ROUNDS, STARTS, SEED = 100, 300, (0.1, 1.0, 5.0), 0


def updates() -> tuple[np.ndarray, list[np.ndarray]]:
    """The 100 update norms and the updates (as tests/test_flower_adaptive_clipping.py)."""
    rng = np.random.default_rng(SEED)
    norms = np.exp(rng.normal(0.0, 0.5, CLIENTS))
    directions = rng.normal(size=(CLIENTS, 4))
    return norms, [n * d / np.linalg.norm(d) for n, d in zip(norms, directions, strict=True)]


def flower_path(start: float, deltas: list[np.ndarray]) -> list[float]:
    """C over ROUNDS rounds of Flower's DifferentialPrivacyServerSideAdaptiveClipping."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    from flwr.server import strategy

    class NoAggregation(strategy.FedAvg):
        def aggregate_fit(self, server_round, results, failures):
            return None, {}

    dp = strategy.DifferentialPrivacyServerSideAdaptiveClipping(
        NoAggregation(), noise_multiplier=0.0, num_sampled_clients=CLIENTS,
        initial_clipping_norm=start)
    parameters = [ndarrays_to_parameters([u]) for u in deltas]
    path = [dp.clipping_norm]
    for server_round in range(1, ROUNDS + 1):
        dp.current_round_params = [np.zeros(4)]  # what configure_fit would store
        results = [(None, FitRes(status=Status(Code.OK, ""), parameters=p, num_examples=1,
                                 metrics={})) for p in parameters]
        dp.aggregate_fit(server_round, results, [])
        path.append(float(dp.clipping_norm))
    return path


def ours_path(start: float, deltas: list[np.ndarray]) -> list[float]:
    """C over ROUNDS rounds of the course's rule on the same updates (noise off)."""
    rule = aggregation.AdaptiveClipDPFedAvg(
        clipping=aggregation.AdaptiveClipping(initial_clipping_norm=start),
        noise_multiplier=0.0, expected_clients=CLIENTS)
    for t in range(ROUNDS):
        rule.aggregate([[u] for u in deltas], np.ones(CLIENTS), aggregation.RoundContext(
            round_index=t, num_clients=CLIENTS, randomness=None))
    return [*rule.clipping_norms, rule.clipping_norm]


def main() -> int:
    import flwr

    logging.getLogger("flwr").setLevel(logging.ERROR)  # one INFO line per client otherwise
    norms, deltas = updates()
    record = {"flower_version": flwr.__version__, "clients": CLIENTS, "rounds": ROUNDS,
              "seed": SEED, "target_quantile": 0.5, "learning_rate": 0.2,
              "median_norm": float(np.median(norms)),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
              "flower": {}, "ours": {}}
    for start in STARTS:
        record["flower"][f"{start:g}"] = flower_path(start, deltas)
        record["ours"][f"{start:g}"] = ours_path(start, deltas)
        flower_final, ours_final = (record[k][f"{start:g}"][-1] for k in ("flower", "ours"))
        print(f"C_0 = {start:g}: after {ROUNDS} rounds Flower {flower_final:.3g}, ours "
              f"{ours_final:.4g} (median norm {record['median_norm']:.4g})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=0) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
