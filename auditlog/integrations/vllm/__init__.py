"""vLLM integration: a general plugin recording every request per step and per token.

Enable with ``AUDITLOG_VLLM=1`` plus the recorder settings of ``MiddlewareConfig.from_env``
(``AUDITLOG_DB_URL``, ``AUDITLOG_KEY_FILE``, ...); add ``--middleware
auditlog.integrations.vllm.VllmAuditMiddleware`` to the OpenAI server to bind each HTTP request's
caller and ``x-request-id`` to its vLLM requests and, fail-closed, release each chunk only once its
tokens are durable. What vLLM exposes, and what it does not: docs/integrations.md.

Nothing here imports vLLM at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .adapter import HttpBinding, VllmAuditAdapter, bind_http
from .plugin import ENABLE_ENV, SUPPORTED, close, install, register

if TYPE_CHECKING:
    from .middleware import VllmAuditMiddleware

__all__ = [
    "ENABLE_ENV",
    "SUPPORTED",
    "HttpBinding",
    "VllmAuditAdapter",
    "VllmAuditMiddleware",
    "bind_http",
    "close",
    "install",
    "register",
]


def __getattr__(name: str) -> Any:
    if name == "VllmAuditMiddleware":  # needs starlette; import on use
        from .middleware import VllmAuditMiddleware

        return VllmAuditMiddleware
    raise AttributeError(name)
