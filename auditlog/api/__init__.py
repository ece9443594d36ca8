"""The auditor API (FastAPI): authenticated, tenant-scoped, access-logged reads of audit trails."""

from __future__ import annotations

from .app import create_app
from .keys import ApiKey, AuthenticationError, IssuedKey, Role
from .settings import ApiSettings

__all__ = ["ApiKey", "ApiSettings", "AuthenticationError", "IssuedKey", "Role", "create_app"]
