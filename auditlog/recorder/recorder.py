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
  from, its witnesses' newest checkpoint, and closes every chain left open with ``request.end``
  reason ``interrupted``.
- It signs a checkpoint every ``checkpoint_every`` records or ``checkpoint_interval_ms``, and at
  close; each goes to the database (same transaction as the records it covers) and then to every
  witness.
- Recording cannot be switched off per request (C23): nothing in an event can disable it.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine

from auditlog.crypto import KeyProvider, PayloadSealer
from auditlog.errors import AuditlogError, RecorderError
from auditlog.events import BatchStep, Event, RequestStarted
from auditlog.ledger import Checkpoint, Signer
from auditlog.protect.retention import RetentionPolicy
from auditlog.store import (
    StoredCheckpoint,
    WriterLock,
    append_batch,
    close_engine,
    create_db_engine,
    latest_checkpoint,
    register_key,
    upgrade,
)

from .checks import safe_text
from .durability import UNTIL_END, DurabilityTracker
from .gate import RECENT_IDS_KEPT, EventGate
from .limits import DEFAULT_MAX_PAYLOAD_BYTES, validate_limit
from .recovery import check_against_witnesses
from .sequencer import LogSequencer, PendingBatch
from .spool import Spool, default_state_dir, is_outage, spool_file
from .translate import interrupt_open_chains, sequence_events

__all__ = ["AuditRecorder", "FailMode", "RecorderStats", "Witness"]

log = structlog.get_logger("auditlog.recorder")

_STOP = object()


class _CheckpointMarker(threading.Event):
    """A flush marker that also forces a checkpoint (checkpoint_now)."""


# Errors that send a flush to the spool: the database is unreachable or refused the transaction.
# (The store raises StoreError for driver errors inside its bulk path.)


class FailMode(enum.StrEnum):
    """What a server does with a token whose record is not yet durable (C21)."""

    CLOSED = "fail-closed"  # release a token only once its record is durable
    OPEN = "fail-open"  # release at once; a lost record shows as a gap/interrupted end


class Witness(Protocol):
    """Somewhere outside the database that keeps every checkpoint (C10)."""

    def submit(self, origin: str, size: int, note: str) -> Any: ...


@dataclass(slots=True)
class RecorderStats:
    """Counters readable while the recorder runs."""

    events: int = 0
    records: int = 0
    tokens: int = 0
    flushes: int = 0
    checkpoints: int = 0
    spooled_batches: int = 0
    replayed_records: int = 0
    interrupted_on_resume: int = 0
    last_flush_ms: float = 0.0
    max_flush_ms: float = 0.0
    queue_depth: int = 0
    records_per_s: float = 0.0


class AuditRecorder:
    """Records engine events as per-request chains in one log (one writer thread per log).

    Tuning (group commit): the writer gathers events for ``flush_interval_ms`` after the first
    one (at most ``max_batch_events``) and commits them in one transaction. A longer interval
    means fewer transactions and less contention with the engine thread, and a longer wait for a
    fail-closed token. Measured on the reference engine (bench/recorder.py --engine, 2-core CPU):
    2 ms gave 4.4 % fail-open overhead and 3.7 ms p50 added latency; 10 ms (the default) gave
    2.0 % and 11.7 ms.

    ``key_provider``: seal every payload of every new request (C16) with a fresh data key
    wrapped by the request tenant's key-encryption key (docs/FORMAT.md section 3.4).
    ``retention``: record each new request's retention class in its start (C14).
    ``max_payload_bytes``: refuse a request whose prompt is larger (recorder/limits.py) with
    :class:`~auditlog.recorder.limits.PayloadTooLargeError`; nothing of it is stored.
    ``close_witnesses``: the recorder owns its witnesses: :meth:`close` closes each one that has
    a ``close()`` after the final checkpoint was handed to it (background senders then finish
    sending it).
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
        self._max_batch_events = max_batch_events
        self._flush_interval_s = flush_interval_ms / 1000
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_s = checkpoint_interval_ms / 1000
        self._retry_interval_s = retry_interval_ms / 1000
        self._spool = Spool(Path(spool_path or spool_file(default_state_dir(), origin)))
        self._owns_engine = False
        self._durable = DurabilityTracker()
        # what record() refuses at once, in the caller's thread (prompts over the limit included)
        self._gate = EventGate(max_payload_bytes=validate_limit(max_payload_bytes))
        self._failed_ids: set[str] = set()  # requests the writer ended alone (sequence_events)
        self._put_lock = threading.Lock()
        self._closed = False
        self._failure: BaseException | None = None
        self._in_outage = False
        self._last_checkpoint_size = -1
        self._last_checkpoint_t = time.monotonic()
        self._t0 = time.monotonic()
        self.last_checkpoint_note: str | None = None
        self._verifiers = [signer.verifier for signer in self.signers]
        self._key_provider = key_provider
        self._retention = retention
        # One writer per log: held until close (store/writer_lock.py).
        self._lock = WriterLock(engine=engine, origin=origin)
        self._lock.acquire()
        try:
            checkpoint = self._resume()
        except BaseException:
            self._lock.release()
            raise
        self._publish(checkpoint)
        # One writer thread sequences and commits. (A two-stage pipeline was measured slower:
        # the sqlite3 driver re-takes the GIL per row, and a busy sequencer thread makes each of
        # those waits a switch interval long.)
        self._writer = threading.Thread(
            target=self._run, name=f"auditlog-writer[{origin}]", daemon=True
        )
        self._writer.start()

    def _resume(self) -> tuple[Checkpoint, str] | None:
        """Replay a leftover spool, resume the log, close open chains (module docstring)."""
        engine, origin = self.engine, self.origin
        if self._spool.exists():  # a crash during an outage: replay (checked) before anything
            self._replay_spool()
        with engine.begin() as conn:
            sealer = None if self._key_provider is None else PayloadSealer(self._key_provider)
            self._seq = LogSequencer.resume(conn, origin, sealer=sealer, retention=self._retention)
            check_against_witnesses(conn, self._seq, self.witnesses)
            latest = latest_checkpoint(conn, self._seq.log_id)
            if latest is not None:
                self._last_checkpoint_size = latest.size
            for signer in self.signers:  # public keys stay listed for the retention period (C12)
                register_key(conn, self._seq.log_id, signer.verifier_key, created=time.time_ns())
            interrupted = self._interrupt_open_chains()
            checkpoint = self._due_checkpoint(force=interrupted > 0)
            self._persist(conn, self._seq.drain(), checkpoint)
        return checkpoint

    def _replay_spool(self) -> None:
        """Write a leftover spool to the database, or refuse to start: it holds acknowledged
        records the database lacks, and a writer that went on without them would fork the log."""
        try:
            with self.engine.begin() as conn:
                self.stats.replayed_records += self._spool.replay(
                    conn, origin=self.origin, verifiers=self._verifiers
                )
        except AuditlogError as exc:
            raise RecorderError(
                f"the spool {self._spool.path} of log {self.origin!r} exists but cannot be "
                f"replayed ({exc}); it holds acknowledged records the database lacks, so no "
                "writer starts for this log until it replays (right database, right signing key)"
            ) from exc
        self._spool.clear()

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
            recorder = cls(engine=engine, origin=origin, signers=signers, **options)
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
            if self._closed:
                raise RecorderError("recorder is closed")
            if self._failure is not None:
                raise RecorderError(f"recorder failed: {self._failure}") from self._failure
            try:
                admitted = self._gate.admit(event)
            except RecorderError as exc:
                log.warning("recorder.refused", **_event_context(event), error=safe_text(str(exc)))
                if isinstance(event, RequestStarted) and type(event.request_id) is str:
                    self._durable.refuse(event.request_id, exc)
                raise
            if admitted is not None:
                self._queue.put(admitted)

    def wait_durable(
        self, request_id: str, n_tokens: int = 0, timeout: float | None = None
    ) -> None:
        """Return once the request's start and first ``n_tokens`` tokens are durable."""
        self._durable.wait(request_id, n_tokens, timeout)

    async def wait_durable_async(self, request_id: str, n_tokens: int = 0) -> None:
        """Async form of :meth:`wait_durable`."""
        await self._durable.wait_async(request_id, n_tokens)

    def wait_closed(self, request_id: str, timeout: float | None = None) -> None:
        """Return once the request's ``request.end`` record is durable."""
        self._durable.wait(request_id, UNTIL_END, timeout)

    async def wait_closed_async(self, request_id: str) -> None:
        """Async form of :meth:`wait_closed`."""
        await self._durable.wait_async(request_id, UNTIL_END)

    def durable_tokens(self, request_id: str) -> int:
        return self._durable.durable_tokens(request_id)

    def refusal(self, request_id: str) -> RecorderError | None:
        """Why ``request_id`` will never be (fully) recorded, or None: its start was refused
        (:class:`~auditlog.errors.UnrecordableEventError`) or the writer ended it alone. A
        server MUST NOT release anything more of such a request, fail-open included (C23)."""
        return self._durable.refusal(request_id)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every event queued so far is durable."""
        self._flush(threading.Event(), timeout)

    def _flush(self, done: threading.Event, timeout: float | None) -> None:
        with self._put_lock:
            if self._closed:
                raise RecorderError("recorder is closed")
            self._queue.put(done)
        if not done.wait(timeout):
            raise RecorderError(f"flush did not complete within {timeout} s")
        if self._failure is not None:
            raise RecorderError(f"recorder failed: {self._failure}") from self._failure

    def checkpoint_now(self, timeout: float | None = 30.0) -> None:
        """Block until every event queued so far is durable and covered by a committed signed
        checkpoint (readers show only what a checkpoint covers)."""
        self._flush(_CheckpointMarker(), timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        """Drain the queue, sign a final checkpoint and stop the writer thread."""
        with self._put_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
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
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        """The writer: events -> sequenced records -> one committed transaction per flush."""
        stopping = False
        while not stopping:
            events, markers, stopping = self._next_events()
            if self._failure is None:
                try:
                    inc = sequence_events(self._seq, events, self._failed_ids)
                    self._note_failed(inc.failed)
                    self.stats.events += len(events)
                    self.stats.tokens += inc.num_tokens
                    forced = any(isinstance(m, _CheckpointMarker) for m in markers)
                    checkpoint = self._due_checkpoint(force=stopping or forced)
                    if self._write(self._seq.drain(), checkpoint):
                        self._publish(checkpoint)
                    self._durable.advance(inc.started, inc.tokens, inc.ended)
                except Exception as exc:  # the writer must report, never die silently
                    self._fail(exc)
            for marker in markers:
                marker.set()
            self.stats.queue_depth = self._queue.qsize()

    def _note_failed(self, failed: dict[str, Exception]) -> None:
        """Requests the writer ended alone (sequence_events): log them, fail their waiters."""
        for request_id, exc in failed.items():
            log.error(
                "recorder.request_failed",
                origin=self.origin,
                request_id=safe_text(request_id),
                error=safe_text(str(exc)),
            )
            self._durable.refuse(request_id, RecorderError(f"request not recorded: {exc}"))
        if len(self._failed_ids) > RECENT_IDS_KEPT:  # keep the newest ids only
            self._failed_ids.clear()
            self._failed_ids.update(failed)

    def _fail(self, exc: BaseException) -> None:
        log.exception("recorder.failed", origin=self.origin, error=str(exc))
        self._failure = exc
        self._durable.fail(exc)

    def _next_events(self) -> tuple[list[Event], list[threading.Event], bool]:
        events: list[Event] = []
        markers: list[threading.Event] = []
        timeout = None
        if self._in_outage:
            timeout = self._retry_interval_s
        elif self._seq.size != max(self._last_checkpoint_size, 0):
            # Records not yet under a checkpoint: wake up when one falls due, even if idle.
            elapsed = time.monotonic() - self._last_checkpoint_t
            timeout = max(self._checkpoint_interval_s - elapsed, 0.0)
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return events, markers, False
        deadline = time.monotonic() + self._flush_interval_s
        while True:
            if item is _STOP:
                return events, markers, True
            if isinstance(item, threading.Event):
                markers.append(item)
                return events, markers, False
            events.append(item)  # type: ignore[arg-type]
            if len(events) >= self._max_batch_events:
                return events, markers, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return events, markers, False
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return events, markers, False

    def _interrupt_open_chains(self) -> int:
        closed = interrupt_open_chains(self._seq, time.time_ns())
        self.stats.interrupted_on_resume += len(closed)
        if closed:
            log.warning("recorder.resumed_open_chains", origin=self.origin, interrupted=closed)
        return len(closed)

    def _due_checkpoint(self, *, force: bool) -> tuple[Checkpoint, str] | None:
        """Sign the current tree head if a checkpoint is due (every N records or T ms, or
        ``force``) and the head has grown since the last one."""
        size = self._seq.size
        due = (
            force
            or size - max(self._last_checkpoint_size, 0) >= self._checkpoint_every
            or time.monotonic() - self._last_checkpoint_t >= self._checkpoint_interval_s
        )
        if not due or size in (0, self._last_checkpoint_size):
            return None
        # _last_checkpoint_size moves in _publish, once the checkpoint is committed: a checkpoint
        # lost with a spooled flush is signed again at the next one.
        return self._seq.checkpoint(self.signers)

    def _write(self, batch: PendingBatch, checkpoint: tuple[Checkpoint, str] | None) -> bool:
        """Persist one flush: to the database (True), or to the spool during an outage (False)."""
        if self._in_outage:
            try:
                self._lock.ensure()  # an outage may have ended the lock's session
                with self.engine.begin() as conn:
                    self.stats.replayed_records += self._spool.replay(
                        conn, origin=self.origin, verifiers=self._verifiers
                    )
                self._spool.clear()
                self._in_outage = False
                log.info("recorder.outage_over", origin=self.origin)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._spool_batch(batch, checkpoint)
                return False
        if not batch.records and checkpoint is None:
            return True
        try:
            with self.engine.begin() as conn:
                self._persist(conn, batch, checkpoint)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("recorder.outage", origin=self.origin, error=str(exc).splitlines()[0])
            self._in_outage = True
            self._spool_batch(batch, checkpoint)
            return False
        return True

    def _spool_batch(self, batch: PendingBatch, checkpoint: tuple[Checkpoint, str] | None) -> None:
        """Outage: fsync the batch with a signed checkpoint of the tree after it to the spool, and
        hand that checkpoint to the witnesses now (they do not need the database)."""
        if not batch.records:
            return
        if checkpoint is None or checkpoint[0].size != self._seq.size:
            checkpoint = self._seq.checkpoint(self.signers)
        self._spool.append(batch, checkpoint[1])
        self.stats.spooled_batches += 1
        self._publish(checkpoint)

    def _persist(
        self, conn: Connection, batch: PendingBatch, checkpoint: tuple[Checkpoint, str] | None
    ) -> None:
        """Write one flush and its checkpoint in the caller's transaction."""
        t = time.perf_counter()
        append_batch(
            conn,
            self._seq.log_id,
            batch.records,
            batch.nodes,
            data_keys=batch.data_keys,
            checkpoint=None
            if checkpoint is None
            else StoredCheckpoint(
                size=checkpoint[0].size,
                root=checkpoint[0].root,
                note=checkpoint[1],
                ts=time.time_ns(),
            ),
        )
        elapsed_ms = (time.perf_counter() - t) * 1000
        self.stats.flushes += 1
        self.stats.records += len(batch.records)
        self.stats.last_flush_ms = elapsed_ms
        self.stats.max_flush_ms = max(self.stats.max_flush_ms, elapsed_ms)
        self.stats.records_per_s = self.stats.records / max(time.monotonic() - self._t0, 1e-9)

    def _publish(self, checkpoint: tuple[Checkpoint, str] | None) -> None:
        """After the commit: remember the checkpoint and hand it to every witness (C10)."""
        if checkpoint is None:
            return
        cp, note = checkpoint
        self._last_checkpoint_size = cp.size
        self._last_checkpoint_t = time.monotonic()
        self.last_checkpoint_note = note
        self.stats.checkpoints += 1
        for witness in self.witnesses:
            try:
                witness.submit(cp.origin, cp.size, note)
            except Exception:
                log.exception("recorder.witness_failed", origin=cp.origin, size=cp.size)


def _event_context(event: object) -> dict[str, Any]:
    """Request id and step of an event, for structured logs."""
    if isinstance(event, BatchStep):
        ids = sorted(safe_text(str(rid)) for rid in set(event.request_ids))[:8]
        return {"step": event.step_id, "request_ids": ids}
    request_id = getattr(event, "request_id", None)
    return {"request_id": None if request_id is None else safe_text(str(request_id))}
