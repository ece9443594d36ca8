"""The writer thread of one log: queued events -> sequenced records -> one durable flush.

:class:`LogWriter` owns the log's :class:`~auditlog.recorder.sequencer.LogSequencer`. It resumes
the log on open (replaying a leftover spool first, checking the witnesses, closing chains a
previous process left open), then loops: gather events for the group-commit interval (or until
the queue is empty, when a caller waits for durability: :meth:`LogWriter.flush_soon`), sequence
them, sign a checkpoint when one is due, make the flush durable through the
:class:`~auditlog.recorder.commit.Committer`, and only then advance the durability watermarks
(a fail-closed token is released after that, never before).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine

from auditlog.crypto import KeyProvider, PayloadSealer
from auditlog.errors import RecorderError
from auditlog.events import Event
from auditlog.ledger import Signer
from auditlog.protect.retention import RetentionPolicy
from auditlog.store import StoredNodeSource, latest_checkpoint, register_key

from .checks import safe_text
from .commit import Committer, SignedCheckpoint
from .durability import DurabilityTracker
from .gate import RECENT_IDS_KEPT
from .gather import EventGatherer, GroupCommit, forces_checkpoint
from .recovery import check_against_witnesses, witness_notes
from .sequencer import LogSequencer
from .stats import RecorderStats
from .translate import interrupt_open_chains, sequence_events

__all__ = ["LogWriter", "Witness"]

log = structlog.get_logger("auditlog.recorder")


class Witness(Protocol):
    """Somewhere outside the database that keeps every checkpoint (C10)."""

    def submit(self, origin: str, size: int, note: str) -> Any: ...


class LogWriter:
    """State and loop of one log's writer thread (one writer per log)."""

    def __init__(
        self,
        *,
        committer: Committer,
        signers: Sequence[Signer],
        witnesses: Sequence[Witness],
        events: queue.Queue[object],
        durable: DurabilityTracker,
        timing: GroupCommit,
        key_provider: KeyProvider | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.committer = committer
        self.origin = committer.origin
        self.stats: RecorderStats = committer.stats
        self.signers = list(signers)
        self.witnesses = list(witnesses)
        self.failure: BaseException | None = None
        self.last_checkpoint_note: str | None = None
        self._events = events
        self._gather = EventGatherer(events, timing, durable.has_waiters)
        self._durable = durable
        self._timing = timing
        self._key_provider = key_provider
        self._retention = retention
        self._failed_ids: set[str] = set()  # requests the writer ended alone (sequence_events)
        self._last_checkpoint_size: int | None = None
        self._last_checkpoint_t = time.monotonic()

    # -- open ------------------------------------------------------------------------------

    def resume(self, engine: Engine) -> None:
        """Replay a leftover spool, resume the log, close open chains (recorder.py docstring)."""
        committer = self.committer
        if committer.spool.exists():  # a crash during an outage: replay (checked) first
            committer.replay_leftover()
        # Asked before the transaction (network); the writer lock keeps the log from growing.
        view = witness_notes(self.origin, self.witnesses)
        self.stats.witnesses_unanswered_on_resume = len(view.unanswered)
        with engine.begin() as conn:
            sealer = None if self._key_provider is None else PayloadSealer(self._key_provider)
            self.seq = LogSequencer.resume(
                conn, self.origin, sealer=sealer, retention=self._retention
            )
            seq = self.seq
            source = StoredNodeSource(conn, seq.log_id)
            check_against_witnesses(seq.origin, seq.size, source, view.notes)
            latest = latest_checkpoint(conn, self.seq.log_id)
            if latest is not None:
                self._last_checkpoint_size = latest.size
            for signer in self.signers:  # public keys stay listed for the retention period (C12)
                register_key(conn, self.seq.log_id, signer.verifier_key, created=time.time_ns())
            closed = interrupt_open_chains(self.seq, time.time_ns())
            self.stats.interrupted_on_resume += len(closed)
            if closed:
                log.warning("recorder.resumed_open_chains", origin=self.origin, interrupted=closed)
            checkpoint = self._due_checkpoint(force=bool(closed))
            committer.persist(conn, self.seq.log_id, self.seq.drain(), checkpoint)
        self._publish(checkpoint)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Events -> sequenced records -> one durable flush, until :data:`STOP`."""
        stopping = False
        try:
            while not stopping:
                events, markers, stopping = self._gather.next_events(self._idle_timeout())
                if self.failure is None:
                    try:
                        force = stopping or any(map(forces_checkpoint, markers))
                        self._flush(events, force=force)
                    except Exception as exc:  # the writer must report, never die silently
                        self._fail(exc)
                for marker in markers:
                    marker.set()
                self.stats.queue_depth = self._events.qsize()
        finally:
            self.committer.close()

    def _flush(self, events: list[Event], *, force: bool) -> None:
        seq = self.seq
        inc = sequence_events(seq, events, self._failed_ids)
        self._note_failed(inc.failed)
        self.stats.events += len(events)
        self.stats.tokens += inc.num_tokens
        checkpoint = self._due_checkpoint(force=force)
        self._publish(self.committer.write(seq, seq.drain(), checkpoint, self.signers))
        # Only now, after the commit (or the spool's fsync), may a waiter be released.
        self._durable.advance(inc.started, inc.tokens, inc.ended)

    def flush_soon(self) -> None:
        """A caller waits for durability: commit once the queue is empty (gather.py)."""
        self._gather.flush_soon()

    def _idle_timeout(self) -> float | None:
        """How long to wait for a first event: the spool's retry interval in an outage, the
        time until a checkpoint falls due when records are not yet under one, else forever."""
        timing = self._timing
        if self.committer.in_outage:
            return timing.retry_interval_s
        if self.seq.size != (self._last_checkpoint_size or 0):
            elapsed = time.monotonic() - self._last_checkpoint_t
            return max(timing.checkpoint_interval_s - elapsed, 0.0)
        return None

    # -- failures --------------------------------------------------------------------------

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
        self.failure = exc
        self._durable.fail(exc)

    # -- checkpoints -----------------------------------------------------------------------

    def _due_checkpoint(self, *, force: bool) -> SignedCheckpoint | None:
        """Sign the current tree head if a checkpoint is due (every N records or T ms, or
        ``force``) and the head has grown since the last one."""
        size = self.seq.size
        last = self._last_checkpoint_size
        due = (
            force
            or size - (last or 0) >= self._timing.checkpoint_every
            or time.monotonic() - self._last_checkpoint_t >= self._timing.checkpoint_interval_s
        )
        if not due or size == 0 or size == last:
            return None
        # _last_checkpoint_size moves in _publish, once the checkpoint is durable: a checkpoint
        # dropped with an empty spooled flush is signed again at the next one.
        return self.seq.checkpoint(self.signers)

    def _publish(self, checkpoint: SignedCheckpoint | None) -> None:
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
