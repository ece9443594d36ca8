"""OpenAI-compatible inference server with the audit recorder embedded (C3, C5, C21, C23)."""

from __future__ import annotations

from .app import create_app
from .auth import ApiKeyTable, AuthenticationError, Identity, hash_api_key
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
