"""The process recorder: an AuditRecorder in a child process behind the caller-side gate (C21:
no fail-closed token before its record is durable; C22: a kill -9 loses nothing acknowledged).

The same events give the same records as the thread recorder; ``wait_durable`` returns only once
the rows are committed; refusals raise in the caller; a child killed outright fails the recorder
loudly within a bounded time and loses nothing it acknowledged. Each test spawns one child
(about half a second); tests that take ``db_url`` run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from auditlog.errors import RecorderError, UnrecordableEventError
from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.recorder.process import ProcessRecorder
from auditlog.store import create_db_engine, upgrade
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "test.example/process"
TARGET = ModelRef(name="t", weights_sha256="a" * 64, tokenizer_sha256="b" * 64)
SIGNER = Signer.generate(ORIGIN)
WORKER = Path(__file__).with_name("kill_worker.py")
KILL_ORIGIN = "test.example/kill"  # kill_worker.py's log
KILL_SIGNER = Signer.generate(KILL_ORIGIN)


def _start(request_id: str, prompt: str = "hi") -> RequestStarted:
    return RequestStarted(
        request_id=request_id,
        tenant="t",
        principal="p",
        prompt_token_ids=(1, 2),
        prompt_text=prompt,
        params={"max_tokens": 4, "stop": ["x", "y"]},
        target=TARGET,
        draft=None,
        ts=1,
    )


def _step(step_id: int, *request_ids: str) -> BatchStep:
    return BatchStep(
        step_id=step_id,
        ts=10 + step_id,
        token_ids=tuple(range(len(request_ids))),
        request_ids=request_ids,
        provenance=(Provenance.TARGET,) * len(request_ids),
    )


def _end(request_id: str, n: int) -> RequestFinished:
    return RequestFinished(
        request_id=request_id, reason=FinishReason.STOP, n_generated=n, n_delivered=n, ts=99
    )


def _traffic() -> list[Event]:
    return [
        _start("a"),
        _start("b"),
        _step(1, "a", "b", "a"),
        _step(2, "b", "a"),
        _end("a", 3),
        _end("b", 2),
    ]


def _open(db_url: str, tmp_path: Path, **options: object) -> ProcessRecorder:
    return ProcessRecorder.open(
        db_url, origin=ORIGIN, signers=[SIGNER], spool_path=tmp_path / "spool", **options
    )


def _records(db_url: str) -> list[tuple[object, ...]]:
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT seq, kind, request_id, req_seq, tenant, leaf FROM records ORDER BY seq"
                )
            )
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    finally:
        engine.dispose()


def _thread_reference(tmp_path: Path, events: list[Event]) -> tuple[str, AuditRecorder]:
    """Record ``events`` with the thread recorder into a database of its own: (its URL, the
    closed recorder), the reference the process recorder's records are compared with."""
    reference = f"sqlite:///{tmp_path / 'thread.db'}"
    with AuditRecorder.open(
        reference, origin=ORIGIN, signers=[SIGNER], spool_path=tmp_path / "thread-spool"
    ) as thread_recorder:
        for event in events:
            thread_recorder.record(event)
    return reference, thread_recorder


def test_same_records_as_the_thread_recorder_and_the_log_verifies(
    db_url: str, tmp_path: Path
) -> None:
    reference, thread_recorder = _thread_reference(tmp_path, _traffic())
    with _open(db_url, tmp_path) as recorder:
        for event in _traffic():
            recorder.record(event)
        recorder.checkpoint_now(timeout=30)
        assert recorder.last_checkpoint_note is not None
    assert recorder.stats.records == thread_recorder.stats.records == len(_records(reference))
    assert _records(db_url) == _records(reference)  # same leaves: the same bytes were recorded
    report = verify_database(db_url, keys=[SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings


def test_wait_durable_refusals_and_close(db_url: str, tmp_path: Path) -> None:
    recorder = _open(db_url, tmp_path, flush_interval_ms=50.0)
    recorder.record(_start("r"))
    recorder.record(_step(1, "r", "r"))
    recorder.wait_durable("r", 2, timeout=30)
    # fail-closed: once wait_durable returned, the start and both tokens are committed
    kinds = [row[1] for row in _records(db_url) if row[2] == "r"]
    assert kinds == ["request.start", "tokens"], kinds
    # refusals raise at once in the caller's thread, and nothing of them reaches the child
    with pytest.raises(RecorderError, match="never started"):
        recorder.record(_step(2, "nobody"))
    with pytest.raises(UnrecordableEventError):
        recorder.record(_start("s", prompt="\ud800"))
    with pytest.raises(UnrecordableEventError):
        recorder.wait_durable("s", 0, timeout=5)
    recorder.record(_end("r", 2))
    recorder.wait_closed("r", timeout=30)
    recorder.close()
    recorder.close()  # idempotent
    with pytest.raises(RecorderError, match="closed"):
        recorder.record(_start("t"))
    report = verify_database(db_url, keys=[SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings
    assert report.records == recorder.stats.records == len(_records(db_url))


def test_a_killed_child_fails_the_recorder_loudly_and_loses_nothing_acknowledged(
    db_url: str, tmp_path: Path
) -> None:
    recorder = _open(db_url, tmp_path)
    recorder.record(_start("kept"))
    recorder.record(_step(1, "kept"))
    recorder.wait_durable("kept", 1, timeout=30)
    recorder.record(_start("open"))
    assert recorder.pid is not None
    os.kill(recorder.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    with pytest.raises(RecorderError):  # the next call raises, within a bounded time
        while time.monotonic() < deadline:
            recorder.record(_step(2, "open"))
            time.sleep(0.05)
    with pytest.raises(RecorderError, match=r"recorder process (ended unexpectedly|is gone)"):
        recorder.wait_durable("open", 1, timeout=10)
    with pytest.raises(RecorderError):
        recorder.flush(timeout=5)
    with pytest.raises(RecorderError):
        recorder.close()
    recorder.close()  # idempotent after a failure too
    # The next recorder resumes the log: what was acknowledged is there, the rest interrupted.
    AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[SIGNER], spool_path=tmp_path / "spool"
    ).close()
    kept = [row[1] for row in _records(db_url) if row[2] == "kept"]
    assert kept[:2] == ["request.start", "tokens"], kept
    report = verify_database(db_url, keys=[SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings


def test_start_failure_raises_in_the_parent_and_leaves_no_child(tmp_path: Path) -> None:
    recorder = ProcessRecorder(
        db_url=f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}",
        origin=ORIGIN,
        signers=[SIGNER],
        spool_path=tmp_path / "spool",
    )
    with pytest.raises(RecorderError, match="not started"):
        recorder.record(_start("r"))
    with pytest.raises(Exception) as raised:
        recorder.start()
    assert raised.type is not TimeoutError
    assert recorder.pid is not None and not _running(recorder.pid)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaped has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_killed_parent_leaves_no_child_and_nothing_acknowledged_is_lost(
    db_url: str, tmp_path: Path
) -> None:
    """The child sees its pipe end, drains, signs a final checkpoint and exits."""
    spool = tmp_path / "spool.jsonl"
    upgrade(db_url)
    parent = subprocess.Popen(
        [sys.executable, str(WORKER), db_url, str(spool), KILL_SIGNER.key_string, "process"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert parent.stdout is not None
    confirmed: dict[str, int] = {}
    try:
        child_pid = int(parent.stdout.readline().split()[1])
        for line in parent.stdout:
            _, request_id, n = line.split()
            confirmed[request_id] = max(confirmed.get(request_id, 0), int(n))
            if len(confirmed) >= 6:
                break
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
    deadline = time.monotonic() + 30
    while _running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(child_pid), "the recording process outlived its parent"
    AuditRecorder.open(db_url, origin=KILL_ORIGIN, signers=[KILL_SIGNER], spool_path=spool).close()
    db = create_db_engine(db_url, read_only=True)
    try:
        with db.connect() as conn:
            for request_id, n in confirmed.items():
                trail = read_trail(conn, KILL_ORIGIN, request_id)
                assert len(trail.token_ids) >= n, (request_id, n, len(trail.token_ids))
    finally:
        db.dispose()
    report = verify_database(db_url, keys=[KILL_SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings
