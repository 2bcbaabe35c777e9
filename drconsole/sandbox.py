"""Throwaway local servers for drills, the demo and tests: the engines' sandbox servers
(each adapter's own, e.g. ``engines.chroma.server``) and SeaweedFS S3.

Each server runs on 127.0.0.1 on free ports, in its own work folder and process group,
logs to a file there, is waited for with a bounded timeout, and is stopped by pid
(SIGTERM, then SIGKILL). Every started server is also stopped at interpreter exit, so an
exception or Ctrl-C never leaves one behind, and a watchdog process stops it when
drconsole is killed outright (``sandbox_guard``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import httpx

from drconsole.durable import open_private, private_folder
from drconsole.errors import SandboxError
from drconsole.hooks import child_environment
from drconsole.sandbox_guard import RELEASE

READY_TIMEOUT_S = 60.0
PORT_TAKEN = re.compile(r"not available|address already in use", re.IGNORECASE)
STOP_GRACE_S = 5.0
INSTALL_HINT = "install the sandbox extra: pip install 'drconsole[sandbox]'"

Server = TypeVar("Server", bound="ServerProcess")
_running: set[ServerProcess] = set()
_running_lock = threading.Lock()
_served_s3: dict[Path, SeaweedS3] = {}
_claimed: dict[Path, TextIO] = {}
_serving_lock = threading.Lock()


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def find_executable(name: str) -> str:
    """A program installed beside this Python (the venv's bin) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SandboxError(f"`{name}` is not installed", INSTALL_HINT)
    return found


def _python_path() -> dict[str, str]:
    """What a Python child of ours needs to import drconsole when it is not installed."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


class ServerProcess:
    """A child server process with a readiness check and a clean stop."""

    stop_signal: int = signal.SIGTERM
    """What asks the server to stop cleanly (before SIGKILL): for its owner and its watchdog."""

    def __init__(
        self, name: str, argv: list[str], workdir: Path, ready: Callable[[], bool]
    ) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.ready = ready
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._guard_pipe: int | None = None
        self._log_from = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the server with a minimal environment (none of drconsole's credentials
        reach it), its folder and log readable by their owner only."""
        private_folder(self.workdir)
        os.chmod(self.workdir, 0o700)  # ours, even when it was made before
        with os.fdopen(open_private(self.log_path), "ab") as log:
            self._log_from = log.tell()
            try:
                self.process = subprocess.Popen(
                    self.argv,
                    cwd=self.workdir,
                    env=child_environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise SandboxError(
                    f"cannot start {self.name}: {error.strerror}", INSTALL_HINT
                ) from None
        with _running_lock:
            _running.add(self)
        self._start_guard()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                tail = self._log_tail()
                failure = PortTaken if PORT_TAKEN.search(tail) else SandboxError
                raise failure(
                    f"{self.name} exited during start-up (code {self.process.returncode}): {tail}",
                    f"see {self.log_path}",
                )
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise SandboxError(
            f"{self.name} was not ready within {timeout_s:.0f}s: {self._log_tail()}",
            f"see {self.log_path}",
        )

    def _start_guard(self) -> None:
        """The watchdog that stops this server if drconsole dies without stopping it
        (SIGKILL): see ``sandbox_guard``."""
        assert self.process is not None
        read_end, self._guard_pipe = os.pipe()
        try:
            with os.fdopen(open_private(self.log_path), "ab") as log:  # a pipe reader would wait
                self._guard = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "drconsole.sandbox_guard",
                        str(self.pid),
                        str(read_end),
                        str(int(self.stop_signal)),
                    ],
                    pass_fds=(read_end,),
                    env=child_environment(_python_path()),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as error:
            self.stop()
            raise SandboxError(f"cannot start the watchdog of {self.name}: {error}") from None
        finally:
            os.close(read_end)

    def _release_guard(self) -> None:
        """Tell the watchdog this is a normal stop, and reap it."""
        pipe, self._guard_pipe = self._guard_pipe, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                os.write(pipe, RELEASE)
            os.close(pipe)
        if self._guard is not None:
            try:
                self._guard.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._guard.kill()
                self._guard.wait()
            self._guard = None

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it; safe to call twice."""
        self._release_guard()
        process = self.process
        if process is not None and process.poll() is None:
            for sig in (self.stop_signal, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(STOP_GRACE_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with _running_lock:
            _running.discard(self)

    def _log_tail(self, lines: int = 5) -> str:
        """The last lines this start wrote to the log (earlier starts' lines left out)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_from)
                text = log.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


class EngineServer(ServerProcess):
    """A database server an engine adapter starts as a sandbox target: where clients
    reach it and the folder its data lives in (a resumed drill serves it again)."""

    url: str
    data_dir: Path
    token_reference: str | None = None
    """Where the server's credential is kept (a ``file:`` reference to a file in its own
    folder that only its owner may read), when clients need one: a run's steps, and a
    resumed run, read it from there."""

    def discard(self) -> None:
        """Stop the server and delete its folder and the data it keeps outside it."""
        self.stop()
        remove_sandbox(self.pid or 0, self.workdir)


class PortTaken(SandboxError):
    """Another process bound a port between our choosing it and the server binding it."""


def start_server(make: Callable[[], Server], attempts: int = 3) -> Server:
    """A server made by ``make`` (which picks free ports) and started; on a busy machine
    another process may take a chosen port first, so a server that finds one taken is
    made again on fresh ports, up to ``attempts`` times."""
    for _ in range(attempts - 1):
        server = make()
        try:
            server.start()
        except PortTaken:
            continue
        return server
    server = make()
    server.start()
    return server


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


class SeaweedS3(ServerProcess):
    """``weed mini`` with its S3 gateway on a free port and credentials enforced."""

    def __init__(self, workdir: Path) -> None:
        names = ("master", "volume", "filer", "s3", "admin")
        ports = free_ports(2 * len(names))
        self.ports = dict(zip(names, ports[: len(names)], strict=True))
        grpc = dict(zip(names, ports[len(names) :], strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.access_key = "drconsole" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        config = workdir / "s3-identities.json"
        workdir.mkdir(parents=True, exist_ok=True)
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        argv = [
            find_executable("weed"),
            f"-logdir={workdir / 'logs'}",
            "mini",
            f"-dir={workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-master.telemetry=false",
            "-s3.autoCreateBucket=false",
            "-s3.allowDeleteBucketNotEmpty=false",
        ]
        argv += [f"-{name}.port={port}" for name, port in self.ports.items()]
        argv += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        super().__init__("seaweedfs", argv, workdir, self._s3_ready)

    @property
    def credentials_value(self) -> str:
        """``ACCESS_KEY_ID:SECRET_ACCESS_KEY``, the value a keyring reference holds."""
        return f"{self.access_key}:{self.secret_key}"

    @property
    def keys(self) -> tuple[str, str]:
        return self.access_key, self.secret_key

    def client(self) -> Any:
        """A boto3 S3 client with the server's credentials."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def _s3_ready(self) -> bool:
        """``/healthz`` answers, then one signed call proves the credentials work."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not http_ok(f"{self.endpoint}/healthz")():
            return False
        try:
            self.client().list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def stop(self) -> None:
        """Stop the server and remove the unix sockets weed leaves in the temp folder."""
        super().stop()
        for port in self.ports.values():
            for leftover in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)


def serve_s3(folder: Path) -> SeaweedS3:
    """The sandbox S3 serving ``folder``: started on first use in this process and kept
    until exit. The folder must exist (an empty new one would be a catalog that silently
    holds nothing); another process serving it is refused, since two servers cannot share
    one folder."""
    folder = folder.resolve()
    with _serving_lock:
        server = _served_s3.get(folder)
        if server is not None and server.process and server.process.poll() is None:
            return server
        if not (folder / "data").is_dir():
            raise SandboxError(
                f"{folder}: no sandbox S3 folder here",
                "point the runbook's catalog.folder at a folder an S3 sandbox wrote "
                "(`drconsole demo --s3` makes one)",
            )
        _claim(folder)
        server = start_server(lambda: SeaweedS3(folder))
        _served_s3[folder] = server
        return server


def _claim(folder: Path) -> None:
    """Hold the folder's serving lock for the life of this process (the kernel drops it
    when the process ends, however it ends)."""
    if folder in _claimed:
        return
    try:
        handle = (folder / "serving.lock").open("a+", encoding="utf-8")
    except OSError as error:
        raise SandboxError(
            f"{folder}: cannot write the sandbox's lock file ({error.strerror})",
            "a sandbox S3 writes in its folder: give it a writable one",
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise SandboxError(
            f"the sandbox S3 in {folder} is being served by another drconsole (pid {holder})",
            "finish or close that run or console first",
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    _claimed[folder] = handle


def serves(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is still the live sandbox server working in ``folder``."""
    if pid <= 0:
        return False
    try:
        command = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return False
    # a zombie has exited already; another command line means the pid was reused
    return str(folder) in command and not _zombie(pid)


def stop_pid(pid: int, folder: Path) -> bool:
    """Stop a sandbox server started earlier (perhaps by another process) by its pid,
    after checking the pid still belongs to a server working in ``folder``; False when
    it was already gone. A server this process started is stopped as its owner stops
    it: reaped (no zombie left until the console quits) and its watchdog released."""
    with _running_lock:
        own = next((server for server in _running if server.pid == pid), None)
    if own is not None and own.workdir == folder:
        alive = own.process is not None and own.process.poll() is None
        own.stop()
        return alive
    if not serves(pid, folder):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                return True
            time.sleep(0.05)
    return True


def remove_sandbox(pid: int, folder: Path) -> bool:
    """Stop a sandbox server (``stop_pid``) and delete its folder, with the data a server
    kept outside it: a folder of ours under the system's temporary folder that a link in
    it points to (PostgreSQL run as another user keeps its cluster there). False when the
    server was already gone."""
    running = stop_pid(pid, folder)
    scratch = Path(tempfile.gettempdir()).resolve()
    if folder.is_dir():
        for entry in folder.iterdir():
            if not entry.is_symlink():
                continue
            target = entry.resolve()
            outside = next(
                (
                    parent
                    for parent in (target, *target.parents)
                    if parent.parent == scratch and parent.name.startswith("drconsole-")
                ),
                None,
            )
            if outside is not None:
                shutil.rmtree(outside, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return running


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return True


def install_exit_handlers() -> None:
    """Stop our servers on SIGTERM and SIGHUP too (a closed terminal, a killed session),
    which end a process without running its exit handlers; then die of that signal.
    Call from the main thread at start-up."""

    def stop_and_die(signum: int, frame: object) -> None:
        stop_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_and_die)


@atexit.register
def stop_all() -> None:
    """Stop every server this process started (runs at exit, also after Ctrl-C)."""
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop()
