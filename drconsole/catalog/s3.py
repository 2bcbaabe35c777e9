"""A catalog on S3 (or an S3-compatible store) through boto3.

``s3://bucket/prefix``; with ``endpoint`` the client uses path-style addressing.
Credentials come from the standard AWS chain, from a ``keyring:``/``env:`` reference
whose value is ``ACCESS_KEY_ID:SECRET_ACCESS_KEY``, or (a sandbox S3) as keys given.
Listings are paginated; large objects stream (multipart upload from a spooled temporary
file, streamed download); transient errors (no connection, timeouts, 5xx, throttling) are
retried by drconsole's one retry policy (``drconsole.retry``), the same as for the
database. An access error names the bucket, prefix and credential source, never the
secret.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, BinaryIO, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from drconsole.catalog.layout import SNAPSHOTS
from drconsole.catalog.store import (
    Debris,
    MissingObject,
    ObjectExists,
    ObjectInfo,
    Retention,
    check_key,
)
from drconsole.errors import StoreError
from drconsole.retry import DEFAULT, RetryPolicy
from drconsole.secrets import resolve
from drconsole.timefmt import utc_now

T = TypeVar("T")
MULTIPART_THRESHOLD = 64 * 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024
DELETE_BATCH = 1000
_MISSING = ("NoSuchKey", "404", "NotFound")
_CONFLICT = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_DENIED = (
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "403",
    "Forbidden",
    "InvalidToken",
    "ExpiredToken",
)


class S3Store:
    local = False
    read_concurrency = 16

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        credentials: str | None = None,
        keys: tuple[str, str] | None = None,
        retry: RetryPolicy = DEFAULT,
        multipart_threshold: int = MULTIPART_THRESHOLD,
    ) -> None:
        self.retry = retry
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint = endpoint
        self.credential_source = credentials or (
            "the sandbox's own credentials" if keys else "the standard AWS credential chain"
        )
        options: dict[str, Any] = {"region_name": region or "us-east-1"}
        if credentials:
            keys = _split_credentials(credentials)
        if keys:
            options.update(aws_access_key_id=keys[0], aws_secret_access_key=keys[1])
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # ours, not botocore's
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
            s3={"addressing_style": "path"} if endpoint else {},
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, config=config, **options
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_threshold
        )
        self.lock: tuple[str, float] | None = None

    def lock_snapshots(self, mode: str, days: float) -> None:
        """Write every snapshot object from now on under S3 Object Lock (``governance``
        or ``compliance``) for ``days``: a compromised writer cannot delete them (a
        delete only hides them behind a marker; the versions stay until the date)."""
        self.lock = (mode, days)

    def _lock_args(self, key: str) -> dict[str, Any]:
        if self.lock is None or not key.startswith(f"{SNAPSHOTS}/"):
            return {}
        mode, days = self.lock
        return {
            "ObjectLockMode": mode.upper(),
            "ObjectLockRetainUntilDate": utc_now() + timedelta(days=days),
        }

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            f"listing {self.url}/{prefix}",
            lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=self._key_prefix(prefix))),
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield ObjectInfo(self._relative(item["Key"]), int(item["Size"]))

    def list_folders(self, prefix: str) -> list[str]:
        full = self._key_prefix(prefix.rstrip("/") + "/")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            f"listing {self.url}/{prefix}",
            lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/")),
        )
        return sorted(
            common["Prefix"][len(full) :].rstrip("/")
            for page in pages
            for common in page.get("CommonPrefixes", [])
        )

    def _call(self, doing: str, call: Callable[[], T]) -> T:
        """One request under the retry policy, failures as StoreError (``_errors``)."""
        with self._errors(doing):
            return self.retry.run(call, _transient)

    def _key_prefix(self, prefix: str) -> str:
        if not prefix:
            return f"{self.prefix}/" if self.prefix else ""
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def size(self, key: str) -> int | None:
        try:
            head = self._call(
                f"reading {self.url}/{key}",
                lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)),
            )
        except MissingObject:
            return None
        return int(head["ContentLength"])

    def read(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def open(self, key: str) -> BinaryIO:
        response = self._call(
            f"reading {self.url}/{key}",
            lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key)),
        )
        return _Body(response["Body"], self, key)

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        full_key = self._key(key)
        with _spool_errors(key), tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            yield spool  # type: ignore[misc]

            def upload() -> None:
                spool.seek(0)
                self.client.upload_fileobj(
                    spool,
                    self.bucket,
                    full_key,
                    Config=self._transfer,
                    ExtraArgs=self._lock_args(key) or None,
                )

            self._call(f"writing {self.url}/{key}", upload)

    def create(self, key: str, data: bytes) -> None:
        """A conditional put (``If-None-Match: *``): S3 refuses it when the key exists.
        The key is looked up first too, for servers that ignore the condition."""
        if self.size(key) is not None:
            raise ObjectExists(f"{self.url}/{key} exists already; it was not overwritten")
        try:
            self._call(
                f"writing {self.url}/{key}",
                lambda: self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    Body=data,
                    IfNoneMatch="*",
                    **self._lock_args(key),
                ),
            )
        except _Conflict:
            if self.read(key) == data:  # our own put, answered late and then retried
                return
            raise ObjectExists(f"{self.url}/{key} exists already; it was not overwritten") from None

    def debris(self) -> list[Debris]:
        """Incomplete multipart uploads under the catalog's prefix (a killed upload of a
        large part): invisible to listings, yet stored and billed."""
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = self._call(
            f"listing uploads in {self.url}",
            lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=self._key_prefix(""))),
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                found.append(Debris(self._relative(upload["Key"]), 0, upload["UploadId"]))
        return found

    def remove_debris(self, items: list[Debris]) -> None:
        for item in items:
            self._call(
                f"aborting an upload in {self.url}",
                lambda item=item: self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(item.key), UploadId=item.handle
                ),
            )

    def retention(self, key: str) -> Retention | None:
        head = self._call(
            f"reading {self.url}/{key}",
            lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)),
        )
        mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
        return Retention(str(mode).lower(), until) if mode and until else None

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            chunk = [{"Key": self._key(key)} for key in keys[start : start + DELETE_BATCH]]
            self._call(
                f"deleting from {self.url}",
                lambda chunk=chunk: self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                ),
            )

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """botocore failures as StoreError naming what, where and which credentials."""
        try:
            yield
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise MissingObject(f"{doing}: no such object") from None
            if code in _CONFLICT:
                raise _Conflict(f"{doing}: the object exists already") from None
            if "Object Lock" in str(error.response.get("Error", {}).get("Message", "")):
                raise StoreError(
                    f"{doing}: bucket {self.bucket} has no Object Lock configuration",
                    "create the bucket with Object Lock enabled, or take the snapshot "
                    "without --object-lock-mode",
                ) from None
            if code == "NoSuchBucket":
                raise StoreError(
                    f"{doing}: bucket {self.bucket} does not exist",
                    f"create it, or check the catalog URL{self._at()}",
                ) from None
            if code in _DENIED:
                raise StoreError(
                    f"{doing}: access refused ({code}) for bucket {self.bucket}, prefix "
                    f"{self.prefix or '/'}, using {self.credential_source}",
                    "check the access key and secret, and that they may read and write this prefix",
                ) from None
            raise StoreError(f"{doing}: S3 error {code}{self._at()}") from None
        except NoCredentialsError:
            raise StoreError(
                f"{doing}: no AWS credentials found ({self.credential_source})",
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, configure ~/.aws, or give "
                "--credentials keyring:SERVICE/NAME",
            ) from None
        except EndpointConnectionError:
            raise StoreError(
                f"{doing}: cannot connect to {self.endpoint or 'S3'} "
                f"(retried: {self.retry.describe()})",
                "check that the endpoint is up and reachable, and the URL is right",
            ) from None
        except BotoCoreError as error:
            raise StoreError(
                f"{doing}: {type(error).__name__}{self._at()}",
                "check that the endpoint is reachable and the URL is right",
            ) from None

    def _at(self) -> str:
        return f" at {self.endpoint}" if self.endpoint else ""


@contextmanager
def _spool_errors(key: str) -> Iterator[None]:
    """A full temporary folder while an upload is spooled, as one clear StoreError."""
    try:
        yield
    except OSError as error:
        raise StoreError(
            f"spooling {key} for upload: {error.strerror} in {tempfile.gettempdir()}",
            "free disk space there (or set TMPDIR to a folder with room)",
        ) from None


_TRANSIENT_CODES = (
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
)


def _transient(error: BaseException) -> bool:
    """Worth another attempt: no connection, a timeout, a 5xx or throttling."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or error.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    return isinstance(
        error,
        EndpointConnectionError | ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError,
    )


class _Conflict(StoreError):
    """A conditional write found its condition false."""


class _Body:
    """A streamed object body that reports read failures as StoreError."""

    def __init__(self, body: Any, store: S3Store, key: str) -> None:
        self._body = body
        self._store = store
        self._key = key

    def read(self, size: int = -1) -> bytes:
        with self._store._errors(f"reading {self._store.url}/{self._key}"):
            return self._body.read() if size < 0 else self._body.read(size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_credentials(reference: str) -> tuple[str, str]:
    value = resolve(reference)
    access_key, separator, secret_key = value.partition(":")
    if not separator or not access_key or not secret_key:
        raise StoreError(
            f"{reference}: the stored value is not ACCESS_KEY_ID:SECRET_ACCESS_KEY",
            f"store it again with `drconsole secrets set {reference.split(':', 1)[1]}`",
        )
    return access_key, secret_key
