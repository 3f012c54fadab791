"""One place to seed every source of randomness the course uses."""

from __future__ import annotations

import random
import sys

import numpy as np

from fl_helpers import _validation as v


def seed_everything(seed: int) -> np.random.Generator:
    """Seeds Python, NumPy, TensorFlow and Keras, and returns a fresh NumPy generator.

    TensorFlow is only seeded if it has already been imported (this function never imports it),
    so numpy-only notebooks stay fast to start. Ops are made deterministic too
    (``tf.config.experimental.enable_op_determinism``), so a re-run prints the same numbers.

    Args:
        seed: Any integer >= 0.

    Returns:
        ``np.random.default_rng(seed)``, to pass on as the ``rng`` argument of the helpers.
    """
    seed = v.check_int("seed", seed, minimum=0)
    if "tensorflow" in sys.modules:
        import keras
        import tensorflow as tf

        # Keras also reseeds Python's and numpy's legacy generators, with at most 32 bits: done
        # first, so that the lines below give Python the whole seed whether TensorFlow is loaded
        # or not.
        keras.utils.set_random_seed(seed % 2**32)
        tf.config.experimental.enable_op_determinism()
    random.seed(seed)
    # The legacy global generator too, for any student code that still calls np.random.*.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    return np.random.default_rng(seed)
