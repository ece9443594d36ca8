"""ProcessRecorder: the AuditRecorder's sequencing and database writes in a process of their own.

The engine's process keeps only what must happen in the caller's thread: the
:class:`~auditlog.recorder.gate.EventGate` (a refused event raises there, at once), the
serialization of each admitted event onto the pipe (recorder/wire.py), and the durability
watermarks. A child process (recorder/child.py, spawn start method) runs an ordinary
:class:`~auditlog.recorder.recorder.AuditRecorder` and acknowledges each durable flush; a
receiver thread here advances the watermarks from those acknowledgements, so that
:meth:`wait_durable` has the AuditRecorder's contract: it MUST NOT return before the records
are durable (committed, or spooled under a signed checkpoint).

Failures are loud: a child that dies, a database error that fails the child's recorder, or a
recorder error there fail this recorder, and ``record``, ``wait_durable``, ``flush`` and
``close`` raise :class:`~auditlog.errors.RecorderError` (the child's own kind where it has one).
What was acknowledged durable is in the log. ``record`` blocks only while the pipe and the
child's queue are full (backpressure). A waiter asks the child to commit soon (recorder/gather.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from auditlog.errors import RecorderError
from auditlog.events import Event
from auditlog.ledger import Signer
from auditlog.store import close_engine, create_db_engine

from .answers import PendingFlushes
from .child import ChildConfig, spawn, stop
from .durability import DurabilityTracker, DurableWaits
from .gate import EventGate, admit_or_refuse
from .limits import DEFAULT_MAX_PAYLOAD_BYTES, validate_limit
from .recorder import FailMode
from .stats import RecorderStats
from .wire import (
    Control,
    Reply,
    ask_to_close,
    control,
    decode_reply,
    encode_event,
    has_room,
    rebuild_error,
    stats_from,
)

__all__ = ["ProcessRecorder"]

_GRACE_S = 10.0  # close(): how much longer than its timeout the parent waits for the child


class ProcessRecorder(DurableWaits):
    """An :class:`AuditRecorder` whose writer runs in a child process (same public surface).

    Options are the AuditRecorder's (``flush_interval_ms``, ``spool_path``, ``key_provider``,
    ...), given to the child's recorder; they and ``witnesses`` must pickle.
    ``witness_factory``: a picklable callable the child calls for more witnesses (those with
    background senders, which do not pickle). ``start_timeout_s`` bounds :meth:`start` (the
    child migrates the database, replays a spool and asks the witnesses before it answers).
    """

    def __init__(
        self,
        *,
        db_url: str,
        origin: str,
        signers: Sequence[Signer],
        mode: FailMode = FailMode.CLOSED,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        migrate: bool = True,
        witnesses: Sequence[Any] = (),
        witness_factory: Callable[[], Sequence[Any]] | None = None,
        start_timeout_s: float = 300.0,
        **options: Any,
    ) -> None:
        if not signers:
            raise RecorderError("the recorder needs at least one checkpoint signing key")
        self.origin = origin
        self.mode = mode
        self.stats = RecorderStats()
        self.last_checkpoint_note: str | None = None
        self.engine: Engine | None = None  # for the caller's lookups in the log, set by start()
        self._config = ChildConfig(
            db_url=db_url,
            origin=origin,
            signer_keys=[signer.key_string for signer in signers],
            migrate=migrate,
            witnesses=list(witnesses),
            witness_factory=witness_factory,
            options={**options, "mode": mode, "max_payload_bytes": max_payload_bytes},
        )
        self._start_timeout_s = start_timeout_s
        self._gate = EventGate(max_payload_bytes=validate_limit(max_payload_bytes))
        self._durable = DurabilityTracker()
        self._durable.on_wait = self._flush_soon
        self._sent = self._soon_at = 0  # events sent; their count at the last SOON message
        self._soon_wanted = False  # a waiter asked for a SOON message not sent yet
        self._put_lock = threading.Lock()
        self._closed = False
        self._torn = False  # a write was interrupted mid-message
        self._failure: BaseException | None = None
        self._process: Any = None
        self._conn: Any = None
        self._receiver: threading.Thread | None = None
        self._ready = threading.Event()  # READY or START_FAILED came, or the child ended
        self._ended = threading.Event()  # CLOSED came, or the child ended
        self._start_error: BaseException | None = None
        self._close_error: BaseException | None = None
        self._flushes = PendingFlushes()  # its lock guards _failure too

    @classmethod
    def open(
        cls, db_url: str, *, origin: str, signers: Sequence[Signer], **options: Any
    ) -> ProcessRecorder:
        """Start the child, which connects to ``db_url`` (migrating it) and starts recording."""
        return cls(db_url=db_url, origin=origin, signers=signers, **options).start()

    def start(self) -> ProcessRecorder:
        """Spawn the child and wait (``start_timeout_s``) until its recorder has opened."""
        with self._put_lock:
            if self._process is not None or self._closed:
                raise RecorderError("recorder already started (or closed)")
            self._process, self._conn = spawn(self._config)
            self._receiver = threading.Thread(
                target=self._receive, name=f"auditlog-acks[{self.origin}]", daemon=True
            )
            self._receiver.start()
        if not self._ready.wait(self._start_timeout_s):
            self._stop_child()
            raise RecorderError(f"recorder process did not start in {self._start_timeout_s} s")
        error = self._start_error or self._failure
        if error is not None:
            self._stop_child()
            raise error
        self.engine = create_db_engine(self._config.db_url)
        return self

    @property
    def pid(self) -> int | None:
        """The child process's id (None before :meth:`start`)."""
        return None if self._process is None else int(self._process.pid)

    # -- the engine side -------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """As :meth:`AuditRecorder.record`: refusals raise here, in the caller's thread."""
        with self._put_lock:
            self._check_usable()
            admitted = admit_or_refuse(self._gate, self._durable, event)
            if admitted is not None:
                try:
                    data = encode_event(admitted, soon=self._durable.has_waiters())
                except (TypeError, ValueError, OverflowError) as exc:  # the gates would part
                    self._fail(RecorderError(f"an admitted event cannot be sent: {exc}"))
                    raise RecorderError(f"recorder failed: {self._failure}") from exc
                self._send(data)
                self._sent += 1
        if self._soon_wanted:  # a waiter found the put lock held, or the pipe full
            self._flush_soon()

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every event recorded so far is durable."""
        self._round_trip(Control.FLUSH, timeout)

    def checkpoint_now(self, timeout: float | None = 30.0) -> None:
        """Block until everything recorded so far is durable under a signed checkpoint."""
        self._round_trip(Control.CHECKPOINT, timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        """Drain the child's recorder, let it sign a final checkpoint, and wait for its exit."""
        with self._put_lock:
            if self._closed:
                return
            self._closed = True
            if self._process is None:
                return
            with contextlib.suppress(OSError):  # it ended already: the receiver saw it
                ask_to_close(self._conn, torn=self._torn)  # failed or not: drain, sign, exit
        # The child's recorder has its own limit (60 s) and reports it; this one is a backstop.
        finished = self._ended.wait(None if timeout is None else timeout + _GRACE_S)
        if finished:
            self._stop_child()
        else:  # still draining: left to finish on its own (never killed with events queued)
            self._conn.close()
        if self.engine is not None:
            close_engine(self.engine)
        if not finished:
            raise RecorderError(f"recorder process did not close within {timeout} s")
        error = self._close_error or self._failure
        if error is not None:
            raise RecorderError(f"recorder failed: {error}") from error

    def __enter__(self) -> ProcessRecorder:
        return self if self._process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise RecorderError("recorder is closed")
        if self._process is None:
            raise RecorderError("recorder not started: call start() (open() starts it)")
        if self._failure is not None:
            raise RecorderError(f"recorder failed: {self._failure}") from self._failure

    def _send(self, data: bytes) -> None:
        try:
            self._conn.send_bytes(data)
        except OSError as exc:  # the child is gone; the receiver fails the recorder too
            self._fail(RecorderError(f"recorder process is gone: {exc}"))
            raise RecorderError(f"recorder failed: {self._failure}") from exc
        except BaseException as exc:  # a signal's exception: part of a message may be written
            self._torn = True  # and nothing may follow it (close() ends the pipe instead)
            self._fail(RecorderError(f"a write to the recorder process was interrupted: {exc!r}"))
            raise

    def _flush_soon(self) -> None:
        """The tracker's ``on_wait``: a SOON message after the events sent so far. It never
        blocks the waiter: the put lock's holder, or the next ``record()``, sends it instead."""
        self._soon_wanted = True
        while self._soon_wanted and self._put_lock.acquire(blocking=False):
            try:
                self._soon_wanted = False
                if self._sent == self._soon_at or self._closed or self._torn or self._failure:
                    continue  # covered already, or nothing to ask (a failure: the wait raises)
                if not has_room(self._conn):  # never block a waiter: the next record() asks
                    self._soon_wanted = True
                    return
                self._soon_at = self._sent
                self._send(control(Control.SOON))  # a gone child: RecorderError, as every call
            finally:
                self._put_lock.release()

    def _round_trip(self, kind: Control, timeout: float | None) -> None:
        with self._put_lock:  # no slot is left unanswered: _fail() takes the slots' lock
            number, slot = self._flushes.add(self._check_usable)
            self._send(control(kind, number))
        self._flushes.wait(number, slot, kind.name.lower(), timeout)

    def _receive(self) -> None:
        """The acknowledgement thread: child replies -> watermarks, until the pipe ends."""
        while True:
            try:
                data = self._conn.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                self._dispatch(decode_reply(data))
            except Exception as exc:  # never a silent stop of the acknowledgements
                self._fail(RecorderError(f"bad reply from the recorder process: {exc!r}"))
        if not self._ended.is_set():
            self._process.join(5.0)
            code = self._process.exitcode
            self._fail(RecorderError(f"recorder process ended unexpectedly (exit code {code})"))
        self._ready.set()
        self._ended.set()
        self._flushes.release(RecorderError("recorder closed before the flush was answered"))

    def _dispatch(self, reply: list[Any]) -> None:
        kind = reply[0]
        if kind == Reply.ACK:
            _, started, tokens, ended, stats, note = reply
            self.stats, self.last_checkpoint_note = stats_from(stats), note
            self._durable.advance(set(started), tokens, set(ended))
        elif kind == Reply.FLUSHED:
            error = None if reply[2] is None else rebuild_error(reply[2], reply[3])
            self._flushes.answer(reply[1], error)
        elif kind == Reply.REFUSED:
            self._durable.refuse(reply[1], rebuild_error(reply[2], reply[3]))
        elif kind == Reply.FAILED:
            self._fail(rebuild_error(reply[1], reply[2]))
        elif kind == Reply.READY:
            self.stats, self.last_checkpoint_note = stats_from(reply[1]), reply[2]
            self._ready.set()
        elif kind == Reply.START_FAILED:
            self._start_error = rebuild_error(reply[1], reply[2])
            self._ready.set()
        elif kind == Reply.CLOSED:
            self.stats, self.last_checkpoint_note = stats_from(reply[1]), reply[2]
            if reply[3] is not None:
                self._close_error = rebuild_error(reply[3], reply[4])
            self._ended.set()

    def _fail(self, exc: BaseException) -> None:
        with self._flushes.lock:
            first, self._failure = self._failure is None, self._failure or exc
        if first:
            self._durable.fail(exc)
        self._flushes.release(self._failure)

    def _stop_child(self) -> None:
        stop(self._process, self._conn)
