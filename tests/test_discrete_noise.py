"""The exact discrete Gaussian sampler (fl_helpers.discrete_noise): pmf, checks, secret noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fl_helpers import discrete_noise as dn
from fl_helpers import schedule


def _reproducible(seed: int) -> schedule.PrivateRandomness:
    with pytest.warns(UserWarning, match="not private|no privacy"):
        return schedule.PrivateRandomness.reproducible(seed)


@pytest.mark.parametrize("variance", [1, 4, 1000])
def test_discrete_gaussian_matches_its_pmf(variance):
    draws = dn.discrete_gaussian(variance, 100_000, randomness=_reproducible(5))
    span = int(4 * math.sqrt(variance))
    values = np.arange(-span, span + 1)
    pmf = dn.discrete_gaussian_pmf(values, variance)
    counts = np.array([np.sum(draws == k) for k in values])
    inside = counts.sum()
    expected = pmf / pmf.sum() * inside
    keep = expected > 5
    assert stats.chisquare(counts[keep], expected[keep] * counts[keep].sum()
                           / expected[keep].sum()).pvalue > 0.001
    # The discrete Gaussian's variance is close to sigma^2 (within 1e-3 relative for sigma >= 1).
    assert np.var(draws) == pytest.approx(variance, rel=0.02)
    assert abs(np.mean(draws)) < 5 * math.sqrt(variance / 100_000)


def test_discrete_gaussian_rejects_a_wrong_variance_or_source():
    with pytest.raises(TypeError, match="variance must be an integer"):
        dn.discrete_gaussian(2.5, 3, randomness=_reproducible(0))
    with pytest.raises(ValueError, match="variance must be >= 1"):
        dn.discrete_gaussian(0, 3, randomness=_reproducible(0))
    with pytest.raises(TypeError, match="randomness must be a PrivateRandomness"):
        dn.discrete_gaussian(4, 3, randomness=np.random.default_rng(0))


def test_secret_noise_is_not_reproducible():
    a = dn.discrete_gaussian(100, 50, randomness=schedule.PrivateRandomness.secret())
    b = dn.discrete_gaussian(100, 50, randomness=schedule.PrivateRandomness.secret())
    assert not np.array_equal(a, b)
