"""Pure ASGI middleware that audits any OpenAI-compatible server it wraps (vLLM, transformers).

It records each ``POST`` to an audited path as a request-level trail in its own log (its own
origin, its own recorder), without the server's cooperation. In order, before the app sees
anything:

1. identity (``asgi_identity``): single ``Authorization`` / ``x-request-id`` headers, the key
   checked against the configured :class:`~auditlog.gateway.auth.ApiKeyTable` (C3); a refused
   caller gets 400/401 and a small refusal record;
2. the request id (C19): ``<namespace>/<caller id>`` (``auditlog.gateway.request_ids``), the
   namespace being the caller's tenant; a caller id is checked against the log;
3. the body (``asgi_request``): read under the payload limit (``max_payload_bytes``, default
   1 MiB as ``auditlog serve``: ``auditlog.gateway.body_limit``, 413), parsed strictly as the app
   will parse it, checked (``asgi_policy.refusal``); a refused body gets 400/413/415 and a small
   refusal trail (``auditlog.gateway.refusals``: ``params.refused`` = the error code, no content),
   as is a start the recorder cannot hold (413 prompt, 400 parameters: ``unrecordable``);
4. ``RequestStarted``: the input the app runs (``prompt`` of a completion, ``messages`` of a
   chat; ``openai_wire.prompt_text``), every other body field as parameters (C5; floats and
   integers beyond 2^53 as decimal strings), ``tokenization``, ``path``, the query string if any
   (``query_string``), the caller's ``x_request_id`` and ``input_form`` (``text``, ``json`` or
   ``absent``: ``asgi_policy.recorded_input``), so a prompt ``"[1,2]"`` and ``[1, 2]`` differ.

``asgi_start`` builds that event. Then the app runs (``asgi_run``); ``asgi_exchange`` records
and releases its answer (fail-closed, C21), one ``BatchStep`` per recorded text (content;
envelope, ``usage`` and other fields marked), its "tokens" the UTF-8 bytes of the text
(``openai_wire``), and ``RequestFinished``. A task watches the connection (``http.disconnect``
from ``receive``) while the app runs, so a client gone before a non-streamed answer is recorded
``abort`` with 0 delivered; the app's ``receive`` is fed from it.

Compression: the app is called without the client's ``Accept-Encoding``, so a compressing
middleware inside this one sends plain bytes; a compressed answer that still arrives is cut
(502). Compressing middleware MUST wrap the audit middleware (it must see plain bytes):
``AuditMiddleware(app)`` then ``GZipMiddleware(audited)``; with Starlette's ``add_middleware``
the middleware added last is the outermost.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditlog.errors import UnrecordableEventError
from auditlog.events import ModelRef
from auditlog.gateway.auth import ApiKeyTable
from auditlog.gateway.body_limit import BodyRead, read_body
from auditlog.gateway.openai_errors import ApiError
from auditlog.gateway.openai_wire import TOKENIZATION
from auditlog.gateway.refusals import record_refusal, refusal_events
from auditlog.gateway.request_ids import REQUEST_ID_HEADER, RequestIds
from auditlog.recorder import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    AuditRecorder,
    FailMode,
    PayloadTooLargeError,
)

from .asgi_exchange import TRAIL_HEADER, Exchange
from .asgi_identity import Caller, identify, request_headers
from .asgi_policy import (
    deny_endpoint,
    deny_websocket,
    is_guarded,
    refusal,
    route_path,
    send_api_error,
)
from .asgi_request import Refused, check_headers, loads_strict, too_large, unrecordable
from .asgi_run import run_watched
from .asgi_start import ENGINE_LABEL, model_ref, started_event
from .settings import MiddlewareConfig

__all__ = ["DEFAULT_PATHS", "TRAIL_HEADER", "AuditMiddleware"]

log = structlog.get_logger("auditlog.integrations")

DEFAULT_PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # pass; any other method is a POST here


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
        max_payload_bytes: int | None = None,
    ) -> None:
        self.app = app
        self._config = config if recorder is None else None
        if recorder is None and self._config is None:
            self._config = MiddlewareConfig.from_env()
        self._recorder = recorder
        self._owns_recorder = recorder is None
        self._open_lock = threading.Lock()
        cfg = self._config
        # an empty table is a table (everyone refused), not "no table": compare with None
        self.identities = (
            identities if identities is not None else (cfg.identities if cfg else None)
        )
        self.default_tenant = default_tenant
        self.paths = frozenset(paths)
        mode = (
            fail_mode or (cfg.fail_mode if cfg else None) or (recorder.mode if recorder else None)
        )
        self.fail_closed = (mode or FailMode.CLOSED) is FailMode.CLOSED
        self.model_refs = dict(model_refs or {})
        limit = max_payload_bytes or (cfg.max_payload_bytes if cfg else None)
        self.max_payload_bytes = limit or DEFAULT_MAX_PAYLOAD_BYTES
        self._steps = itertools.count(1)
        self._request_ids: RequestIds | None = None

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
        if scope["type"] == "websocket" and is_guarded(route_path(scope)):
            await deny_websocket(route_path(scope), receive, send)  # C23: output unrecorded
            return
        if scope["type"] != "http" or scope.get("method") in _READ_METHODS:
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in self.paths:
            await self._audited(scope, path, receive, send)
        elif is_guarded(path):
            await deny_endpoint(path, send)  # C23: output unrecorded
        else:
            await self.app(scope, receive, send)

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self._recorder is not None:
                self._recorder.close()
            await send(message)

        return lifespan_send

    def _ids(self, recorder: AuditRecorder) -> RequestIds:
        if self._request_ids is None:
            self._request_ids = RequestIds(
                engine=recorder.engine, origin=recorder.origin, generated_prefix="asgi-"
            )
        return self._request_ids

    # -- before the app ----------------------------------------------------------------------

    async def _audited(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        ids = self._ids(self.recorder())
        try:
            headers = request_headers(scope)
        except Refused as refused:
            caller, _ = identify(None, self.default_tenant, None)
            await self._refuse(caller, None, refused, path, send)
            return
        caller, unauthenticated = identify(
            self.identities, self.default_tenant, headers.get("authorization")
        )
        if unauthenticated is not None:
            await self._refuse(caller, None, unauthenticated, path, send)
            return
        try:
            name = ids.name(caller.namespace, headers.get(REQUEST_ID_HEADER))
            await ids.reserve(name)
        except ApiError as err:
            await send_api_error(send, err)
            return
        try:
            checked = await self._checked_body(receive, headers, path)
        except Refused as refused:
            await self._refuse(caller, name.trail_id, refused, path, send)
            return
        if checked is None:
            return  # the client left before its request was complete: nothing ran
        read, body = checked
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        target = model_ref(self.model_refs, body.get("model"))
        started = started_event(name.trail_id, caller.identity, headers, path, query, body, target)
        try:
            self.recorder().record(started)
        except UnrecordableEventError as exc:  # the recorder's limits (payload, parameters)
            await self._refuse(caller, None, unrecordable(exc), path, send)
            return
        await self._run(scope, read.messages, receive, send, name.trail_id)

    async def _checked_body(
        self, receive: Receive, headers: Mapping[str, str], path: str
    ) -> tuple[BodyRead, dict[str, Any]] | None:
        """The request body read under the payload limit, parsed strictly and checked (raises
        Refused); None when the client left before it was complete."""
        check_headers(headers)
        try:
            read = await read_body(receive, headers, self.max_payload_bytes)
        except PayloadTooLargeError as exc:
            raise too_large(exc) from None
        if read.gone:
            return None
        body = loads_strict(read.raw)
        why = refusal(body, path)
        if why is not None:
            raise Refused(400, why.message, param=why.param, code=why.code)
        return read, body

    async def _refuse(
        self, caller: Caller, trail_id: str | None, refused: Refused, path: str, send: Send
    ) -> None:
        """Answer the refusal; record it as a small trail without content (reason error)."""
        recorder = self.recorder()
        if trail_id is None:
            name = self._ids(recorder).name(caller.namespace, None)
            await self._ids(recorder).reserve(name)
            trail_id = name.trail_id
        params = {"refused": refused.code, "status": refused.status, "path": path,
                  **refused.details, "tokenization": TOKENIZATION}  # fmt: skip
        events = refusal_events(
            request_id=trail_id, identity=caller.identity, params=params,
            message=refused.message, engine=ENGINE_LABEL, target=model_ref(self.model_refs, None),
        )  # fmt: skip
        await record_refusal(recorder, events, fail_closed=self.fail_closed)
        log.info("asgi.request_refused", trail_id=trail_id, code=refused.code)
        trail = [(TRAIL_HEADER, trail_id.encode("latin-1"))]
        await send_api_error(send, refused.api_error(), trail)

    # -- the app -----------------------------------------------------------------------------

    async def _run(
        self, scope: Scope, replay: list[Message], receive: Receive, send: Send, trail_id: str
    ) -> None:
        ex = Exchange(request_id=trail_id, recorder=self.recorder(), steps=self._steps,
                      fail_closed=self.fail_closed, send=send)  # fmt: skip
        await run_watched(self.app, scope, replay, receive, ex)
