"""The child process of the process recorder: an ordinary AuditRecorder fed from a pipe.

:func:`main` opens an :class:`~auditlog.recorder.recorder.AuditRecorder` (the same sequencing,
group commit, spool, checkpoints and witnesses as in one process), answers ``READY``, then reads
events from the pipe and records them. Its writer advances a :class:`ForwardingTracker`, which
acknowledges every durable flush to the parent (after the commit, never before). Close, or the
end of the pipe (the parent is gone, or a message to it was cut short: the partial message is
dropped), answers the flushes asked for before it, drains the recorder, signs its final
checkpoint and ends the process; a parent killed outright never leaves its child running.
SIGINT and SIGTERM are left to the parent, which closes its child as above. An event that fails
here other than as a refused start fails the parent's recorder loudly.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import structlog

from auditlog.errors import RecorderError
from auditlog.events import Event, RequestStarted
from auditlog.ledger import Signer

from .durability import DurabilityTracker
from .recorder import AuditRecorder
from .wire import (
    Control,
    Reply,
    decode_event,
    encode_reply,
    error_fields,
    stats_to,
)

__all__ = ["ChildConfig", "ForwardingTracker", "main", "spawn", "stop"]

log = structlog.get_logger("auditlog.recorder")

Send = Callable[..., None]

_SPAWN = multiprocessing.get_context("spawn")

_FLUSHES_WAIT_S = 60.0  # CLOSE: how long the flushes asked for before it may take to answer


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What the child needs to open its recorder (pickled to it by the spawn start method).

    ``signer_keys``: private key strings (``Signer.key_string``), sent over the process's
    pipe and never written anywhere. ``witness_factory``: a picklable callable the child calls
    for witnesses that cannot travel themselves (background senders).
    """

    db_url: str
    origin: str
    signer_keys: Sequence[str]
    migrate: bool = True
    witnesses: Sequence[Any] = ()
    witness_factory: Callable[[], Sequence[Any]] | None = None
    options: dict[str, Any] = field(default_factory=dict)


class ForwardingTracker(DurabilityTracker):
    """The child's watermarks: nobody waits here; each change goes to the parent."""

    def __init__(self, send: Send) -> None:
        super().__init__()
        self.send = send
        self.recorder: AuditRecorder | None = None
        self.failure: BaseException | None = None

    def advance(self, started: set[str], tokens: dict[str, int], ended: set[str]) -> None:
        rec = self.recorder
        assert rec is not None  # set before the writer starts
        note = rec.last_checkpoint_note
        self.send(Reply.ACK, list(started), tokens, list(ended), stats_to(rec.stats), note)

    def refuse(self, request_id: str, exc: BaseException) -> None:
        self.send(Reply.REFUSED, request_id, *error_fields(exc))

    def fail(self, exc: BaseException) -> None:
        self.failure = exc
        self.send(Reply.FAILED, *error_fields(exc))


def _sender(conn: Connection) -> Send:
    lock = threading.Lock()

    def send(*items: Any) -> None:
        try:
            with lock:
                conn.send_bytes(encode_reply(*items))
        except OSError:  # the parent is gone: the pipe's end stops the child
            pass

    return send


def spawn(config: ChildConfig) -> tuple[Any, Connection]:
    """Start the child process (spawn start method); returns it and the parent's end of the
    pipe (the child's end lives in the child alone: its exit is the parent's end of file)."""
    ours, theirs = _SPAWN.Pipe(duplex=True)
    process = _SPAWN.Process(
        target=main, args=(config, theirs), name=f"auditlog-recorder[{config.origin}]", daemon=True
    )
    process.start()
    theirs.close()
    return process, ours


def stop(process: Any, conn: Connection | None) -> None:
    """Wait a little for the child's exit, then end it; close the parent's end of the pipe."""
    if process is not None:
        process.join(10.0)
        if process.is_alive():
            process.kill()
            process.join(5.0)
    if conn is not None:
        conn.close()


def main(config: ChildConfig, conn: Connection) -> None:
    """The child process's entry point (``multiprocessing`` spawn target)."""
    # The parent decides when to close: a signal sent to every process of the service (Ctrl-C,
    # a service manager's SIGTERM) lets the parent drain this one, as its own close() does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    send = _sender(conn)
    tracker = ForwardingTracker(send)
    try:
        factory = config.witness_factory
        witnesses = [*config.witnesses, *(factory() if factory is not None else ())]
        recorder = AuditRecorder.open(
            config.db_url,
            origin=config.origin,
            signers=[Signer.from_key_string(key) for key in config.signer_keys],
            migrate=config.migrate,
            witnesses=witnesses,
            durable=tracker,
            **config.options,
        )
    except BaseException as exc:  # the parent raises it again as the same kind
        send(Reply.START_FAILED, *error_fields(exc))
        return
    tracker.recorder = recorder
    send(Reply.READY, stats_to(recorder.stats), recorder.last_checkpoint_note)
    try:
        _serve(recorder, conn, tracker)
    finally:
        conn.close()


def _serve(recorder: AuditRecorder, conn: Connection, tracker: ForwardingTracker) -> None:
    send = tracker.send
    flushes: list[threading.Thread] = []  # answered before CLOSE: they came before it
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone: drain, sign, stop
            log.warning("recorder.parent_gone", origin=recorder.origin)
            data = bytes([Control.CLOSE])
        tag = data[0]
        if tag == Control.CLOSE:
            deadline = time.monotonic() + _FLUSHES_WAIT_S
            for flush in flushes:
                flush.join(max(deadline - time.monotonic(), 0.0))
            error: BaseException | None = None
            try:
                recorder.close()
            except Exception as exc:
                error = exc
            stats = stats_to(recorder.stats)
            send(Reply.CLOSED, stats, recorder.last_checkpoint_note, *error_fields(error))
            return
        if tag == Control.SOON:  # a waiter in the parent: after the events it waits for
            recorder.flush_soon()
            continue
        if tag in (Control.FLUSH, Control.CHECKPOINT):
            token = int.from_bytes(data[1:9], "little")
            flush = threading.Thread(
                target=_flush, args=(recorder, send, token, tag == Control.CHECKPOINT), daemon=True
            )
            flush.start()
            flushes = [*(f for f in flushes if f.is_alive()), flush]
            continue
        _record(recorder, tracker, data)


def _record(recorder: AuditRecorder, tracker: ForwardingTracker, data: bytes) -> None:
    event: Event | None = None
    try:
        event, soon = decode_event(data)
        recorder.record(event)
        if soon:  # a caller in the parent waits (recorder/gather.py)
            recorder.flush_soon()
    except Exception as exc:
        # A refused start reached the parent through the tracker, a failure too; anything else
        # (the two gates disagree, a message that does not decode) fails loudly rather than
        # leave a waiter hanging, and the child goes on reading until its parent closes it.
        refused_start = isinstance(exc, RecorderError) and isinstance(event, RequestStarted)
        if not refused_start and tracker.failure is None:
            tracker.fail(exc)


def _flush(recorder: AuditRecorder, send: Send, token: int, checkpoint: bool) -> None:
    error: BaseException | None = None
    try:
        if checkpoint:
            recorder.checkpoint_now(timeout=None)
        else:
            recorder.flush(timeout=None)
    except Exception as exc:
        error = exc
    send(Reply.FLUSHED, token, *error_fields(error))
