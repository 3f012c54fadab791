"""A run's state on disk: atomic ``.npz`` checkpoints, with nothing pickled.

The training loop (:mod:`fl_helpers.training`) writes its state after every ``checkpoint_every``
rounds with :func:`save_checkpoint` and, when a run finds the file, resumes from
:func:`load_checkpoint`. A checkpoint is a flat ``{name: array}`` dict: lists of arrays of
different lengths (one array of update norms per round) go in with :func:`pack_ragged`, the
rejected clients (:class:`fl_helpers.faults.Rejection`) with :func:`rejections_to_arrays`, and
come back out with :func:`unpack_ragged` and :func:`rejections_from_arrays`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fl_helpers import _validation as v
from fl_helpers import faults


def check_path(name: str, path: Any) -> str | os.PathLike:
    """Checks ``path`` is the path of a file (new or existing) in an existing folder.

    Args:
        name: The argument's name, for the message.
        path: A ``str`` or ``os.PathLike``.

    Returns:
        ``path``, unchanged.

    Raises:
        TypeError: If ``path`` is not a ``str`` or ``os.PathLike``.
        ValueError: If it is empty, a folder, or in a folder that does not exist.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (the name used in messages), got "
                        f"{type(name).__name__} {v._fmt(name)}.")
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got "
                        f"{type(path).__name__}.")
    text = os.fspath(path)
    if not isinstance(text, str) or text == "" or os.path.isdir(text) \
            or not os.path.isdir(os.path.dirname(os.path.abspath(text))):
        raise ValueError(f"{name} must be the path of a file in an existing folder, got "
                         f"{v._fmt(text)}.")
    return path


def _check_arrays(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of named arrays, got {type(value).__name__} "
                        f"{v._fmt(value)}.")
    for key in value:
        if not isinstance(key, str) or key == "":
            raise TypeError(f"{name} must have non-empty string keys, got {v._fmt(key)}.")
    return value


def save_checkpoint(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Writes ``arrays`` to ``path`` (``.npz``) atomically: a crash leaves the old file or the new.

    The arrays go to a temporary file in the same folder, which is flushed to disk and then
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows).

    Args:
        path: The file to write, in an existing folder.
        arrays: ``{name: array}``; numbers and strings, no Python objects (nothing is pickled).

    Raises:
        TypeError: If ``path`` is not a path, or ``arrays`` not a dict of arrays of numbers or
            strings.
        ValueError: If ``path`` is empty, a folder, or in a folder that does not exist.
    """
    path = Path(check_path("path", path))
    arrays = _check_arrays("arrays", arrays)
    converted = {}
    for key, array in arrays.items():
        try:
            converted[key] = np.asarray(array)
        except (TypeError, ValueError) as error:  # ragged lists
            raise TypeError(f"arrays[{key!r}] must be an array, got a ragged "
                            f"{type(array).__name__}.") from error
        if converted[key].dtype.kind not in "biufcSU":
            raise TypeError(f"arrays[{key!r}] must hold numbers or strings (nothing is "
                            f"pickled), got dtype {converted[key].dtype}.")
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **converted)  # type: ignore[arg-type]
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint written by :func:`save_checkpoint` (no pickles are loaded).

    Raises:
        TypeError: If ``path`` is not a path.
        ValueError: If ``path`` is not an existing file.
    """
    check_path("path", path)
    if not os.path.isfile(path):
        raise ValueError(f"path must be an existing checkpoint file, got "
                         f"{v._fmt(os.fspath(path))}.")
    with np.load(Path(path), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _check_name(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"name must be a string (the prefix of the arrays' names), got "
                        f"{type(value).__name__} {v._fmt(value)}.")
    if value == "":
        raise ValueError("name must not be empty, got ''.")
    return value


def _check_keys(arrays: Mapping[str, Any], keys: Sequence[str]) -> None:
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(f"arrays must hold {missing[0]!r} (a checkpoint written by "
                         f"fl_helpers.checkpoints), got keys {sorted(arrays)[:5]}.")


def pack_ragged(name: str, parts: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """A list of 1-D arrays of different lengths as two arrays (values, lengths) for a ``.npz``.

    Args:
        name: The prefix of the two arrays' names: ``name/values`` and ``name/lengths``.
        parts: 1-D arrays of finite real numbers, of any lengths.

    Returns:
        ``{"name/values": float64 concatenation, "name/lengths": int64 lengths}``.
    """
    name = _check_name(name)
    if isinstance(parts, (str, bytes, np.ndarray)) or not isinstance(parts, Sequence):
        raise TypeError(f"parts must be a list of 1-D arrays, got {type(parts).__name__} "
                        f"{v._fmt(parts)}.")
    vectors = [v.check_float_array(f"parts[{i}]", p, ndim=1, min_size=0)
               for i, p in enumerate(parts)]
    lengths = np.asarray([len(p) for p in vectors], dtype=np.int64)
    values = np.concatenate(vectors) if vectors else np.zeros(0)
    return {f"{name}/values": values, f"{name}/lengths": lengths}


def unpack_ragged(arrays: Mapping[str, np.ndarray], name: str) -> list[np.ndarray]:
    """The inverse of :func:`pack_ragged`: the list of 1-D float64 arrays named ``name``."""
    arrays = _check_arrays("arrays", arrays)
    name = _check_name(name)
    _check_keys(arrays, [f"{name}/values", f"{name}/lengths"])
    values = v.check_float_array(f"arrays[{name + '/values'!r}]", arrays[f"{name}/values"],
                                 ndim=1, min_size=0)
    lengths = v.check_int_array(f"arrays[{name + '/lengths'!r}]", arrays[f"{name}/lengths"])
    if int(lengths.sum()) != len(values):
        raise ValueError(f"arrays[{name + '/lengths'!r}] must add up to the "
                         f"{len(values)} values, got {int(lengths.sum())}.")
    if len(lengths) == 0:
        return []
    return [np.array(p) for p in np.split(values, np.cumsum(lengths)[:-1])]


def rejections_to_arrays(rejections: Sequence[faults.Rejection]) -> dict[str, np.ndarray]:
    """Rejections as plain arrays (for a checkpoint): rounds, client ids and reasons."""
    if isinstance(rejections, (str, bytes, np.ndarray)) or not isinstance(rejections, Sequence):
        raise TypeError(f"rejections must be a list of Rejection, got "
                        f"{type(rejections).__name__} {v._fmt(rejections)}.")
    for i, r in enumerate(rejections):
        if not isinstance(r, faults.Rejection):
            raise TypeError(f"rejections[{i}] must be a fl_helpers.faults.Rejection, got "
                            f"{type(r).__name__} {v._fmt(r)}.")
    return {"rejections/round": np.asarray([r.round for r in rejections], np.int64),
            "rejections/client": np.asarray([r.client for r in rejections], np.int64),
            "rejections/reason": np.asarray([r.reason for r in rejections], dtype=np.str_)}


def rejections_from_arrays(arrays: Mapping[str, np.ndarray]) -> list[faults.Rejection]:
    """The inverse of :func:`rejections_to_arrays`."""
    keys = ["rejections/round", "rejections/client", "rejections/reason"]
    arrays = _check_arrays("arrays", arrays)
    _check_keys(arrays, keys)
    rounds = v.check_int_array("arrays['rejections/round']", arrays[keys[0]], minimum=1)
    clients = v.check_int_array("arrays['rejections/client']", arrays[keys[1]])
    reasons = np.asarray(arrays[keys[2]])
    if reasons.ndim != 1 or reasons.dtype.kind != "U":
        raise TypeError(f"arrays['rejections/reason'] must be a 1-D array of strings, got "
                        f"dtype {reasons.dtype}, shape {reasons.shape}.")
    if not len(rounds) == len(clients) == len(reasons):
        raise ValueError(f"arrays must hold as many rejection rounds, clients and reasons, got "
                         f"{len(rounds)}, {len(clients)} and {len(reasons)}.")
    return [faults.Rejection(round=int(t), client=int(k), reason=str(r))
            for t, k, r in zip(rounds, clients, reasons, strict=True)]
