"""Wall-clock time of each course notebook (and its solutions) run top to bottom in a fresh kernel.

Each notebook is executed with ``jupyter nbconvert --execute`` into a temporary folder (the
stored notebooks are never overwritten), in a fresh ``python3`` kernel started in the notebook's
own folder, so relative paths behave as in the course. The table gives seconds per notebook,
whether it ran without error, and the load average before each run: the machine is shared, so
the figures are upper bounds of what a quiet machine takes. Targets (issue 15): every notebook
<= 90 s, the whole course <= 8 minutes on the 2-core machine.

Besides the printed table (kept in ``benchmarks/results/time_notebooks.txt``), each run writes
``benchmarks/results/time_notebooks.json``: one record per notebook (seconds, ok, the 1-minute
load average before it, the UTC date, the CPU count). This file is the course's one source of
runtimes: ``tests/test_runtimes.py`` checks the notebook headers, the README's table and the
instructor guide's table against it. A run on some notebooks only (``--notebooks``) replaces
those records and keeps the others, each with its own date and load. The JSON is rewritten after
every notebook, so an interrupted run keeps what it measured.

    .venv/bin/python benchmarks/time_notebooks.py | tee benchmarks/results/time_notebooks.txt
    .venv/bin/python benchmarks/time_notebooks.py --notebooks 01 03      # by number prefix
    .venv/bin/python benchmarks/time_notebooks.py --notebooks 04_  # 04 alone, not 04b
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS_JSON = ROOT / "benchmarks" / "results" / "time_notebooks.json"


def _numbered(folder: Path) -> list[Path]:
    """The notebooks of ``folder`` named ``NN_*`` or ``NNx_*`` (e.g. ``04b_``), by name: teaching
    order, since ``04_`` sorts before ``04b_`` and ``04b_`` before ``05_``."""
    return sorted(p for p in folder.glob("*.ipynb") if re.match(r"\d\d[a-z]?_", p.name))


def find_notebooks(prefixes: list[str] | None, solutions: bool) -> list[Path]:
    """The course's notebooks in teaching order (then their solutions), filtered by prefix."""
    found = _numbered(NOTEBOOKS)
    if solutions:
        found += _numbered(NOTEBOOKS / "solutions")
    if prefixes:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in prefixes)]
    return found


def time_notebook(path: Path, timeout: int) -> tuple[float, bool, str]:
    """(seconds, ok, last error line) of one fresh-kernel execution into a temporary copy."""
    jupyter = Path(sys.executable).with_name("jupyter")
    with tempfile.TemporaryDirectory() as folder:
        command = [str(jupyter), "nbconvert", "--to", "notebook", "--execute", str(path),
                   "--output-dir", folder, "--output", path.name,
                   f"--ExecutePreprocessor.timeout={timeout}",
                   "--ExecutePreprocessor.kernel_name=python3"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=path.parent,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        seconds = time.perf_counter() - start
    error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]
    return seconds, done.returncode == 0, error[:120]


def load_records(path: Path) -> dict[str, dict[str, object]]:
    """The records already in ``path`` (notebook name relative to notebooks/ -> record), or {}."""
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8"))["notebooks"])


def write_records(path: Path, records: dict[str, dict[str, object]]) -> None:
    """Write ``records`` to ``path`` as the machine-readable runtime source, sorted by name."""
    document = {
        "description": "Fresh-kernel wall-clock seconds per notebook, from "
                       "benchmarks/time_notebooks.py; load is the 1-minute load average just "
                       "before the run (the machine is shared).",
        "notebooks": {name: records[name] for name in sorted(records)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None,
                        help="name prefixes to run (e.g. 01 03; 04_ for 04 without 04b); "
                             "default: all")
    parser.add_argument("--no-solutions", action="store_true", help="skip notebooks/solutions")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON,
                        help="machine-readable results file (default: %(default)s)")
    args = parser.parse_args()
    records = load_records(args.json)
    paths = find_notebooks(args.notebooks, not args.no_solutions)
    if not paths:
        parser.error(f"no notebook matches {args.notebooks}")
    print(f"{'notebook':<58}{'seconds':>9}  {'ok':<4}{'load (1 min)':>13}")
    total = 0.0
    for path in paths:
        load = os.getloadavg()[0]
        seconds, ok, error = time_notebook(path, args.timeout)
        total += seconds
        name = path.relative_to(NOTEBOOKS).as_posix()
        records[name] = {
            "seconds": round(seconds, 1), "ok": ok, "load_1min": round(load, 2),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cpu_count": os.cpu_count(), "error": error,
        }
        write_records(args.json, records)
        print(f"{name:<58}{seconds:>9.1f}  {'yes' if ok else 'NO':<4}{load:>13.2f}"
              f"{'  ' + error if error else ''}", flush=True)
    print(f"{'total':<58}{total:>9.1f}   ({len(paths)} notebooks; load average at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
