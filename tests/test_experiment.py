"""The experiment module and its command line (``python -m fl_helpers.experiment``).

DP-FedAvg's own properties (z = 0 and a huge C is FedAvg, clipped norms <= C, noise std z*C on
the sum, epsilon from the accountant for a given z, same seed same history) are tested on
:func:`fl_helpers.dp_fedavg.run_dp_fedavg` in ``tests/test_engine.py``. Here: what this module
adds on top -- the budget calibration (the epsilon reported is the accountant's for the run's
q, the calibrated z and the rounds), the non-private mode, local DP (noise std z*C*sqrt(m) on the
sum of m clients, and its calibration), reproducibility of a whole run, and the command line.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from fl_helpers import accounting, data, dp_fedavg, experiment, models

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small():
    """24 IID clients of 50 examples and 1,000 test images: a run of a few rounds takes ~1 s."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    parts = data.partition_iid(1200, 24, rng=np.random.default_rng(0))
    return data.client_datasets(x_train[:1200], y_train[:1200], parts), (x_test[:1000],
                                                                       y_test[:1000])


def _run(small, **kwargs):
    clients, test = small
    args = dict(num_rounds=3, sampling_probability=0.25, seed=3, clipping_norm=0.5)
    args.update(kwargs)
    return experiment.run_experiment(clients, test, **args)


# --------------------------------------------------------------------------------------------
# run_experiment
# --------------------------------------------------------------------------------------------


def test_budget_is_calibrated_and_reported_epsilon_is_the_accountants(small):
    result = _run(small, target_epsilon=3.0, target_delta=1e-5)
    z = result.config["noise_multiplier"]
    assert z == accounting.noise_multiplier_for_epsilon(
        target_epsilon=3.0, target_delta=1e-5, sampling_probability=0.25, num_rounds=3)
    expected = accounting.epsilon_per_round(noise_multiplier=z, sampling_probability=0.25,
                                            num_rounds=3, target_delta=1e-5)
    np.testing.assert_allclose(result.history.epsilon, expected, rtol=1e-12)
    assert result.rounds_trained == 3 and result.history.stopped_early == ""
    assert result.epsilon_spent <= 3.0  # the whole budget, never more
    assert result.epsilon_spent == pytest.approx(3.0, rel=1e-3)
    assert result.config["privacy"] == "central DP" and result.config["clipping_norm"] == 0.5


def test_given_noise_multiplier_reports_the_accountants_epsilon(small):
    result = _run(small, noise_multiplier=1.3, target_delta=1e-6)
    expected = accounting.dp_fedavg_epsilon(noise_multiplier=1.3, sampling_probability=0.25,
                                            num_rounds=3, target_delta=1e-6)
    assert result.epsilon_spent == pytest.approx(expected, rel=1e-12)


def test_non_private_run_neither_clips_nor_noises(small):
    result = _run(small, clipping_norm=1e-3)  # would clip everything if it were used
    h = result.history
    assert result.config["privacy"] == "non-private" and result.config["noise_multiplier"] == 0
    assert np.all(h.fraction_clipped[h.num_sampled > 0] == 0)
    for before, after in zip(h.update_norms, h.clipped_update_norms, strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-6)
    assert math.isinf(result.epsilon_spent)
    assert result.to_json()["summary"]["epsilon_spent"] is None  # strict JSON has no inf


def test_same_seed_same_result_and_another_seed_differs(small):
    first, again = _run(small, target_epsilon=4.0), _run(small, target_epsilon=4.0)
    strip = lambda r: {k: v for k, v in r.to_json().items() if k != "summary"}  # noqa: E731
    one, two = strip(first), strip(again)
    for rounds in (one["rounds"], two["rounds"]):
        for row in rounds:
            row.pop("seconds")
    assert one == two
    for a, b in zip(first.history.final_weights, again.history.final_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _run(small, target_epsilon=4.0, seed=4)
    assert not np.array_equal(other.history.final_weights[0], first.history.final_weights[0])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(target_epsilon=1.0, noise_multiplier=1.0), "not both"),
        (dict(model="resnet"), "model must be one of"),
        (dict(noise_placement="nowhere"), "noise_placement must be"),
        (dict(noise_placement="local"), "needs target_epsilon or noise_multiplier"),
        (dict(target_epsilon=-1.0), "target_epsilon must be > 0"),
        (dict(target_delta=1.0), "target_delta must be in"),
        (dict(sampling_probability=0.0), "sampling_probability must be in"),
    ],
)
def test_run_experiment_rejects_bad_arguments(small, change, match):
    with pytest.raises(ValueError, match=match):
        _run(small, **change)


# --------------------------------------------------------------------------------------------
# Local DP
# --------------------------------------------------------------------------------------------


def test_local_noise_multiplier_is_twice_the_gaussians_for_the_busiest_client():
    z, busiest = experiment.local_noise_multiplier(
        target_epsilon=2.0, target_delta=1e-5, num_clients=200, sampling_probability=0.1,
        num_rounds=20, seed=5)
    counts = np.zeros(200, dtype=int)
    for t in range(20):
        counts[dp_fedavg.sample_clients_poisson(200, sampling_probability=0.1, seed=5,
                                                round_index=t)] += 1
    assert busiest == counts.max() > 2  # more than the mean of 2 participations
    z_gaussian = accounting.noise_multiplier_for_epsilon(
        target_epsilon=2.0, target_delta=1e-5, sampling_probability=1.0, num_rounds=busiest)
    assert z == pytest.approx(2 * z_gaussian, rel=1e-12)
    # Each report of the busiest client: Gaussian with std z*C, sensitivity 2C, composed.
    spent = accounting.dp_fedavg_epsilon(noise_multiplier=z / 2, sampling_probability=1.0,
                                         num_rounds=busiest, target_delta=1e-5)
    assert spent <= 2.0


def test_local_noise_on_the_sum_has_std_z_c_sqrt_m(small):
    # One round, clean vs noisy: the difference of the new weights times the denominator q N is
    # the noise on the sum. With m sampled clients each adding N(0, (zC)^2), its std is
    # z C sqrt(m). 7,850 draws: relative standard error of the std 0.8 %, bound 5 %.
    clients, _ = small
    kwargs = dict(num_rounds=1, sampling_probability=0.5, local_epochs=1, batch_size=10,
                  client_learning_rate=0.1, clipping_norm=0.3, seed=2, progress=False)
    model_fn = models.make_softmax_regression
    clean = dp_fedavg.run_dp_fedavg(model_fn, clients, noise_multiplier=0.0, **kwargs)
    noisy = dp_fedavg.run_dp_fedavg(model_fn, clients, noise_multiplier=2.0,
                                    noise_placement="local", **kwargs)
    m = int(noisy.num_sampled[0])
    assert m == clean.num_sampled[0] > 1
    noise = np.concatenate([(a - b).ravel() for a, b in
                            zip(noisy.final_weights, clean.final_weights, strict=True)])
    noise *= 0.5 * len(clients)
    assert abs(np.std(noise) / (2.0 * 0.3 * math.sqrt(m)) - 1) < 0.05


def test_local_run_reports_the_busiest_clients_epsilon(small):
    result = _run(small, target_epsilon=4.0, target_delta=1e-5, noise_placement="local")
    z = result.config["noise_multiplier"]
    seen = np.zeros(24, dtype=int)
    busiest_so_far = []
    for ids in result.history.sampled_clients:
        seen[ids] += 1
        busiest_so_far.append(seen.max())
    per_report = accounting.epsilon_per_round(noise_multiplier=z / 2, sampling_probability=1.0,
                                              num_rounds=max(busiest_so_far), target_delta=1e-5)
    expected = [per_report[c - 1] if c else 0.0 for c in busiest_so_far]
    np.testing.assert_allclose(result.history.epsilon, expected, rtol=1e-12)
    assert result.epsilon_spent <= 4.0
    assert result.config["privacy"] == "local DP"


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------

FLAGS = ["--num-clients", "--clients-per-round", "--sampling-probability", "--rounds",
         "--target-epsilon", "--noise-multiplier", "--target-delta", "--clipping-norm", "--split",
         "--alpha", "--local-epochs", "--batch-size", "--client-lr", "--server-lr", "--model",
         "--seed", "--output"]


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in text, flag
    assert "(default: 1000)" in text and "(0, 1)" in text  # defaults and ranges shown


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--rounds", "0"], "--rounds"),
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
        (["--client-lr", "inf"], "--client-lr"),
        (["--seed", "-3"], "--seed"),
        (["--num-clients", "10", "--clients-per-round", "20"], "--clients-per-round"),
        (["--split", "shards", "--num-clients", "7"], "--num-clients"),
        (["--split", "iid", "--alpha", "0.3"], "--alpha"),
        (["--target-epsilon", "1", "--noise-multiplier", "1"], "--noise-multiplier"),
        (["--split", "random"], "--split"),
    ],
)
def test_bad_values_exit_nonzero_with_one_line_naming_the_flag(capsys, argv, flag):
    with pytest.raises(SystemExit) as exit_info:
        experiment.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {flag}"), err


def test_bad_value_from_a_real_process():
    done = subprocess.run([sys.executable, "-m", "fl_helpers.experiment", "--rounds", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == "error: --rounds must be an integer >= 1, got 0 (see --help)\n"


def test_tiny_run_writes_metrics_json_and_plot_png(tmp_path, capsys):
    out = tmp_path / "run"
    code = experiment.main(["--num-clients", "600", "--clients-per-round", "6", "--rounds", "2",
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
