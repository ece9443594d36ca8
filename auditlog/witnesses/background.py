"""One background thread that hands a log's checkpoints, in order, to an outside party.

The lifecycle that the HTTP witnesses (:class:`~auditlog.witnesses.pool.WitnessPool`) and the
RFC 3161 timestamper (:class:`~auditlog.witnesses.timestamper.Timestamper`) share: ``submit``
queues and returns at once (a slow or unreachable party never blocks recording), one daemon thread
takes the queued checkpoints per log in FIFO order, ``wait_idle`` and ``close`` drain the queue.
Each log's queue is bounded (``max_pending``): when the party falls that far behind, the oldest
checkpoint is dropped, since a newer checkpoint covers the records before it too.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import structlog
from sqlalchemy import Engine

from auditlog.errors import RecorderError
from auditlog.store import create_db_engine

__all__ = ["CheckpointQueue"]

log = structlog.get_logger("auditlog.witnesses")


class CheckpointQueue:
    """Base of the background senders: subclasses implement :meth:`_handle` (and may override
    :meth:`_accepts`, :meth:`_on_dropped`, :meth:`_worker_context`)."""

    thread_name = "auditlog-checkpoints"

    def __init__(self, db_url: str, *, max_pending: int = 256) -> None:
        self._db_url = db_url
        self._max_pending = max_pending
        self._pending: dict[str, deque[tuple[int, str]]] = {}  # origin -> (size, note), FIFO
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None

    def start(self) -> None:
        """Open the database engine and start the thread (once; :meth:`submit` calls it)."""
        with self._cond:
            if self._closed:
                raise RecorderError(f"{type(self).__name__} is closed")
            if self._thread is None:
                self._engine = create_db_engine(self._db_url)
                self._thread = threading.Thread(
                    target=self._run, name=self.thread_name, daemon=True
                )
                self._thread.start()

    def submit(self, origin: str, size: int, note: str) -> None:
        """Queue the checkpoint ``note`` of ``origin`` at ``size``; never blocks."""
        self.start()
        with self._cond:
            queued = self._pending.setdefault(origin, deque())
            if not self._accepts(queued, size):
                return
            if len(queued) >= self._max_pending:
                queued.popleft()
                self._on_dropped(origin, size)
            queued.append((size, note))
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued checkpoint was handled; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Handle what is queued (up to ``timeout``), then stop the thread."""
        self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()

    # -- hooks ---------------------------------------------------------------------------------

    def _accepts(self, queued: deque[tuple[int, str]], size: int) -> bool:
        """Whether a checkpoint at ``size`` joins ``queued`` (called under the lock)."""
        del queued, size
        return True

    def _on_dropped(self, origin: str, size: int) -> None:
        """The oldest queued checkpoint of ``origin`` was dropped for one at ``size``."""

    def _worker_context(self) -> AbstractContextManager[Any]:
        """What the thread holds open while it runs (handed to :meth:`_handle`)."""
        return nullcontext()

    def _handle(self, context: Any, origin: str, size: int, note: str) -> None:
        raise NotImplementedError

    # -- the thread ----------------------------------------------------------------------------

    def _take(self) -> tuple[str, int, str] | None:
        """The next queued checkpoint (blocking), or None once closed and drained."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._closed)
            if not self._pending:
                return None
            origin = next(iter(self._pending))
            size, note = self._pending[origin].popleft()
            if not self._pending[origin]:
                del self._pending[origin]
            self._busy = True
            return origin, size, note

    def _run(self) -> None:
        with self._worker_context() as context:
            while (item := self._take()) is not None:
                try:
                    self._handle(context, *item)
                except Exception:  # the thread must survive anything one checkpoint does
                    log.exception(
                        "checkpoint.send_failed", sender=type(self).__name__, origin=item[0]
                    )
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
