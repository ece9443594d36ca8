"""The process recorder at the edges of its contract (C21, C22): what crosses the pipe, how it ends.

Events the gate admits travel to the child and are recorded as the thread recorder records them
(mappings that are not dicts, str and int subclasses); a child whose recorder failed is closed
promptly; a flush sent before ``close()`` completes; a SIGTERM meant for the whole service does
not stop the child before its parent closes it; and ``wait_durable`` never returns before the
rows are in the database while several threads record at once.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import struct
import threading
import time
from pathlib import Path
from types import MappingProxyType

import pytest
from sqlalchemy import Engine, create_engine, text
from test_process_recorder import (
    ORIGIN,
    SIGNER,
    _end,
    _open,
    _records,
    _running,
    _start,
    _step,
    _thread_reference,
)

from auditlog.errors import RecorderError
from auditlog.events import BatchStep, Event, Provenance
from auditlog.recorder.child import ChildConfig, spawn
from auditlog.recorder.process import ProcessRecorder
from auditlog.recorder.wire import Reply, decode_reply, encode_event
from auditlog.store import create_db_engine
from auditlog.store.db import normalize_url
from auditlog.verifier import verify_database


class _Label(str):
    """A str subclass (canonical JSON writes it as its plain value)."""


class _Count(int):
    """An int subclass (canonical JSON writes it as its plain value)."""


def _unusual_traffic() -> list[Event]:
    params = MappingProxyType({"max_tokens": _Count(4), "stop": [_Label("x")], "seed": "7"})
    replay = MappingProxyType({"dtype": _Label("bf16")})
    step = BatchStep(
        step_id=1,
        ts=11,
        token_ids=(5, 6),
        request_ids=("m", "m"),
        provenance=(Provenance.TARGET, Provenance.TARGET),
        drafts=MappingProxyType({"m": (7, 8)}),
    )
    return [
        dataclasses.replace(_start("m"), params=params, replay=replay),
        step,
        _end("m", 2),
    ]


def test_events_the_gate_admits_are_recorded_as_by_the_thread_recorder(
    db_url: str, tmp_path: Path
) -> None:
    reference, _ = _thread_reference(tmp_path, _unusual_traffic())
    with _open(db_url, tmp_path) as recorder:
        for event in _unusual_traffic():
            recorder.record(event)
        recorder.wait_closed("m", timeout=30)
    assert _records(db_url) == _records(reference)


def _fail_inserts(db_url: str) -> None:
    """Make every later insert into ``records`` fail with a constraint error (not an outage)."""
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse_records BEFORE INSERT ON records "
                        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                    )
                )
            else:
                conn.execute(
                    text(
                        "CREATE FUNCTION refuse_records() RETURNS trigger AS $$ BEGIN "
                        "RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse_records BEFORE INSERT ON records "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_records()"
                    )
                )
    finally:
        engine.dispose()


def test_close_after_the_childs_recorder_failed_ends_the_child_promptly(
    db_url: str, tmp_path: Path
) -> None:
    recorder = _open(db_url, tmp_path)
    recorder.record(_start("a"))
    recorder.wait_durable("a", 0, timeout=30)
    _fail_inserts(db_url)
    recorder.record(_step(1, "a"))
    with pytest.raises(RecorderError, match="refused by the test"):
        recorder.wait_durable("a", 1, timeout=30)
    raised: list[BaseException] = []

    def close() -> None:
        try:
            recorder.close(timeout=None)
        except BaseException as exc:
            raised.append(exc)

    closer = threading.Thread(target=close, daemon=True)
    t0 = time.monotonic()
    closer.start()
    closer.join(20)
    assert not closer.is_alive(), "close() hangs on a child whose recorder failed"
    assert time.monotonic() - t0 < 10
    assert raised and isinstance(raised[0], RecorderError), raised
    assert recorder.pid is not None and not _running(recorder.pid)


def _flush_in_thread(recorder: ProcessRecorder) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def flush() -> None:
        try:
            recorder.flush(timeout=None)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    return flusher, outcome


def test_a_flush_sent_before_close_completes(db_url: str, tmp_path: Path) -> None:
    """The child answers every flush that came before CLOSE (and the parent any it could not)."""
    for attempt in range(3):
        recorder = _open(db_url, tmp_path)
        request_id = f"f{attempt}"
        recorder.record(_start(request_id))
        recorder.record(_step(1, request_id))
        flusher, outcome = _flush_in_thread(recorder)
        while not recorder._flushes and not outcome:  # the flush is on the pipe: close next
            time.sleep(0)
        recorder.close()
        flusher.join(20)
        assert not flusher.is_alive(), "a flush sent before close() never completed"
        assert outcome == [None], outcome
        assert recorder.durable_tokens(request_id) == 1


def test_sigterm_to_the_child_leaves_closing_to_its_parent(db_url: str, tmp_path: Path) -> None:
    """A service manager signals every process of the service; the parent closes the child."""
    recorder = _open(db_url, tmp_path)
    recorder.record(_start("s"))
    recorder.record(_step(1, "s"))
    recorder.wait_durable("s", 1, timeout=30)
    assert recorder.pid is not None
    os.kill(recorder.pid, signal.SIGTERM)
    time.sleep(0.5)
    recorder.record(_step(2, "s"))
    recorder.record(_end("s", 2))
    recorder.wait_closed("s", timeout=30)
    recorder.close()
    report = verify_database(db_url, keys=[SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings


def _committed_kinds(reader: Engine, request_id: str) -> list[str]:
    """The kinds of the request's committed records (one ``tokens`` record per step)."""
    with reader.connect() as conn:
        rows = conn.execute(
            text("SELECT kind FROM records WHERE request_id = :r ORDER BY seq"), {"r": request_id}
        )
        return [row[0] for row in rows]


def test_wait_durable_never_returns_before_the_rows_are_committed(
    db_url: str, tmp_path: Path
) -> None:
    """Several threads record and wait at once; after each wait the rows are in the database."""
    recorder = _open(db_url, tmp_path, flush_interval_ms=2.0)
    reader = create_db_engine(db_url, read_only=True)
    problems: list[str] = []

    def engine_thread(name: str) -> None:
        try:
            for r in range(6):
                request_id = f"{name}-{r}"
                recorder.record(_start(request_id))
                for step in range(1, 4):
                    recorder.record(_step(step, request_id, request_id))
                    recorder.wait_durable(request_id, 2 * step, timeout=30)
                    kinds = _committed_kinds(reader, request_id)
                    if kinds[:1] != ["request.start"] or kinds.count("tokens") < step:
                        problems.append(f"{request_id} after {2 * step} tokens: {kinds}")
                recorder.record(_end(request_id, 6))
        except BaseException as exc:
            problems.append(repr(exc))

    threads = [threading.Thread(target=engine_thread, args=(f"t{i}",)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        recorder.close()
    finally:
        reader.dispose()
    assert not problems, problems[:5]
    report = verify_database(db_url, keys=[SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings


def test_a_message_cut_short_by_the_parents_death_is_never_recorded(
    db_url: str, tmp_path: Path
) -> None:
    """The child reads the pipe's end inside a message as its parent gone: it records what came
    whole, drops the partial message, signs its final checkpoint and exits."""
    config = ChildConfig(
        db_url=db_url,
        origin=ORIGIN,
        signer_keys=[SIGNER.key_string],
        options={"spool_path": tmp_path / "spool"},
    )
    child, ours = spawn(config)
    try:
        assert decode_reply(ours.recv_bytes())[0] == Reply.READY
        ours.send_bytes(encode_event(_start("cut")))
        step = encode_event(_step(1, "cut", "cut"))
        os.write(ours.fileno(), struct.pack("!i", len(step)) + step[: len(step) // 2])
    finally:
        ours.close()
    child.join(30)
    assert child.exitcode == 0
    assert [row[1] for row in _records(db_url) if row[2] == "cut"] == ["request.start"]
    report = verify_database(db_url, keys=[SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings
    assert report.anchored == {ORIGIN: report.records}  # the final checkpoint covers all


class _Interrupted(Exception):
    """Raised by a signal handler in the middle of a write to the child (as Ctrl-C would)."""


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted


def test_a_send_interrupted_mid_message_fails_loudly_and_close_ends_the_child(
    db_url: str, tmp_path: Path
) -> None:
    """A large event's write, interrupted by a signal, leaves part of it on the pipe: nothing
    may follow it there, and close() still ends the child (which drops the partial message)."""
    recorder = _open(db_url, tmp_path)
    recorder.record(_start("kept"))
    recorder.wait_durable("kept", 0, timeout=30)
    assert recorder.pid is not None
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    os.kill(recorder.pid, signal.SIGSTOP)  # the child reads nothing: the write blocks
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(_Interrupted):
            recorder.record(_start("big", prompt="x" * 1_000_000))
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
        os.kill(recorder.pid, signal.SIGCONT)
    with pytest.raises(RecorderError):
        recorder.record(_step(1, "kept"))  # never written after part of a message
    t0 = time.monotonic()
    with pytest.raises(RecorderError):
        recorder.close(timeout=5)
    assert time.monotonic() - t0 < 5
    assert not _running(recorder.pid)
    assert [row[1] for row in _records(db_url) if row[2] in ("kept", "big")] == ["request.start"]
    report = verify_database(db_url, keys=[SIGNER.verifier_key])
    assert report.verdict.value == "intact", report.findings
