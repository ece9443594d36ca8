"""Where a flush becomes durable: the database, or the outage spool while it is unreachable.

:class:`Committer` is the writer thread's persistence step (docs/DESIGN.md section 5). A flush
goes to the database in one transaction, with the checkpoint that covers it. A connection error
(:func:`~auditlog.recorder.spool.is_outage`) switches to the spool: the batch is fsynced there
with a signed checkpoint of the tree after it, and that checkpoint goes to the witnesses. Every
later flush first tries to replay the spool; once it has, the database takes over again. Any
other database error is raised: the recorder fails loudly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from sqlalchemy import Connection, Engine

from auditlog.errors import AuditlogError, RecorderError
from auditlog.ledger import Checkpoint, Signer, Verifier
from auditlog.store import StoredCheckpoint, WriterLock, append_batch

from .sequencer import LogSequencer, PendingBatch
from .spool import Spool, is_outage
from .stats import RecorderStats

__all__ = ["Committer", "SignedCheckpoint"]

log = structlog.get_logger("auditlog.recorder")

#: A checkpoint and its signed note.
SignedCheckpoint = tuple[Checkpoint, str]


class Committer:
    """Persists the flushes of one log's writer (owned by that writer's thread)."""

    def __init__(
        self,
        *,
        engine: Engine,
        origin: str,
        lock: WriterLock,
        spool: Spool,
        stats: RecorderStats,
        verifiers: Sequence[Verifier],
    ) -> None:
        self.engine = engine
        self.origin = origin
        self.spool = spool
        self.stats = stats
        self.in_outage = False
        self._lock = lock
        self._verifiers = list(verifiers)
        self._t0 = time.monotonic()
        self._conn: Connection | None = None

    def replay_leftover(self) -> None:
        """Write a leftover spool to the database, or refuse to start: it holds acknowledged
        records the database lacks, and a writer that went on without them would fork the log."""
        try:
            with self.engine.begin() as conn:
                self.stats.replayed_records += self.spool.replay(
                    conn, origin=self.origin, verifiers=self._verifiers
                )
        except AuditlogError as exc:
            raise RecorderError(
                f"the spool {self.spool.path} of log {self.origin!r} exists but cannot be "
                f"replayed ({exc}); it holds acknowledged records the database lacks, so no "
                "writer starts for this log until it replays (right database, right signing key)"
            ) from exc
        self.spool.clear()

    def write(
        self,
        seq: LogSequencer,
        batch: PendingBatch,
        checkpoint: SignedCheckpoint | None,
        signers: list[Signer],
    ) -> SignedCheckpoint | None:
        """Make one flush durable; return the checkpoint that became durable with it (to hand to
        the witnesses), or None. During an outage that is a checkpoint of the spooled tree
        (signed here when ``checkpoint`` does not cover the whole batch); a checkpoint given
        with an empty spooled flush is dropped and signed again at the next one."""
        if self.in_outage and not self._end_outage():
            return self._spool_batch(seq, batch, checkpoint, signers)
        if not batch.records and checkpoint is None:
            return None
        try:
            conn = self._connection()
            with conn.begin():
                self.persist(conn, seq.log_id, batch, checkpoint)
        except Exception as exc:
            self.close()  # the next flush starts from a fresh connection
            if not is_outage(exc):
                raise
            log.warning("recorder.outage", origin=self.origin, error=str(exc).splitlines()[0])
            self.in_outage = True
            return self._spool_batch(seq, batch, checkpoint, signers)
        return checkpoint

    def _connection(self) -> Connection:
        """The writer's own connection, held between flushes: checking one out of the pool and
        back in for every flush cost ~0.1-0.3 ms of CPU, GIL time taken from the engine."""
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def close(self) -> None:
        """Give the held connection back (at stop, and after any failed flush)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a connection the outage broke: nothing left to give back
                log.debug("recorder.connection_close_failed", origin=self.origin)

    def _end_outage(self) -> bool:
        """Replay the spool if the database is back (True), else stay in the outage (False)."""
        try:
            self._lock.ensure()  # an outage may have ended the lock's session
            with self.engine.begin() as conn:
                self.stats.replayed_records += self.spool.replay(
                    conn, origin=self.origin, verifiers=self._verifiers
                )
        except Exception as exc:
            if not is_outage(exc):
                raise
            return False
        self.spool.clear()
        self.in_outage = False
        log.info("recorder.outage_over", origin=self.origin)
        return True

    def _spool_batch(
        self,
        seq: LogSequencer,
        batch: PendingBatch,
        checkpoint: SignedCheckpoint | None,
        signers: list[Signer],
    ) -> SignedCheckpoint | None:
        """Outage: fsync the batch with a signed checkpoint of the tree after it to the spool."""
        if not batch.records:
            return None
        if checkpoint is None or checkpoint[0].size != seq.size:
            checkpoint = seq.checkpoint(signers)
        self.spool.append(batch, checkpoint[1])
        self.stats.spooled_batches += 1
        return checkpoint

    def persist(
        self,
        conn: Connection,
        log_id: int,
        batch: PendingBatch,
        checkpoint: SignedCheckpoint | None,
    ) -> None:
        """Write one flush and its checkpoint in the caller's transaction."""
        t = time.perf_counter()
        append_batch(
            conn,
            log_id,
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
        stats = self.stats
        stats.flushes += 1
        stats.records += len(batch.records)
        stats.last_flush_ms = elapsed_ms
        stats.max_flush_ms = max(stats.max_flush_ms, elapsed_ms)
        stats.records_per_s = stats.records / max(time.monotonic() - self._t0, 1e-9)
