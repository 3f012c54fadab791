"""Notebook 04's defaults (fl_helpers.experiment_defaults) are the ones the command line and
run_experiment actually use: one table, read by both, with no second copy drifting from it."""

from __future__ import annotations

import inspect

from fl_helpers import cli, experiment_defaults

DEFAULTS = experiment_defaults.DEFAULTS


def test_the_command_line_uses_the_shared_defaults():
    parsed = vars(cli.build_parser().parse_args([]))
    # alpha and clients_per_round stay None on the parser (they depend on --split and --num-clients)
    # and are filled in from DEFAULTS by cli.main; every other default is the table's value.
    resolved_later = {"alpha", "clients_per_round"}
    for name, value in DEFAULTS.items():
        if name in resolved_later:
            assert parsed[name] is None, name
        else:
            assert parsed[name] == value, f"--{name.replace('_', '-')}: {parsed[name]!r}"
    help_text = " ".join(cli.build_parser().format_help().split())
    assert f"default {DEFAULTS['alpha']})" in help_text
    assert f"default {DEFAULTS['clients_per_round']}, or N" in help_text


def test_run_experiment_uses_the_shared_defaults():
    from fl_helpers import experiment

    assert experiment.DEFAULTS is DEFAULTS
    parameters = inspect.signature(experiment.run_experiment).parameters
    shared = {name: p.default for name, p in parameters.items()
              if name in DEFAULTS and p.default is not inspect.Parameter.empty}
    assert set(shared) == {"target_delta", "clipping_norm", "model", "local_epochs", "batch_size",
                           "client_learning_rate", "server_learning_rate", "seed"}
    assert shared == {name: DEFAULTS[name] for name in shared}
