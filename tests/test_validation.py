"""The shared argument checks (fl_helpers._validation): the error template of STYLE.md ("epsilon
must be > 0, got 0."), what each number check accepts and returns, and how a value is shown.

The bad-input fuzz (tests/test_bad_inputs.py) checks that every public function raises these
errors; here the checks themselves are held to their documented ranges and messages.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from fl_helpers import _validation as v


@pytest.mark.parametrize(("check", "value", "error", "message"), [
    (v.check_positive, 0, ValueError, "epsilon must be > 0, got 0.0."),
    (v.check_positive, 5e-324, ValueError, "epsilon must be >= 2.2250738585072014e-308 (the "
                                           "smallest normal float), got 5e-324."),
    (v.check_positive, True, TypeError, "epsilon must be a real number, got bool True."),
    (v.check_positive, "1", TypeError, "epsilon must be a real number, got str '1'."),
    (v.check_real, math.nan, ValueError, "epsilon must be finite, got nan."),
    (v.check_real, 10**400, ValueError, "epsilon must be finite, got an integer of about 401 "
                                        "digits (too large for a float)."),
    (v.check_non_negative, -0.5, ValueError, "epsilon must be >= 0, got -0.5."),
    (v.check_open_unit, 1.0, ValueError, "epsilon must be in (0, 1), got 1.0."),
    (v.check_probability, 0.0, ValueError, "epsilon must be in (0, 1], got 0.0."),
])
def test_number_checks_name_the_argument_the_value_and_the_expectation(check, value, error,
                                                                        message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        check("epsilon", value)


def test_number_checks_return_floats_at_the_edges_of_their_ranges():
    for check, value in [(v.check_positive, v.MIN_NORMAL), (v.check_non_negative, 0),
                         (v.check_probability, 1), (v.check_open_unit, np.float32(0.5)),
                         (v.check_real, np.int64(-3))]:
        result = check("x", value)
        assert type(result) is float and result == float(value)
    assert v.check_in_range("momentum", 0.0, 0.0, 1.0, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"^momentum must be in \[0, 1\), got 1\.0\.$"):
        v.check_in_range("momentum", 1.0, 0.0, 1.0, high_open=True)
    assert v.check_choice("noise", "exact", ("exact", "float")) == "exact"
    with pytest.raises(ValueError, match=r"^noise must be 'exact' or 'float', got 'gauss'\.$"):
        v.check_choice("noise", "gauss", ("exact", "float"))
    long = v._fmt("x" * 200)
    assert len(long) == 73 and long.startswith("'xxx") and "..." in long


# ------------------------------------------------------------- the shared checks themselves

@pytest.mark.parametrize(("value", "error", "pattern"), [
    ([0, 0], ValueError, r"^ids must not repeat an id, got 0 2 times\."),
    ([True, False], TypeError, r"^ids must hold integer ids, got a bool mask"),
    (np.array([0.0, 1.0]), TypeError, r"^ids must hold integer ids, got dtype float64"),
    ([-1], ValueError, r"^ids must hold ids in 0\.\.4, got values from -1 to -1"),
    ([5], ValueError, r"^ids must hold ids in 0\.\.4, got values from 5 to 5"),
    ([[0, 1]], ValueError, r"^ids must be a 1-D array of ids, got shape \(1, 2\)"),
    (3, TypeError, r"^ids must be a 1-D array of integer ids, got int 3"),
    (None, TypeError, r"^ids must be a 1-D array of integer ids, got NoneType None"),
    ("01", TypeError, r"^ids must be a 1-D array of integer ids, got str '01'"),
    ([[0], [1, 2]], TypeError, r"^ids must be a 1-D array of integer ids, got list"),
])
def test_check_ids_rejects(value, error, pattern):
    with pytest.raises(error, match=pattern):
        v.check_ids("ids", value, num=5, unique=True)


def test_check_ids_accepts():
    ids = v.check_ids("ids", [4, 0, 2], num=5, unique=True)
    assert ids.dtype == np.int64 and ids.tolist() == [4, 0, 2]
    assert v.check_ids("ids", np.array([1, 1], dtype=np.uint8), num=5).tolist() == [1, 1]
    assert v.check_ids("ids", [], num=0).size == 0


@pytest.mark.parametrize(("value", "error", "pattern"), [
    (-1, ValueError, r"^seed must be >= 0, got -1\."),
    (1.0, TypeError, r"^seed must be an integer, got float 1\.0"),
    (True, TypeError, r"^seed must be an integer, got bool True"),
    (None, TypeError, r"^seed must be an integer >= 0 or a sequence of them, got NoneType"),
    ("7", TypeError, r"^seed must be an integer >= 0 or a sequence of them, got str '7'"),
    ([], ValueError, r"^seed must not be an empty sequence"),
    ([1, -2], ValueError, r"^seed\[1\] must be >= 0, got -2"),
    ([1, 2.5], TypeError, r"^seed\[1\] must be an integer, got float 2\.5"),
    (2**128, ValueError, r"^seed must be <= 340282366920938463463374607431768211455, got 3402"),
    (np.zeros((2, 2), dtype=int), ValueError, r"^seed must be a 1-D sequence"),
])
def test_check_seed_rejects(value, error, pattern):
    with pytest.raises(error, match=pattern):
        v.check_seed("seed", value)


def test_check_seed_accepts():
    assert v.check_seed("seed", 0) == 0
    assert v.check_seed("seed", np.uint64(2**63)) == 2**63
    assert v.check_seed("seed", [1, 2, 3]) == (1, 2, 3)
    assert v.check_seed("seed", np.array([4, 5])) == (4, 5)
    assert v.check_seed("seed", 2**128 - 1) == 2**128 - 1


@pytest.mark.parametrize(("value", "error", "pattern"), [
    (0.0, TypeError, r"^round_index must be an integer, got float 0\.0"),
    (np.float64(1.0), TypeError, r"^round_index must be an integer, got float64 1\.0"),
    (True, TypeError, r"^round_index must be an integer, got bool True"),
    (np.array(0), TypeError, r"^round_index must be an integer, got ndarray 0"),
    (-1, ValueError, r"^round_index must be >= 0, got -1"),
    (10, ValueError, r"^round_index must be <= 9, got 10"),
    (2**64, ValueError, r"^round_index must be <= 9, got 18446744073709551616"),
])
def test_check_index_rejects(value, error, pattern):
    with pytest.raises(error, match=pattern):
        v.check_index("round_index", value, size=10)


def test_check_index_accepts():
    assert v.check_index("round_index", 0) == 0
    assert v.check_index("round_index", np.int32(9), size=10) == 9
    assert type(v.check_index("round_index", np.int64(3))) is int
    with pytest.raises(ValueError, match=r"largest 64-bit integer"):
        v.check_index("round_index", 2**63)


@pytest.mark.parametrize(("value", "pattern"), [
    ([], r"^client_datasets must be a non-empty list of \(x, y\) pairs, got list\.$"),
    ((), r"^client_datasets must be a non-empty list of \(x, y\) pairs, got tuple\.$"),
    ("ab", r"^client_datasets must be a non-empty list of \(x, y\) pairs, got str\.$"),
    (b"ab", r"^client_datasets must be a non-empty list of \(x, y\) pairs, got bytes\.$"),
    (None, r"^client_datasets must be a non-empty list of \(x, y\) pairs, got NoneType\.$"),
    (np.zeros((3, 2)), r"got ndarray\.$"),
    (iter([(1, 2)]), r"got list_iterator\.$"),
])
def test_check_client_datasets_rejects(value, pattern):
    with pytest.raises(TypeError, match=pattern):
        v.check_client_datasets("client_datasets", value)


def test_check_client_datasets_counts_the_clients():
    pair = (np.zeros((2, 3)), np.zeros(2))
    assert v.check_client_datasets("client_datasets", [pair]) == 1
    assert v.check_client_datasets("client_datasets", (pair, pair, pair)) == 3
