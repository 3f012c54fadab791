"""What the package's two command lines (``python -m fl_helpers.experiment`` and
``python -m fl_helpers.deploy``) share: argparse with one-line errors, and the flag an error of
the library's checks is about. Standard library only, so that ``--help`` stays fast."""

from __future__ import annotations

import argparse
from collections.abc import Mapping


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its own errors on one line: ``error: <argparse's message> (see --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see --help)\n")


def flag_named(message: str, flags: Mapping[str, str]) -> str | None:
    """The flag of the first parameter that ``message`` names, or ``None``.

    The library's messages name the parameter (``clipping_norm must be > 0, got -1.0.``);
    ``flags`` maps parameter names to their flags (``{"clipping_norm": "--clipping-norm"}``).
    """
    words = "".join(c if c.isidentifier() or c.isdigit() else " " for c in message).split()
    return next((flags[word] for word in words if word in flags), None)
