"""The command line ``python -m fl_helpers.experiment`` (``fl_helpers.cli``)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from fl_helpers import cli, experiment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"



FLAGS = ["--num-clients", "--clients-per-round", "--sampling-probability", "--num-rounds",
         "--target-epsilon", "--noise-multiplier", "--target-delta", "--clipping-norm", "--split",
         "--alpha", "--local-epochs", "--batch-size", "--client-learning-rate",
         "--server-learning-rate", "--model", "--seed", "--output", "--reproducible-noise",
         "--diagnostics", "--noise-placement"]


def test_flags_are_the_parameter_names():
    parser = cli.build_parser()
    dests = {a.dest for a in parser._actions}  # noqa: SLF001
    params = set(inspect.signature(experiment.run_experiment).parameters)
    # --reproducible-noise is the command line's spelling of
    # randomness=PrivateRandomness.reproducible(--seed): a flag cannot carry an object.
    assert dests - {"help", "output", "no_progress", "num_clients", "split", "alpha",
                    "clients_per_round", "reproducible_noise"} <= params
    assert "randomness" in params


def test_reproducible_noise_flag_is_the_seeds_private_randomness():
    args = cli.build_parser().parse_args(["--reproducible-noise", "--seed", "4",
                                          "--noise-multiplier", "1.0"])
    with pytest.warns(UserWarning, match="reproducible noise from seed 4"):
        randomness = cli._randomness(args)
    assert randomness.is_reproducible and repr(randomness) == "PrivateRandomness.reproducible(4)"
    assert cli._randomness(cli.build_parser().parse_args([])) is None  # secret by default


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in text, flag
    assert "(default: 1000)" in text and "(0, 1)" in text  # defaults and ranges shown


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--num-rounds", "0"], "--num-rounds"),
        (["--rounds", "0"], "--num-rounds"),  # the old spelling still works
        (["--num-clients", "abc"], "--num-clients"),
        (["--num-clients", "70000"], "--num-clients"),
        (["--sampling-probability", "1.5"], "--sampling-probability"),
        (["--target-epsilon", "-1"], "--target-epsilon"),
        (["--target-epsilon", "nan"], "--target-epsilon"),
        (["--noise-multiplier", "-0.5"], "--noise-multiplier"),
        (["--target-delta", "1"], "--target-delta"),
        (["--clipping-norm", "0"], "--clipping-norm"),
        (["--alpha", "0"], "--alpha"),
        (["--batch-size", "0"], "--batch-size"),
        (["--client-lr", "inf"], "--client-learning-rate"),
        (["--seed", "-3"], "--seed"),
        (["--num-clients", "10", "--clients-per-round", "20"], "--clients-per-round"),
        (["--split", "shards", "--num-clients", "7"], "--num-clients"),
        (["--noise-placement", "local"], "--noise-placement"),
        (["--split", "iid", "--alpha", "0.3"], "--alpha"),
        (["--target-epsilon", "1", "--noise-multiplier", "1"], "--noise-multiplier"),
        (["--split", "random"], "--split"),
    ],
)
def test_bad_values_exit_nonzero_with_one_line_naming_the_flag(capsys, argv, flag):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith((f"error: {flag}", f"error: argument {flag}")), err


def test_bad_value_from_a_real_process():
    done = subprocess.run([sys.executable, "-m", "fl_helpers.experiment", "--num-rounds", "0"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "error: --num-rounds: num_rounds must be >= 1, got 0. (see --help)")


def test_tiny_run_writes_metrics_json_and_plot_png(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["--num-clients", "600", "--clients-per-round", "6", "--rounds", "2",
                            "--target-epsilon", "8", "--split", "shards", "--output", str(out),
                            "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "test acc" in printed and "ε spent" in printed
    metrics = json.loads((out / "metrics.json").read_text())  # strict JSON: no NaN or inf
    assert metrics["config"]["num_clients"] == 600
    assert metrics["config"]["sampling_probability"] == pytest.approx(0.01)
    assert metrics["config"]["split"] == "shards" and metrics["config"]["target_epsilon"] == 8
    assert [row["round"] for row in metrics["rounds"]] == [1, 2]
    assert all(0 <= row["test_accuracy"] <= 1 for row in metrics["rounds"])
    assert 0 < metrics["summary"]["epsilon_spent"] <= 8
    assert (out / "plot.png").read_bytes()[:8] == PNG_SIGNATURE


# ------------------------------------------------ bad-input fuzz of the command line (issue 25)
# The table of tests/test_bad_inputs.py expects a ValueError / TypeError; the command line
# answers a bad flag with exit status 2 and one line naming the flag instead, so its fuzz is
# here and test_bad_inputs.py lists cli.main in FUZZED_ELSEWHERE.

import guards  # noqa: E402

from fl_helpers import _validation as v  # noqa: E402

_TEXT = ["", "abc", "1,5", "0x10"]
_INT = [*_TEXT, "1.5", "2.0", "nan", "inf", "1e3", "9" * 5000]
_COUNT = [*_INT, "0", "-1", "-99999999999999999999"]
_REAL = [*_TEXT, "nan", "inf", "-inf", "1e400", "-1e400"]
_NON_NEGATIVE = [*_REAL, "-1", "-1e-300"]
_POSITIVE = [*_NON_NEGATIVE, "0", "5e-324"]
_NAME = ["", "abc", "IID", "iid "]
#: flag -> (flags it needs beside it, bad values).
FLAG_FUZZ: dict[str, tuple[list[str], list[str]]] = {
    "--num-clients": ([], [*_COUNT, "60001", "99999999999999999999"]),
    "--split": ([], _NAME),
    "--alpha": (["--split", "dirichlet"], _POSITIVE),
    "--clients-per-round": ([], [*_COUNT, "1001", "99999999999999999999"]),
    "--sampling-probability": ([], [*_POSITIVE, "1.5", "1.0000001"]),
    "--num-rounds": ([], [*_COUNT, "99999999999999999999"]),
    "--model": ([], _NAME),
    "--local-epochs": ([], [*_COUNT, "99999999999999999999"]),
    "--batch-size": ([], [*_COUNT, "fullest", "99999999999999999999"]),
    "--client-learning-rate": ([], _POSITIVE),
    "--server-learning-rate": ([], _POSITIVE),
    "--seed": ([], [*_INT, "-1", "9" * 60]),
    "--target-epsilon": ([], _POSITIVE),
    "--noise-multiplier": ([], _NON_NEGATIVE),
    # (with a noise multiplier: a non-private run does not use the delta)
    "--target-delta": (["--noise-multiplier", "1"], [*_POSITIVE, "1", "1.5"]),
    "--clipping-norm": ([], _POSITIVE),
    "--noise-placement": ([], _NAME),
    "--accountant": ([], _NAME),
    "--noise": ([], _NAME),
}
#: Flags that take no value: a value after them is an unrecognized argument.
SWITCHES = ["--reproducible-noise", "--diagnostics", "--no-progress"]
#: argv values that are not a list of strings: a programming error, a TypeError naming argv.
BAD_ARGV = [3, "--seed", b"--seed", [3], [None], ["--seed", 3], [b"--seed"], object()]
#: Seconds a bad flag may take (loading MNIST included) before it counts as a hang.
CLI_TIMEOUT = 60.0


def _flag_cases() -> list:
    cases = []
    for flag, (context, values) in FLAG_FUZZ.items():
        cases.append(pytest.param([*context, flag], flag, id=f"{flag}-missing"))
        cases += [pytest.param([*context, flag, value], flag, id=f"{flag}-{k}")
                  for k, value in enumerate(values)]
    cases += [pytest.param([switch, "1"], "1", id=f"{switch}-value") for switch in SWITCHES]
    cases.append(pytest.param(["--no-such-flag", "1"], "--no-such-flag", id="unknown"))
    return cases


FLAG_CASES = _flag_cases()


@pytest.mark.parametrize(("argv", "flag"), FLAG_CASES)
def test_bad_flag_exits_2_with_one_line_naming_it(capfd, tmp_path, argv, flag):
    # (--output first: a bad value accepted by mistake writes into tmp_path, not the work tree)
    status, result = guards.run_with_timeout(
        lambda: cli.main(["--output", str(tmp_path), "--no-progress", *argv]), CLI_TIMEOUT)
    assert status != "hung", f"{argv}: still running after {CLI_TIMEOUT} s"
    assert status == "raised", f"{argv}: accepted, returned {result!r}"
    assert isinstance(result, SystemExit), f"{argv}: {type(result).__name__}: {result}"
    assert result.code == 2, f"{argv}: exit status {result.code}"
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: ") and flag in err, err


@pytest.mark.parametrize("argv", BAD_ARGV, ids=lambda a: type(a).__name__)
def test_bad_argv_is_a_type_error_naming_it(argv):
    status, result = guards.run_with_timeout(lambda: cli.main(argv), CLI_TIMEOUT)
    assert status == "raised", f"{v._fmt(argv)}: {status} {result!r}"
    assert isinstance(result, TypeError), f"{v._fmt(argv)}: {type(result).__name__}: {result}"
    assert "argv" in str(result), str(result)


def test_print_flag_count(capsys):
    with capsys.disabled():
        print(f"\nbad command lines tried: {len(FLAG_CASES) + len(BAD_ARGV)}")
