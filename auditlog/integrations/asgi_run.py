"""The wrapped app's run (``asgi.AuditMiddleware``): a task watches the connection
(``http.disconnect`` from ``receive``) while the app runs, so a client gone before a non-streamed
answer is seen; the app's ``receive`` is fed the already-read request messages, then from it."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope

from .asgi_exchange import Exchange
from .asgi_policy import without_accept_encoding

__all__ = ["run_watched"]


async def run_watched(
    app: ASGIApp, scope: Scope, replay: list[Message], receive: Receive, ex: Exchange
) -> None:
    """Run ``app`` (without the client's ``Accept-Encoding``) answering through ``ex``: the
    server's error becomes ``ex.error`` unless the client left; ``ex`` is ended in every case."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()

    async def watch() -> None:  # the connection, also while the app does not read it
        while not ex.disconnected:
            message = await receive()
            ex.disconnected = message["type"] == "http.disconnect"
            inbox.put_nowait(message)

    async def app_receive() -> Message:
        if replay:
            return replay.pop(0)
        if ex.disconnected and inbox.empty():
            return {"type": "http.disconnect"}
        return await inbox.get()

    watcher = asyncio.create_task(watch())
    try:
        await app(without_accept_encoding(scope), app_receive, ex.on_send)
    except BaseException as exc:
        if not ex.disconnected:
            ex.error = ex.error or f"server raised {type(exc).__name__}: {exc}"
        raise
    finally:
        watcher.cancel()
        # the watch ends cancelled, or with the server's receive() error: neither is the app's
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        ex.end()
