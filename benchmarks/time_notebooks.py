"""Wall-clock time of each course notebook (and its solutions) run top to bottom in a fresh kernel.

Each notebook is executed with ``jupyter nbconvert --execute`` into a temporary folder (the
stored notebooks are never overwritten), in a fresh ``python3`` kernel started in the notebook's
own folder, so relative paths behave as in the course. The table gives seconds per notebook,
whether it ran without error, and the load average before each run: the machine is shared, so
the figures are upper bounds of what a quiet machine takes. Targets (issue 15): every notebook
<= 90 s, the whole course <= 8 minutes on the 2-core machine.

    .venv/bin/python benchmarks/time_notebooks.py                        # every notebook
    .venv/bin/python benchmarks/time_notebooks.py --notebooks 01 03      # by number prefix
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def find_notebooks(prefixes: list[str] | None, solutions: bool) -> list[Path]:
    """The course's notebooks in teaching order (then their solutions), filtered by prefix."""
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if solutions:
        found += sorted((NOTEBOOKS / "solutions").glob("[0-9][0-9]_*.ipynb"))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None,
                        help="name prefixes to run (e.g. 01 03); default: all")
    parser.add_argument("--no-solutions", action="store_true", help="skip notebooks/solutions")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args()
    paths = find_notebooks(args.notebooks, not args.no_solutions)
    if not paths:
        parser.error(f"no notebook matches {args.notebooks}")
    print(f"{'notebook':<58}{'seconds':>9}  {'ok':<4}{'load (1 min)':>13}")
    total = 0.0
    for path in paths:
        load = os.getloadavg()[0]
        seconds, ok, error = time_notebook(path, args.timeout)
        total += seconds
        name = str(path.relative_to(NOTEBOOKS))
        print(f"{name:<58}{seconds:>9.1f}  {'yes' if ok else 'NO':<4}{load:>13.2f}"
              f"{'  ' + error if error else ''}", flush=True)
    print(f"{'total':<58}{total:>9.1f}   ({len(paths)} notebooks; load average at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
