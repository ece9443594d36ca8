"""Pure ASGI middleware that audits any OpenAI-compatible server it wraps (vLLM, transformers).

It records each ``POST`` to an audited path as a request-level trail in its own log (its own
origin, its own recorder), without the server's cooperation:

- ``RequestStarted``: identity from the ``Authorization`` header (the key is hashed; a
  configurable :class:`~auditlog.gateway.auth.ApiKeyTable` maps it to tenant and principal, C3), the
  input from the body (:func:`~auditlog.gateway.openai_wire.prompt_text`), every other body
  field as parameters (C5), floats as decimal strings.
- One ``BatchStep`` per response chunk that carries text (per SSE event; one for a JSON answer),
  its "tokens" the UTF-8 bytes of the text (``openai_wire`` module docstring), provenance
  ``target``. The middleware sees no physical batch, so each step holds one request.
- ``RequestFinished``: reason from ``finish_reason`` (``length`` -> length, any other -> stop),
  ``error`` for an HTTP error status, an error event or an exception, ``abort`` when the client
  went away first; ``n_generated`` = bytes the server produced, ``n_delivered`` = bytes forwarded
  before a disconnect was seen.

Output fields other than content (tool calls, reasoning text) are recorded as marked steps
(``openai_wire``). Fail-closed (C21, the default): an SSE event leaves only once its tokens are
durable; a JSON answer and the closing ``[DONE]`` only once the end record is durable. What the
middleware refuses (``asgi_policy``): unaudited ``POST`` endpoints under ``/v1/``, and requests the
trail could not hold exactly (``n`` > 1, ``best_of`` > 1, tool calling), the latter recorded.

Request ids (C19): the trail id is ``<namespace>/<caller id>`` (``auditlog.gateway.request_ids``),
the namespace being the caller's tenant, or ``<default tenant>/key:<16 hex>`` for a key the table
does not map; a caller id is checked against the log, never an in-memory set only. Compressing
middleware MUST sit outside this one (it must see plain bytes).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditlog.events import (
    BatchStep,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.gateway.auth import ApiKeyTable, Identity
from auditlog.gateway.openai_errors import ApiError
from auditlog.gateway.openai_wire import (
    TOKENIZATION,
    ChoiceDelta,
    SseParser,
    json_safe,
    prompt_text,
    response_delta,
)
from auditlog.gateway.request_ids import (
    NAMESPACE_SEPARATOR,
    REQUEST_ID_HEADER,
    TRAIL_ID_HEADER,
    RequestIds,
)
from auditlog.recorder import AuditRecorder, FailMode

from .asgi_policy import NOT_AUDITED, is_guarded, refusal, route_path, send_error
from .settings import MiddlewareConfig

__all__ = ["DEFAULT_PATHS", "TRAIL_HEADER", "AuditMiddleware"]

log = structlog.get_logger("auditlog.integrations")

DEFAULT_PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})
TRAIL_HEADER = TRAIL_ID_HEADER.encode("ascii")
ENGINE_LABEL = "auditlog-asgi-middleware/0.2"
_INPUT_FIELDS = ("prompt", "messages")


@dataclass(slots=True)
class _Exchange:
    """One audited request/response as it passes through."""

    request_id: str
    status: int = 0
    is_sse: bool = False
    disconnected: bool = False
    n_generated: int = 0
    n_delivered: int = 0
    finish_reason: str | None = None
    error: str | None = None
    ended: bool = False
    body: list[bytes] = field(default_factory=list)
    sse: SseParser = field(default_factory=SseParser)


class AuditMiddleware:
    """Wrap an ASGI app: ``AuditMiddleware(app)`` reads its settings from the environment
    (``MiddlewareConfig.from_env``, for ``vllm serve --middleware``); tests pass a recorder."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        recorder: AuditRecorder | None = None,
        identities: ApiKeyTable | None = None,
        default_tenant: str = "unmapped",
        paths: Iterable[str] = DEFAULT_PATHS,
        fail_mode: FailMode | None = None,
        model_refs: Mapping[str, ModelRef] | None = None,
        config: MiddlewareConfig | None = None,
    ) -> None:
        self.app = app
        self._config = config if recorder is None else None
        if recorder is None and self._config is None:
            self._config = MiddlewareConfig.from_env()
        self._recorder = recorder
        self._owns_recorder = recorder is None
        self._open_lock = threading.Lock()
        cfg = self._config
        self.identities = identities or (cfg.identities if cfg else None)
        self.default_tenant = default_tenant
        self.paths = frozenset(paths)
        mode = (
            fail_mode or (cfg.fail_mode if cfg else None) or (recorder.mode if recorder else None)
        )
        self.fail_closed = (mode or FailMode.CLOSED) is FailMode.CLOSED
        self.model_refs = dict(model_refs or {})
        self._steps = itertools.count(1)
        self._request_ids: RequestIds | None = None

    # -- plumbing ----------------------------------------------------------------------------

    def recorder(self) -> AuditRecorder:
        if self._recorder is None:
            with self._open_lock:
                if self._recorder is None and self._config is not None:
                    self._recorder = self._config.open_recorder()
        if self._recorder is None:
            raise RuntimeError("no recorder configured")
        return self._recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self._owns_recorder:
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in self.paths:
            await self._audited(scope, receive, send)
        elif is_guarded(path):
            log.warning("asgi.unaudited_endpoint_refused", path=path)  # C23
            await send_error(send, 400, NOT_AUDITED, param=None, code="endpoint_not_audited")
        else:
            await self.app(scope, receive, send)

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self._recorder is not None:
                self._recorder.close()
            await send(message)

        return lifespan_send

    # -- one audited request -----------------------------------------------------------------

    async def _audited(self, scope: Scope, receive: Receive, send: Send) -> None:
        messages, raw = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        identity, namespace = self._identity(headers.get("authorization"))
        recorder = self.recorder()
        ids = self._ids(recorder)
        try:
            # C19: the caller names requests in its own namespace; a used id is looked up in
            # the log, so a restart does not forget it.
            name = ids.name(namespace, headers.get(REQUEST_ID_HEADER))
            await ids.reserve(name)
        except ApiError as err:
            await send_error(send, err.status, err.message, param=err.param, code=err.code)
            return
        ex = _Exchange(request_id=name.trail_id)
        recorder.record(self._started(ex.request_id, identity, headers, scope, body, raw))
        refused = refusal(body)
        if refused is not None:
            await self._refuse(ex, send, refused.message, refused.param, refused.code)
            return

        replay = list(messages)

        async def app_receive() -> Message:
            if replay:
                return replay.pop(0)
            message = await receive()
            if message["type"] == "http.disconnect":
                ex.disconnected = True
            return message

        async def app_send(message: Message) -> None:
            await self._on_send(ex, message, send)

        try:
            await self.app(scope, app_receive, app_send)
        except BaseException as exc:
            ex.error = ex.error or f"server raised {type(exc).__name__}: {exc}"
            raise
        finally:
            self._end(ex)

    def _ids(self, recorder: AuditRecorder) -> RequestIds:
        if self._request_ids is None:
            self._request_ids = RequestIds(
                engine=recorder.engine, origin=recorder.origin, generated_prefix="asgi-"
            )
        return self._request_ids

    def _identity(self, authorization: str | None) -> tuple[Identity, str]:
        """The caller (C3) and its request-id namespace (C19): the table's identity for its key
        and its tenant; else an unmapped identity named by the key's hash (never refused), in
        the namespace ``<default tenant>/<key id>``, so unknown keys cannot probe each other."""
        table = self.identities if self.identities is not None else ApiKeyTable({})
        digest, identity = table.lookup(authorization)
        if identity is not None:
            return identity, identity.tenant
        client = f"key:{digest[:16]}" if digest else ""
        principal = client or "anonymous"
        unmapped = Identity(tenant=self.default_tenant, principal=principal, client=client)
        return unmapped, f"{self.default_tenant}{NAMESPACE_SEPARATOR}{principal}"

    def _started(
        self,
        request_id: str,
        identity: Identity,
        headers: Mapping[str, str],
        scope: Scope,
        body: Any,
        raw: bytes,
    ) -> RequestStarted:
        if isinstance(body, dict):
            text = prompt_text(body)
            params = {k: json_safe(v) for k, v in body.items() if k not in _INPUT_FIELDS}
            model = str(body.get("model", ""))
        else:
            text = raw.decode("utf-8", errors="replace")
            params, model = {"unparseable_body": True}, ""
        params |= {"tokenization": TOKENIZATION, "path": scope.get("path", "")}
        if headers.get(REQUEST_ID_HEADER):
            params["x_request_id"] = headers[REQUEST_ID_HEADER][:256]
        target = self.model_refs.get(model) or ModelRef(
            name=model, weights_sha256="", tokenizer_sha256="", architecture="unknown"
        )
        return RequestStarted(
            request_id=request_id,
            tenant=identity.tenant,
            principal=identity.principal,
            prompt_token_ids=tuple(text.encode("utf-8")),
            prompt_text=text,
            params=params,
            target=target,
            draft=None,
            ts=time.time_ns(),
            engine=ENGINE_LABEL,
            client=identity.client,
        )

    async def _on_send(self, ex: _Exchange, message: Message, send: Send) -> None:
        if message["type"] == "http.response.start":
            ex.status = int(message["status"])
            hdrs = list(message.get("headers", []))
            ctype = next((v for k, v in hdrs if k.lower() == b"content-type"), b"")
            ex.is_sse = ctype.startswith(b"text/event-stream")
            hdrs.append((TRAIL_HEADER, ex.request_id.encode("latin-1")))
            await self._forward(ex, send, {**message, "headers": hdrs})
            return
        if message["type"] != "http.response.body":
            await self._forward(ex, send, message)
            return
        data: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if ex.is_sse:
            await self._on_sse(ex, data, more, send)
        else:
            await self._on_json(ex, data, more, send)

    async def _on_sse(self, ex: _Exchange, data: bytes, more: bool, send: Send) -> None:
        complete, deltas = ex.sse.feed(data)
        n_before = ex.n_delivered
        for delta in deltas:
            self._absorb(ex, delta)
        text_end = ex.n_generated
        if ex.sse.done or not more:
            # The closing bytes ([DONE]) leave after the end record is durable.
            if text_end > n_before:
                await self._durable(ex, text_end)
            self._end(ex, n_delivered=text_end if not ex.disconnected else n_before)
            await self._durable_end(ex)
            await self._forward(ex, send, _body(complete + (b"" if more else ex.sse.rest()), more))
            return
        if complete:
            await self._durable(ex, text_end)
            if await self._forward(ex, send, _body(complete, True)):
                ex.n_delivered = text_end

    async def _on_json(self, ex: _Exchange, data: bytes, more: bool, send: Send) -> None:
        ex.body.append(data)
        if more:
            return
        raw = b"".join(ex.body)
        try:
            delta = response_delta(orjson.loads(raw)) if raw else ChoiceDelta()
        except orjson.JSONDecodeError:
            delta = ChoiceDelta(error="response body is not JSON")
        if ex.status >= 400 and delta.error is None:
            delta.error = f"HTTP {ex.status}"
        self._absorb(ex, delta)
        if not ex.disconnected:
            self._end(ex, n_delivered=ex.n_generated)
        await self._durable_end(ex)
        await self._forward(ex, send, _body(raw, False))

    def _absorb(self, ex: _Exchange, delta: ChoiceDelta) -> None:
        """Record one chunk's output as steps (content, then each marked non-content field:
        tool calls, reasoning text; C6); note its finish reason or error."""
        if delta.error is not None:
            ex.error = ex.error or delta.error
        if delta.finish_reason is not None:
            ex.finish_reason = delta.finish_reason
        if ex.ended:
            return
        for text in delta.recorded_steps():
            ids = tuple(text.encode("utf-8"))
            self.recorder().record(
                BatchStep(
                    step_id=next(self._steps),
                    ts=time.time_ns(),
                    token_ids=ids,
                    request_ids=(ex.request_id,) * len(ids),
                    provenance=(Provenance.TARGET,) * len(ids),
                )
            )
            ex.n_generated += len(ids)

    def _end(self, ex: _Exchange, *, n_delivered: int | None = None) -> None:
        if ex.ended:
            return
        ex.ended = True
        if ex.error is not None or ex.status >= 400:
            reason = FinishReason.ERROR
        elif ex.disconnected:
            reason = FinishReason.ABORT
        elif ex.finish_reason == "length":
            reason = FinishReason.LENGTH
        elif ex.finish_reason is not None:
            reason = FinishReason.STOP
        else:
            reason = FinishReason.ERROR
            ex.error = "response ended without a finish_reason"
        delivered = ex.n_delivered if n_delivered is None else n_delivered
        ex.n_delivered = delivered
        self.recorder().record(
            RequestFinished(
                request_id=ex.request_id,
                reason=reason,
                n_generated=ex.n_generated,
                n_delivered=min(delivered, ex.n_generated),
                ts=time.time_ns(),
                error=ex.error or "",
            )
        )

    async def _durable(self, ex: _Exchange, n_tokens: int) -> None:
        if self.fail_closed:
            await self.recorder().wait_durable_async(ex.request_id, n_tokens)

    async def _durable_end(self, ex: _Exchange) -> None:
        if self.fail_closed:
            await self.recorder().wait_closed_async(ex.request_id)

    async def _forward(self, ex: _Exchange, send: Send, message: Message) -> bool:
        """Send unless the client is gone; True if the transport took it."""
        if ex.disconnected:
            return False
        try:
            await send(message)
        except OSError:
            ex.disconnected = True
            return False
        return not ex.disconnected

    async def _refuse(
        self, ex: _Exchange, send: Send, message: str, param: str | None, code: str
    ) -> None:
        """Answer 400 and record the request as refused (reason error, nothing delivered)."""
        ex.status, ex.error = 400, message
        self._end(ex, n_delivered=0)
        await self._durable_end(ex)
        trail = [(TRAIL_HEADER, ex.request_id.encode("latin-1"))]
        await send_error(send, 400, message, param=param, code=code, headers=trail)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return messages, b"".join(chunks)


def _body(data: bytes, more: bool) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}
