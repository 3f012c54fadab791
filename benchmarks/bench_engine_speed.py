"""Seconds per federated round: Keras fit loop, GradientTape loop, the fast engine, Flower.

The McMahan et al. 2017 2NN setup (Section 3): 10 clients x 600 real MNIST training examples,
B = 10, client learning rate 0.1, all 10 clients every round, E = 1 and E = 5. Four trainers
start from the same weights and take the same batches (``schedule.client_batches`` with seeds
``[seed, t, k]``), so they reach the same test accuracy:

(a) a per-client Keras ``model.fit`` loop (the clients' batches concatenated in order, so that
    ``fit(shuffle=False)`` takes exactly them), then ``aggregation.fedavg``;
(b) ``training.run_fedavg(engine="loop")``: one compiled GradientTape SGD graph per client;
(c) ``training.run_fedavg(engine="fast")``: all clients in one XLA graph (``fl_helpers.engine``);
(d) Flower's simulation engine (``flwr``, Ray backend) running (a)'s Keras ``fit`` in its clients
    with its FedAvg strategy, in a separate Python that has ``flwr`` (see below).

Each trainer runs ``--rounds`` rounds; the first round (tracing/compilation, Ray start-up) is
reported on its own and "seconds per round" is the median of the later rounds, evaluation
excluded. It also reports the engine's achieved GFLOP/s (nominal 6 x parameters x examples per
epoch) against the measured float32 matmul peak of this machine, and a notebook-04-like DP-FedAvg
setting (1,000 Dirichlet clients of ~60 examples, q = 0.05, E = 1, B = 10).

Flower lives outside the course's requirements: install it into a throwaway environment that
can see the course's packages, e.g.::

    python -m venv /tmp/flwr_venv
    echo "$PWD/.venv/lib/python3.11/site-packages" \
        > /tmp/flwr_venv/lib/python3.11/site-packages/course.pth
    /tmp/flwr_venv/bin/pip install -r benchmarks/requirements.txt

and pass ``--flower-python /tmp/flwr_venv/bin/python`` (the default when that file exists).
Without it, (d) is skipped with the reason printed.

With ``--cnn`` it first times the course CNN (McMahan et al. 2017, Section 3) the same way,
(b) against (c), at ``--cnn-epochs`` (default E = 5) on ``--cnn-clients`` x ``--cnn-examples``
(default 10 x 600: many minutes per round on a 2-core CPU; pass fewer to fit a loaded machine).

Run: ``.venv/bin/python benchmarks/bench_engine_speed.py`` (about 3-5 minutes on a 2-core CPU).
Prints figures, never asserts. The machine's load average is printed at the start and the end:
timings on a shared machine are inflated by other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 0
NUM_CLIENTS = 10
EXAMPLES_PER_CLIENT = 600
BATCH_SIZE = 10
LEARNING_RATE = 0.1
DEFAULT_FLOWER_PYTHON = "/tmp/flwr_venv/bin/python"
FLOWER_TIMEOUT_S = 600


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_setup():
    """The 10 x 600 IID clients (a seeded sample of the MNIST training set) and the test set."""
    from fl_helpers import data

    (x_train, y_train), test = data.load_mnist()
    rng = np.random.default_rng(SEED)
    chosen = rng.permutation(len(x_train))[:NUM_CLIENTS * EXAMPLES_PER_CLIENT]
    parts = data.partition_iid(len(chosen), NUM_CLIENTS, rng=rng)
    clients = data.client_datasets(x_train[chosen], y_train[chosen], parts)
    return clients, test


def keras_fit_client(model, global_weights, x, y, *, local_epochs, seed):
    """One client's update with ``model.fit``: the batches of ``client_batches``, in order.

    ``fit(shuffle=False, batch_size=B)`` cuts its input into consecutive batches of B, so feeding
    it the examples in ``client_batches`` order reproduces them exactly when B divides n_k.
    """
    from fl_helpers import schedule

    batches = schedule.client_batches(len(x), local_epochs=local_epochs, batch_size=BATCH_SIZE,
                                       rng=np.random.default_rng(seed))
    if any(len(b) != BATCH_SIZE for b in batches):
        raise ValueError(f"keras_fit_client needs n_k divisible by B={BATCH_SIZE}, got {len(x)}.")
    order = np.concatenate(batches)
    model.set_weights(global_weights)
    model.fit(x[order], y[order], batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def compiled_keras_model():
    import keras

    from fl_helpers import models

    model = models.make_2nn(seed=SEED)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def run_keras_fit(clients, test, *, local_epochs, rounds):
    """(a): per-client ``fit``, then ``aggregation.fedavg``; returns (seconds, accuracies)."""
    from fl_helpers import aggregation, client, schedule

    model = compiled_keras_model()
    eval_model = compiled_keras_model()
    weights = model.get_weights()
    seconds, accuracies = [], []
    for t in range(rounds):
        start = time.perf_counter()
        new = [keras_fit_client(model, weights, x, y, local_epochs=local_epochs,
                                seed=schedule.client_seed(SEED, t, k))
               for k, (x, y) in enumerate(clients)]
        weights = aggregation.fedavg(new, [len(y) for _, y in clients])
        seconds.append(time.perf_counter() - start)
        accuracies.append(client.evaluate(eval_model, weights, *test)[1])
    return np.array(seconds), np.array(accuracies)


def run_federated(clients, test, *, engine, local_epochs, rounds, model_fn=None):
    """(b) and (c): ``training.run_fedavg`` with the given engine (the 2NN by default)."""
    from fl_helpers import models, training

    history = training.run_fedavg(
        model_fn or (lambda: models.make_2nn(seed=SEED)), clients, num_rounds=rounds,
        clients_per_round=len(clients), local_epochs=local_epochs, batch_size=BATCH_SIZE,
        client_learning_rate=LEARNING_RATE, test_data=test, seed=SEED, progress=False,
        engine=engine)
    return history.seconds_per_round, history.test_accuracy


def run_engine_grouped(clients, *, local_epochs, rounds, group_size):
    """(c) with another group size (clients in lockstep), to show why the default was chosen."""
    from fl_helpers import engine, models

    model = models.make_2nn(seed=SEED)
    fast = engine.MultiClientEngine(model, clients, local_epochs=local_epochs,
                                    batch_size=BATCH_SIZE, client_learning_rate=LEARNING_RATE,
                                    seed=SEED, group_size=group_size)
    weights = model.get_weights()
    seconds = []
    for t in range(rounds):
        start = time.perf_counter()
        sampled = np.arange(NUM_CLIENTS)
        sizes = fast.sizes[sampled]
        result = fast.clipped_sum(weights, sampled, t, scales=sizes / sizes.sum(),
                                  clipping_norm=None)
        weights = [w + d for w, d in zip(weights, result.total, strict=True)]
        seconds.append(time.perf_counter() - start)
    return np.array(seconds)


# --------------------------------------------------------------------------------------------
# (d) Flower, in a separate interpreter that has flwr
# --------------------------------------------------------------------------------------------


def flower_worker(local_epochs: int, rounds: int, output: str) -> None:
    """Runs inside the Flower interpreter: a Ray-backed simulation of the same federation."""
    import flwr
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.simulation import run_simulation

    clients, test = load_setup()
    timeline = []  # (time the server's evaluation of round r started, its duration, accuracy)
    eval_model = {}

    class KerasFitClient(NumPyClient):
        def __init__(self, partition: int):
            self.partition = partition

        def fit(self, parameters, config):
            from fl_helpers import schedule

            model = _worker_model()
            x, y = clients[self.partition]
            t = int(config["server_round"]) - 1
            weights = keras_fit_client(model, parameters, x, y, local_epochs=local_epochs,
                                       seed=schedule.client_seed(SEED, t, self.partition))
            return weights, len(y), {}

    def client_fn(context: Context):
        return KerasFitClient(int(context.node_config["partition-id"])).to_client()

    def evaluate_fn(server_round, parameters, config):
        from fl_helpers import client

        start = time.perf_counter()
        if "model" not in eval_model:
            eval_model["model"] = compiled_keras_model()
        loss, accuracy = client.evaluate(eval_model["model"], parameters, *test)
        timeline.append((server_round, start, time.perf_counter() - start, accuracy))
        return loss, {"accuracy": accuracy}

    initial = compiled_keras_model().get_weights()

    def server_fn(context: Context):
        strategy = FedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=NUM_CLIENTS,
            min_available_clients=NUM_CLIENTS, evaluate_fn=evaluate_fn,
            on_fit_config_fn=lambda r: {"server_round": r},
            initial_parameters=ndarrays_to_parameters(initial))
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    start = time.perf_counter()
    run_simulation(server_app=ServerApp(server_fn=server_fn),
                   client_app=ClientApp(client_fn=client_fn), num_supernodes=NUM_CLIENTS,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})
    total = time.perf_counter() - start
    timeline.sort()
    # Round r's training runs from the end of evaluation r-1 to the start of evaluation r.
    seconds = [timeline[i][1] - (timeline[i - 1][1] + timeline[i - 1][2])
               for i in range(1, len(timeline))]
    Path(output).write_text(json.dumps({
        "flwr_version": flwr.__version__, "seconds": seconds,
        "accuracy": [a for *_, a in timeline[1:]], "total_seconds": total}))


_WORKER_MODEL = {}


def _worker_model():
    if "model" not in _WORKER_MODEL:
        _WORKER_MODEL["model"] = compiled_keras_model()
    return _WORKER_MODEL["model"]


def run_flower(flower_python: str | None, *, local_epochs: int, rounds: int):
    """(d) via a subprocess; returns (seconds, accuracies, note) or (None, None, reason)."""
    if not flower_python or not Path(flower_python).exists():
        return None, None, (f"no Python with flwr at {flower_python!r}: install it as the module "
                            "docstring shows and pass --flower-python")
    probe = subprocess.run([flower_python, "-c", "import flwr, ray; print(flwr.__version__)"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        return None, None, f"flwr does not import in {flower_python}: {probe.stderr.strip()[-300:]}"
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "flower.json")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", RAY_DEDUP_LOGS="1",
                   PYTHONPATH=str(Path(__file__).resolve().parents[1]))  # fl_helpers
        try:
            done = subprocess.run(
                [flower_python, str(Path(__file__).resolve()), "--flower-worker",
                 "--local-epochs", str(local_epochs), "--rounds", str(rounds), "--output",
                 output], capture_output=True, text=True, timeout=FLOWER_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            return None, None, (f"Flower run did not finish in {FLOWER_TIMEOUT_S} s (a Ray "
                                "process may have died); skipped")
        if done.returncode != 0 or not Path(output).exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            return None, None, "Flower run failed: " + " | ".join(tail)
        result = json.loads(Path(output).read_text())
    note = (f"flwr {result['flwr_version']} (Ray backend, 1 CPU per client actor); its first "
            f"round includes starting the actors; whole simulation {result['total_seconds']:.1f} s")
    return np.array(result["seconds"]), np.array(result["accuracy"]), note


# --------------------------------------------------------------------------------------------
# Peak, notebook-04 setting, table
# --------------------------------------------------------------------------------------------


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of a float32 ``size x size`` matmul (2 n^3 FLOPs) over a few repeats."""
    import tensorflow as tf

    a = tf.random.stateless_normal([size, size], seed=[1, 2])
    b = tf.random.stateless_normal([size, size], seed=[3, 4])
    product = tf.function(lambda a, b: tf.reduce_sum(tf.linalg.matmul(a, b)))
    product(a, b).numpy()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def notebook04_setting(model_name: str, rounds: int, engine: str = "fast"):
    """DP-FedAvg on 1,000 Dirichlet(0.5) clients of ~60 examples, q = 0.05, E = 1, B = 10."""
    from fl_helpers import data, models, training

    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    parts = data.partition_dirichlet(y_train, 1000, alpha=0.5, rng=np.random.default_rng(SEED))
    clients = data.client_datasets(x_train, y_train, parts)
    model_fn = {"2nn": models.make_2nn, "softmax": models.make_softmax_regression}[model_name]
    evaluations, sampled = [], []

    def timed_callback(figures):
        evaluations.append(time.perf_counter())
        sampled.append(figures["num_sampled"])

    start = time.perf_counter()
    history = training.run_dp_fedavg(
        model_fn, clients, num_rounds=rounds, sampling_probability=0.05, local_epochs=1,
        batch_size=BATCH_SIZE, client_learning_rate=LEARNING_RATE, clipping_norm=1.0,
        noise_multiplier=1.0, test_data=(x_test[:2000], y_test[:2000]), seed=SEED,
        progress=False, target_delta=1e-3, callback=timed_callback, engine=engine,
        diagnostics=True, expected_clients=0.05 * len(clients))
    total = time.perf_counter() - start
    sizes = np.array([len(y) for _, y in clients])
    return {
        "model": model_name, "engine": engine, "rounds": rounds, "total": total,
        "first": history.seconds_per_round[0],
        "train_median": float(np.median(history.seconds_per_round[1:])),
        "per_round_with_eval": float(np.median(np.diff(evaluations))),
        "clients_mean": float(np.mean(sampled)),
        "sizes": (int(sizes.min()), int(np.median(sizes)), int(sizes.max())),
        "accuracy": history.test_accuracy[-1], "epsilon": history.epsilon[-1],
    }


def cnn_flops_per_example() -> int:
    """Nominal training FLOPs of one example through the course CNN: 6 x multiply-adds.

    Multiply-adds of the forward pass: 28 x 28 x (5 x 5 x 1) x 32 for the first convolution,
    14 x 14 x (5 x 5 x 32) x 64 for the second, 3,136 x 512 + 512 x 10 for the dense layers;
    2 FLOPs each forward and 4 backward (as :func:`fl_helpers.engine.flops_per_example`; the
    first convolution's input gradient is counted but never needed).
    """
    macs = 28 * 28 * 25 * 32 + 14 * 14 * 800 * 64 + 3136 * 512 + 512 * 10
    return 6 * macs


def cnn_comparison(num_clients: int, examples: int, local_epochs: int, rounds: int,
                   peak: float) -> None:
    """The CNN, per-client loop against the fast engine, side by side (no test evaluation)."""
    from fl_helpers import models

    clients, _ = load_setup()
    clients = [(x[:examples], y[:examples]) for x, y in clients[:num_clients]]
    rows = {}
    for name, engine_name in (("(b) GradientTape loop", "loop"), ("(c) fast engine", "fast")):
        seconds, _ = run_federated(clients, None, engine=engine_name, local_epochs=local_epochs,
                                   rounds=rounds, model_fn=lambda: models.make_cnn(seed=SEED))
        rows[name] = seconds
    reference = float(np.median(rows["(c) fast engine"][1:]))
    print(f"CNN (1,663,370 parameters), E = {local_epochs}, B = {BATCH_SIZE}, {num_clients} "
          f"clients x {examples}, {rounds} rounds (first = warm-up); load average "
          f"{load_average()}")
    print(f"{'trainer':<26}{'first round s':>14}{'s / round':>11}{'x engine':>10}")
    for name, seconds in rows.items():
        per_round = float(np.median(seconds[1:]))
        print(f"{name:<26}{seconds[0]:>14.3f}{per_round:>11.3f}{per_round / reference:>10.2f}")
    achieved = cnn_flops_per_example() * num_clients * examples * local_epochs / reference / 1e9
    print(f"CNN engine: {achieved:.1f} GFLOP/s nominal = {achieved / peak:.0%} of the best "
          f"measured matmul peak ({peak:.1f} GFLOP/s)\n")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds per trainer (>= 2)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5], help="values of E")
    parser.add_argument("--flower-python", default=DEFAULT_FLOWER_PYTHON,
                        help="a Python with flwr[simulation] (and the course's packages)")
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--skip-notebook04", action="store_true")
    parser.add_argument("--skip-2nn", action="store_true", help="skip the 2NN trainers")
    parser.add_argument("--cnn", action="store_true",
                        help="also time the CNN: per-client loop against the fast engine")
    parser.add_argument("--cnn-clients", type=int, default=NUM_CLIENTS)
    parser.add_argument("--cnn-examples", type=int, default=EXAMPLES_PER_CLIENT,
                        help="examples per CNN client (<= 600)")
    parser.add_argument("--cnn-epochs", type=int, default=5, help="E for the CNN")
    parser.add_argument("--flower-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--local-epochs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _quiet_tensorflow()
    if args.flower_worker:
        flower_worker(args.local_epochs, args.rounds, args.output)
        return
    if args.rounds < 2:
        parser.error(f"--rounds must be >= 2 (the first round is warm-up), got {args.rounds}.")

    import tensorflow as tf

    from fl_helpers import engine, models

    print(f"load average at start (1, 5, 15 min): {load_average()}   on {os.cpu_count()} CPUs; "
          f"TensorFlow {tf.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}")
    clients, test = load_setup()
    params = sum(int(np.prod(w.shape)) for w in models.make_2nn().weights)
    peak = matmul_peak_gflops()
    print(f"2NN: {params:,} parameters; float32 matmul peak (2048^3, best of 10): "
          f"{peak:.1f} GFLOP/s\n")

    if args.cnn:
        cnn_comparison(args.cnn_clients, args.cnn_examples, args.cnn_epochs, args.rounds, peak)
    for local_epochs in [] if args.skip_2nn else args.epochs:
        rows = {}
        rows["(a) Keras fit loop"] = run_keras_fit(clients, test, local_epochs=local_epochs,
                                                   rounds=args.rounds)
        rows["(b) GradientTape loop"] = run_federated(clients, test, engine="loop",
                                                      local_epochs=local_epochs,
                                                      rounds=args.rounds)
        rows["(c) fast engine"] = run_federated(clients, test, engine="fast",
                                                local_epochs=local_epochs, rounds=args.rounds)
        lockstep = run_engine_grouped(clients, local_epochs=local_epochs, rounds=args.rounds,
                                      group_size=NUM_CLIENTS)
        note = "skipped (--skip-flower)"
        if not args.skip_flower:
            seconds, accuracy, note = run_flower(args.flower_python, local_epochs=local_epochs,
                                                 rounds=args.rounds)
            if seconds is not None:
                rows["(d) Flower simulation"] = (seconds, accuracy)
        reference = float(np.median(rows["(c) fast engine"][0][1:]))
        print(f"E = {local_epochs}, B = {BATCH_SIZE}, {NUM_CLIENTS} clients x "
              f"{EXAMPLES_PER_CLIENT}, {args.rounds} rounds (first = warm-up); load average "
              f"{load_average()}")
        print(f"{'trainer':<26}{'first round s':>14}{'s / round':>11}{'x engine':>10}"
              f"{'test acc (last)':>17}")
        for name, (seconds, accuracy) in rows.items():
            per_round = float(np.median(seconds[1:]))
            print(f"{name:<26}{seconds[0]:>14.3f}{per_round:>11.3f}{per_round / reference:>10.1f}"
                  f"{accuracy[-1]:>17.4f}")
        print(f"{'(c) lockstep, 10 per group':<26}{lockstep[0]:>14.3f}"
              f"{np.median(lockstep[1:]):>11.3f}{np.median(lockstep[1:]) / reference:>10.1f}")
        print(f"(d) Flower: {note}")
        # Other processes on a shared machine slow both measurements; the best peak seen so far
        # is the fairest denominator.
        peak = max(peak, matmul_peak_gflops())
        flops = engine.flops_per_example([tuple(w.shape) for w in models.make_2nn().weights])
        achieved = flops * NUM_CLIENTS * EXAMPLES_PER_CLIENT * local_epochs / reference / 1e9
        print(f"engine: {achieved:.1f} GFLOP/s nominal (6 x params x examples) = "
              f"{achieved / peak:.0%} of the best measured matmul peak ({peak:.1f} GFLOP/s)\n")

    if not args.skip_notebook04:
        print("notebook-04-like DP-FedAvg: 1,000 Dirichlet(0.5) clients (all 60,000 examples), "
              "q = 0.05, E = 1, B = 10, z = 1, C = 1, evaluation on 2,000 test examples")
        for name, rounds, trainer in (("softmax", 100, "fast"), ("2nn", 40, "fast"),
                                      ("softmax", 6, "loop"), ("2nn", 6, "loop")):
            r = notebook04_setting(name, rounds, trainer)
            print(f"  {name:<8} {trainer:<5} {r['rounds']} rounds in {r['total']:.1f} s (incl. "
                  f"set-up and compilation, first round {r['first']:.2f} s); per round: training "
                  f"{r['train_median']:.3f} s, with evaluation {r['per_round_with_eval']:.3f} s; "
                  f"{r['clients_mean']:.1f} clients/round, client sizes min/median/max "
                  f"{r['sizes']}; accuracy {r['accuracy']:.3f}, epsilon {r['epsilon']:.2f} "
                  f"(delta 1e-3)")
    print(f"\nload average at end (1, 5, 15 min): {load_average()}")


if __name__ == "__main__":
    main()
