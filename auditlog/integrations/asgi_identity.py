"""Who calls, as the audit middleware establishes it before it writes anything (C3, C19).

- Headers that name the caller or the body (``Authorization``, ``x-request-id``,
  ``Content-Type``, ``Content-Encoding``, ``Content-Length``) MUST appear at most once: the app
  (Starlette's ``Headers.get``) reads the first of several, other code the last, so two of them
  would let the trail and the app disagree on who called. Several are refused (400).
- With a key table configured, the bearer key MUST be in it: a missing, malformed or unknown key
  is refused (401) by the middleware, before the body is read, with the answer ``auditlog
  serve`` gives (``ApiKeyTable.authenticate``'s error, ``openai_errors.as_api_error``); only a
  small refusal record (no content) is written, in the namespace ``<default tenant>/key:<16
  hex>`` (or ``<default tenant>/anonymous``), under an id the middleware generates.
- With no key table, every caller is recorded as unmapped, named by its key's hash (the app is
  then the only authentication; a deployment SHOULD configure the table).
- Body fields never name the caller: tenant, principal, client and request ids come from the
  headers and the table only (``asgi_policy.RESERVED_PARAMS``).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

from auditlog.gateway.auth import ApiKeyTable, Identity
from auditlog.gateway.openai_errors import as_api_error
from auditlog.gateway.request_ids import NAMESPACE_SEPARATOR

from .asgi_request import Refused

__all__ = ["SINGLE_HEADERS", "Caller", "identify", "request_headers"]

SINGLE_HEADERS = frozenset(
    {"authorization", "x-request-id", "content-type", "content-encoding", "content-length"}
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller's identity (C3) and its request-id namespace (C19)."""

    identity: Identity
    namespace: str


def request_headers(scope: Scope) -> dict[str, str]:
    """The request headers by lowercase name; :class:`Refused` for a repeated single header."""
    out: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1").lower()
        if name in out and name in SINGLE_HEADERS:
            raise Refused(400, f"header {name} sent more than once", param=name,
                          code="duplicate_header")  # fmt: skip
        out.setdefault(name, value.decode("latin-1"))
    return out


def identify(
    table: ApiKeyTable | None, default_tenant: str, authorization: str | None
) -> tuple[Caller, Refused | None]:
    """The caller for an ``Authorization`` value, and why it is refused (None if it is not)."""
    digest, identity = (table or ApiKeyTable({})).lookup(authorization)
    if identity is not None:
        return Caller(identity, identity.tenant), None
    client = f"key:{digest[:16]}" if digest else ""
    principal = client or "anonymous"
    unmapped = Identity(tenant=default_tenant, principal=principal, client=client)
    caller = Caller(unmapped, f"{default_tenant}{NAMESPACE_SEPARATOR}{principal}")
    rejection = table.rejection(authorization) if table is not None else None
    if rejection is None:
        return caller, None
    # The server's answer to the same key (one authentication error, one OpenAI error body).
    err = as_api_error(rejection)
    return caller, Refused(err.status, err.message, code=err.code or "invalid_api_key",
                           error_type=err.type, headers=err.headers)  # fmt: skip
