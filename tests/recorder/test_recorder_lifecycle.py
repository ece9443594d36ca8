"""The recorder's life cycle: the constructor does no I/O, ``start()`` (or ``open()``, or
``with``) takes the writer lock and resumes the log, ``close()`` stops it.

Tests that take ``db_url`` run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from auditlog.errors import RecorderError
from auditlog.events import FinishReason, ModelRef, RequestFinished, RequestStarted
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import WriterLockError, create_db_engine, upgrade
from auditlog.verifier import verify_database

ORIGIN = "test.example/lifecycle"
TARGET = ModelRef(name="t", weights_sha256="a" * 64, tokenizer_sha256="b" * 64)


def _start(request_id: str) -> RequestStarted:
    return RequestStarted(
        request_id=request_id,
        tenant="t",
        principal="p",
        prompt_token_ids=(1, 2),
        prompt_text="hi",
        params={"max_tokens": 1},
        target=TARGET,
        draft=None,
        ts=1,
    )


def _end(request_id: str) -> RequestFinished:
    return RequestFinished(
        request_id=request_id, reason=FinishReason.STOP, n_generated=0, n_delivered=0, ts=2
    )


def test_constructor_does_no_io_and_start_reports_an_unreachable_database(
    tmp_path: Path,
) -> None:
    """Building a recorder on a database that does not answer neither connects nor raises; the
    failure comes from ``start()``, which then holds nothing (no lock, no thread)."""
    engine = create_db_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    signer = Signer.generate(ORIGIN)
    recorder = AuditRecorder(
        engine=engine, origin=ORIGIN, signers=[signer], spool_path=tmp_path / "spool.jsonl"
    )
    assert not (tmp_path / "spool.jsonl").exists()
    with pytest.raises(RecorderError, match="not started"):
        recorder.record(_start("r-1"))
    with pytest.raises(OperationalError, match=r"(?i)connect|refused"):
        recorder.start()
    recorder.close()  # nothing to stop
    engine.dispose()


def test_start_takes_the_writer_lock_and_with_starts_and_closes(
    db_url: str, tmp_path: Path
) -> None:
    """C9: one writer per log. Two recorders of one origin can be built; only one can start;
    after it closes, the other starts through ``with`` and appends to the same log, which then
    verifies intact."""
    upgrade(db_url)
    signer = Signer.generate(ORIGIN)
    engines = [create_db_engine(db_url), create_db_engine(db_url)]
    first, second = (
        AuditRecorder(
            engine=e, origin=ORIGIN, signers=[signer], spool_path=tmp_path / f"spool-{i}.jsonl"
        )
        for i, e in enumerate(engines)
    )
    with first.start():
        with pytest.raises(RecorderError, match="already started"):
            first.start()
        with pytest.raises(WriterLockError):
            second.start()
        first.record(_start("r-1"))
        first.record(_end("r-1"))
    with second:
        second.record(_start("r-2"))
        second.record(_end("r-2"))
    for engine in engines:
        engine.dispose()
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.verdict.value == "intact", report.findings
    assert report.records == 4
