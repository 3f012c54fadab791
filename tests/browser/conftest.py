"""Session fixtures for the real-browser widget tests: one JupyterLab server, one headless Chromium.

The server runs from this project's own environment (``sys.executable -m jupyter lab``) on a free
loopback port with a random token. Everything it would write to the real home (runtime files,
settings, workspaces, IPython and matplotlib caches) goes to temporary folders, and it serves a
temporary copy of ``notebooks/``, so running the tests never changes the repository.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright; Playwright's own browser
download is never used. Where it is missing the tests are skipped with a one-line reason, except
in CI (environment variable ``CI`` set), where they fail instead: CI must run them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO / "notebooks"
DATA_DIR = REPO / "data"
ARTIFACTS_DIR = REPO / "test-artifacts" / "widgets"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 120.0


def in_ci() -> bool:
    """Whether the environment variable ``CI`` says that this is a CI run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason`` on a user's machine; fail in CI, where the browser tests must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so the browser widget tests must run, not skip)",
                    pytrace=False)
    pytest.skip(reason)


@dataclasses.dataclass
class JupyterLab:
    """A running JupyterLab server: where it is and how to talk to its REST API."""

    url: str
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen

    def api(self, method: str, path: str, timeout: float = 10.0):
        """Calls ``/api/<path>`` with the token; returns the decoded JSON (or None)."""
        request = urllib.request.Request(
            f"{self.url}/api/{path}", method=method,
            headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        """What the server (and its kernels, which share its stderr) logged after ``offset``."""
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def shutdown_kernels(self) -> None:
        """Ends every session and kernel, so that the next notebook starts on an idle machine."""
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")
        for kernel in self.api("GET", "kernels"):
            self.api("DELETE", f"kernels/{kernel['id']}")


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the server's own process group (it and its kernels)."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.is_file():
        skip_or_fail(f"Chromium not found at {CHROMIUM}; install it with "
                     "`apt-get install chromium` to run the browser widget tests.")
    return CHROMIUM


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory, chromium_path) -> JupyterLab:
    """Starts JupyterLab on a temporary copy of ``notebooks/``; shuts it down at the end."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root_dir = base / "course" / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, root_dir,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # Paths relative to the notebooks (../data, ../benchmarks/results) keep working in the copy.
    for entry in REPO.iterdir():
        if entry.name not in {"notebooks", ".git", ".venv", "test-artifacts"}:
            (base / "course" / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())

    env = dict(os.environ)
    for name in ("HOME", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                 "IPYTHONDIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR",
                 "MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        folder = base / name.lower()
        folder.mkdir()
        env[name] = str(folder)
    env.pop("JUPYTER_TOKEN", None)
    env["FL_DATA_DIR"] = str(DATA_DIR)  # fl_helpers.data finds the MNIST files from anywhere
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # No "get Jupyter news?" pop-up, no update check.
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    port = _free_loopback_port()
    token = secrets.token_hex(24)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # window.jupyterapp lets the test read the notebook model (to tell an error output
        # from a warning on stderr, which look the same on screen).
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log_path = base / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=root_dir, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = JupyterLab(url=f"http://127.0.0.1:{port}", token=token, root_dir=root_dir,
                        log_path=log_path, process=process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode} before it "
                            f"answered; its log ends:\n{server.log_since(0)[-3000:]}",
                            pytrace=False)
            try:
                server.api("GET", "status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer /api/status within "
                                f"{SERVER_START_TIMEOUT_S:.0f} s; its log ends:\n"
                                f"{server.log_since(0)[-3000:]}", pytrace=False)
                time.sleep(0.25)
        yield server
    finally:
        try:
            server.api("POST", "shutdown", timeout=10)
            process.wait(timeout=30)
        except (urllib.error.URLError, ConnectionError, TimeoutError,
                subprocess.TimeoutExpired):
            pass
        _stop_process_group(process)
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, ARTIFACTS_DIR / "jupyterlab.log")


@pytest.fixture(scope="session")
def browser(tmp_path_factory, chromium_path):
    """One headless Debian Chromium for the whole session, with its own temporary home."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        skip_or_fail(f"playwright is not importable ({error}); "
                     "`pip install -r requirements.txt` installs it.")
    home = tmp_path_factory.mktemp("chromium-home")
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium_path), headless=True,
                                              args=CHROMIUM_ARGS, env=env)
        try:
            yield chromium
        finally:
            chromium.close()
