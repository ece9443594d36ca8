"""FastAPI dependencies: application state, database connection, authentication, roles, audit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine

from auditlog.errors import (
    AuditlogError,
    ConflictError,
    NoCheckpointError,
    NotFoundError,
)
from auditlog.ledger import Signer, Verifier
from auditlog.store.cursors import InvalidQueryError
from auditlog.witnesses.state import OutsideAnchors

from .access import AccessLog
from .keys import ApiKey, AuthenticationError, Role, authenticate
from .settings import ApiSettings

__all__ = [
    "AdminOnly",
    "AdminOrAuditor",
    "AdminOrOperator",
    "ApiState",
    "Audit",
    "AuditDep",
    "ConnDep",
    "KeyDep",
    "StateDep",
    "record_invalid_input",
    "status_of",
]

#: Longest ``X-Audit-Reason`` accepted (it is written into the access record).
MAX_REASON_LENGTH = 1000


@dataclass(slots=True)
class ApiState:
    """What the app holds for its lifetime (``app.state.auditlog``)."""

    settings: ApiSettings
    engine: Engine
    access_log: AccessLog
    trusted: list[Verifier]
    outside: OutsideAnchors = field(default_factory=OutsideAnchors)  # witness policy, TSA
    keyring: Any = None  # KeyProvider of the tenants' payload KEKs (C16), loaded on first use
    admin_signer: Signer | None = None  # signs holds and erasures placed through the API
    read_engine: Engine | None = None  # the served logs' database when not ``engine`` (replica)

    @property
    def admin_keys(self) -> list[Verifier]:
        """The administrative key whose checkpoints prove holds and erasures (empty without
        ``AUDITLOG_API_ADMIN_SIGNING_KEY``; readers then prove them under ``trusted``)."""
        return [] if self.admin_signer is None else [self.admin_signer.verifier]

    @property
    def reads(self) -> Engine:
        """Where the served logs are read: ``settings.api_read_db_url``, else ``engine``."""
        return self.engine if self.read_engine is None else self.read_engine

    def key_provider(self) -> Any:
        """The payload keyring of ``settings.api_keyring`` (None without one)."""
        if self.keyring is None and self.settings.api_keyring is not None:
            from auditlog.crypto import LocalKeyring

            self.keyring = LocalKeyring.load(self.settings.api_keyring)
        return self.keyring


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.auditlog
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_conn(state: StateDep) -> Iterator[Connection]:
    """A read connection for the request (the handler never commits on it), on the served logs'
    database (a replica when ``api_read_db_url`` names one)."""
    with state.reads.connect() as conn:
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer alk_...`")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def get_key(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's live API key; 401 for a missing, malformed, unknown or revoked key."""
    if credentials is None:
        raise _unauthorized("missing bearer API key")
    try:
        with state.engine.connect() as conn:
            return authenticate(conn, credentials.credentials)
    except AuthenticationError as exc:
        raise _unauthorized(str(exc)) from None


KeyDep = Annotated[ApiKey, Depends(get_key)]


def _require(*roles: Role) -> object:
    allowed = ", ".join(str(r) for r in roles)

    def check(key: KeyDep, request: Request, state: StateDep) -> ApiKey:
        if key.role not in roles:
            # A refused attempt by an authenticated principal is itself an audit event (C18,
            # AU-2): recorded, with its status, before the 403 leaves.
            route = request.scope.get("route")
            state.access_log.record(
                key=key,
                endpoint=f"{request.method} {getattr(route, 'path', request.url.path)}",
                request_ids=[],
                reason=request.headers.get("x-audit-reason"),
                status=status.HTTP_403_FORBIDDEN,
                params=dict(request.query_params),
            )
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {key.role} may not call this; needs {allowed}",
            )
        return key

    return Depends(check)


AdminOnly = Annotated[ApiKey, _require(Role.ADMIN)]
AdminOrAuditor = Annotated[ApiKey, _require(Role.AUDITOR, Role.ADMIN)]
AdminOrOperator = Annotated[ApiKey, _require(Role.OPERATOR, Role.ADMIN)]


def status_of(exc: Exception) -> int:
    """The HTTP status the API answers for ``exc`` (the app's handlers use the same map)."""
    if isinstance(exc, (NoCheckpointError, ConflictError)):
        return status.HTTP_409_CONFLICT
    if isinstance(exc, NotFoundError):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, InvalidQueryError):
        return status.HTTP_400_BAD_REQUEST
    if isinstance(exc, AuditlogError):
        # A stored log that does not verify or decode (a proof, a header, a key): the answer
        # would not be proven, so there is none; the caller is told why.
        return status.HTTP_409_CONFLICT
    return status.HTTP_500_INTERNAL_SERVER_ERROR


@dataclass(slots=True)
class AccessScope:
    """The request ids a read concerns; the handler adds them as it learns them."""

    request_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Audit:
    """Writes the access record of one API call before its answer leaves (C18)."""

    access_log: AccessLog
    key: ApiKey
    endpoint: str
    params: dict[str, str]
    reason: str | None

    def commit(self, request_ids: list[str], status_code: int) -> None:
        """Commit the access record; raises :class:`AccessLogUnavailable` (answered 503)."""
        self.access_log.record(
            key=self.key,
            endpoint=self.endpoint,
            request_ids=request_ids,
            reason=self.reason,
            status=status_code,
            params=self.params,
        )

    @contextmanager
    def reading(self, *request_ids: str, ok: int = status.HTTP_200_OK) -> Iterator[AccessScope]:
        """Run a read (or a write answering ``ok``); commit its access record with the status it
        will answer, then let the answer (or the error) go. A failed commit replaces the answer
        by 503."""
        scope = AccessScope(list(request_ids))
        try:
            yield scope
        except HTTPException as exc:
            self.commit(scope.request_ids, exc.status_code)
            raise
        except Exception as exc:
            # Every answer is access-logged, failures included (the app maps each error to the
            # same status: status_of).
            self.commit(scope.request_ids, status_of(exc))
            raise
        self.commit(scope.request_ids, ok)


def record_invalid_input(request: Request) -> None:
    """The access record of a 422 (parameters that do not validate, answered before any
    handler ran) to a caller whose bearer key authenticates: every answer to a known caller is
    recorded (C18); an unknown caller's is not, as for a 401. Raises
    :class:`~auditlog.api.access.AccessLogUnavailable` when the record cannot be written."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return
    state = get_state(request)
    try:
        with state.engine.connect() as conn:
            key = authenticate(conn, token.strip())
    except AuthenticationError:
        return
    route = request.scope.get("route")
    reason = request.headers.get("x-audit-reason")
    state.access_log.record(
        key=key,
        endpoint=f"{request.method} {getattr(route, 'path', request.url.path)}",
        request_ids=[],
        reason=None if reason is None or len(reason) > MAX_REASON_LENGTH else reason,
        status=422,  # Unprocessable Content
        params=dict(request.query_params),
    )


def get_audit(
    request: Request,
    state: StateDep,
    key: KeyDep,
    x_audit_reason: Annotated[
        str | None,
        Header(max_length=MAX_REASON_LENGTH, description="why this read is made (C18)"),
    ] = None,
) -> Audit:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return Audit(
        access_log=state.access_log,
        key=key,
        endpoint=f"{request.method} {path}",
        params=dict(request.query_params),
        reason=x_audit_reason,
    )


AuditDep = Annotated[Audit, Depends(get_audit)]
