"""Property (issue 9): no mutation of a small demo-like database verifies intact (exit 0).

Mutations, drawn by hypothesis (deterministic under CI=true, see tests/conftest.py): any cell of
any table the verifier covers, a deleted row of any table, an added row (records at any seq,
payloads, nodes, checkpoints, signing keys, logs), an extra log with records, a consistent
unsigned tail. The attacker is the database administrator (triggers off); nobody holds the
trusted key or writes the witness. Columns that no signature or hash covers are named in
docs/TRUST.md and left out: ``checkpoints.ts``, ``signing_keys.created``/``retired``,
``logs.created``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from trust_helpers import forge_tail, record_db

from auditlog.ledger import Signer
from auditlog.ledger.report import Verdict
from auditlog.verifier import verify_database

# table -> the columns the verifier covers (every one, but the unsigned metadata above)
COLUMNS = {
    "records": ("log_id", "seq", "kind", "request_id", "req_seq", "tenant", "ts", "leaf", "body"),
    "payloads": ("log_id", "seq", "data"),
    "nodes": ("log_id", "level", "idx", "hash"),
    "checkpoints": ("log_id", "size", "root", "note"),
    "signing_keys": ("log_id", "key_name", "key_id", "verifier_key"),
    "logs": ("id", "origin"),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("template")
    rec = record_db(f"sqlite:///{base / 'audit.db'}", base, n_requests=3)
    rec["path"] = base / "audit.db"
    found = verify_database(rec["db"], keys=[rec["key"]], witness_dir=rec["witness"])
    assert found.verdict is Verdict.INTACT, found.findings
    return rec


def _changed(value: Any, draw: Any) -> Any:
    if value is None:
        return draw(st.sampled_from([0, "x", b"\x00" * 32]))
    if isinstance(value, bytes):
        if not value:
            return b"\x01"
        where = draw(st.integers(0, len(value) - 1))
        how = draw(st.sampled_from(["flip", "cut", "null"]))
        if how == "cut":
            return value[:where]
        if how == "null":
            return None
        return (
            value[:where]
            + bytes([value[where] ^ (1 << draw(st.integers(0, 7)))])
            + value[where + 1 :]
        )
    if isinstance(value, int):
        return draw(st.sampled_from([value + 1, value - 1, 2**63 - 1, -1, 0, value + 16]))
    text = str(value)
    where = draw(st.integers(0, max(len(text) - 1, 0)))
    return draw(
        st.sampled_from([text + "x", text[:where], text[:where] + "Z" + text[where + 1 :], None])
    )


def _rows(db: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT rowid, * FROM {table}").fetchall()


def _mutate(db: sqlite3.Connection, url: str, draw: Any) -> None:
    action = draw(st.sampled_from(["cell", "delete", "add", "extra_log", "tail"]))
    if action == "tail":
        engine = create_engine(url)
        with engine.begin() as conn:
            forge_tail(conn)
        engine.dispose()
        return
    if action == "extra_log":
        db.execute("INSERT INTO logs (id, origin, created) VALUES (0, 'aaa.example/extra', 0)")
        db.execute(
            "INSERT INTO records SELECT 0, seq, kind, request_id, req_seq, tenant, ts, leaf, body"
            " FROM records WHERE seq < 3"
        )
        return
    table = draw(st.sampled_from(sorted(COLUMNS)))
    rows = _rows(db, table)
    assume(rows)
    row = draw(st.sampled_from(rows))
    names = [d[0] for d in db.execute(f"SELECT * FROM {table} LIMIT 0").description]
    if action == "delete":
        db.execute(f"DELETE FROM {table} WHERE rowid = ?", (row[0],))
        return
    values = dict(zip(names, row[1:], strict=True))
    column = draw(st.sampled_from(COLUMNS[table]))
    new = _changed(values[column], draw)
    assume(new != values[column])
    if action == "cell":
        db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, row[0]))
        return
    if table == "signing_keys":  # a new, well-formed key row for the log
        rogue = Signer.generate(values["key_name"])
        values.update(key_id=rogue.key_id.hex(), verifier_key=rogue.verifier_key)
    else:
        values[column] = new
    marks = ", ".join("?" * len(names))
    db.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})",
        tuple(values[n] for n in names),
    )


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_mutation_verifies_intact(template: dict[str, Any], tmp_path: Path, data: Any) -> None:
    path = tmp_path / f"case-{data.draw(st.integers(0, 10**9))}.db"
    shutil.copyfile(template["path"], path)
    url = f"sqlite:///{path}"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall():
            db.execute(f'DROP TRIGGER "{name}"')
        try:
            _mutate(db, url, data.draw)
        except sqlite3.IntegrityError:
            assume(False)  # the schema refused the change: nothing to verify
    finally:
        db.close()
    report = verify_database(url, keys=[template["key"]], witness_dir=template["witness"])
    assert report.verdict is not Verdict.INTACT, "a mutated database verified intact"
