"""Import TensorFlow without its C++ start-up messages, and without hiding anything later.

Importing TensorFlow 2.21 on a machine without a GPU writes lines like these to the process's
standard error (file descriptor 2), straight from C++, where Python's ``warnings`` and
``logging`` cannot reach them::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 ... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU ...
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

Jupyter forwards file descriptor 2 into the notebook, so they end up in the stored outputs,
where the ``E0000`` line reads like an error although nothing is wrong: there is no GPU, and
TensorFlow uses the CPU. The environment variable ``TF_CPP_MIN_LOG_LEVEL`` alone does not fix
this: the ``cudart_stub`` and ``port.cc`` lines are written before TensorFlow's logging is set
up and ignore it, and hiding the ``E`` line with it (level 3) would hide every real C++ error of
the session too.

:func:`import_tensorflow` therefore does two narrow things:

1. It sets ``TF_CPP_MIN_LOG_LEVEL=1`` unless the variable is already set, which hides only
   TensorFlow's C++ *informational* lines (``I...``, e.g. "XLA service ... initialized");
   warnings (``W``), errors (``E``) and fatal errors (``F``) logged later still show.
2. While ``import tensorflow`` and the device discovery run (the only moments the lines above
   are written), it points file descriptor 2 at a temporary file. Afterwards it restores file
   descriptor 2, drops the lines that match :data:`STARTUP_NOISE` and writes every other
   captured line back to ``sys.stderr``, so an unexpected message is delayed, never lost.

The dropped lines are kept; :func:`hidden_startup_messages` returns them. Importing this
module does not import TensorFlow.

Use it in a notebook's Setup cell, before anything imports TensorFlow (Keras does)::

    from fl_helpers import quiet

    quiet.import_tensorflow()
    import keras
    import tensorflow as tf
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from types import ModuleType

#: Regular expressions for the start-up lines that are dropped. Each matches the *source* and
#: message of one absl/TensorFlow log line (``file.cc:line] message``), a fixed banner, or the
#: second line of the CPU-features message. A line that matches none of them is written back
#: to ``sys.stderr``.
STARTUP_NOISE: tuple[str, ...] = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.",
    r"port\.cc:\d+\] oneDNN custom operations are on\.",
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU",
    r"^To enable the following instructions: .*, in other operations, rebuild TensorFlow with "
    r"the appropriate compiler flags\.$",
    r"cuda_(platform|executor|diagnostics)\.cc:\d+\] failed call to cuInit",
)

_hidden: list[str] = []


def split_startup_noise(text: str) -> tuple[list[str], list[str]]:
    """Splits captured standard-error text into lines to keep and known start-up noise.

    Every line is judged on its own: it is dropped only if it matches one of
    :data:`STARTUP_NOISE`, so an unexpected line is kept even right after a dropped one.

    Args:
        text: What was written to file descriptor 2.

    Returns:
        ``(kept, dropped)``: two lists of lines (without line endings), in their original order.

    Raises:
        TypeError: ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    kept: list[str] = []
    dropped: list[str] = []
    for line in text.splitlines():
        noisy = any(re.search(pattern, line) for pattern in STARTUP_NOISE)
        (dropped if noisy else kept).append(line)
    return kept, dropped


def hidden_startup_messages() -> list[str]:
    """The lines :func:`import_tensorflow` dropped in this process (empty if none)."""
    return list(_hidden)


def import_tensorflow() -> ModuleType:
    """Imports TensorFlow with its known C++ start-up messages filtered out; returns the module.

    See the module docstring for what is filtered and why. If TensorFlow is already imported the
    start-up messages have been written already and this function only returns the module.
    File descriptor 2 is restored even if the import fails, and the import's exception
    propagates unchanged.

    Returns:
        The ``tensorflow`` module.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery: where cuInit is called
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            capture.seek(0)
            kept, dropped = split_startup_noise(capture.read().decode("utf-8", "replace"))
            _hidden.extend(dropped)
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
    return tf
