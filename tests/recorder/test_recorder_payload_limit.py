"""The recorder's payload limit (``AuditRecorder(max_payload_bytes=...)``, default 1 MiB): a
prompt over it is refused at once with ``PayloadTooLargeError`` (an ``AuditlogError``) and
nothing of it is stored; a prompt of exactly the limit is recorded; the other requests go on
(payload-protection issue; C23). On SQLite and PostgreSQL, with a real recorder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select

from auditlog.errors import AuditlogError, ConfigurationError, UnrecordableEventError
from auditlog.ledger import Signer
from auditlog.recorder import DEFAULT_MAX_PAYLOAD_BYTES, AuditRecorder, PayloadTooLargeError
from auditlog.recorder.limits import prompt_size
from auditlog.store import create_db_engine
from auditlog.store.schema import records
from auditlog.synthetic import SyntheticEngine
from auditlog.verifier import verify_database

ORIGIN = "recorder.test.invalid/limit-0"


def _stored_requests(db_url: str) -> set[str]:
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(records.c.request_id).where(records.c.req_seq == 0))
            return {r[0] for r in rows}
    finally:
        engine.dispose()


def test_default_is_one_mib() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 2**20
    assert issubclass(PayloadTooLargeError, UnrecordableEventError)
    assert issubclass(PayloadTooLargeError, AuditlogError)


def test_prompt_over_the_limit_is_refused_and_never_stored(db_url: str, tmp_path: Path) -> None:
    limit = 4096
    signer = Signer.generate(ORIGIN)
    engine = SyntheticEngine(seed=3)
    with AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[signer], spool_path=tmp_path / "s", max_payload_bytes=limit
    ) as recorder:
        at_text = dataclasses.replace(engine.start(2), prompt_text="é" * (limit // 2))
        at_ids = dataclasses.replace(engine.start(2), prompt_token_ids=tuple(range(limit)))
        over_text = dataclasses.replace(engine.start(2), prompt_text="é" * (limit // 2) + "x")
        over_ids = dataclasses.replace(engine.start(2), prompt_token_ids=(7,) * (limit + 1))
        assert prompt_size(at_text) == prompt_size(at_ids) == limit
        for event in (over_text, over_ids):
            with pytest.raises(PayloadTooLargeError, match=f"over the limit of {limit} bytes"):
                recorder.record(event)
            with pytest.raises(PayloadTooLargeError):  # its waiters learn why, at once
                recorder.wait_durable(event.request_id, 0, timeout=5)
        recorder.record(at_text)
        recorder.record(at_ids)
        while (step := engine.step()) is not None:  # steps of refused requests lose their tokens
            recorder.record(step)
        for end in engine.finish_done():
            recorder.record(end)
        recorder.flush()
    assert _stored_requests(db_url) == {at_text.request_id, at_ids.request_id}
    assert verify_database(db_url, keys=[signer.verifier_key]).ok


def test_bad_limit_is_a_configuration_error(tmp_path: Path) -> None:
    signer = Signer.generate(ORIGIN)
    for bad in (0, -5):
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            AuditRecorder.open(
                f"sqlite:///{tmp_path / 'a.db'}", origin=ORIGIN, signers=[signer],
                spool_path=tmp_path / "s", max_payload_bytes=bad,
            )  # fmt: skip
