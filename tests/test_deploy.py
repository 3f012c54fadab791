"""The Flower deployment: clear errors for bad configurations, nothing left running afterwards
(also after a failure and after Ctrl-C), and an end-to-end run of four SuperNodes with SecAgg+
that gives the in-process simulation's model within SecAgg+'s quantisation (the plain
deployment's bitwise parity is checked by notebook 08's nbval run)."""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import socket
import time

import numpy as np
import pytest

from fl_helpers import cross_silo, data, deploy, paths, schedule

CONFIG = cross_silo.TrainingConfig(num_rounds=3)


def _assert_nothing_survives(flwr_home):
    # Flower's SuperExec children may take a moment to notice their parent is gone.
    for _ in range(50):
        left = deploy.surviving_processes(flwr_home)
        if not left:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of the deployment in {flwr_home} survive: {left}")


def test_hospital_out_of_range():
    with pytest.raises(ValueError, match="hospital must be <= 3, got 4"):
        deploy.run_deployment(config=CONFIG, hospitals=(0, 4), progress=None)


def test_duplicate_hospitals():
    with pytest.raises(ValueError, match="distinct"):
        deploy.run_deployment(config=CONFIG, hospitals=(0, 0), progress=None)


def test_auth_needs_tls():
    with pytest.raises(ValueError, match="auth=True needs tls=True"):
        deploy.run_deployment(config=CONFIG, tls=False, auth=True, progress=None)


@pytest.mark.parametrize("flag", ["secagg", "tls", "auth",
                                  "clear_test_metrics", "evaluate_every_round"])
@pytest.mark.parametrize("value", ["false", 0, 1, None])
def test_flags_must_be_real_bools(flag, value):
    """run_deployment(reproducible_noise="false") used to switch non-private noise on."""
    with pytest.raises(TypeError, match=f"{flag} must be True or False, got .*{value!r}"):
        deploy.run_deployment(config=CONFIG, progress=None, **{flag: value})


def test_a_private_run_refuses_local_statistics():
    private = dataclasses.replace(CONFIG, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="a private run needs preprocessing='public'"):
        deploy.run_deployment(config=private, preprocessing="local", progress=None)


def test_child_environment_drops_the_callers_flower_variables(monkeypatch, tmp_path):
    """FLWR_INTERNAL_GRPC_* would open Flower's legacy gRPC APIs on 0.0.0.0."""
    for name in ("FLWR_INTERNAL_GRPC_CONTROL_API", "FLWR_INTERNAL_GRPC_FLEET_API",
                 "FLWR_DATABASE", "FLWR_OIDC_ENABLED", "FLWR_ADDRESS", "FLWR_TELEMETRY_ENABLED"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("FLWR_HOME", "/somewhere/else")
    env = deploy.child_environment(tmp_path, "/bin-dir")
    flower = {k: x for k, x in env.items() if k.startswith("FLWR_")}
    assert flower == {"FLWR_HOME": str(tmp_path), "FLWR_TELEMETRY_ENABLED": "0",
                      "FLWR_DISABLE_UPDATE_CHECK": "1",
                      "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    assert env["PATH"].startswith("/bin-dir")


def test_missing_data_file(tmp_path):
    for name, _ in list(data.HEART_DISEASE_FILES.values())[:3]:
        shutil.copy(data.heart_disease_dir() / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="processed.va.data"):
        deploy.run_deployment(config=CONFIG, data_dir=tmp_path, progress=None)


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"SuperLink port {port} on 127.0.0.1 is in use"):
            deploy.run_deployment(config=CONFIG, superlink_port=port, progress=None)


@pytest.mark.slow
def test_supernode_that_never_connects_is_named_and_everything_stops():
    homes = []
    with pytest.raises(deploy.DeploymentError,
                       match=r"supernode-0-cleveland, supernode-1-hungary did not connect"):
        deploy.run_deployment(config=CONFIG, hospitals=(0, 1), connect_timeout_s=8,
                              _node_superlink=f"127.0.0.1:{deploy.free_port()}",
                              _after_start=homes.append, progress=None)
    assert homes
    _assert_nothing_survives(homes[0])


@pytest.mark.slow
def test_ctrl_c_stops_everything():
    homes = []

    def interrupt(home):
        homes.append(home)
        assert deploy.surviving_processes(home), "the SuperLink should be running here"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deploy.run_deployment(config=CONFIG, _after_start=interrupt, progress=None)
    _assert_nothing_survives(homes[0])


@pytest.mark.slow
def test_deployment_end_to_end_secagg():
    """4 SuperNodes, 2 rounds, TLS and SuperNode authentication (the defaults), SecAgg+ with
    DP-SGD (reproducible noise): parity with the simulation within SecAgg+'s quantisation, and no
    hospital sends a count or a test metric.

    The plain deployment's exact parity is notebook 08's: its checked cell prints the largest
    difference between the deployed and the simulated model (0.0e+00) and each hospital's
    deployed test metrics, and nbval compares them on every full test run, so the deployment
    is not started a second time for it here. The time-outs are generous: on a loaded 2-core
    machine the four SuperNodes' rounds share the CPU with other tests. Two rounds are enough to
    show that the second round starts from the first's masked aggregate; each round is mostly
    waiting (a SuperNode with nothing to do asks the SuperLink again after 3 s, Flower 1.42's
    fixed interval, and SecAgg+ takes four exchanges per round), so a round costs about 35 s.
    """
    started = time.monotonic()
    private = dataclasses.replace(CONFIG, noise_multiplier=1.0, num_rounds=2)
    secure = deploy.run_deployment(config=private, secagg=True, tls=True, auth=True,
                                   connect_timeout_s=300.0, run_timeout_s=1800.0,
                                   randomness=schedule.PrivateRandomness.reproducible(
                                       private.seed, warn=False),
                                   evaluate_every_round=False, progress=None)
    public = cross_silo.load_federation(preprocessing="public")
    simulated_dp, _ = cross_silo.run_fedavg(
        public, private, randomness=schedule.PrivateRandomness.reproducible(private.seed,
                                                                            warn=False))
    assert np.max(np.abs(simulated_dp)) < 8.0  # inside SecAgg+'s clipping_range
    # SecAgg+ quantises each weighted update to 2^22 levels over [-8, 8] (step 3.8e-6) with
    # stochastic rounding; over 2 rounds the model moves by at most a few 1e-5.
    np.testing.assert_allclose(np.array(secure["params"]), simulated_dp, atol=1e-4)
    assert not np.array_equal(np.array(secure["params"]), simulated_dp)
    # What the hospitals sent in the private run, as the ServerApp received it: besides the
    # (masked) model, the public size in Flower's count field and the hospital id; no
    # evaluation was requested, so no test metric exists anywhere in the result.
    public_sizes = [h.public_train_size for h in public]
    for record in secure["rounds"]:
        assert [r["num_examples"] for r in record["received"]] == public_sizes
        assert all(r["metrics"] == ["hospital-id"] for r in record["received"])
        assert "evaluate" not in record
    assert secure["preprocessing"] == "public" and not secure["clear_test_metrics"]
    _assert_nothing_survives(secure["flwr_home"])
    print(f"\nend-to-end: SecAgg+/TLS/auth {secure['run_s']:.1f} s (flwr run); whole test "
          f"{time.monotonic() - started:.1f} s")


def test_data_dir_with_a_quote_is_refused(tmp_path):
    odd = tmp_path / "it's here"
    odd.mkdir()
    with pytest.raises(ValueError, match="data_dir must not contain quotes"):
        deploy.run_deployment(config=CONFIG, data_dir=odd, progress=None)


def test_client_app_imports_stay_light():
    """Every message starts a fresh ClientApp process: it must not import TensorFlow."""
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, 'flower_app'); import heart_app.client_app; "
            "print(','.join(m for m in ('tensorflow', 'keras', 'dp_accounting') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=paths.app_dir().parent)
    assert result.stdout.strip() == ""


# ---------------------------------------- bad-input fuzz of run_deployment and main (issue 25)
# Their valid calls start Flower, so they are not in tests/test_bad_inputs.py's table (which
# makes each valid call) but here, with the launcher stopped where its checks end: the
# watchdog, the first thing it starts, raises _ChecksPassed instead. A valid call must reach it,
# a bad one must raise ValueError / TypeError naming the argument first; no process starts.

import guards  # noqa: E402

from fl_helpers import _validation as v  # noqa: E402


class _ChecksPassed(Exception):
    pass


@pytest.fixture
def no_processes(monkeypatch):
    def stop(*args, **kwargs):
        raise _ChecksPassed()

    monkeypatch.setattr(deploy, "_Watchdog", stop)
    monkeypatch.setattr(deploy.subprocess, "Popen", stop)


_FLAG_VALUES = ["false", 0, 1, None, 1.0, [True]]
_POSITIVE_VALUES = [0, -1, 0.0, float("nan"), float("inf"), -float("inf"), True, "60", None,
                    [60.0], 1 + 0j, 5e-324, 10**400]
_PATH_VALUES = [3, 2.5, True, ["data"], b"data", object(), ""]
_BUSY = socket.socket()
_BUSY.bind(("127.0.0.1", 0))
_BUSY.listen()
BUSY_PORT = _BUSY.getsockname()[1]

#: argument -> bad values of run_deployment (keyword-only; the valid call is VALID_RUN).
RUN_FUZZ: dict[str, list] = {
    "config": [None, {}, "config", dataclasses.asdict(CONFIG), object()],
    "hospitals": [None, 3, "0123", [], [0], [0, 0], [0, 4], [-1, 0], [0, 1.0], [0, True],
                  [0, "1"], [0, None], [0, 2**64], [[0, 1]], np.array([0.0, 1.0]), object()],
    **{flag: _FLAG_VALUES for flag in ("secagg", "tls", "auth",
                                       "clear_test_metrics", "evaluate_every_round")},
    # None (secret: every hospital's own) or reproducible(config.seed) only.
    "randomness": [0, "seed", np.random.default_rng(0), schedule.PrivateRandomness.secret(),
                   schedule.PrivateRandomness.reproducible(CONFIG.seed + 1, warn=False)],
    "missing": ["", "IMPUTE", None, 1, True, ["impute"], "mean"],
    "preprocessing": ["", "LOCAL", 1, True, ["public"], "global"],
    # (a folder without the files is a FileNotFoundError naming the file: test_missing_data_file)
    "data_dir": [*_PATH_VALUES, "/tmp/it's"],
    "superlink_port": [0, -1, 65536, 2**64, 1.5, 80.0, "8080", True, [8080], BUSY_PORT],
    "connect_timeout_s": _POSITIVE_VALUES,
    "run_timeout_s": _POSITIVE_VALUES,
    "progress": [3, "print", True, object()],
}
VALID_RUN = {"config": CONFIG, "hospitals": (0, 1), "progress": None}


def _run_cases():
    return [pytest.param(argument, value, id=f"{argument}-{k}")
            for argument, values in RUN_FUZZ.items() for k, value in enumerate(values)]


def test_run_deployment_fuzz_covers_every_argument():
    hooks = {"_after_start", "_node_superlink"}  # testing hooks, not for users
    parameters = set(inspect.signature(deploy.run_deployment).parameters) - hooks
    assert parameters == set(RUN_FUZZ)


def test_valid_run_deployment_passes_its_checks(no_processes):
    with pytest.raises(_ChecksPassed):
        deploy.run_deployment(**VALID_RUN)


@pytest.mark.parametrize(("argument", "value"), _run_cases())
def test_run_deployment_rejects_bad_input_before_starting(no_processes, argument, value):
    status, result = guards.run_with_timeout(
        lambda: deploy.run_deployment(**{**VALID_RUN, argument: value}), 30.0)
    label = f"run_deployment({argument}={v._fmt(value)})"
    assert status == "raised", f"{label}: {status}"
    assert not isinstance(result, _ChecksPassed), f"{label} was accepted"
    assert isinstance(result, (ValueError, TypeError)), \
        f"{label} raised {type(result).__name__}: {result}"
    assert argument in str(result) or (argument == "hospitals" and "hospital" in str(result)), \
        f"{label}: the message does not name it: {result}"


#: Bad command lines of ``python -m fl_helpers.deploy``: (argv, the flag the message names).
MAIN_FUZZ = [
    *[([flag, value], flag) for flag in ("--rounds", "--local-steps")
      for value in ["", "abc", "1.5", "0", "-1", "nan"]],
    *[(["--noise-multiplier", value], "--noise-multiplier")
      for value in ["", "abc", "-1", "nan", "inf", "1e400"]],
    *[(["--hospitals", *value], "--hospitals")
      for value in [[], ["abc"], ["4"], ["-1"], ["0"], ["0", "0"], ["1.5", "2"]]],
    *[(["--port", value], "--port") for value in ["", "abc", "0", "-1", "65536", "1.5",
                                                   str(BUSY_PORT)]],
    (["--json"], "--json"), (["--json", "/no/such/folder/result.json"], "--json"),
    (["--json", "/"], "--json"), (["--json", ""], "--json"),
    (["--secagg", "1"], "1"),
    (["--no-such-flag"], "--no-such-flag"),
]


def test_valid_main_passes_its_checks(no_processes):
    with pytest.raises(_ChecksPassed):
        deploy.main(["--rounds", "1", "--hospitals", "0", "1"])


# (the busy port differs from process to process; ids must be the same in every xdist worker)
@pytest.mark.parametrize(("argv", "flag"), MAIN_FUZZ,
                         ids=lambda x: str(x).replace(str(BUSY_PORT), "busy-port"))
def test_main_rejects_bad_flags_with_one_line(no_processes, capfd, argv, flag):
    try:
        code = deploy.main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capfd.readouterr().err
    assert code == 2, f"{argv}: exit status {code}"
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: ") and flag in err, err


@pytest.mark.parametrize("argv", [3, "--rounds", b"--rounds", [3], [None], object()],
                         ids=lambda a: type(a).__name__)
def test_main_rejects_bad_argv(no_processes, argv):
    with pytest.raises(TypeError, match="argv"):
        deploy.main(argv)
