"""The streamed response: sends released chunks and notices a client that goes away.

A plain ASGI response rather than ``StreamingResponse``: uvicorn silently drops writes after a
disconnect, so the response watches ``receive()`` for ``http.disconnect`` itself and counts a
chunk as delivered only if no disconnect was seen when the transport took it (C6, C22).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import orjson
import structlog
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from auditlog.gateway.openai_errors import SERVER_ERROR, ApiError, error_body

from .formats import Usage, WireFormat
from .generation import Chunk, Generation

__all__ = ["AuditedEventStream"]

log = structlog.get_logger("auditlog.server")


class AuditedEventStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        *,
        generation: Generation,
        first: Chunk,
        wire: WireFormat,
        prompt_tokens: int,
        headers: dict[str, str],
    ) -> None:
        # No super().__init__: a body would declare a Content-Length (as StreamingResponse does).
        self.status_code = 200
        self.background: BackgroundTask | None = None
        self.init_headers(headers)
        self.generation = generation
        self.first = first
        self.wire = wire
        self.prompt_tokens = prompt_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gen = self.generation
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            chunk = self.first
            while True:
                data = self.wire.chunk(chunk)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                if gone.is_set():
                    return  # finally: abandon() with what was delivered before
                gen.delivered(chunk)
                if chunk.finish_reason is not None:
                    break
                nxt = await _unless_gone(gen.next_chunk(), gone)
                if nxt is None:
                    return
                chunk = nxt
            await gen.complete()
            usage = Usage(self.prompt_tokens, gen.n_generated)
            await send(
                {"type": "http.response.body", "body": self.wire.trailer(usage), "more_body": False}
            )
        except ApiError as err:
            # Headers are gone already: report in-band, as OpenAI servers do.
            await _send_error(send, err.body())
        except Exception as exc:
            log.exception("server.stream_failed", request_id=gen.request_id)
            await _send_error(send, error_body(f"stream failed: {exc}", type=SERVER_ERROR))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            gen.abandon()  # no-op once complete() closed the request


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def _unless_gone(next_chunk: Coroutine[Any, Any, Chunk], gone: asyncio.Event) -> Chunk | None:
    """Await the next chunk, or None as soon as the client is gone."""
    task = asyncio.ensure_future(next_chunk)
    waiter = asyncio.ensure_future(gone.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


async def _send_error(send: Send, body: dict[str, object]) -> None:
    with contextlib.suppress(Exception):
        data = b"data: " + orjson.dumps(body) + b"\n\n"
        await send({"type": "http.response.body", "body": data, "more_body": False})
