"""The caller-side gate of the recorder: what ``AuditRecorder.record`` refuses at once.

Every event is checked (:func:`~auditlog.recorder.checks.check_event`: types, ranges, sizes and
the canonical encoding itself) and matched against the requests this process has open, in the
caller's thread, so that a bad event gets a clear error where it came from and never reaches (or
stops) the writer.

A refused ``RequestStarted`` refuses that request alone: its id is remembered (the most recent
``RECENT_IDS_KEPT``), later steps are admitted without its tokens, and its end is dropped, so an
engine that goes on generating for it never stops the other requests of the batch.

A request id is used once per log: ids admitted by this process are remembered (the most recent
``RECENT_IDS_KEPT``); older ids and earlier processes are the caller's to check (the server and
the middleware look them up in the log), and the verifier reports any reuse
(``chain.restarted``). A per-start database lookup here was measured to stall PostgreSQL COPY
flushes, so there is none.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

import structlog

from auditlog.errors import RecorderError
from auditlog.events import BatchStep, Event, RequestFinished, RequestStarted

from .checks import check_event, event_context, safe_text
from .durability import DurabilityTracker
from .limits import DEFAULT_MAX_PAYLOAD_BYTES, check_prompt_size

__all__ = ["RECENT_IDS_KEPT", "EventGate", "admit_or_refuse"]

log = structlog.get_logger("auditlog.recorder")

RECENT_IDS_KEPT = 100_000


def admit_or_refuse(gate: EventGate, durable: DurabilityTracker, event: Event) -> Event | None:
    """``gate.admit(event)``; a refusal is logged, and a refused start fails its waiters too."""
    try:
        return gate.admit(event)
    except RecorderError as exc:
        log.warning("recorder.refused", **event_context(event), error=safe_text(str(exc)))
        if isinstance(event, RequestStarted) and type(event.request_id) is str:
            durable.refuse(event.request_id, exc)
        raise


def _remember(ids: OrderedDict[str, None], request_id: str) -> None:
    ids[request_id] = None
    if len(ids) > RECENT_IDS_KEPT:
        ids.popitem(last=False)


class EventGate:
    """Thread-safe admission of events (one per recorder)."""

    def __init__(self, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.max_payload_bytes = max_payload_bytes  # limits.py: the prompt of a start
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._refused: OrderedDict[str, None] = OrderedDict()

    def admit(self, event: Event) -> Event | None:
        """The event to queue for ``event`` (None: nothing to record), or raise.

        Raises :class:`~auditlog.errors.UnrecordableEventError` for an event the canonical
        encoding would refuse, and :class:`RecorderError` for one that does not fit the open
        requests, and its subclass :class:`~auditlog.recorder.limits.PayloadTooLargeError` for a
        start whose prompt is over ``max_payload_bytes`` (checked first: an oversized prompt is
        never encoded). A step loses the tokens of requests whose start was refused; the end of
        such a request gives None.
        """
        if isinstance(event, RequestStarted):
            try:
                check_prompt_size(event, self.max_payload_bytes)
                check_event(event)
            except RecorderError:
                if type(event.request_id) is str:
                    with self._lock:
                        if event.request_id not in self._open:
                            _remember(self._refused, event.request_id)
                raise
        elif isinstance(event, BatchStep):
            with self._lock:  # the ids of open requests were checked at their start
                event = self._without_refused(event)
                check_event(event, self._open)
        else:
            check_event(event)
        with self._lock:
            return self._match(event)

    def _without_refused(self, step: BatchStep) -> BatchStep:
        refused = self._refused.keys() & (set(step.request_ids) | step.drafts.keys())
        if not refused:
            return step
        keep = [i for i, rid in enumerate(step.request_ids) if rid not in refused]
        return dataclasses.replace(
            step,
            token_ids=tuple(step.token_ids[i] for i in keep),
            request_ids=tuple(step.request_ids[i] for i in keep),
            provenance=tuple(step.provenance[i] for i in keep),
            drafts={rid: ids for rid, ids in step.drafts.items() if rid not in refused},
        )

    def _match(self, event: Event) -> Event | None:
        if isinstance(event, RequestStarted):
            request_id = event.request_id
            if request_id in self._open or request_id in self._recent:
                raise RecorderError(f"request {request_id!r} is already open or used")
            self._open.add(request_id)
            self._refused.pop(request_id, None)
            _remember(self._recent, request_id)
        elif isinstance(event, BatchStep):
            unknown = set(event.request_ids).union(event.drafts) - self._open
            if unknown:
                raise RecorderError(
                    f"step {event.step_id} carries tokens for requests that were never "
                    f"started: {sorted(unknown)[:5]}"
                )
        elif isinstance(event, RequestFinished):
            if event.request_id not in self._open:
                if event.request_id in self._refused:
                    self._refused.pop(event.request_id)
                    return None
                raise RecorderError(f"request {event.request_id!r} is not open")
            self._open.discard(event.request_id)
        return event
