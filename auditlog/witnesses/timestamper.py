"""Timestamp each checkpoint at an RFC 3161 authority in the background (optional, per log).

:class:`Timestamper` is a recorder witness (``submit(origin, size, note)``): it queues the
checkpoint and returns at once, so a slow or unreachable TSA never blocks recording. A background
thread sends the queued checkpoints in order and stores each verified response with its
checkpoint; the queue is bounded (``max_pending``, the oldest is dropped when the TSA falls that
far behind: a later checkpoint's timestamp covers the records before it too).
"""

from __future__ import annotations

import threading
import time
from collections import deque

import structlog
from sqlalchemy import Engine

from auditlog.errors import AuditlogError, RecorderError
from auditlog.store import create_db_engine, get_log_id
from auditlog.store.timestamps import StoredTimestamp, insert_timestamp

from .storing import write_retrying
from .tsa import request_timestamp

__all__ = ["Timestamper"]

log = structlog.get_logger("auditlog.timestamps")


class Timestamper:
    """Sends checkpoints of the log(s) in ``db_url`` to the TSA at ``tsa_url``; see the module."""

    def __init__(
        self, db_url: str, tsa_url: str, *, timeout_s: float = 10.0, max_pending: int = 256
    ) -> None:
        self.tsa_url = tsa_url
        self._db_url = db_url
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._pending: deque[tuple[str, int, str]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self.num_stamped = 0
        self.num_failed = 0
        self.last_error: str | None = None

    def start(self) -> None:
        with self._cond:
            if self._closed:
                raise RecorderError("timestamper is closed")
            if self._thread is None:
                self._engine = create_db_engine(self._db_url)
                self._thread = threading.Thread(target=self._run, name="auditlog-tsa", daemon=True)
                self._thread.start()

    def submit(self, origin: str, size: int, note: str) -> None:
        """Queue the checkpoint ``note`` of ``origin`` at ``size``; never blocks."""
        self.start()
        with self._cond:
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()
                log.warning("timestamps.behind", origin=origin, dropped_before=size)
            self._pending.append((origin, size, note))
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Send what is queued (up to ``timeout``), then stop."""
        self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                origin, size, note = self._pending.popleft()
                self._busy = True
            try:
                self._stamp(origin, size, note)
            except AuditlogError as exc:
                self.num_failed += 1
                self.last_error = str(exc)
                log.warning("timestamps.failed", origin=origin, size=size, error=str(exc))
            except Exception:  # the thread must survive anything one checkpoint does
                self.num_failed += 1
                log.exception("timestamps.failed", origin=origin, size=size)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _stamp(self, origin: str, size: int, note: str) -> None:
        assert self._engine is not None
        response, gen_time = request_timestamp(self.tsa_url, note, timeout_s=self._timeout_s)
        stamp = StoredTimestamp(size=size, response=response, gen_time=gen_time)
        write_retrying(
            self._engine,
            lambda conn: insert_timestamp(
                conn, get_log_id(conn, origin), stamp, received=time.time_ns()
            ),
        )
        self.num_stamped += 1
