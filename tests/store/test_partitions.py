"""Ledger tables partitioned by log (``auditlog db upgrade --partitions N``), PostgreSQL only.

C9: every partition carries the append-only trigger and refuses UPDATE/DELETE/TRUNCATE to PUBLIC;
C17: the writer role gets INSERT and SELECT on every partition and nothing more; C1/C8: the whole
record-and-verify path works on the partitioned tables, and the verifier still catches an
administrator who edits a partition behind the triggers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.errors import ConfigurationError
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine, grant_writer
from auditlog.store.db import current_revision, head_revision, normalize_url, upgrade
from auditlog.store.partitions import ledger_partitions
from auditlog.store.schema import APPEND_ONLY_MESSAGE, LEDGER_TABLES
from auditlog.synthetic import SyntheticEngine
from auditlog.verifier import verify_database

pytestmark = pytest.mark.postgres

NUM_PARTITIONS = 4
ORIGINS = tuple(f"fleet.example/log-{i}" for i in range(3))


def _record(url: str, origin: str, signer: Signer, tmp_path: Path, seed: int) -> int:
    """Record a synthetic workload into ``origin`` (schema left as it is); the number of records
    written."""
    with AuditRecorder.open(
        url,
        migrate=False,
        origin=origin,
        signers=[signer],
        spool_path=tmp_path / f"spool-{uuid.uuid4().hex}.jsonl",
        witnesses=[DirectoryWitness(tmp_path / "witness")],
        checkpoint_every=20,
    ) as recorder:
        for event in SyntheticEngine(seed=seed).run(12):
            recorder.record(event)
    return recorder.stats.records


@pytest.fixture
def pg_url(make_pg_database: Callable[[], AbstractContextManager[str]]) -> Iterator[str]:
    with make_pg_database() as url:
        yield url


@pytest.fixture
def signers() -> dict[str, Signer]:
    return {origin: Signer.generate(origin) for origin in ORIGINS}


@pytest.fixture
def filled(pg_url: str, signers: dict[str, Signer], tmp_path: Path) -> str:
    """A database migrated to 0004 holding one log, then partitioned, then given two more logs:
    the conversion keeps the rows and the partitioned tables take new ones."""
    upgrade(pg_url, "0004")
    _record(pg_url, ORIGINS[0], signers[ORIGINS[0]], tmp_path, seed=1)
    upgrade(pg_url, partitions=NUM_PARTITIONS)
    for i, origin in enumerate(ORIGINS[1:], start=2):
        _record(pg_url, origin, signers[origin], tmp_path, seed=i)
    return pg_url


def _keys(signers: dict[str, Signer]) -> list[str]:
    return [s.verifier_key for s in signers.values()]


def test_partitions_exist_in_the_catalog(filled: str) -> None:
    """Each ledger table is a HASH (log_id) parent with N partitions; other tables are not."""
    engine = create_db_engine(filled)
    try:
        with engine.connect() as conn:
            assert current_revision(conn.engine) == head_revision()
            found = ledger_partitions(conn)
            strategies = dict(
                conn.exec_driver_sql(
                    "SELECT c.relname, p.partstrat FROM pg_partitioned_table p "
                    "JOIN pg_class c ON c.oid = p.partrelid"
                ).all()
            )
            # the rows of the three logs are spread over more than one partition
            used = conn.exec_driver_sql("SELECT count(DISTINCT tableoid) FROM records").scalar_one()
    finally:
        engine.dispose()
    assert set(found) == set(LEDGER_TABLES) == set(strategies)
    assert set(strategies.values()) == {"h"}
    for table, parts in found.items():
        assert parts == [f"{table}_p{i}" for i in range(NUM_PARTITIONS)]
    assert used > 1


def test_record_and_verify_intact_on_partitions(
    filled: str, signers: dict[str, Signer], tmp_path: Path
) -> None:
    """C1, C10: the converted log and the new ones verify intact against keys and witness."""
    report = verify_database(filled, keys=_keys(signers), witness_dir=tmp_path / "witness")
    assert report.ok, report.findings
    assert report.verdict == "intact"
    assert sorted(r.log for r in report.logs) == sorted(ORIGINS)
    assert report.records > 0


def _partition_of(engine: Engine, table: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.exec_driver_sql(f"SELECT tableoid::regclass FROM {table} LIMIT 1").scalar_one()
        )


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_every_partition_refuses_changes(filled: str, table: str) -> None:
    """C9: UPDATE, DELETE and TRUNCATE fail on the parent and on every partition named directly,
    and change nothing."""
    engine = create_db_engine(filled)
    try:
        with engine.connect() as conn:
            before = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            parts = ledger_partitions(conn)[table]
        assert before > 0 or table in (
            "cosignatures",
            "timestamps",
        )  # statement triggers fire anyway
        for target in (table, *parts):
            for sql in (
                f"UPDATE {target} SET log_id = log_id",
                f"DELETE FROM {target}",
                f"TRUNCATE {target} CASCADE",
            ):
                with pytest.raises(DBAPIError, match=APPEND_ONLY_MESSAGE), engine.begin() as c:
                    c.exec_driver_sql(sql)
        with engine.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one() == before
    finally:
        engine.dispose()


@pytest.fixture
def writer_role(filled: str) -> Iterator[str]:
    role = f"auditlog_writer_{uuid.uuid4().hex[:12]}"
    engine = create_db_engine(filled)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} NOLOGIN")
        grant_writer(conn, role)
    yield role
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")
    engine.dispose()


def test_writer_grants_on_every_partition(filled: str, writer_role: str) -> None:
    """C17: INSERT and SELECT on every partition; never UPDATE, DELETE or TRUNCATE, so even with
    every trigger disabled by an administrator, the writer cannot change a row of a partition."""
    admin = create_engine(normalize_url(filled), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            parts = [p for ps in ledger_partitions(conn).values() for p in ps]
            for name in (*LEDGER_TABLES, *parts):
                for privilege, expected in (
                    ("INSERT", True),
                    ("SELECT", True),
                    ("UPDATE", False),
                    ("DELETE", False),
                    ("TRUNCATE", False),
                ):
                    has = conn.exec_driver_sql(
                        f"SELECT has_table_privilege('{writer_role}', '{name}', '{privilege}')"
                    ).scalar_one()
                    assert has is expected, (name, privilege)
            for name in (*LEDGER_TABLES, *parts):
                conn.exec_driver_sql(f"ALTER TABLE {name} DISABLE TRIGGER ALL")
        for name in parts:
            for sql in (f"UPDATE {name} SET log_id = log_id", f"DELETE FROM {name}"):
                with pytest.raises(DBAPIError, match="permission denied"), admin.begin() as c:
                    c.exec_driver_sql(f"SET ROLE {writer_role}")
                    c.exec_driver_sql(sql)
    finally:
        admin.dispose()


def test_verifier_catches_an_edit_inside_a_partition(
    filled: str, signers: dict[str, Signer], tmp_path: Path
) -> None:
    """C8: an administrator who disables one partition's trigger and rewrites a record there is
    caught by verify (the partitioning hides nothing)."""
    engine = create_db_engine(filled)
    part = _partition_of(engine, "records")
    admin = create_engine(normalize_url(filled), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {part} DISABLE TRIGGER ALL")
            conn.exec_driver_sql(
                f"UPDATE {part} SET tenant = 'mallory' "
                f"WHERE (log_id, seq) = (SELECT log_id, max(seq) FROM {part} GROUP BY log_id "
                "ORDER BY log_id LIMIT 1)"
            )
    finally:
        admin.dispose()
        engine.dispose()
    report = verify_database(filled, keys=_keys(signers), witness_dir=tmp_path / "witness")
    assert not report.ok
    assert report.verdict == "failed"


def test_partitions_refused_where_they_cannot_apply(pg_url: str, tmp_path: Path) -> None:
    """Bad input, clear error: SQLite has no partitions; the count is chosen once; the CLI exits
    2 with one line on a count out of range."""
    with pytest.raises(ConfigurationError, match="PostgreSQL feature"):
        upgrade(f"sqlite:///{tmp_path / 'a.db'}", partitions=4)
    upgrade(pg_url)  # unpartitioned, past 0005
    with pytest.raises(ConfigurationError, match="no partitions, not 4"):
        upgrade(pg_url, partitions=4)
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", pg_url, "--partitions", "1"])
    assert result.exit_code == 2
    engine = create_db_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert ledger_partitions(conn) == {}
    finally:
        engine.dispose()
