"""A streaming replica serves the auditor API and ``verify`` while the writer commits on the
primary.

The test builds a second PostgreSQL cluster with ``pg_basebackup`` (``replica_cluster.py``), then
records on the primary while reading the replica. Replication lag is never a failure and never
"intact" beyond what the replica holds: the replica is a transaction-consistent earlier state of the
primary, so verify says intact up to the replica's last checkpoint and reports records after it as
a pending tail (C10, C21); the API shows a trail as anchored or pending, never failed. Against a
witness that saw newer checkpoints, ``verify --standby`` reports the lag as pending, while the
same replica read as an ordinary database is a rollback (C10 stays as strict as on the primary).
The API's own access log (C18) and its keys stay on the primary: a replica cannot be written.

Skipped only where the PostgreSQL server tools are not installed and CI is not set.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from replica_cluster import find_pg_bin, streaming_replica
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from auditlog.api import ApiSettings, Role, create_app
from auditlog.api.keys import create_key
from auditlog.cli import app as cli
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.ledger.report import PENDING_SUFFIX
from auditlog.recorder import AuditRecorder
from auditlog.store.db import create_db_engine, normalize_url, upgrade
from auditlog.synthetic import SyntheticEngine
from auditlog.verifier import verify_database

pytestmark = pytest.mark.postgres

ORIGIN = "replica.example/engine"
API_ORIGIN = "replica.example/api-access"
CATCH_UP_S = 120.0  # the replica replays the whole cluster's WAL, other tests' too
#: Records of the engine's log (the API's access log, on the primary, grows with every read).
ENGINE_RECORDS = (
    f"SELECT count(*) FROM records JOIN logs ON logs.id = records.log_id WHERE origin = '{ORIGIN}'"
)


@pytest.fixture
def pg_bin() -> Path:
    found = find_pg_bin()
    if found is None:
        reason = "pg_basebackup and pg_ctl (the PostgreSQL server package) are not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and CI=true: the replica test must run")
        pytest.skip(reason)
    return found


@pytest.fixture
def cluster(
    make_pg_database: Callable[[], AbstractContextManager[str]], pg_bin: Path
) -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL) of one migrated database."""
    with make_pg_database() as primary:
        upgrade(primary)
        with streaming_replica(primary, pg_bin) as replica:
            yield primary, replica


def _count(url: str, sql: str) -> int:
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(sql).scalar_one())
    finally:
        engine.dispose()


def _admin(url: str, sql: str) -> None:
    engine = create_engine(normalize_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


#: How verify names a log with no records yet: what a replica shows before it replays the first.
EMPTY_LOG_REASON = "the log is empty"


def _caught_up(primary: str, replica: str) -> int:
    """Wait until the replica holds every record of the primary; that number."""
    want = _count(primary, ENGINE_RECORDS)
    deadline = time.monotonic() + CATCH_UP_S
    while _count(replica, ENGINE_RECORDS) != want:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)
    return want


def _check_replica_verdict(replica: str, signer: Signer) -> tuple[int, int | None]:
    """Verify the replica: never failed; intact, or unproven only by a pending tail (or, before
    the replica has replayed the log's first records, by the log being still empty)."""
    report = verify_database(replica, keys=[signer.verifier_key], origin=ORIGIN)
    assert report.ok, report.findings
    assert report.verdict in ("intact", "unproven")
    for log in report.logs:
        lagging = (r for r in log.unproven if not r.startswith(EMPTY_LOG_REASON))
        assert all(reason.endswith(PENDING_SUFFIX) for reason in lagging), log.unproven
    return report.records, report.anchored.get(ORIGIN)


def _check_witnessed_lag(primary: str, replica: str, signer: Signer, witness: Path) -> None:
    """C10 against a lagging standby: the witness holds a checkpoint the replica lacks. Read as
    an ordinary database, that is a rollback (failed): the detection stays as strong as on the
    primary. Read with ``standby=True`` (the database must be in recovery), it is a pending tail:
    unproven, never failed, never intact."""
    key = signer.verifier_key
    plain = verify_database(replica, keys=[key], witness_dir=witness, origin=ORIGIN)
    assert plain.verdict == "failed"
    assert "witness.rollback" in {str(f.code) for f in plain.findings}
    lagging = verify_database(replica, keys=[key], witness_dir=witness, origin=ORIGIN, standby=True)
    assert lagging.ok, lagging.findings
    assert lagging.verdict == "unproven"
    reasons = lagging.logs[0].unproven
    assert any("not yet replicated" in r for r in reasons), reasons
    assert all(r.endswith(PENDING_SUFFIX) for r in reasons), reasons
    args = ["verify", "--db", replica, "--key", key, "--witness-dir", str(witness)]
    assert CliRunner().invoke(cli, [*args, "--standby"]).exit_code == 3
    primary_args = ["verify", "--db", primary, "--key", key, "--standby"]
    refused = CliRunner().invoke(cli, primary_args)
    assert refused.exit_code == 2 and "not a standby" in refused.output, refused.output


def _api(primary: str, replica: str, signer: Signer, tmp_path: Path) -> tuple[TestClient, str]:
    key_file = tmp_path / "api.key"
    key_file.write_text(Signer.generate(API_ORIGIN).key_string + "\n")
    settings = ApiSettings(
        db_url=primary,
        api_read_db_url=replica,
        api_origin=API_ORIGIN,
        api_signing_key=key_file,
        api_trusted_keys=[signer.verifier_key],
    )
    engine = create_db_engine(primary)
    with engine.begin() as conn:
        token = create_key(conn, role=Role.ADMIN, label="replica test").token
    engine.dispose()
    return TestClient(create_app(settings)), token


def test_replica_serves_api_and_verify_while_primary_commits(
    cluster: tuple[str, str], tmp_path: Path
) -> None:
    primary, replica = cluster
    signer = Signer.generate(ORIGIN)
    witness = tmp_path / "witness"
    synthetic = SyntheticEngine(seed=7)
    events = synthetic.run(60)
    recorder = AuditRecorder.open(
        primary,
        origin=ORIGIN,
        signers=[signer],
        spool_path=tmp_path / "spool.jsonl",
        checkpoint_every=40,
        migrate=False,
        witnesses=[DirectoryWitness(witness)],
    )

    def write(batch: list[object]) -> None:
        for event in batch:
            recorder.record(event)  # type: ignore[arg-type]
        recorder.flush()

    client, token = _api(primary, replica, signer, tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    half = len(events) // 2
    with recorder, client:
        writer = threading.Thread(target=write, args=(events[:half],))
        writer.start()
        seen = []
        while writer.is_alive() or not seen:  # read the replica while the primary commits
            seen.append(_check_replica_verdict(replica, signer))
            answer = client.get("/v1/logs", headers=headers)
            assert answer.status_code == 200, answer.text
        writer.join()
        assert [size for size, _ in seen] == sorted(size for size, _ in seen)

        # Lag made visible: replay paused, the primary goes on; the replica shows its older
        # state, as intact or pending, never as failed, and never as the primary's size.
        _caught_up(primary, replica)
        before, anchored_before = _check_replica_verdict(replica, signer)
        _admin(replica, "SELECT pg_wal_replay_pause()")
        write(events[half:])
        primary_size = _count(primary, ENGINE_RECORDS)
        assert primary_size > before
        assert _check_replica_verdict(replica, signer) == (before, anchored_before)
        run = CliRunner().invoke(cli, ["verify", "--db", replica, "--key", signer.verifier_key])
        assert run.exit_code in (0, 3), run.output  # intact or pending, never 1 (failed)
        _check_witnessed_lag(primary, replica, signer, witness)
        logs = client.get("/v1/logs", headers=headers).json()
        assert {log["origin"]: log["checkpoint_size"] for log in logs}[ORIGIN] == anchored_before
        for request_id in list(synthetic.truth)[:5]:
            trail = client.get(f"/v1/requests/{request_id}", headers=headers)
            if trail.status_code == 200:
                assert trail.json()["verification"]["status"] in ("anchored", "pending")
            else:  # not yet replicated: not found, not failed
                assert trail.status_code == 404, trail.text

        # Replay resumed: the replica catches up with everything the primary committed.
        _admin(replica, "SELECT pg_wal_replay_resume()")
        assert _caught_up(primary, replica) == primary_size
    size, _ = _check_replica_verdict(replica, signer)
    assert size == primary_size
    caught_up = verify_database(
        replica, keys=[signer.verifier_key], witness_dir=witness, origin=ORIGIN, standby=True
    )
    on_primary = verify_database(
        primary, keys=[signer.verifier_key], witness_dir=witness, origin=ORIGIN
    )
    assert caught_up.verdict == on_primary.verdict == "intact", caught_up.logs[0].unproven
    # The API's access log went to the primary (the replica is read-only), one record per read.
    assert _count(primary, "SELECT count(*) FROM logs WHERE origin = '" + API_ORIGIN + "'") == 1
    with pytest.raises(DBAPIError, match="read-only transaction"):
        _admin(replica, "INSERT INTO logs (origin, created) VALUES ('x', 0)")
