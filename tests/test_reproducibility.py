"""seed_everything (fl_helpers.reproducibility): after it, Python's and NumPy's global generators
and the returned generator give the same numbers as generators seeded by hand; it never imports
TensorFlow itself."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np

from fl_helpers import reproducibility


def test_seed_everything_seeds_python_numpy_and_returns_a_fresh_generator():
    for seed in (0, 7, 2**32 - 1, 2**40):
        rng = reproducibility.seed_everything(seed)
        np.testing.assert_array_equal(rng.random(5), np.random.default_rng(seed).random(5))
        assert random.random() == random.Random(seed).random()
        legacy = np.random.RandomState(seed % 2**32).random_sample(3)
        np.testing.assert_array_equal(np.random.random_sample(3), legacy)  # noqa: NPY002


def test_seed_everything_does_not_import_tensorflow():
    code = ("import sys; from fl_helpers import reproducibility; "
            "reproducibility.seed_everything(0); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_seeds_beyond_32_bits_work_with_tensorflow_loaded():
    # Keras reseeds numpy's legacy generator, which takes 32 bits; the docstring promises any
    # integer >= 0 (2**40 used to raise once TensorFlow was imported).
    code = ("from fl_helpers import quiet; quiet.import_tensorflow(); "
            "from fl_helpers import reproducibility; import numpy as np; "
            "rng = reproducibility.seed_everything(2**40); "
            "import random; same = rng.integers(10**9) == np.random.default_rng(2**40).integers("
            "10**9); print(same and random.random() == random.Random(2**40).random())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("True")
