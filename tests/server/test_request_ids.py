"""Request ids are namespaced per tenant and reserved only for valid requests.

Cites: C19 (tenant isolation: no existence oracle across tenants), C1 (one chain per request id).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from server_fixtures import ACME_KEY, GLOBEX_KEY, MODEL, LiveServer, read_engine

from auditlog.gateway.openai_errors import ApiError
from auditlog.gateway.request_ids import RequestIds, trail_request_id
from auditlog.trails import read_trail

pytestmark = pytest.mark.engine

ACME = {"authorization": f"Bearer {ACME_KEY}"}
GLOBEX = {"authorization": f"Bearer {GLOBEX_KEY}"}
BODY = {"model": MODEL, "prompt": "Customer: hi\nAgent:", "max_tokens": 2}


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=60) as c:
        yield c


def _post(http: httpx.Client, auth: dict[str, str], rid: str, **body: Any) -> httpx.Response:
    headers: dict[str, str | bytes] = {**auth, "x-request-id": rid.encode("utf-8")}
    return http.post("/v1/completions", json={**BODY, **body}, headers=headers)


def _tenant_of(live: LiveServer, trail_id: str) -> str | None:
    live.wait_closed(trail_id)
    engine = read_engine(live.db_url)
    try:
        with engine.connect() as conn:
            return read_trail(conn, live.origin, trail_id).tenant
    finally:
        engine.dispose()


def test_same_caller_id_in_two_tenants_reveals_nothing(
    live_server: LiveServer, http: httpx.Client
) -> None:
    """C19: tenant B using tenant A's id gets 200 (no 409 oracle), in its own namespace."""
    a = _post(http, ACME, "shared-1")
    assert a.status_code == 200, a.text
    b = _post(http, GLOBEX, "shared-1")
    assert b.status_code == 200, b.text
    assert a.headers["x-request-id"] == b.headers["x-request-id"] == "shared-1"
    assert a.headers["x-auditlog-request-id"] == "acme-bank/shared-1"
    assert b.headers["x-auditlog-request-id"] == "globex-health/shared-1"
    assert _tenant_of(live_server, "acme-bank/shared-1") == "acme-bank"
    assert _tenant_of(live_server, "globex-health/shared-1") == "globex-health"
    # a collision inside the caller's own tenant is still refused, naming only its own id
    again = _post(http, GLOBEX, "shared-1")
    assert again.status_code == 409
    err = again.json()["error"]
    assert err["code"] == "duplicate_request_id" and "acme" not in err["message"]
    assert "x-auditlog-request-id" not in again.headers


@pytest.mark.parametrize(
    "forged",
    ["acme-bank/shared-2", "/shared-2", "a/b", "..%2Fx", "x\u2215y", "-leading", "x" * 129],
)
def test_caller_id_cannot_reach_another_namespace(http: httpx.Client, forged: str) -> None:
    """C19: no caller id can contain the namespace separator or otherwise forge a trail id."""
    r = _post(http, GLOBEX, forged)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request_id"


@pytest.mark.parametrize(
    ("bad", "status"),
    [({"model": "gpt-unknown"}, 404), ({"temperature": "hot"}, 400), ({"n": 2}, 400)],
)
def test_refused_request_does_not_burn_its_id(
    live_server: LiveServer, http: httpx.Client, bad: dict[str, Any], status: int
) -> None:
    """A request refused before generation leaves its id free: the corrected retry succeeds."""
    rid = f"retry-{status}-{next(iter(bad))}"
    r = _post(http, ACME, rid, **bad)
    assert r.status_code == status, r.text
    assert "x-auditlog-request-id" not in r.headers
    retry = _post(http, ACME, rid)
    assert retry.status_code == 200, retry.text
    assert retry.headers["x-auditlog-request-id"] == f"acme-bank/{rid}"
    assert _tenant_of(live_server, f"acme-bank/{rid}") == "acme-bank"


def test_used_id_is_found_in_the_log_after_a_restart(
    live_server: LiveServer, http: httpx.Client
) -> None:
    """A fresh RequestIds (as after a restart) finds the tenant's used id in the log, and only
    in that tenant's namespace."""
    assert _post(http, ACME, "persisted-1").status_code == 200
    live_server.wait_closed("acme-bank/persisted-1")
    engine = read_engine(live_server.db_url)
    try:
        ids = RequestIds(engine=engine, origin=live_server.origin)

        async def reserve(tenant: str) -> None:
            await ids.reserve(ids.name(tenant, "persisted-1"))

        with pytest.raises(ApiError, match="already used by your tenant") as info:
            anyio.run(reserve, "acme-bank")
        assert info.value.status == 409
        anyio.run(reserve, "globex-health")  # another namespace: free
    finally:
        engine.dispose()


def test_trail_id_construction() -> None:
    assert trail_request_id("acme-bank", "abc.1:2_3") == "acme-bank/abc.1:2_3"
    with pytest.raises(ApiError, match="invalid x-request-id"):
        trail_request_id("acme-bank", "x/y")
    with pytest.raises(ApiError, match="too long"):
        trail_request_id("t" * 200, "a" * 100)
    generated = RequestIds(engine=None, origin="o").name("acme-bank", None)
    assert not generated.chosen and generated.caller_id.startswith("req-")
    assert generated.trail_id == f"acme-bank/{generated.caller_id}"
