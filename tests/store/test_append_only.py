"""C9: the database itself rejects UPDATE and DELETE on the ledger tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from store_helpers import TrailBuilder

from auditlog.ledger.cosignature import Cosignature
from auditlog.store.cosignatures import insert_cosignatures
from auditlog.store.db import normalize_url
from auditlog.store.ledger_store import StoredCheckpoint, append_batch, ensure_log
from auditlog.store.roles import grant_writer
from auditlog.store.schema import APPEND_ONLY_MESSAGE, LEDGER_TABLES
from auditlog.store.timestamps import StoredTimestamp, insert_timestamp

# For each ledger table: an UPDATE and a DELETE that each hit one stored row.
CHANGES = {
    "records": (
        "UPDATE records SET tenant = 'mallory' WHERE seq = 1",
        "DELETE FROM records WHERE seq = 3",
    ),
    "payloads": (
        "UPDATE payloads SET data = data WHERE seq = 0",
        "DELETE FROM payloads WHERE seq = 0",
    ),
    "nodes": ("UPDATE nodes SET hash = hash WHERE idx = 0", "DELETE FROM nodes"),
    "checkpoints": ("UPDATE checkpoints SET note = 'forged'", "DELETE FROM checkpoints"),
    "cosignatures": ("UPDATE cosignatures SET timestamp = 0", "DELETE FROM cosignatures"),
    "timestamps": ("UPDATE timestamps SET gen_time = 0", "DELETE FROM timestamps"),
}


@pytest.fixture
def filled_engine(migrated_engine: Engine) -> Engine:
    """A database with records 0..3 of one log, payloads, one node, one checkpoint, one witness
    cosignature and one timestamp of it."""
    t = TrailBuilder("audit.example/log")
    t.start("r1")
    t.tokens("r1", 2)
    t.start("r2")
    t.end("r1")
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, "audit.example/log")
        append_batch(
            conn,
            log_id,
            t.records,
            nodes=[(4, 0, b"\x05" * 32)],
            checkpoint=StoredCheckpoint(size=4, root=b"\x04" * 32, note="cp\n", ts=1),
        )
        cosig = Cosignature(name="w1", key_id=b"\x00" * 4, timestamp=7, signature=b"\x01" * 64)
        insert_cosignatures(conn, log_id, 4, [cosig], received=1)
        insert_timestamp(conn, log_id, StoredTimestamp(4, b"token", 5), received=1)
    return migrated_engine


def test_every_ledger_table_is_covered() -> None:
    assert set(CHANGES) == set(LEDGER_TABLES)


@pytest.mark.parametrize("table", sorted(CHANGES))
@pytest.mark.parametrize("operation", ["update", "delete"])
def test_update_and_delete_are_rejected(filled_engine: Engine, table: str, operation: str) -> None:
    """C9: UPDATE/DELETE on a ledger table fails with the trigger's message, and changes nothing."""
    sql = CHANGES[table][0 if operation == "update" else 1]
    with pytest.raises(DBAPIError, match=APPEND_ONLY_MESSAGE), filled_engine.begin() as conn:
        conn.exec_driver_sql(sql)
    with filled_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM records").scalar_one() == 4
        assert (
            conn.exec_driver_sql("SELECT tenant FROM records WHERE seq = 1").scalar_one()
            == "tenant-a"
        )
        assert conn.exec_driver_sql("SELECT note FROM checkpoints").scalar_one() == "cp\n"


def _upsert_sql(dialect: str) -> tuple[str, str]:
    """Statements that replace an existing record row through INSERT."""
    row = "(1, 1, 'tokens', 'r1', 1, 'mallory', 0, zeroblob(32), x'00')"
    if dialect == "postgresql":
        row = row.replace("zeroblob(32)", "decode(repeat('00', 32), 'hex')").replace(
            "x'00'", "'\\x00'::bytea"
        )
        replace = ""
    else:
        replace = f"INSERT OR REPLACE INTO records VALUES {row}"
    upsert = (
        f"INSERT INTO records VALUES {row} "
        "ON CONFLICT (log_id, seq) DO UPDATE SET tenant = excluded.tenant"
    )
    return replace, upsert


def test_replace_and_upsert_are_rejected(filled_engine: Engine) -> None:
    """C9: INSERT OR REPLACE (SQLite) and INSERT ... ON CONFLICT DO UPDATE cannot rewrite a row."""
    replace, upsert = _upsert_sql(filled_engine.dialect.name)
    for sql in (replace, upsert):
        if not sql:
            continue
        with pytest.raises(DBAPIError, match=APPEND_ONLY_MESSAGE), filled_engine.begin() as conn:
            conn.exec_driver_sql(sql)
    with filled_engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT tenant FROM records WHERE seq = 1").scalar_one()
            == "tenant-a"
        )


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_truncate_is_rejected_on_postgres(filled_engine: Engine, table: str) -> None:
    if filled_engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is a PostgreSQL statement")
    with pytest.raises(DBAPIError, match=APPEND_ONLY_MESSAGE), filled_engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {table} CASCADE")


def test_admin_with_triggers_disabled_can_tamper(
    filled_engine: Engine, admin_connection: Callable[[], AbstractContextManager[Connection]]
) -> None:
    """The fixture that simulates a malicious administrator really gets past the triggers."""
    with admin_connection() as conn:
        conn.exec_driver_sql("UPDATE records SET tenant = 'mallory' WHERE seq = 1")
        conn.exec_driver_sql("DELETE FROM payloads WHERE seq = 0")
    with filled_engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT tenant FROM records WHERE seq = 1").scalar_one()
            == "mallory"
        )


@pytest.fixture
def writer_role(filled_engine: Engine) -> Iterator[str]:
    if filled_engine.dialect.name != "postgresql":
        pytest.skip("database roles are a PostgreSQL feature")
    role = f"auditlog_writer_{uuid.uuid4().hex[:12]}"
    with filled_engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} NOLOGIN")
        grant_writer(conn, role)
    yield role
    with filled_engine.begin() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")


def test_writer_role_cannot_change_rows_even_without_triggers(
    filled_engine: Engine,
    writer_role: str,
    admin_connection: Callable[[], AbstractContextManager[Connection]],
) -> None:
    """C9/C17: the writer has INSERT and SELECT only; with every trigger disabled by an
    administrator, its UPDATE, DELETE and TRUNCATE still fail on the grants."""
    with admin_connection():
        pass  # triggers now disabled on every ledger table
    engine = create_engine(normalize_url(filled_engine.url), poolclass=NullPool)
    try:
        for table in LEDGER_TABLES:
            for sql in (*CHANGES[table], f"TRUNCATE {table} CASCADE"):
                with pytest.raises(DBAPIError, match="permission denied"), engine.begin() as conn:
                    conn.exec_driver_sql(f"SET ROLE {writer_role}")
                    conn.exec_driver_sql(sql)
        # ... while what a recorder does still works under that role.
        t = TrailBuilder("audit.example/second")
        t.start("q1")
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET ROLE {writer_role}")
            log_id = ensure_log(conn, "audit.example/second")
            append_batch(conn, log_id, t.records)
            assert conn.exec_driver_sql("SELECT count(*) FROM records").scalar_one() == 5
    finally:
        engine.dispose()
