"""A launcher killed hard (SIGKILL: no ``finally`` runs, as when the out-of-memory killer or a
kernel restart takes a Jupyter kernel) leaves no Flower process and no folder of keys behind:
the parent-death signal stops the processes it started, the watchdog stops Flower's own children
and removes the temporary folder with the TLS key and the SuperNodes' private keys."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fl_helpers import deploy

CHILD = """
from fl_helpers import cross_silo, deploy
deploy.run_deployment(config=cross_silo.TrainingConfig(num_rounds=50), hospitals=(0, 1),
                      evaluate_every_round=False, progress=lambda line: print(line, flush=True),
                      _after_start=lambda home: print("FLWR_HOME", home, flush=True))
"""


def _poll(condition, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.slow
def test_a_hard_killed_launcher_leaves_nothing_behind():
    launcher = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    home, lines = None, []
    try:
        deadline = time.monotonic() + 180
        assert launcher.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([launcher.stdout], [], [], 1.0)
            if not ready:
                continue
            line = launcher.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if line.startswith("FLWR_HOME "):
                home = line.split(" ", 1)[1].strip()
            if "[ROUND" in line:  # the run is under way: ServerApp and ClientApps exist
                break
        assert home is not None, "the launcher never started a SuperLink:\n" + "\n".join(lines)
        work = Path(home).parent
        keys = sorted(p.name for p in (work / "certs").glob("*.key"))
        assert "server.key" in keys and any(k.startswith("supernode-") for k in keys)
        before = deploy.surviving_processes(home)
        assert len(before) >= 3, f"expected a SuperLink and two SuperNodes, found {before}"
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            os.kill(launcher.pid, signal.SIGKILL)
            launcher.wait()
    # Generous: the watchdog gives SIGTERM 5 s before SIGKILL; no timing is asserted.
    assert _poll(lambda: not deploy.surviving_processes(home), 90), (
        f"processes of the killed deployment survive: {deploy.surviving_processes(home)}")
    assert _poll(lambda: not work.exists(), 90), f"the key folder {work} survives"
    print(f"\nkilled with {len(before)} processes running ({', '.join(keys)}); nothing left")
