"""C22 with tampering: a spool left by a crash during an outage is replayed only if every line
extends the log's chains and leads to the root its signed checkpoint states."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from auditlog.errors import RecorderError
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder, LogSequencer
from auditlog.recorder.spool import Spool
from auditlog.recorder.translate import sequence_events
from auditlog.store import create_db_engine
from auditlog.synthetic import SyntheticEngine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "test.example/spool"


def _spool_after_crash(db_url: str, tmp_path: Path, signer: Signer) -> tuple[Path, SyntheticEngine]:
    """Record some traffic, then spool two more batches exactly as an outage would, and stop
    without replaying (the process died)."""
    engine = SyntheticEngine(seed=31)
    with AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[signer], spool_path=tmp_path / "unused"
    ) as recorder:
        for _ in range(3):
            recorder.record(engine.start(6))
        for _ in range(2):
            step = engine.step()
            assert step is not None
            recorder.record(step)
    spool = Spool(tmp_path / "spool.jsonl")
    db = create_db_engine(db_url)
    with db.connect() as conn:
        seq = LogSequencer.resume(conn, ORIGIN)
    for _ in range(2):
        step = engine.step()
        assert step is not None
        sequence_events(seq, [step])
        _, note = seq.checkpoint([signer])
        spool.append(seq.drain(), note)
    db.dispose()
    return spool.path, engine


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _write(path: Path, lines: list[dict[str, object]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def test_intact_spool_is_replayed(db_url: str, tmp_path: Path) -> None:
    signer = Signer.generate(ORIGIN)
    path, engine = _spool_after_crash(db_url, tmp_path, signer)
    recorder = AuditRecorder.open(db_url, origin=ORIGIN, signers=[signer], spool_path=path)
    recorder.close()
    assert recorder.stats.replayed_records > 0 and not path.exists()
    with create_db_engine(db_url, read_only=True).connect() as conn:
        for request_id, truth in engine.truth.items():
            assert read_trail(conn, ORIGIN, request_id).token_ids == truth.token_ids
    assert verify_database(db_url, keys=[signer.verifier_key]).ok


@pytest.mark.parametrize("tamper", ["payload", "forged_line", "dropped_record"])
def test_tampered_spool_is_refused(db_url: str, tmp_path: Path, tamper: str) -> None:
    signer = Signer.generate(ORIGIN)
    path, _ = _spool_after_crash(db_url, tmp_path, signer)
    lines = _lines(path)
    records = lines[0]["records"]
    assert isinstance(records, list)
    if tamper == "payload":
        row = next(r for r in records if r[7] is not None)
        row[7] = base64.b64encode(b'{"drafts":[],"token_ids":[666]}').decode()
        match = "payload digest mismatch"
    elif tamper == "forged_line":
        rogue = Signer.generate(ORIGIN)
        forged = dict(lines[-1])
        forged["checkpoint"] = str(forged["checkpoint"]).replace(
            str(forged["checkpoint"]).split("\n\n")[1], "— " + rogue.name + " AAAA\n"
        )
        lines[-1] = forged
        match = "checkpoint does not verify"
    else:
        del records[0]
        match = "gap|does not extend|do not lead"
    _write(path, lines)
    with pytest.raises(RecorderError, match=match):
        AuditRecorder.open(db_url, origin=ORIGIN, signers=[signer], spool_path=path)
    assert path.exists()  # kept for the investigation
    assert verify_database(db_url, keys=[signer.verifier_key]).ok  # nothing was written
