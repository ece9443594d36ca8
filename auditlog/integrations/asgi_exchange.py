"""The response side of one audited request: record what the app sends, then release it (C21).

Fail-closed means that a byte leaves only once what it carries is recorded and durable:

- ``text/event-stream`` (media types compared case-insensitively, ``charset`` UTF-8 only): each
  complete event (``asgi_sse``; comments emptied) is parsed and recorded (its envelope and
  ``usage`` too, also with empty ``choices``) and released once its tokens are durable (an
  ``event`` type other than ``message``, an ``id``, ``retry`` or unknown field is cut: only
  recorded data and bare structure leave); the ``[DONE]`` event once the end record is durable.
  The response ends there: nothing the app sends after ``[DONE]`` is released. An unterminated
  last event is never released.
- ``application/json``: the whole answer is parsed, recorded, and released (with its
  ``http.response.start``) once the end record is durable. An error status (400 and above) is
  recorded as ``error`` with the whole body as text (at most the recorder's ``MAX_ERROR_LENGTH``
  characters with its ``HTTP <status>: `` prefix, else cut: a validation error can echo the
  request); so is an in-stream error message (longer: cut).
- Anything else is cut: another media type (NDJSON, plain text with status 200), a
  ``Content-Encoding`` (a compressing middleware inside this one: it MUST wrap the audit
  middleware instead), an event or answer that is not strict JSON (``asgi_request.loads_answer``)
  or whose choice cannot be attributed (``openai_wire``), or whose content or a marked field is
  over the recorder's step limit (``MAX_STEP_TOKENS`` bytes, 1 MiB: a long non-streamed
  answer with logprobs reaches it; stream it instead). A cut before the response started is a
  502 OpenAI-shaped error; during a stream, an SSE ``error`` event that ends it. Either way the
  trail ends ``error`` with the reason, and nothing else the app sends is released.
- The client leaving (``disconnected``, set by the middleware's connection watch) ends the trail
  ``abort`` with the tokens delivered so far (0 for a JSON answer not yet sent).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from starlette.types import Message, Send

from auditlog.events import BatchStep, FinishReason, Provenance, RequestFinished
from auditlog.gateway.openai_wire import ChoiceDelta, ResponseReader, WireFormatError
from auditlog.gateway.request_ids import TRAIL_ID_HEADER
from auditlog.recorder import AuditRecorder
from auditlog.recorder.checks import MAX_ERROR_LENGTH, MAX_STEP_TOKENS

from .asgi_policy import error_body
from .asgi_request import Refused, loads_answer
from .asgi_sse import DONE, UTF8_NAMES, SseReader, media_type

__all__ = ["TRAIL_HEADER", "Exchange"]

TRAIL_HEADER = TRAIL_ID_HEADER.encode("ascii")
MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # an answer or one event, held until it is recorded
_SINGLE = (b"content-type", b"content-encoding")
_CUT_CODE = "audit_unrecordable_response"
_MAX_REASON = 1024  # characters of a cut's reason
_DROPPED_HEADERS = frozenset({TRAIL_HEADER, b"content-length"})


@dataclass(slots=True)
class Exchange:
    """One audited response as it passes through (module docstring)."""

    request_id: str
    recorder: AuditRecorder
    steps: itertools.count[int]
    fail_closed: bool
    send: Send
    disconnected: bool = False
    status: int = 0
    mode: str = ""  # "sse" | "json" once the response started
    start: Message | None = None  # a JSON answer's start, held until its body is recorded
    n_generated: int = 0
    n_delivered: int = 0
    finish_reason: str | None = None
    error: str | None = None
    ended: bool = False
    closed: bool = False  # nothing more goes to the client
    body: list[bytes] = field(default_factory=list)
    sse: SseReader = field(default_factory=SseReader)
    reader: ResponseReader = field(default_factory=ResponseReader)  # envelope once per change

    async def on_send(self, message: Message) -> None:
        """The app's ``send``."""
        if self.disconnected and not self.ended:
            self.end()
        if self.closed or (self.ended and self.disconnected):
            return
        if message["type"] == "http.response.start" and not self.status:
            await self._on_start(message)
        elif message["type"] != "http.response.body" or not self.status:
            await self.cut(f"unsupported ASGI message {message['type']!r}")
        elif self.mode == "sse":
            await self._on_event_bytes(message.get("body", b""), message.get("more_body", False))
        else:
            self.body.append(message.get("body", b""))
            if sum(map(len, self.body)) > MAX_BUFFERED_BYTES:
                await self.cut(f"answer over {MAX_BUFFERED_BYTES} bytes")
            elif not message.get("more_body", False):
                await self._on_answer(b"".join(self.body))

    async def _on_start(self, message: Message) -> None:
        self.status = int(message["status"])
        headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != TRAIL_HEADER]
        names = {k.lower(): v.decode("latin-1") for k, v in headers}
        if any(sum(k.lower() == name for k, _ in headers) > 1 for name in _SINGLE):
            await self.cut("response sends Content-Type or Content-Encoding more than once")
            return
        kind, params = media_type(names.get(b"content-type", ""))
        encoding = names.get(b"content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            await self.cut(
                f"compressed response (Content-Encoding {encoding}): compression "
                "middleware must wrap the audit middleware, not sit inside it"
            )
        elif params.get("charset", "utf-8") not in UTF8_NAMES:
            await self.cut(f"response charset {params['charset']!r} is not recorded")
        elif kind == "text/event-stream":
            self.mode = "sse"
            kept = [(k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS]
            await self._forward({**message, "headers": [*kept, self._trail_header()]})
        elif kind == "application/json" or self.status >= 400:
            self.mode = "json"
            self.start = {**message, "headers": [*headers, self._trail_header()]}
        else:
            await self.cut(f"response media type {kind!r} cannot be recorded")

    async def _on_event_bytes(self, data: bytes, more: bool) -> None:
        try:
            events = self.sse.feed(data)
        except UnicodeDecodeError:
            await self.cut("event data is not UTF-8")
            return
        if self.sse.num_buffered_bytes() > MAX_BUFFERED_BYTES:
            await self.cut(f"event over {MAX_BUFFERED_BYTES} bytes")
            return
        out = bytearray()
        for event in events:
            if event.data == DONE:
                await self._release(bytes(out), more=True)
                await self.close_trail()
                await self._forward(_body(event.raw, more=False))
                self.closed = True
                return
            if event.event_type not in (None, "", "message") or event.num_other_fields:
                await self._release(bytes(out), more=True)
                await self.cut("event fields other than data cannot be recorded")
                return
            if event.data is not None:
                try:
                    self._absorb(self.reader.read(loads_answer(event.data.encode("utf-8"))))
                except (Refused, WireFormatError) as exc:
                    await self._release(bytes(out), more=True)
                    await self.cut(f"event cannot be recorded: {_reason(exc)}")
                    return
            out += event.raw
        await self._release(bytes(out), more=True)
        if not more:
            if self.sse.unterminated().strip():
                self.error = self.error or "unterminated last event: not released"
            await self.close_trail()
            await self._forward(_body(b"", more=False))
            self.closed = True

    async def _on_answer(self, raw: bytes) -> None:
        if self.disconnected:
            self.end(n_delivered=0)
            self.closed = True
            return
        if self.status >= 400:
            text = f"HTTP {self.status}: {_error_text(raw)}"
            if len(text) > MAX_ERROR_LENGTH:  # the end record could not hold it
                await self.cut(f"HTTP {self.status} error body over {MAX_ERROR_LENGTH} characters")
                return
            self.error = text
        else:
            try:
                self._absorb(self.reader.read(loads_answer(raw)))
            except (Refused, WireFormatError) as exc:
                await self.cut(f"answer cannot be recorded: {_reason(exc)}")
                return
        await self.close_trail(n_delivered=self.n_generated)
        self.closed = True
        if self.start is not None and await self._forward(self.start):
            await self._forward(_body(raw, more=False))

    async def cut(self, reason: str) -> None:
        """Release nothing more; end the trail ``error``; tell the client (module docstring)."""
        reason = reason[:_MAX_REASON]  # it may quote the app (a media type): sent as recorded
        self.error = reason
        await self.close_trail()
        self.closed = True
        if self.mode == "sse":
            event = b"data: " + error_body(reason, param=None, code=_CUT_CODE,
                                           error_type="server_error") + b"\n\n"  # fmt: skip
            await self._forward(_body(event, more=False))
            return
        body = error_body(reason, param=None, code=_CUT_CODE, error_type="server_error")
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), self._trail_header()]  # fmt: skip
        start = {"type": "http.response.start", "status": 502, "headers": headers}
        if await self._forward(start):
            await self._forward(_body(body, more=False))

    def _absorb(self, delta: ChoiceDelta) -> None:
        """Record one chunk's output as steps (envelope, content, marked fields; C6)."""
        if delta.error is not None:
            if len(delta.error) > MAX_ERROR_LENGTH:
                raise WireFormatError(f"error message over {MAX_ERROR_LENGTH} characters")
            self.error = self.error or delta.error
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if self.ended:
            return
        steps = [tuple(text.encode("utf-8")) for text in delta.recorded_steps()]
        if any(len(ids) > MAX_STEP_TOKENS for ids in steps):  # checked before any is recorded
            raise WireFormatError(f"a step over {MAX_STEP_TOKENS} bytes (the recorder's limit)")
        for ids in steps:
            self.recorder.record(
                BatchStep(
                    step_id=next(self.steps),
                    ts=time.time_ns(),
                    token_ids=ids,
                    request_ids=(self.request_id,) * len(ids),
                    provenance=(Provenance.TARGET,) * len(ids),
                )
            )
            self.n_generated += len(ids)

    async def _release(self, data: bytes, *, more: bool) -> None:
        """Send recorded event bytes once their tokens are durable."""
        if not data:
            return
        n_tokens = self.n_generated
        if self.fail_closed:
            await self.recorder.wait_durable_async(self.request_id, n_tokens)
        if await self._forward(_body(data, more=more)):
            self.n_delivered = n_tokens

    async def close_trail(self, *, n_delivered: int | None = None) -> None:
        """End the trail and wait until the end record is durable (fail-closed)."""
        if self.ended:
            return
        self.end(n_delivered=n_delivered)
        if self.fail_closed:
            await self.recorder.wait_closed_async(self.request_id)

    def end(self, *, n_delivered: int | None = None) -> None:
        """Record the end (once): reason from what was seen; ``n_delivered`` if given."""
        if self.ended:
            return
        self.ended = True
        if self.error is not None or self.status >= 400:
            reason = FinishReason.ERROR
        elif self.disconnected:
            reason = FinishReason.ABORT
        elif self.finish_reason == "length":
            reason = FinishReason.LENGTH
        elif self.finish_reason is not None:
            reason = FinishReason.STOP
        else:
            reason = FinishReason.ERROR
            self.error = "response ended without a finish_reason"
        if n_delivered is not None:
            self.n_delivered = n_delivered
        self.recorder.record(
            RequestFinished(
                request_id=self.request_id,
                reason=reason,
                n_generated=self.n_generated,
                n_delivered=min(self.n_delivered, self.n_generated),
                ts=time.time_ns(),
                error=(self.error or "")[:MAX_ERROR_LENGTH],  # only own reasons are longer
            )
        )

    async def _forward(self, message: Message) -> bool:
        """Send unless the client is gone; True if the transport took it."""
        if self.disconnected:
            return False
        try:
            await self.send(message)
        except OSError:
            self.disconnected = True
            return False
        return not self.disconnected

    def _trail_header(self) -> tuple[bytes, bytes]:
        return TRAIL_HEADER, self.request_id.encode("latin-1")


def _body(data: bytes, *, more: bool) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, Refused) else str(exc)


def _error_text(raw: bytes) -> str:
    """An error body as recorded: its text exactly (bytes that are not UTF-8 escaped)."""
    return raw.decode("utf-8", errors="backslashreplace")
