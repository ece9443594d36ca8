"""The inference service behind the HTTP routes: recorder, engine thread, request handling."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from auditlog.events import Event
from auditlog.gateway.auth import Identity
from auditlog.gateway.request_ids import REQUEST_ID_HEADER, TRAIL_ID_HEADER, RequestIds, RequestName
from auditlog.recorder.kinds import Recorder, open_recorder

from .engine_loop import EngineLoop
from .formats import Usage, WireFormat
from .generation import Generation
from .settings import EngineFactory, ServerSettings
from .sse import AuditedEventStream, _unless_gone, _watch_disconnect

if TYPE_CHECKING:
    from auditlog.engine import LLMEngine, SamplingParams

__all__ = ["InferenceService"]

log = structlog.get_logger("auditlog.server")

# Status of a non-streamed request whose client went away (nginx's convention; never sent).
_CLIENT_CLOSED = 499


def _discard(event: Event) -> None:
    """Sink of the benchmark baseline (recording off)."""


class InferenceService:
    """Owns the recorder and the engine thread of one server (one log, one writer)."""

    def __init__(
        self,
        *,
        settings: ServerSettings,
        recorder: Recorder | None,
        engine_loop: EngineLoop,
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.engine_loop = engine_loop
        self.tokenizer = engine_loop.engine.tokenizer
        self.request_ids = RequestIds(
            engine=None if recorder is None else recorder.engine, origin=settings.origin
        )

    @classmethod
    def start(cls, settings: ServerSettings, loop: asyncio.AbstractEventLoop) -> InferenceService:
        """Open the recorder (migrating the database) and start the engine thread."""
        recorder = None
        if settings.recording:
            witnesses = functools.partial(
                settings.anchors.recorder_witnesses, settings.db_url, settings.witness_dir
            )
            recorder = open_recorder(
                settings.recorder_kind,
                settings.db_url,
                origin=settings.origin,
                signers=settings.signers,
                witness_factory=witnesses,
                spool_path=settings.spool_path,
                mode=settings.fail_mode,
                max_payload_bytes=settings.max_payload_bytes,
                close_witnesses=True,
                **(settings.recorder_options or {}),
            )
        try:
            engine_loop = EngineLoop(
                engine_factory=settings.engine_factory or _demo_factory(settings),
                record=_discard if recorder is None else recorder.record,
                loop=loop,
            )
        except BaseException:
            if recorder is not None:
                recorder.close()
            raise
        engine_loop.start()
        return cls(settings=settings, recorder=recorder, engine_loop=engine_loop)

    def stop(self) -> None:
        """Abort what still runs, then drain the recorder and sign a final checkpoint."""
        self.engine_loop.stop()
        if self.recorder is not None:
            self.recorder.close()

    def prompt_tokens(self, prompt: str | list[int]) -> int:
        # The engine encodes a text prompt as [bos] + encode(text).
        return len(prompt) if isinstance(prompt, list) else 1 + len(self.tokenizer.encode(prompt))

    async def generate(
        self,
        request: Request,
        *,
        name: RequestName,
        identity: Identity,
        prompt: str | list[int],
        params: SamplingParams,
        wire: WireFormat,
        stream: bool,
    ) -> Response:
        """Run one request (trail ``name.trail_id``, reserved); stream it or answer once it is
        complete (module docstrings)."""
        request_id = name.trail_id
        queue = self.engine_loop.submit(request_id, prompt, params, identity)
        gen = Generation(
            request_id=request_id,
            queue=queue,
            engine_loop=self.engine_loop,
            recorder=self.recorder,
            fail_mode=self.settings.fail_mode,
            release_hook=self.settings.release_hook,
            decode=self.tokenizer.decode,
        )
        headers = {REQUEST_ID_HEADER: name.caller_id, TRAIL_ID_HEADER: request_id}
        prompt_tokens = self.prompt_tokens(prompt)
        try:
            # The first chunk decides the status: an engine-rejected request answers 400.
            first = await gen.next_chunk()
        except BaseException:
            gen.abandon()
            raise
        if stream:
            return AuditedEventStream(
                generation=gen, first=first, wire=wire, prompt_tokens=prompt_tokens, headers=headers
            )
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(request.receive, gone))
        try:
            parts, chunk = [first.text], first
            while chunk.finish_reason is None:
                nxt = await _unless_gone(gen.next_chunk(), gone)
                if nxt is None:
                    return Response(status_code=_CLIENT_CLOSED, headers=headers)
                chunk = nxt
                parts.append(chunk.text)
            text = "".join(parts)
            await gen.complete()
            body = wire.body(text, chunk.finish_reason, Usage(prompt_tokens, gen.n_generated))
            return Response(orjson.dumps(body), media_type="application/json", headers=headers)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            gen.abandon()


def _demo_factory(settings: ServerSettings) -> EngineFactory:
    def build(sink: Callable[[Event], None]) -> LLMEngine:
        from auditlog.engine import LLMEngine

        return LLMEngine.demo(
            device=settings.device, speculative=settings.speculative, event_sink=sink
        )

    return build
