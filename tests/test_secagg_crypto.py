"""Secure aggregation's cryptography (fl_helpers.secagg_crypto): Shamir sharing, the PRG masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fl_helpers import secagg_crypto as crypto


def test_shamir_any_t_shares_reconstruct_and_t_minus_1_refuse():
    rng = np.random.default_rng(1)
    secret = 2**128 + 12345
    shares = crypto.shamir_share(secret, num_shares=7, threshold=4)
    for _ in range(20):
        subset = [shares[i] for i in rng.choice(7, size=4, replace=False)]
        assert crypto.shamir_reconstruct(subset, threshold=4) == secret
    with pytest.raises(ValueError, match="at least threshold=4 shares, got 3"):
        crypto.shamir_reconstruct(shares[:3], threshold=4)
    # Interpolating 3 shares as if t were 3 gives a wrong secret, not the real one.
    assert crypto.shamir_reconstruct(shares[:3], threshold=3) != secret


def test_prg_masks_are_uniform_for_a_fixed_seed():
    mask = crypto.prg_mask(bytes(range(16)), 200_000, modulus_bits=10)
    assert mask.max() < 2**10
    assert stats.chisquare(np.bincount(mask.astype(np.int64), minlength=2**10)).pvalue > 0.001
    np.testing.assert_array_equal(mask, crypto.prg_mask(bytes(range(16)), 200_000, modulus_bits=10))
