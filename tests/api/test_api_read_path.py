"""One bounded read path (issue 9, findings 2, 3 and 10), played by an attacker with INSERT rights.

Every reader (API trail, proofs, bundle, HTML, search, ``auditlog.trails.read_trail``) reads only
through ``auditlog.store.trail_reads``: records inside ``[0, size)`` of the log's newest checkpoint
signed by a trusted key. Rows at ``seq = 2^63-1``, at a negative ``seq`` or after the newest
checkpoint are never shown; a second log claiming a request id makes readers refuse (409) instead
of choosing; trails named ``tenant/id`` (``auditlog serve``) are served; every answer, 404s of
unknown paths included, is access-logged (C18, C19). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from api_helpers import API_ORIGIN, ENGINE_ORIGIN, World, build_world
from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError

from auditlog.api import ApiSettings, create_app
from auditlog.ledger import (
    ZERO_HASH,
    Checkpoint,
    MerkleFrontier,
    RecordKind,
    Signer,
    build_record,
    payload_bytes,
    sign_checkpoint,
)
from auditlog.ledger.records import Record
from auditlog.store import grant_writer
from auditlog.store.ledger_store import get_log_id, iter_records
from auditlog.store.schema import checkpoints, logs, payloads, records, signing_keys
from auditlog.trails import read_trail

FORGED = "FORGED PROMPT: wire the funds"
MAX_SEQ = 2**63 - 1
_MODEL_REF_FIELDS = ("name", "weights_sha256", "tokenizer_sha256", "architecture")


def _forged_start(request_id: str, tenant: str, *, origin: str = ENGINE_ORIGIN) -> Record:
    return build_record(
        log=origin,
        seq=0,
        kind=RecordKind.REQUEST_START,
        request_id=request_id,
        req_seq=0,
        ts=time.time_ns(),
        prev=ZERO_HASH,
        payload=payload_bytes({"prompt_token_ids": [1], "prompt_text": FORGED}),
        fields={
            "tenant": tenant,
            "principal": "mallory",
            "client": "",
            "engine": "",
            "params": {},
            "target": dict.fromkeys(
                ("name", "weights_sha256", "tokenizer_sha256", "architecture"), ""
            ),
            "draft": None,
            "clock": "x",
        },
    )


@contextmanager
def _as_writer_role(world: World) -> Iterator[Connection]:
    """A transaction with the INSERT-only writer role's rights (PostgreSQL: ``SET LOCAL ROLE``
    to a role made by ``grant_writer``, dropped afterwards; SQLite has no roles, and only
    INSERTs are issued)."""
    if world.engine.dialect.name != "postgresql":
        with world.engine.begin() as conn:
            yield conn
        return
    role = f"attacker_{uuid.uuid4().hex[:12]}"
    with world.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} NOLOGIN")
        grant_writer(conn, role)
    try:
        with world.engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL ROLE {role}")
            yield conn
    finally:
        with world.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")


def _insert(world: World, log_id: int, seq: int, record: Record) -> None:
    """INSERT one row (the writer role's only power) at any ``seq``, with its payload."""
    with _as_writer_role(world) as conn:
        conn.execute(
            insert(records).values(
                log_id=log_id,
                seq=seq,
                kind=str(record.kind),
                request_id=record.request_id,
                req_seq=record.req_seq,
                tenant=record.tenant,
                ts=record.ts,
                leaf=record.leaf,
                body=record.body,
            )
        )
        if record.payload is not None:
            conn.execute(insert(payloads).values(log_id=log_id, seq=seq, data=record.payload))


def _engine_log_id(world: World) -> int:
    with world.engine.connect() as conn:
        return get_log_id(conn, ENGINE_ORIGIN)


def _access_statuses(world: World) -> list[tuple[str, int]]:
    with world.engine.connect() as conn:
        log_id = get_log_id(conn, API_ORIGIN)
        rows = list(iter_records(conn, log_id))
    return [(h["endpoint"], h["status"]) for h in (orjson.loads(r.body) for r in rows)]


def test_ghost_rows_outside_the_signed_range_are_never_shown(world: World) -> None:
    """Finding 2: a ghost request at seq 2^63-1 and forged tokens appended to a real trail reach
    no reader (a negative seq the schema refuses); the bundle endpoint answers 409 or 404, never
    500, and logs its access."""
    log_id = _engine_log_id(world)
    _insert(world, log_id, MAX_SEQ, _forged_start("ghost-high", "tenant-0"))
    with pytest.raises(IntegrityError):  # a negative seq: refused by the schema itself
        _insert(world, log_id, -1, _forged_start("ghost-low", "tenant-0"))
    real = world.request_of("tenant-0")
    before = world.client.get(f"/v1/requests/{real}", headers=world.headers("admin")).json()
    tail = build_record(
        log=ENGINE_ORIGIN,
        seq=0,
        kind=RecordKind.TOKENS,
        request_id=real,
        req_seq=len(before["records"]),
        ts=time.time_ns(),
        prev=before["records"][-1]["leaf"],
        payload=payload_bytes({"token_ids": [666], "drafts": []}),
        fields={"tenant": "tenant-0", "step": 9999, "n": 1, "prov": ["target"]},
    )
    _insert(world, log_id, MAX_SEQ - 1, tail)
    admin = world.headers("admin")

    listed = world.client.get("/v1/requests", params={"limit": 200}, headers=admin).json()
    ids = [item["request_id"] for item in listed["items"]]
    assert "ghost-high" not in ids and "ghost-low" not in ids
    assert sorted(ids) == sorted(world.truth)

    for ghost, status in (("ghost-high", 409), ("never-was", 404)):
        for suffix in ("", "/bundle", "/proofs", "/transcript.html"):
            r = world.client.get(f"/v1/requests/{ghost}{suffix}", headers=admin)
            assert r.status_code == status, (ghost, suffix, r.text)
            assert FORGED not in r.text

    after = world.client.get(f"/v1/requests/{real}", headers=admin).json()
    assert after["records"] == before["records"]
    assert 666 not in [t["token_id"] for t in after["tokens"]]
    assert after["verification"]["status"] == "anchored"
    assert world.client.get(f"/v1/requests/{real}/bundle", headers=admin).status_code == 200
    html = world.client.get(f"/v1/requests/{real}/transcript.html", headers=admin).text
    # the forged record by its leaf, and its step by a cell (a timestamp may hold "9999")
    assert "anchored" in html and tail.leaf.hex() not in html and "<td>9999</td>" not in html
    with world.engine.connect() as conn:
        trail = read_trail(conn, ENGINE_ORIGIN, real)
    assert [r.seq for r in trail.records] == [r["seq"] for r in before["records"]]
    statuses = _access_statuses(world)
    assert ("GET /v1/requests/{request_id:path}/bundle", 409) in statuses
    assert ("GET /v1/requests/{request_id:path}/bundle", 404) in statuses


def _forge_log(world: World, origin: str, request_id: str, tenant: str, signer: Signer) -> None:
    """A whole second log, inserted row by row: records, a checkpoint signed by the attacker's
    key, and that key registered for the log (every row an INSERT)."""
    record = _forged_start(request_id, tenant, origin=origin)
    frontier = MerkleFrontier()
    frontier.append(record.leaf)
    cp = Checkpoint(origin=origin, size=1, root=frontier.root())
    note = sign_checkpoint(cp, [signer])
    with _as_writer_role(world) as conn:
        log_id = conn.execute(
            insert(logs).values(origin=origin, created=1).returning(logs.c.id)
        ).scalar_one()
        name, key_id = signer.verifier_key.split("+")[:2]
        conn.execute(
            insert(signing_keys).values(
                log_id=log_id,
                key_name=name,
                key_id=key_id,
                verifier_key=signer.verifier_key,
                created=1,
            )
        )
        conn.execute(
            insert(checkpoints).values(log_id=log_id, size=1, root=cp.root, note=note, ts=1)
        )
    _insert(world, log_id, 0, record)


def _app_without_trusted_keys(world: World) -> Any:
    """The same store served by an API given no trusted key (one writer per access log: the
    first app hands its log over)."""
    from fastapi.testclient import TestClient

    world.app.state.auditlog.access_log.close()
    settings = ApiSettings(
        db_url=world.db_url,
        api_origin=API_ORIGIN,
        api_signing_key=world.settings.api_signing_key,
        api_trusted_keys=[],
    )
    return TestClient(create_app(settings, engine=world.engine))


def test_second_log_claiming_a_request_id(world: World) -> None:
    """Finding 3: a forged log reusing a real request id never shadows the real trail. With
    trusted keys its self-signed checkpoint bounds nothing (the real trail is served, anchored);
    with none configured both logs are covered by stored keys and readers refuse (409)."""
    real = world.request_of("tenant-1")
    mallory = Signer.generate("evil.example/log")
    _forge_log(world, "aaa.example/shadow", real, "tenant-1", mallory)
    auditor = world.headers("auditor12")
    trail = world.client.get(f"/v1/requests/{real}", headers=auditor)
    assert trail.status_code == 200
    assert trail.json()["log"] == ENGINE_ORIGIN
    assert trail.json()["verification"]["status"] == "anchored"
    assert FORGED not in trail.text
    assert world.client.get(f"/v1/requests/{real}/bundle", headers=auditor).status_code == 200

    with _app_without_trusted_keys(world) as untrusted:
        for suffix in ("", "/bundle", "/transcript.html", "/proofs"):
            r = untrusted.get(f"/v1/requests/{real}{suffix}", headers=auditor)
            assert r.status_code == 409, (suffix, r.text)
            assert "claimed by 2 logs" in r.json()["detail"]
            assert FORGED not in r.text
        other = world.request_of("tenant-2")
        r = untrusted.get(f"/v1/requests/{other}", headers=auditor).json()
        assert r["verification"]["status"] == "pending"  # stored keys only: not anchored
        assert "not anchored" in r["verification"]["message"]


def test_log_without_trusted_checkpoint_is_not_served(world: World) -> None:
    """Finding 3: a log whose only checkpoint is signed by an untrusted key serves nothing."""
    _forge_log(world, "zzz.example/unsigned", "lonely-1", "tenant-0", Signer.generate("x/y"))
    admin = world.headers("admin")
    r = world.client.get("/v1/requests/lonely-1", headers=admin)
    assert r.status_code == 409 and "not yet covered" in r.json()["detail"]
    ids = [i["request_id"] for i in world.client.get("/v1/requests", headers=admin).json()["items"]]
    assert "lonely-1" not in ids


def test_serve_trail_ids_with_a_slash_are_served_to_every_role(db_url: str, tmp_path: Any) -> None:
    """Finding 10: ids ``tenant/id`` answer the trail, bundle, proofs and HTML routes, with each
    role's proper answer (admin and the tenant's auditor 200, another tenant 404, operator 403);
    unknown paths answer 404, and every one of these answers is an access record (C18)."""
    world = build_world(db_url, tmp_path, n_requests=4, id_prefix="tenant-0/req")
    try:
        rid = world.request_of("tenant-0")
        assert "/" in rid
        for suffix in ("", "/trail", "/bundle", "/proofs", "/transcript.html"):
            for who, status in (("admin", 200), ("auditor0", 200), ("auditor12", 404)):
                r = world.client.get(f"/v1/requests/{rid}{suffix}", headers=world.headers(who))
                assert r.status_code == status, (who, suffix, r.text)
            r = world.client.get(f"/v1/requests/{rid}{suffix}", headers=world.headers("operator"))
            assert r.status_code == 403
        body = world.client.get(f"/v1/requests/{rid}", headers=world.headers("admin")).json()
        assert body["request_id"] == rid and body["verification"]["status"] == "anchored"
        for path in ("/v1/nothing-here", "/v2/requests", "/v1/logs/nothing"):
            r = world.client.get(path, headers=world.headers("auditor0"))
            assert r.status_code == 404, path
        statuses = _access_statuses(world)
        assert ("GET /{path:path}", 404) in statuses
        assert sum(1 for _, s in statuses if s == 403) == 5
        assert ("GET /v1/requests/{request_id:path}/trail", 200) in statuses
    finally:
        world.client.close()
        world.engine.dispose()
