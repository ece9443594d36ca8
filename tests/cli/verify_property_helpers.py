"""Shared set-up of the verifier's mutation properties (test_verify_property.py,
test_verify_ranges_property.py): a small demo-like recorded database, fresh copies of it, and the
mutations the database administrator may make (triggers off). Payloads are sealed, so the
wrapped data keys (``data_keys``) are mutated too.

Mutations, drawn by hypothesis: any cell of any table the verifier covers, a deleted row of any
table, an added row (records at any seq, payloads, nodes, checkpoints, signing keys, logs), an
extra log with records, a consistent unsigned tail. Nobody holds the trusted key or writes the
witness. Columns that no signature or hash covers are named in docs/TRUST.md and left out:
``checkpoints.ts``, ``signing_keys.created``/``retired``, ``logs.created``. Each example gets its
own copy of the recorded database (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL).
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import assume
from hypothesis import strategies as st
from sqlalchemy import Connection, create_engine, insert, select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import NullPool
from trust_helpers import forge_tail, record_db

from auditlog.ledger import Signer
from auditlog.ledger.report import Verdict
from auditlog.store.db import normalize_url
from auditlog.store.schema import metadata
from auditlog.verifier import verify_database

__all__ = ["TABLES", "copies", "disable_guards", "mutate", "mutated_copy"]

# table -> (primary key, the columns the verifier covers: all but the unsigned metadata above)
TABLES = {
    "records": (
        ("log_id", "seq"),
        ("log_id", "seq", "kind", "request_id", "req_seq", "tenant", "ts", "leaf", "body"),
    ),
    "payloads": (("log_id", "seq"), ("log_id", "seq", "data")),
    "nodes": (("log_id", "level", "idx"), ("log_id", "level", "idx", "hash")),
    "checkpoints": (("log_id", "size"), ("log_id", "size", "root", "note")),
    "signing_keys": (
        ("log_id", "key_name", "key_id"),
        ("log_id", "key_name", "key_id", "verifier_key"),
    ),
    "logs": (("id",), ("id", "origin")),
    "data_keys": (
        ("log_id", "request_id"),
        ("log_id", "request_id", "tenant", "kek_id", "wrapped"),
    ),
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def copies(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], Callable[[], str]]]:
    """(the recorded template, a factory of fresh copies of it)."""
    base = tmp_path_factory.mktemp("template")
    if request.param == "sqlite":
        rec = record_db(f"sqlite:///{base / 'audit.db'}", base, n_requests=3, sealed=True)
        with sqlite3.connect(base / "audit.db") as db:  # fold the WAL into the file we copy
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        def sqlite_copy() -> str:
            path = base / f"case-{uuid.uuid4().hex}.db"
            shutil.copyfile(base / "audit.db", path)
            return f"sqlite:///{path}"

        _check_template(rec)
        yield rec, sqlite_copy
        return
    make_pg = request.getfixturevalue("make_pg_database")
    with make_pg() as url:
        from auditlog.store.db import upgrade

        upgrade(url)
        rec = record_db(url, base, n_requests=3, sealed=True)
        _check_template(rec)
        template = url.rsplit("/", 1)[1].split("?")[0]
        server = normalize_url(url).set(database="postgres")
        admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # a template must have no session open on it
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{template}' AND pid <> pg_backend_pid()"
            )
        made: list[str] = []

        def pg_copy() -> str:
            name = f"auditlog_case_{uuid.uuid4().hex}"
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            made.append(name)
            return str(admin.url.set(database=name).render_as_string(hide_password=False))

        try:
            yield rec, pg_copy
        finally:
            with admin.connect() as conn:
                for name in made:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def _check_template(rec: dict[str, Any]) -> None:
    found = verify_database(rec["db"], keys=[rec["key"]], witness_dir=rec["witness"])
    assert found.verdict is Verdict.INTACT, found.findings


def _changed(value: Any, draw: Any) -> Any:
    if value is None:
        return draw(st.sampled_from([0, "x", b"\x00" * 32]))
    if isinstance(value, bytes):
        where = draw(st.integers(0, max(len(value) - 1, 0)))
        how = draw(st.sampled_from(["flip", "cut", "null"]))
        if how == "cut" or not value:
            return value[:where]
        if how == "null":
            return None
        bit = 1 << draw(st.integers(0, 7))
        return value[:where] + bytes([value[where] ^ bit]) + value[where + 1 :]
    if isinstance(value, int):
        return draw(st.sampled_from([value + 1, value - 1, 2**63 - 1, -1, 0, value + 16]))
    text = str(value)
    where = draw(st.integers(0, max(len(text) - 1, 0)))
    changes = [text + "x", text[:where], text[:where] + "Z" + text[where + 1 :], None]
    return draw(st.sampled_from(changes))


def disable_guards(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for name in names.scalars().all():
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    else:
        for name in TABLES:  # data_keys too: not append-only, but its foreign key is a trigger
            conn.exec_driver_sql(f"ALTER TABLE {name} DISABLE TRIGGER ALL")


def mutate(conn: Connection, draw: Any) -> None:
    action = draw(st.sampled_from(["cell", "delete", "add", "extra_log", "tail"]))
    if action == "tail":
        forge_tail(conn)
        return
    if action == "extra_log":
        conn.exec_driver_sql(
            "INSERT INTO logs (id, origin, created) VALUES (1000, 'aaa.example/extra', 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO records SELECT 1000, seq, kind, request_id, req_seq, tenant, ts, leaf,"
            " body FROM records WHERE seq < 3"
        )
        return
    name = draw(st.sampled_from(sorted(TABLES)))
    table, (pk, covered) = metadata.tables[name], TABLES[name]
    rows = [dict(r) for r in conn.execute(select(table)).mappings()]
    assume(rows)
    row = draw(st.sampled_from(rows))
    where = [table.c[k] == row[k] for k in pk]
    if action == "delete":
        conn.execute(table.delete().where(*where))
        return
    column = draw(st.sampled_from(covered))
    new = _changed(row[column], draw)
    assume(new != row[column])
    if action == "cell":
        conn.execute(table.update().where(*where).values({column: new}))
        return
    if name == "signing_keys":  # a new, well-formed key row for the log
        rogue = Signer.generate(row["key_name"])
        row.update(key_id=rogue.key_id.hex(), verifier_key=rogue.verifier_key)
    else:
        row[column] = new
    conn.execute(insert(table).values(row))


def mutated_copy(fresh_copy: Callable[[], str], draw: Any) -> str:
    """A fresh copy of the recorded database with one drawn mutation; its URL. A change that the
    schema refuses makes hypothesis discard the example (nothing to verify)."""
    url = fresh_copy()
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            disable_guards(conn)
        try:
            with engine.begin() as conn:
                mutate(conn, draw)
        except (DBAPIError, StatementError):
            assume(False)  # the schema refused the change: nothing to verify
    finally:
        engine.dispose()
    return url
