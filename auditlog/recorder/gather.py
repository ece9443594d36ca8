"""Group commit: which queued events go into one flush of the writer (recorder/writer.py).

The writer takes the first event, then gathers more for the group-commit interval
(``flush_interval_ms``, at most ``max_batch_events``): fewer, larger transactions, less contention
with the engine's thread. A caller waiting for durability (a fail-closed release) does not wait
the interval out: while anyone waits (``waiting()``), the writer commits as soon as its queue is
empty, and :meth:`EventGatherer.flush_soon` (called when a wait begins) wakes it for events it has
gathered already. A wait may begin before or after the events it waits for are queued (a server
may wait for a request's end while the engine thread records it): either way they go out at the
first empty queue after both. Events that arrive while that flush commits go out together in the
next one, so under load the batches grow with the flush's own duration. A caller of the process
recorder waits in the parent: its events come with a "soon" mark, or a SOON message follows them
(recorder/process.py); there ``waiting()`` is always false, and the mark alone asks. A flush
marker (``flush()``, ``checkpoint_now()``) or the stop mark ends a gathering at once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable

from auditlog.events import Event

__all__ = ["STOP", "CheckpointMarker", "EventGatherer", "GroupCommit", "forces_checkpoint"]

#: Queued by ``close``: drain, sign a final checkpoint, stop.
STOP = object()
#: Queued by :meth:`EventGatherer.flush_soon` to wake a gathering writer: a caller waits.
_SOON = object()


class CheckpointMarker(threading.Event):
    """A flush marker that also forces a checkpoint (``checkpoint_now``)."""


def forces_checkpoint(marker: threading.Event) -> bool:
    return isinstance(marker, CheckpointMarker)


class GroupCommit:
    """The writer's timing: group commit, checkpoint cadence, outage retries (seconds)."""

    __slots__ = (
        "checkpoint_every",
        "checkpoint_interval_s",
        "flush_interval_s",
        "max_batch_events",
        "retry_interval_s",
    )

    def __init__(
        self,
        *,
        max_batch_events: int,
        flush_interval_ms: float,
        checkpoint_every: int,
        checkpoint_interval_ms: float,
        retry_interval_ms: float,
    ) -> None:
        self.max_batch_events = max_batch_events
        self.flush_interval_s = flush_interval_ms / 1000
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_ms / 1000
        self.retry_interval_s = retry_interval_ms / 1000


Gathered = tuple[list[Event], list[threading.Event], bool]  # events, markers, stopping


class EventGatherer:
    """Takes one flush's worth of items off the writer's queue (the writer's thread only,
    except :meth:`flush_soon`)."""

    def __init__(
        self, events: queue.Queue[object], timing: GroupCommit, waiting: Callable[[], bool]
    ) -> None:
        self._events = events
        self._timing = timing
        self._waiting = waiting  # anyone waiting for durability (DurabilityTracker.has_waiters)
        self._soon = False  # a caller asked: commit once the queue is empty

    def flush_soon(self) -> None:
        """A caller waits for what it queued: commit once the queue is empty (any thread)."""
        if not self._soon:  # two threads may both wake the writer: one more empty wake-up
            self._soon = True
            with contextlib.suppress(queue.Full):  # a full queue: the writer is busy anyway
                self._events.put_nowait(_SOON)

    def next_events(self, idle_timeout: float | None) -> Gathered:
        """Wait up to ``idle_timeout`` (None: forever) for a first item, then gather."""
        end = None if idle_timeout is None else time.monotonic() + idle_timeout
        try:
            item = self._events.get(timeout=idle_timeout)
            while item is _SOON:  # nothing gathered: the empty queue after the events decides
                left = None if end is None else max(end - time.monotonic(), 0.0)
                item = self._events.get(timeout=left)  # the idle timeout is not started over
        except queue.Empty:
            return [], [], False
        return self._gather(item, time.monotonic() + self._timing.flush_interval_s)

    def _gather(self, item: object, deadline: float) -> Gathered:
        events: list[Event] = []
        get, get_nowait = self._events.get, self._events.get_nowait
        while True:
            if item is STOP:
                return events, [], True
            if isinstance(item, threading.Event):
                return events, [item], False
            if item is not _SOON:
                events.append(item)  # type: ignore[arg-type]
                if len(events) >= self._timing.max_batch_events:
                    return events, [], False
            try:
                item = get_nowait()
                continue
            except queue.Empty:
                pass
            if events and (self._soon or self._waiting()):
                # Cleared before the last look: a caller whose event comes after that look
                # asks again, and its event goes out in the next flush as soon.
                self._soon = False
                try:
                    item = get_nowait()
                    continue
                except queue.Empty:
                    return events, [], False
            try:
                item = get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                return events, [], False
