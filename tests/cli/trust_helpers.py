"""Attackers of the trust model (docs/TRUST.md) against a real recorded database.

``record_db`` records real traffic through the recorder; ``writer`` opens a connection with the
powers of the writer role (INSERT and SELECT only: a PostgreSQL role made with ``grant_writer``;
on SQLite, whoever can write the file); ``admin`` (the root conftest's ``admin_connection``) can
do anything in the database. Nobody here holds the trusted signing key or writes the witness.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.crypto import LocalKeyring, create_keyring
from auditlog.ledger import DirectoryWitness, RecordKind, Signer, payload_bytes
from auditlog.recorder import AuditRecorder, LogSequencer
from auditlog.store import append_batch
from auditlog.store.db import normalize_url
from auditlog.store.roles import grant_writer
from auditlog.synthetic import SyntheticEngine

ORIGIN = "test.example/trust"


def record_db(
    db_url: str, tmp_path: Path, *, n_requests: int = 6, sealed: bool = False
) -> dict[str, Any]:
    """A database recorded by the real recorder, witnessed in ``tmp_path / "witness"``;
    ``sealed``: payloads sealed under a keyring in ``tmp_path`` (rows in ``data_keys``)."""
    signer = Signer.generate(ORIGIN)
    witness = tmp_path / "witness"
    keys = LocalKeyring.load(create_keyring(tmp_path / "keyring.json")) if sealed else None
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[DirectoryWitness(witness)],
        spool_path=tmp_path / "spool",
        checkpoint_every=30,
        max_batch_events=8,
        key_provider=keys,
    ) as recorder:
        for event in SyntheticEngine(seed=11).run(n_requests):
            recorder.record(event)
    return {"db": db_url, "key": signer.verifier_key, "witness": witness, "signer": signer}


def verify(*args: str) -> tuple[int, dict[str, Any]]:
    """``auditlog verify ARGS --json``: (exit code, report)."""
    result = CliRunner().invoke(app, ["verify", *args, "--json"])
    if result.exit_code == 2:
        return 2, {"error": result.output}
    return result.exit_code, orjson.loads(result.stdout)


def anchored(rec: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    """Verify with the trusted key and the witness: what an auditor runs."""
    return verify(
        "--db", rec["db"], "--key", rec["key"], "--witness-dir", str(rec["witness"]), *extra
    )


def codes(report: dict[str, Any]) -> set[str]:
    return {
        f["code"] for log in report["logs"] for f in log["findings"] if f["severity"] == "error"
    }


@contextmanager
def writer(db_url: str) -> Iterator[Connection]:
    """A transaction with the writer role's powers (INSERT, SELECT), committed at the end."""
    engine = create_engine(normalize_url(db_url), poolclass=NullPool)
    role = f"auditlog_writer_{uuid.uuid4().hex[:12]}"
    try:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE ROLE {role} NOLOGIN")
                grant_writer(conn, role)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL ROLE {role}")
            yield conn
    finally:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")
        engine.dispose()


def forge_tail(conn: Connection, *, origin: str = ORIGIN, ts: int | None = None) -> int:
    """Append a consistent, unsigned request (start, tokens, end) to ``origin`` the way the
    writer would, with no checkpoint; returns the new size."""
    seq = LogSequencer.resume(conn, origin)
    when = time.time_ns() if ts is None else ts
    seq.append(
        RecordKind.REQUEST_START,
        ts=when,
        request_id="forged-1",
        tenant="tenant-0",
        payload=payload_bytes({"prompt_token_ids": [1], "prompt_text": "forged prompt"}),
        fields={
            "principal": "mallory",
            "client": "key-1",
            "engine": "synthetic/1",
            "params": {},
            "target": {
                "name": "t",
                "weights_sha256": "a" * 64,
                "tokenizer_sha256": "b" * 64,
                "architecture": "x",
            },
            "draft": None,
        },
    )
    seq.append(
        RecordKind.TOKENS,
        ts=when,
        request_id="forged-1",
        tenant="tenant-0",
        payload=payload_bytes({"token_ids": [7], "drafts": []}),
        fields={"step": 10**6, "n": 1, "prov": ["target"]},
    )
    seq.append(
        RecordKind.STEP,
        ts=when,
        fields={"step": 10**6, "batch": [["forged-1", 1]], "n": 1, "passes": 1},
    )
    seq.append(
        RecordKind.REQUEST_END,
        ts=when,
        request_id="forged-1",
        tenant="tenant-0",
        fields={"reason": "stop", "n_generated": 1, "n_delivered": 1},
    )
    batch = seq.drain()
    append_batch(conn, seq.log_id, batch.records, batch.nodes)
    return seq.size
