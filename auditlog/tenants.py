"""Tenant names: one rule for every place that accepts one.

A tenant name is 1-255 characters of ``[A-Za-z0-9._:@-]`` starting with a letter or a digit. It
has no ``"/"``: a trail's request id is ``<tenant>/<caller id>`` (gateway/request_ids.py), and an
auditor key scoped to a tenant (api/keys.py) must be able to name every tenant a server accepts.
"""

from __future__ import annotations

import re

__all__ = ["TENANT_PATTERN", "is_tenant_name", "tenant_name_error"]

TENANT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}"
_TENANT_RE = re.compile(rf"\A{TENANT_PATTERN}\Z")


def is_tenant_name(value: object) -> bool:
    """True when ``value`` is a string that follows the tenant name rule."""
    return isinstance(value, str) and _TENANT_RE.match(value) is not None


def tenant_name_error(value: object) -> str:
    """The message every caller gives for a value that is not a tenant name."""
    return (
        f"not a valid tenant name: {value!r} (1-255 characters of A-Z a-z 0-9 . _ : @ -, "
        "starting with a letter or digit)"
    )
