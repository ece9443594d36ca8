"""``auditlog.trails.read_trail`` (the OpenTelemetry exporter's and the demo's reader) finds an
erasure the way the auditor API does (C16): by an erasure record proven under a trusted
administrative key, in the log named like that key even when the database administrator edited
every unsigned ``kind`` cell of it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from api_helpers import ADMIN_ORIGIN, ENGINE_ORIGIN, World, fixed_signer
from sqlalchemy import Connection

from auditlog.protect import ErasureOrder, erase
from auditlog.store.ledger_store import get_log_id
from auditlog.store.schema import records
from auditlog.trails import Content, read_trail

AdminConn = Callable[[], AbstractContextManager[Connection]]


def _erase_and_edit_kinds(world: World, admin_connection: AdminConn) -> str:
    victim = world.request_of("tenant-0")
    order = ErasureOrder(by="dpo", reason="r17", legal_basis="Art. 17", request_ids=[victim])
    erase(world.engine, order, signer=fixed_signer(ADMIN_ORIGIN))
    with admin_connection() as conn:  # the attacker: no row of the log looks administrative
        log_id = get_log_id(conn, ADMIN_ORIGIN)
        conn.execute(records.update().where(records.c.log_id == log_id).values(kind="tokens"))
    return victim


def test_read_trail_proves_an_erasure_by_the_admin_keys_name(
    sealed_world: World, admin_connection: AdminConn
) -> None:
    world = sealed_world
    victim = _erase_and_edit_kinds(world, admin_connection)
    admin = fixed_signer(ADMIN_ORIGIN).verifier
    trusted = [world.engine_signer.verifier]
    with world.engine.connect() as conn:
        shown = read_trail(conn, ENGINE_ORIGIN, victim, trusted=trusted, admin=[admin])
        blind = read_trail(conn, ENGINE_ORIGIN, victim, trusted=trusted)
    assert shown.is_trusted
    assert shown.content is Content.ERASED
    assert shown.erasure is not None and shown.erasure.log == ADMIN_ORIGIN
    assert shown.prompt_text is None and shown.token_ids == [None] * len(shown.token_ids)
    # Without the administrative key the same reader cannot prove the erasure: it says so and
    # never shows the request as erased, nor any content.
    assert blind.content is not Content.ERASED and blind.erasure is None
    assert blind.prompt_text is None
    assert "erased (record" not in blind.content_note
