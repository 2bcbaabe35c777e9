"""Engine calls tried again while the server cannot be reached: the decorator the
adapters put on each call that is a read or a write safe to send twice."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from drconsole.engines.adapter import ErrorKind
from drconsole.retry import DEFAULT

T = TypeVar("T")


class KindedError(Protocol):
    """An adapter's error: its message, how it is treated, and a hint."""

    message: str
    kind: ErrorKind
    hint: str | None

    def __init__(self, message: str, kind: ErrorKind, hint: str | None = None) -> None: ...


def retried_on(error_type: type[Exception]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A decorator: the call run under the default retry policy while it raises a
    transient ``error_type``; the last such error says how often it was tried."""

    def transient(error: BaseException) -> bool:
        return isinstance(error, error_type) and getattr(error, "kind", None) == ErrorKind.TRANSIENT

    def decorate(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> T:
            try:
                return DEFAULT.run(lambda: method(*args, **kwargs), transient)
            except error_type as error:
                if not transient(error):
                    raise
                failed: KindedError = error  # type: ignore[assignment]
                raise error_type(
                    f"{failed.message} (tried {DEFAULT.describe()})", failed.kind, failed.hint
                ) from None

        return call

    return decorate
