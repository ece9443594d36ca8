"""The C21 release point and the end-of-request bookkeeping, without HTTP.

A fake recorder decides when tokens become durable, so the test controls the order of events and
can show that nothing is released early (fail-closed) and that fail-open does not wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("torch")

from auditlog.engine import StepOutput
from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.recorder import FailMode
from auditlog.server.engine_loop import AuditSink
from auditlog.server.generation import Generation


class GatedRecorder:
    """``wait_durable_async`` resolves only once the test declared tokens durable."""

    def __init__(self) -> None:
        self.durable = 0
        self.changed = asyncio.Event()

    def make_durable(self, n: int) -> None:
        self.durable = n
        self.changed.set()

    async def wait_durable_async(self, request_id: str, n_tokens: int) -> None:
        while self.durable < n_tokens:
            self.changed.clear()
            await self.changed.wait()

    def durable_tokens(self, request_id: str) -> int:
        return self.durable

    def refusal(self, request_id: str) -> None:
        return None


class FakeLoop:
    def __init__(self) -> None:
        self.closed: list[tuple[str, int | None]] = []

    def close(self, request_id: str, n_delivered: int | None) -> None:
        self.closed.append((request_id, n_delivered))


def out(ids: tuple[int, ...], text: str, reason: FinishReason | None = None) -> StepOutput:
    return StepOutput(
        request_id="r1",
        new_token_ids=ids,
        provenance=(Provenance.TARGET,) * len(ids),
        text_delta=text,
        finished=reason is not None,
        finish_reason=reason,
    )


def make(mode: FailMode, recorder: Any, releases: list[tuple[int, int]]) -> tuple[Any, Any, Any]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    loop = FakeLoop()
    gen = Generation(
        request_id="r1",
        queue=queue,
        engine_loop=loop,  # type: ignore[arg-type]
        recorder=recorder,
        fail_mode=mode,
        release_hook=lambda rid, n: releases.append((n, recorder.durable_tokens(rid))),
        decode=lambda ids: bytes(ids).decode("utf-8", errors="replace"),
    )
    return gen, queue, loop


def test_fail_closed_holds_a_chunk_until_its_tokens_are_durable() -> None:
    async def scenario() -> None:
        recorder = GatedRecorder()
        releases: list[tuple[int, int]] = []
        gen, queue, _ = make(FailMode.CLOSED, recorder, releases)
        queue.put_nowait(out((72, 105), "Hi"))
        task = asyncio.create_task(gen.next_chunk())
        await asyncio.sleep(0.05)
        assert not task.done(), "a chunk left before its tokens were durable (C21)"
        recorder.make_durable(1)
        await asyncio.sleep(0.05)
        assert not task.done(), "a chunk left with only part of its tokens durable (C21)"
        recorder.make_durable(2)
        chunk = await asyncio.wait_for(task, 1)
        assert (chunk.text, chunk.n_tokens) == ("Hi", 2)
        assert releases == [(2, 2)]

    asyncio.run(scenario())


def test_fail_open_releases_at_once() -> None:
    async def scenario() -> None:
        recorder = GatedRecorder()
        releases: list[tuple[int, int]] = []
        gen, queue, _ = make(FailMode.OPEN, recorder, releases)
        queue.put_nowait(out((72,), "H"))
        chunk = await asyncio.wait_for(gen.next_chunk(), 1)
        assert chunk.n_tokens == 1 and releases == [(1, 0)]

    asyncio.run(scenario())


def test_queued_outputs_are_coalesced_and_abandon_counts_delivered_text() -> None:
    async def scenario() -> None:
        recorder = GatedRecorder()
        recorder.make_durable(10)
        gen, queue, loop = make(FailMode.CLOSED, recorder, [])
        queue.put_nowait(out((97,), "a"))
        queue.put_nowait(out((98, 99), "bc"))
        chunk = await gen.next_chunk()
        assert (chunk.text, chunk.n_tokens) == ("abc", 3)
        gen.delivered(chunk)
        queue.put_nowait(out((100,), "d"))
        await gen.next_chunk()  # released, never delivered
        gen.abandon()
        gen.abandon()  # idempotent
        assert loop.closed == [("r1", 3)]

    asyncio.run(scenario())


REF = ModelRef(name="m", weights_sha256="0" * 64, tokenizer_sha256="0" * 64)


def started(rid: str) -> RequestStarted:
    return RequestStarted(
        request_id=rid, tenant="t", principal="p", prompt_token_ids=(1,), prompt_text="x",
        params={}, target=REF, draft=None, ts=1,
    )  # fmt: skip


def test_sink_holds_the_end_until_the_server_closes_the_request() -> None:
    events: list[Event] = []
    sink = AuditSink(events.append)
    sink(started("r1"))
    sink(
        BatchStep(
            step_id=1, ts=2, token_ids=(5, 6, 7), request_ids=("r1",) * 3,
            provenance=(Provenance.TARGET,) * 3,
        )
    )  # fmt: skip
    engine_end = RequestFinished(
        request_id="r1", reason=FinishReason.LENGTH, n_generated=3, n_delivered=3, ts=3
    )
    sink(engine_end)
    assert not any(isinstance(e, RequestFinished) for e in events), "end recorded too early"
    assert sink.close("r1", 1) is True
    end = events[-1]
    assert isinstance(end, RequestFinished)
    assert (end.reason, end.n_generated, end.n_delivered) == (FinishReason.LENGTH, 3, 1)


def test_sink_applies_the_delivered_count_to_an_abort_still_to_come() -> None:
    events: list[Event] = []
    sink = AuditSink(events.append)
    sink(started("r2"))
    assert sink.close("r2", 4) is False  # still running: the engine will be aborted
    sink(RequestFinished(request_id="r2", reason=FinishReason.ABORT, n_generated=9,
                         n_delivered=9, ts=5))  # fmt: skip
    end = events[-1]
    assert isinstance(end, RequestFinished) and end.n_delivered == 4


def test_sink_ends_open_requests_with_error_when_the_engine_dies() -> None:
    events: list[Event] = []
    sink = AuditSink(events.append)
    sink(started("r3"))
    sink(
        BatchStep(step_id=1, ts=2, token_ids=(5,), request_ids=("r3",),
                  provenance=(Provenance.TARGET,))
    )  # fmt: skip
    sink.fail_open_requests("engine failed: boom")
    end = events[-1]
    assert isinstance(end, RequestFinished)
    assert (end.reason, end.n_generated, end.n_delivered) == (FinishReason.ERROR, 1, 0)
    assert "boom" in end.error
