"""Console pages of legal holds and erasures (C15, C16): auditors and admins list them (auditors
only their tenants'); admins place and release holds and order erasures with CSRF-checked forms.

Each page calls the API's own route function (:mod:`auditlog.api.routes.protect`) with the page's
:class:`~auditlog.api.deps.Audit`, so roles, tenant scope, the signed hold and erasure records
and the ``access`` record (naming the console route) are the API's. A refused erasure is shown
as such (409) with what blocked it and the record of the refusal.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Response, status
from pydantic import ValidationError

from auditlog.errors import NotFoundError
from auditlog.protect import ErasureRefusedError

from ..deps import ConnDep, StateDep
from ..keys import Role
from ..routes import protect as api_protect
from ..schemas_protect import ErasureOrderIn, HoldIn, HoldReleaseIn
from .forms import optional, parse_when, read_form
from .pages import ConsoleRoute, Page, PageDep, PageError, render

__all__ = ["router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
_Order = TypeVar("_Order", HoldIn, HoldReleaseIn, ErasureOrderIn)


async def _admin_form(page: Page) -> dict[str, str]:
    """The posted form, once its CSRF token and the caller's role (admin) are checked."""
    form = await read_form(page.request)
    if not page.session.csrf_ok(form.get("csrf_token")):
        raise PageError(status.HTTP_403_FORBIDDEN, "The form expired or was not sent from here.")
    page.require(Role.ADMIN)
    return form


def _valid(model: type[_Order], **values: Any) -> _Order:
    """``model`` of the form's values; a 400 page naming each bad field otherwise (nothing is
    written: the order never reaches the API)."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
        )
        raise PageError(status.HTTP_400_BAD_REQUEST, f"Nothing was recorded. {problems}.") from None


def _done(page: Page, code: int, title: str, **context: Any) -> Response:
    return render(page.request, "protect_done.html", page, status_code=code, title=title, **context)


@router.get("/holds")
def holds_page(page: PageDep, conn: ConnDep, state: StateDep) -> Response:
    """The holds in force the caller may see; for admins, forms to place and release them."""
    page.require(Role.AUDITOR, Role.ADMIN)
    result = api_protect.holds(page.key, page.audit, conn, state)
    return render(page.request, "holds.html", page, items=result.items)


@router.post("/holds")
async def place_page(page: PageDep, state: StateDep) -> Response:
    """Place a hold (admin): the API's ``POST /v1/holds`` with the form's scope and reason."""
    form = await _admin_form(page)
    scope: dict[str, Any] = {
        n: optional(form.get(n)) for n in ("tenant", "principal", "request_id")
    }
    scope["from_ts"] = parse_when(form.get("since"), "From")
    scope["to_ts"] = parse_when(form.get("until"), "Until")
    scope = {k: v for k, v in scope.items() if v is not None}
    body = _valid(HoldIn, scope=scope, reason=form.get("reason", ""))
    hold = api_protect.place(body, page.key, page.audit, state)
    return _done(page, status.HTTP_201_CREATED, "Hold placed", hold=hold)


@router.post("/holds/release")
async def release_page(page: PageDep, state: StateDep) -> Response:
    """Release a hold (admin): the API's ``POST /v1/holds/{id}/release``."""
    form = await _admin_form(page)
    hold_id = optional(form.get("hold_id"))
    if hold_id is None:
        raise PageError(status.HTTP_400_BAD_REQUEST, "Nothing was recorded. Name the hold.")
    body = _valid(HoldReleaseIn, reason=form.get("reason", ""))
    try:
        released = api_protect.release(hold_id, body, page.key, page.audit, state)
    except NotFoundError as exc:
        raise PageError(status.HTTP_404_NOT_FOUND, f"{exc}. Nothing was recorded.") from None
    return _done(page, status.HTTP_200_OK, "Hold released", released=released)


@router.get("/erasures")
def erasures_page(page: PageDep, conn: ConnDep, state: StateDep) -> Response:
    """Erasures and refused erasures the caller may see; for admins, the erasure form."""
    page.require(Role.AUDITOR, Role.ADMIN)
    result = api_protect.erasures(page.key, page.audit, conn, state)
    return render(page.request, "erasures.html", page, items=result.items)


@router.post("/erasures")
async def erase_page(page: PageDep, conn: ConnDep, state: StateDep) -> Response:
    """Order an erasure (admin): the API's ``POST /v1/erasures``. Refused under a hold or a legal
    retention period: a 409 page saying what blocked it and which record holds the refusal."""
    form = await _admin_form(page)
    ids = (form.get("request_ids") or "").replace(",", " ").split()
    values = {name: optional(form.get(name)) for name in ("tenant", "principal", "subject")}
    body = _valid(
        ErasureOrderIn,
        request_ids=ids,
        reason=form.get("reason", ""),
        legal_basis=form.get("legal_basis", ""),
        **{k: v for k, v in values.items() if v is not None},
    )
    try:
        entry = api_protect.order_erasure(body, page.key, page.audit, conn, state)
    except ErasureRefusedError as exc:
        return _done(page, status.HTTP_409_CONFLICT, "Erasure refused", refused=str(exc))
    except NotFoundError as exc:
        raise PageError(status.HTTP_404_NOT_FOUND, f"{exc}. Nothing was erased.") from None
    return _done(page, status.HTTP_201_CREATED, "Erasure recorded", erasure=entry)
