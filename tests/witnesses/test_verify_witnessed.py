"""`auditlog verify --witness-key/--witness-policy` on logs cosigned by real aics-witness
processes (third-party C2SP tlog-witness servers run from the test-only environment built by
``scripts/witness_env.sh``; they declare Python >= 3.12 but run on 3.11, installed with
``--ignore-requires-python``). Each test plays an administrator who edits the stored
cosignatures behind the append-only triggers (C9), and checks the verdict: a cosignature that
does not verify is an integrity failure (exit 1); a log the policy does not cover is unproven
(exit 3); C10.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner
from witness_env import StartWitnesses

from auditlog.bundle.format import decode_bundle, encode_bundle
from auditlog.cli import app
from auditlog.ledger import Signer
from auditlog.ledger.cosignature import Cosignature, note_cosignatures
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.recorder import AuditRecorder
from auditlog.synthetic import SyntheticEngine
from auditlog.witnesses import WitnessPool

ORIGIN = "test.example/verify-witnessed"
Admin = Callable[[], AbstractContextManager[Connection]]


@pytest.fixture
def cosigned(db_url: str, tmp_path: Path, witnesses: StartWitnesses) -> dict[str, Any]:
    """A log recorded while three witnesses cosigned its checkpoints (the third one only until
    it is stopped half-way, so the latest checkpoint has two cosignatures of three)."""
    signer = Signer.generate(ORIGIN)
    ws = witnesses(3, {ORIGIN: signer.verifier_key})
    lines = [f"witness w{i} {w.vkey} {w.url}" for i, w in enumerate(ws)]
    policy_text = "\n".join([*lines, "group two 2 w0 w1 w2", "quorum two"])
    pool = WitnessPool(db_url, WitnessPolicy.parse(policy_text), timeout_s=2)
    engine = SyntheticEngine(seed=11)
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[pool],
        spool_path=tmp_path / "spool",
        checkpoint_every=30,
        max_batch_events=8,
    ) as recorder:
        events = list(engine.run(8))
        for event in events[: len(events) // 2]:
            recorder.record(event)
        recorder.flush()
        assert pool.wait_idle(60) and pool.state(ORIGIN).cosigned_by == ["w0", "w1", "w2"]
        ws[2].stop()
        for event in events[len(events) // 2 :]:
            recorder.record(event)
    pool.close()
    policy = tmp_path / "policy.txt"
    policy.write_text(policy_text)
    return {
        "db": db_url,
        "key": signer.verifier_key,
        "vkeys": [w.vkey for w in ws],
        "policy": policy,
    }


def _verify(rec: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["verify", "--db", rec["db"], "--key", rec["key"], "--json", *extra]
    result = CliRunner().invoke(app, args)
    return result.exit_code, orjson.loads(result.stdout) if result.stdout else {}


def _codes(out: dict[str, Any]) -> list[str]:
    return [f["code"] for f in out["witness_findings"]]


def test_policy_met_is_intact(cosigned: dict[str, Any]) -> None:
    """2-of-3 holds for the latest checkpoint: intact (0), no witness finding."""
    code, out = _verify(cosigned, "--witness-policy", str(cosigned["policy"]))
    assert (code, out["witness_findings"]) == (0, [])
    code, out = _verify(
        cosigned, "--witness-key", cosigned["vkeys"][0], "--witness-key", cosigned["vkeys"][1]
    )
    assert (code, out["witness_findings"]) == (0, [])


def test_policy_not_met_is_unproven(cosigned: dict[str, Any]) -> None:
    """All three keys required, but the third witness was down for the latest checkpoint: the
    ledger is intact, the verdict is unproven (3), and says which checkpoint the policy covers."""
    args = [a for v in cosigned["vkeys"] for a in ("--witness-key", v)]
    code, out = _verify(cosigned, *args)
    assert code == 3 and out["ok"] is True
    assert _codes(out) == ["witness.uncovered"]
    assert out["witness_findings"][0]["failed"] is False


def test_edited_cosignature_time_is_an_integrity_failure(
    cosigned: dict[str, Any], admin_connection: Admin
) -> None:
    """The administrator edits a stored cosignature's time: the witness's signature no longer
    verifies over (time, checkpoint): integrity failure (1), cosignature.invalid."""
    with admin_connection() as conn:
        conn.exec_driver_sql(
            "UPDATE cosignatures SET timestamp = timestamp + 1 "
            "WHERE size = (SELECT max(size) FROM cosignatures) AND witness = 'witness.test/w0'"
        )
    code, out = _verify(cosigned, "--witness-policy", str(cosigned["policy"]))
    assert code == 1 and "cosignature.invalid" in _codes(out)


def test_cosignature_moved_to_another_checkpoint_is_an_integrity_failure(
    cosigned: dict[str, Any], admin_connection: Admin
) -> None:
    """The third witness was down for the latest checkpoint; the administrator copies its
    cosignature of an earlier checkpoint onto the latest to make all-of-3 hold. The copy does
    not verify over the latest checkpoint: integrity failure (1), not intact."""
    with admin_connection() as conn:
        conn.exec_driver_sql(
            "INSERT INTO cosignatures (log_id, size, witness, key_id, timestamp, signature, "
            "received) SELECT log_id, (SELECT max(size) FROM checkpoints), witness, key_id, "
            "timestamp, signature, received FROM cosignatures WHERE witness = 'witness.test/w2' "
            "AND size = (SELECT max(size) FROM cosignatures WHERE witness = 'witness.test/w2')"
        )
    args = [a for v in cosigned["vkeys"] for a in ("--witness-key", v)]
    code, out = _verify(cosigned, *args)
    assert code == 1 and _codes(out) == ["cosignature.invalid", "witness.uncovered"]


def test_deleted_cosignatures_leave_the_log_unproven(
    cosigned: dict[str, Any], admin_connection: Admin
) -> None:
    """Deleting every cosignature cannot make a log look witnessed: unproven (3)."""
    with admin_connection() as conn:
        conn.exec_driver_sql("DELETE FROM cosignatures")
    code, out = _verify(cosigned, "--witness-policy", str(cosigned["policy"]))
    assert code == 3 and _codes(out) == ["witness.uncovered"]


def test_forged_witness_key_is_not_counted(cosigned: dict[str, Any]) -> None:
    """A key with a witness's name but another public key (the operator's own forgery) is not
    that witness: the real witnesses' cosignatures do not count for it, and unknown signers
    never help. Verified against a key the attacker made: unproven (3)."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditlog.ledger.cosignature import COSIGNATURE_TYPE, cosignature_key_id

    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    name = "witness.test/w0"
    forged = (
        f"{name}+{cosignature_key_id(name, public).hex()}+"
        f"{base64.b64encode(COSIGNATURE_TYPE + public).decode()}"
    )
    code, out = _verify(cosigned, "--witness-key", forged)
    assert code == 3 and _codes(out) == ["witness.uncovered"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--witness-key", "not-a-key"], "bad witness policy"),
        (["--witness-key", "w+00000000+AQ=="], "bad witness policy"),
        (["--witness-policy", "/nonexistent/policy"], "cannot read witness policy"),
        (["--witness-policy", "/dev/null", "--witness-key", "k"], "not both"),
    ],
)
def test_bad_witness_configuration_is_a_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Exit 2 with a clear message, before the database is even opened."""
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "auditlog", "verify", "--db", db, *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def _bundle(cosigned: dict[str, Any], tmp_path: Path, admin_connection: Admin) -> Path:
    """The bundle of the request that ended last (its checkpoint came after w2 stopped)."""
    with admin_connection() as conn:
        request = conn.exec_driver_sql(
            "SELECT request_id FROM records WHERE request_id IS NOT NULL ORDER BY seq DESC LIMIT 1"
        ).scalar_one()
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(
        app, ["export", "--db", cosigned["db"], "--request", request, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def _verify_bundle(path: Path, key: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["verify-bundle", str(path), "--key", key, "--json", *extra])
    return result.exit_code, orjson.loads(result.stdout)


def test_bundle_carries_cosignatures_and_verify_bundle_checks_them(
    cosigned: dict[str, Any], tmp_path: Path, admin_connection: Admin
) -> None:
    """C20 + C10: the bundle's checkpoint note carries the witnesses' cosignature lines;
    verify-bundle counts them against the policy: 2-of-3 intact (0); all three keys unproven
    (3, the third witness was down); a cosignature line edited in the bundle fails (1); lines
    stripped leave it unproven (3)."""
    path = _bundle(cosigned, tmp_path, admin_connection)
    bundle = decode_bundle(path.read_bytes())
    assert len(note_cosignatures(bundle.checkpoint)) == 2
    key = cosigned["key"]
    code, out = _verify_bundle(path, key, "--witness-policy", str(cosigned["policy"]))
    assert (code, out["status"], out["witness_findings"]) == (0, "intact", [])
    all_keys = [a for v in cosigned["vkeys"] for a in ("--witness-key", v)]
    code, out = _verify_bundle(path, key, *all_keys)
    assert (code, out["status"]) == (3, "unproven")
    assert [f["code"] for f in out["witness_findings"]] == ["witness.uncovered"]

    first = note_cosignatures(bundle.checkpoint)[0]
    edited = Cosignature(first.name, first.key_id, first.timestamp - 1, first.signature)
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(
        encode_bundle(
            replace(bundle, checkpoint=bundle.checkpoint.replace(first.line, edited.line))
        )
    )
    code, out = _verify_bundle(tampered, key, "--witness-policy", str(cosigned["policy"]))
    assert (code, out["status"]) == (1, "failed")
    assert "cosignature.invalid" in [f["code"] for f in out["witness_findings"]]

    stripped = tmp_path / "stripped.json"
    note = bundle.checkpoint
    for cosig in note_cosignatures(note):
        note = note.replace(cosig.line, "")
    stripped.write_bytes(encode_bundle(replace(bundle, checkpoint=note)))
    code, out = _verify_bundle(stripped, key, "--witness-policy", str(cosigned["policy"]))
    assert (code, out["status"]) == (3, "unproven")
    code, out = _verify_bundle(stripped, key)  # without a policy, the bundle is what it was
    assert (code, out["status"]) == (0, "intact")
