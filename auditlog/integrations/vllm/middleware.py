"""``--middleware auditlog.integrations.vllm.VllmAuditMiddleware`` for vLLM's OpenAI server.

Two layers around the app vLLM built:

- outside, the generic :class:`~auditlog.integrations.asgi.AuditMiddleware` (its public
  constructor, given the plugin's recorder): identity from the ``Authorization`` header, the
  caller's ``x-request-id`` checked and namespaced, a request-level trail of the HTTP exchange,
  refusals of what cannot be recorded exactly;
- inside, a binding gate: it sets the HTTP binding (tenant, principal, client, ``x-request-id``;
  ``adapter.bind_http``) for the handler's task, so every vLLM request the handler adds carries
  them in its token-level trail, and, fail-closed (C21), holds each response chunk until every
  token the plugin has recorded for those vLLM requests is durable, and the last chunk until
  their end records are. The plugin records a step's tokens before vLLM hands them to any
  handler (``plugin`` module), so a chunk never carries a token not yet recorded.

The request-level trails go to their own log, ``<origin>/http`` (same database, key and
witnesses; its own spool): the two writers number their steps independently, and one log has one
writer. The trails join on the tenant and ``params.x_request_id``; the middleware's trail id is
``<tenant>/<x-request-id>``; a request without ``x-request-id`` is given ``auto-<uuid4 hex>``
before either layer sees it, so the join holds for every request.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditlog.gateway.auth import ApiKeyTable, Identity
from auditlog.gateway.request_ids import REQUEST_ID_HEADER
from auditlog.integrations.asgi_identity import identify
from auditlog.recorder import AuditRecorder, FailMode

from . import plugin
from .adapter import HttpBinding, VllmAuditAdapter, bind_http

__all__ = ["VllmAuditMiddleware"]

_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode("ascii")


class VllmAuditMiddleware:
    """Built by vLLM as ``VllmAuditMiddleware(app)``; settings from the environment
    (``MiddlewareConfig.from_env``) unless a recorder is given. Nothing is opened before the
    first request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        recorder: AuditRecorder | None = None,
        http_recorder: AuditRecorder | None = None,
        identities: ApiKeyTable | None = None,
        default_tenant: str = "unmapped",
    ) -> None:
        self.app = app
        self._recorder, self._identities = recorder, identities
        self._http_recorder = http_recorder
        self.default_tenant = default_tenant
        self._outer: ASGIApp | None = None
        self._lock = threading.Lock()

    def _build(self) -> ASGIApp:
        with self._lock:
            if self._outer is None:
                from auditlog.integrations.asgi import AuditMiddleware

                http_cfg = None
                if self._recorder is None or self._http_recorder is None:
                    from auditlog.integrations.settings import MiddlewareConfig

                    cfg = MiddlewareConfig.from_env()
                    self._identities = self._identities or cfg.identities
                    spool = cfg.spool_path
                    # Its own log, signed by the same key under that log's name (a key is
                    # bound to the log named like it): verify it with that name's verifier key.
                    http_origin = f"{cfg.origin}/http"
                    http_cfg = dataclasses.replace(
                        cfg, origin=http_origin, signer=cfg.signer.renamed(http_origin),
                        spool_path=spool.with_name(spool.name + ".http") if spool else None,
                    )  # fmt: skip
                if self._recorder is None:
                    plugin.install()
                    self._recorder = plugin.recorder()
                gate = _BindingGate(self.app, self)
                self._outer = AuditMiddleware(
                    gate, recorder=self._http_recorder, config=http_cfg,
                    identities=self._identities, default_tenant=self.default_tenant,
                    fail_mode=self._recorder.mode,
                )  # fmt: skip
            return self._outer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(
            k.lower() == _REQUEST_ID_BYTES for k, _ in scope.get("headers", ())
        ):
            # No caller id: name the exchange here, so that the request-level trail, vLLM's
            # request id (cmpl-<id>-...) and the token-level trail all carry the same id.
            generated = f"auto-{uuid.uuid4().hex}".encode("ascii")
            scope = {**scope, "headers": [*scope["headers"], (_REQUEST_ID_BYTES, generated)]}
        await (self._outer or self._build())(scope, receive, send)

    def identity(self, authorization: str | None) -> Identity:
        """The caller (C3), by the outer middleware's own rule (``asgi_identity.identify``); a
        caller it refuses never reaches the gate."""
        caller, _ = identify(self._identities, self.default_tenant, authorization)
        return caller.identity

    @property
    def fail_closed(self) -> bool:
        return self._recorder is not None and self._recorder.mode is FailMode.CLOSED


class _BindingGate:
    def __init__(self, app: ASGIApp, owner: VllmAuditMiddleware) -> None:
        self.app, self.owner = app, owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        who = self.owner.identity(headers.get("authorization"))
        binding = HttpBinding(
            tenant=who.tenant, principal=who.principal, client=who.client,
            x_request_id=headers.get(REQUEST_ID_HEADER, "")[:256],
        )  # fmt: skip
        token = bind_http(binding)
        try:
            if not self.owner.fail_closed:
                await self.app(scope, receive, send)
                return
            recorder = self.owner._recorder
            assert recorder is not None

            async def durable_send(message: Message) -> None:
                if message["type"] == "http.response.body" and binding.request_ids:
                    last = not message.get("more_body", False)
                    await _wait_durable(recorder, plugin.adapter(), binding, last)
                await send(message)

            await self.app(scope, receive, durable_send)
        finally:
            _reset(token)


async def _wait_durable(
    recorder: AuditRecorder, adapter: VllmAuditAdapter, binding: HttpBinding, last: bool
) -> None:
    for request_id in binding.request_ids:
        if last and adapter.has_ended(request_id):
            await recorder.wait_closed_async(request_id)
        else:
            await recorder.wait_durable_async(request_id, adapter.recorded_tokens(request_id))


def _reset(token: Any) -> None:
    from .adapter import _binding

    _binding.reset(token)
