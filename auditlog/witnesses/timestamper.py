"""Timestamp each checkpoint at an RFC 3161 authority in the background (optional, per log).

:class:`Timestamper` is a recorder witness (``submit(origin, size, note)``): it queues the
checkpoint and returns at once, so a slow or unreachable TSA never blocks recording. A background
thread sends the queued checkpoints in order and stores each verified response with its
checkpoint; each log's queue is bounded (``max_pending``, the oldest is dropped when the TSA falls
that far behind: a later checkpoint's timestamp covers the records before it too). The queue and
the thread are :class:`~auditlog.witnesses.background.CheckpointQueue`'s, shared with the HTTP
witnesses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from cryptography import x509

from auditlog.errors import AuditlogError
from auditlog.store import get_log_id
from auditlog.store.timestamps import StoredTimestamp, insert_timestamp

from .background import CheckpointQueue
from .storing import write_retrying
from .tsa import request_timestamp, verify_timestamp

__all__ = ["Timestamper"]

log = structlog.get_logger("auditlog.timestamps")


class Timestamper(CheckpointQueue):
    """Sends checkpoints of the log(s) in ``db_url`` to the TSA at ``tsa_url``; see the module."""

    thread_name = "auditlog-tsa"

    def __init__(
        self,
        db_url: str,
        tsa_url: str,
        *,
        timeout_s: float = 10.0,
        max_pending: int = 256,
        certs: Sequence[x509.Certificate] = (),
    ) -> None:
        super().__init__(db_url, max_pending=max_pending)
        self.tsa_url = tsa_url
        self._certs = tuple(certs)  # when given, a token is stored only if it verifies
        self._timeout_s = timeout_s
        self.num_stamped = 0
        self.num_failed = 0
        self.last_error: str | None = None

    def _on_dropped(self, origin: str, size: int) -> None:
        log.warning("timestamps.behind", origin=origin, dropped_before=size)

    def _handle(self, context: object, origin: str, size: int, note: str) -> None:
        del context
        try:
            self._stamp(origin, size, note)
        except AuditlogError as exc:
            self.num_failed += 1
            self.last_error = str(exc)
            log.warning("timestamps.failed", origin=origin, size=size, error=str(exc))
        except Exception:  # the thread must survive anything one checkpoint does
            self.num_failed += 1
            log.exception("timestamps.failed", origin=origin, size=size)

    def _stamp(self, origin: str, size: int, note: str) -> None:
        assert self._engine is not None
        response, gen_time = request_timestamp(self.tsa_url, note, timeout_s=self._timeout_s)
        if self._certs:
            verify_timestamp(response, note, self._certs)
        stamp = StoredTimestamp(size=size, response=response, gen_time=gen_time)
        write_retrying(
            self._engine,
            lambda conn: insert_timestamp(
                conn, get_log_id(conn, origin), stamp, received=time.time_ns()
            ),
        )
        self.num_stamped += 1
