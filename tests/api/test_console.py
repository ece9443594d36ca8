"""The console through a TestClient: cookies, CSRF, roles and the access records of its pages.

C17 (roles), C18 (each page view is the API's access record; no record, no page), C19 (another
tenant is a 404, and a search never lists it), C16 (erased content is shown as erased).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_helpers import API_ORIGIN, ENGINE_ORIGIN, HOSTILE_PROMPT, World
from console_helpers import csrf_of, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, select, update
from test_api_access_log import _block_access_inserts

from auditlog.api import create_app
from auditlog.api.keys import revoke_key
from auditlog.ledger import parse_header
from auditlog.recorder import AuditRecorder
from auditlog.store.ledger_store import get_log_id, iter_records
from auditlog.store.schema import payloads, records
from auditlog.synthetic import SyntheticEngine

PAGES = ("/console/requests", "/console/steps", "/console/access", "/console/requests/req-00000")


def _client(world: World, who: str, **kwargs: Any) -> TestClient:
    client = TestClient(world.app, **kwargs)
    assert sign_in(client, world.tokens[who]).status_code == 303
    return client


def _access(world: World) -> list[dict[str, Any]]:
    with world.engine.connect() as conn:
        log_id = get_log_id(conn, API_ORIGIN)
        return [parse_header(bytes(r.body)) for r in iter_records(conn, log_id)]


def _num_access(world: World) -> int:
    with world.engine.connect() as conn:
        rows = conn.execute(select(records.c.seq).where(records.c.kind == "access")).all()
    return len(rows)


def test_session_cookie_is_httponly_strict_and_not_the_key(world: World) -> None:
    response = sign_in(world.client, world.tokens["auditor0"])
    assert response.status_code == 303 and response.headers["location"] == "/console/requests"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "auditlog_console=" in c)
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= attributes and "secure" not in attributes
    assert "samesite=strict" in cookie.lower() and "path=/console" in cookie.lower()
    secret = world.tokens["auditor0"].split(".")[1]
    assert all(secret not in c for c in response.headers.get_list("set-cookie"))
    # Over https the cookie is Secure.
    https = TestClient(world.app, base_url="https://testserver")
    secure = sign_in(https, world.tokens["auditor0"]).headers.get_list("set-cookie")
    assert any("auditlog_console=" in c and "secure" in c.lower() for c in secure)


def test_signed_out_pages_redirect_and_a_bad_key_opens_nothing(world: World) -> None:
    for path in PAGES:
        response = world.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/console/sign-in"
    admin = world.tokens["admin"]
    wrong_secret = admin[:-1] + ("B" if admin.endswith("A") else "A")  # always differs
    for token in ("nope", world.tokens["revoked"], wrong_secret):
        response = sign_in(world.client, token)
        assert response.status_code == 401
        assert "Unknown, revoked or malformed API key." in response.text
        assert "auditlog_console=" not in " ".join(response.headers.get_list("set-cookie"))
    assert _num_access(world) == 0  # a failed sign-in names nobody and writes nothing


def test_forms_without_the_right_csrf_token_are_refused(world: World) -> None:
    # Sign-in: no pre-session cookie, or a token of another pre-session: 403, no session.
    form = world.client.get("/console/sign-in")
    token = csrf_of(form.text)
    stranger = TestClient(world.app)
    for client, csrf in ((stranger, token), (world.client, "0" * 64), (world.client, "")):
        response = client.post(
            "/console/sign-in",
            data={"api_key": world.tokens["admin"], "csrf_token": csrf},
            follow_redirects=False,
        )
        assert response.status_code == 403, csrf
        assert "auditlog_console=" not in " ".join(response.headers.get_list("set-cookie"))
    # Sign-out with a forged token: refused, the session stays.
    client = _client(world, "auditor0")
    session = client.cookies["auditlog_console"]
    for data in ({"csrf_token": "forged"}, {"other": "field"}):
        refused = client.post("/console/sign-out", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert client.get("/console/requests").status_code == 200
    # A JSON or multipart body is not a console form.
    assert client.post("/console/sign-out", json={"x": 1}).status_code == 415
    # The right token signs out; the old cookie is dead even when replayed.
    page = client.get("/console/requests")
    done = client.post(
        "/console/sign-out", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/sign-in"
    replay = TestClient(world.app, cookies={"auditlog_console": session})
    assert replay.get("/console/requests", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("auditor0", {"/console/requests", "/console/requests/req-00000"}),
        ("operator", {"/console/steps"}),
        ("admin", set(PAGES)),
    ],
)
def test_roles_are_the_apis(world: World, who: str, allowed: set[str]) -> None:
    """C17: each role sees its pages; a refused page is a 403 recorded with its status."""
    own = world.request_of("tenant-0")
    client = _client(world, who)
    before = len(_access(world))
    for path in PAGES:
        path = path.replace("req-00000", own)
        response = client.get(path)
        expected = 200 if path.replace(own, "req-00000") in allowed else 403
        assert response.status_code == expected, path
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "<script" not in response.text.replace("&lt;script", "")
    statuses = [h["status"] for h in _access(world)[before:]]
    assert statuses.count(403) == len(PAGES) - len(allowed)
    # Operators never get content: no trail, no bundle.
    if who == "operator":
        assert client.get(f"/console/requests/{own}/bundle").status_code == 403


def test_a_page_view_writes_the_same_access_record_as_the_api(world: World) -> None:
    """C18: principal, role, parameters, request ids, status and reason as the API records them,
    with the console's route as the endpoint; another tenant is a recorded 404 (C19)."""
    own, foreign = world.request_of("tenant-0"), world.request_of("tenant-1")
    client = _client(world, "auditor0")
    for path in (f"/v1/requests/{own}", f"/v1/requests/{foreign}", "/v1/requests"):
        world.client.get(path, headers=world.headers("auditor0", "case 7"))
        console = path.replace("/v1/", "/console/")
        client.get(console, params={"reason": "case 7"})
    client.get(f"/console/requests/{own}/bundle", params={"reason": "case 7"})
    headers = _access(world)
    assert headers[0]["endpoint"] == "POST /console/sign-in"
    fields = ("principal", "role", "params", "request_ids", "status", "reason")
    pairs = list(zip(headers[1:7:2], headers[2:7:2], strict=True))
    for api, console in pairs:
        assert {f: api[f] for f in fields} == {f: console[f] for f in fields}
        assert console["endpoint"] == api["endpoint"].replace("/v1/", "/console/")
    assert [h["status"] for h in headers[1:7:2]] == [200, 404, 200]
    assert headers[4]["request_ids"] == [foreign]
    assert headers[-1]["endpoint"] == "GET /console/requests/{request_id:path}/bundle"
    assert headers[-1]["request_ids"] == [own] and headers[-1]["reason"] == "case 7"


def test_no_access_record_no_page(world: World) -> None:
    """C18: when the access record cannot be written the page is a 503 with no content."""
    own = world.request_of("tenant-0")
    client = _client(world, "auditor0")
    assert client.get(f"/console/requests/{own}").status_code == 200
    _block_access_inserts(world.db_url, block=True)
    try:
        for path in (f"/console/requests/{own}", f"/console/requests/{own}/bundle",
                     "/console/requests", "/console/requests/nope"):  # fmt: skip
            response = client.get(path)
            assert response.status_code == 503, path
            assert "could not be written, so the page is not shown" in response.text
            assert own not in response.text and "prompt" not in response.text
        # Nor does a sign-in open a session without its record.
        assert sign_in(TestClient(world.app), world.tokens["admin"]).status_code == 503
    finally:
        _block_access_inserts(world.db_url, block=False)
    assert client.get(f"/console/requests/{own}").status_code == 200


def test_search_pages_and_tenant_scope(world: World) -> None:
    """Pagination follows the API's cursor; an auditor never lists another tenant (C19)."""
    settings = world.settings.model_copy(update={"api_default_page_size": 2})
    small = create_app(settings, engine=world.engine)
    client = TestClient(small)
    assert sign_in(client, world.tokens["auditor12"]).status_code == 303
    expected = sorted(r for r, t in world.truth.items() if t.tenant in ("tenant-1", "tenant-2"))
    seen: list[str] = []
    url: str | None = "/console/requests"
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200
        ids = re.findall(r'<a href="/console/requests/([^"?]+)">', page.text)
        assert 1 <= len(ids) <= 2
        seen += ids
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = None if found is None else found.group(1).replace("&amp;", "&")
    assert seen == expected
    foreign = client.get("/console/requests", params={"tenant": "tenant-0"})
    assert "No request matches." in foreign.text
    bad = client.get("/console/requests", params={"since": "yesterday"})
    assert bad.status_code == 400 and "From: expected a date and time" in bad.text
    forged = client.get("/console/requests", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert forged.status_code == 400


@pytest.mark.parametrize(
    ("who", "home"), [("auditor0", "/console/requests"), ("operator", "/console/steps")]
)
def test_console_lands_on_the_roles_first_page(world: World, who: str, home: str) -> None:
    assert world.client.get("/console", follow_redirects=False).headers["location"] == (
        "/console/sign-in"
    )
    client = _client(world, who)
    assert client.get("/console", follow_redirects=False).headers["location"] == home


def test_revoking_the_key_ends_its_sessions(world: World) -> None:
    client = _client(world, "auditor0")
    assert client.get("/console/requests").status_code == 200
    with world.engine.begin() as conn:
        revoke_key(conn, world.key_ids["auditor0"])
    response = client.get("/console/requests", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console/sign-in"


def test_trail_page_escapes_content_and_says_when_it_fails_or_is_erased(
    world: World, admin_connection: Callable[[], AbstractContextManager[Connection]]
) -> None:
    """The hostile prompt is text; a tampered payload turns the verdict to failed; payloads
    deleted with no erasure record show as an integrity problem under a failed verdict, not as
    erased (C16), and their tokens are not guessed."""
    client = _client(world, "admin")
    page = client.get("/console/requests/req-00000")
    assert 'data-status="anchored"' in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert HOSTILE_PROMPT not in page.text
    victim = world.request_of("tenant-1")
    with admin_connection() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        rows = conn.execute(
            select(records.c.seq).where(
                records.c.log_id == log_id,
                records.c.request_id == victim,
                records.c.kind == "tokens",
            )
        ).all()
        first = rows[0].seq
        tampered = orjson.dumps({"drafts": [], "token_ids": [0]})
        conn.execute(
            update(payloads)
            .where(payloads.c.log_id == log_id, payloads.c.seq == first)
            .values(data=tampered)
        )
    failed = client.get(f"/console/requests/{victim}")
    assert failed.status_code == 200 and 'data-status="failed"' in failed.text
    assert "verdict-failed" in failed.text
    assert "anchored" not in failed.text.lower().split("</h2>")[1]
    other = world.request_of("tenant-2")
    with admin_connection() as conn:
        seqs = conn.execute(
            select(records.c.seq).where(records.c.log_id == log_id, records.c.request_id == other)
        ).all()
        conn.execute(
            delete(payloads).where(
                payloads.c.log_id == log_id, payloads.c.seq.in_([r.seq for r in seqs])
            )
        )
    gone = client.get(f"/console/requests/{other}")
    assert gone.status_code == 200
    api = world.client.get(f"/v1/requests/{other}", headers=world.headers("admin")).json()
    assert api["verification"]["status"] == "failed"
    assert 'data-status="failed"' in gone.text
    # Payloads deleted with no erasure record: an integrity problem, never shown as erased.
    assert 'id="prompt-content" data-content="integrity"' in gone.text
    assert "Integrity problem, not an erasure" in gone.text and "Erased</strong>" not in gone.text
    num_tokens = len(world.truth[other].token_ids)
    assert gone.text.count('<span class="integrity">missing</span>') == num_tokens
    assert '<span class="erased">' not in gone.text


def test_access_log_page_shows_who_read_what_newest_first(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C18: the admin's access log page lists the stored access records, newest first, in pages;
    each row names the key (id and label), route, request ids, status and reason."""
    from auditlog.api.console import routes_admin

    monkeypatch.setattr(routes_admin, "ACCESS_PAGE_SIZE", 3)
    own = world.request_of("tenant-0")
    world.client.get(f"/v1/requests/{own}", headers=world.headers("auditor0", "case 9"))
    admin = _client(world, "admin")
    for _ in range(3):
        admin.get("/console/steps")
    seen: list[int] = []
    url: str | None = "/console/access"
    while url is not None:
        page = admin.get(url)
        assert page.status_code == 200
        seen += [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", page.text)]
        found = re.search(r'<a href="(/console/access\?before=\d+)">Older records</a>', page.text)
        url = None if found is None else found.group(1)
    # Each page view is recorded after its read: the last page saw every earlier record.
    assert seen[:3] == [4, 3, 2] and seen == sorted(seen, reverse=True) and seen[-1] == 0
    first = admin.get("/console/access?before=1").text
    assert world.key_ids["auditor0"] in first and "(auditor0)" in first
    assert "GET /v1/requests/{request_id:path}" in first and own in first and "case 9" in first
    assert _access(world)[-1]["endpoint"] == "GET /console/access"


def test_browser_tests_skip_only_outside_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without Chromium the browser tests are skipped with the reason, but under CI=true that
    is a failure: CI never passes without them."""
    import console_server

    monkeypatch.setattr(console_server, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        console_server.chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, so this is a failure"):
        console_server.chromium_or_skip()


def test_an_open_request_shows_pending(world: World, tmp_path: Path) -> None:
    """A request with no ``request.end`` yet is shown as pending, as the API says, never as
    anchored; its tokens so far are shown."""
    synthetic = SyntheticEngine(seed=5, tenants=1, prefix="open")
    started = synthetic.start(n_tokens=30)
    with AuditRecorder.open(
        world.db_url,
        origin=ENGINE_ORIGIN,
        signers=[world.engine_signer],
        spool_path=tmp_path / "open.jsonl",
    ) as recorder:
        recorder.record(started)
        step = synthetic.step()
        assert step is not None
        recorder.record(step)
    client = _client(world, "admin")
    page = client.get(f"/console/requests/{started.request_id}")
    api = world.client.get(f"/v1/requests/{started.request_id}", headers=world.headers("admin"))
    assert api.json()["verification"]["status"] == "pending"
    assert 'data-status="pending"' in page.text and "verdict-pending" in page.text
    assert api.json()["verification"]["message"] in page.text
    assert "still open" in page.text
    assert page.text.count('<details class="tok') == len(
        synthetic.truth[started.request_id].token_ids
    )
