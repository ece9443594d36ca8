"""One request's output on its way out of the server: the C21 release point.

Fail-closed (the default, C21): a chunk covering the request's first ``n`` tokens MUST NOT leave
before ``recorder.wait_durable_async(request_id, n)`` has returned, and the response MUST NOT
complete (``[DONE]`` or the JSON body) before the request's end record is durable. Fail-open
releases at once. Either way ``release_hook(request_id, n)`` runs at the release point.

Delivered tokens (C6): a chunk counts as delivered once the transport accepted it before the
client was seen to disconnect. On an early close the delivered count is the largest ``n`` whose
decoded tokens are a prefix of the delivered text (the engine's rule for stop strings).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from auditlog.engine.outputs import num_tokens_within
from auditlog.errors import EngineError
from auditlog.events import FinishReason
from auditlog.gateway.openai_errors import ApiError
from auditlog.recorder import FailMode
from auditlog.recorder.kinds import Recorder

from .engine_loop import EngineLoop, EngineStopped
from .settings import ReleaseHook

if TYPE_CHECKING:
    from auditlog.engine import StepOutput

__all__ = ["Chunk", "Generation"]

# ``wait_durable`` resolves once n tokens are durable *or* the end record is; asking for more
# tokens than any request can have therefore waits for the end record itself.


@dataclass(frozen=True, slots=True)
class Chunk:
    """Text released to the client, covering the request's first ``n_tokens`` tokens."""

    text: str
    n_tokens: int
    finish_reason: FinishReason | None


class Generation:
    """Pulls a request's engine outputs, releases them durably, and closes the request."""

    def __init__(
        self,
        *,
        request_id: str,
        queue: asyncio.Queue[StepOutput | EngineStopped],
        engine_loop: EngineLoop,
        recorder: Recorder | None,
        fail_mode: FailMode,
        release_hook: ReleaseHook | None,
        decode: Callable[[list[int]], str],
    ) -> None:
        self.request_id = request_id
        self._queue = queue
        self._engine_loop = engine_loop
        self._recorder = recorder
        self._fail_closed = recorder is not None and fail_mode is FailMode.CLOSED
        self._release_hook = release_hook
        self._decode = decode
        self.token_ids: list[int] = []
        self.delivered_text = ""
        self.finish_reason: FinishReason | None = None
        self._closed = False

    @property
    def n_generated(self) -> int:
        return len(self.token_ids)

    async def next_chunk(self) -> Chunk:
        """The next releasable chunk (outputs already queued are coalesced into one).

        Raises :class:`ApiError` when the engine ended the request with an error.
        """
        if self.finish_reason is not None:
            raise EngineError(f"request {self.request_id!r} already finished")
        item = await self._queue.get()
        items = [item]
        while not self._queue.empty() and not _is_last(items[-1]):
            items.append(self._queue.get_nowait())
        text: list[str] = []
        for out in items:
            if isinstance(out, EngineStopped):
                raise ApiError(503, out.reason, type="service_unavailable")
            self.token_ids.extend(out.new_token_ids)
            text.append(out.text_delta)
            if out.finished:
                self.finish_reason = out.finish_reason
                if out.finish_reason is FinishReason.ERROR:
                    self._close_now(0)
                    raise ApiError.bad_request(out.error or "the engine rejected the request")
        await self._release(self.n_generated)
        return Chunk("".join(text), self.n_generated, self.finish_reason)

    async def _release(self, n_tokens: int) -> None:
        """The C21 release point (module docstring). A request the recorder refused is never
        released, fail-open or fail-closed (C23)."""
        refused = None if self._recorder is None else self._recorder.refusal(self.request_id)
        if refused is not None:
            raise refused
        if self._fail_closed and self._recorder is not None:
            await self._recorder.wait_durable_async(self.request_id, n_tokens)
        if self._release_hook is not None:
            self._release_hook(self.request_id, n_tokens)

    def delivered(self, chunk: Chunk) -> None:
        """The transport accepted ``chunk``."""
        self.delivered_text += chunk.text

    async def complete(self) -> None:
        """Everything reached the client: record the end and, fail-closed, wait for it."""
        self._close_now(None)
        if self._fail_closed and self._recorder is not None:
            await self._recorder.wait_closed_async(self.request_id)

    def abandon(self) -> None:
        """The client went away (or the response failed): abort and record what it got."""
        if self._closed:
            return
        n = num_tokens_within(self.token_ids, self.delivered_text, self._decode)
        self._close_now(n)

    def _close_now(self, n_delivered: int | None) -> None:
        if not self._closed:
            self._closed = True
            self._engine_loop.close(self.request_id, n_delivered)


def _is_last(item: object) -> bool:
    return isinstance(item, EngineStopped) or bool(getattr(item, "finished", False))
