"""The type checker passes on fl_helpers (configuration: ``[tool.mypy]`` in pyproject.toml).

Run by the README's test command like every other test, so a type error in the package fails CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes_on_fl_helpers():
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}{done.stderr}"
