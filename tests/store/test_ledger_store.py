"""Round trips through the ledger store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import Connection, Engine
from store_helpers import TrailBuilder

from auditlog.errors import FormatError, NotFoundError, StoreError
from auditlog.ledger.hashes import leaf_hash, node_hash
from auditlog.store.ledger_store import (
    LogState,
    StoredCheckpoint,
    StoredNodeSource,
    append_batch,
    ensure_log,
    get_checkpoint,
    get_log_id,
    iter_records,
    latest_checkpoint,
    list_checkpoints,
    list_keys,
    list_logs,
    load_log_state,
    read_record,
    read_request,
    register_key,
    retire_key,
)

ORIGIN = "audit.example/log-1"


def _interleaved_trail() -> TrailBuilder:
    """Three requests interleaved with step manifests; r1 and r2 end, r3 stays open."""
    t = TrailBuilder(ORIGIN)
    for rid in ("r1", "r2", "r3"):
        t.start(rid)
    for _ in range(2):
        t.tokens("r1", 2)
        t.tokens("r2", 1)
        t.tokens("r3", 3)
        t.step([("r1", 2), ("r2", 1), ("r3", 3)])
    t.end("r1")
    t.end("r2")
    return t


def test_ensure_log_is_idempotent_and_logs_are_separate(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        first = ensure_log(conn, ORIGIN, created=5)
        assert ensure_log(conn, ORIGIN) == first
        other = ensure_log(conn, "audit.example/access")
        assert other != first
        assert get_log_id(conn, ORIGIN) == first
        assert next((i.origin, i.created) for i in list_logs(conn)) == (ORIGIN, 5)
        with pytest.raises(NotFoundError, match="no log with origin 'nope'"):
            get_log_id(conn, "nope")


def test_append_and_read_back_round_trip(migrated_engine: Engine) -> None:
    trail = _interleaved_trail()
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        append_batch(conn, log_id, trail.records[:7])
        append_batch(conn, log_id, trail.records[7:])
    with migrated_engine.connect() as conn:
        stored = list(iter_records(conn, log_id, batch=4))  # several keyset pages
    assert len(stored) == len(trail.records)
    for built, back in zip(trail.records, stored, strict=True):
        assert back.seq == built.seq
        assert back.kind == built.kind.value
        assert (back.request_id, back.req_seq, back.ts, back.tenant) == (
            built.request_id,
            built.req_seq,
            built.ts,
            built.tenant,
        )
        assert back.body == built.body
        assert back.leaf == built.leaf == leaf_hash(back.body)
        assert back.payload == built.payload


def test_iter_records_ranges_and_pages(migrated_engine: Engine) -> None:
    trail = _interleaved_trail()
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        other = ensure_log(conn, "other")
        append_batch(conn, log_id, trail.records)
        append_batch(conn, other, [TrailBuilder("other").start("x")])
        for batch in (1, 2, 5, 100):
            seqs = [r.seq for r in iter_records(conn, log_id, 3, 11, batch=batch)]
            assert seqs == list(range(3, 11)), batch
        assert [r.seq for r in iter_records(conn, other)] == [0]
        assert list(iter_records(conn, log_id, 500)) == []
        with pytest.raises(StoreError, match="batch must be at least 1"):
            list(iter_records(conn, log_id, batch=0))


def test_read_request_and_record(migrated_engine: Engine) -> None:
    trail = _interleaved_trail()
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        append_batch(conn, log_id, trail.records)
        chain = read_request(conn, log_id, "r2")
        assert [r.req_seq for r in chain] == [0, 1, 2, 3]
        assert [r.kind for r in chain] == ["request.start", "tokens", "tokens", "request.end"]
        assert read_request(conn, log_id, "missing") == []
        assert read_record(conn, log_id, 4).body == trail.records[4].body
        with pytest.raises(NotFoundError, match=f"log {log_id} has no record 99"):
            read_record(conn, log_id, 99)


def test_append_batch_rejects_gaps_and_duplicates(migrated_engine: Engine) -> None:
    trail = _interleaved_trail()
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
    with (
        migrated_engine.begin() as conn,
        pytest.raises(StoreError, match="at position 2 expected seq 2, got 3"),
    ):
        append_batch(conn, log_id, [trail.records[0], trail.records[1], trail.records[3]])
    with migrated_engine.begin() as conn:
        append_batch(conn, log_id, trail.records[:3])
    with pytest.raises(StoreError, match="insert into records failed"):  # noqa: SIM117
        with migrated_engine.begin() as conn:
            append_batch(conn, log_id, trail.records[2:4])
    with migrated_engine.connect() as conn:  # the failed flush left nothing behind
        assert [r.seq for r in iter_records(conn, log_id)] == [0, 1, 2]


def test_append_batch_rejects_a_short_hash(migrated_engine: Engine) -> None:
    with pytest.raises(StoreError, match="insert into nodes failed"):  # noqa: SIM117
        with migrated_engine.begin() as conn:
            log_id = ensure_log(conn, ORIGIN)
            append_batch(conn, log_id, [], nodes=[(4, 0, b"\x01" * 31)])


def test_load_log_state_finds_open_chains(migrated_engine: Engine) -> None:
    trail = _interleaved_trail()
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        assert load_log_state(conn, log_id) == LogState(size=0, open_chains={})
        append_batch(conn, log_id, trail.records)
        state = load_log_state(conn, log_id)
    assert state.size == len(trail.records)
    assert state.open_chains == {"r3": trail.heads["r3"]}
    assert state.open_chains["r3"] == (2, trail.records[-4].leaf)  # r3's second tokens record


def test_stored_node_source_reads_leaves_and_nodes(migrated_engine: Engine) -> None:
    trail = _interleaved_trail()
    for _ in range(7):
        trail.tokens("r3", 1)
    leaves = [r.leaf for r in trail.records]
    assert len(leaves) == 20
    # level-4 node 0 covers leaves 0..15: MTH of a complete subtree, RFC 9162 2.1.1
    level = leaves[:16]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        append_batch(conn, log_id, trail.records, nodes=[(4, 0, level[0])])
        source = StoredNodeSource(conn, log_id)
        assert source.get_nodes(0, 2, 9) == leaves[2:9]
        assert source.get_nodes(4, 0, 1) == [level[0]]
        assert source.get_nodes(0, 5, 5) == []
        with pytest.raises(StoreError, match="expected 2 hashes at level 4 from index 0"):
            source.get_nodes(4, 0, 2)
        with pytest.raises(StoreError, match="expected 5 hashes at level 0 from index 18"):
            source.get_nodes(0, 18, 23)


def test_checkpoints(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        assert latest_checkpoint(conn, log_id) is None
        trail = _interleaved_trail()
        cp1 = StoredCheckpoint(size=7, root=b"\x07" * 32, note="note 7\n", ts=1)
        append_batch(conn, log_id, trail.records[:7], checkpoint=cp1)
        cp2 = StoredCheckpoint(size=17, root=b"\x11" * 32, note="note 17 — ü\n", ts=2)
        append_batch(conn, log_id, trail.records[7:], checkpoint=cp2)
        assert list_checkpoints(conn, log_id) == [cp1, cp2]
        assert list_checkpoints(conn, log_id, min_size=8) == [cp2]
        assert list_checkpoints(conn, log_id, max_size=8) == [cp1]
        assert latest_checkpoint(conn, log_id) == cp2
        assert get_checkpoint(conn, log_id, 7) == cp1
        with pytest.raises(NotFoundError, match="no checkpoint of size 8"):
            get_checkpoint(conn, log_id, 8)
        with pytest.raises(StoreError, match="checkpoint root must be 32 bytes, got 3"):
            append_batch(conn, log_id, [], checkpoint=StoredCheckpoint(18, b"abc", "x", 3))


KEY_A = "audit.example+1a2b3c4d+AQID"
KEY_B = "audit.example+99999999+AQIE"


def test_signing_keys(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        register_key(conn, log_id, KEY_A, created=10)
        register_key(conn, log_id, KEY_A, created=11)  # again: a no-op
        register_key(conn, log_id, KEY_B, created=20)
        retire_key(conn, log_id, "audit.example", "1a2b3c4d", retired=30)
        retire_key(conn, log_id, "audit.example", "1a2b3c4d", retired=40)  # keeps the first
        keys = list_keys(conn, log_id)
        assert [(k.key_id, k.created, k.retired) for k in keys] == [
            ("1a2b3c4d", 10, 30),
            ("99999999", 20, None),
        ]
        with pytest.raises(FormatError, match="already registered with another public key"):
            register_key(conn, log_id, "audit.example+1a2b3c4d+AQIF", created=50)
        with pytest.raises(FormatError, match="8 lowercase hex digits"):
            register_key(conn, log_id, "audit.example+1A2B3C4D+AQID", created=50)
        with pytest.raises(FormatError, match=r"must read <name>\+<hex key id>\+<base64 key>"):
            register_key(conn, log_id, "no-plus-signs", created=50)
        with pytest.raises(NotFoundError, match=r"has no key audit\.example\+00000000"):
            retire_key(conn, log_id, "audit.example", "00000000", retired=1)


def test_iter_records_yields_what_is_stored_after_tampering(
    migrated_engine: Engine,
    admin_connection: Callable[[], AbstractContextManager[Connection]],
) -> None:
    """C8 input: a deleted record leaves a gap and an edited column reads back edited; the store
    reports rows as they are, for the verifier to judge."""
    trail = _interleaved_trail()
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
        append_batch(conn, log_id, trail.records)
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM payloads WHERE seq = 5")
        conn.exec_driver_sql("DELETE FROM records WHERE seq = 5")
        conn.exec_driver_sql("UPDATE records SET kind = 'bogus' WHERE seq = 6")
    with migrated_engine.connect() as conn:
        stored = list(iter_records(conn, log_id, batch=2))
    assert [r.seq for r in stored] == [s for s in range(len(trail.records)) if s != 5]
    assert stored[5].kind == "bogus"
    assert stored[5].body == trail.records[6].body
