"""Console sign-in, sign-out, landing page and style sheet.

Sign-in checks the key with the API's :func:`~auditlog.api.keys.authenticate` and records the
sign-in as an ``access`` record of the key (no record, no session: 503). A failed sign-in names
nobody and writes nothing, like a 401 of the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response

from ..deps import StateDep
from ..keys import ApiKey, AuthenticationError, Role, authenticate
from .forms import read_form
from .pages import ConsoleRoute, PageDep, PageError, console_state, render, signed_in
from .session import (
    MAX_AGE_S,
    PRE_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    new_nonce,
    set_cookie,
)

__all__ = ["router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

_STATIC = Path(__file__).parent / "static"
_PRE_MAX_AGE_S = 60 * 60


def home_of(key: ApiKey) -> str:
    """The first page of a role: the search for content readers, step manifests for operators."""
    return "/console/steps" if key.role is Role.OPERATOR else "/console/requests"


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status.HTTP_303_SEE_OTHER)


@router.get("/static/console.css")
def stylesheet() -> Response:
    return FileResponse(
        _STATIC / "console.css", media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


@router.get("")
def landing(request: Request, state: StateDep) -> Response:
    """Where a bare ``/console`` goes: the sign-in form, or the role's first page."""
    caller = signed_in(request, state)
    return _see_other("/console/sign-in" if caller is None else home_of(caller[0]))


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    """The sign-in form, with a CSRF token bound to a fresh pre-session cookie."""
    return _sign_in_page(request, status.HTTP_200_OK, error=None)


def _sign_in_page(request: Request, code: int, *, error: str | None) -> Response:
    nonce = request.cookies.get(PRE_COOKIE) or new_nonce()
    response = render(
        request,
        "sign_in.html",
        None,
        status_code=code,
        error=error,
        pre_token=console_state(request).sessions.pre_token(nonce),
    )
    set_cookie(response, request, PRE_COOKIE, nonce, _PRE_MAX_AGE_S)
    return response


@router.post("/sign-in")
async def sign_in(request: Request, state: StateDep) -> Response:
    """Check the CSRF token and the API key; open a new session for a live key."""
    form = await read_form(request)
    sessions = console_state(request).sessions
    if not sessions.pre_ok(request.cookies.get(PRE_COOKIE), form.get("csrf_token")):
        raise PageError(status.HTTP_403_FORBIDDEN, "The form expired or was not sent from here.")
    try:
        with state.engine.connect() as conn:
            key = authenticate(conn, form.get("api_key", "").strip())
    except AuthenticationError:
        return _sign_in_page(
            request, status.HTTP_401_UNAUTHORIZED, error="Unknown, revoked or malformed API key."
        )
    # The sign-in is an audit event of the key (AU-2); without its record there is no session.
    state.access_log.record(
        key=key,
        endpoint="POST /console/sign-in",
        request_ids=[],
        reason=None,
        status=status.HTTP_303_SEE_OTHER,
        params={},
    )
    sessions.drop(request.cookies.get(SESSION_COOKIE))
    token, _session = sessions.create(key.id)
    response = _see_other(home_of(key))
    set_cookie(response, request, SESSION_COOKIE, token, MAX_AGE_S)
    clear_cookie(response, request, PRE_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, page: PageDep) -> Response:
    """End the session (CSRF-checked); recorded like the sign-in."""
    form = await read_form(request)
    if not page.session.csrf_ok(form.get("csrf_token")):
        raise PageError(status.HTTP_403_FORBIDDEN, "The form expired or was not sent from here.")
    page.audit.commit([], status.HTTP_303_SEE_OTHER)
    console_state(request).sessions.drop(request.cookies.get(SESSION_COOKIE))
    response = _see_other("/console/sign-in")
    clear_cookie(response, request, SESSION_COOKIE)
    return response
