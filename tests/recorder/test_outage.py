"""C22: a database outage during recording: spool, replay in order, no loss, no duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine
from auditlog.store.db import normalize_url
from auditlog.synthetic import SyntheticEngine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "test.example/outage"


def _set_outage(db_url: str, down: bool) -> None:
    """Take the database away for real: refuse new connections and kill the open ones."""
    url = normalize_url(db_url)
    name = url.database
    admin = create_engine(
        url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if down else "true"}'
        )
        if down:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
    admin.dispose()


def test_outage_spools_and_replays_without_loss(db_url: str, tmp_path: Path) -> None:
    if make_url(db_url).get_backend_name() != "postgresql":
        pytest.skip("the outage is simulated on the PostgreSQL server")
    signer = Signer.generate(ORIGIN)
    spool = tmp_path / "spool.jsonl"
    engine = SyntheticEngine(seed=21)
    events = engine.run(30)
    third = len(events) // 3
    recorder = AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[signer], spool_path=spool, retry_interval_ms=50
    )
    try:
        for event in events[:third]:
            recorder.record(event)
        recorder.flush()
        _set_outage(db_url, down=True)
        for event in events[third : 2 * third]:
            recorder.record(event)
        recorder.flush()  # returns: the batches are fsynced in the spool
        assert recorder.stats.spooled_batches > 0
        assert spool.exists() and spool.stat().st_size > 0
    finally:
        _set_outage(db_url, down=False)
    for event in events[2 * third :]:
        recorder.record(event)
    recorder.close()
    assert recorder.stats.replayed_records > 0
    assert not spool.exists()

    db = create_db_engine(db_url, read_only=True)
    with db.connect() as conn:
        for request_id, truth in engine.truth.items():
            trail = read_trail(conn, ORIGIN, request_id)
            assert trail.token_ids == truth.token_ids  # nothing lost, nothing twice
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings
    # The final checkpoint covers everything, spooled records included.
    assert recorder.last_checkpoint_note is not None
    assert f"\n{report.records}\n" in recorder.last_checkpoint_note
