"""The caller-side gate of the recorder: what ``AuditRecorder.record`` refuses at once.

Every event is checked (:func:`~auditlog.recorder.translate.check_event`) and matched against the
requests this process has open, in the caller's thread, so that a bad event gets a clear error
where it came from and never reaches (or stops) the writer. A request id is used once per log:
ids admitted by this process are remembered (the most recent ``RECENT_IDS_KEPT``); older ids and
earlier processes are the caller's to check (the server and the middleware look them up in the
log), and the verifier reports any reuse (``chain.restarted``). A per-start database lookup here
was measured to stall PostgreSQL COPY flushes, so there is none.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from auditlog.errors import RecorderError
from auditlog.events import BatchStep, Event, RequestFinished, RequestStarted

from .translate import check_event

__all__ = ["RECENT_IDS_KEPT", "EventGate"]

RECENT_IDS_KEPT = 100_000


class EventGate:
    """Thread-safe admission of events (one per recorder)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()

    def admit(self, event: Event) -> None:
        """Raise :class:`RecorderError` unless ``event`` can be recorded now."""
        check_event(event)
        with self._lock:
            if isinstance(event, RequestStarted):
                request_id = event.request_id
                if request_id in self._open or request_id in self._recent:
                    raise RecorderError(f"request {request_id!r} is already open or used")
                self._open.add(request_id)
                self._recent[request_id] = None
                if len(self._recent) > RECENT_IDS_KEPT:
                    self._recent.popitem(last=False)
            elif isinstance(event, BatchStep):
                unknown = set(event.request_ids).union(event.drafts) - self._open
                if unknown:
                    raise RecorderError(
                        f"step {event.step_id} carries tokens for requests that were never "
                        f"started: {sorted(unknown)[:5]}"
                    )
            elif isinstance(event, RequestFinished):
                if event.request_id not in self._open:
                    raise RecorderError(f"request {event.request_id!r} is not open")
                self._open.discard(event.request_id)
