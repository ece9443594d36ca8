"""Adapters that audit inference servers and engines we do not own.

``asgi.AuditMiddleware`` wraps any OpenAI-compatible ASGI server; ``transformers`` records
Hugging Face continuous batching and assisted generation as auditlog events. Nothing here is
imported eagerly: each adapter pulls in only what it needs.
"""

from __future__ import annotations
