"""Review of group commit with a waiter (recorder/gather.py, the tracker's ``on_wait``): waits
that begin before their event is recorded, a stalled child, the idle timeout."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from test_flush_soon import SOON_S, _open, _start, _step

from auditlog.events import FinishReason, RequestFinished
from auditlog.recorder.gather import EventGatherer, GroupCommit
from auditlog.store.engines import normalize_url


def _end(request_id: str) -> RequestFinished:
    return RequestFinished(
        request_id=request_id, reason=FinishReason.STOP, n_generated=1, n_delivered=1, ts=20
    )


@pytest.mark.parametrize(
    ("kind", "other"),
    [
        ("thread", False),
        ("thread", True),
        ("process", False),
        ("process", True),
    ],
)
def test_a_wait_begun_before_its_event_is_recorded_is_released_soon(
    kind: str, other: bool, db_url: str, tmp_path: Path
) -> None:
    """The server's completion (server/generation.py ``complete``): the end is recorded by the
    engine thread after the event loop began ``wait_closed_async``. The waiter asked, so its
    end record must not wait out the interval, whether or not another stream records meanwhile."""
    with _open(kind, db_url, tmp_path) as recorder:
        recorder.record(_start("a"))
        recorder.record(_step(1, "a"))
        recorder.wait_durable("a", 1, timeout=30)
        released: list[float] = []
        waiter = threading.Thread(
            target=lambda: (
                recorder.wait_closed("a", timeout=30),
                released.append(time.monotonic()),
            )
        )
        waiter.start()
        time.sleep(0.3)  # the waiter has asked
        if other:
            recorder.record(_start("other"))  # another stream, nobody waits for it
            time.sleep(0.3)
        recorded = time.monotonic()
        recorder.record(_end("a"))
        waiter.join(30)
        assert released and released[0] - recorded < SOON_S, released[0] - recorded


@contextmanager
def _stalled_child(db_url: str, tmp_path: Path) -> Iterator[Any]:
    """A process recorder whose child cannot commit (another session locks the records table):
    its queue and the pipe fill, and an engine thread's ``record`` blocks holding the put lock
    (backpressure, as documented). Request "a" is started and durable."""
    if db_url.startswith("sqlite"):
        pytest.skip("a table lock held by another session: PostgreSQL")
    locker = create_engine(normalize_url(db_url), poolclass=NullPool)
    with _open("process", db_url, tmp_path, queue_size=8) as recorder:
        recorder.record(_start("a"))
        recorder.wait_durable("a", 0, timeout=30)
        conn = locker.connect()
        trans = conn.begin()
        conn.execute(text("LOCK TABLE records IN ACCESS EXCLUSIVE MODE"))
        stop = threading.Event()
        sent = [0]

        def engine_thread() -> None:
            step = 1
            while not stop.is_set():
                recorder.record(_step(step, "a"))
                step, sent[0] = step + 1, sent[0] + 1

        engine = threading.Thread(target=engine_thread, daemon=True)
        engine.start()
        try:
            before = -1
            while before != sent[0]:  # until record() blocks: pipe and queue full
                before = sent[0]
                time.sleep(1.0)
            yield recorder
        finally:
            stop.set()
            trans.rollback()
            conn.close()
            engine.join(30)
    locker.dispose()


@pytest.mark.postgres
def test_a_wait_on_a_stalled_child_keeps_its_timeout(db_url: str, tmp_path: Path) -> None:
    """``wait_durable(timeout=...)`` times out, as it did before the wake-up was sent."""
    with _stalled_child(db_url, tmp_path) as recorder:
        outcome: queue.Queue[tuple[str, float]] = queue.Queue()

        def sync_wait() -> None:
            t = time.monotonic()
            try:
                recorder.wait_durable("a", 10**9, timeout=0.5)
            except BaseException as exc:
                outcome.put((type(exc).__name__, time.monotonic() - t))

        threading.Thread(target=sync_wait, daemon=True).start()
        try:
            name, took = outcome.get(timeout=5)
        except queue.Empty:
            name, took = "still blocked", 5.0
        assert (name, took < 2) == ("TimeoutError", True), (name, took)


@pytest.mark.postgres
def test_an_async_wait_on_a_stalled_child_keeps_the_event_loop(db_url: str, tmp_path: Path) -> None:
    """``wait_durable_async`` parks no thread: the event loop goes on serving others."""
    with _stalled_child(db_url, tmp_path) as recorder:

        async def async_wait() -> float:
            ticks = [time.monotonic()]

            async def ticker() -> None:
                while True:
                    await asyncio.sleep(0.05)
                    ticks.append(time.monotonic())

            tick = asyncio.ensure_future(ticker())
            wait = asyncio.ensure_future(recorder.wait_durable_async("a", 10**9))
            await asyncio.sleep(1.0)
            tick.cancel()
            wait.cancel()
            return max(b - a for a, b in itertools.pairwise(ticks))

        result: queue.Queue[float] = queue.Queue()
        threading.Thread(target=lambda: result.put(asyncio.run(async_wait())), daemon=True).start()
        try:
            stall = result.get(timeout=5)
        except queue.Empty:
            stall = 5.0
        assert stall < 0.5, f"the event loop stalled {stall:.2f} s"


def test_a_wake_up_while_idle_keeps_the_idle_timeout() -> None:
    """The idle timeout is when a checkpoint falls due (or the spool is retried): a waiter's
    wake-up that finds nothing to gather must not start it over."""
    timing = GroupCommit(
        max_batch_events=16, flush_interval_ms=10.0, checkpoint_every=100,
        checkpoint_interval_ms=1000.0, retry_interval_ms=200.0,
    )  # fmt: skip
    events: queue.Queue[object] = queue.Queue()
    gatherer = EventGatherer(events, timing, lambda: False)
    threading.Timer(0.3, gatherer.flush_soon).start()
    t = time.monotonic()
    assert gatherer.next_events(0.5) == ([], [], False)
    took = time.monotonic() - t
    assert took < 0.7, took
