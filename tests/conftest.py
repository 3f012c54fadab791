"""Fixtures shared by several test modules."""

from __future__ import annotations

import numpy as np
import pytest

from fl_helpers import data


@pytest.fixture(scope="session")
def small_federation():
    """16 MNIST clients, IID and Dirichlet(0.3), and 1,000 test images.

    720 training images: 45 per IID client, so with B = 10 every epoch ends with a partial batch
    of 5; the Dirichlet clients differ in size by more than a factor of two.
    """
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x, y = x_train[:720], y_train[:720]
    rng = np.random.default_rng(0)
    iid = data.client_datasets(x, y, data.partition_iid(720, 16, rng=rng))
    dirichlet = data.client_datasets(x, y, data.partition_dirichlet(y, 16, alpha=0.3, rng=rng))
    return {"iid": iid, "dirichlet": dirichlet}, (x_test[:1000], y_test[:1000])
