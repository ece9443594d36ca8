"""C22: kill -9 mid-generation, then restart.

Nothing confirmed is lost and the open chains end ``interrupted``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from auditlog.events import FinishReason
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "test.example/kill"
WORKER = Path(__file__).with_name("kill_worker.py")


def test_kill_9_mid_generation_then_restart(db_url: str, tmp_path: Path) -> None:
    signer = Signer.generate(ORIGIN)
    spool = tmp_path / "spool.jsonl"
    child = subprocess.Popen(
        [sys.executable, str(WORKER), db_url, str(spool), signer.key_string],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    confirmed: dict[str, int] = {}
    assert child.stdout is not None
    try:
        for line in child.stdout:
            _, request_id, n = line.split()
            confirmed[request_id] = max(confirmed.get(request_id, 0), int(n))
            if len(confirmed) >= 12 and sum(confirmed.values()) > 400:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert confirmed, "the recording child confirmed nothing before it was killed"
    assert child.returncode == -signal.SIGKILL

    recorder = AuditRecorder.open(db_url, origin=ORIGIN, signers=[signer], spool_path=spool)
    recorder.close()
    assert recorder.stats.interrupted_on_resume >= 1

    db = create_db_engine(db_url, read_only=True)
    with db.connect() as conn:
        for request_id, n in confirmed.items():
            trail = read_trail(conn, ORIGIN, request_id)
            assert len(trail.token_ids) >= n, (
                f"{request_id}: confirmed {n}, found {len(trail.token_ids)}"
            )
            assert trail.reason is not None
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings
    assert not report.open_chains
    with db.connect() as conn:
        reasons = [read_trail(conn, ORIGIN, rid).reason for rid in confirmed]
    assert FinishReason.INTERRUPTED in reasons
