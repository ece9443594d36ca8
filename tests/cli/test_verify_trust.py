"""`auditlog verify` against the attackers of docs/TRUST.md (issue 9, findings 2-8; C8-C10).

Exit 0 only when every log is anchored by a key given out of band and every record is covered;
1 on an integrity failure; 2 on a usage error; 3 when nothing failed but nothing was proven.
The writer role forges with INSERT only; the administrator can do anything in the database;
nobody holds the trusted key or writes the witness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select
from trust_helpers import ORIGIN, anchored, codes, forge_tail, record_db, verify, writer

from auditlog.ledger import Checkpoint, DirectoryWitness, Signer, sign_checkpoint
from auditlog.store.db import upgrade
from auditlog.store.schema import (
    checkpoints,
    cosignatures,
    data_keys,
    nodes,
    payloads,
    records,
    signing_keys,
    timestamps,
)

Admin = Callable[[], AbstractContextManager[Connection]]
MAX_SEQ = 2**63 - 1


@pytest.fixture
def rec(db_url: str, tmp_path: Path) -> dict[str, Any]:
    return record_db(db_url, tmp_path)


def test_anchored_database_is_intact(rec: dict[str, Any]) -> None:
    code, report = anchored(rec)
    assert code == 0, report
    assert report["verdict"] == "intact" and report["logs"][0]["unproven"] == []
    assert report["logs"][0]["anchored_at"] == report["logs"][0]["size"]


# -- 1. no outside anchor: exit 3, never 0 (finding 6) ------------------------------------------


def test_no_key_proves_nothing(rec: dict[str, Any]) -> None:
    code, report = verify("--db", rec["db"], "--witness-dir", str(rec["witness"]))
    assert code == 3 and report["verdict"] == "unproven" and report["ok"]
    reason = report["logs"][0]["unproven"][0]
    assert f"signed by {rec['signer'].name}+{rec['signer'].key_id.hex()}" in reason
    assert "trusted none" in reason


def test_trusted_checkpoint_without_key_proves_nothing(rec: dict[str, Any], tmp_path: Path) -> None:
    """An attacker hands over a checkpoint they signed themselves: without --key it vouches for
    nothing."""
    attacker = Signer.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=1, root=b"\x01" * 32), [attacker])
    path = tmp_path / "attacker.note"
    path.write_text(note)
    code, _ = verify("--db", rec["db"], "--trusted-checkpoint", str(path))
    assert code == 3


def test_key_of_another_origin_proves_nothing_and_names_both(rec: dict[str, Any]) -> None:
    other = Signer.generate("other.example/log")
    code, report = verify("--db", rec["db"], "--key", other.verifier_key)
    assert code == 3
    reason = report["logs"][0]["unproven"][0]
    assert f"trusted other.example/log+{other.key_id.hex()}" in reason
    assert f"signed by {ORIGIN}+{rec['signer'].key_id.hex()}" in reason


def test_wrong_key_for_the_origin_fails_naming_signer_and_trusted(rec: dict[str, Any]) -> None:
    impostor = Signer.generate(ORIGIN)  # same name, another key: the key holder's key is not it
    code, report = verify("--db", rec["db"], "--key", impostor.verifier_key)
    assert code == 1 and "checkpoint.invalid" in codes(report)
    message = next(f["message"] for f in report["logs"][0]["findings"])
    assert rec["signer"].key_id.hex() in message and impostor.key_id.hex() in message


# -- operator slips (finding 7) -----------------------------------------------------------------


def test_empty_database_proves_nothing(db_url: str) -> None:
    code, report = verify("--db", db_url, "--key", Signer.generate(ORIGIN).verifier_key)
    assert code == 3 and report["unproven"] == ["the database holds no log"]


def test_unknown_request_proves_nothing(rec: dict[str, Any]) -> None:
    code, report = anchored(rec, "--request", "does-not-exist")
    assert code == 3 and report["request"]["verdict"] == "unproven"
    code, report = anchored(rec, "--request", "req-00000")
    assert code == 0 and report["request"]["verdict"] == "intact", report["request"]


def test_empty_or_wrong_witness_dir_is_not_intact(rec: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "empty-witness"
    empty.mkdir()
    code, report = verify("--db", rec["db"], "--key", rec["key"], "--witness-dir", str(empty))
    assert code == 3 and "witness directory holds no checkpoint" in str(report["logs"][0])
    wrong = DirectoryWitness(tmp_path / "wrong-witness")
    rogue = Signer.generate(ORIGIN)
    cp = Checkpoint(origin=ORIGIN, size=3, root=b"\x03" * 32)
    wrong.submit(ORIGIN, 3, sign_checkpoint(cp, [rogue]))
    code, report = verify("--db", rec["db"], "--key", rec["key"], "--witness-dir", str(wrong.path))
    assert code == 1 and "witness.invalid" in codes(report)
    assert verify("--db", rec["db"], "--key", rec["key"], "--witness-dir", "/nonexistent")[0] == 2


def test_bad_max_pending_is_a_usage_error(rec: dict[str, Any]) -> None:
    assert anchored(rec, "--max-pending", "soon")[0] == 2


# -- 2. rows outside the proven range, as the INSERT-only writer (findings 2, 3, 5) -------------


def _row(conn: Connection, seq: int) -> dict[str, Any]:
    row = conn.execute(select(records).where(records.c.seq == seq)).mappings().one()
    return dict(row)


@pytest.mark.parametrize("seq", [MAX_SEQ, -1])
def test_row_outside_the_tree_fails(rec: dict[str, Any], seq: int) -> None:
    """A copy of record 0 at seq 2^63-1 (or -1, where the schema lets it in) is read and fails."""
    try:
        with writer(rec["db"]) as conn:
            conn.execute(insert(records).values({**_row(conn, 0), "seq": seq}))
    except Exception as exc:  # the schema's CHECK (seq >= 0) refuses it: nothing to see
        assert seq < 0 and ("seq_nonneg" in str(exc) or "CHECK" in str(exc)), exc
        return
    code, report = anchored(rec)
    assert code == 1 and codes(report) & {"seq.mismatch", "column.mismatch"}


def test_orphan_payload_and_node_rows_fail(rec: dict[str, Any]) -> None:
    with writer(rec["db"]) as conn:
        conn.execute(insert(nodes).values(log_id=1, level=4, idx=10**9, hash=b"\x00" * 32))
    code, report = anchored(rec)
    assert code == 1 and "node.extra" in codes(report)


def test_payload_row_at_a_negative_seq_fails_or_is_refused(rec: dict[str, Any]) -> None:
    """A payload no record accounts for (its foreign key refuses it where it is enforced)."""
    try:
        with writer(rec["db"]) as conn:
            conn.execute(insert(payloads).values(log_id=1, seq=-1, data=b'{"forged":1}'))
    except Exception as exc:
        assert "foreign key" in str(exc).lower(), exc
        return
    code, report = anchored(rec)
    assert code == 1 and "payload.orphan" in codes(report)


def test_rows_of_an_unlisted_log_fail(rec: dict[str, Any], admin_connection: Admin) -> None:
    with admin_connection() as conn:
        conn.execute(insert(payloads).values(log_id=77, seq=0, data=b"{}"))
    code, report = anchored(rec)
    assert code == 1 and "row.orphan" in codes(report)


def test_cosignature_timestamp_and_data_key_rows_nothing_accounts_for_fail(
    rec: dict[str, Any], admin_connection: Admin
) -> None:
    """Rows of the tables beside the records that no checkpoint or log accounts for (foreign
    keys dropped): a cosignature or an RFC 3161 timestamp of a checkpoint size the log does not
    store (``anchor.orphan``), a wrapped data key of a log id no log lists (``row.orphan``)."""
    with admin_connection() as conn:
        conn.execute(
            insert(cosignatures).values(
                log_id=1, size=10**6, witness="w", key_id="abcdef01", timestamp=1,
                signature=b"\x00" * 64, received=0,
            )
        )  # fmt: skip
        conn.execute(
            insert(timestamps).values(
                log_id=1, size=10**6 + 1, response=b"0", gen_time=0, received=0
            )
        )
        if conn.dialect.name == "postgresql":  # not a ledger table: its foreign key is on
            conn.exec_driver_sql("ALTER TABLE data_keys DISABLE TRIGGER ALL")
        conn.execute(
            insert(data_keys).values(
                log_id=77, request_id="r", tenant="t", kek_id="k", wrapped=b"0"
            )
        )
    code, report = anchored(rec)
    assert code == 1 and codes(report) >= {"anchor.orphan", "row.orphan"}
    messages = " ".join(f["message"] for log in report["logs"] for f in log["findings"])
    assert "cosignatures" in messages and "timestamps" in messages and "data_keys" in messages


def test_second_log_without_checkpoint_is_not_intact(rec: dict[str, Any]) -> None:
    """Finding 3: a log the writer inserted, with records and no checkpoint."""
    with writer(rec["db"]) as conn:
        forge_tail(conn, origin="aaa.example/shadow")
    code, report = anchored(rec)
    assert code == 3, report
    shadow = next(r for r in report["logs"] if r["log"] == "aaa.example/shadow")
    assert shadow["verdict"] == "unproven" and "no trusted key" in shadow["unproven"][0]


def test_log_option_gives_that_log_verdict_alone(rec: dict[str, Any]) -> None:
    """``--log ORIGIN`` is the verdict of that log only: a forged second log is not read then,
    and only the run over the whole database says it is not intact (docs/TRUST.md 3)."""
    with writer(rec["db"]) as conn:
        forge_tail(conn, origin="aaa.example/shadow")
    code, report = anchored(rec, "--log", ORIGIN)
    assert code == 0 and [r["log"] for r in report["logs"]] == [ORIGIN]
    assert anchored(rec)[0] == 3


def test_consistent_unsigned_tail_is_pending_then_failed(rec: dict[str, Any]) -> None:
    """Finding 5: a consistent tail after the newest checkpoint is never intact: pending within
    --max-pending, a failure beyond it."""
    with writer(rec["db"]) as conn:
        forge_tail(conn, ts=time.time_ns() - 3600 * 10**9)
    code, report = anchored(rec)
    assert code == 3 and "(pending)" in report["logs"][0]["unproven"][-1]
    assert anchored(rec, "--max-pending", "2h")[0] == 3
    code, report = anchored(rec, "--max-pending", "15m")
    assert code == 1 and "tail.unsigned" in codes(report)
    code, report = anchored(rec, "--request", "forged-1")
    assert report["request"]["verdict"] == "unproven"


def test_forged_checkpoint_row_fails(rec: dict[str, Any]) -> None:
    rogue = Signer.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=2, root=b"\x02" * 32), [rogue])
    with writer(rec["db"]) as conn:
        conn.execute(
            insert(checkpoints).values(log_id=1, size=2, root=b"\x02" * 32, note=note, ts=0)
        )
    code, report = anchored(rec)
    assert code == 1 and "checkpoint.invalid" in codes(report)


# -- the administrator (findings 4, 5, 8) ---------------------------------------------------------


def test_deleted_payloads_fail(rec: dict[str, Any], admin_connection: Admin) -> None:
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM payloads")
    code, report = anchored(rec)
    assert code == 1 and report["ok"] is False and "payload.absent" in codes(report)


def test_every_checkpoint_deleted_is_never_intact(
    rec: dict[str, Any], admin_connection: Admin
) -> None:
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM checkpoints")
    code, report = verify("--db", rec["db"], "--key", rec["key"])
    assert code == 3 and report["logs"][0]["anchored_at"] is None
    code, report = anchored(rec)  # the witness still holds them: deleted from the database
    assert code == 1 and "checkpoint.missing" in codes(report)


def test_zeroed_nodes_fail(rec: dict[str, Any], admin_connection: Admin) -> None:
    with admin_connection() as conn:
        zero = (
            "zeroblob(32)" if conn.dialect.name == "sqlite" else "decode(repeat('00', 32), 'hex')"
        )
        conn.exec_driver_sql(f"UPDATE nodes SET hash = {zero}")
    code, report = anchored(rec)
    assert code == 1 and "node.mismatch" in codes(report)


def test_checkpoint_columns_rewritten_fail(rec: dict[str, Any], admin_connection: Admin) -> None:
    with admin_connection() as conn:
        first = (
            conn.execute(select(checkpoints.c.size).order_by(checkpoints.c.size)).scalars().first()
        )
        conn.execute(
            checkpoints.update().where(checkpoints.c.size == first).values(root=b"\x07" * 32)
        )
    code, report = anchored(rec)
    assert code == 1 and "checkpoint.column" in codes(report)


def test_signing_key_row_rewritten_fails(rec: dict[str, Any], admin_connection: Admin) -> None:
    with admin_connection() as conn:
        conn.execute(signing_keys.update().values(key_id="00000000"))
    code, report = anchored(rec)
    assert code == 1 and "key.row" in codes(report)


def test_log_renamed_fails(rec: dict[str, Any], admin_connection: Admin) -> None:
    """``logs`` metadata: the origin is checked against every hashed header."""
    with admin_connection() as conn:
        conn.exec_driver_sql("UPDATE logs SET origin = 'renamed.example/log'")
    code, report = verify("--db", rec["db"], "--key", rec["key"])
    assert code == 1 and "header.log" in codes(report)  # checked with the database's own keys
    code, report = anchored(rec)
    assert code == 1 and codes(report) >= {"header.log", "witness.rollback"}


def test_missing_database_is_a_usage_error_not_a_new_one(tmp_path: Path) -> None:
    code, _ = verify("--db", f"sqlite:///{tmp_path / 'nope.db'}", "--key", "x+00000000+AA")
    assert code == 2 and not (tmp_path / "nope.db").exists()


def test_freshly_migrated_database_with_key_is_unproven(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    assert verify("--db", url, "--key", Signer.generate(ORIGIN).verifier_key)[0] == 3


def test_witness_of_a_log_the_database_lacks(rec: dict[str, Any], admin_connection: Admin) -> None:
    """A log deleted whole: with its key, a rollback (1); without, nothing proven (3)."""
    with admin_connection() as conn:
        for table in ("checkpoints", "nodes", "payloads", "records", "signing_keys", "logs"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    code, report = anchored(rec)
    assert code == 1 and "witness.rollback" in codes(report)
    other = Signer.generate("other.example/log").verifier_key
    code, report = verify("--db", rec["db"], "--key", other, "--witness-dir", str(rec["witness"]))
    assert code == 3 and "no --key for it" in report["logs"][0]["unproven"][0]
