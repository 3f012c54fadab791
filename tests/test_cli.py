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
    assert dests - {"help", "output", "no_progress", "num_clients", "split", "alpha",
                    "clients_per_round"} <= params


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
