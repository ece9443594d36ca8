"""StoredNodeSource gives the same roots and proofs as the ledger's in-memory source."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from store_helpers import TrailBuilder

from auditlog.errors import StoreError
from auditlog.ledger.merkle import (
    MemoryNodeSource,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from auditlog.store.ledger_store import (
    StoredNodeSource,
    append_batch,
    ensure_log,
    load_log_state,
)

NUM_RECORDS = 300  # persisted nodes at levels 4 (18 of them) and 8 (1)
FLUSH = 37  # odd batch size, so flushes straddle subtree boundaries
SIZES = (1, 2, 15, 16, 17, 255, 256, 257, 299, 300)


@pytest.fixture
def stored_log(migrated_engine: Engine) -> tuple[Engine, int, MemoryNodeSource]:
    trail = TrailBuilder("audit.example/merkle")
    trail.start("r")
    while trail.seq < NUM_RECORDS:
        trail.tokens("r", 1)
    memory = MemoryNodeSource()
    frontier = MerkleFrontier()
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, "audit.example/merkle")
    for first in range(0, NUM_RECORDS, FLUSH):
        batch = trail.records[first : first + FLUSH]
        new_nodes = []
        for record in batch:
            memory.append(record.leaf)
            new_nodes.extend(frontier.append(record.leaf))
        with migrated_engine.begin() as conn:  # one transaction per flush, as the recorder does
            append_batch(conn, log_id, batch, new_nodes)
    return migrated_engine, log_id, memory


def test_roots_and_proofs_match_memory(stored_log: tuple[Engine, int, MemoryNodeSource]) -> None:
    engine, log_id, memory = stored_log
    with engine.connect() as conn:
        stored = StoredNodeSource(conn, log_id)
        for size in SIZES:
            root = root_hash(size, memory)
            assert root_hash(size, stored) == root, size
            for index in {0, size // 2, size - 1}:
                proof = inclusion_proof(index, size, stored)
                assert proof == inclusion_proof(index, size, memory)
                verify_inclusion(memory.levels[0][index], index, size, proof, root)
            for size1 in (1, 16, size // 3 or 1):
                if size1 <= size:
                    proof = consistency_proof(size1, size, stored)
                    assert proof == consistency_proof(size1, size, memory)
                    verify_consistency(size1, size, proof, root_hash(size1, memory), root)


def test_frontier_restores_from_the_database(
    stored_log: tuple[Engine, int, MemoryNodeSource],
) -> None:
    engine, log_id, memory = stored_log
    with engine.connect() as conn:
        state = load_log_state(conn, log_id)
        assert state.size == NUM_RECORDS
        restored = MerkleFrontier.restore(state.size, StoredNodeSource(conn, log_id))
    assert restored.root() == root_hash(NUM_RECORDS, memory)


def test_missing_node_is_a_store_error(
    stored_log: tuple[Engine, int, MemoryNodeSource],
) -> None:
    engine, log_id, _ = stored_log
    with (
        engine.connect() as conn,
        pytest.raises(
            StoreError, match="expected 2 hashes at level 8 from index 0, the database holds 1"
        ),
    ):
        root_hash(NUM_RECORDS + 300, StoredNodeSource(conn, log_id))
