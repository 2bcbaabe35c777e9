"""Vector-database adapters behind one neutral interface (``engines.base.Engine``), each
declared by an ``EngineAdapter`` (``engines.adapter``) and found by ``engines.registry``.
Importing this package loads no client library and no numpy (the console's start and
the runbook loader read the declarations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drconsole.engines.registry import engine_adapter
from drconsole.errors import UsageError
from drconsole.secrets import resolve

if TYPE_CHECKING:
    from drconsole.engines.base import Engine


def default_namespace(engine: str) -> dict[str, str]:
    """The namespace an engine uses when a target names none (Chroma: its default
    tenant and database); empty for an engine that is not installed."""
    try:
        return engine_adapter(engine).default_namespace()
    except UsageError:
        return {}


def namespace_keys(engine: str) -> tuple[str, ...]:
    """The target options that make up an engine's namespace (Chroma: tenant, database;
    pgvector: schema); none for an engine that is not installed."""
    try:
        adapter = engine_adapter(engine)
    except UsageError:
        return ()
    return tuple(option.name for option in adapter.options if option.namespace)


def open_engine(target: dict[str, Any], add_secret: Any = None) -> Engine:
    """The engine a runbook target (or CLI flags) describes; the token is resolved from
    its reference here and handed to ``add_secret`` so it is masked everywhere."""
    engine = target.get("engine") or target.get("sandbox")
    if not engine:
        raise UsageError("the target names no engine", "set target.engine in the runbook")
    adapter = engine_adapter(engine)
    url = target.get("url")
    if not url:
        raise UsageError(
            "the target has no url", "set target.url in the runbook or pass --target URL"
        )
    # A sandbox started for this run has its own credential, if any (the production
    # token is not needed).
    reference = target.get("sandbox_token" if target.get("sandbox_pid") else "token")
    token = resolve(reference) if reference else None
    if token and add_secret is not None:
        add_secret(token)
    options = {option.name: target.get(option.name) for option in adapter.options}
    return adapter.open(url, options, token)
