"""The process recorder's wake-up message never blocks a waiter (C21's fail-closed waits keep
their timeouts, and an event loop is never frozen): with the pipe to the child full, the waiter
leaves the message to the next ``record()`` instead of writing into a pipe that would block."""

from __future__ import annotations

import multiprocessing
import threading

from auditlog.ledger import Signer
from auditlog.recorder.process import ProcessRecorder
from auditlog.recorder.wire import has_room

ORIGIN = "test.example/full-pipe"


def _fill(conn: object) -> int:
    """Write into ``conn`` until a short message would block; returns the messages written."""
    n = 0
    while has_room(conn):  # type: ignore[arg-type]
        conn.send_bytes(b"x" * 4096)  # type: ignore[attr-defined]
        n += 1
    return n


def test_has_room_follows_the_pipe_buffer() -> None:
    ours, theirs = multiprocessing.Pipe(duplex=True)
    try:
        assert has_room(ours)
        written = _fill(ours)
        assert written > 0 and not has_room(ours)
        for _ in range(written):
            theirs.recv_bytes()
        assert has_room(ours)
    finally:
        ours.close()
        theirs.close()


def test_a_waiter_never_writes_into_a_full_pipe() -> None:
    recorder = ProcessRecorder(
        db_url="sqlite://", origin=ORIGIN, signers=[Signer.generate(ORIGIN)]
    )  # never started: the pipe is set by hand, a child that stopped reading
    ours, theirs = multiprocessing.Pipe(duplex=True)
    try:
        _fill(ours)
        recorder._conn = ours
        recorder._sent = 1  # an event went since the last wake-up message
        waiter = threading.Thread(target=recorder._flush_soon, daemon=True)
        waiter.start()
        waiter.join(5)
        assert not waiter.is_alive(), "the waiter blocked on the full pipe"
        assert recorder._soon_wanted  # left to the next record(), sent once there is room
        assert recorder._soon_at == 0
    finally:
        ours.close()
        theirs.close()
