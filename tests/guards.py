"""A helper the bad-input tests share: run a call in a thread, so that a hang fails instead of
stopping the suite (a guard, not a timing test)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_with_timeout(function: Callable[[], Any], timeout: float = 60.0) -> tuple[str, Any]:
    """Runs ``function`` in a daemon thread: ("returned", value), ("raised", exc) or ("hung",
    None) if it has not finished after ``timeout`` seconds."""
    outcome: list[tuple[str, Any]] = []

    def target() -> None:
        try:
            outcome.append(("returned", function()))
        except BaseException as error:  # noqa: BLE001 -- reported to the test
            outcome.append(("raised", error))

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return ("hung", None)
    return outcome[0]
