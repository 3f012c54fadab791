"""Argument checks shared by every module, so that all errors read the same way.

Each check raises ``ValueError`` (or ``TypeError`` for a wrong type) naming the argument, the value
it got and what was expected, e.g. ``ValueError("epsilon must be > 0, got 0.")``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_real(name: str, value: Any) -> float:
    """Returns ``value`` as a float after checking it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {_fmt(value)}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return value


def check_positive(name: str, value: Any) -> float:
    """Checks ``value`` is a finite real number > 0 and returns it as a float."""
    value = check_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {_fmt(value)}.")
    return value


def check_non_negative(name: str, value: Any) -> float:
    """Checks ``value`` is a finite real number >= 0 and returns it as a float."""
    value = check_real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {_fmt(value)}.")
    return value


def check_open_unit(name: str, value: Any) -> float:
    """Checks ``value`` lies in the open interval (0, 1) and returns it as a float."""
    value = check_real(name, value)
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {_fmt(value)}.")
    return value


def check_probability(name: str, value: Any) -> float:
    """Checks ``value`` lies in the half-open interval (0, 1] and returns it as a float."""
    value = check_real(name, value)
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {_fmt(value)}.")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Checks ``value`` is an integer within ``[minimum, maximum]`` and returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {_fmt(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}.")
    return value


def check_rng(name: str, value: Any) -> np.random.Generator:
    """Checks ``value`` is a ``numpy.random.Generator`` (as made by ``np.random.default_rng``)."""
    if not isinstance(value, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator, got {type(value).__name__}. "
            f"Pass {name}=np.random.default_rng(seed)."
        )
    return value
