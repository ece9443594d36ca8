"""RFC 3161 trusted time for checkpoints, against a local timestamp authority made with
``openssl ts`` (its root and TSA certificates are created by the test): each checkpoint's note
hash is timestamped in the background, the token stored with the checkpoint, and
``auditlog verify --tsa-cert`` checks every token against the certificates given out of band and
shows the trusted time. Plays the attacker: a token moved to another checkpoint, a token of
another TSA, tokens deleted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection
from tsa_env import LocalTsa, local_tsa, make_certificates
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine, get_log_id, list_checkpoints
from auditlog.store.timestamps import list_timestamps
from auditlog.synthetic import SyntheticEngine
from auditlog.witnesses.timestamper import Timestamper
from auditlog.witnesses.tsa import (
    TimestampError,
    load_tsa_certificates,
    request_timestamp,
    verify_timestamp,
)

ORIGIN = "test.example/timestamped"
Admin = Callable[[], AbstractContextManager[Connection]]


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path / "tsa") as running:
        yield running


@pytest.fixture
def stamped(db_url: str, tmp_path: Path, tsa: LocalTsa) -> dict[str, Any]:
    signer = Signer.generate(ORIGIN)
    timestamper = Timestamper(db_url, tsa.url)
    before = datetime.now(UTC).replace(microsecond=0)
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[timestamper],
        spool_path=tmp_path / "spool",
        checkpoint_every=30,
        max_batch_events=8,
    ) as recorder:
        for event in SyntheticEngine(seed=21).run(6):
            recorder.record(event)
    timestamper.close()
    assert timestamper.num_failed == 0 and timestamper.num_stamped >= 2
    return {"db": db_url, "key": signer.verifier_key, "certs": tsa.certs_pem, "before": before}


def _verify(rec: dict[str, Any], certs: Path) -> tuple[int, dict[str, Any]]:
    args = ["verify", "--db", rec["db"], "--key", rec["key"], "--tsa-cert", str(certs), "--json"]
    result = CliRunner().invoke(app, args)
    return result.exit_code, orjson.loads(result.stdout)


def _codes(out: dict[str, Any]) -> list[str]:
    return [f["code"] for f in out["witness_findings"]]


def test_every_checkpoint_timestamped_and_verified(stamped: dict[str, Any]) -> None:
    engine = create_db_engine(stamped["db"])
    with engine.connect() as conn:
        log_id = get_log_id(conn, ORIGIN)
        sizes = [c.size for c in list_checkpoints(conn, log_id)]
        stamps = list_timestamps(conn, log_id)
    engine.dispose()
    assert [s.size for s in stamps] == sizes
    code, out = _verify(stamped, stamped["certs"])
    assert (code, out["witness_findings"]) == (0, [])
    trusted = datetime.fromisoformat(out["trusted_time"][ORIGIN])
    assert stamped["before"] <= trusted <= datetime.now(UTC)


def test_token_for_another_note_is_refused(tsa: LocalTsa) -> None:
    """A token verifies only over the note it was issued for."""
    certs = load_tsa_certificates(tsa.certs_pem.read_bytes())
    response, _ = request_timestamp(tsa.url, "a checkpoint note\n")
    assert verify_timestamp(response, "a checkpoint note\n", certs)
    with pytest.raises(TimestampError, match="Mismatch"):
        verify_timestamp(response, "another checkpoint note\n", certs)


def test_token_moved_to_another_checkpoint_fails(
    stamped: dict[str, Any], admin_connection: Admin
) -> None:
    """The administrator re-labels the first checkpoint's token as the latest's (to date the
    latest records earlier): it does not verify over the latest note: integrity failure (1)."""
    with admin_connection() as conn:
        conn.exec_driver_sql(
            "DELETE FROM timestamps WHERE size = (SELECT max(size) FROM timestamps)"
        )
        conn.exec_driver_sql(
            "UPDATE timestamps SET size = (SELECT max(size) FROM checkpoints) "
            "WHERE size = (SELECT min(size) FROM timestamps)"
        )
    code, out = _verify(stamped, stamped["certs"])
    assert code == 1 and "timestamp.invalid" in _codes(out)


def test_token_of_another_tsa_fails(stamped: dict[str, Any], tmp_path: Path) -> None:
    """Verified against another authority's certificates, the tokens do not verify (1)."""
    other = make_certificates(tmp_path / "other", "some other TSA")
    code, out = _verify(stamped, other)
    assert code == 1 and set(_codes(out)) == {"timestamp.invalid", "timestamp.missing"}


def test_deleted_tokens_leave_the_log_unproven(
    stamped: dict[str, Any], admin_connection: Admin
) -> None:
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM timestamps")
    code, out = _verify(stamped, stamped["certs"])
    assert code == 3 and _codes(out) == ["timestamp.missing"] and out["trusted_time"] == {}


def _export(stamped: dict[str, Any], tmp_path: Path, admin_connection: Admin) -> Path:
    """The bundle of the request whose trail ends last (pinned to a stamped checkpoint)."""
    with admin_connection() as conn:
        request = conn.exec_driver_sql(
            "SELECT request_id FROM records WHERE request_id IS NOT NULL ORDER BY seq DESC LIMIT 1"
        ).scalar_one()
    out = tmp_path / "bundle.json"
    args = ["export", "--db", stamped["db"], "--request", request, "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    return out


def _verify_bundle(path: Path, key: str, certs: Path) -> tuple[int, dict[str, Any]]:
    args = ["verify-bundle", str(path), "--key", key, "--tsa-cert", str(certs), "--json"]
    result = CliRunner().invoke(app, args)
    return result.exit_code, orjson.loads(result.stdout)


def test_bundle_carries_the_timestamp_and_verify_bundle_checks_it(
    stamped: dict[str, Any], tmp_path: Path, admin_connection: Admin
) -> None:
    """C20 + trusted time: the bundle carries its checkpoint's RFC 3161 token; verify-bundle
    --tsa-cert verifies it over the checkpoint and shows the trusted time (0). The bundle holder
    attacks: a token of another checkpoint swapped in fails (1); the token removed leaves the
    bundle unproven (3); another authority's certificate fails (1). Without --tsa-cert the
    bundle verifies as before (0)."""
    from dataclasses import replace

    from auditlog.bundle.format import decode_bundle, encode_bundle

    path = _export(stamped, tmp_path, admin_connection)
    bundle = decode_bundle(path.read_bytes())
    assert bundle.timestamp is not None
    key, certs = stamped["key"], stamped["certs"]
    code, out = _verify_bundle(path, key, certs)
    assert (code, out["status"], out["witness_findings"]) == (0, "intact", [])
    assert stamped["before"] <= datetime.fromisoformat(out["trusted_time"]) <= datetime.now(UTC)

    engine = create_db_engine(stamped["db"])
    with engine.connect() as conn:
        first = list_timestamps(conn, get_log_id(conn, ORIGIN))[0]
    engine.dispose()
    assert first.response != bundle.timestamp
    for name, forged, expected in (
        ("moved", replace(bundle, timestamp=first.response), (1, "timestamp.invalid")),
        ("stripped", replace(bundle, timestamp=None), (3, "timestamp.missing")),
    ):
        forged_path = tmp_path / f"{name}.json"
        forged_path.write_bytes(encode_bundle(forged))
        code, out = _verify_bundle(forged_path, key, certs)
        assert (code, [f["code"] for f in out["witness_findings"]]) == (
            expected[0],
            [expected[1]],
        )
        assert "trusted_time" not in out
    other = make_certificates(tmp_path / "other", "some other TSA")
    assert _verify_bundle(path, key, other)[0] == 1
    plain = CliRunner().invoke(app, ["verify-bundle", str(path), "--key", key])
    assert plain.exit_code == 0, plain.output
