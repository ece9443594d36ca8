"""AuditRecorder: the middleware between an inference engine and the audit store.

Durability contract (docs/DESIGN.md section 5), in RFC 2119 words:

- :meth:`AuditRecorder.record` MUST NOT block the caller unless the bounded queue is full
  (backpressure), and MUST NOT drop an event. An event it cannot accept raises at once.
- A record is durable once the transaction holding it has committed, or, while the database is
  unreachable (a connection error; any other database error fails the recorder loudly), once its
  batch is fsynced to the local spool with a signed checkpoint of the tree after it, and that
  checkpoint has gone to the witnesses. The spool is replayed in order, before anything newer,
  when the database returns; replay refuses lines that do not lead to their signed roots.
- :meth:`AuditRecorder.wait_durable` MUST NOT return before every record covering the request's
  first ``n_tokens`` tokens (and its start record) is durable.
- On open, the recorder replays a leftover spool, resumes the log from the database (size,
  Merkle frontier, open chains), MUST refuse to resume a database smaller than, or different
  from, its witnesses' newest checkpoint (a policy witness is asked for its latest cosigned one;
  one that does not answer is logged, never blocks: recovery.py), and closes every chain left
  open with ``request.end`` reason ``interrupted``.
- It signs a checkpoint every ``checkpoint_every`` records or ``checkpoint_interval_ms``, and at
  close; each goes to the database (same transaction as the records it covers) and then to every
  witness.
- Recording cannot be switched off per request (C23): nothing in an event can disable it.
"""

from __future__ import annotations

import enum
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine

from auditlog.crypto import KeyProvider
from auditlog.errors import RecorderError
from auditlog.events import Event
from auditlog.ledger import Signer
from auditlog.protect.retention import RetentionPolicy
from auditlog.store import WriterLock, close_engine, create_db_engine, upgrade

from .commit import Committer
from .durability import DurabilityTracker, DurableWaits
from .gate import EventGate, admit_or_refuse
from .gather import STOP, CheckpointMarker, GroupCommit
from .limits import DEFAULT_MAX_PAYLOAD_BYTES, validate_limit
from .spool import Spool, default_state_dir, spool_file
from .stats import RecorderStats
from .writer import LogWriter, Witness

__all__ = ["AuditRecorder", "FailMode", "RecorderStats", "Witness"]

log = structlog.get_logger("auditlog.recorder")


class FailMode(enum.StrEnum):
    """What a server does with a token whose record is not yet durable (C21)."""

    CLOSED = "fail-closed"  # release a token only once its record is durable
    OPEN = "fail-open"  # release at once; a lost record shows as a gap/interrupted end


class AuditRecorder(DurableWaits):
    """Records engine events as per-request chains in one log (one writer thread per log).

    Tuning (group commit): the writer gathers events for ``flush_interval_ms`` after the first
    one (at most ``max_batch_events``) and commits them in one transaction: a longer interval is
    less contention with the engine thread. A caller waiting for durability (a fail-closed
    release, :meth:`wait_durable`) does not wait the interval out: the writer commits as soon as
    its queue is empty, and what arrives during that commit goes out together in the next one
    (docs/PERFORMANCE.md).

    ``key_provider``: seal every payload of every new request (C16) with a fresh data key
    wrapped by the request tenant's key-encryption key (docs/FORMAT.md section 3.4).
    ``retention``: record each new request's retention class in its start (C14).
    ``max_payload_bytes``: refuse a request whose prompt is larger (recorder/limits.py) with
    :class:`~auditlog.recorder.limits.PayloadTooLargeError`; nothing of it is stored.
    ``close_witnesses``: the recorder owns its witnesses: :meth:`close` closes each one that has
    a ``close()`` after the final checkpoint was handed to it (background senders then finish
    sending it).
    ``durable``: the watermarks the writer advances after each durable flush (the process
    recorder's child passes one that also acknowledges to its parent, recorder/child.py).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        origin: str,
        signers: Sequence[Signer],
        witnesses: Sequence[Witness] = (),
        mode: FailMode = FailMode.CLOSED,
        queue_size: int = 65_536,
        max_batch_events: int = 1024,
        flush_interval_ms: float = 10.0,
        checkpoint_every: int = 10_000,
        checkpoint_interval_ms: float = 1_000.0,
        spool_path: str | Path | None = None,
        retry_interval_ms: float = 200.0,
        key_provider: KeyProvider | None = None,
        retention: RetentionPolicy | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        close_witnesses: bool = False,
        durable: DurabilityTracker | None = None,
    ) -> None:
        if not signers:
            raise RecorderError("the recorder needs at least one checkpoint signing key")
        self.engine = engine
        self.origin = origin
        self.mode = mode
        self.signers = list(signers)
        self.witnesses = list(witnesses)
        self._close_witnesses = close_witnesses
        self.stats = RecorderStats()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._owns_engine = False
        self._durable = DurabilityTracker() if durable is None else durable
        # what record() refuses at once, in the caller's thread (prompts over the limit included)
        self._gate = EventGate(max_payload_bytes=validate_limit(max_payload_bytes))
        self._put_lock = threading.Lock()
        self._closed = False
        # One writer per log: held until close (store/writer_lock.py).
        self._lock = WriterLock(engine=engine, origin=origin)
        committer = Committer(
            engine=engine,
            origin=origin,
            lock=self._lock,
            spool=Spool(Path(spool_path or spool_file(default_state_dir(), origin))),
            stats=self.stats,
            verifiers=[signer.verifier for signer in self.signers],
        )
        self._log_writer = LogWriter(
            committer=committer,
            signers=self.signers,
            witnesses=self.witnesses,
            events=self._queue,
            durable=self._durable,
            timing=GroupCommit(
                max_batch_events=max_batch_events,
                flush_interval_ms=flush_interval_ms,
                checkpoint_every=checkpoint_every,
                checkpoint_interval_ms=checkpoint_interval_ms,
                retry_interval_ms=retry_interval_ms,
            ),
            key_provider=key_provider,
            retention=retention,
        )
        self._durable.on_wait = self._log_writer.flush_soon
        self._writer: threading.Thread | None = None  # started by start()

    def start(self) -> AuditRecorder:
        """Take the log's writer lock, resume the log from the database (asking the witnesses
        whether it was rolled back) and start the writer thread; returns the recorder. The
        constructor does no I/O: :meth:`open` and ``with`` call this."""
        with self._put_lock:
            if self._writer is not None or self._closed:
                raise RecorderError("recorder already started (or closed)")
            self._lock.acquire()
            try:
                self._log_writer.resume(self.engine)
            except BaseException:
                self._lock.release()
                raise
            # One writer thread sequences and commits. (A two-stage pipeline, a commit thread
            # behind the sequencer, was measured slower twice, the second time with 250-row
            # statements: the commit thread builds and binds rows with the GIL, and each time
            # the driver gives it back a busy sequencing thread keeps it for a switch
            # interval; PostgreSQL's server shares the same cores. docs/PERFORMANCE.md.)
            self._writer = threading.Thread(
                target=self._log_writer.run, name=f"auditlog-writer[{self.origin}]", daemon=True
            )
            self._writer.start()
        return self

    @property
    def last_checkpoint_note(self) -> str | None:
        """The signed note of the newest checkpoint made durable, or None."""
        return self._log_writer.last_checkpoint_note

    @property
    def _failure(self) -> BaseException | None:
        return self._log_writer.failure

    @classmethod
    def open(
        cls,
        db_url: str,
        *,
        origin: str,
        signers: Sequence[Signer],
        migrate: bool = True,
        **options: Any,
    ) -> AuditRecorder:
        """Connect to ``db_url`` (migrating it to the current schema) and start recording."""
        if migrate:
            upgrade(db_url)
        engine = create_db_engine(db_url)
        try:
            recorder = cls(engine=engine, origin=origin, signers=signers, **options).start()
        except BaseException:
            engine.dispose()
            raise
        recorder._owns_engine = True  # closed with the recorder: no -wal/-shm files left behind
        return recorder

    # -- the engine side -------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Queue one event. Blocks only while the queue is full; never drops.

        Raises :class:`RecorderError` at once for an event that cannot be recorded (the recorder
        is closed or failed, a request started twice, tokens or an end for an unknown request),
        and its subclass :class:`~auditlog.errors.UnrecordableEventError` for an event that the
        canonical encoding would refuse (lone surrogates, floats, integers beyond ±(2^53-1),
        oversized fields), :class:`~auditlog.recorder.limits.PayloadTooLargeError` among them
        for a prompt over ``max_payload_bytes``. A refused start refuses that request alone: its
        waiters get the error, later steps are recorded without its tokens and its end is
        dropped (recorder/gate.py).
        """
        with self._put_lock:  # close() takes it too: nothing is queued behind the stop mark
            self._check_open()
            if self._failure is not None:
                raise RecorderError(f"recorder failed: {self._failure}") from self._failure
            admitted = admit_or_refuse(self._gate, self._durable, event)
            if admitted is not None:
                self._queue.put(admitted)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every event queued so far is durable."""
        self._flush(threading.Event(), timeout)

    def flush_soon(self) -> None:
        """Commit what is queued as soon as the queue is empty, not at the end of the
        group-commit interval (the process recorder's child calls it for its parent's waiters;
        :meth:`wait_durable` does it itself)."""
        self._log_writer.flush_soon()

    def _flush(self, done: threading.Event, timeout: float | None) -> None:
        with self._put_lock:
            self._check_open()
            self._queue.put(done)
        if not done.wait(timeout):
            raise RecorderError(f"flush did not complete within {timeout} s")
        if self._failure is not None:
            raise RecorderError(f"recorder failed: {self._failure}") from self._failure

    def _check_open(self) -> None:
        if self._closed:
            raise RecorderError("recorder is closed")
        if self._writer is None:
            raise RecorderError("recorder not started: call start() (open() starts it)")

    def checkpoint_now(self, timeout: float | None = 30.0) -> None:
        """Block until every event queued so far is durable and covered by a committed signed
        checkpoint (readers show only what a checkpoint covers)."""
        self._flush(CheckpointMarker(), timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        """Drain the queue, sign a final checkpoint and stop the writer thread."""
        with self._put_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(STOP)
        if self._writer is not None:  # never started: nothing to stop, no lock held
            self._writer.join(timeout)
            if self._writer.is_alive():
                raise RecorderError(f"{self._writer.name} did not stop within {timeout} s")
            self._lock.release()
        for witness in self.witnesses if self._close_witnesses else ():
            close = getattr(witness, "close", None)
            if close is not None:
                close()
        if self._owns_engine:
            close_engine(self.engine)
        if self._failure is not None:
            raise RecorderError(f"recorder failed: {self._failure}") from self._failure

    def __enter__(self) -> AuditRecorder:
        return self if self._writer is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
