"""What every console page shares: the signed-in caller, its audited read, rendering, errors.

A page view is an audited read exactly like an API call (C18): the page's :class:`Audit` writes
the same ``access`` record (principal, role, route template, parameters, request ids, status,
reason) before the page leaves, and a page whose record cannot be written is replaced by a 503
page. Pages are rendered by Jinja2 with autoescaping on; they carry no script.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from auditlog.errors import AuditlogError, ConflictError, NoCheckpointError, NotFoundError
from auditlog.store.cursors import InvalidQueryError

from ..access import AccessLogUnavailable
from ..deps import ApiState, Audit, get_state
from ..keys import ApiKey, Role, get_key
from .session import SESSION_COOKIE, ConsoleSession, SessionStore

__all__ = [
    "CSP",
    "ConsoleRoute",
    "ConsoleState",
    "Page",
    "PageDep",
    "PageError",
    "format_ts",
    "render",
    "signed_in",
    "templates",
]

#: No script, no inline style, nothing from elsewhere, forms post only here.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
#: ``reason`` query parameter: why the page is read (recorded, like ``X-Audit-Reason``).
REASON_PARAM = "reason"
MAX_REASON_LENGTH = 1000


def format_ts(ts: int | None) -> str:
    """``2026-11-27 14:03:07.123456789 UTC`` for ns since the epoch; empty for None."""
    if ts is None:
        return ""
    stamp = datetime.fromtimestamp(ts // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{ts % 1_000_000_000:09d} UTC"


templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["ts"] = format_ts


@dataclass(slots=True)
class ConsoleState:
    """The console's own state on the app (``app.state.console``)."""

    sessions: SessionStore


class NotSignedIn(AuditlogError):
    """No live session: the page redirects to the sign-in form."""


class PageError(AuditlogError):
    """An error page with ``status_code`` and a message for the reader."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


@dataclass(slots=True)
class Page:
    """A signed-in page view: the caller's key, its session and the audit of this read."""

    request: Request
    key: ApiKey
    session: ConsoleSession
    audit: Audit

    def require(self, *roles: Role) -> None:
        """Refuse the page (403) unless the key has one of ``roles``; the refusal is recorded
        with its status, like the API's (C18)."""
        if self.key.role not in roles:
            self.audit.commit([], status.HTTP_403_FORBIDDEN)
            allowed = ", ".join(str(r) for r in roles)
            raise PageError(status.HTTP_403_FORBIDDEN, f"This page needs the role {allowed}.")


def signed_in(request: Request, state: ApiState) -> tuple[ApiKey, ConsoleSession] | None:
    """The live key and session of the request's cookie, re-read from the key table (a revoked
    or deleted key ends its sessions); None when not signed in."""
    sessions = console_state(request).sessions
    token = request.cookies.get(SESSION_COOKIE)
    session = sessions.get(token)
    if session is None:
        return None
    try:
        with state.engine.connect() as conn:
            key = get_key(conn, session.key_id)
    except NotFoundError:
        key = None
    if key is None or key.is_revoked:
        sessions.drop(token)
        return None
    return key, session


def get_page(request: Request, state: Annotated[ApiState, Depends(get_state)]) -> Page:
    """The signed-in caller of this page and the audit of its read."""
    caller = signed_in(request, state)
    if caller is None:
        raise NotSignedIn
    key, session = caller
    route = request.scope.get("route")
    params = {k: v for k, v in request.query_params.items() if v and k != REASON_PARAM}
    reason = request.query_params.get(REASON_PARAM) or None
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise PageError(status.HTTP_400_BAD_REQUEST, "The reason is too long.")
    audit = Audit(
        access_log=state.access_log,
        key=key,
        endpoint=f"{request.method} {getattr(route, 'path', request.url.path)}",
        params=params,
        reason=reason,
    )
    return Page(request=request, key=key, session=session, audit=audit)


PageDep = Annotated[Page, Depends(get_page)]


def _secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def render(
    request: Request,
    name: str,
    page: Page | None,
    *,
    status_code: int = status.HTTP_200_OK,
    **context: Any,
) -> HTMLResponse:
    """Render template ``name`` for ``page`` (None: signed out) with security headers."""
    context.update(
        key=None if page is None else page.key,
        csrf_token=None if page is None else page.session.csrf_token,
        Role=Role,
    )
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    return _secure_headers(response)  # type: ignore[return-value]


_MESSAGES = {
    NotFoundError: (status.HTTP_404_NOT_FOUND, "Not found, or not visible to you."),
    NoCheckpointError: (
        status.HTTP_409_CONFLICT,
        "No signed checkpoint covers this trail yet; try again after the next checkpoint.",
    ),
    ConflictError: (
        status.HTTP_409_CONFLICT,
        "Two logs claim this request id; the console refuses to choose one (run auditlog "
        "verify on this database).",
    ),
    AccessLogUnavailable: (
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The access record of this page could not be written, so the page is not shown.",
    ),
}


def error_page(request: Request, exc: Exception) -> Response:
    """The answer for an exception raised by a console page."""
    if isinstance(exc, NotSignedIn):
        return _secure_headers(RedirectResponse("/console/sign-in", status.HTTP_303_SEE_OTHER))
    if isinstance(exc, PageError):
        code, message = exc.status_code, exc.message
    elif isinstance(exc, InvalidQueryError):
        code, message = status.HTTP_400_BAD_REQUEST, f"Unusable search: {exc}"
    elif isinstance(exc, RequestValidationError):
        fields = ", ".join(str(e.get("loc", ("?",))[-1]) for e in exc.errors())
        code, message = status.HTTP_400_BAD_REQUEST, f"Invalid value for: {fields}."
    elif isinstance(exc, HTTPException):
        code, message = exc.status_code, str(exc.detail)
    else:
        code, message = next(v for t, v in _MESSAGES.items() if isinstance(exc, t))
    return render(request, "error.html", None, status_code=code, code=code, message=message)


_HANDLED = (
    NotSignedIn,
    PageError,
    InvalidQueryError,
    RequestValidationError,
    HTTPException,
    NotFoundError,
    NoCheckpointError,
    ConflictError,
    AccessLogUnavailable,
)


class ConsoleRoute(APIRoute):
    """Route class of the console: its errors are HTML pages, not the API's JSON bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except _HANDLED as exc:
                return error_page(request, exc)

        return console_handler
