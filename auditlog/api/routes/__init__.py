"""Routers of the auditor API, one module per resource."""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorPublic

__all__ = ["ERROR_RESPONSES"]

#: Error answers every authenticated route may give (documented in the OpenAPI schema).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "unusable parameter (e.g. a foreign cursor)"},
    401: {"model": ErrorPublic, "description": "missing, malformed, unknown or revoked key"},
    403: {"model": ErrorPublic, "description": "the key's role may not call this route"},
    404: {"model": ErrorPublic, "description": "not found, or not visible to the caller"},
    409: {"model": ErrorPublic, "description": "no signed checkpoint covers it yet"},
    503: {"model": ErrorPublic, "description": "the access record could not be written"},
}
