"""The console's legal hold and erasure pages through a TestClient (C15, C16): admin forms
CSRF-checked and role-checked before anything is written, tenant scope of the lists (C19), every
page view and form post an access record naming the console route (C18). SQLite and PostgreSQL,
over sealed payloads written by the real recorder."""

from __future__ import annotations

import re
from typing import Any

from api_helpers import ADMIN_ORIGIN, API_ORIGIN, World, fixed_signer
from console_helpers import csrf_of, sign_in
from fastapi.testclient import TestClient

from auditlog.ledger import parse_header
from auditlog.store import bodies_of_kind
from auditlog.store.ledger_store import get_log_id, iter_records
from auditlog.verifier import verify_database


def _client(world: World, who: str) -> TestClient:
    client = TestClient(world.app)
    assert sign_in(client, world.tokens[who]).status_code == 303
    return client


def _decisions(world: World) -> int:
    with world.engine.connect() as conn:
        return len(bodies_of_kind(conn, "admin") + bodies_of_kind(conn, "erasure"))


def _access(world: World, who: str) -> list[tuple[str, int]]:
    with world.engine.connect() as conn:
        log_id = get_log_id(conn, API_ORIGIN)
        headers = [parse_header(bytes(r.body)) for r in iter_records(conn, log_id)]
    return [(h["endpoint"], h["status"]) for h in headers if h["principal"] == world.key_ids[who]]


def _post(client: TestClient, path: str, csrf: str | None, **fields: str) -> Any:
    data = dict(fields) if csrf is None else {"csrf_token": csrf, **fields}
    return client.post(path, data=data)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_admin_places_a_hold_erasure_is_refused_then_released_and_erased(
    sealed_world: World,
) -> None:
    """C15, C16, C18: the admin's forms place a hold, an erasure of held content is a 409 page
    naming the hold and the refusal record, the release and then the erasure go through; each
    post is the API's write with its access record; the store verifies."""
    world = sealed_world
    admin = _client(world, "admin")
    own = world.request_of("tenant-0")
    page = admin.get("/console/holds")
    assert page.status_code == 200 and "No hold in force" in page.text
    csrf = csrf_of(page.text)
    placed = _post(admin, "/console/holds", csrf, tenant="tenant-0", reason="SEC inquiry 42")
    assert placed.status_code == 201, placed.text
    hold_id = f"{ADMIN_ORIGIN}#0"
    assert f"Hold {hold_id} is in force" in _text(placed.text)
    listed = admin.get("/console/holds").text
    assert f'data-hold="{hold_id}"' in listed and "tenant tenant-0" in listed

    reason, basis = "data subject request", "GDPR Art. 17(1)(a)"
    refused = _post(
        admin, "/console/erasures", csrf, request_ids=own, reason=reason, legal_basis=basis
    )
    assert refused.status_code == 409
    assert f"erasure refused ({own}: hold {hold_id}); the refusal is record 1" in refused.text
    erasures = admin.get("/console/erasures").text
    assert 'data-outcome="refused"' in erasures and f"blocked by hold {hold_id}" in erasures

    released = _post(admin, "/console/holds/release", csrf, hold_id=hold_id, reason="closed")
    assert released.status_code == 200 and "is released" in released.text
    assert "No hold in force" in admin.get("/console/holds").text
    erased = _post(
        admin, "/console/erasures", csrf, request_ids=f"{own},", reason=reason, legal_basis=basis
    )
    assert erased.status_code == 201 and f"{ADMIN_ORIGIN}#3" in erased.text
    trail = admin.get(f"/console/requests/{own}").text
    assert "The prompt text was erased by record <strong>3</strong>" in trail
    assert f"{reason} ({basis})" in trail and "prompt \u00e9" not in trail

    assert _access(world, "admin") == [
        ("POST /console/sign-in", 303),
        ("GET /console/holds", 200),
        ("POST /console/holds", 201),
        ("GET /console/holds", 200),
        ("POST /console/erasures", 409),
        ("GET /console/erasures", 200),
        ("POST /console/holds/release", 200),
        ("GET /console/holds", 200),
        ("POST /console/erasures", 201),
        ("GET /console/requests/{request_id:path}", 200),
    ]
    keys = [world.engine_signer.verifier_key, world.api_signer.verifier_key]
    report = verify_database(world.db_url, keys=[*keys, fixed_signer(ADMIN_ORIGIN).verifier_key])
    assert report.ok, report.findings


def test_forms_need_the_csrf_token_and_the_admin_role(sealed_world: World) -> None:
    """A missing or forged CSRF token is a 403 before anything; an auditor's post is a recorded
    403; bad input is a 400 saying nothing was recorded; no decision is written by any."""
    world = sealed_world
    admin, auditor = _client(world, "admin"), _client(world, "auditor0")
    csrf = csrf_of(admin.get("/console/holds").text)
    for token in (None, "forged", csrf_of(auditor.get("/console/holds").text)):
        answer = _post(admin, "/console/holds", token, tenant="tenant-0", reason="r")
        assert answer.status_code == 403, token
    own_csrf = csrf_of(auditor.get("/console/holds").text)
    answer = _post(auditor, "/console/holds", own_csrf, tenant="tenant-0", reason="r")
    assert answer.status_code == 403 and "needs the role admin" in answer.text
    assert ("POST /console/holds", 403) in _access(world, "auditor0")
    for path, fields in (
        ("/console/holds", {"reason": "no scope"}),
        ("/console/holds", {"tenant": "tenant-0", "reason": "  "}),
        ("/console/holds", {"tenant": "tenant-0", "since": "yesterday", "reason": "r"}),
        (
            "/console/holds",
            {"since": "2026-02-01T00:00", "until": "2026-01-01T00:00", "reason": "r"},
        ),
        ("/console/holds/release", {"reason": "r"}),
        ("/console/erasures", {"reason": "r", "legal_basis": "b"}),
        ("/console/erasures", {"tenant": "tenant-0", "reason": "r", "legal_basis": "b"}),
    ):
        answer = _post(admin, path, csrf, **fields)
        assert answer.status_code == 400, (path, fields)
        assert "Nothing was recorded" in answer.text or "expected a date" in answer.text
    missing = _post(admin, "/console/holds/release", csrf, hold_id=f"{ADMIN_ORIGIN}#9", reason="r")
    assert missing.status_code == 404 and "no hold" in missing.text
    assert _decisions(world) == 0


def test_auditors_see_only_their_tenants_holds_and_erasures(sealed_world: World) -> None:
    """C17, C19: an auditor of another tenant sees nothing of tenant-0's hold or refusal, and
    no form; an operator gets 403."""
    world = sealed_world
    admin = _client(world, "admin")
    csrf = csrf_of(admin.get("/console/holds").text)
    own = world.request_of("tenant-0")
    _post(admin, "/console/holds", csrf, tenant="tenant-0", reason="SEC inquiry 42")
    refused = _post(admin, "/console/erasures", csrf, request_ids=own, reason="r", legal_basis="b")
    assert refused.status_code == 409
    auditor0, auditor12 = _client(world, "auditor0"), _client(world, "auditor12")
    mine = auditor0.get("/console/holds").text
    assert "SEC inquiry 42" in mine and "Place hold" not in mine and "Release" not in mine
    assert own in auditor0.get("/console/erasures").text
    for path in ("/console/holds", "/console/erasures"):
        page = auditor12.get(path)
        assert page.status_code == 200
        assert "SEC inquiry 42" not in page.text and own not in page.text
        assert "tenant-0" not in page.text and ADMIN_ORIGIN not in page.text
    operator = _client(world, "operator")
    assert operator.get("/console/holds").status_code == 403
    assert operator.get("/console/erasures").status_code == 403


def test_a_form_replayed_after_sign_out_writes_nothing(sealed_world: World) -> None:
    """An attacker replaying an admin's captured form post (cookie and CSRF token) after the
    admin signed out is sent to the sign-in form; no hold is placed, no access record names it."""
    world = sealed_world
    admin = _client(world, "admin")
    csrf = csrf_of(admin.get("/console/holds").text)
    cookies = dict(admin.cookies)
    assert admin.post("/console/sign-out", data={"csrf_token": csrf}).status_code == 200
    replayed = TestClient(world.app, cookies=cookies).post(
        "/console/holds",
        data={"csrf_token": csrf, "tenant": "tenant-0", "reason": "r"},
        follow_redirects=False,
    )
    assert replayed.status_code == 303 and replayed.headers["location"] == "/console/sign-in"
    assert _decisions(world) == 0
    assert ("POST /console/holds", 201) not in _access(world, "admin")
