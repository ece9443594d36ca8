"""One writer per log (issue 9, finding 9; docs/DESIGN.md section 3), on SQLite and PostgreSQL.

A second recorder on the same origin is refused while the first runs; the auditor API refuses an
origin that another writer owns (running, or whose log holds inference records); the access
log's checkpoints go to its witness like any other log's (C10).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from auditlog.api import ApiSettings, create_app
from auditlog.errors import ConfigurationError
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import WriterLock, WriterLockError, create_db_engine, upgrade
from auditlog.store.ledger_store import get_log_id, latest_checkpoint
from auditlog.synthetic import SyntheticEngine

ORIGIN = "test.example/one-writer"


def _recorder(db_url: str, tmp_path: Path, name: str) -> AuditRecorder:
    return AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[Signer.generate(ORIGIN)],
        spool_path=tmp_path / f"{name}.spool",
    )


def test_second_recorder_on_a_log_is_refused(db_url: str, tmp_path: Path) -> None:
    first = _recorder(db_url, tmp_path, "a")
    try:
        with pytest.raises(WriterLockError, match="already has a writer"):
            _recorder(db_url, tmp_path, "b")
        engine = create_db_engine(db_url)
        other = WriterLock(engine=engine, origin="test.example/another-log")
        other.acquire()  # another origin is another lock
        other.release()
        engine.dispose()
    finally:
        first.close()
    second = _recorder(db_url, tmp_path, "b")  # the lock went with the first writer
    second.close()


def _api(db_url: str, tmp_path: Path, origin: str, witness: Path | None = None) -> TestClient:
    key_file = tmp_path / "api.key"
    key_file.write_text(Signer.generate(origin).key_string + "\n")
    settings = ApiSettings(
        db_url=db_url, api_origin=origin, api_signing_key=key_file, api_witness_dir=witness
    )
    return TestClient(create_app(settings))


def test_api_refuses_an_origin_another_writer_owns(db_url: str, tmp_path: Path) -> None:
    recorder = _recorder(db_url, tmp_path, "a")
    engine = SyntheticEngine(seed=1)
    for event in engine.run(2):
        recorder.record(event)
    try:
        with (
            pytest.raises(ConfigurationError, match="already has a writer"),
            _api(db_url, tmp_path, ORIGIN),
        ):
            pass
    finally:
        recorder.close()
    # The recorder is gone, but the log is still an inference log: not the API's to append to.
    with (
        pytest.raises(ConfigurationError, match="give the API its own --origin"),
        _api(db_url, tmp_path, ORIGIN),
    ):
        pass


def test_access_log_checkpoints_go_to_the_witness(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    origin = "test.example/api-access"
    witness = tmp_path / "witness"
    with _api(db_url, tmp_path, origin, witness) as client:
        assert client.get("/v1/logs").status_code == 401  # not logged: no caller
        with pytest.raises(WriterLockError):  # the running API owns its access log
            _second = WriterLock(engine=create_db_engine(db_url), origin=origin)
            _second.acquire()
        client.app.state.auditlog.access_log.record(  # type: ignore[attr-defined]
            key=_admin_key(db_url),
            endpoint="GET /v1/logs",
            request_ids=[],
            reason=None,
            status=200,
            params={},
        )
    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        latest = latest_checkpoint(conn, get_log_id(conn, origin))
    engine.dispose()
    assert latest is not None
    assert DirectoryWitness(witness).sizes(origin) == [latest.size]


def _admin_key(db_url: str) -> object:
    from auditlog.api import Role
    from auditlog.api.keys import create_key

    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        issued = create_key(conn, role=Role.ADMIN, tenants=[], label="admin")
    engine.dispose()
    return issued.key
