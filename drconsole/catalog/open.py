"""Open a catalog from its URL: ``s3://bucket/prefix`` or a local folder."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from drconsole.catalog.local import LocalStore
from drconsole.catalog.store import ObjectStore
from drconsole.errors import UsageError


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
