"""C13, C16: sealed payloads, per-tenant keys, integrity without keys, crypto-shredding.

Every test that takes ``db_url`` runs on SQLite and on PostgreSQL, against payloads written by the
real recorder and checked by the real ``auditlog verify``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.crypto import DataKey, LocalKeyring, create_keyring, export_tenant, open_payload
from auditlog.errors import ConfigurationError, KeyUnavailableError, NotFoundError
from auditlog.events import (
    BatchStep,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.protect import ErasureOrder, RetentionPolicy, erase
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine, purge_freed_keys, read_data_key, read_data_keys
from auditlog.store.partitions import ledger_partitions
from auditlog.trails import Content, read_trail

ORIGIN = "test.example/sealed"
ADMIN = "test.example/admin"
SECRET = "PATIENT 4711 has stage-2 hypertension"
TARGET = ModelRef(name="t", weights_sha256="a" * 64, tokenizer_sha256="b" * 64)

AdminConn = Callable[[], AbstractContextManager[Connection]]


def _events(request_id: str, tenant: str, principal: str, step: int) -> list[Any]:
    now = time.time_ns()
    return [
        RequestStarted(
            request_id=request_id,
            tenant=tenant,
            principal=principal,
            prompt_token_ids=(901, 902, 903),
            prompt_text=f"{SECRET} ({request_id})",
            params={"max_tokens": 2},
            target=TARGET,
            draft=None,
            ts=now,
            engine="synthetic/1",
            client="key-1",
        ),
        BatchStep(
            step_id=step,
            ts=now + 1,
            token_ids=(31337, 31338),
            request_ids=(request_id, request_id),
            provenance=(Provenance.TARGET, Provenance.TARGET),
            drafts={},
        ),
        RequestFinished(
            request_id=request_id,
            reason=FinishReason.LENGTH,
            n_generated=2,
            n_delivered=2,
            ts=now + 2,
        ),
    ]


@pytest.fixture
def sealed(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """Three requests (two tenants) recorded sealed under a master keyring."""
    return record_sealed(db_url, tmp_path)


def record_sealed(
    db_url: str, tmp_path: Path, retention: RetentionPolicy | None = None
) -> dict[str, Any]:
    """r-a1 (acme, alice), r-a2 (acme, bob), r-b1 (beta, alice), sealed; an admin key."""
    keyring = create_keyring(tmp_path / "keyring.json")
    signer, admin = Signer.generate(ORIGIN), Signer.generate(ADMIN)
    witness = tmp_path / "witness"
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[DirectoryWitness(witness)],
        spool_path=tmp_path / "spool",
        key_provider=LocalKeyring.load(keyring),
        retention=retention,
    ) as recorder:
        for i, (rid, tenant, who) in enumerate(
            [("r-a1", "acme", "alice"), ("r-a2", "acme", "bob"), ("r-b1", "beta", "alice")]
        ):
            for event in _events(rid, tenant, who, i):
                recorder.record(event)
    admin_key = tmp_path / "admin.key"
    admin_key.write_text(admin.key_string + "\n")
    return {
        "db": db_url,
        "keyring": keyring,
        "keys": [signer.verifier_key, admin.verifier_key],
        "admin": admin,
        "admin_key": admin_key,
        "witness": witness,
    }


def _verify(rec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    args = ["verify", "--db", rec["db"], "--json"]
    for key in rec["keys"]:
        args += ["--key", key]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 2, result.output
    return result.exit_code, orjson.loads(result.stdout)


def _codes(report: dict[str, Any]) -> set[str]:
    return {
        f["code"] for log in report["logs"] for f in log["findings"] if f["severity"] == "error"
    }


def _raw_bytes(conn: Connection, db_url: str) -> bytes:
    """Every byte the database keeps on disk for the tables that hold content."""
    if conn.dialect.name == "sqlite":  # the database file and its write-ahead log
        path = Path(db_url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    conn.exec_driver_sql("CHECKPOINT")
    out = b""
    partitions = ledger_partitions(conn)  # a partitioned table keeps its rows in its partitions
    tables = ("records", "payloads", "data_keys")
    for table in [part for t in tables for part in partitions.get(t, [t])]:
        path = conn.exec_driver_sql(f"SELECT pg_relation_filepath('{table}')").scalar_one()
        out += bytes(conn.exec_driver_sql(f"SELECT pg_read_binary_file('{path}')").scalar_one())
    return out


def _trail(rec: dict[str, Any], request_id: str, keys: Any = None) -> Any:
    engine = create_db_engine(rec["db"], read_only=True)
    try:
        with engine.connect() as conn:
            return read_trail(conn, ORIGIN, request_id, keys=keys)
    finally:
        engine.dispose()


def _erase(rec: dict[str, Any], **order: Any) -> Any:
    engine = create_db_engine(rec["db"])
    try:
        return erase(
            engine,
            ErasureOrder(
                by="dpo@example",
                reason="data subject request",
                legal_basis="GDPR Art. 17(1)(a)",
                **order,
            ),
            signer=rec["admin"],
        )
    finally:
        engine.dispose()


def test_no_plaintext_in_database_bytes(
    sealed: dict[str, Any], admin_connection: AdminConn
) -> None:
    """C16: the prompt, the token payload and the data keys' clear form are not on disk."""
    with admin_connection() as conn:
        raw = _raw_bytes(conn, sealed["db"])
    assert SECRET.encode() not in raw
    assert b"token_ids" not in raw and b"prompt_text" not in raw
    assert b'"enc":{"alg":"A256GCM"' in raw  # the headers are there, readable, and say so


def test_tenant_auditor_reads_own_trail_and_no_other(
    sealed: dict[str, Any], tmp_path: Path
) -> None:
    """C16: an auditor holding only acme's KEK reads acme's trail; beta's stays sealed."""
    acme = LocalKeyring.load(export_tenant(sealed["keyring"], tmp_path / "acme.json", "acme"))
    trail = _trail(sealed, "r-a1", acme)
    assert trail.content is Content.DECRYPTED
    assert trail.prompt_text == f"{SECRET} (r-a1)"
    assert trail.token_ids == [31337, 31338]
    other = _trail(sealed, "r-b1", acme)
    assert other.content is Content.UNAVAILABLE and other.prompt_text is None
    assert "unavailable" in other.content_note
    assert _trail(sealed, "r-a1").content is Content.UNAVAILABLE  # no keyring at all
    # Beta's own KEK, from a different keyring file, cannot open acme's key either.
    beta = LocalKeyring.load(export_tenant(sealed["keyring"], tmp_path / "beta.json", "beta"))
    engine = create_db_engine(sealed["db"], read_only=True)
    with engine.connect() as conn:
        key = read_data_key(conn, 1, "r-a1")
        assert key is not None
        forged = DataKey(key.request_id, "beta", beta.kek_id("beta"), key.wrapped)
        with pytest.raises(KeyUnavailableError):
            beta.unwrap(forged.kek_id, forged.wrapped)
        with pytest.raises(KeyUnavailableError):
            beta.unwrap(key.kek_id, key.wrapped)
    engine.dispose()


def test_ciphertext_is_bound_to_its_record(sealed: dict[str, Any]) -> None:
    """C16: the associated data binds a ciphertext to log, seq and request: moved, it fails."""
    ring = LocalKeyring.load(sealed["keyring"])
    engine = create_db_engine(sealed["db"], read_only=True)
    with engine.connect() as conn:
        key = read_data_key(conn, 1, "r-a1")
        assert key is not None
        start = read_trail(conn, ORIGIN, "r-a1").records[0]
        assert start.payload is not None
        assert b"901" in open_payload(ring, key, log=ORIGIN, seq=start.seq, data=start.payload)
        for log, seq in ((ORIGIN, start.seq + 1), ("other/log", start.seq)):
            with pytest.raises(KeyUnavailableError, match="does not open"):
                open_payload(ring, key, log=log, seq=seq, data=start.payload)
    engine.dispose()


def test_verify_needs_no_key_and_erasure_keeps_it_intact(
    sealed: dict[str, Any], admin_connection: AdminConn
) -> None:
    """C16: erase -> verify exits 0 and names the erasure; the content is gone for good."""
    code, report = _verify(sealed)
    assert code == 0, report
    with admin_connection() as conn:
        wrapped = read_data_keys(conn, 1)["r-a1"].wrapped
    result = _erase(sealed, request_ids=["r-a1"])
    assert result.erased == [(ORIGIN, "r-a1")]
    code, report = _verify(sealed)
    assert code == 0, report
    log = next(r for r in report["logs"] if r["log"] == ORIGIN)
    assert log["erased"] == {
        "r-a1": {"log": ADMIN, "record": result.seq, "reason": "data subject request"}
    }
    trail = _trail(sealed, "r-a1", LocalKeyring.load(sealed["keyring"]))
    assert trail.content is Content.ERASED and trail.prompt_text is None
    assert trail.content_note == f"erased (record {result.seq} of {ADMIN}, data subject request)"
    assert trail.token_ids == [None, None] and trail.records  # nothing else changed
    with admin_connection() as conn:
        assert "r-a1" not in read_data_keys(conn, 1)
        # PostgreSQL keeps a deleted row while another session's snapshot may see it (other
        # tests share the server): the purge is repeated until that horizon has passed.
        for _ in range(40):
            raw = _raw_bytes(conn, sealed["db"])
            if wrapped not in raw or conn.dialect.name == "sqlite":
                break
            time.sleep(0.25)
            purge_freed_keys(conn)
    assert wrapped not in raw  # the wrapped key is not left in freed pages
    with pytest.raises(NotFoundError, match="already erased"):
        _erase(sealed, request_ids=["r-a1"])


def test_erase_by_tenant_principal_and_by_subject(sealed: dict[str, Any]) -> None:
    """C16: alice in acme only; then alice everywhere (her beta request)."""
    assert [r for _, r in _erase(sealed, tenant="acme", principal="alice").erased] == ["r-a1"]
    assert [r for _, r in _erase(sealed, subject="alice").erased] == ["r-b1"]
    assert _trail(sealed, "r-a2", LocalKeyring.load(sealed["keyring"])).content is Content.DECRYPTED
    code, report = _verify(sealed)
    assert code == 0 and set(next(r for r in report["logs"] if r["log"] == ORIGIN)["erased"]) == {
        "r-a1",
        "r-b1",
    }
    with pytest.raises(ConfigurationError):
        _erase(sealed, tenant="acme")


def test_key_deleted_without_erasure_fails(
    sealed: dict[str, Any], admin_connection: AdminConn
) -> None:
    """C16: a wrapped key deleted behind the log's back is an integrity failure (exit 1)."""
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM data_keys WHERE request_id = 'r-a2'")
    code, report = _verify(sealed)
    assert code == 1 and _codes(report) == {"key.absent"}
    assert _trail(sealed, "r-a2", LocalKeyring.load(sealed["keyring"])).content is Content.MISSING


def test_payload_deleted_fails_even_after_erasure(
    sealed: dict[str, Any], admin_connection: AdminConn
) -> None:
    """C16: erasure shreds keys, never payload rows: a deleted payload stays a failure."""
    _erase(sealed, request_ids=["r-a1"])
    with admin_connection() as conn:
        seq = read_data_keys(conn, 1)  # r-a1's key is gone; delete its start payload
        assert "r-a1" not in seq
        conn.exec_driver_sql(
            "DELETE FROM payloads WHERE seq = (SELECT seq FROM records WHERE request_id = 'r-a1' "
            "AND req_seq = 0)"
        )
    code, report = _verify(sealed)
    assert code == 1 and _codes(report) == {"payload.absent"}


def test_swapped_or_orphan_keys_fail(sealed: dict[str, Any], admin_connection: AdminConn) -> None:
    """C16: a wrapped key swapped for another request's, or one for no request, fails."""
    with admin_connection() as conn:
        keys = read_data_keys(conn, 1)
        conn.exec_driver_sql(
            "UPDATE data_keys SET wrapped = ? WHERE request_id = 'r-a2'".replace(
                "?", "%s" if conn.dialect.name == "postgresql" else "?"
            ),
            (keys["r-a1"].wrapped,),
        )
        conn.exec_driver_sql(
            "INSERT INTO data_keys (log_id, request_id, tenant, kek_id, wrapped) "
            "SELECT log_id, 'ghost', tenant, kek_id, wrapped FROM data_keys "
            "WHERE request_id = 'r-a1'"
        )
    code, report = _verify(sealed)
    assert code == 1 and _codes(report) == {"key.mismatch", "key.orphan"}


@pytest.mark.parametrize("column", ["tenant", "kek_id"])
def test_data_key_row_moved_to_another_tenant_or_kek_fails(
    sealed: dict[str, Any], admin_connection: AdminConn, column: str
) -> None:
    """C16: the ``tenant`` and ``kek_id`` columns of a ``data_keys`` row copy its
    ``request.start`` (``tenant``, ``enc.kek``). An edited one hid the key from an erasure by
    tenant, or made the content unreadable to its tenant's auditor, and verified intact."""
    with admin_connection() as conn:
        conn.exec_driver_sql(
            f"UPDATE data_keys SET {column} = 'elsewhere' WHERE request_id = 'r-a1'"
        )
    code, report = _verify(sealed)
    assert code == 1 and _codes(report) == {"key.mismatch"}
    finding = next(f for log in report["logs"] for f in log["findings"])
    assert "elsewhere" in finding["actual"] and "r-a1" in finding["message"]


def test_erasure_record_without_the_deletion_fails(
    sealed: dict[str, Any], admin_connection: AdminConn
) -> None:
    """C16: an erasure whose key is put back (restored from a backup) is caught."""
    with admin_connection() as conn:
        key = read_data_keys(conn, 1)["r-a1"]
    _erase(sealed, request_ids=["r-a1"])
    with admin_connection() as conn:
        conn.exec_driver_sql(
            "INSERT INTO data_keys (log_id, request_id, tenant, kek_id, wrapped) VALUES "
            + (
                "(1, 'r-a1', %s, %s, %s)"
                if conn.dialect.name == "postgresql"
                else "(1, 'r-a1', ?, ?, ?)"
            ),
            (key.tenant, key.kek_id, key.wrapped),
        )
    code, report = _verify(sealed)
    assert code == 1 and _codes(report) == {"erasure.incomplete"}


def test_keyring_file_rules(tmp_path: Path) -> None:
    """C16: a keyring is created 0600, never overwritten, and refused when others can read it."""
    path = create_keyring(tmp_path / "k.json", tenants=["acme"])
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(ConfigurationError, match="never overwritten"):
        create_keyring(path)
    ring = LocalKeyring.load(path)
    with pytest.raises(KeyUnavailableError, match="no key-encryption key of 'beta'"):
        ring.kek_id("beta")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="must be 0600"):
        LocalKeyring.load(path)
    with pytest.raises(ConfigurationError, match="not found"):
        LocalKeyring.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    bad.chmod(0o600)
    with pytest.raises(ConfigurationError, match="malformed"):
        LocalKeyring.load(bad)


def test_api_trail_and_html_show_decrypted_unavailable_or_erased(sealed: dict[str, Any]) -> None:
    """C16: the API's trail (and its HTML page) opens sealed content with the tenant's KEK,
    says "unavailable" without it, and "erased (record N, reason)" after an erasure; the
    verification verdict is the same in all three."""
    from auditlog.api.html import render_transcript
    from auditlog.api.trail import trail_public
    from auditlog.bundle.verify import parse_verifier_keys
    from auditlog.store.trail_reads import find_trail

    trusted = parse_verifier_keys(sealed["keys"][:1])
    ring = LocalKeyring.load(sealed["keyring"])

    admin = parse_verifier_keys(sealed["keys"][1:])

    def show(keys: Any) -> Any:
        engine = create_db_engine(sealed["db"], read_only=True)
        try:
            with engine.connect() as conn:
                stored = find_trail(conn, "r-a1", tenants=None, trusted=trusted)
                return trail_public(conn, stored, trusted, [], keys, admin=admin)
        finally:
            engine.dispose()

    opened, hidden = show(ring), show(None)
    assert opened.content == "decrypted" and opened.prompt_text == f"{SECRET} (r-a1)"
    assert [t.token_id for t in opened.tokens] == [31337, 31338]
    assert hidden.content == "unavailable" and hidden.prompt_text is None
    assert "unavailable" in render_transcript(hidden)
    result = _erase(sealed, request_ids=["r-a1"])
    erased = show(ring)
    note = f"erased (record {result.seq} of {ADMIN}, data subject request)"
    assert erased.content == "erased" and erased.content_note == note
    assert erased.prompt_text is None and note in render_transcript(erased)
    assert opened.verification.status == hidden.verification.status == erased.verification.status
    assert opened.verification.status == "anchored"


def test_sealed_requests_survive_an_outage_spool(db_url: str, tmp_path: Path) -> None:
    """C16, C22: a request started during an outage is spooled with its wrapped data key, and
    replay stores both: it verifies and opens like any other."""
    from auditlog.crypto import PayloadSealer
    from auditlog.recorder import LogSequencer
    from auditlog.recorder.spool import Spool
    from auditlog.recorder.translate import sequence_events
    from auditlog.store import upgrade
    from auditlog.verifier import verify_database

    ring = LocalKeyring.load(create_keyring(tmp_path / "keyring.json"))
    signer = Signer.generate(ORIGIN)
    upgrade(db_url)
    spool = Spool(tmp_path / "spool.jsonl")
    db = create_db_engine(db_url)
    with db.begin() as conn:
        seq = LogSequencer.resume(conn, ORIGIN, sealer=PayloadSealer(ring))
    sequence_events(seq, _events("r-out", "acme", "alice", 0))
    _, note = seq.checkpoint([signer])
    spool.append(seq.drain(), note)
    db.dispose()
    recorder = AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[signer], spool_path=spool.path, key_provider=ring
    )
    recorder.close()
    assert recorder.stats.replayed_records == 4  # start, tokens, step manifest, end
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok and report.logs[0].sealed.keys() == {"r-out"}, report.findings
    engine = create_db_engine(db_url, read_only=True)
    with engine.connect() as conn:
        trail = read_trail(conn, ORIGIN, "r-out", keys=ring)
    engine.dispose()
    assert trail.content is Content.DECRYPTED and trail.token_ids == [31337, 31338]


def test_unsigned_erasure_record_proves_nothing(
    sealed: dict[str, Any], admin_connection: AdminConn
) -> None:
    """C16: an administrator who deletes a key and appends a consistent but unsigned erasure
    record to the administrative log gets "unproven" at best, never "intact"."""
    from auditlog.ledger import RecordKind
    from auditlog.recorder import LogSequencer
    from auditlog.store import append_batch

    _erase(sealed, request_ids=["r-a1"])  # a real, signed administrative log exists
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM data_keys WHERE request_id = 'r-a2'")
        seq = LogSequencer.resume(conn, ADMIN)
        seq.append(
            RecordKind.ERASURE,
            ts=time.time_ns(),
            fields={
                "principal": "mallory",
                "reason": "cover-up",
                "legal_basis": "none",
                "erased": [{"log": ORIGIN, "request_id": "r-a2"}],
            },
        )
        batch = seq.drain()
        append_batch(conn, seq.log_id, batch.records, batch.nodes)
    code, report = _verify(sealed)
    assert code == 3, report
    log = next(r for r in report["logs"] if r["log"] == ORIGIN)
    assert set(log["erased"]) == {"r-a1"}
    assert any("no trusted checkpoint covers" in reason for reason in log["unproven"])


def test_erase_cli_hands_its_checkpoint_to_the_witness(sealed: dict[str, Any]) -> None:
    """C10, C16: `auditlog erase --witness-dir` keeps the administrative log's checkpoint with
    the witness, so a verify against that witness is intact and names the erasure."""
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "erase", "--db", sealed["db"], "--key-file", str(sealed["admin_key"]),
            "--by", "dpo@example", "--reason", "subject request",
            "--legal-basis", "GDPR Art. 17(1)(a)", "--subject", "bob",
            "--witness-dir", str(sealed["witness"]),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "erased 1 request(s): r-a2" in result.stdout
    args = ["verify", "--db", sealed["db"], "--witness-dir", str(sealed["witness"])]
    for key in sealed["keys"]:
        args += ["--key", key]
    verified = runner.invoke(app, args)
    assert verified.exit_code == 0, verified.output
    assert "request r-a2: payloads erased" in " ".join(verified.stdout.split())


def test_incremental_run_keeps_the_data_key_rules(
    sealed: dict[str, Any], admin_connection: AdminConn, tmp_path: Path
) -> None:
    """C16 with `--state` (docs/TRUST.md section 5): requests sealed before the saved state
    keep their rules after it: an erasure appended after the state accounts for an old
    request's key (0, naming the record); an old request's key deleted with no erasure is
    key.absent (1), though no record of it is read again."""
    state_key = tmp_path / "state.key"
    state_key.write_text(Signer.generate("verify-state").key_string)
    incremental = ["--state", str(tmp_path / "verify.state"), "--state-key", str(state_key)]

    def resumed() -> tuple[int, dict[str, Any]]:
        args = ["verify", "--db", sealed["db"], "--json", *incremental]
        for key in sealed["keys"]:
            args += ["--key", key]
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 2, result.output
        return result.exit_code, orjson.loads(result.stdout)

    code, report = resumed()
    assert code == 0, report
    result = _erase(sealed, request_ids=["r-a1"])
    code, report = resumed()
    assert code == 0, report
    log = next(r for r in report["logs"] if r["log"] == ORIGIN)
    assert log["resumed_from"] == log["size"]
    assert log["erased"]["r-a1"]["record"] == result.seq
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM data_keys WHERE request_id = 'r-a2'")
    code, report = resumed()
    assert code == 1 and _codes(report) == {"key.absent"}, report
