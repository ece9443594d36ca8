"""Recorder: de-interleaving into per-request chains, durability, checkpoints.

Every test that takes ``db_url`` runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from auditlog.errors import RecorderError
from auditlog.events import BatchStep, FinishReason, Provenance, RequestFinished, RequestStarted
from auditlog.ledger import DirectoryWitness, Signer, parse_header
from auditlog.recorder import AuditRecorder, deinterleave
from auditlog.store import create_db_engine, get_log_id, read_request
from auditlog.synthetic import SyntheticEngine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "test.example/recorder"


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


def _open(db_url: str, signer: Signer, tmp_path: Path, **options: object) -> AuditRecorder:
    options.setdefault("witnesses", [DirectoryWitness(tmp_path / "witness")])
    return AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[signer], spool_path=tmp_path / "spool.jsonl", **options
    )


def test_deinterleave_is_a_stable_group_by() -> None:
    """C11: every token of the step lands in exactly one run, in emission order."""
    step = BatchStep(
        step_id=7,
        ts=1,
        token_ids=(10, 20, 11, 30, 21, 12),
        request_ids=("a", "b", "a", "c", "b", "a"),
        provenance=(
            Provenance.DRAFT_ACCEPTED,
            Provenance.TARGET,
            Provenance.DRAFT_ACCEPTED,
            Provenance.TARGET,
            Provenance.TARGET,
            Provenance.BONUS,
        ),
        drafts={"a": (10, 11), "d": (5,)},
    )
    runs = deinterleave(step)
    assert [r.request_id for r in runs] == ["a", "b", "c", "d"]
    assert runs[0].token_ids == (10, 11, 12)
    assert runs[0].provenance[-1] is Provenance.BONUS
    assert runs[1].token_ids == (20, 21)
    assert runs[3].token_ids == () and runs[3].drafts == (5,)
    assert sum(len(r.token_ids) for r in runs) == len(step.token_ids)


def test_trails_rebuilt_from_database_equal_engine_output(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    """C1, C6, C11: each request's trail from the database is exactly what the engine emitted."""
    engine = SyntheticEngine(seed=1)
    events = engine.run(40)
    with _open(db_url, signer, tmp_path, checkpoint_every=50, max_batch_events=16) as recorder:
        for event in events:
            recorder.record(event)
    assert recorder.stats.checkpoints >= 2

    db = create_db_engine(db_url, read_only=True)
    with db.connect() as conn:
        for request_id, truth in engine.truth.items():
            trail = read_trail(conn, ORIGIN, request_id)
            assert trail.tenant == truth.tenant
            assert trail.token_ids == truth.token_ids
            assert trail.provenance == truth.provenance
            assert trail.steps == truth.steps
            assert trail.reason == FinishReason.LENGTH
            # C2: every time is integer ns from a named clock: received, each step, finished.
            assert trail.start["clock"].startswith("CLOCK_REALTIME ns")
            times = [r.header["ts"] for r in trail.records]
            assert all(type(t) is int for t in times) and times == sorted(times)
    report = verify_database(db_url, witness_dir=tmp_path / "witness", keys=[signer.verifier_key])
    assert report.ok, report.findings
    assert report.records == recorder.stats.records
    witnessed = list((tmp_path / "witness").iterdir())
    assert len(witnessed) == recorder.stats.checkpoints


def test_unknown_request_is_refused_at_once(db_url: str, signer: Signer, tmp_path: Path) -> None:
    """Bad input gets a clear error in the caller's thread, and the recorder keeps working."""
    engine = SyntheticEngine(seed=2)
    with _open(db_url, signer, tmp_path) as recorder:
        start = engine.start(3)
        recorder.record(start)
        with pytest.raises(RecorderError, match="never started"):
            recorder.record(
                BatchStep(
                    step_id=0,
                    ts=1,
                    token_ids=(1,),
                    request_ids=("ghost",),
                    provenance=(Provenance.TARGET,),
                )
            )
        with pytest.raises(RecorderError, match="already open"):
            recorder.record(start)
        with pytest.raises(RecorderError, match="not open"):
            recorder.record(
                RequestFinished(
                    request_id="ghost",
                    reason=FinishReason.STOP,
                    n_generated=0,
                    n_delivered=0,
                    ts=1,
                )
            )
        import dataclasses

        floaty = dataclasses.replace(engine.start(2), params={"temperature": 0.7})
        with pytest.raises(RecorderError, match="decimal strings"):
            recorder.record(floaty)
        engine.remaining.pop(floaty.request_id)
        step = engine.step()
        assert step is not None
        recorder.record(step)
        for event in engine.finish_done():
            recorder.record(event)
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings


def test_wait_durable_means_committed(db_url: str, signer: Signer, tmp_path: Path) -> None:
    """C21: once wait_durable returns, a separate connection sees every covered token."""
    engine = SyntheticEngine(seed=3, max_batch=4)
    reader = create_db_engine(db_url, read_only=True)
    with _open(db_url, signer, tmp_path) as recorder:
        start = engine.start(30)
        recorder.record(start)
        delivered = 0
        while (step := engine.step()) is not None:
            recorder.record(step)
            delivered = len(engine.truth[start.request_id].token_ids)
            recorder.wait_durable(start.request_id, delivered, timeout=30)
            # The release point: nothing may leave unless the database already holds it (read
            # as committed rows: durable comes before checkpointed, which trails wait for).
            with reader.connect() as conn:
                rows = read_request(conn, get_log_id(conn, ORIGIN), start.request_id)
                headers = [parse_header(bytes(r.body)) for r in rows]
                assert sum(h["n"] for h in headers if h["kind"] == "tokens") >= delivered
        for event in engine.finish_done():
            recorder.record(event)


def test_backpressure_slows_the_producer_and_drops_nothing(tmp_path: Path, signer: Signer) -> None:
    """A store that cannot keep up blocks record() at the queue bound; every event still lands."""
    db_url = f"sqlite:///{tmp_path / 'bp.db'}"
    engine = SyntheticEngine(seed=4)
    events = engine.run(30)
    recorder = _open(db_url, signer, tmp_path, queue_size=8, max_batch_events=4)
    # A real second writer holding the database (shorter than the store's busy timeout, so the
    # recorder waits rather than declaring an outage).
    conn = sqlite3.connect(tmp_path / "bp.db", isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    produced = 0

    def produce() -> None:
        nonlocal produced
        for event in events:
            recorder.record(event)
            produced += 1

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(1.0)
    assert produced < len(events), "producer was never slowed down"
    assert recorder.stats.queue_depth <= 8
    conn.execute("ROLLBACK")
    conn.close()
    thread.join(60)
    recorder.close()
    assert produced == len(events)
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings
    with create_db_engine(db_url, read_only=True).connect() as db:
        for request_id, truth in engine.truth.items():
            assert read_trail(db, ORIGIN, request_id).token_ids == truth.token_ids


def test_restart_closes_open_chains_as_interrupted(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    """C22: a recorder restarted over a log with open chains ends them `interrupted`."""
    engine = SyntheticEngine(seed=5)
    recorder = _open(db_url, signer, tmp_path)
    open_ids = []
    for _ in range(3):
        start = engine.start(50)
        open_ids.append(start.request_id)
        recorder.record(start)
    for _ in range(4):
        step = engine.step()
        assert step is not None
        recorder.record(step)
    recorder.flush()
    # Simulate the process dying: the writer stops without ending the requests.
    recorder.close()
    again = _open(db_url, signer, tmp_path)
    assert again.stats.interrupted_on_resume == 3
    again.close()
    db = create_db_engine(db_url, read_only=True)
    with db.connect() as conn:
        for request_id in open_ids:
            trail = read_trail(conn, ORIGIN, request_id)
            assert trail.reason == FinishReason.INTERRUPTED
            assert trail.token_ids == engine.truth[request_id].token_ids
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings
    assert not report.open_chains


def test_append_only_in_database(db_url: str, signer: Signer, tmp_path: Path) -> None:
    """C9: the recorder's rows cannot be edited in place."""
    engine = SyntheticEngine(seed=6)
    with _open(db_url, signer, tmp_path) as recorder:
        for event in engine.run(2):
            recorder.record(event)
    db = create_db_engine(db_url)
    with pytest.raises(Exception, match="append-only"), db.begin() as conn:
        conn.execute(text("UPDATE records SET tenant = 'x'"))


def test_caller_cannot_switch_recording_off(db_url: str, signer: Signer, tmp_path: Path) -> None:
    """C23: nothing a caller puts in a request turns auditing off for it."""
    import dataclasses

    engine = SyntheticEngine(seed=9)
    start = engine.start(4)
    start = dataclasses.replace(
        start, params={**start.params, "audit": False, "x-audit-disable": True, "record": "off"}
    )
    with _open(db_url, signer, tmp_path) as recorder:
        recorder.record(start)
        while (step := engine.step()) is not None:
            recorder.record(step)
        for event in engine.finish_done():
            recorder.record(event)
    with create_db_engine(db_url, read_only=True).connect() as conn:
        trail = read_trail(conn, ORIGIN, start.request_id)
    assert trail.token_ids == engine.truth[start.request_id].token_ids
    assert trail.start["params"]["audit"] is False  # recorded as given, and recorded all the same


def test_idle_recorder_still_checkpoints_on_time(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    """A checkpoint falls due T ms after the last one even when no event arrives (C10)."""
    engine = SyntheticEngine(seed=10)
    recorder = _open(db_url, signer, tmp_path, checkpoint_interval_ms=100)
    try:
        for event in engine.run(3):
            recorder.record(event)
        recorder.flush()
        deadline = time.monotonic() + 10
        while recorder.stats.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.stats.checkpoints >= 1
        assert recorder.last_checkpoint_note is not None
        assert f"\n{recorder.stats.records}\n" in recorder.last_checkpoint_note
    finally:
        recorder.close()


def test_refusals_are_logged_with_request_and_step(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    """Structured logs name the request id and the physical step of what was refused."""
    from structlog.testing import capture_logs

    with _open(db_url, signer, tmp_path) as recorder, capture_logs() as logs:
        with pytest.raises(RecorderError):
            recorder.record(
                BatchStep(
                    step_id=41,
                    ts=1,
                    token_ids=(1,),
                    request_ids=("ghost",),
                    provenance=(Provenance.TARGET,),
                )
            )
        with pytest.raises(RecorderError):
            recorder.record(
                RequestFinished(
                    request_id="ghost-2",
                    reason=FinishReason.STOP,
                    n_generated=0,
                    n_delivered=0,
                    ts=1,
                )
            )
    refused = [entry for entry in logs if entry["event"] == "recorder.refused"]
    assert refused[0]["step"] == 41 and refused[0]["request_ids"] == ["ghost"]
    assert refused[1]["request_id"] == "ghost-2"


def test_request_id_is_used_once_per_log(db_url: str, signer: Signer, tmp_path: Path) -> None:
    """A reused request id would merge two requests' trails (C1, C19): the recorder refuses it
    within its process, and the verifier reports a reuse that reached the log another way."""
    import dataclasses

    engine = SyntheticEngine(seed=12)
    events = engine.run(2)
    first = next(e for e in events if isinstance(e, RequestStarted))
    with _open(db_url, signer, tmp_path) as recorder:
        for event in events:
            recorder.record(event)
        with pytest.raises(RecorderError, match="already open or used"):
            recorder.record(dataclasses.replace(first, ts=first.ts + 1))
    with _open(db_url, signer, tmp_path) as recorder:  # a new process: only the log remembers
        recorder.record(dataclasses.replace(first, ts=first.ts + 2))
        recorder.record(
            RequestFinished(
                request_id=first.request_id,
                reason=FinishReason.ABORT,
                n_generated=0,
                n_delivered=0,
                ts=first.ts + 3,
            )
        )
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert not report.ok
    assert any(str(f.code) == "chain.restarted" for f in report.findings)


def test_events_the_writer_could_not_store_are_refused_at_once(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    """Out-of-range values are refused to the caller; the writer keeps recording for others."""
    import dataclasses

    engine = SyntheticEngine(seed=13)
    with _open(db_url, signer, tmp_path) as recorder:
        start = engine.start(3)
        bad_starts = [
            dataclasses.replace(start, prompt_token_ids=(2**60,)),
            dataclasses.replace(start, ts=10**21),
            dataclasses.replace(start, request_id="r" * 256),
            dataclasses.replace(start, tenant=""),
        ]
        for bad in bad_starts:
            with pytest.raises(RecorderError):
                recorder.record(bad)
        recorder.record(start)
        step = engine.step()
        assert step is not None
        for bad_step in (
            dataclasses.replace(step, ts=10**21),
            dataclasses.replace(step, drafts={start.request_id: (2**60,)}),
        ):
            with pytest.raises(RecorderError):
                recorder.record(bad_step)
        recorder.record(step)
        for event in engine.finish_done():
            recorder.record(event)
    assert verify_database(db_url, keys=[signer.verifier_key]).ok


def test_nothing_is_queued_after_close(db_url: str, signer: Signer, tmp_path: Path) -> None:
    engine = SyntheticEngine(seed=14)
    recorder = _open(db_url, signer, tmp_path)
    recorder.close()
    with pytest.raises(RecorderError, match="closed"):
        recorder.record(engine.start(2))
    with pytest.raises(RecorderError, match="closed"):
        recorder.flush()


def test_resume_refuses_a_database_behind_its_witness(
    db_url: str, signer: Signer, tmp_path: Path, admin_connection: object
) -> None:
    """C10: a database restored from an old backup must not be extended (that would fork the
    log under the witness's nose)."""
    engine = SyntheticEngine(seed=15)
    with _open(db_url, signer, tmp_path, max_batch_events=8) as recorder:
        for event in engine.run(6):
            recorder.record(event)
    size = recorder.stats.records
    with admin_connection() as conn:  # type: ignore[operator]
        conn.exec_driver_sql(f"DELETE FROM payloads WHERE seq >= {size - 10}")
        conn.exec_driver_sql(f"DELETE FROM nodes WHERE ((idx + 1) << level) > {size - 10}")
        conn.exec_driver_sql(f"DELETE FROM checkpoints WHERE size > {size - 10}")
        conn.exec_driver_sql(f"DELETE FROM records WHERE seq >= {size - 10}")
    with pytest.raises(RecorderError, match="rolled back; refusing to resume"):
        _open(db_url, signer, tmp_path)
