"""What vertical federated learning costs: PSI and encrypted training, per 1,000 customers.

Notebook 09 and the README quote the stored results of this script
(``benchmarks/results/vertical_fl_costs.json``). Three parts, all measured on this machine:

* ``primitives``: microseconds per Paillier operation (:mod:`fl_helpers.paillier`) at 1024,
  2048 and 3072 bits, with gmpy2 and with Python's ``pow``: encrypt, decrypt (CRT), add two
  ciphertexts, multiply a ciphertext by a 40-bit signed integer (a feature at 32 fractional
  bits, the protocol's typical multiplier), and one entry of ``[[M^T x]]``
  (:func:`paillier.dot_columns` on a 256 x 8 matrix, per entry).
* ``psi``: entity alignment with :func:`fl_helpers.psi.intersect` (P-256, and the 2048-bit MODP
  group on a tenth of the ids) and, if importable, OpenMined's ``openmined-psi`` 2.0.4 on the
  same ids: the story's populations at a tenth of their size (the bank 2,000 and the bureau
  2,400 of 3,000 customers, drawn with seed 0). Seconds and bytes per 1,000 customers, where
  "customers" counts both inputs (``|X| + |Y|``): every id is hashed and blinded twice, so the
  cost is linear in it.
* ``training``: one epoch of Hardy et al.'s vertical logistic regression
  (:func:`fl_helpers.vertical_protocol.encrypted_step`, mini-batches of 256) on the course's
  aligned training customers (``vertical.credit_parties(seed=0)``: 12,804 customers, the bank's
  20 columns with the intercept, the bureau's 30), for each key size; a few batches are timed
  and the epoch is **extrapolated** (seconds per batch times batches per epoch), as the output
  says; once more at 1024 bits without gmpy2, and the share of a batch spent encrypting B's
  scores. Beside it, the plaintext Taylor epoch (the same arithmetic in floats, timed over
  whole epochs), the bytes one epoch sends (:func:`vertical_protocol.epoch_bytes`), and the
  largest difference between the encrypted and the float gradients with its fixed-point bound.

The machine's load average is stored with the figures: the course's machine has 2 cores shared
with other work, so the seconds are upper bounds for a quiet laptop. It never asserts timings.

Usage (from the repository root)::

    .venv/bin/python benchmarks/vertical_fl_costs.py [--parts primitives psi training]
        [--batches 3 2 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fl_helpers import paillier, psi, vertical  # noqa: E402
from fl_helpers import vertical_protocol as vp  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "vertical_fl_costs.json"
KEY_BITS = (1024, 2048, 3072)
BATCH_SIZE = 256
PRECISION_BITS = paillier.DEFAULT_PRECISION_BITS
SEED = 0


def _per_call(function, *, budget: float = 0.4) -> float:
    """Microseconds per call of ``function()``: as many calls as fit in ``budget`` seconds
    (at least 3)."""
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < budget:
        function()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e6


def primitives() -> list[dict]:
    backends = [b for b in paillier.BACKENDS if b != "gmpy2" or paillier.gmpy2_available()]
    rows = []
    print("Paillier operations, microseconds per call")
    print(f"{'key bits':>8} {'backend':>7} {'encrypt':>10} {'decrypt':>10} {'add':>8} "
          f"{'mul (40-bit)':>12} {'dot entry':>10}")
    for key_bits in KEY_BITS:
        public, private = paillier.generate_keypair(key_bits=key_bits)
        rng = np.random.default_rng(SEED)
        x = paillier.encrypt_vector(public, rng.normal(size=256))
        matrix = rng.normal(size=(256, 8)) * 3
        for backend in backends:
            key, secret = paillier.keypair_from_primes(private.p, private.q, backend=backend)
            c1 = paillier.encrypt(key, secrets.randbelow(key.n))
            c2 = paillier.encrypt(key, secrets.randbelow(key.n))
            multiplier = -(secrets.randbits(40))
            vector = paillier.EncryptedVector(key, x.ciphertexts, x.precision_bits)
            start = time.perf_counter()
            paillier.dot_columns(vector, matrix)
            dot_entry = (time.perf_counter() - start) / matrix.size * 1e6
            row = {
                "key_bits": key_bits, "backend": backend,
                "encrypt_us": _per_call(lambda: paillier.encrypt(key, 12345)),  # noqa: B023
                "decrypt_us": _per_call(lambda: paillier.decrypt(secret, c1)),  # noqa: B023
                "add_us": _per_call(lambda: paillier.add(key, c1, c2)),  # noqa: B023
                "multiply_us": _per_call(
                    lambda: paillier.multiply_plain(key, c1, multiplier)),  # noqa: B023
                "dot_entry_us": dot_entry,
            }
            rows.append(row)
            print(f"{key_bits:>8} {backend:>7} {row['encrypt_us']:>10,.0f} "
                  f"{row['decrypt_us']:>10,.0f} {row['add_us']:>8,.1f} "
                  f"{row['multiply_us']:>12,.1f} {row['dot_entry_us']:>10,.1f}")
    by = {(r["key_bits"], r["backend"]): r for r in rows}
    if len(backends) == 2:
        print("gmpy2 speed-up (python / gmpy2), encrypt: " + ", ".join(
            f"{k} bits {by[(k, 'python')]['encrypt_us'] / by[(k, 'gmpy2')]['encrypt_us']:.1f}x"
            for k in KEY_BITS))
    return rows


def _story_ids(fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The bank's and the bureau's ids at ``fraction`` of the story's sizes (seed 0)."""
    rng = np.random.default_rng(SEED)
    population = np.arange(1, int(30_000 * fraction) + 1)
    bank = rng.choice(population, int(20_000 * fraction), replace=False)
    bureau = rng.choice(population, int(24_000 * fraction), replace=False)
    return bank, bureau


def _psi_row(name: str, ids_a: np.ndarray, ids_b: np.ndarray, seconds: float,
             num_bytes: int, shared: int) -> dict:
    customers = len(ids_a) + len(ids_b)
    row = {"implementation": name, "ids_a": len(ids_a), "ids_b": len(ids_b),
           "intersection": shared, "seconds": seconds,
           "seconds_per_1000_customers": seconds / customers * 1000,
           "bytes": num_bytes, "bytes_per_1000_customers": num_bytes / customers * 1000}
    print(f"{name:<28} {len(ids_a):>6,} + {len(ids_b):>6,} ids {seconds:>7.2f} s "
          f"{row['seconds_per_1000_customers']:>7.3f} s/1k {num_bytes:>10,} B "
          f"{row['bytes_per_1000_customers']:>9,.0f} B/1k")
    return row


def psi_costs() -> list[dict]:
    print("\nPrivate set intersection ('customers' = |X| + |Y|, both parties on this machine)")
    rows = []
    bank, bureau = _story_ids(0.1)
    start = time.perf_counter()
    result = psi.intersect(bank, bureau)
    rows.append(_psi_row("fl_helpers.psi p256", bank, bureau, time.perf_counter() - start,
                         result.bytes_a_to_b + result.bytes_b_to_a, len(result.intersection)))
    small_bank, small_bureau = _story_ids(0.01)
    start = time.perf_counter()
    result = psi.intersect(small_bank, small_bureau, group="modp2048")
    rows.append(_psi_row("fl_helpers.psi modp2048", small_bank, small_bureau,
                         time.perf_counter() - start,
                         result.bytes_a_to_b + result.bytes_b_to_a, len(result.intersection)))
    try:
        import private_set_intersection.python as openmined
    except ImportError:
        print("openmined-psi is not installed: skipped (pip install openmined-psi==2.0.4)")
        return rows
    start = time.perf_counter()
    client = openmined.client.CreateWithNewKey(True)
    server = openmined.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.0, len(bank), [str(x) for x in bureau],
                                      openmined.DataStructure.RAW)
    request = client.CreateRequest([str(x) for x in bank])
    response = server.ProcessRequest(request)
    shared = client.GetIntersection(setup, response)
    seconds = time.perf_counter() - start
    num_bytes = setup.ByteSize() + request.ByteSize() + response.ByteSize()
    rows.append(_psi_row("openmined-psi 2.0.4 (P-256)", bank, bureau, seconds, num_bytes,
                         len(shared)))
    return rows


def _aligned_training_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parties = vertical.credit_parties(seed=SEED)
    ids = parties.train_ids
    (x_a,) = vertical.standardise(parties.bank.features[parties.bank.rows(ids)])
    (x_b,) = vertical.standardise(parties.bureau.features[parties.bureau.rows(ids)])
    return x_a, x_b, parties.bank.labels[parties.bank.rows(ids)]


def training(batches: dict[int, int]) -> list[dict]:
    x_a, x_b, labels = _aligned_training_data()
    rows_total = len(x_a)
    per_1000 = 1000 / rows_total
    batches_per_epoch = -(-rows_total // BATCH_SIZE)
    print(f"\nTraining on {rows_total:,} aligned customers: bank {x_a.shape[1]} columns + "
          f"intercept, bureau {x_b.shape[1]} columns, batches of {BATCH_SIZE} "
          f"({batches_per_epoch} per epoch), {PRECISION_BITS} fractional bits")
    rng = np.random.default_rng(SEED)
    # Weights of a partly trained model, so that the gradients are not those of zero weights.
    warm = vp.train_vertical(x_a, x_b, labels, num_epochs=1, batch_size=BATCH_SIZE,
                             learning_rate=0.1, l2=1e-3, rng=np.random.default_rng(SEED))
    start = time.perf_counter()
    epochs = 5
    vp.train_vertical(x_a, x_b, labels, num_epochs=epochs, batch_size=BATCH_SIZE,
                      learning_rate=0.1, l2=1e-3, rng=np.random.default_rng(SEED))
    plain_seconds = (time.perf_counter() - start) / epochs
    results = [{"mode": "plaintext Taylor", "key_bits": None, "batches_timed": epochs
                * batches_per_epoch, "extrapolated": False, "seconds_per_epoch": plain_seconds,
                "seconds_per_1000_customers": plain_seconds * per_1000,
                "bytes_per_epoch": 0, "bytes_per_1000_customers": 0}]
    print(f"{'mode':<24} {'s/batch':>8} {'s/epoch':>9} {'s per 1k':>9} {'MB/epoch':>9} "
          f"{'kB per 1k':>10} {'max |enc - float|':>18} {'bound':>9} {'[[u_B]]':>7}")
    print(f"{'plaintext Taylor':<24} {'':>8} {plain_seconds:>9.4f} "
          f"{plain_seconds * per_1000:>9.5f} {0:>9} {0:>10}")
    runs = [(key_bits, paillier.DEFAULT_BACKEND, batches[key_bits]) for key_bits in KEY_BITS]
    if paillier.gmpy2_available():
        runs.append((1024, "python", 1))  # the same protocol without the accelerator
    for key_bits, backend, num_batches in runs:
        coordinator = vp.Coordinator(key_bits=key_bits, backend=backend)
        bank = vp.Bank(x_a, labels, coordinator.public_key, precision_bits=PRECISION_BITS)
        bureau = vp.Bureau(x_b, coordinator.public_key, precision_bits=PRECISION_BITS)
        bank.weights, bureau.weights = warm.weights_a.copy(), warm.weights_b.copy()
        seconds, difference, bound = [], 0.0, 0.0
        for batch in range(num_batches):
            rows = rng.choice(rows_total, size=BATCH_SIZE, replace=False)
            start = time.perf_counter()
            step = vp.encrypted_step(bank, bureau, coordinator, rows, batch=batch)
            seconds.append(time.perf_counter() - start)
            plain_a, plain_b = vp.taylor_gradients(x_a[rows], x_b[rows], labels[rows],
                                                   bank.weights, bureau.weights)
            difference = max(difference, float(np.abs(step.gradient_a - plain_a).max()),
                             float(np.abs(step.gradient_b - plain_b).max()))
            z = x_a[rows] @ bank.weights[:-1] + bank.weights[-1] + x_b[rows] @ bureau.weights
            d = z / 4 - (2.0 * labels[rows] - 1) / 2
            bound = max(bound, vp.fixed_point_gradient_bound(
                max_abs_feature=float(max(1.0, np.abs(x_a[rows]).max(),
                                          np.abs(x_b[rows]).max())),
                max_abs_residual=float(np.abs(d).max()), precision_bits=PRECISION_BITS))
        sample = rng.choice(rows_total, size=64, replace=False)
        start = time.perf_counter()
        bureau.encrypted_quarter_scores(sample)
        encrypt_share = (time.perf_counter() - start) * BATCH_SIZE / 64 / float(np.mean(seconds))
        per_batch = float(np.mean(seconds))
        per_epoch = per_batch * rows_total / BATCH_SIZE  # the last batch is partial
        epoch_bytes = vp.epoch_bytes(num_rows=rows_total, batch_size=BATCH_SIZE,
                                     num_features_a=x_a.shape[1], num_features_b=x_b.shape[1],
                                     key_bits=key_bits)
        row = {"mode": "encrypted", "key_bits": key_bits, "backend": backend,
               "batches_timed": len(seconds), "share_encrypting_u_b": encrypt_share,
               "extrapolated": True, "seconds_per_batch": per_batch,
               "seconds_per_epoch": per_epoch, "seconds_per_1000_customers": per_epoch
               * per_1000, "bytes_per_epoch": epoch_bytes,
               "bytes_per_1000_customers": epoch_bytes * per_1000,
               "max_gradient_difference": difference, "gradient_bound": bound,
               "slowdown_vs_plaintext": per_epoch / plain_seconds}
        results.append(row)
        label = f"encrypted, {key_bits}" + (", python" if backend == "python" else "")
        print(f"{label:<24} {per_batch:>8.2f} {per_epoch:>9.1f} "
              f"{per_epoch * per_1000:>9.2f} {epoch_bytes / 1e6:>9.2f} "
              f"{epoch_bytes * per_1000 / 1e3:>10.0f} {difference:>18.2e} {bound:>9.2e} "
              f"{encrypt_share:>7.0%}")
    print(f"(encrypted epochs extrapolated from {', '.join(str(n) for *_, n in runs)} timed "
          f"batches of {BATCH_SIZE} at {', '.join(str(k) for k, *_ in runs)} bits: seconds per "
          f"batch x {rows_total:,} / {BATCH_SIZE}; bytes counted exactly; [[u_B]]: the share of "
          f"a batch's time B spends encrypting its scores, the rest is [[X^T d]], masks and "
          f"decryption; backend {paillier.DEFAULT_BACKEND} unless marked python)")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("primitives", "psi", "training"),
                        default=["primitives", "psi", "training"])
    parser.add_argument("--batches", nargs=3, type=int, default=[3, 2, 1],
                        metavar=("B1024", "B2048", "B3072"),
                        help="mini-batches timed per key size (default 3 2 1)")
    args = parser.parse_args(argv)
    if min(args.batches) < 1:
        parser.error("--batches must be >= 1")
    started = time.perf_counter()
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = stored.setdefault("runs", {})
    gmpy2 = paillier.gmpy2
    for part in args.parts:
        load_start, part_start = os.getloadavg(), time.perf_counter()
        if part == "primitives":
            stored[part] = primitives()
        elif part == "psi":
            stored[part] = psi_costs()
        else:
            stored[part] = training(dict(zip(KEY_BITS, args.batches, strict=True)))
        runs[part] = {
            "date": datetime.date.today().isoformat(),
            "seconds": round(time.perf_counter() - part_start, 1),
            "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(),
            "gmpy2": gmpy2.version() if gmpy2 is not None else None,
            "key_bits": list(KEY_BITS), "batch_size": BATCH_SIZE,
            "precision_bits": PRECISION_BITS,
            **({"batches_timed": args.batches} if part == "training" else {}),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
    print(f"\n{time.perf_counter() - started:.0f} s, load average now "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; wrote {RESULTS}")


if __name__ == "__main__":
    main()
