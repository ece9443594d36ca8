"""OpenAI-compatible inference server with the audit recorder embedded (C3, C5, C21, C23).

``create_app`` pulls in the engine (torch) and is loaded on first use; the key table and the
settings are light, so adapters can import them alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditlog.gateway.auth import ApiKeyTable, AuthenticationError, Identity, hash_api_key

if TYPE_CHECKING:
    from .app import create_app
    from .settings import EngineFactory, ReleaseHook, ServerSettings

__all__ = [
    "ApiKeyTable",
    "AuthenticationError",
    "EngineFactory",
    "Identity",
    "ReleaseHook",
    "ServerSettings",
    "create_app",
    "hash_api_key",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("EngineFactory", "ReleaseHook", "ServerSettings"):
        from . import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'auditlog.server' has no attribute {name!r}")
