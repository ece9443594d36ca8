"""Durability watermarks: what has committed, per request, and who is waiting for it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from auditlog.errors import AuditlogError, RecorderError

__all__ = ["UNTIL_END", "DurabilityTracker", "DurableWaits"]

#: ``n_tokens`` value meaning "until the request's end record is durable".
UNTIL_END = None

# Finished requests whose watermarks stay answerable after their end record is durable.
_FINISHED_KEPT = 65_536


@dataclass(slots=True)
class _Mark:
    started: bool = False
    tokens: int = 0
    ended: bool = False
    waiters: list[tuple[int | None, asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list
    )


class DurabilityTracker:
    """Per-request count of tokens whose records are durable (thread-safe).

    The writer thread calls :meth:`advance` after each commit; engine and server threads wait with
    :meth:`wait` or :meth:`wait_async`. ``on_wait`` is called (outside the lock) each time a
    waiter starts waiting for something not yet durable: the recorder sets it to its writer's
    ``flush_soon``, so that nobody waits out the group-commit interval needlessly.
    """

    def __init__(self) -> None:
        self.on_wait: Callable[[], None] | None = None
        self._cond = threading.Condition()
        self._num_waiting = 0  # waiters not yet answered: threads in wait(), futures
        self._marks: dict[str, _Mark] = {}
        self._finished: OrderedDict[str, _Mark] = OrderedDict()
        self._failure: BaseException | None = None
        # Requests refused alone (their events could not be recorded): waiters get the error.
        self._refused: OrderedDict[str, BaseException] = OrderedDict()

    def advance(self, started: set[str], tokens: dict[str, int], ended: set[str]) -> None:
        """Record that a flush committed: starts, token counts and ends, per request."""
        wake: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        with self._cond:
            if self._refused:  # a refused request is never satisfied again (refuse)
                started = started - self._refused.keys()
                tokens = {k: n for k, n in tokens.items() if k not in self._refused}
                ended = ended - self._refused.keys()
            for request_id in started:
                self._mark(request_id).started = True
            for request_id, n in tokens.items():
                self._mark(request_id).tokens += n
            for request_id in ended:
                mark = self._mark(request_id)
                mark.ended = True
            for request_id in started | tokens.keys() | ended:
                mark = self._marks[request_id]
                keep: list[tuple[int | None, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
                for waiter in mark.waiters:
                    if self._satisfied(mark, waiter[0]):
                        wake.append(waiter[1:])
                    else:
                        keep.append(waiter)
                self._num_waiting -= len(mark.waiters) - len(keep)
                mark.waiters = keep
            for request_id in ended:
                mark = self._marks.pop(request_id)
                self._finished[request_id] = mark
                if len(self._finished) > _FINISHED_KEPT:
                    self._finished.popitem(last=False)
            self._cond.notify_all()
        for loop, fut in wake:
            loop.call_soon_threadsafe(_resolve, fut, None)

    def fail(self, exc: BaseException) -> None:
        """The recorder can no longer make anything durable: every waiter gets ``exc``."""
        with self._cond:
            self._failure = exc
            waiters = [w for m in self._marks.values() for w in m.waiters]
            for m in self._marks.values():
                m.waiters = []
            self._num_waiting -= len(waiters)
            self._cond.notify_all()
        error = RecorderError(f"recorder failed: {exc}")
        for _, loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut, error)

    def refuse(self, request_id: str, exc: BaseException) -> None:
        """Nothing more of ``request_id`` will be made durable: its waiters get ``exc``.

        Its already durable records stay durable; :meth:`wait` MUST NOT return for it again, so a
        fail-closed server never releases a token of a request the recorder gave up on.
        """
        with self._cond:
            self._refused[request_id] = exc
            if len(self._refused) > _FINISHED_KEPT:
                self._refused.popitem(last=False)
            mark = self._marks.pop(request_id, None)
            waiters = [] if mark is None else mark.waiters
            self._num_waiting -= len(waiters)
            self._cond.notify_all()
        for _, loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut, exc)

    def refusal(self, request_id: str) -> RecorderError | None:
        """The error :meth:`refuse` gave ``request_id``, or None."""
        with self._cond:
            exc = self._refused.get(request_id)
        if exc is None:
            return None
        error = _refusal(exc)
        return error if isinstance(error, RecorderError) else RecorderError(str(error))

    def _error(self, request_id: str) -> BaseException | None:
        if self._failure is not None:
            return RecorderError(f"recorder failed: {self._failure}")
        refused = self._refused.get(request_id)
        if refused is not None:
            return _refusal(refused)
        return None

    def durable_tokens(self, request_id: str) -> int:
        with self._cond:
            mark = self._marks.get(request_id) or self._finished.get(request_id)
            return 0 if mark is None else mark.tokens

    def wait(self, request_id: str, n_tokens: int | None, timeout: float | None = None) -> None:
        """Block until the start record and ``n_tokens`` tokens of the request are durable
        (``None``, :data:`UNTIL_END`: until its end record is)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._ready(request_id, n_tokens):
                return
            self._num_waiting += 1
        try:
            self._waiting()
            with self._cond:
                while not self._ready(request_id, n_tokens):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise self._timeout(request_id, n_tokens, timeout)
                    self._cond.wait(remaining)
        finally:
            with self._cond:
                self._num_waiting -= 1

    def _timeout(self, request_id: str, n_tokens: int | None, timeout: float | None) -> Exception:
        mark = self._marks.get(request_id) or self._finished.get(request_id)
        durable = 0 if mark is None else mark.tokens
        what = "end record" if n_tokens is None else f"{n_tokens} tokens"
        return TimeoutError(
            f"request {request_id!r}: {what} not durable after {timeout} s "
            f"(durable: {durable} tokens)"
        )

    async def wait_async(self, request_id: str, n_tokens: int | None) -> None:
        """Async form of :meth:`wait` (no thread is parked)."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._ready(request_id, n_tokens):
                return
            mark = self._marks.get(request_id) or self._finished.get(request_id)
            if mark is None:
                mark = self._mark(request_id)
            fut: asyncio.Future[None] = loop.create_future()
            mark.waiters.append((n_tokens, loop, fut))
            self._num_waiting += 1
        self._waiting()
        await fut

    def has_waiters(self) -> bool:
        """Whether anyone waits for something not yet durable (the writer then commits as soon
        as its queue is empty, recorder/gather.py). A cancelled async waiter counts until its
        request's records or end come, or the recorder fails: at worst an early commit."""
        return self._num_waiting > 0

    def _ready(self, request_id: str, n_tokens: int | None) -> bool:
        """Under the lock: True once satisfied; raises the error a waiter gets, if any."""
        error = self._error(request_id)
        if error is not None:
            raise error
        mark = self._marks.get(request_id) or self._finished.get(request_id)
        return mark is not None and self._satisfied(mark, n_tokens)

    def _waiting(self) -> None:
        on_wait = self.on_wait
        if on_wait is not None:
            on_wait()

    @staticmethod
    def _satisfied(mark: _Mark, n_tokens: int | None) -> bool:
        if n_tokens is None:  # UNTIL_END: the end record itself
            return mark.ended
        return mark.started and (mark.tokens >= n_tokens or mark.ended)

    def _mark(self, request_id: str) -> _Mark:
        mark = self._marks.get(request_id)
        if mark is None:
            mark = self._marks[request_id] = _Mark()
        return mark


class DurableWaits:
    """The waits a recorder offers its callers, over its :class:`DurabilityTracker`: one home
    for the thread recorder and the process recorder (their trackers advance differently)."""

    _durable: DurabilityTracker

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


def _resolve(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(_refusal(exc))


def _refusal(exc: BaseException) -> AuditlogError:
    """The error a waiter gets: auditlog's own errors as they are, others wrapped."""
    if isinstance(exc, AuditlogError):
        return exc
    return RecorderError(f"recorder failed: {exc}")
