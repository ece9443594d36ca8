"""`auditlog verify --state FILE --state-key KEY`: incremental verification (docs/TRUST.md).

A run saves, signed with the verifier's own key, the state of each log after its last record; the
next run reads only the records after it. Attacks: a state file altered or signed by another key
(refused, exit 2); records or nodes below the state rewritten, rows added or deleted there; the
whole log rebuilt and re-signed by the key holder; chains, steps and request ids that cross the
state's boundary (C8-C11); a payload deleted below the state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool
from trust_helpers import ORIGIN, codes, record_db, verify

from auditlog.ledger import Checkpoint, RecordKind, Signer, payload_bytes, sign_checkpoint
from auditlog.recorder import LogSequencer
from auditlog.store import append_batch
from auditlog.store.checkpoints import StoredCheckpoint, insert_checkpoint
from auditlog.store.db import normalize_url

Admin = Callable[[], AbstractContextManager[Connection]]
TARGET = {"name": "t", "weights_sha256": "a" * 64, "tokenizer_sha256": "b" * 64,
          "architecture": "x"}  # fmt: skip


@pytest.fixture
def rec(db_url: str, tmp_path: Path) -> dict[str, Any]:
    found = record_db(db_url, tmp_path)
    state_key = tmp_path / "state.key"
    state_key.write_text(Signer.generate("verify-state").key_string + "\n")
    return {**found, "state": tmp_path / "verify.state", "state_key": state_key}


def resumed(rec: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    return verify(
        "--db", rec["db"], "--key", rec["key"], "--state", str(rec["state"]),
        "--state-key", str(rec["state_key"]), *extra,
    )  # fmt: skip


def full(rec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return verify("--db", rec["db"], "--key", rec["key"])


def append_signed(rec: dict[str, Any], build: Callable[[LogSequencer], None]) -> int:
    """Append records the way the recorder would, and a checkpoint signed by the log's key."""
    engine = create_engine(normalize_url(rec["db"]), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            seq = LogSequencer.resume(conn, ORIGIN)
            build(seq)
            batch = seq.drain()
            append_batch(conn, seq.log_id, batch.records, batch.nodes)
            root = seq.frontier.root()
            note = sign_checkpoint(Checkpoint(ORIGIN, seq.size, root), [rec["signer"]])
            insert_checkpoint(conn, seq.log_id, StoredCheckpoint(seq.size, root, note, 0))
            return seq.size
    finally:
        engine.dispose()


def start(seq: LogSequencer, rid: str) -> None:
    seq.append(
        RecordKind.REQUEST_START, ts=time.time_ns(), request_id=rid, tenant="tenant-0",
        payload=payload_bytes({"prompt_token_ids": [1], "prompt_text": "p"}),
        fields={"principal": "p", "client": "c", "engine": "e/1", "params": {},
                "target": TARGET, "draft": None},
    )  # fmt: skip


def tokens(seq: LogSequencer, rid: str, step: int, n: int) -> None:
    seq.append(
        RecordKind.TOKENS, ts=time.time_ns(), request_id=rid, tenant="tenant-0",
        payload=payload_bytes({"token_ids": [7] * n, "drafts": []}),
        fields={"step": step, "n": n, "prov": ["target"] * n},
    )  # fmt: skip


def manifest(seq: LogSequencer, step: int, batch: list[list[Any]]) -> None:
    n = sum(k for _, k in batch)
    seq.append(RecordKind.STEP, ts=time.time_ns(),
               fields={"step": step, "batch": batch, "n": n, "passes": 1})  # fmt: skip


def end(seq: LogSequencer, rid: str, n_generated: int) -> None:
    seq.append(
        RecordKind.REQUEST_END, ts=time.time_ns(), request_id=rid, tenant="tenant-0",
        fields={"reason": "stop", "n_generated": n_generated, "n_delivered": n_generated},
    )  # fmt: skip


def open_request(seq: LogSequencer) -> None:
    """A request left open after 2 tokens (its step manifest recorded)."""
    start(seq, "cross-1")
    tokens(seq, "cross-1", 900_001, 2)
    manifest(seq, 900_001, [["cross-1", 2]])


def test_resumed_run_reads_only_new_records(rec: dict[str, Any]) -> None:
    """C8: the second run starts at the first run's size, is intact, and counts what a full run
    counts; a run with nothing new reads nothing."""
    code, first = resumed(rec)
    assert code == 0, first
    size = first["logs"][0]["size"]

    def new_request(s: LogSequencer) -> None:
        start(s, "new-1")
        tokens(s, "new-1", 900_000, 3)
        manifest(s, 900_000, [["new-1", 3]])
        end(s, "new-1", 3)

    append_signed(rec, new_request)
    code, second = resumed(rec)
    assert code == 0, second
    assert second["logs"][0]["resumed_from"] == size
    assert second["logs"][0]["counts"] == full(rec)[1]["logs"][0]["counts"]
    code, third = resumed(rec)
    assert code == 0 and third["logs"][0]["resumed_from"] == size + 4


def test_chains_cross_the_state(rec: dict[str, Any]) -> None:
    """C9: a request open at the saved state continues after it: intact, with the counts of a
    full run."""
    append_signed(rec, open_request)
    code, report = resumed(rec)
    assert code == 0, report  # an open chain is a request in flight: a warning

    def finish(s: LogSequencer) -> None:
        tokens(s, "cross-1", 900_002, 1)
        manifest(s, 900_002, [["cross-1", 1]])
        end(s, "cross-1", 3)

    append_signed(rec, finish)
    code, report = resumed(rec)
    assert code == 0, report
    assert report["logs"][0]["counts"] == full(rec)[1]["logs"][0]["counts"]


def broken_prev(s: LogSequencer) -> None:
    s.heads["cross-1"].leaf_hex = "1" * 64
    tokens(s, "cross-1", 900_002, 1)
    manifest(s, 900_002, [["cross-1", 1]])
    end(s, "cross-1", 3)


def forgotten_tokens(s: LogSequencer) -> None:
    end(s, "cross-1", 0)


def after_end(s: LogSequencer) -> None:
    end(s, "cross-1", 2)


@pytest.mark.parametrize(
    ("build", "code"), [(broken_prev, "chain.prev"), (forgotten_tokens, "end.counts")]
)
def test_state_carries_chains_and_counts(
    rec: dict[str, Any], build: Callable[[LogSequencer], None], code: str
) -> None:
    """C9: the chain head and token count the state carries are checked: a record after the
    state that does not link to the one before it, or a request.end that forgets the tokens
    recorded before the state, fails (1), as in a full run."""
    append_signed(rec, open_request)
    assert resumed(rec)[0] == 0
    append_signed(rec, build)
    got, report = resumed(rec)
    assert got == 1 and code in codes(report), report
    assert code in codes(full(rec)[1])


def test_ended_request_extended_after_the_state_fails(rec: dict[str, Any]) -> None:
    """C9: a request that ended before the state gets another record after it: not open."""
    append_signed(rec, open_request)
    append_signed(rec, after_end)
    assert resumed(rec)[0] == 0

    def extend(s: LogSequencer) -> None:
        from auditlog.recorder.sequencer import ChainHead

        s.heads["cross-1"] = ChainHead(req_seq=3, leaf_hex="2" * 64, tenant="tenant-0")
        tokens(s, "cross-1", 900_003, 1)

    append_signed(rec, extend)
    got, report = resumed(rec)
    assert got == 1 and "chain.not_open" in codes(report), report


def test_request_id_used_before_the_state_fails(rec: dict[str, Any]) -> None:
    """C9: a request id that started (and ended) before the state, started again after it:
    chain.restarted, from the request ids the state carries."""
    assert resumed(rec)[0] == 0
    append_signed(rec, lambda s: (start(s, "req-00000"), end(s, "req-00000", 0)))
    code, report = resumed(rec)
    assert code == 1 and "chain.restarted" in codes(report), report


def test_altered_or_foreign_state_is_refused(rec: dict[str, Any], tmp_path: Path) -> None:
    """A state file altered by one byte, or signed by another key, is refused (2), never
    trusted; without it the run starts from the beginning."""
    assert resumed(rec)[0] == 0
    data = rec["state"].read_bytes()
    rec["state"].write_bytes(data.replace(b'"started":', b'"started":1'))
    code, report = resumed(rec)
    assert code == 2 and "not signed by the state key" in report["error"]
    rec["state"].write_bytes(data)
    other = tmp_path / "other.key"
    other.write_text(Signer.generate("verify-state").key_string)
    code, report = verify("--db", rec["db"], "--key", rec["key"], "--state", str(rec["state"]),
                          "--state-key", str(other))  # fmt: skip
    assert code == 2 and "not signed by the state key" in report["error"]
    code, report = verify("--db", rec["db"], "--state", str(rec["state"]))
    assert code == 2 and "--state-key" in report["error"]


def test_prefix_rewritten_below_the_state_fails(
    rec: dict[str, Any], admin_connection: Admin
) -> None:
    """The administrator rewrites the last record below the state and the node above it: the
    stored tree no longer has the state's root (state.prefix)."""
    code, first = resumed(rec)
    size = first["logs"][0]["size"]
    with admin_connection() as conn:
        conn.exec_driver_sql(
            f"UPDATE records SET leaf = (SELECT leaf FROM records WHERE seq = 0) "
            f"WHERE seq = {size - 1}"
        )
        level4 = (size >> 4) - 1
        if size % 16 == 0:
            conn.exec_driver_sql(
                f"UPDATE nodes SET hash = (SELECT leaf FROM records WHERE seq = 0) "
                f"WHERE level = 4 AND idx = {level4}"
            )
    code, report = resumed(rec)
    assert code == 1 and "state.prefix" in codes(report), report


@pytest.mark.parametrize("table", ["records", "payloads", "nodes"])
def test_rows_deleted_below_the_state_fail(
    rec: dict[str, Any], admin_connection: Admin, table: str
) -> None:
    """A row deleted below the state, never read again, is still missed by the row counts."""
    assert resumed(rec)[0] == 0
    column = "idx" if table == "nodes" else "seq"
    with admin_connection() as conn:
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE {column} = 1")
    code, report = resumed(rec)
    assert code == 1, report
    assert codes(report) & {"rows.unread", "payload.orphan", "state.prefix"}


def test_log_rebuilt_and_resigned_is_caught(rec: dict[str, Any], tmp_path: Path) -> None:
    """The key holder rebuilds the log with other traffic and signs it: the state's tree is not
    a prefix of it, so its checkpoints do not match the records verified (1)."""
    assert resumed(rec)[0] == 0
    other = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    from auditlog.recorder import AuditRecorder
    from auditlog.synthetic import SyntheticEngine

    opened = AuditRecorder.open(
        other, origin=ORIGIN, signers=[rec["signer"]], spool_path=tmp_path / "spool2"
    )
    with opened as recorder:
        for event in SyntheticEngine(seed=99).run(9):
            recorder.record(event)
    code, report = verify("--db", other, "--key", rec["key"], "--state", str(rec["state"]),
                          "--state-key", str(rec["state_key"]))  # fmt: skip
    assert code == 1, report
    assert codes(report) & {"state.prefix", "checkpoint.root"}


def test_small_pages_read_every_row(rec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The keyset pages of the verifier's reads (records, payloads, every node level, from the
    start and from a saved state) lose no row and repeat none: pages of 5 rows give the
    verdicts and counts of the default pages."""
    code, default = full(rec)
    assert code == 0
    from auditlog.store import audit_reads

    monkeypatch.setattr(audit_reads, "DEFAULT_BATCH", 5)
    code, paged = full(rec)
    assert code == 0 and paged["logs"][0]["counts"] == default["logs"][0]["counts"]
    assert resumed(rec)[0] == 0
    append_signed(rec, open_request)
    code, report = resumed(rec)
    assert code == 0 and report["logs"][0]["resumed_from"] == default["logs"][0]["size"]


def _drop_seq_check(conn: Connection) -> None:
    """The administrator removes the ``seq >= 0`` check (the schema is no barrier to them)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
    else:
        conn.exec_driver_sql("ALTER TABLE records DROP CONSTRAINT ck_records_seq_nonneg")


@pytest.mark.parametrize("moved_to", [-1, 0])
def test_record_moved_out_of_the_prefix_fails(
    rec: dict[str, Any], admin_connection: Admin, moved_to: int
) -> None:
    """C9, C10: the administrator deletes record 1 below the state and keeps the row count by
    putting a row where the resumed run never reads it (seq -1, or a second seq 0 once the
    primary key is gone): the rows below the state are no longer exactly seq 0..S-1 (1)."""
    assert resumed(rec)[0] == 0
    with admin_connection() as conn:
        _drop_seq_check(conn)
        if moved_to == 0:
            if conn.dialect.name == "sqlite":
                pytest.skip("SQLite cannot drop a primary key in place")
            conn.exec_driver_sql("ALTER TABLE records DROP CONSTRAINT pk_records CASCADE")
            conn.exec_driver_sql("ALTER TABLE payloads DROP CONSTRAINT pk_payloads CASCADE")
        conn.exec_driver_sql(f"UPDATE records SET seq = {moved_to} WHERE seq = 1")
        conn.exec_driver_sql(f"UPDATE payloads SET seq = {moved_to} WHERE seq = 1")
    code, report = resumed(rec)
    assert code == 1, report
    assert "rows.unread" in codes(report), report
    assert full(rec)[0] == 1


def test_state_not_advanced_by_a_failed_ranged_run(
    rec: dict[str, Any], admin_connection: Admin
) -> None:
    """C8, C10: a run in ranges (--jobs 2) from a saved state, on a log with a record deleted
    after the state, falls back to one range and fails; the state it keeps for that log must
    still be the saved one (a state advanced over the deleted record would let the next run
    start after the damage)."""
    from auditlog.verifier import verify_database
    from auditlog.verify_state import read_state, read_state_key

    key = read_state_key(rec["state_key"])

    def run() -> Any:
        return verify_database(
            rec["db"], keys=[rec["key"]], jobs=2, min_range_level=4,
            state_path=rec["state"], state_key=key,
        )  # fmt: skip

    assert run().verdict.value == "intact"
    size = read_state(rec["state"], key)[ORIGIN].size

    def many(s: LogSequencer) -> None:
        for i in range(12):
            start(s, f"more-{i}")
            tokens(s, f"more-{i}", 910_000 + i, 1)
            manifest(s, 910_000 + i, [[f"more-{i}", 1]])
            end(s, f"more-{i}", 1)

    append_signed(rec, many)
    with admin_connection() as conn:
        conn.exec_driver_sql(f"DELETE FROM records WHERE seq = {size + 5}")
        conn.exec_driver_sql(f"DELETE FROM payloads WHERE seq = {size + 5}")
    assert run().verdict.value != "intact"
    assert run().verdict.value != "intact"
    assert read_state(rec["state"], key)[ORIGIN].size == size


@pytest.mark.parametrize("keep", [0, 40])
def test_log_rolled_back_below_the_state_fails(
    rec: dict[str, Any], admin_connection: Admin, keep: int
) -> None:
    """C10: the administrator rolls the log back below the saved state's size (rows, nodes and
    checkpoints above ``keep`` removed, so that the rest is self-consistent): the state stands
    for records no longer there (1), never intact, with or without --jobs."""
    assert resumed(rec)[0] == 0
    with admin_connection() as conn:
        conn.exec_driver_sql(f"DELETE FROM records WHERE seq >= {keep}")
        conn.exec_driver_sql(f"DELETE FROM payloads WHERE seq >= {keep}")
        conn.exec_driver_sql(f"DELETE FROM nodes WHERE (idx + 1) * (1 << level) > {keep}")
        conn.exec_driver_sql(f"DELETE FROM checkpoints WHERE size > {keep}")
        for table in ("cosignatures", "timestamps"):
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE size > {keep}")
    for jobs in ("1", "2"):
        code, report = resumed(rec, "--jobs", jobs)
        assert code == 1, report
        assert codes(report) & {"state.prefix", "rows.unread"}, report
