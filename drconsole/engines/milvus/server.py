"""A throwaway Milvus 2.3.5 standalone (the ``milvus`` wheel ships the real binary): the
sandbox target of Milvus drills, the tests and the benchmark.

Milvus binds every interface and fixed ports, so it runs in a loopback-only network
namespace of its own (``netns``): its gRPC port and health port are forwarded to free
ports of 127.0.0.1 outside, and, when it keeps its data in S3, a port inside is relayed
to the S3 endpoint outside. Authorization is on; the first start replaces the default
root password with a new one, kept in ``password`` in the sandbox folder (ours alone to
read), where a run's steps and a resumed drill find it. Without S3 it keeps its data on
local disk under the folder (a drill restores by inserts then: a server-side import
needs a bucket both drconsole and the server reach).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from drconsole.durable import open_private, private_folder
from drconsole.errors import SandboxError
from drconsole.sandbox import EngineServer, free_ports, http_ok

VERSION = "2.3.5"
ROOT = "root"
DEFAULT_ROOT_PASSWORD = "Milvus"  # noqa: S105 (Milvus's documented default, replaced at once)
INNER_GRPC, INNER_HTTP, INNER_S3 = 19530, 9091, 9000
INSTALL_HINT = "install the milvus extra: pip install 'drconsole[milvus]'"
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)(?:\([a-z]+\))?\s*(?::\s*([^}]*?))?\s*\}\}")


@dataclass(frozen=True)
class ObjectStorage:
    """The S3 bucket Milvus keeps its data in (and reads server-side imports from)."""

    endpoint: str
    """``http://HOST:PORT`` as seen from drconsole's side."""
    bucket: str
    access_key: str
    secret_key: str
    root_path: str = "milvus"

    @property
    def host_port(self) -> tuple[str, int]:
        address = self.endpoint.split("://", 1)[-1].rstrip("/")
        host, _, port = address.rpartition(":")
        return host, int(port)


def milvus_package() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("milvus")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxError("no Milvus for a sandbox server", INSTALL_HINT)
    return Path(spec.submodule_search_locations[0])


def binaries() -> Path:
    """The folder holding the unpacked Milvus binary and its libraries, unpacked once per
    installation from the wheel's lzma files (into a folder beside the wheel's own data,
    or the user's cache folder when that one is read-only), atomically: a half-unpacked
    folder is never used."""
    from platformdirs import user_cache_path

    packed = milvus_package() / "data" / "bin"
    if not (packed / "milvus.lzma").is_file():
        raise SandboxError(f"{packed} holds no Milvus binary", INSTALL_HINT)
    stamp = hashlib.sha256(str((packed / "milvus.lzma").stat().st_mtime_ns).encode()).hexdigest()
    for base in (packed.parent, user_cache_path("drconsole", ensure_exists=True)):
        folder = base / f"drconsole-milvus-{VERSION}-{stamp[:12]}"
        if (folder / "milvus").is_file():
            return folder
        try:
            scratch = Path(tempfile.mkdtemp(dir=base, prefix=".unpacking-"))
        except OSError:
            continue
        try:
            for source in packed.glob("*.lzma"):
                target = scratch / source.name.removesuffix(".lzma")
                with lzma.open(source) as packed_file, target.open("wb") as out:
                    shutil.copyfileobj(packed_file, out, 1 << 20)
                target.chmod(0o755)
            os.rename(scratch, folder)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            if (folder / "milvus").is_file():  # another process unpacked it first
                return folder
            continue
        return folder
    raise SandboxError(f"cannot unpack the Milvus binary from {packed}", INSTALL_HINT)


def milvus_config(template: str, workdir: Path, storage: ObjectStorage | None) -> dict[str, Any]:
    """The server's configuration: the wheel's template with its placeholders filled
    (paths under ``workdir``, default ports: the namespace is the server's alone), and
    authorization, a short session lease (a restart on the same data does not wait out
    the old one), a short graceful stop, room for many databases, time ticks every 50 ms
    (a Strong read waits for the next one: 200 ms by default), the query coordinator's
    checks five times as often (a load or an import is served sooner) and the object
    storage set."""
    data = workdir / "data"
    values = {
        "etcd_log_path": str(workdir / "logs" / "etcd.log"),
        "etcd_data_dir": str(data / "etcd.data"),
        "local_storage_dir": str(data),
        "rocksmq_data_dir": str(data / "rocksmq"),
        "system_log_path": str(workdir / "logs"),
        "authorization_enabled": "true",
    }

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), (match.group(2) or "").strip())

    config: dict[str, Any] = yaml.safe_load(PLACEHOLDER.sub(fill, template))
    config["common"]["session"]["ttl"] = 5
    config["log"]["level"] = "warn"
    config["rootCoord"]["maxDatabaseNum"] = 1024
    config["proxy"]["timeTickInterval"] = 50
    config["queryCoord"].update(
        checkInterval=200,
        distPullInterval=100,
        checkHandoffInterval=1000,
        checkChannelInterval=200,
        checkSegmentInterval=200,
        leaderViewUpdateInterval=0.2,
        UpdateNextTargetInterval=1,
    )
    config["common"]["gracefulStopTimeout"] = 10
    if storage is not None:
        config["common"]["storageType"] = "minio"
        config["minio"].update(
            {
                "address": "127.0.0.1",
                "port": INNER_S3,
                "accessKeyID": storage.access_key,
                "secretAccessKey": storage.secret_key,
                "bucketName": storage.bucket,
                "rootPath": storage.root_path,
                "useSSL": False,
                "useVirtualHost": False,
            }
        )
    return config


class MilvusServer(EngineServer):
    """Milvus standalone in its own network namespace, reached on free ports of 127.0.0.1."""

    stop_signal = signal.SIGINT
    """Milvus stops in a second or two on SIGINT; on SIGTERM it may wait out a long
    graceful stop."""

    def __init__(self, workdir: Path, storage: ObjectStorage | None = None) -> None:
        self.port, self.http_port = free_ports(2)
        self.url = f"http://{ROOT}@127.0.0.1:{self.port}"
        self.data_dir = workdir / "data"
        self.storage = storage
        self.password_file = workdir / "password"
        self.token_reference = f"file:{self.password_file}"
        argv = [
            sys.executable,
            "-m",
            "drconsole.engines.milvus.netns",
            "--forward",
            f"{self.port}={INNER_GRPC}",
            "--forward",
            f"{self.http_port}={INNER_HTTP}",
        ]
        if storage is not None:
            host, port = storage.host_port
            argv += ["--reverse", f"{INNER_S3}={host}:{port}"]
        bin_folder = binaries()
        argv += [
            "--env",
            "DEPLOY_MODE=STANDALONE",
            "--env",
            f"METRICS_PORT={INNER_HTTP}",
            "--env",
            f"MILVUS_RUN_DIR={workdir / 'run'}",
            "--env",
            f"LD_LIBRARY_PATH={bin_folder}",
            "--",
            str(bin_folder / "milvus"),
            "run",
            "standalone",
        ]
        super().__init__(
            "milvus", argv, workdir, http_ok(f"http://127.0.0.1:{self.http_port}/healthz")
        )

    @property
    def password(self) -> str | None:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            return None

    def start(self, timeout_s: float = 120) -> None:
        """Write the configuration and start the server; on the first start, give root a
        new password (a resumed drill starts the same folder again)."""
        if os.geteuid() != 0:
            raise SandboxError(
                "the Milvus sandbox runs in a network namespace of its own, which needs root",
                "run drills and tests of Milvus as root (containers, CI), or restore into a "
                "Milvus server of yours with --url",
            )
        private_folder(self.workdir)
        for sub in ("configs", "logs", "data", "run"):
            (self.workdir / sub).mkdir(exist_ok=True)
        package = milvus_package() / "data"
        config = milvus_config(
            (package / "config.yaml.template").read_text(), self.workdir, self.storage
        )
        with os.fdopen(
            open_private(self.workdir / "configs" / "milvus.yaml", append=False), "w"
        ) as out:
            yaml.safe_dump(config, out, sort_keys=False)
        shutil.copy(package / "glog.conf", self.workdir / "configs" / "glog.conf")
        first = self.password is None and not (self.data_dir / "etcd.data").exists()
        super().start(timeout_s)
        if first:
            self._replace_root_password()
        elif self.password is None:
            self.stop()
            raise SandboxError(
                f"the Milvus sandbox in {self.workdir} has no password file",
                "discard this sandbox and start a new one",
            )

    def _replace_root_password(self) -> None:
        from pymilvus import MilvusClient

        password = secrets.token_urlsafe(24)
        address = f"http://127.0.0.1:{self.port}"
        client = MilvusClient(uri=address, token=f"{ROOT}:{DEFAULT_ROOT_PASSWORD}", timeout=30)
        try:
            client.update_password(ROOT, DEFAULT_ROOT_PASSWORD, password)
        finally:
            client.close()
        with os.fdopen(open_private(self.password_file, append=False), "w") as out:
            out.write(password)

    def client(self, database: str = "default") -> Any:
        """A pymilvus client as root (tests and the sandbox's setup)."""
        from pymilvus import MilvusClient

        return MilvusClient(
            uri=f"http://127.0.0.1:{self.port}",
            token=f"{ROOT}:{self.password}",
            db_name=database,
            timeout=60,
        )
