"""The command lines' shared pieces (``fl_helpers._command_line``): one-line argparse errors and
the flag an error of the library's checks names."""

from __future__ import annotations

import pytest

from fl_helpers import _command_line


def test_argparse_errors_are_one_line_pointing_to_help(capsys):
    parser = _command_line.OneLineParser(prog="prog")
    parser.add_argument("--rounds", type=int)
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(["--rounds", "abc"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: argument --rounds: invalid int value: 'abc' (see --help)\n"


@pytest.mark.parametrize(("message", "expected"), [
    ("clipping_norm must be > 0, got -1.0.", "--clipping-norm"),
    # the first parameter named wins, whatever punctuation surrounds it
    ("num_rounds (3) and clipping_norm disagree", "--rounds"),
    ("hospital must be <= 3, got 4.", "--hospitals"),
    ("something else went wrong", None),
    ("", None),
])
def test_the_first_named_parameter_gives_the_flag(message, expected):
    flags = {"clipping_norm": "--clipping-norm", "num_rounds": "--rounds",
             "hospital": "--hospitals"}
    assert _command_line.flag_named(message, flags) == expected
