"""Open a catalog from its URL (``s3://bucket/prefix`` or a local folder), or the
catalog a runbook names (which may be a sandbox S3 served from a folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from drconsole.catalog.local import LocalStore
from drconsole.catalog.store import ObjectStore
from drconsole.errors import UsageError

if TYPE_CHECKING:
    from drconsole.runbook.model import Runbook


def open_store(
    url: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    credentials: str | None = None,
    create: bool = False,
) -> ObjectStore:
    """The store behind a catalog URL; a local folder must exist unless ``create``."""
    if url.startswith("s3://"):
        parsed = urlparse(url)
        if not parsed.netloc:
            raise UsageError(f"{url}: no bucket in the catalog URL", "write s3://BUCKET/PREFIX")
        from drconsole.catalog.s3 import S3Store

        return S3Store(
            parsed.netloc, parsed.path, endpoint=endpoint, region=region, credentials=credentials
        )
    if "://" in url and not url.startswith("file://"):
        raise UsageError(
            f"{url}: unsupported catalog URL", "use s3://BUCKET/PREFIX or a folder path"
        )
    if endpoint:
        raise UsageError("--endpoint applies to s3:// catalogs only")
    folder = Path(url.removeprefix("file://")).expanduser()
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise UsageError(
            f"{folder}: no such catalog folder", "check the path, or take a snapshot into it first"
        )
    return LocalStore(folder.resolve())


def open_runbook_catalog(
    runbook: Runbook, add_secret: Callable[[str], None] | None = None
) -> ObjectStore:
    """The runbook's catalog; ``add_secret`` learns the S3 secret so records mask it. A
    ``sandbox: s3`` catalog is served from its folder first (once per process)."""
    catalog = runbook.catalog
    url = runbook.catalog_location()
    if url is None:
        raise UsageError(f"{runbook.path} names no catalog", "add a `catalog:` section")
    folder = runbook.catalog_sandbox_folder()
    if folder is not None:
        from drconsole.catalog.s3 import S3Store
        from drconsole.sandbox import serve_s3

        server = serve_s3(folder)
        if add_secret:
            add_secret(server.secret_key)
        parsed = urlparse(url)
        return S3Store(parsed.netloc, parsed.path, endpoint=server.endpoint, keys=server.keys)
    if add_secret and catalog.get("credentials"):
        from drconsole.secrets import resolve

        add_secret(resolve(catalog["credentials"]).partition(":")[2])
    return open_store(
        url,
        endpoint=catalog.get("endpoint"),
        region=catalog.get("region"),
        credentials=catalog.get("credentials"),
    )
