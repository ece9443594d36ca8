"""`auditlog verify` against real databases tampered by their administrator (C8, C9, C10).

Each test records real traffic through the recorder, then edits the database behind the
append-only triggers (as a privileged administrator would) and checks that the CLI exits 1 and
names the right finding at the first bad index.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.synthetic import SyntheticEngine

ORIGIN = "test.example/verify"
Admin = Callable[[], AbstractContextManager[Connection]]


@pytest.fixture
def recorded(db_url: str, tmp_path: Path) -> dict[str, Any]:
    signer = Signer.generate(ORIGIN)
    witness = tmp_path / "witness"
    engine = SyntheticEngine(seed=7)
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[DirectoryWitness(witness)],
        spool_path=tmp_path / "spool",
        checkpoint_every=40,
        max_batch_events=8,
    ) as recorder:
        for event in engine.run(12):
            recorder.record(event)
    return {
        "db": db_url,
        "key": signer.verifier_key,
        "witness": witness,
        "signer": signer,
        "size": recorder.stats.records,
    }


def _verify(rec: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["verify", "--db", rec["db"], "--key", rec["key"], "--witness-dir", str(rec["witness"])]
    result = CliRunner().invoke(app, [*args, *extra, "--json"])
    return result.exit_code, orjson.loads(result.stdout)


def _codes(report: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [
        (f["code"], f["index"])
        for log in report["logs"]
        for f in log["findings"]
        if f["severity"] == "error"
    ]


def test_intact_database_verifies(recorded: dict[str, Any]) -> None:
    code, report = _verify(recorded)
    assert code == 0, report
    assert report["ok"] and report["logs"][0]["size"] == recorded["size"]
    assert report["logs"][0]["anchored_at"] is not None


def test_field_edited_is_caught(recorded: dict[str, Any], admin_connection: Admin) -> None:
    with admin_connection() as conn:
        body = conn.exec_driver_sql("SELECT body FROM records WHERE seq = 5").scalar_one()
        forged = bytes(body).replace(b'"ts":"', b'"ts":"1', 1)
        conn.exec_driver_sql(
            "UPDATE records SET body = %s WHERE seq = 5".replace("%s", _param(conn)), (forged,)
        )
    code, report = _verify(recorded)
    assert code == 1
    assert ("leaf.mismatch", 5) in _codes(report)


def test_record_deleted_is_caught(recorded: dict[str, Any], admin_connection: Admin) -> None:
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM payloads WHERE seq = 9")
        conn.exec_driver_sql("DELETE FROM records WHERE seq = 9")
    code, report = _verify(recorded)
    assert code == 1
    assert ("seq.mismatch", 9) in _codes(report)


def test_records_reordered_is_caught(recorded: dict[str, Any], admin_connection: Admin) -> None:
    """Records 3 and 4 swap places (every column but seq, payloads with them)."""
    cols = "kind, request_id, req_seq, tenant, ts, leaf, body"
    with admin_connection() as conn:
        p = _param(conn)
        rows = {
            seq: tuple(conn.exec_driver_sql(f"SELECT {cols} FROM records WHERE seq = {seq}").one())
            for seq in (3, 4)
        }
        data = {
            seq: conn.exec_driver_sql(f"SELECT data FROM payloads WHERE seq = {seq}").scalar()
            for seq in (3, 4)
        }
        for seq, other in ((3, 4), (4, 3)):
            sets = ", ".join(f"{c} = {p}" for c in cols.split(", "))
            conn.exec_driver_sql(f"UPDATE records SET {sets} WHERE seq = {seq}", rows[other])
            conn.exec_driver_sql(f"DELETE FROM payloads WHERE seq = {seq}")
            if data[other] is not None:
                conn.exec_driver_sql(
                    f"INSERT INTO payloads (log_id, seq, data) VALUES (1, {seq}, {p})",
                    (data[other],),
                )
    code, report = _verify(recorded)
    assert code == 1
    assert ("seq.mismatch", 3) in _codes(report)


def test_index_column_edited_is_caught(recorded: dict[str, Any], admin_connection: Admin) -> None:
    """Hiding a record from a tenant's queries by editing its indexed tenant column."""
    with admin_connection() as conn:
        conn.exec_driver_sql("UPDATE records SET tenant = 'nobody' WHERE seq = 2")
    code, report = _verify(recorded)
    assert code == 1
    assert ("column.mismatch", 2) in _codes(report)


def test_tail_truncated_is_caught(recorded: dict[str, Any], admin_connection: Admin) -> None:
    keep = recorded["size"] - 5
    with admin_connection() as conn:
        conn.exec_driver_sql(f"DELETE FROM payloads WHERE seq >= {keep}")
        conn.exec_driver_sql(f"DELETE FROM records WHERE seq >= {keep}")
    code, report = _verify(recorded)
    assert code == 1
    codes = {c for c, _ in _codes(report)}
    assert codes & {"checkpoint.truncated", "witness.rollback"}


def test_checkpoint_signed_by_unknown_key_is_caught(
    recorded: dict[str, Any], admin_connection: Admin
) -> None:
    from auditlog.ledger import Checkpoint, sign_checkpoint

    rogue = Signer.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=1, root=b"\x11" * 32), [rogue])
    with admin_connection() as conn:
        conn.exec_driver_sql(
            "INSERT INTO checkpoints (log_id, size, root, note, ts) VALUES (1, 1, "
            + (
                "X'" + "11" * 32 + "'"
                if conn.dialect.name == "sqlite"
                else "'\\x" + "11" * 32 + "'"
            )
            + f", '{note}', 0)"
        )
    code, report = _verify(recorded)
    assert code == 1
    assert "checkpoint.invalid" in {c for c, _ in _codes(report)}


def test_consistent_rewrite_by_administrator_is_caught_by_the_witness(
    recorded: dict[str, Any], admin_connection: Admin, tmp_path: Path
) -> None:
    """C10: the administrator rebuilds the whole log, re-signs it with a key of their own and
    lists that key in the database. Only the witnessed checkpoint can tell."""
    db = recorded["db"]
    with admin_connection() as conn:
        for table in ("checkpoints", "nodes", "payloads", "records", "signing_keys", "logs"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    rogue = Signer.generate(ORIGIN)
    engine = SyntheticEngine(seed=8)  # a different history
    with AuditRecorder.open(
        db, origin=ORIGIN, signers=[rogue], spool_path=tmp_path / "rogue-spool"
    ) as recorder:
        for event in engine.run(12):
            recorder.record(event)
    # Against the database's own keys and no witness, the forgery is self-consistent, and that
    # proves nothing: exit 3, never 0...
    result = CliRunner().invoke(app, ["verify", "--db", db, "--json"])
    assert result.exit_code == 3
    unproven = orjson.loads(result.stdout)
    assert unproven["verdict"] == "unproven" and unproven["ok"]
    assert "no trusted key" in unproven["logs"][0]["unproven"][0]
    # ...against the trusted key and the witness it is not.
    code, report = _verify(recorded)
    assert code == 1
    codes = {c for c, _ in _codes(report)}
    assert codes & {"witness.rewrite", "witness.rollback", "witness.invalid", "checkpoint.invalid"}


def test_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    """Exit 2, and no empty database is created in its place."""
    missing = tmp_path / "nope.db"
    result = subprocess.run(
        [sys.executable, "-m", "auditlog", "verify", "--db", f"sqlite:///{missing}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert "does not exist" in result.stderr
    assert not missing.exists()


def _param(conn: Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


def test_whole_log_deleted_is_caught_by_the_witness(
    recorded: dict[str, Any], admin_connection: Admin
) -> None:
    """C10: dropping every row of a log (and the log itself) leaves nothing to verify in the
    database, but the witness still holds its checkpoints."""
    with admin_connection() as conn:
        for table in ("checkpoints", "nodes", "payloads", "records", "signing_keys", "logs"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    code, report = _verify(recorded)
    assert code == 1
    assert ("witness.rollback", 0) in _codes(report)


def test_fork_after_rollback_is_caught_by_every_witnessed_checkpoint(
    recorded: dict[str, Any], admin_connection: Admin, tmp_path: Path
) -> None:
    """C10: the database is rolled back, then grows past the newest witnessed size with another
    history, and that new head reaches the witness too. The newest checkpoint alone is
    consistent with the database; the older witnessed ones are not."""
    witness = DirectoryWitness(recorded["witness"])
    sizes = witness.sizes(ORIGIN)
    assert len(sizes) >= 2
    keep = sizes[0] - 1
    with admin_connection() as conn:
        conn.exec_driver_sql(f"DELETE FROM payloads WHERE seq >= {keep}")
        conn.exec_driver_sql(f"DELETE FROM nodes WHERE ((idx + 1) << level) > {keep}")
        conn.exec_driver_sql(f"DELETE FROM checkpoints WHERE size > {keep}")
        conn.exec_driver_sql(f"DELETE FROM records WHERE seq >= {keep}")
    engine = SyntheticEngine(seed=99, prefix="fork")
    # The administrator resumes without the witness (the recorder would refuse otherwise)...
    with AuditRecorder.open(
        recorded["db"],
        origin=ORIGIN,
        signers=[recorded["signer"]],
        spool_path=tmp_path / "fork-spool",
    ) as recorder:
        for event in engine.run(20):
            recorder.record(event)
    assert recorder.stats.records + keep > max(sizes)
    # ...and its new head reaches the witness as well.
    assert recorder.last_checkpoint_note is not None
    head = recorder.last_checkpoint_note
    witness.submit(ORIGIN, int(head.splitlines()[1]), head)
    code, report = _verify(recorded)
    assert code == 1
    assert "witness.rewrite" in {c for c, _ in _codes(report)}


def test_unreadable_witness_file_is_a_finding_not_a_crash(recorded: dict[str, Any]) -> None:
    witness = DirectoryWitness(recorded["witness"])
    path = witness.path_of(ORIGIN, 10**9)
    path.write_bytes(b"\xff\xfe not a note")
    code, report = _verify(recorded)
    assert code == 1
    assert "witness.invalid" in {c for c, _ in _codes(report)}
