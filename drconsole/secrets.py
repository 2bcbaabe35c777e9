"""Credential references: ``keyring:SERVICE/NAME``, ``env:VARIABLE`` or ``file:PATH`` (a
file only its owner may read), resolved late.

Runbooks and flags carry references only; the value is fetched when a connection is made
and never written to a record, a log, a report or an exception message.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drconsole.errors import SecretError

_KEYRING = re.compile(r"^keyring:(?P<service>[^/\s]+)/(?P<name>[^\s]+)$")
_ENV = re.compile(r"^env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_FILE = re.compile(r"^file:(?P<name>[^\s]+)$")
_SECRET_WORDS = ("token", "password", "passwd", "secret", "api_key", "apikey", "credential")


def is_reference(text: str) -> bool:
    """True when text is a credential reference rather than a literal value."""
    return bool(_KEYRING.match(text) or _ENV.match(text) or _FILE.match(text))


def looks_secret_name(name: str) -> bool:
    """True for names such as TOKEN, DB_PASSWORD or aws_secret_access_key."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


@dataclass(frozen=True)
class Reference:
    """A parsed credential reference; ``str()`` is the reference, never the secret."""

    scheme: str
    service: str
    name: str

    def __str__(self) -> str:
        if self.scheme in ("env", "file"):
            return f"{self.scheme}:{self.name}"
        return f"keyring:{self.service}/{self.name}"


def parse_reference(text: str) -> Reference:
    """The reference in text; raises SecretError when text is not one."""
    if match := _KEYRING.match(text):
        return Reference("keyring", match["service"], match["name"])
    if match := _ENV.match(text):
        return Reference("env", "", match["name"])
    if match := _FILE.match(text):
        return Reference("file", "", match["name"])
    raise SecretError(
        "expected a credential reference, not a literal value",
        "write keyring:SERVICE/NAME (stored with `drconsole secrets set`), env:VARIABLE "
        "or file:PATH",
    )


def resolve(text: str) -> str:
    """The secret a reference points to; raises SecretError naming the reference."""
    reference = parse_reference(text)
    if reference.scheme == "env":
        value = os.environ.get(reference.name)
        if not value:
            raise SecretError(
                f"{reference}: the environment variable {reference.name} is not set",
                f"export {reference.name} before running drconsole",
            )
        return value
    if reference.scheme == "file":
        return _file_get(reference)
    return _keyring_get(reference)


def resolve_or_create(text: str, make: Callable[[], str]) -> str:
    """The secret a reference points to, created with ``make`` and stored under the
    reference on first use (a keyring entry, or a file only its owner may read). An
    ``env:`` reference cannot be created: it must be set."""
    reference = parse_reference(text)
    try:
        return resolve(text)
    except SecretError:
        if reference.scheme == "env" or _exists(reference):
            raise
    value = make()
    if reference.scheme == "file":
        _file_create(reference, value)
    else:
        store_secret(reference, value)
    return value


def _exists(reference: Reference) -> bool:
    """Whether a keyring entry or file is there (an unreadable one is not replaced)."""
    if reference.scheme == "file":
        return os.path.lexists(reference.name)
    try:
        _keyring_get(reference)
    except SecretError as error:
        return "no such secret" not in error.message
    return True


def _file_get(reference: Reference) -> str:
    path = Path(reference.name).expanduser()
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SecretError(f"{reference}: no such file", "check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SecretError(f"{reference}: cannot read it ({error})") from None
    if mode & 0o077:
        raise SecretError(
            f"{reference}: other users may read this file (mode {stat.S_IMODE(mode):o})",
            f"chmod 600 {path}",
        )
    if not value:
        raise SecretError(f"{reference}: the file is empty")
    return value


def _file_create(reference: Reference, value: str) -> None:
    path = Path(reference.name).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise SecretError(f"{reference}: cannot create it ({error.strerror})") from None


def reference_for(name: str) -> Reference:
    """``SERVICE/NAME`` or ``NAME`` (service ``drconsole``) as a keyring reference."""
    service, separator, key = name.partition("/")
    if not separator:
        service, key = "drconsole", name
    if not service or not key or any(ch.isspace() for ch in name):
        raise SecretError(
            f"{name!r} is not a secret name", "write NAME or SERVICE/NAME, without spaces"
        )
    return Reference("keyring", service, key)


def store_secret(reference: Reference, value: str) -> None:
    """Save a secret in the keyring under a reference."""
    if not value:
        raise SecretError(f"{reference}: refusing to store an empty secret")
    with _keyring_errors(reference, "store"):
        import keyring

        keyring.set_password(reference.service, reference.name, value)


def delete_secret(reference: Reference) -> None:
    from keyring.errors import PasswordDeleteError

    with _keyring_errors(reference, "delete"):
        import keyring

        try:
            keyring.delete_password(reference.service, reference.name)
        except PasswordDeleteError:
            raise SecretError(f"{reference}: no such secret in the keyring") from None


def _keyring_get(reference: Reference) -> str:
    with _keyring_errors(reference, "look up"):
        import keyring

        value = keyring.get_password(reference.service, reference.name)
    if value is None:
        raise SecretError(
            f"{reference}: no such secret in the keyring",
            f"store it with `drconsole secrets set {reference.service}/{reference.name}`",
        )
    return value


def redact(text: str, secrets: list[str]) -> str:
    """Text with every known secret value (and common token shapes) replaced by ***."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _TOKEN_SHAPES.sub(lambda match: match.group(1) + "***", text)


_TOKEN_SHAPES = re.compile(
    r"((?:authorization:\s*(?:bearer|basic)\s+|(?:token|password|secret|api[_-]?key)"
    r"[\"']?\s*[=:]\s*[\"']?))[^\s\"',;]+",
    re.IGNORECASE,
)


@contextmanager
def _keyring_errors(reference: Reference, doing: str) -> Iterator[None]:
    """Keyring failures as SecretError with what to do; never the secret itself."""
    from keyring.errors import KeyringError, NoKeyringError

    try:
        yield
    except NoKeyringError:
        raise SecretError(
            f"{reference}: no keyring backend is available on this machine",
            "on a headless machine `pip install keyrings.alt` gives a file backend; "
            "or use an env:VARIABLE reference instead",
        ) from None
    except SecretError:
        raise
    except KeyringError as error:
        raise SecretError(
            f"{reference}: the keyring refused to {doing} it ({type(error).__name__})",
            "unlock the keyring, or use an env:VARIABLE reference instead",
        ) from None
