"""C18: every read through the API is an ``access`` record, committed before the answer leaves,
in the API's own log, which verifies like any other log; no record, no answer (503)."""

from __future__ import annotations

from typing import cast

import orjson
from api_helpers import API_ORIGIN, ENGINE_ORIGIN, HOSTILE_PROMPT, World
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from auditlog.ledger import parse_header
from auditlog.store.db import normalize_url
from auditlog.store.ledger_store import get_log_id, iter_records, latest_checkpoint
from auditlog.store.schema import records
from auditlog.verifier import verify_database


def _access_headers(world: World) -> list[dict[str, object]]:
    with world.engine.connect() as conn:
        log_id = get_log_id(conn, API_ORIGIN)
        return [parse_header(r.body) for r in iter_records(conn, log_id)]


def test_every_read_is_an_access_record_and_the_access_log_verifies(world: World) -> None:
    """C18: who (key id, role), when, what (route, parameters, request ids), why (reason)."""
    own = world.request_of("tenant-0")
    foreign = world.request_of("tenant-1")
    reads = [
        ("auditor0", f"/v1/requests/{own}", {}, "case 17 review", 200, [own]),
        ("auditor0", f"/v1/requests/{foreign}", {}, None, 404, [foreign]),
        ("auditor0", f"/v1/requests/{own}/bundle", {}, "export for counsel", 200, [own]),
        ("auditor0", f"/v1/requests/{own}/proofs", {}, None, 200, [own]),
        ("auditor0", f"/v1/requests/{own}/transcript.html", {}, None, 200, [own]),
        ("operator", "/v1/steps", {"limit": "3"}, None, 200, []),
        ("operator", "/v1/logs/checkpoint", {"log": ENGINE_ORIGIN}, None, 200, []),
        ("admin", "/v1/logs", {}, None, 200, []),
        ("admin", "/v1/logs/keys", {"log": ENGINE_ORIGIN}, None, 200, []),
        ("admin", "/v1/requests", {"cursor": "bm90LWEtY3Vyc29y"}, None, 400, []),
    ]
    for who, path, params, reason, status, _ids in reads:
        response = world.client.get(path, params=params, headers=world.headers(who, reason))
        assert response.status_code == status, path
    search = world.client.get("/v1/requests", headers=world.headers("auditor0"))
    listed = [item["request_id"] for item in search.json()["items"]]

    headers = _access_headers(world)
    assert len(headers) == len(reads) + 1
    for header, (who, path, params, reason, status, ids) in zip(headers, reads, strict=False):
        assert header["kind"] == "access"
        assert header["principal"] == world.key_ids[who]
        assert header["role"] == ("admin" if who == "admin" else who.rstrip("0123456789"))
        assert header["endpoint"].startswith("GET /v1/")
        assert header["endpoint"].split("/")[2] == path.split("/")[2]
        assert header["params"] == params
        assert header["reason"] == reason
        assert header["status"] == status
        assert header["request_ids"] == ids
    assert headers[0]["endpoint"] == "GET /v1/requests/{request_id:path}"
    assert headers[-1]["request_ids"] == listed and listed
    # The content never enters the access log.
    assert all(HOSTILE_PROMPT not in orjson.dumps(h).decode() for h in headers)

    report = verify_database(world.db_url, keys=[world.api_signer.verifier_key], origin=API_ORIGIN)
    assert report.ok, report.findings
    assert report.records == len(reads) + 1
    with world.engine.connect() as conn:
        checkpoint = latest_checkpoint(conn, get_log_id(conn, API_ORIGIN))
    assert checkpoint is not None and checkpoint.size == len(reads) + 1  # signed per read


def test_forbidden_attempts_are_recorded_failed_authentication_is_not(world: World) -> None:
    """A 403 to an authenticated principal is an audit event (C18, AU-2) and is recorded with
    its status; an unauthenticated 401 names nobody and writes nothing."""
    world.client.get("/v1/requests", headers={"Authorization": "Bearer nope"})
    with world.engine.connect() as conn:
        assert conn.execute(select(records.c.seq).where(records.c.kind == "access")).all() == []
    assert world.client.get("/v1/steps", headers=world.headers("auditor0")).status_code == 403
    with world.engine.connect() as conn:
        bodies = conn.execute(select(records.c.body).where(records.c.kind == "access")).all()
    assert len(bodies) == 1
    header = orjson.loads(bodies[0][0])
    assert header["status"] == 403 and "steps" in header["endpoint"]


def _block_access_inserts(db_url: str, block: bool) -> None:
    """Make the database refuse access records (as a full disk or a lost grant would)."""
    admin = create_engine(normalize_url(db_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.dialect.name == "sqlite":
            if block:
                conn.exec_driver_sql(
                    "CREATE TRIGGER block_access BEFORE INSERT ON records "
                    "WHEN NEW.kind = 'access' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            else:
                conn.exec_driver_sql("DROP TRIGGER block_access")
        elif block:
            conn.exec_driver_sql(
                "CREATE FUNCTION block_access() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER block_access BEFORE INSERT ON records FOR EACH ROW "
                "WHEN (NEW.kind = 'access') EXECUTE FUNCTION block_access()"
            )
        else:
            conn.exec_driver_sql("DROP TRIGGER block_access ON records")
            conn.exec_driver_sql("DROP FUNCTION block_access()")
    admin.dispose()


def test_no_access_record_no_answer(world: World) -> None:
    """C18: if the access record cannot be committed the API answers 503 and returns nothing;
    once the database accepts writes again the access log resumes without a hole."""
    own = world.request_of("tenant-0")
    assert (
        world.client.get(f"/v1/requests/{own}", headers=world.headers("auditor0")).status_code
        == 200
    )
    _block_access_inserts(world.db_url, block=True)
    for path in (f"/v1/requests/{own}", f"/v1/requests/{own}/bundle", "/v1/requests", "/v1/logs"):
        response = world.client.get(path, headers=world.headers("auditor0"))
        assert response.status_code == 503, path
        assert response.json() == {
            "detail": "the access record of this read could not be written; nothing is returned"
        }
        assert own not in response.text
    # A 404 is an answer too: it is not given without its access record either.
    missing = world.client.get("/v1/requests/nope", headers=world.headers("auditor0"))
    assert missing.status_code == 503
    _block_access_inserts(world.db_url, block=False)
    assert (
        world.client.get(f"/v1/requests/{own}", headers=world.headers("auditor0")).status_code
        == 200
    )
    assert [h["seq"] for h in _access_headers(world)] == [0, 1]
    report = verify_database(world.db_url, keys=[world.api_signer.verifier_key], origin=API_ORIGIN)
    assert report.ok, report.findings


def test_unknown_query_parameters_are_capped_in_access_records(world: World) -> None:
    """C18 (issue 11): a 50 KB unknown parameter, or hundreds of them, cannot bloat a signed
    record kept for years: values are cut (length and SHA-256 kept), their number bounded."""
    huge = "x" * 50_000  # the client refuses a query over 64 KiB
    many = {f"p{i:03d}": "v" for i in range(100)}
    for params in ({"junk": huge}, many):
        response = world.client.get("/v1/logs", params=params, headers=world.headers("admin"))
        assert response.status_code == 200
    first, second = _access_headers(world)[-2:]
    junk = cast(dict[str, str], first["params"])
    capped = cast(dict[str, str], second["params"])
    assert len(orjson.dumps(first)) < 2_000 and len(orjson.dumps(second)) < 4_000
    assert junk["junk"].startswith("x" * 256 + "…[50000 characters, sha256 ")
    assert len(capped) == 33 and capped["…"] == "68 more parameters not recorded"
    report = verify_database(world.db_url, keys=[world.api_signer.verifier_key], origin=API_ORIGIN)
    assert report.ok, report.findings


def test_parameters_that_do_not_validate_are_access_logged(world: World) -> None:
    """C18 (issue 9): a 422 to an authenticated caller (parameters FastAPI refuses before any
    handler runs) is an answer like any other and is recorded with its status and parameters;
    without a valid key it is a 401 and nothing is written."""
    admin = world.headers("admin")
    assert world.client.get("/v1/logs", headers=admin).status_code == 200  # the log exists
    before = len(_access_headers(world))
    for path, params in (("/v1/requests", {"limit": "abc"}), ("/v1/logs/consistency", {})):
        assert world.client.get(path, params=params, headers=admin).status_code == 422
    anonymous = world.client.get("/v1/requests", params={"limit": "abc"})
    assert anonymous.status_code == 401
    written = _access_headers(world)[before:]
    assert [(h["endpoint"], h["status"]) for h in written] == [
        ("GET /v1/requests", 422),
        ("GET /v1/logs/consistency", 422),
    ]
    assert written[0]["params"] == {"limit": "abc"}
    report = verify_database(world.db_url, keys=[world.api_signer.verifier_key], origin=API_ORIGIN)
    assert report.ok, report.findings
