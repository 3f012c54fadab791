"""What secure aggregation with distributed DP costs: bits, seconds and accuracy.

Notebook 06 (``notebooks/06_secure_aggregation.ipynb``) reads the stored results of this script
(``benchmarks/results/secure_aggregation_costs.json``). Three parts:

* ``expansion``: bits one client sends and receives in the protocol of Bonawitz et al. 2017
  (Section 7.1's count, :func:`fl_helpers.secagg_protocol.client_bits`), over sending the
  same vector in the clear, for n in {2^7, 2^10, 2^14} clients and d in {7,850, 199,210, 2^20,
  2^24} parameters: with the paper's sizes (256-bit keys and shares, 16-bit entries: the
  paper's 1.73x and 1.98x), and with this module's sizes (256-bit keys, 232-bit encrypted
  shares, 32-bit entries) against float32 updates. Computed from message sizes, not by running
  2^14 clients.
* ``compute``: one protocol run among 100 simulated clients with vectors of 199,210 integers
  (the 2NN's parameters), b = 32, with 0 and 10 dropouts: each client's compute seconds and the
  server's, measured on this machine (all clients run one after another on one core, so the
  round's wall time is about 100 clients' time plus the server's). Plus one client's
  quantisation and discrete Gaussian noise for 199,210 parameters.
* ``accuracy``: notebook 04's federation (1,000 Dirichlet(0.5) clients, split seed 0), softmax
  regression, Poisson sampling q = 0.1, T = 30, E = 1, B = 10, client lr 0.1, C = 0.5,
  delta = 1e-5, at epsilon = 2: central DP-FedAvg (``run_dp_fedavg``, PLD-calibrated z) against
  SecAgg + distributed discrete Gaussian (:class:`DistributedDPSecAgg`, z calibrated with
  :func:`ddg_noise_multiplier_for_epsilon`, i.e. Kairouz et al.'s bound with Zhu & Wang's
  general subsampling bound), and the distributed mechanism at the central z (noise for noise;
  its epsilon under our provable accounting is printed). All noise is secret (OS entropy), so
  reruns differ by the noise.

The distributed runs use a short loop of public pieces (``PrivateRandomness.poisson_schedule``,
``MultiClientEngine.train``, the rule's ``aggregate``, ``ServerSGD``), the loop that
:func:`fl_helpers.distributed_dp.run_distributed_dp` runs, written out so that the realised
schedule gives the server's epsilon too (the busiest client's rounds); both epsilons come from
the rule's own event (``DistributedDPSecAgg.dp_event``, rho the largest over every client count
a round can have) composed by ``accounting.epsilon_per_round_of_event``, as in that front door.
The stored results predate that accounting: they took the largest rho of the rounds that
happened, 4e-8 smaller (relative) with the certified z; every stored epsilon is within 3e-8
(relative) of the event's (tests/test_distributed_dp.py ties them). It never asserts timings.

Usage (from the repository root)::

    nice -n 10 .venv/bin/python benchmarks/secure_aggregation_costs.py [--parts ...] [--repeats 2]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fl_helpers import quiet  # noqa: E402

quiet.import_tensorflow()

from fl_helpers import (  # noqa: E402
    accounting,
    aggregation,
    discrete_noise,
    distributed_dp,
    engine,
    experiment,
    models,
    schedule,
    training,
)
from fl_helpers import secagg_crypto as crypto  # noqa: E402
from fl_helpers import secagg_protocol as protocol  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "secure_aggregation_costs.json"
SETTING = dict(num_clients=1000, alpha=0.5, split_seed=0, sampling_probability=0.1,
               num_rounds=30, local_epochs=1, batch_size=10, client_learning_rate=0.1,
               clipping_norm=0.5, target_delta=1e-5, target_epsilon=2.0)


def expansion() -> list[dict]:
    rows = []
    for n in (2**7, 2**10, 2**14):
        for d in (7850, 199_210, 2**20, 2**24):
            paper = protocol.expansion_factor(num_clients=n, dimension=d, value_bits=16)
            ours_bits = protocol.client_bits(num_clients=n, dimension=d, value_bits=32 - math.ceil(
                math.log2(n)), share_bits=crypto.ENCRYPTED_SHARE_BYTES * 8 // 2)
            rows.append({"num_clients": n, "dimension": d, "paper_sizes_vs_16bit": paper,
                         "ours_bits": ours_bits, "ours_vs_float32": ours_bits / (32 * d)})
    print("Expansion: bits per client / bits of the plain vector")
    print(f"{'n':>6} {'d':>9} {'paper sizes vs 16-bit':>22} {'ours (b=32) vs float32':>23}")
    for r in rows:
        print(f"{r['num_clients']:>6} {r['dimension']:>9} {r['paper_sizes_vs_16bit']:>22.3f} "
              f"{r['ours_vs_float32']:>23.3f}")
    return rows


def compute() -> dict:
    rng = np.random.default_rng(0)
    n, d = 100, 199_210
    inputs = [rng.integers(-2**20, 2**20, d) for _ in range(n)]
    out = {"num_clients": n, "dimension": d, "modulus_bits": 32, "runs": []}
    for dropped in (0, 10):
        start = time.perf_counter()
        result = protocol.secure_sum(inputs, modulus_bits=32,
                               dropped_before_masking=list(range(dropped)))
        wall = time.perf_counter() - start
        exact = bool(np.array_equal(result.total, sum(inputs[dropped:])))
        seconds = np.array(list(result.client_seconds.values()))
        run = {"dropped": dropped, "client_seconds_mean": float(seconds.mean()),
               "client_seconds_max": float(seconds.max()),
               "server_seconds": result.server_seconds, "wall_seconds": wall, "exact": exact}
        out["runs"].append(run)
        print(f"compute, {n} clients x {d} params, {dropped} dropped: client "
              f"{run['client_seconds_mean']:.2f} s (max {run['client_seconds_max']:.2f}), server "
              f"{run['server_seconds']:.2f} s, wall {wall:.1f} s, exact sum: {exact}")
    randomness = schedule.PrivateRandomness.secret()
    update = rng.normal(0, 1e-3, d)
    start = time.perf_counter()
    x = distributed_dp.quantize(update, clipping_norm=0.5, scale=2**12 / 0.5,
                                randomness=randomness)
    discrete_noise.discrete_gaussian(10**6, d, randomness=randomness)
    out["client_noise_seconds"] = time.perf_counter() - start
    print(f"one client's quantisation + discrete Gaussian noise (variance 1e6) of {d} params: "
          f"{out['client_noise_seconds']:.2f} s ({x.dtype})")
    return out


def _distributed_run(federation, z: float, randomness: schedule.PrivateRandomness) -> dict:
    s = SETTING
    model = models.make_softmax_regression(0)
    weights = [np.array(w, dtype=np.float32) for w in model.get_weights()]
    d = sum(w.size for w in weights)
    rounds = randomness.poisson_schedule(s["num_clients"],
                                         sampling_probability=s["sampling_probability"],
                                         num_rounds=s["num_rounds"])
    trainer = engine.MultiClientEngine(model, federation.client_datasets,
                                       local_epochs=s["local_epochs"], batch_size=s["batch_size"],
                                       client_learning_rate=s["client_learning_rate"], seed=0,
                                       max_clients_per_round=max(len(r) for r in rounds))
    evaluate = trainer.evaluator(*federation.test_data)
    rule = distributed_dp.DistributedDPSecAgg(clipping_norm=s["clipping_norm"], noise_multiplier=z,
                                  expected_clients=s["sampling_probability"] * s["num_clients"])
    server = aggregation.ServerSGD(1.0)
    accuracy = []
    start = time.perf_counter()
    for t, sampled in enumerate(rounds):
        results = trainer.train(weights, sampled, t)
        update = rule.aggregate(results.deltas, results.num_examples, aggregation.RoundContext(
            round_index=t, num_clients=s["num_clients"], randomness=randomness))
        weights = server.apply(weights, update)
        accuracy.append(evaluate(weights)[1])
    busiest = int(schedule.busiest_client_counts(rounds, s["num_clients"])[-1])
    return {"noise_multiplier": z, "test_accuracy": [float(a) for a in accuracy],
            "final_accuracy": float(accuracy[-1]), **_distributed_epsilons(rule, rounds, d),
            "busiest_client_rounds": busiest,
            "sensitivity": rule.sensitivity(d), "scale": rule.scale,
            "seconds": time.perf_counter() - start}


def _distributed_epsilons(rule: distributed_dp.DistributedDPSecAgg, rounds: list[np.ndarray],
                          dimension: int) -> dict[str, float]:
    """The rule's own description of its round, composed as run_distributed_dp composes it:
    against an observer of the models (sampled, every round) and against the server (which
    knows who took part: the busiest client's rounds, no amplification)."""
    s = SETTING
    common = dict(dimension=dimension, num_clients=s["num_clients"])

    def epsilon(q: float) -> float:
        return float(accounting.epsilon_per_round_of_event(
            rule.dp_event(sampling_probability=q, **common), schedule=rounds,
            num_clients=s["num_clients"], target_delta=s["target_delta"])[-1])

    return {"rho_per_round_max": rule.round_rho(**common),
            "epsilon_observer": epsilon(s["sampling_probability"]),
            "epsilon_server": epsilon(1.0)}


VARIANTS = ("central", "distributed", "distributed_at_central_z")


def accuracy(repeats: int, variants: list[str]) -> dict:
    s = SETTING
    federation = experiment.make_federation(s["num_clients"], split="dirichlet",
                                            alpha=s["alpha"], seed=s["split_seed"])
    common = {k: s[k] for k in ("sampling_probability", "num_rounds", "target_delta")}
    z_central = accounting.noise_multiplier_for_epsilon(target_epsilon=s["target_epsilon"],
                                                        **common)
    z_dist = accounting.ddg_noise_multiplier_for_epsilon(target_epsilon=s["target_epsilon"],
                                                         **common)
    out = {"setting": s, "z_central_pld": z_central, "z_distributed": z_dist}
    for key in variants:
        out[key] = []
        for rep in range(repeats):
            if key == "central":
                start = time.perf_counter()
                central = training.run_dp_fedavg(
                    models.make_softmax_regression, federation.client_datasets,
                    num_rounds=s["num_rounds"], sampling_probability=s["sampling_probability"],
                    local_epochs=s["local_epochs"], batch_size=s["batch_size"],
                    client_learning_rate=s["client_learning_rate"],
                    clipping_norm=s["clipping_norm"], noise_multiplier=z_central,
                    test_data=federation.test_data, seed=0, progress=False,
                    target_delta=s["target_delta"],
                    expected_clients=s["sampling_probability"] * s["num_clients"])
                run = {"noise_multiplier": z_central,
                       "test_accuracy": central.test_accuracy.tolist(),
                       "final_accuracy": float(central.test_accuracy[-1]),
                       "epsilon": float(central.epsilon[-1]),
                       "seconds": time.perf_counter() - start}
            else:
                z = z_dist if key == "distributed" else z_central
                run = _distributed_run(federation, z, schedule.PrivateRandomness.secret())
            out[key].append(run)
            print(f"[{rep}] {key} z={run['noise_multiplier']:.3f}: accuracy "
                  f"{run['final_accuracy']:.4f}, epsilon {run.get('epsilon', 0):.3f} / "
                  f"observer {run.get('epsilon_observer', 0):.3f} / server "
                  f"{run.get('epsilon_server', 0):.2f}, {run['seconds']:.0f} s", flush=True)
    return out


def _merge_into_results(part: str, value) -> None:
    """Read-modify-write of the results file under a lock (variants may run in parallel)."""
    with open(Path(tempfile.gettempdir()) / "secure_aggregation_costs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        if part == "accuracy" and isinstance(results.get("accuracy"), dict):
            results["accuracy"].update(value)
        else:
            results[part] = value
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="expansion,compute,accuracy")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="accuracy runs to do (they may run in parallel processes)")
    args = parser.parse_args()
    for part in args.parts.split(","):
        if part == "expansion":
            _merge_into_results(part, expansion())
        elif part == "compute":
            _merge_into_results(part, compute())
        elif part == "accuracy":
            _merge_into_results(part, accuracy(args.repeats, args.variants.split(",")))
        else:
            raise SystemExit(f"unknown part {part!r}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
