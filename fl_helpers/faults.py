"""When clients fail: client hooks, the server's screening of replies, injected faults.

A *client hook* ``hook(client_id, round_index, delta) -> delta`` stands between a client's local
training and the server: it may return the update unchanged, an altered one (an attack such as
:class:`fl_helpers.robust.MaliciousClients`), a :class:`ClientReply` with a simulated reply time,
or raise (a crashed client). The training loop (:mod:`fl_helpers.training`) passes every reply
through :func:`screen_round`, which rejects a client that raised, sent NaN/inf or wrongly shaped
arrays, or replied after the deadline, and records a :class:`Rejection` (round, client id,
reason). :class:`FaultInjector` is a hook that injects those faults on chosen (round, client)
pairs, for tests and notebook 07. A checkpoint of a run is written and read by
:mod:`fl_helpers.checkpoints`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fl_helpers import _validation as v

Weights = list[np.ndarray]


@dataclasses.dataclass(frozen=True)
class ClientReply:
    """What a client hook may return instead of a bare update: the update and its reply time.

    Attributes:
        delta: The update, per layer.
        seconds: Simulated seconds the client took to answer (compared with the deadline).
    """

    delta: Weights
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A client update the server did not use.

    Attributes:
        round: The round number (1-based, as in ``History.rounds``).
        client: The client id.
        reason: Why, e.g. ``"raised RuntimeError: ..."``, ``"non-finite update"``.
    """

    round: int
    client: int
    reason: str


ClientHook = Callable[[int, int, Weights], "Weights | ClientReply"]


def _check_hook(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a client hook (callable) or None, got "
                        f"{type(value).__name__} {v._fmt(value)}.")


def _check_sequence(name: str, value: Any) -> Sequence[Any]:
    if isinstance(value, (str, bytes, np.ndarray)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list, got {type(value).__name__} {v._fmt(value)}.")
    return value


def _check_shapes(value: Any) -> list[tuple[int, ...]]:
    shapes = []
    for i, shape in enumerate(_check_sequence("shapes", value)):
        if not isinstance(shape, tuple):
            raise TypeError(f"shapes[{i}] must be a tuple of ints, got "
                            f"{type(shape).__name__} {v._fmt(shape)}.")
        shapes.append(tuple(v.check_int(f"shapes[{i}]", n, minimum=0) for n in shape))
    return shapes


def _reason(reply: Any, shapes: list[tuple[int, ...]], deadline: float | None
            ) -> tuple[Weights | None, str | None]:
    seconds = 0.0
    if isinstance(reply, ClientReply):
        # A client's reply time is the client's claim: one that is not a finite number of
        # seconds >= 0 is a malformed reply, rejected like any other (never a server crash).
        try:
            seconds = float(reply.seconds)
        except (TypeError, ValueError, OverflowError):
            return None, f"malformed reply time: {reply.seconds!r:.40}"
        if not math.isfinite(seconds) or seconds < 0:
            return None, f"malformed reply time: {seconds!r}"
        reply = reply.delta
    if deadline is not None and seconds > deadline:
        return None, f"straggler: replied after {seconds:g} s, deadline {deadline:g} s"
    if isinstance(reply, np.ndarray) or not isinstance(reply, Sequence) \
            or len(reply) != len(shapes):
        return None, f"wrong structure: expected {len(shapes)} layers"
    layers = [np.asarray(d) for d in reply]
    for i, (layer, shape) in enumerate(zip(layers, shapes, strict=True)):
        if layer.shape != shape:
            return None, f"wrong shape: layer {i} has shape {layer.shape}, expected {shape}"
        if not np.issubdtype(layer.dtype, np.floating) and not np.issubdtype(layer.dtype,
                                                                             np.integer):
            return None, f"wrong dtype: layer {i} has dtype {layer.dtype}"
        if not np.isfinite(layer).all():
            return None, f"non-finite update (NaN or inf in layer {i})"
    return [layer.astype(np.float32) for layer in layers], None


def screen_round(hook: ClientHook | None, sampled: np.ndarray, round_index: int,
                 deltas: Sequence[Weights], num_examples: np.ndarray,
                 shapes: list[tuple[int, ...]], deadline: float | None
                 ) -> tuple[list[Weights], np.ndarray, list[Rejection]]:
    """Passes every client's update through ``hook`` and keeps the well-formed, timely ones.

    A client is rejected if the hook raised (any ``Exception``; ``KeyboardInterrupt`` still
    stops the run), or its reply is not one finite float array per layer of the right shape, or
    its :class:`ClientReply` came after ``deadline`` seconds.

    Args:
        hook: The client hook, or ``None`` (every update passes as it is, if well formed).
        sampled: The round's client ids (integers >= 0).
        round_index: The round, 0-based (a :class:`Rejection` records it 1-based).
        deltas: One update per sampled client, each a list of per-layer arrays (not checked
            here: malformed updates are what this function rejects).
        num_examples: ``n_k`` per sampled client (integers >= 0).
        shapes: The shape of every layer of the model.
        deadline: Seconds after which a :class:`ClientReply` is a straggler (> 0), or ``None``.

    Returns:
        The accepted updates (float32), their ``n_k`` and one :class:`Rejection` per rejected
        client.

    Raises:
        TypeError, ValueError: If an argument is malformed (the replies never raise).
    """
    _check_hook("hook", hook)
    sampled = v.check_ids("sampled", sampled, num=v.MAX_INT, unique=True)
    round_index = v.check_index("round_index", round_index)
    deltas = _check_sequence("deltas", deltas)
    num_examples = v.check_int_array("num_examples", num_examples)
    for name, count in (("deltas", len(deltas)), ("num_examples", len(num_examples))):
        if count != len(sampled):
            raise ValueError(f"{name} must hold one entry per client of sampled "
                             f"({len(sampled)}), got {count}.")
    shapes = _check_shapes(shapes)
    if deadline is not None:
        deadline = v.check_positive("deadline", deadline)
    accepted: list[Any] = []
    sizes: list[int] = []
    rejected = []
    for k, delta, n_k in zip(sampled, deltas, num_examples, strict=True):
        k = int(k)
        reason: str | None
        try:
            reply = delta if hook is None else hook(k, round_index, delta)
        except Exception as error:  # a crashed client must not crash the server
            reply, reason = None, f"raised {type(error).__name__}: {error}"
        else:
            reply, reason = _reason(reply, shapes, deadline)
        if reason is None:
            accepted.append(reply)
            sizes.append(n_k)
        else:
            rejected.append(Rejection(round=round_index + 1, client=k, reason=reason))
    return accepted, np.asarray(sizes, dtype=np.int64), rejected


#: The faults :class:`FaultInjector` can inject.
FAULTS = ("raise", "nan", "inf", "shape", "straggle")


class FaultInjector:
    """A client hook that breaks chosen clients in chosen rounds (for tests and teaching).

    Args:
        faults: ``{(round_index, client_id): fault}`` with ``round_index`` 0-based and ``fault``
            one of :data:`FAULTS`: ``"raise"`` (the client crashes), ``"nan"`` / ``"inf"``
            (its update holds NaN / inf), ``"shape"`` (its first layer has a wrong shape),
            ``"straggle"`` (it answers after ``straggler_seconds``).
        straggler_seconds: The simulated reply time of a straggler.
        then: Another hook applied to the clients that do not fail (e.g. an attack), or ``None``.
    """

    def __init__(self, faults: Mapping[tuple[int, int], str], *,
                 straggler_seconds: float = 60.0, then: ClientHook | None = None) -> None:
        if not isinstance(faults, Mapping):
            raise TypeError(f"faults must be a dict {{(round_index, client_id): fault}}, got "
                            f"{type(faults).__name__} {v._fmt(faults)}.")
        for key, fault in faults.items():
            if not isinstance(key, tuple) or len(key) != 2:
                raise TypeError(f"faults must have (round_index, client_id) keys, got "
                                f"{v._fmt(key)}.")
            v.check_index("faults round_index", key[0])
            v.check_index("faults client_id", key[1])
            if fault not in FAULTS:
                raise ValueError(f"faults[{key}] must be one of {FAULTS}, got {fault!r}.")
        self.faults = dict(faults)
        self.straggler_seconds = v.check_positive("straggler_seconds", straggler_seconds)
        _check_hook("then", then)
        self.then = then

    def __call__(self, client_id: int, round_index: int, delta: Weights) -> Weights | ClientReply:
        fault = self.faults.get((round_index, client_id))
        if fault is None:
            return delta if self.then is None else self.then(client_id, round_index, delta)
        if fault == "raise":
            raise RuntimeError(f"client {client_id} crashed in round {round_index + 1}")
        if fault in ("nan", "inf"):
            bad = [d.copy() for d in delta]
            bad[0].flat[0] = np.nan if fault == "nan" else np.inf
            return bad
        if fault == "shape":
            return [np.zeros((1,), np.float32), *delta[1:]]
        return ClientReply(delta, seconds=self.straggler_seconds)
