"""Readers under attack (C15, C16, C19): database edits by the writer role (INSERT only) or the
database administrator (anything, without the signing keys) after which a reader must not show
what the verifier did not prove, on SQLite and PostgreSQL.

Holds and erasures are narrowed to an auditor's tenants by the tenant of each request they name
(``auditlog.protect.listing``). That tenant must be the one the request's signed, covered
``request.start`` says, never the unsigned ``records.tenant`` column nor a row no checkpoint
covers: otherwise one edit moves an erasure or a hold out of its tenant's view and into
another's.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from api_helpers import ADMIN_ORIGIN, ENGINE_ORIGIN, World, fixed_signer, insert_record_row
from console_helpers import sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text

from auditlog.ledger import RecordKind, build_record, parse_header
from auditlog.ledger.records import BASE_FIELDS
from auditlog.protect import ErasureOrder, HoldScope, erase, place_hold
from auditlog.store.ledger_store import get_log_id, load_log_state
from auditlog.store.schema import records
from auditlog.store.trail_reads import MAX_CHECKPOINTS_TRIED
from auditlog.verifier import verify_database

AdminConn = Callable[[], AbstractContextManager[Connection]]
VICTIM_TENANT, OTHER_TENANT = "tenant-0", "tenant-1"
VICTIM_AUDITOR, OTHER_AUDITOR = "auditor0", "auditor12"
SIDE_ORIGIN = "test.example/side"


def _erase(world: World, victim: str) -> None:
    order = ErasureOrder(by="dpo", reason="r17", legal_basis="Art. 17", request_ids=[victim])
    erase(world.engine, order, signer=fixed_signer(ADMIN_ORIGIN))


def _hold(world: World, victim: str) -> None:
    place_hold(
        world.engine,
        HoldScope(request_id=victim),
        by="counsel",
        reason="litigation",
        signer=fixed_signer(ADMIN_ORIGIN),
    )


def _erased_ids(world: World, who: str) -> list[str]:
    response = world.client.get("/v1/erasures", headers=world.headers(who))
    assert response.status_code == 200, response.text
    return [r["request_id"] for e in response.json()["items"] for r in e["requests"]]


def _held_ids(world: World, who: str) -> list[str]:
    response = world.client.get("/v1/holds", headers=world.headers(who))
    assert response.status_code == 200, response.text
    return [h["scope"]["request_id"] for h in response.json()["items"]]


def _start_row(conn: Connection, victim: str) -> Any:
    log_id = get_log_id(conn, ENGINE_ORIGIN)
    return conn.execute(
        select(records.c.seq, records.c.body, records.c.ts).where(
            records.c.log_id == log_id, records.c.request_id == victim, records.c.req_seq == 0
        )
    ).one()


def _retag_column(admin_connection: AdminConn, victim: str) -> None:
    """The administrator edits the unsigned ``records.tenant`` copy of the victim's start."""
    with admin_connection() as conn:
        conn.execute(
            records.update()
            .where(
                records.c.log_id == get_log_id(conn, ENGINE_ORIGIN),
                records.c.request_id == victim,
            )
            .values(tenant=OTHER_TENANT)
        )


def _forged_start(conn: Connection, origin: str, victim: str, seq: int) -> dict[str, Any]:
    """A well-formed ``request.start`` of ``victim`` in ``origin`` at ``seq``, of the other
    tenant (header and column)."""
    row = _start_row(conn, victim)
    header = parse_header(bytes(row.body))
    fields = {k: v for k, v in header.items() if k not in BASE_FIELDS}
    fields["tenant"] = OTHER_TENANT
    record = build_record(
        log=origin,
        seq=seq,
        kind=RecordKind.REQUEST_START,
        request_id=victim,
        req_seq=0,
        ts=row.ts,
        prev="0" * 64,
        payload=None,
        fields=fields,
    )
    return {
        "seq": seq,
        "kind": RecordKind.REQUEST_START.value,
        "request_id": victim,
        "tenant": OTHER_TENANT,
        "ts": row.ts,
        "leaf": record.leaf,
        "body": record.body,
    }


def _insert(conn: Connection, log_id: int, row: dict[str, Any]) -> None:
    insert_record_row(conn, log_id, req_seq=0, **row)


def _claim_in_own_log(admin_connection: AdminConn, victim: str) -> None:
    """The writer (INSERT only) adds a log of its own holding a start of the victim's id."""
    with admin_connection() as conn:
        conn.execute(text("INSERT INTO logs (origin, created) VALUES (:o, 1)"), {"o": SIDE_ORIGIN})
        _insert(conn, get_log_id(conn, SIDE_ORIGIN), _forged_start(conn, SIDE_ORIGIN, victim, 0))


def _claim_past_checkpoint(admin_connection: AdminConn, victim: str) -> None:
    """The writer (INSERT only) appends a second start of the victim's id to the engine's log,
    past its signed checkpoint."""
    with admin_connection() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        size = load_log_state(conn, log_id).size
        _insert(conn, log_id, _forged_start(conn, ENGINE_ORIGIN, victim, size + 1_000))


def _rewrite_start(admin_connection: AdminConn, victim: str) -> None:
    """The administrator rewrites the victim's start in place: header (tenant), leaf, column."""
    with admin_connection() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        seq = _start_row(conn, victim).seq
        forged = _forged_start(conn, ENGINE_ORIGIN, victim, seq)
        conn.execute(
            records.update()
            .where(records.c.log_id == log_id, records.c.seq == seq)
            .values(body=forged["body"], leaf=forged["leaf"], tenant=OTHER_TENANT)
        )


ATTACKS = {
    "column": _retag_column,
    "header": _rewrite_start,
    "own-log": _claim_in_own_log,
    "past-checkpoint": _claim_past_checkpoint,
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_erasure_listing_follows_the_signed_tenant(
    sealed_world: World, admin_connection: AdminConn, attack: Callable[[AdminConn, str], None]
) -> None:
    """C16, C19, attacker (administrator editing ``records.tenant``, or rewriting the start's
    header, leaf and column; writer inserting a start of the same request id in a log of its
    own or past the engine's checkpoint): the erasure of a tenant-0 request is never listed for
    another tenant's auditor, and stays listed for tenant-0's unless its start was rewritten
    (then it proves no tenant, and only an unscoped reader sees the entry)."""
    world = sealed_world
    victim = world.request_of(VICTIM_TENANT)
    _erase(world, victim)
    assert victim in _erased_ids(world, VICTIM_AUDITOR)
    assert victim not in _erased_ids(world, OTHER_AUDITOR)
    attack(admin_connection, victim)
    assert victim not in _erased_ids(world, OTHER_AUDITOR)
    # a rewritten start proves no tenant: the entry is then nobody's but an unscoped reader's
    assert (victim in _erased_ids(world, VICTIM_AUDITOR)) is (attack is not _rewrite_start)
    assert victim in _erased_ids(world, "admin")


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_hold_listing_follows_the_signed_tenant(
    sealed_world: World, admin_connection: AdminConn, attack: Callable[[AdminConn, str], None]
) -> None:
    """C15, C19, attacker as above: a hold on a tenant-0 request stays listed for tenant-0's
    auditor and is never listed for another tenant's."""
    world = sealed_world
    victim = world.request_of(VICTIM_TENANT)
    _hold(world, victim)
    assert victim in _held_ids(world, VICTIM_AUDITOR)
    assert victim not in _held_ids(world, OTHER_AUDITOR)
    attack(admin_connection, victim)
    assert victim not in _held_ids(world, OTHER_AUDITOR)
    assert (victim in _held_ids(world, VICTIM_AUDITOR)) is (attack is not _rewrite_start)
    assert victim in _held_ids(world, "admin")


def _keys(world: World) -> list[str]:
    admin = fixed_signer(ADMIN_ORIGIN).verifier_key
    return [world.engine_signer.verifier_key, world.api_signer.verifier_key, admin]


def _trail(world: World, request_id: str) -> dict[str, Any]:
    response = world.client.get(f"/v1/requests/{request_id}", headers=world.headers("admin"))
    assert response.status_code == 200, response.text
    trail: dict[str, Any] = response.json()
    return trail


def _admin_tail(admin_connection: AdminConn) -> None:
    """The writer (INSERT only) appends a row past the administrative log's checkpoint."""
    with admin_connection() as conn:
        log_id = get_log_id(conn, ADMIN_ORIGIN)
        size = load_log_state(conn, log_id).size
        row = conn.execute(
            select(records.c.ts, records.c.leaf, records.c.body).where(
                records.c.log_id == log_id, records.c.seq == 0
            )
        ).one()
        insert_record_row(
            conn, log_id, seq=size, kind="admin", ts=row.ts, leaf=row.leaf, body=row.body
        )


def _admin_record_edited(admin_connection: AdminConn) -> None:
    """The administrator rewrites a byte of a covered record of the administrative log."""
    with admin_connection() as conn:
        log_id = get_log_id(conn, ADMIN_ORIGIN)
        where = (records.c.log_id == log_id, records.c.seq == 0)
        body = bytes(conn.execute(select(records.c.body).where(*where)).scalar_one())
        conn.execute(records.update().where(*where).values(body=body.replace(b"dpo", b"dpa")))


def _admin_checkpoint_buried(admin_connection: AdminConn) -> None:
    """The writer (INSERT only) buries the administrative log's signed checkpoint under more
    checkpoint rows than a reader tries (larger sizes, notes nobody signed)."""
    with admin_connection() as conn:
        log_id = get_log_id(conn, ADMIN_ORIGIN)
        size = load_log_state(conn, log_id).size
        for extra in range(1, MAX_CHECKPOINTS_TRIED + 2):
            conn.execute(
                text(
                    "INSERT INTO checkpoints (log_id, size, root, note, ts)"
                    " VALUES (:log_id, :size, :root, :note, 1)"
                ),
                {"log_id": log_id, "size": size + extra, "root": b"\x00" * 32, "note": "x"},
            )


def _admin_kinds_edited(admin_connection: AdminConn) -> None:
    """The administrator edits every unsigned ``kind`` cell of the administrative log."""
    with admin_connection() as conn:
        log_id = get_log_id(conn, ADMIN_ORIGIN)
        conn.execute(records.update().where(records.c.log_id == log_id).values(kind="tokens"))


AROUND = {
    "alone": None,
    "admin-kinds-edited": _admin_kinds_edited,
    "admin-tail": _admin_tail,
    "admin-edited": _admin_record_edited,
    "admin-checkpoint-buried": _admin_checkpoint_buried,
}


@pytest.mark.parametrize("around", AROUND.values(), ids=AROUND.keys())
def test_data_key_put_back_after_erasure_is_not_shown(
    sealed_world: World,
    admin_connection: AdminConn,
    around: Callable[[AdminConn], None] | None,
) -> None:
    """C16, attacker (the writer, who wrote the wrapped data key row and may INSERT it again, or
    the administrator who kept a copy): after an audited erasure the row is inserted again, so
    that the API's KEK would open the erased content; alone, with a row the writer appended
    past the administrative log's checkpoint, or with a covered administrative record edited
    by the administrator (so that its log proves nothing). ``auditlog verify`` fails the log;
    the API shows no plaintext, content "erasure-incomplete" and a failed verdict, the console
    an integrity problem."""
    world = sealed_world
    victim = world.request_of(VICTIM_TENANT)
    before = _trail(world, victim)
    assert before["content"] == "decrypted" and before["prompt_text"]
    with admin_connection() as conn:
        kept = (
            conn.execute(text("SELECT * FROM data_keys WHERE request_id = :r"), {"r": victim})
            .one()
            ._asdict()
        )
    _erase(world, victim)
    assert _trail(world, victim)["content"] == "erased"
    with admin_connection() as conn:
        columns = ", ".join(kept)
        values = ", ".join(f":{c}" for c in kept)
        conn.execute(text(f"INSERT INTO data_keys ({columns}) VALUES ({values})"), kept)
    if around is not None:
        around(admin_connection)
    trail = _trail(world, victim)
    assert trail["prompt_text"] is None
    assert all(t["token_id"] is None for t in trail["tokens"])
    assert trail["verification"]["status"] == "failed"
    assert trail["content"] == "erasure-incomplete"
    console = TestClient(world.app)
    assert sign_in(console, world.tokens["admin"]).status_code == 303
    page = console.get(f"/console/requests/{victim}").text
    assert 'id="prompt-content" data-content="integrity"' in page
    assert html.escape(before["prompt_text"]) not in page
    assert "erasure.incomplete" in trail["verification"]["message"]
    report = verify_database(world.db_url, keys=_keys(world))
    assert not report.ok
    if around is None:
        assert "erasure.incomplete" in {f.code.value for f in report.findings}


def test_erasure_listing_survives_every_kind_cell_edited(
    sealed_world: World, admin_connection: AdminConn
) -> None:
    """C16, attacker (database administrator): every unsigned ``kind`` cell of the
    administrative log edited, so that no row looks administrative. The erasure is still listed
    (the API reads the log named like its administrative key) and the erased trail still says
    erased, with its record."""
    world = sealed_world
    victim = world.request_of(VICTIM_TENANT)
    _erase(world, victim)
    _admin_kinds_edited(admin_connection)
    assert victim in _erased_ids(world, "admin")
    assert victim in _erased_ids(world, VICTIM_AUDITOR)
    trail = _trail(world, victim)
    assert trail["content"] == "erased" and trail["erasure"]["log"] == ADMIN_ORIGIN


def _listed(world: World, who: str) -> list[str]:
    response = world.client.get("/v1/requests?limit=200", headers=world.headers(who))
    assert response.status_code == 200, response.text
    return [item["request_id"] for item in response.json()["items"]]


def test_request_listing_follows_the_signed_tenant(
    sealed_world: World, admin_connection: AdminConn
) -> None:
    """C19, attacker (database administrator editing the unsigned ``records.tenant`` column of a
    tenant-0 request's records): another tenant's auditor neither lists the request nor reads
    its trail (the listing checks the signed header's tenant too, as the trail does)."""
    world = sealed_world
    victim = world.request_of(VICTIM_TENANT)
    assert victim in _listed(world, VICTIM_AUDITOR) and victim not in _listed(world, OTHER_AUDITOR)
    _retag_column(admin_connection, victim)
    assert victim not in _listed(world, OTHER_AUDITOR)
    response = world.client.get(f"/v1/requests/{victim}", headers=world.headers(OTHER_AUDITOR))
    assert response.status_code == 404


def test_second_unproven_erasure_record_changes_nothing_shown(
    sealed_world: World, admin_connection: AdminConn
) -> None:
    """C16, attacker (writer): after a real erasure, a second well-formed ``erasure`` record
    naming the same request with another reason is appended past the administrative log's
    checkpoint. The trail still names the proven record (its seq and reason), the listing shows
    the proven entry only."""
    world = sealed_world
    victim = world.request_of(VICTIM_TENANT)
    _erase(world, victim)
    proven = _trail(world, victim)["erasure"]
    with admin_connection() as conn:
        log_id = get_log_id(conn, ADMIN_ORIGIN)
        size = load_log_state(conn, log_id).size
        record = build_record(
            log=ADMIN_ORIGIN,
            seq=size,
            kind=RecordKind.ERASURE,
            request_id=None,
            req_seq=None,
            ts=proven["ts"] + 1,
            prev=None,
            payload=None,
            fields={
                "principal": "mallory",
                "reason": "forged",
                "legal_basis": "none",
                "erased": [{"request_id": victim, "log": ENGINE_ORIGIN}],
            },
        )
        insert_record_row(
            conn,
            log_id,
            seq=size,
            kind="erasure",
            ts=record.ts,
            leaf=record.leaf,
            body=record.body,
        )
    trail = _trail(world, victim)
    assert trail["content"] == "erased" and trail["erasure"] == proven
    assert trail["erasure"]["reason"] == "r17"
    response = world.client.get("/v1/erasures", headers=world.headers("admin"))
    assert response.status_code == 200, response.text
    assert [e["reason"] for e in response.json()["items"]] == ["r17"]
