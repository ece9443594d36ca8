"""Console pages of content readers (auditor, admin): search, trail, evidence bundle, replay.

Each page calls the API's own route function (same tenant scope, same 404 for another tenant's
request, C19) with the page's :class:`~auditlog.api.deps.Audit`, so the page writes the same
``access`` record as the API call would (C18), naming the console route.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import RedirectResponse

from auditlog.events import FinishReason

from ..deps import ConnDep, StateDep
from ..keys import Role
from ..routes import replay as api_replay
from ..routes import requests as api_requests
from .forms import optional, parse_when, read_form
from .pages import ConsoleRoute, PageDep, PageError, render
from .view import PROVENANCES, content_view, token_views, verdict

__all__ = ["router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

RequestId = Annotated[str, Path(min_length=1, max_length=255)]
Text = Annotated[str | None, Query(max_length=255)]
When = Annotated[str | None, Query(max_length=40)]
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def trail_url(request_id: str, reason: str | None = None) -> str:
    url = f"/console/requests/{quote(request_id, safe='/')}"
    return url if reason is None else f"{url}?{urlencode({'reason': reason})}"


@router.get("/requests")
def search_page(
    page: PageDep,
    conn: ConnDep,
    state: StateDep,
    tenant: Text = None,
    principal: Text = None,
    model: Text = None,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
    since: When = None,
    until: When = None,
    request_id: Text = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Search form and one page of results; a request id goes straight to its trail."""
    page.require(Role.AUDITOR, Role.ADMIN)
    reason = optional(reason)
    if optional(request_id) is not None:
        return RedirectResponse(
            trail_url(str(optional(request_id)), reason), status.HTTP_303_SEE_OTHER
        )
    result = api_requests.search(
        page.key,
        page.audit,
        conn,
        state,
        tenant=optional(tenant),
        since=parse_when(since, "From"),
        until=parse_when(until, "Until"),
        principal=optional(principal),
        model=optional(model),
        finish_reason=optional(outcome),
        cursor=optional(cursor),
        limit=None,
    )
    query = {k: v for k, v in page.request.query_params.items() if v and k != "cursor"}
    next_url = None
    if result.next_cursor is not None:
        next_url = "/console/requests?" + urlencode({**query, "cursor": result.next_cursor})
    return render(
        page.request,
        "search.html",
        page,
        form=query,
        outcomes=[str(r) for r in FinishReason],
        items=result.items,
        next_url=next_url,
        first_url="/console/requests?" + urlencode(query) if cursor else None,
        trail_url=lambda rid: trail_url(rid, reason),
    )


@router.get("/requests/{request_id:path}/bundle")
def bundle_download(
    request_id: RequestId, page: PageDep, conn: ConnDep, state: StateDep
) -> Response:
    """The API's evidence bundle of the trail, as a file download."""
    page.require(Role.AUDITOR, Role.ADMIN)
    response = api_requests.bundle(
        request_id, page.key, page.audit, conn, state, checkpoint_size=None
    )
    filename = _UNSAFE_FILENAME.sub("_", request_id)[:100] + ".bundle.json"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.post("/requests/{request_id:path}/replay")
async def replay_page(
    request_id: RequestId, page: PageDep, conn: ConnDep, state: StateDep
) -> Response:
    """Replay the trail with the API's replay (CSRF-checked form) and show its verdict."""
    form = await read_form(page.request)
    if not page.session.csrf_ok(form.get("csrf_token")):
        raise PageError(status.HTTP_403_FORBIDDEN, "The form expired or was not sent from here.")
    page.require(Role.AUDITOR, Role.ADMIN)
    result = api_replay.replay_request(request_id, page.key, page.audit, conn, state)
    return render(page.request, "replay.html", page, result=result, trail_url=trail_url(request_id))


# Declared after the bundle and replay routes: ``{request_id:path}`` takes ``tenant/id`` trail
# ids as they are.
@router.get("/requests/{request_id:path}")
def trail_page(request_id: RequestId, page: PageDep, conn: ConnDep, state: StateDep) -> Response:
    """Prompt, output tokens coloured and lettered by provenance, verdict, bundle download."""
    page.require(Role.AUDITOR, Role.ADMIN)
    trail = api_requests.trail(request_id, page.key, page.audit, conn, state)
    return render(
        page.request,
        "trail.html",
        page,
        trail=trail,
        tokens=token_views(trail),
        content=content_view(trail),
        verdict=verdict(trail),
        legend=PROVENANCES,
        bundle_url=trail_url(request_id) + "/bundle",
        replay_url=trail_url(request_id) + "/replay",
    )
