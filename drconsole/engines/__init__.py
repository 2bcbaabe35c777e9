"""Vector-database adapters behind one neutral interface (``engines.base.Engine``)."""

from __future__ import annotations

from typing import Any

from drconsole.engines.base import Engine
from drconsole.errors import UsageError
from drconsole.secrets import resolve

ENGINES = ("chroma",)


def default_namespace(engine: str) -> dict[str, str]:
    """The namespace an engine uses when a target names none (Chroma: its default
    tenant and database)."""
    from drconsole.engines.chroma import DEFAULT_DATABASE, DEFAULT_TENANT

    return {"tenant": DEFAULT_TENANT, "database": DEFAULT_DATABASE} if engine == "chroma" else {}


def open_engine(target: dict[str, Any], add_secret: Any = None) -> Engine:
    """The engine a runbook target (or CLI flags) describes; the token is resolved from
    its reference here and handed to ``add_secret`` so it is masked everywhere."""
    engine = target.get("engine") or "chroma"
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")
    url = target.get("url")
    if not url:
        raise UsageError(
            "the target has no url", "set target.url in the runbook or pass --target URL"
        )
    # A sandbox started for this run needs no token (and the production one is not needed).
    token = (
        resolve(target["token"]) if target.get("token") and not target.get("sandbox_pid") else None
    )
    if token and add_secret is not None:
        add_secret(token)
    from drconsole.engines.chroma import ChromaEngine

    return ChromaEngine(
        url, tenant=target.get("tenant"), database=target.get("database"), token=token
    )
