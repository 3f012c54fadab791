"""Argument checks shared by every module, so that all errors read the same way.

Each check raises ``ValueError`` (or ``TypeError`` for a wrong type) naming the argument, the value
it got and what was expected, e.g. ``ValueError("epsilon must be > 0, got 0.")``.

What every check rejects, so that nothing reaches the maths that it cannot handle: ``bool`` where
a number is expected (``True`` is an ``int`` to Python, never a meaningful count or epsilon),
strings, ``None``, complex numbers, lists and arrays where a scalar belongs, NaN and +-inf, ints
too large to become a float (``10**400``) or a 64-bit integer (``2**64``), and -- for positive
scales -- subnormal floats, whose reciprocal overflows.

Validate once, at a public entry point; internal calls trust their inputs.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Largest integer any count or index may be: numpy's int64 (a C long on 64-bit Linux).
MAX_INT = int(np.iinfo(np.int64).max)
#: Smallest positive *normal* float64. Positive scales below it are subnormal and lose
#: precision; ``1 / 5e-324`` overflows to ``inf``.
MIN_NORMAL = float(np.finfo(np.float64).tiny)
#: Seeds may hold at most this many bits (``numpy.random.SeedSequence`` uses 128 bits of entropy).
MAX_SEED_BITS = 128


def _fmt(value: Any) -> str:
    """A short text for ``value`` in an error message (huge ints and long reprs abbreviated)."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
            and abs(int(value)).bit_length() > 256:
        digits = int(abs(int(value)).bit_length() * math.log10(2)) + 1
        text = f"{'-' if value < 0 else ''}an integer of about {digits} digits"
    else:
        try:
            text = str(value)
        except Exception:  # a value that cannot even print itself
            text = f"a {type(value).__name__}"
    if len(text) > 80:
        text = text[:60] + "..." + text[-10:]
    return text


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_real(name: str, value: Any) -> float:
    """Returns ``value`` as a float after checking it is a finite real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {_type_name(value)} {_fmt(value)}.")
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float, e.g. 10**400
        raise ValueError(
            f"{name} must be finite, got {_fmt(value)} (too large for a float).") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}.")
    return result


def check_positive(name: str, value: Any) -> float:
    """Checks ``value`` is a finite real number > 0 and returns it as a float.

    Subnormal values (below :data:`MIN_NORMAL`, about 2.2e-308) are rejected too: a scale that
    small cannot be divided by without overflowing.
    """
    value = check_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {_fmt(value)}.")
    if value < MIN_NORMAL:
        raise ValueError(
            f"{name} must be >= {MIN_NORMAL} (the smallest normal float), got {_fmt(value)}.")
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


def check_in_range(name: str, value: Any, low: float, high: float, *,
                   high_open: bool = False) -> float:
    """Checks ``value`` is a finite real number in ``[low, high]`` (``[low, high)`` with
    ``high_open``) and returns it as a float. The one range check behind every bounded
    setting (a widget's slider range, a momentum, a delta)."""
    value = check_real(name, value)
    if not (low <= value < high if high_open else low <= value <= high):
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{')' if high_open else ']'}, "
                         f"got {_fmt(value)}.")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Checks ``value`` is an integer within ``[minimum, maximum]`` and returns it as an int.

    Without ``maximum`` the bound is :data:`MAX_INT` (2**63 - 1), so that a count never
    overflows numpy's C long later on. ``bool`` and integral floats such as ``3.0`` are rejected.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_type_name(value)} {_fmt(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {_fmt(value)}.")
    upper = MAX_INT if maximum is None else maximum
    if value > upper:
        what = " (the largest 64-bit integer)" if maximum is None else ""
        raise ValueError(f"{name} must be <= {upper}{what}, got {_fmt(value)}.")
    return value


def check_index(name: str, value: Any, *, size: int | None = None) -> int:
    """Checks ``value`` is a non-negative integer index (a round index, a client id).

    ``0.0``, ``1.5``, ``True`` and numpy 0-d arrays are rejected: a float round index would
    silently reuse another round's randomness.

    Args:
        name: The argument's name, for the message.
        value: The candidate index.
        size: If given, the index must be < ``size`` (e.g. the number of rounds or clients).

    Returns:
        The index as a Python int.
    """
    return check_int(name, value, minimum=0, maximum=None if size is None else size - 1)


def check_seed(name: str, value: Any) -> int | tuple[int, ...]:
    """Checks ``value`` is a seed: an int >= 0 or a non-empty sequence of them.

    That is what ``numpy.random.SeedSequence`` accepts as entropy. Each int may have at most
    :data:`MAX_SEED_BITS` bits. ``None`` is rejected: a seed is a promise of reproducibility,
    and asking for fresh entropy is a different, explicitly named option.

    Returns:
        The int, or a tuple of ints for a sequence.
    """
    maximum = 2**MAX_SEED_BITS - 1
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"{name} must be an integer >= 0 or a sequence of them, got {_type_name(value)} "
            f"{_fmt(value)}.")
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
        if isinstance(value, np.ndarray) and value.ndim != 1:
            raise ValueError(f"{name} must be a 1-D sequence of integers, got shape {value.shape}.")
        entries = list(value)
        if not entries:
            raise ValueError(f"{name} must not be an empty sequence, got {_fmt(value)}.")
        return tuple(check_int(f"{name}[{i}]", entry, minimum=0, maximum=maximum)
                     for i, entry in enumerate(entries))
    return check_int(name, value, minimum=0, maximum=maximum)


def check_ids(name: str, value: Any, *, num: int, unique: bool = False) -> np.ndarray:
    """Checks ``value`` is a 1-D array-like of integer ids in ``0..num - 1``.

    For the client ids of a round (``num`` = number of clients, ``unique=True``: a client counted
    twice doubles the sensitivity) or the example indices of a partition (``num`` = number of
    examples). Bool masks are rejected (``[True, False]`` are not the ids 1 and 0), and so are
    float arrays, even integral ones, negative ids (numpy would count them from the end) and ids
    ``>= num``. An empty array is allowed.

    Args:
        name: The argument's name, for the message.
        value: The candidate ids: a list, tuple or numpy array.
        num: Number of valid ids (ids run from 0 to ``num - 1``), >= 0.
        unique: Whether an id may appear at most once.

    Returns:
        The ids as a new int64 numpy array.
    """
    if value is None or isinstance(value, (str, bytes, numbers.Number, np.generic)):
        raise TypeError(
            f"{name} must be a 1-D array of integer ids, got {_type_name(value)} {_fmt(value)}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise TypeError(
            f"{name} must be a 1-D array of integer ids, got {_type_name(value)}.") from error
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of ids, got shape {array.shape}.")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype == np.bool_:
        raise TypeError(
            f"{name} must hold integer ids, got a bool mask. Pass np.flatnonzero(mask) instead.")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer ids, got dtype {array.dtype}.")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= num:
        raise ValueError(
            f"{name} must hold ids in 0..{num - 1}, got values from {low} to {high}.")
    array = array.astype(np.int64)
    if unique:
        values, counts = np.unique(array, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(
                f"{name} must not repeat an id, got {int(values[np.argmax(counts > 1)])} "
                f"{int(counts.max())} times.")
    return array


def check_int_array(name: str, value: Any, *, minimum: int = 0) -> np.ndarray:
    """Checks ``value`` is a 1-D array of integers >= ``minimum`` (empty allowed) and returns it
    as int64 (counts, ids, round numbers read back from a checkpoint)."""
    try:
        array = np.asarray(None if isinstance(value, (str, bytes)) else value)
    except (TypeError, ValueError):  # ragged lists
        array = np.asarray(None)
    if array.ndim != 1 or (array.size and (array.dtype == np.bool_
                                           or array.dtype.kind not in "iu")):
        raise TypeError(f"{name} must be a 1-D array of integers, got "
                        f"{_type_name(value)} {_fmt(value)}.")
    if array.size and int(array.min()) < minimum:
        raise ValueError(f"{name} must hold integers >= {minimum}, got {int(array.min())}.")
    return array.astype(np.int64)


def check_client_datasets(name: str, value: Any) -> int:
    """Checks ``value`` is a non-empty sequence (one entry per client, not a string) and returns
    its length, the number of clients ``N``; the ``(x, y)`` pairs themselves are left to the
    caller (they are checked against the model, e.g. by ``client.check_datasets``).

    The early count behind ``distributed_dp.run_distributed_dp`` and ``dp_ftrl.run_dp_ftrl``,
    which need ``N`` before the model is built.
    """
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value):
        return len(value)
    raise TypeError(f"{name} must be a non-empty list of (x, y) pairs, got "
                    f"{_type_name(value)}.")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Checks ``value`` is one of the strings ``choices`` and returns it."""
    allowed = " or ".join(repr(choice) for choice in choices) if len(choices) <= 3 \
        else "one of " + ", ".join(repr(choice) for choice in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be {allowed}, got {_type_name(value)} {_fmt(value)}.")
    if value not in choices:
        raise ValueError(f"{name} must be {allowed}, got {_fmt(value)}.")
    return value


def check_flag(name: str, value: Any) -> bool:
    """Checks ``value`` is ``True`` or ``False`` (not 1, ``"yes"`` or ``None``)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_type_name(value)} {_fmt(value)}.")
    return value


def check_folder(name: str, value: Any) -> Path:
    """Checks ``value`` is a path (``str`` or ``os.PathLike`` giving a non-empty ``str``, not
    bytes) and returns it as a ``Path``; whether it exists is left to the caller."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {_type_name(value)} "
                        f"{_fmt(value)}.")
    text = os.fspath(value)
    if not isinstance(text, str) or text == "":
        raise ValueError(f"{name} must be a non-empty text path, got {_fmt(text)}.")
    return Path(text)


def check_argv(value: Any) -> list[str]:
    """Checks a command line's ``argv`` is a sequence of strings (not one string) and returns
    it as a list."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) \
            or not all(isinstance(word, str) for word in value):
        raise TypeError(f"argv must be a list of strings (the flags and their values), got "
                        f"{_type_name(value)} {_fmt(value)}.")
    return list(value)


def check_rng(name: str, value: Any) -> np.random.Generator:
    """Checks ``value`` is a ``numpy.random.Generator`` (as made by ``np.random.default_rng``)."""
    if not isinstance(value, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator, got {type(value).__name__}. "
            f"Pass {name}=np.random.default_rng(seed)."
        )
    return value



def check_float_array(name: str, value: Any, *, ndim: int | tuple[int, ...] | None = None,
                      min_size: int = 1) -> np.ndarray:
    """Checks ``value`` is an array-like of finite real numbers and returns it as float64.

    Rejects ``None``, strings and bytes, ragged nested lists, bool, complex and object arrays,
    NaN and +-inf entries, arrays with fewer than ``min_size`` entries and, if ``ndim`` is given
    (one number of dimensions or a tuple of allowed ones), arrays of any other dimension.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(
            f"{name} must be an array of real numbers, got {_type_name(value)} {_fmt(value)}.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise TypeError(f"{name} must be an array of real numbers, got a ragged "
                        f"{_type_name(value)}.") from error
    if array.dtype == np.bool_ or array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}.")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and array.ndim not in allowed:
        wanted = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{name} must be a {wanted} array, got shape {array.shape}.")
    if array.size < min_size:
        wanted = "be non-empty" if min_size == 1 else f"hold at least {min_size} values"
        raise ValueError(f"{name} must {wanted}, got {array.size} values.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got NaN or inf entries.")
    return array


#: The languages in which the helpers write their display text, e.g. a privacy statement (the
#: course's editions: English and Simplified Chinese).
LANGUAGES = ("en", "zh-CN")


def check_language(language: Any) -> str:
    """Checks ``language`` is one of :data:`LANGUAGES` (``"en"`` or ``"zh-CN"``) and returns it.

    The one check behind every ``language=`` argument (``reporting.privacy_statement`` and
    ``reporting_checklist``, ``dp_sgd.DPSGDResult.privacy_statement``,
    ``split_learning.SplitRun.privacy_statement``).
    """
    return check_choice("language", language, LANGUAGES)
