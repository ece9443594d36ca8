"""The engine thread: runs ``LLMEngine.step()`` beside the asyncio event loop.

The engine is single-threaded (``add_request``, ``step`` and ``abort`` MUST come from one
thread). The event loop hands it commands through a queue; the engine thread hands each step's
outputs back with ``loop.call_soon_threadsafe`` into one ``asyncio.Queue`` per request, so the
event loop never blocks on a forward pass and concurrent streams share every batch.

Request ends (C6, generated vs delivered): the engine emits ``RequestFinished`` when it stops
generating, but only the server knows what reached the client. :class:`AuditSink` therefore holds
each end until the server closes the request with the number of tokens it delivered, then records
it with that count and the closing time. A request the client abandons is aborted in the engine
and closed the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from auditlog.errors import EngineError, RecorderError, UnrecordableEventError
from auditlog.events import BatchStep, Event, FinishReason, RequestFinished, RequestStarted
from auditlog.gateway.auth import Identity
from auditlog.recorder.checks import MAX_ERROR_LENGTH, safe_text

if TYPE_CHECKING:
    from auditlog.engine import LLMEngine, SamplingParams, StepOutput

__all__ = ["AuditSink", "EngineLoop", "EngineStopped"]

log = structlog.get_logger("auditlog.server")

_STOP_TIMEOUT_S = 30.0


class EngineStopped:
    """Queued to every open request when the engine thread ends (failure or shutdown)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class AuditSink:
    """The engine's event sink: forwards events to ``record``, holding ends (module docstring).

    Called on the engine thread only.
    """

    def __init__(self, record: Callable[[Event], None]) -> None:
        self._record = record
        self._held: dict[str, RequestFinished] = {}
        self._overrides: dict[str, int] = {}
        self._generated: Counter[str] = Counter()
        self._open: set[str] = set()
        self.failure: RecorderError | None = None
        # Requests the recorder refused alone (their events cannot be recorded): never served.
        self.refused: dict[str, UnrecordableEventError] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestStarted):
            self._open.add(event.request_id)
        elif isinstance(event, BatchStep):
            self._generated.update(event.request_ids)
        elif isinstance(event, RequestFinished):
            delivered = self._overrides.pop(event.request_id, None)
            if delivered is None:
                self._held[event.request_id] = event
                return
            event = _closed(event, delivered)
        self._forward(event)

    def close(self, request_id: str, n_delivered: int | None) -> bool:
        """Record the held end of ``request_id`` with ``n_delivered`` (None: as the engine said).

        Returns False when the engine has not ended the request yet; the next end it emits for
        the request is then recorded with ``n_delivered``.
        """
        self.refused.pop(request_id, None)
        held = self._held.pop(request_id, None)
        if held is None:
            self._overrides[request_id] = 0 if n_delivered is None else n_delivered
            return False
        self._forward(held if n_delivered is None else _closed(held, n_delivered))
        return True

    def fail_open_requests(self, error: str) -> None:
        """The engine died: end every open request with reason ``error`` (C1)."""
        for request_id in sorted(self._open):
            held = self._held.pop(request_id, None)
            n_generated = self._generated[request_id] if held is None else held.n_generated
            self._forward(
                RequestFinished(
                    request_id=request_id,
                    reason=FinishReason.ERROR,
                    n_generated=n_generated,
                    n_delivered=self._overrides.pop(request_id, 0),
                    ts=time.time_ns(),
                    error=error,
                )
            )

    def _forward(self, event: Event) -> None:
        if isinstance(event, RequestFinished):
            self._open.discard(event.request_id)
            self._generated.pop(event.request_id, None)
        try:
            self._record(event)
        except UnrecordableEventError as exc:
            self._refuse(event, exc)
        except RecorderError as exc:
            if self.failure is None:
                log.error("server.recorder_failed", error=str(exc))
            self.failure = exc

    def _refuse(self, event: Event, exc: UnrecordableEventError) -> None:
        """One event was refused: refuse its request alone (the recorder goes on for the rest).

        A refused start is remembered, so the server answers that request with 400 and never
        serves it unrecorded (C23). A refused end (an engine error text that is not valid text)
        is recorded again with the error text escaped, so the chain still closes.
        """
        if isinstance(event, RequestFinished) and type(event.error) is str:
            escaped = safe_text(event.error, MAX_ERROR_LENGTH)
            if escaped != event.error:
                self._forward(dataclasses.replace(event, error=escaped))
                return
        request_id = getattr(event, "request_id", None)
        log.warning("server.request_refused", request_id=safe_text(str(request_id)), error=str(exc))
        if type(request_id) is str:
            self.refused[request_id] = exc
            self._open.discard(request_id)


def _closed(event: RequestFinished, n_delivered: int) -> RequestFinished:
    return dataclasses.replace(
        event, n_delivered=min(n_delivered, event.n_delivered), ts=time.time_ns()
    )


class EngineLoop:
    """Owns the engine and its thread; the event loop talks to it through :meth:`submit`."""

    def __init__(
        self,
        *,
        engine_factory: Callable[[Callable[[Event], None]], LLMEngine],
        record: Callable[[Event], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.sink = AuditSink(record)
        self.engine = engine_factory(self.sink)
        self._loop = loop
        self._commands: deque[Callable[[], None]] = deque()
        self._wake = threading.Event()
        self._streams: dict[str, asyncio.Queue[StepOutput | EngineStopped]] = {}
        self._stopping = False
        self.failure: BaseException | None = None
        self.num_steps = 0
        self._thread = threading.Thread(target=self._run, name="auditlog-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- the event loop side ---------------------------------------------------------------

    def submit(
        self, request_id: str, prompt: str | list[int], params: SamplingParams, identity: Identity
    ) -> asyncio.Queue[StepOutput | EngineStopped]:
        """Queue a request; its outputs arrive on the returned queue. Event loop thread only."""
        if self.failure is not None or self._stopping:
            raise EngineError(f"engine is not running: {self.failure or 'shutting down'}")
        if self.sink.failure is not None:
            raise self.sink.failure
        queue: asyncio.Queue[StepOutput | EngineStopped] = asyncio.Queue()
        self._streams[request_id] = queue

        def add() -> None:
            self.engine.add_request(
                request_id,
                prompt,
                params,
                tenant=identity.tenant,
                principal=identity.principal,
                client=identity.client,
            )

        self._command(add)
        return queue

    def close(self, request_id: str, n_delivered: int | None) -> None:
        """The server is done with ``request_id``: record its end with ``n_delivered`` tokens
        delivered (None: the whole output reached the client), aborting it if still running."""
        self._streams.pop(request_id, None)

        def close() -> None:
            if not self.sink.close(request_id, n_delivered) and not self.engine.abort(request_id):
                log.warning("server.close_unknown_request", request_id=request_id)

        self._command(close)

    def stop(self) -> None:
        """Abort what runs, stop the thread (open requests end with reason ``abort``)."""
        if not self._thread.is_alive():
            return

        def abort_all() -> None:
            for request_id in list(self._streams):
                if not self.sink.close(request_id, 0):
                    self.engine.abort(request_id)
            self._stopping = True

        self._command(abort_all)
        self._thread.join(_STOP_TIMEOUT_S)
        for queue in self._streams.values():
            queue.put_nowait(EngineStopped("server shutting down"))
        self._streams.clear()

    def _command(self, fn: Callable[[], None]) -> None:
        self._commands.append(fn)
        self._wake.set()

    def _deliver(self, outputs: list[StepOutput]) -> None:
        # Runs on the event loop thread.
        for out in outputs:
            queue = self._streams.get(out.request_id)
            if queue is not None:
                queue.put_nowait(out)

    def _fail_streams(self, reason: str) -> None:
        for queue in self._streams.values():
            queue.put_nowait(EngineStopped(reason))
        self._streams.clear()

    # -- the engine thread -----------------------------------------------------------------

    def _run(self) -> None:
        engine = self.engine
        try:
            while not self._stopping:
                while self._commands:
                    self._commands.popleft()()
                if engine.has_unfinished():
                    outputs = engine.step()
                    self.num_steps += 1
                    if outputs:
                        self._loop.call_soon_threadsafe(self._deliver, outputs)
                elif not self._stopping:
                    self._wake.wait()
                    self._wake.clear()
        except Exception as exc:  # the engine thread must report, never die silently
            log.exception("server.engine_failed")
            self.failure = exc
            self.sink.fail_open_requests(f"engine failed: {type(exc).__name__}: {exc}")
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._fail_streams, f"engine failed: {exc}")
