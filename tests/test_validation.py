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
