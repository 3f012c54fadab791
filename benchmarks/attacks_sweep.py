"""Attacks on federated learning, measured: the sweeps notebook 05 reads.

Notebook 05 (``notebooks/05_attacks_and_defences.ipynb``) runs one instance of every attack live
and reads the heavier sweeps from the JSON files this script writes. It never asserts; timings
depend on the machine and its load.

``inversion`` -> ``benchmarks/results/attacks_inversion.json``
    Gradient inversion of one client's update of the 2NN (McMahan et al. 2017) at its seed-0
    initialisation, on MNIST training images (``--images`` batches, image seed 0, distinct labels
    within a batch):

    * plain FedSGD updates (one gradient step, learning rate 0.1) for batches of 1, 4 and 8:
      SSIM of the analytic attack (:func:`fl_helpers.attacks.invert_dense_layer`, every original
      matched to its best unit) and of DLG/iDLG (:func:`fl_helpers.attacks.dlg_attack`, 300 Adam
      steps);
    * FedAvg updates after E in {1, 2, 5} local epochs of 8 images in one batch (E steps):
      the same two attacks;
    * one image's update clipped to C = 0.1 plus Gaussian noise of standard deviation z C, for z
      in :data:`NOISE_MULTIPLIERS`: SSIM of the least-squares analytic attack and of DLG
      (noise seeds 0.. per image).

``membership`` -> ``benchmarks/results/attacks_membership.json``
    Membership inference against federated training, with and without DP. A pool of 1,000 MNIST
    training images (seed 0) forms 100 fixed clients of 10 images. Each of ``--models`` models
    trains on a random half of the clients (every client in exactly half of the models, see
    :func:`balanced_members`):
    the 2NN, 20 rounds, E = 10, B = 10, client learning rate 0.1 -- FedAvg with every client each
    round (no DP), or DP-FedAvg with q = 0.5, C = 1, delta = 1e-4 and the noise multiplier that
    keeps 20 rounds within epsilon in {8, 2, 1} (PLD accountant), secret noise. Every model is
    attacked with the others as its shadow models (leave-one-out, Carlini et al. 2022,
    Section 5): loss threshold (Yeom et al. 2018) and offline LiRA per example; per client the
    mean of its examples' scores ("was client k in the federation?"). Stored: AUC, TPR at 1 % and
    0.1 % FPR, the ROC on a log grid of FPR, the counts, and the test accuracy of the models.
    The DP models divide by the public ``expected_clients = q N / 2`` (each client is in a model
    with probability 1/2), never by the count of the members. The stored results (2026-12-02)
    predate that argument: ``run_dp_fedavg`` then divided by ``q N`` with ``N`` the number of
    member clients, so a model with one more member divided by ``q (N + 1)`` (a ~2 % rescaling,
    far below what the attacks resolve; the accounting treats the divisor as public).

``matched`` -> ``benchmarks/results/attacks_matched.json``
    The same attacks at matched accuracy. Under DP the models of ``membership`` learn less
    (test accuracy about 0.43 at epsilon = 8, near chance at 2 and 1), and a model that learnt
    little leaks little with or without DP. This sweep trains the no-DP models of
    ``membership`` (same pool, clients, balanced membership and settings) and **stops them
    early**: each model is trained in segments of rounds, continuing from the previous
    segment's weights (:data:`MATCHED_ROUNDS`, cumulative; seed ``100 m + k`` for model ``m``'s
    ``k``-th segment, so the batch order differs from ``membership``'s 20-round models), and
    after every segment the same three attacks run with the other models *at the same round* as
    shadow models. A DP row of ``membership`` is then compared with the no-DP row of about its
    accuracy.

Usage (from the repository root)::

    .venv/bin/python benchmarks/attacks_sweep.py                     # all three sweeps
    .venv/bin/python benchmarks/attacks_sweep.py --sweeps membership --models 12
    .venv/bin/python benchmarks/attacks_sweep.py --sweeps matched --models 12
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from fl_helpers import quiet

quiet.import_tensorflow()

from fl_helpers import accounting, attacks, data, models, training  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NOISE_MULTIPLIERS = (0.0, 0.001, 0.003, 0.01, 0.02, 0.03, 0.05, 0.1, 0.3, 1.0)
INVERSION_CLIPPING_NORM = 0.1
FEDSGD_LEARNING_RATE = 0.1
#: The membership setting (see the module docstring).
MEMBERSHIP = {"pool_size": 1000, "client_size": 10, "num_rounds": 20, "local_epochs": 10,
              "batch_size": 10, "client_learning_rate": 0.1, "sampling_probability": 0.5,
              "clipping_norm": 1.0, "target_delta": 1e-4, "epsilons": [None, 8.0, 2.0, 1.0]}
#: Cumulative rounds after which ``matched`` attacks the no-DP models (stopped early).
MATCHED_ROUNDS = (1, 2, 3, 5, 10, 20)
#: FPR grid of the stored ROC curves.
FPR_GRID = np.concatenate([[0.0], np.logspace(-4, 0, 81)])


def distinct_label_batch(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` examples with distinct labels (``size <= 10``), in random order."""
    chosen: dict[int, int] = {}
    for i in rng.permutation(len(y)):
        chosen.setdefault(int(y[i]), int(i))
        if len(chosen) == size:
            break
    return np.array(list(chosen.values()))


def update_of(weights, act, x, y, *, local_epochs: int = 1) -> list[np.ndarray]:
    """A FedAvg client update: ``local_epochs`` full-batch SGD steps (one step = FedSGD)."""
    w = [np.asarray(a, np.float32) for a in weights]
    for _ in range(local_epochs):
        g = attacks.gradient(w, act, x, y)
        w = [a - FEDSGD_LEARNING_RATE * b for a, b in zip(w, g, strict=True)]
    return [a - b for a, b in zip(w, weights, strict=True)]


def analytic_ssim(update, x) -> list[float]:
    candidates, _ = attacks.invert_dense_layer(update[0], update[1])
    return attacks.match_to_originals(candidates, x)[1].tolist()


def dlg_ssim(weights, act, update, x, seed: int = 0) -> list[float]:
    images, _ = attacks.dlg_attack(weights, act, update, batch_size=len(x), num_steps=300,
                                   seed=seed)
    return attacks.match_to_originals(images, x)[1].tolist()


def sweep_inversion(args) -> dict:
    (x_train, y_train), _ = data.load_mnist()
    model = models.make_2nn(seed=0)
    weights = [w.numpy() for w in model.weights]
    act = attacks.model_activations(model)
    rng = np.random.default_rng(0)
    out: dict = {"batch": {}, "local_epochs": {}, "noise": {}}
    for size in (1, 4, 8):
        rows = {"analytic": [], "dlg": []}
        for _ in range(args.images):
            idx = distinct_label_batch(y_train, size, rng)
            upd = update_of(weights, act, x_train[idx], y_train[idx])
            rows["analytic"].append(analytic_ssim(upd, x_train[idx]))
            rows["dlg"].append(dlg_ssim(weights, act, upd, x_train[idx]))
        out["batch"][str(size)] = rows
        print(f"batch {size}: analytic SSIM {np.mean(rows['analytic']):.3f}, "
              f"DLG {np.mean(rows['dlg']):.3f}", flush=True)
    for epochs in (1, 2, 5):
        rows = {"analytic": [], "dlg": []}
        for _ in range(args.images):
            idx = distinct_label_batch(y_train, 8, rng)
            upd = update_of(weights, act, x_train[idx], y_train[idx], local_epochs=epochs)
            rows["analytic"].append(analytic_ssim(upd, x_train[idx]))
            rows["dlg"].append(dlg_ssim(weights, act, upd, x_train[idx]))
        out["local_epochs"][str(epochs)] = rows
        print(f"E = {epochs} (8 images): analytic {np.mean(rows['analytic']):.3f}, "
              f"DLG {np.mean(rows['dlg']):.3f}", flush=True)
    singles = [distinct_label_batch(y_train, 1, rng) for _ in range(args.images)]
    for z in NOISE_MULTIPLIERS:
        rows = {"analytic": [], "dlg": []}
        for seed, idx in enumerate(singles):
            x = x_train[idx]
            upd = update_of(weights, act, x, y_train[idx])
            noisy = attacks.clip_and_noise(upd, clipping_norm=INVERSION_CLIPPING_NORM,
                                           noise_multiplier=z, rng=np.random.default_rng(seed))
            rows["analytic"].append(float(attacks.ssim(
                attacks.invert_dense_least_squares(noisy[0], noisy[1]), x)[0]))
            rows["dlg"].append(dlg_ssim(weights, act, [n.astype(np.float32) for n in noisy],
                                        x)[0])
        out["noise"][str(z)] = rows
        print(f"z = {z}: analytic {np.mean(rows['analytic']):.3f}, "
              f"DLG {np.mean(rows['dlg']):.3f}", flush=True)
    out["setting"] = {"model": "2nn", "model_seed": 0, "images": args.images,
                      "fedsgd_learning_rate": FEDSGD_LEARNING_RATE,
                      "clipping_norm": INVERSION_CLIPPING_NORM, "dlg_steps": 300,
                      "noise_multipliers": list(NOISE_MULTIPLIERS)}
    return out


def balanced_members(num_models: int, num_clients: int, *, seed: int) -> np.ndarray:
    """``(num_models, num_clients)`` membership: every client in exactly half of the models.

    Each column is a random permutation of ``num_models // 2`` True values (Carlini et al. 2022,
    Section 5), so every client has the same number of "out" shadow models; within one model the
    clients are independent, each in with probability 1/2.
    """
    rng = np.random.default_rng(seed)
    column = np.arange(num_models) < num_models // 2
    return np.stack([rng.permutation(column) for _ in range(num_clients)], axis=1)


def roc_summary(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict:
    fpr, tpr = attacks.roc_curve(member_scores, nonmember_scores)
    on_grid = [attacks.tpr_at_fpr(fpr, tpr, f) if f > 0 else float(tpr[fpr == 0].max())
               for f in FPR_GRID]
    return {"auc": attacks.auc(fpr, tpr), "tpr_at_1pct": attacks.tpr_at_fpr(fpr, tpr, 0.01),
            "tpr_at_0.1pct": attacks.tpr_at_fpr(fpr, tpr, 0.001),
            "num_members": int(member_scores.size),
            "num_nonmembers": int(nonmember_scores.size), "roc_tpr": on_grid}


def membership_federation():
    """The pool ``(x, y)``, its 100 clients of 10 images and the MNIST test set."""
    s = MEMBERSHIP
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    pool = np.random.default_rng(0).permutation(len(y_train))[:s["pool_size"]]
    x, y = x_train[pool], y_train[pool]
    num_clients = s["pool_size"] // s["client_size"]
    clients = [(x[i * s["client_size"]:(i + 1) * s["client_size"]],
                y[i * s["client_size"]:(i + 1) * s["client_size"]]) for i in range(num_clients)]
    return x, y, clients, (x_test, y_test)


def attack_models(conf: np.ndarray, loss: np.ndarray, members: np.ndarray) -> dict:
    """Loss threshold and offline LiRA on every model, each with the others as its shadows.

    ``conf`` and ``loss`` are ``(num_models, pool_size)``; ``members`` ``(num_models,
    num_clients)``. Returns the ROC summaries per example and per client.
    """
    s = MEMBERSHIP
    num_models, num_clients = members.shape
    example_members = np.repeat(members, s["client_size"], axis=1)
    lira = np.empty_like(conf)
    for m in range(num_models):
        others = np.arange(num_models) != m
        lira[m] = attacks.lira_offline_scores(conf[m], conf[others], example_members[others])
    scores = {"loss": attacks.loss_threshold_scores(loss), "lira": lira}
    result = {}
    for name, sc in scores.items():
        result[f"example_{name}"] = roc_summary(sc[example_members], sc[~example_members])
        per_client = sc.reshape(num_models, num_clients, s["client_size"]).mean(axis=2)
        result[f"client_{name}"] = roc_summary(per_client[members], per_client[~members])
    return result


def sweep_matched(args) -> dict:
    s = MEMBERSHIP
    x, y, clients, (x_test, y_test) = membership_federation()
    act = attacks.model_activations(models.make_2nn())
    members = balanced_members(args.models, len(clients), seed=1)
    rounds = list(MATCHED_ROUNDS)
    conf = np.empty((len(rounds), args.models, len(y)))
    loss = np.empty_like(conf)
    acc = np.empty((len(rounds), args.models))
    start = time.perf_counter()
    for m in range(args.models):
        chosen = [clients[k] for k in np.flatnonzero(members[m])]
        weights, done = None, 0
        for k, total in enumerate(rounds):
            hist = training.run_fedavg(
                models.make_2nn, chosen, clients_per_round=len(chosen), num_rounds=total - done,
                local_epochs=s["local_epochs"], batch_size=s["batch_size"],
                client_learning_rate=s["client_learning_rate"], seed=100 * m + k,
                progress=False, initial_weights=weights)
            weights, done = hist.final_weights, total
            logits = attacks.per_example_logits(weights, act, x)
            conf[k, m] = attacks.logit_confidence(logits, y)
            loss[k, m] = attacks.per_example_losses(logits, y)
            test_logits = attacks.per_example_logits(weights, act, x_test)
            acc[k, m] = float(np.mean(test_logits.argmax(axis=1) == y_test))
        print(f"model {m}: accuracy by round " + ", ".join(
            f"{r}: {a:.3f}" for r, a in zip(rounds, acc[:, m], strict=True)), flush=True)
    out: dict = {"settings": {}, "fpr_grid": FPR_GRID.tolist(),
                 "setting": dict(s, epsilons=None, rounds=rounds, models=args.models,
                                 seconds=time.perf_counter() - start)}
    for k, total in enumerate(rounds):
        result = {"num_rounds": total, "test_accuracy": acc[k].tolist(),
                  **attack_models(conf[k], loss[k], members)}
        out["settings"][str(total)] = result
        print(f"no DP, stopped after {total:>2} rounds: accuracy {acc[k].mean():.3f}; "
              + "; ".join(f"{n} AUC {result[n]['auc']:.3f} "
                          f"TPR@0.1% {result[n]['tpr_at_0.1pct']:.4f}"
                          for n in ("example_loss", "example_lira", "client_lira")), flush=True)
    return out


def sweep_membership(args) -> dict:
    s = MEMBERSHIP
    x, y, clients, (x_test, y_test) = membership_federation()
    num_clients = len(clients)
    act = attacks.model_activations(models.make_2nn())
    out: dict = {"settings": {}, "fpr_grid": FPR_GRID.tolist(), "setting": dict(s)}
    for epsilon in s["epsilons"]:
        key = "none" if epsilon is None else f"{epsilon:g}"
        z = None if epsilon is None else accounting.noise_multiplier_for_epsilon(
            target_epsilon=epsilon, target_delta=s["target_delta"],
            sampling_probability=s["sampling_probability"], num_rounds=s["num_rounds"])
        members = balanced_members(args.models, num_clients, seed=1)
        conf, loss, acc = [], [], []
        start = time.perf_counter()
        for m in range(args.models):
            chosen = [clients[k] for k in np.flatnonzero(members[m])]
            common = dict(num_rounds=s["num_rounds"], local_epochs=s["local_epochs"],
                          batch_size=s["batch_size"],
                          client_learning_rate=s["client_learning_rate"], seed=m,
                          progress=False)
            if z is None:
                hist = training.run_fedavg(models.make_2nn, chosen, clients_per_round=len(chosen),
                                           **common)
            else:
                hist = training.run_dp_fedavg(
                    models.make_2nn, chosen, sampling_probability=s["sampling_probability"],
                    clipping_norm=s["clipping_norm"], noise_multiplier=z,
                    # Public: each client is in a model with probability 1/2 (never the count of
                    # the members, which is what membership inference asks about).
                    expected_clients=s["sampling_probability"] * num_clients / 2, **common)
            logits = attacks.per_example_logits(hist.final_weights, act, x)
            conf.append(attacks.logit_confidence(logits, y))
            loss.append(attacks.per_example_losses(logits, y))
            test_logits = attacks.per_example_logits(hist.final_weights, act, x_test)
            acc.append(float(np.mean(test_logits.argmax(axis=1) == y_test)))
        result = {"noise_multiplier": z, "epsilon": epsilon, "test_accuracy": acc,
                  "seconds": time.perf_counter() - start,
                  **attack_models(np.array(conf), np.array(loss), members)}
        out["settings"][key] = result
        print(f"epsilon {key:>4} (z {z}): accuracy {np.mean(acc):.3f}; "
              + "; ".join(f"{k} AUC {result[k]['auc']:.3f} TPR@0.1% "
                          f"{result[k]['tpr_at_0.1pct']:.4f}"
                          for k in ("example_loss", "example_lira", "client_lira"))
              + f" ({result['seconds']:.0f} s)", flush=True)
    out["setting"]["models"] = args.models
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", nargs="+", default=["inversion", "membership", "matched"],
                        choices=["inversion", "membership", "matched"])
    parser.add_argument("--images", type=int, default=5, help="images (batches) per point")
    parser.add_argument("--models", type=int, default=12, help="models per membership setting")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="diagnostics")
    for sweep in args.sweeps:
        start = time.perf_counter()
        result = {"inversion": sweep_inversion, "membership": sweep_membership,
                  "matched": sweep_matched}[sweep](args)
        result["meta"] = {"date": datetime.date.today().isoformat(),
                          "python": platform.python_version(), "argv": sys.argv[1:],
                          "seconds": time.perf_counter() - start}
        path = RESULTS / f"attacks_{sweep}.json"
        path.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
        print(f"wrote {path} ({result['meta']['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
