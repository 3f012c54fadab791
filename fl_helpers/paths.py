"""Where the course's shipped data and stored results live: one helper, numpy-free.

The package is installed from the course checkout (``pip install -e .``), and its data
(``data/``) and the benchmarks' stored results (``benchmarks/results/``) sit beside it. Two
environment variables move them: ``$FL_DATA_DIR`` (a folder with ``mnist/``, ``heart_disease/``,
...) and ``$FL_RESULTS_DIR`` (a folder with the stored JSON files). Without them, the folders are
found in the checkout; if the package was installed some other way (a wheel in site-packages),
the error says which variable to set instead of failing later on a missing file.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The course checkout this package was installed from (the folder above ``fl_helpers``).
CHECKOUT = Path(__file__).resolve().parents[1]


def _folder(variable: str, *parts: str) -> Path:
    root = os.environ.get(variable)
    if root:
        return Path(root)
    folder = CHECKOUT.joinpath(*parts)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{'/'.join(parts)} not found beside the installed fl_helpers ({CHECKOUT}): install "
            f"the course with `pip install -e .` from its checkout, or set ${variable} to the "
            "folder that holds it.")
    return folder


def data_dir(name: str) -> Path:
    """The folder of one shipped dataset (``"mnist"``, ``"heart_disease"``, ...):
    ``$FL_DATA_DIR/name`` if that variable is set, else ``data/name`` in the checkout."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a dataset folder name such as 'mnist', got {name!r}.")
    root = os.environ.get("FL_DATA_DIR")
    return Path(root) / name if root else _folder("FL_DATA_DIR", "data") / name


def results_dir() -> Path:
    """The benchmarks' stored results: ``$FL_RESULTS_DIR`` if set, else
    ``benchmarks/results`` in the checkout (the notebooks read their stored sweeps from here)."""
    return _folder("FL_RESULTS_DIR", "benchmarks", "results")


def app_dir() -> Path:
    """The Flower app (``flower_app/``) in the checkout, or ``$FL_APP_DIR``."""
    return _folder("FL_APP_DIR", "flower_app")
