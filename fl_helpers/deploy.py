"""Launch the heart-disease Flower app as real processes on loopback, and always stop them.

``python -m fl_helpers.deploy --rounds 3 [--secagg] [--insecure]`` (or :func:`run_deployment`)
starts one ``flower-superlink`` and one ``flower-supernode`` per hospital (each told its hospital
with ``--node-config``), waits until every SuperNode has connected, runs ``flower_app/`` with
``flwr run --stream``, streams Flower's progress lines and returns the ServerApp's result (final
model, per-round per-hospital metrics, timings).

Hygiene, because the processes are real:

* every port is a free port on 127.0.0.1, checked before start (a port in use is an error naming
  it); nothing listens on another interface;
* Flower's state, the certificates and the node keys live in a fresh temporary folder (mode 0700,
  the owner's only), removed at the end;
* the children get a scrubbed environment (:func:`child_environment`): every ``FLWR_*`` variable of
  the caller is dropped (``FLWR_INTERNAL_GRPC_CONTROL_API=1`` or ``..._FLEET_API=1`` would open
  Flower's legacy gRPC APIs on 0.0.0.0; ``FLWR_DATABASE``, ``FLWR_OIDC_*`` and the rest would
  change what the SuperLink does), then ``FLWR_HOME``, ``FLWR_TELEMETRY_ENABLED=0`` and
  ``FLWR_DISABLE_UPDATE_CHECK=1`` are set (Flower otherwise contacts the internet), and the
  SuperLink runs with ``--disable-runtime-dependency-installation`` (otherwise ``uv sync``);
* each process starts in its own process group, and a ``finally`` sends the whole group SIGTERM,
  then SIGKILL, on success, on any error and on Ctrl-C; :func:`surviving_processes` finds
  anything left (the tests assert it is empty);
* if the launching process dies without running its ``finally`` (SIGKILL, the out-of-memory
  killer, a kernel restart), nothing survives either: on Linux every process is started with a
  parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set by a tiny exec wrapper rather
  than ``preexec_fn``, which is unsafe in a threaded Jupyter kernel), and a watchdog process
  (its own session) waits on a pipe from the launcher; when the pipe closes without a "done", it
  kills every process of the deployment (found by its ``FLWR_HOME``) and removes the temporary
  folder with the keys. ``tests/test_deploy_hard_kill.py`` SIGKILLs a launcher and checks.

Security (Flower 1.42), closed by default: ``tls=True`` (default) generates a throw-away CA and a
server certificate for 127.0.0.1/localhost with ``cryptography`` and starts the SuperLink with
``--ssl-*`` and the SuperNodes and ``flwr run`` with the CA as root certificate
(server-authenticated TLS; Flower has no client certificates, mTLS). ``auth=True`` (default, needs
TLS) adds SuperNode authentication: the SuperLink runs with ``--enable-supernode-auth``, each
SuperNode gets its own ECDSA key pair, and the launcher registers each public key with ``flwr
supernode register`` before the SuperNode starts; Flower refuses SuperNodes whose key is not
registered, so no other local process can join as a hospital. ``tls=False`` (which implies
``auth=False``) is the named way to Flower's ``--insecure``: plain HTTP on loopback.

Who can submit an app: the SuperLink's Control API (what ``flwr run`` talks to) shares the
SuperLink's port on 127.0.0.1, and Flower 1.42 authenticates its users only with OIDC (not set up
here). So any process *on this machine* that connects to that port during the run, under any
user account, could submit an app, which then runs inside every SuperNode next to the hospital
files. TLS does not stop it (it authenticates the server, not the client). That is acceptable on
a single-user machine (a laptop, a Colab VM, a container), where every local process is the
owner's and could read the hospital files directly anyway; on a machine shared with other users,
do not run this launcher (or put the SuperLink behind OIDC user authentication).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fl_helpers import _command_line, checkpoints, cross_silo, data, paths, schedule
from fl_helpers import _validation as v

HOST = "127.0.0.1"
PROFILE = "course-deployment"


#: The caller's variables that never reach Flower's processes: every ``FLWR_*`` one.
SCRUBBED_PREFIXES = ("FLWR_",)


class DeploymentError(RuntimeError):
    """A deployment step failed; the message names the process and the tail of its log."""


def _bin(name: str) -> str:
    """The Flower command ``name`` of this Python environment."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise DeploymentError(f"cannot find the Flower command {name!r}; install flwr==1.42.0 "
                              "(it is in requirements.txt).")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, what: str) -> int:
    """Raises ``ValueError`` if ``port`` on 127.0.0.1 cannot be bound (already in use).

    ``what`` names the port in the messages (``"SuperLink"``: ``SuperLink port 80 ...``).
    """
    if not isinstance(what, str) or what == "":
        raise TypeError(f"what must be a non-empty string naming the port, got "
                        f"{type(what).__name__} {v._fmt(what)}.")
    port = v.check_int(f"{what} port", port, minimum=1, maximum=65535)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as error:
            raise ValueError(f"{what} port {port} on {HOST} is in use ({error.strerror}); pick "
                             "another port or leave it unset for a free one.") from None
    return port


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


def surviving_processes(flwr_home: str | os.PathLike) -> list[int]:
    """Process ids whose environment has ``FLWR_HOME=flwr_home`` (i.e. started by one
    deployment, including Flower's own ServerApp/ClientApp children)."""
    marker = f"FLWR_HOME={v.check_folder('flwr_home', flwr_home)}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return sorted(found)


def child_environment(flwr_home: str | os.PathLike, bin_dir: str | os.PathLike
                      ) -> dict[str, str]:
    """The environment of every process of a deployment: the caller's without any ``FLWR_*``
    variable (e.g. ``FLWR_INTERNAL_GRPC_CONTROL_API=1``, which opens a legacy API on 0.0.0.0),
    plus Flower's state folder, telemetry and update checks off, no runtime dependency
    installation, and ``bin_dir`` first on ``PATH`` (Flower starts ``flower-superexec``,
    ``flwr-serverapp`` and ``flwr-clientapp`` by name)."""
    flwr_home = v.check_folder("flwr_home", flwr_home)
    bin_dir = v.check_folder("bin_dir", bin_dir)
    env = {k: x for k, x in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update({"FLWR_HOME": os.fspath(flwr_home), "FLWR_TELEMETRY_ENABLED": "0",
                "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "PYTHONUNBUFFERED": "1",
                "PATH": os.pathsep.join([os.fspath(bin_dir), os.environ.get("PATH", "")])})
    return env


#: Exec wrapper that makes the kernel SIGKILL the process when the launcher's thread dies
#: (prctl(PR_SET_PDEATHSIG) = option 1); exits at once if the launcher is already gone.
_PDEATHSIG_WRAPPER = (
    "import ctypes, os, signal, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:\n"
    "    raise OSError(ctypes.get_errno(), 'prctl(PR_SET_PDEATHSIG) failed')\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n")

#: The watchdog: reads process-group ids from stdin until "done" (normal end: exit) or EOF (the
#: launcher died): then stops every process whose environment holds FLWR_HOME=argv[2] and the
#: groups it was told, and removes the folder argv[1].
_WATCHDOG = r"""
import os, shutil, signal, sys, time
from pathlib import Path
work, marker = sys.argv[1], ("FLWR_HOME=" + sys.argv[2]).encode()
groups = []
for line in sys.stdin:
    line = line.strip()
    if line == "done":
        sys.exit(0)
    if line.isdigit():
        groups.append(int(line))
def ours():
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
for sig in (signal.SIGTERM, signal.SIGKILL):
    for group in groups:
        try:
            os.killpg(group, sig)
        except OSError:
            pass
    for pid in ours():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + 5.0
    while ours() and time.monotonic() < deadline:
        time.sleep(0.1)
shutil.rmtree(work, ignore_errors=True)
"""


def _guarded(command: list[str]) -> list[str]:
    """``command`` behind the parent-death wrapper (Linux; elsewhere unchanged)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", _PDEATHSIG_WRAPPER, str(os.getpid()), shutil.which(
        command[0]) or command[0], *command[1:]]


class _Watchdog:
    """A process in its own session that cleans up after a launcher that died hard."""

    def __init__(self, work: Path, flwr_home: Path) -> None:
        env = {k: x for k, x in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(work), str(flwr_home)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, cwd="/", start_new_session=True, text=True)
        self._lock = threading.Lock()

    def watch(self, group: int) -> None:
        with self._lock:
            assert self.process.stdin is not None
            self.process.stdin.write(f"{group}\n")
            self.process.stdin.flush()

    def done(self) -> None:
        """The launcher cleaned up itself: the watchdog exits without touching anything."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write("done\n")
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost (valid one day).

    Returns the paths ``{"ca", "cert", "key"}`` (PEM). The CA's private key is not kept.
    """
    folder = v.check_folder("folder", folder)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fl-course throw-away CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    pem = serialization.Encoding.PEM
    files["ca"].write_bytes(ca_cert.public_bytes(pem))
    files["cert"].write_bytes(cert.public_bytes(pem))
    files["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    files["key"].chmod(0o600)
    return files


def make_node_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """An ECDSA (SECP384R1) key pair for SuperNode authentication, both in OpenSSH format
    (what Flower 1.42 reads): ``(private, public)`` paths, ``name.key`` and ``name.pub`` in
    the existing ``folder``."""
    folder = v.check_folder("folder", folder)
    if not folder.is_dir():
        raise ValueError(f"folder must be an existing folder, got {v._fmt(str(folder))}.")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise (TypeError if not isinstance(name, str) else ValueError)(
            f"name must be a file name of letters, digits, '_', '.' and '-' (no folder), got "
            f"{type(name).__name__} {v._fmt(name)}.")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH))
    return private, public


class _Processes:
    """The processes of one deployment, each in its own process group, stopped together."""

    def __init__(self, env: dict[str, str], logs: Path, watchdog: _Watchdog) -> None:
        self.env, self.logs, self.watchdog = env, logs, watchdog
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], **kwargs: Any) -> subprocess.Popen:
        """Starts ``command`` in its own group, behind the parent-death wrapper, watched."""
        if "stdout" not in kwargs:
            log = (self.logs / f"{name}.log").open("wb")
            kwargs.update(stdout=log, stderr=subprocess.STDOUT)
        else:
            log = None
        try:
            process = subprocess.Popen(_guarded(command), stdin=subprocess.DEVNULL, env=self.env,
                                       start_new_session=True, **kwargs)
        finally:
            if log is not None:
                log.close()
        self.started.append((name, process))
        self.watchdog.watch(process.pid)
        return process

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise DeploymentError(
                    f"{name} exited with code {process.returncode}. Its log:\n"
                    f"{_tail(self.logs / f'{name}.log')}")

    def stop_all(self, grace_s: float = 5.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for _, process in reversed(self.started):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)
            deadline = time.monotonic() + grace_s
            for _, process in self.started:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if all(p.poll() is not None for _, p in self.started):
                break
        # Flower's children (ServerApp/ClientApp processes) that left the group, if any.
        for pid in surviving_processes(self.env["FLWR_HOME"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _flwr(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(_guarded([_bin("flwr"), *args]), env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _connected_nodes(env: dict[str, str]) -> int | None:
    """How many SuperNodes the SuperLink lists as online (None if it could not say)."""
    result = _flwr(env, "supernode", "list", PROFILE, "--format", "json", timeout=30)
    try:
        payload = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    nodes = payload.get("nodes", []) if isinstance(payload, dict) else []
    return sum(1 for n in nodes if str(n.get("status", "")).lower() in ("online", "connected"))


def _check_randomness(randomness: Any, config: cross_silo.TrainingConfig) -> bool:
    """Whether the deployment derives its noise from the seed (``randomness`` checked)."""
    if randomness is None:
        return False
    randomness = schedule.resolve_randomness(randomness)
    if not randomness.is_reproducible:
        raise ValueError(
            "randomness must be None or PrivateRandomness.reproducible(config.seed), got "
            "PrivateRandomness.secret(): a secret object cannot leave this process (it cannot "
            "be copied); pass None and every hospital draws from its own secret.")
    if randomness._seed != config.seed:
        raise ValueError(
            f"randomness must be PrivateRandomness.reproducible(config.seed), got {randomness!r} "
            f"with config.seed={config.seed}: the hospitals' processes derive their streams "
            "from config.seed.")
    return True


def run_deployment(*, config: cross_silo.TrainingConfig, hospitals: Sequence[int] = (0, 1, 2, 3),
                   secagg: bool = False, tls: bool = True, auth: bool = True,
                   missing: str = "impute", preprocessing: str | None = None,
                   randomness: schedule.PrivateRandomness | None = None,
                   clear_test_metrics: bool = False,
                   evaluate_every_round: bool = True,
                   data_dir: str | os.PathLike | None = None, superlink_port: int | None = None,
                   connect_timeout_s: float = 60.0, run_timeout_s: float = 300.0,
                   progress: Callable[[str], None] | None = print,
                   _after_start: Callable[[str], None] | None = None,
                   _node_superlink: str | None = None) -> dict[str, Any]:
    """Runs the Flower app on a SuperLink and one SuperNode per hospital, then stops them all.

    Args:
        config: The training configuration (the same object the simulation takes).
        hospitals: Hospital ids (0..3), one SuperNode each, distinct.
        secagg: Aggregate with Flower's SecAgg+ (the server sees only the sum).
        tls: TLS with a throw-away CA generated on the fly (default). ``False`` runs Flower
            with ``--insecure`` (plain HTTP on loopback) and needs ``auth=False``.
        auth: SuperNode authentication (default; requires ``tls``): only the SuperNodes whose
            keys the launcher registered may join.
        missing: ``"impute"`` or ``"drop"`` (see :func:`cross_silo.load_hospital`).
        preprocessing: ``"local"`` or ``"public"`` (see :func:`cross_silo.preprocess`);
            default ``"public"`` for a private run (the only one it accepts) and ``"local"``
            (FLamby's) without DP.
        randomness: ``None`` (default): with DP, every hospital's process draws its sampling
            and noise from its own ``PrivateRandomness.secret()`` (OS entropy that never leaves
            the process; nothing is shared or derivable between hospitals).
            ``PrivateRandomness.reproducible(config.seed)``: every process derives hospital
            ``h``'s stream of round ``t`` from the seed, as :func:`cross_silo.run_fedavg` does
            with the same object (NOT private; parity tests). A secret object cannot be sent to
            other processes (it cannot be copied) and is refused.
        clear_test_metrics: In a private run, also ask each hospital for its test loss,
            accuracy and AUC, sent in the clear and NOT covered by epsilon (the result marks
            them ``"evaluate_covered_by_epsilon": False``). Default: a private run sends no
            metric and no count. Without DP the metrics are always sent.
        evaluate_every_round: Evaluate on every hospital's test set after every round
            (``False``: after the last round only, which saves one ClientApp process per
            hospital and round).
        data_dir: Folder with the four heart-disease files (default: the shipped copy).
        superlink_port: Port of the SuperLink on 127.0.0.1 (default: a free one).
        connect_timeout_s: How long to wait for the SuperLink and for every SuperNode.
        run_timeout_s: How long ``flwr run`` may take.
        progress: Called with each progress line (default ``print``; ``None`` for silence).
        _after_start: Testing hook, called with the ``FLWR_HOME`` once the SuperLink is up.
        _node_superlink: Testing hook: the address the SuperNodes dial instead of the SuperLink's.

    Returns:
        The ServerApp's result: ``{"params", "rounds", "config", "secagg"}`` plus ``"wall_s"``
        (whole deployment), ``"run_s"`` (``flwr run`` alone) and ``"flwr_home"`` (removed).

    Raises:
        ValueError, TypeError: A bad argument (hospital out of range, port in use, a flag that
            is not True or False, ...).
        FileNotFoundError: A hospital's data file is missing.
        DeploymentError: A process failed or a SuperNode never connected (named), or the run
            timed out.
    """
    started_at = time.monotonic()
    say = progress or (lambda line: None)
    if not isinstance(config, cross_silo.TrainingConfig):
        raise TypeError(f"config must be a cross_silo.TrainingConfig, got "
                        f"{type(config).__name__}.")
    # Flags must be real bools: "false" is truthy and would silently switch a mode on.
    reproducible_noise = _check_randomness(randomness, config)
    for flag, value in (("secagg", secagg), ("tls", tls), ("auth", auth),
                        ("clear_test_metrics", clear_test_metrics),
                        ("evaluate_every_round", evaluate_every_round)):
        v.check_flag(flag, value)
    if preprocessing is None:
        preprocessing = "public" if config.private else "local"
    if preprocessing not in cross_silo.PREPROCESSING_MODES:
        raise ValueError(f"preprocessing must be one of {list(cross_silo.PREPROCESSING_MODES)}, "
                         f"got {preprocessing!r}.")
    if config.private and preprocessing != "public":
        raise ValueError("a private run needs preprocessing='public': local statistics depend "
                         "on every patient, so epsilon would not hold.")
    if isinstance(hospitals, (str, bytes)) or not isinstance(hospitals, Sequence):
        raise TypeError(f"hospitals must be a list of hospital ids in "
                        f"0..{data.NUM_HOSPITALS - 1}, got {type(hospitals).__name__} "
                        f"{v._fmt(hospitals)}.")
    hospitals = [v.check_int("hospital", h, minimum=0, maximum=data.NUM_HOSPITALS - 1)
                 for h in hospitals]
    if not hospitals or len(set(hospitals)) != len(hospitals):
        raise ValueError(f"hospitals must be distinct ids in 0..{data.NUM_HOSPITALS - 1}, got "
                         f"{hospitals}.")
    if len(hospitals) < 2:
        raise ValueError(f"a federation needs >= 2 hospitals, got {hospitals}.")
    if auth and not tls:
        raise ValueError("auth=True needs tls=True: Flower 1.42 authenticates SuperNodes only "
                         "over TLS. For an insecure run pass tls=False, auth=False.")
    v.check_positive("connect_timeout_s", connect_timeout_s)
    v.check_positive("run_timeout_s", run_timeout_s)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a function taking a line, or None, got "
                        f"{type(progress).__name__} {v._fmt(progress)}.")
    data_dir = (v.check_folder("data_dir", data_dir).resolve() if data_dir is not None
                else data.heart_disease_dir())
    if any(c in str(data_dir) for c in "'\"="):
        raise ValueError(f"data_dir must not contain quotes or '=' (Flower's --node-config syntax "
                         f"cannot carry them), got {str(data_dir)!r}.")
    for h in hospitals:  # fail here, with the file's name, not inside a ClientApp process
        cross_silo.load_hospital(h, missing=missing, preprocessing=preprocessing,
                                 data_dir=data_dir)
    if superlink_port is None:
        link_port = free_port()
    else:
        v.check_int("superlink_port", superlink_port, minimum=1, maximum=65535)
        try:
            link_port = check_port_free(superlink_port, "SuperLink")
        except ValueError as error:
            raise ValueError(f"superlink_port: {error}") from None

    work = Path(tempfile.mkdtemp(prefix="fl-course-flower-"))  # mode 0700
    home, logs = work / "flwr_home", work / "logs"
    watchdog = _Watchdog(work, home)
    home.mkdir()
    logs.mkdir()
    env = child_environment(home, Path(_bin("flwr")).parent)
    processes = _Processes(env, logs, watchdog)
    try:
        link_cmd = [_bin("flower-superlink"), "--disable-runtime-dependency-installation",
                    "--host", HOST, "--port", str(link_port)]
        node_security: list[str] = ["--insecure"]
        profile = [f'[superlink.{PROFILE}]', f'address = "{HOST}:{link_port}"']
        if tls:
            certs = make_tls_files(work / "certs")
            link_cmd += ["--ssl-ca-certfile", str(certs["ca"]), "--ssl-certfile",
                         str(certs["cert"]), "--ssl-keyfile", str(certs["key"])]
            node_security = ["--root-certificates", str(certs["ca"])]
            profile.append(f'root-certificates = "{certs["ca"]}"')
        else:
            link_cmd.append("--insecure")
            profile.append("insecure = true")
        if auth:
            link_cmd.append("--enable-supernode-auth")
        (home / "config.toml").write_text("\n".join(profile) + "\n")

        say(f"starting the SuperLink on {HOST}:{link_port}"
            f"{' with TLS' if tls else ''}{' and SuperNode authentication' if auth else ''}")
        processes.start("superlink", link_cmd)
        deadline = time.monotonic() + connect_timeout_s
        while not _port_open(link_port):
            processes.check_alive()
            if time.monotonic() > deadline:
                raise DeploymentError(f"the SuperLink did not open {HOST}:{link_port} within "
                                      f"{connect_timeout_s:.0f} s. Its log:\n"
                                      f"{_tail(logs / 'superlink.log')}")
            time.sleep(0.2)
        if _after_start is not None:
            _after_start(str(home))

        names = []
        for h in hospitals:
            name = f"supernode-{h}-{data.HOSPITALS[h]}"
            names.append(name)
            node_port = free_port()
            node_cmd = [_bin("flower-supernode"), *node_security,
                        "--superlink", _node_superlink or f"{HOST}:{link_port}", "--host", HOST,
                        "--port", str(node_port),
                        "--node-config", f"hospital-id={h} data-dir='{data_dir}'"]
            if auth:
                private, public = make_node_keys(work / "certs", name)
                registered = _flwr(env, "supernode", "register", str(public), PROFILE,
                                   timeout=60)
                if registered.returncode != 0:
                    raise DeploymentError(f"could not register {name}'s public key:\n"
                                          f"{registered.stdout}{registered.stderr}")
                node_cmd += ["--auth-supernode-private-key", str(private)]
            processes.start(name, node_cmd)
        say(f"started {len(names)} SuperNodes: {', '.join(names)}")

        # Wait until each SuperNode reports that it reached the SuperLink.
        waiting = set(names)
        while waiting:
            processes.check_alive()
            for name in sorted(waiting):
                log = (logs / f"{name}.log").read_text(errors="replace")
                if _node_connected(log):
                    waiting.discard(name)
            if not waiting:
                break
            if time.monotonic() > deadline + connect_timeout_s:
                missing_names = ", ".join(sorted(waiting))
                raise DeploymentError(
                    f"SuperNode(s) {missing_names} did not connect to the SuperLink at "
                    f"{HOST}:{link_port} within {connect_timeout_s:.0f} s. Last log lines of "
                    f"{sorted(waiting)[0]}:\n{_tail(logs / f'{sorted(waiting)[0]}.log')}")
            time.sleep(0.3)
        say("all SuperNodes connected")

        result_path = work / "result.json"
        overrides = {"num-rounds": config.num_rounds, "local-steps": config.local_steps,
                     "batch-size": config.batch_size,
                     "client-learning-rate": config.client_learning_rate,
                     "noise-multiplier": config.noise_multiplier,
                     "clipping-norm": config.clipping_norm,
                     "expected-batch-size": config.expected_batch_size, "seed": config.seed,
                     "noise": config.noise,
                     "missing": missing, "preprocessing": preprocessing,
                     "reproducible-noise": reproducible_noise,
                     "clear-test-metrics": clear_test_metrics, "secagg": secagg,
                     "evaluate-every-round": evaluate_every_round,
                     "num-hospitals": len(hospitals),
                     "result-path": str(result_path)}
        run_started = time.monotonic()
        run = processes.start(
            "flwr run", [_bin("flwr"), "run", str(paths.app_dir()), PROFILE, "--stream",
                         "--run-config",
                         " ".join(f"{k}={_toml(x)}" for k, x in overrides.items())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        run_log = []
        timer_deadline = run_started + run_timeout_s
        assert run.stdout is not None
        os.set_blocking(run.stdout.fileno(), False)
        while True:
            line = run.stdout.readline()
            if line:
                run_log.append(line.rstrip())
                if any(key in line for key in ("[ROUND", "aggregate_fit", "Run finished",
                                               "ERROR", "Traceback")):
                    say(_ANSI.sub("", line).rstrip())
                continue
            if run.poll() is not None and not line:
                rest = run.stdout.read() or ""
                run_log += rest.splitlines()
                break
            if time.monotonic() > timer_deadline:
                raise DeploymentError(f"flwr run did not finish within {run_timeout_s:.0f} s. "
                                      "Last lines:\n" + "\n".join(run_log[-15:]))
            processes.check_alive()
            time.sleep(0.1)
        run_s = time.monotonic() - run_started
        (logs / "flwr-run.log").write_text("\n".join(run_log))
        if run.returncode != 0 or not result_path.is_file():
            raise DeploymentError(f"flwr run failed (exit code {run.returncode}); last lines:\n"
                                  + "\n".join(run_log[-20:]) + "\nServerApp log (SuperLink):\n"
                                  + _tail(logs / "superlink.log"))
        result = json.loads(result_path.read_text())
        if result["params"] is None:
            raise DeploymentError("the ServerApp finished without a model.")
        result.update(run_s=run_s, wall_s=time.monotonic() - started_at, flwr_home=str(home))
        say(f"finished: {config.num_rounds} rounds in {run_s:.1f} s (flwr run), "
            f"{result['wall_s']:.1f} s in all")
        return result
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        watchdog.done()


def _node_connected(log: str) -> bool:
    return any(marker in log for marker in _CONNECTED_MARKERS)


#: Lines a SuperNode logs once the SuperLink has accepted it (Flower 1.42).
_CONNECTED_MARKERS = ("SuperNode ID:",)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if "'" in value:
            raise ValueError(f"run-config strings must not contain a single quote, got {value!r}.")
        return "'" + value + "'"
    return repr(value)


#: The parameter names in the library's messages, and the flags that set them.
_FLAGS = {"num_rounds": "--rounds", "local_steps": "--local-steps",
          "noise_multiplier": "--noise-multiplier", "hospital": "--hospitals",
          "hospitals": "--hospitals", "superlink_port": "--port", "json": "--json"}


def _flag_error(error: Exception) -> int:
    """Prints ``error: --flag: message`` (the first parameter the message names) and returns 2."""
    flag = _command_line.flag_named(str(error), _FLAGS)
    print(f"error: {'' if flag is None else flag + ': '}{error}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the deployment from command-line flags; returns the exit status.

    Args:
        argv: The flags, a list of strings (``sys.argv[1:]`` if ``None``); anything else
            raises ``TypeError``.

    Returns:
        0, or 2 after one line ``error: --flag: ...`` for a bad flag (checked before any
        process starts) or a failed deployment.
    """
    if argv is not None:
        argv = v.check_argv(argv)
    parser = _command_line.OneLineParser(
        prog="python -m fl_helpers.deploy",
        description="Run notebook 08's Flower app: one SuperLink and one SuperNode per hospital "
                    "on 127.0.0.1, stopped at the end.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--noise-multiplier", type=float, default=0.0,
                        help="> 0: example-level DP-SGD at every hospital (secret noise)")
    parser.add_argument("--hospitals", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--secagg", action="store_true", help="aggregate with SecAgg+")
    parser.add_argument("--insecure", action="store_true",
                        help="no TLS and no SuperNode authentication (Flower's --insecure); "
                             "default: both on")
    parser.add_argument("--clear-test-metrics", action="store_true",
                        help="private run: also send each hospital's test metrics in the clear "
                             "(NOT covered by epsilon)")
    parser.add_argument("--port", type=int, default=None, help="SuperLink port (default: free)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)
    try:
        if args.json is not None:
            checkpoints.check_path("json", args.json)
        config = cross_silo.TrainingConfig(num_rounds=args.rounds, local_steps=args.local_steps,
                                           noise_multiplier=args.noise_multiplier)
        result = run_deployment(config=config, hospitals=args.hospitals, secagg=args.secagg,
                                tls=not args.insecure, auth=not args.insecure,
                                clear_test_metrics=args.clear_test_metrics,
                                superlink_port=args.port)
    except (ValueError, TypeError, FileNotFoundError, DeploymentError) as error:
        return _flag_error(error)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    last = result["rounds"][-1].get("evaluate", [])
    for entry in last:
        print(f"hospital {entry['hospital-id']}: accuracy {entry['accuracy']:.3f}, "
              f"AUC {entry['auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
