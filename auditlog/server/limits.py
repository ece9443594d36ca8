"""The payload limit of ``auditlog serve`` (``--max-payload-bytes``, recorder/limits.py).

An ASGI layer in front of the inference routes reads each ``POST`` body under the limit
(``auditlog.gateway.body_limit``), before FastAPI parses it and before anything is recorded. A
larger request is answered 413 (OpenAI-shaped, code ``request_too_large``) and leaves only a
small refusal trail (``auditlog.gateway.refusals``): the caller's tenant, principal and key id,
the time, its trail id, the size and the limit; none of its content. The caller is authenticated
and its request id checked first, as for any request (an unknown key gets 401 and no record).
A body within the limit is handed to the app unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditlog.errors import AuditlogError
from auditlog.gateway.body_limit import read_body
from auditlog.gateway.openai_errors import ApiError, as_api_error
from auditlog.gateway.refusals import record_refusal, refusal_events
from auditlog.gateway.request_ids import REQUEST_ID_HEADER, TRAIL_ID_HEADER
from auditlog.recorder import FailMode, PayloadTooLargeError

if TYPE_CHECKING:
    from .service import InferenceService

__all__ = ["INFERENCE_PATHS", "REFUSAL_ENGINE", "PayloadLimit"]

INFERENCE_PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})
#: The ``engine`` of a refusal trail: the server refused it; no engine saw it.
REFUSAL_ENGINE = "auditlog-serve"
CODE = "request_too_large"


class PayloadLimit:
    """ASGI middleware: ``app.add_middleware(PayloadLimit, limit=...)`` (module docstring)."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in INFERENCE_PATHS
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            read = await read_body(receive, headers, self.limit)
        except PayloadTooLargeError as exc:
            await self._refuse(scope, headers, exc, send)
            return
        if read.gone:
            return  # the client left before its request was complete: nothing ran
        replay = list(read.messages)

        async def replay_receive() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replay_receive, send)

    async def _refuse(
        self, scope: Scope, headers: Headers, exc: PayloadTooLargeError, send: Send
    ) -> None:
        """413 with a refusal trail, or the error that comes first (503, 401, 400, 409)."""
        id_headers: dict[str, str] = {}
        try:
            service: InferenceService | None = getattr(scope["app"].state, "service", None)
            if service is None:
                raise ApiError(503, "server is starting or stopping", type="service_unavailable")
            identity = service.settings.api_keys.authenticate(headers.get("authorization"))
            name = service.request_ids.name(identity.tenant, headers.get(REQUEST_ID_HEADER))
            id_headers[REQUEST_ID_HEADER] = name.caller_id
            await service.request_ids.reserve(name)
            id_headers[TRAIL_ID_HEADER] = name.trail_id
            if service.recorder is not None:  # the benchmark baseline records nothing
                params = {"refused": CODE, "status": 413, "path": scope["path"],
                          "size": exc.size, "limit": exc.limit}  # fmt: skip
                events = refusal_events(
                    request_id=name.trail_id, identity=identity, params=params,
                    message=str(exc), engine=REFUSAL_ENGINE,
                )  # fmt: skip
                closed = service.settings.fail_mode is FailMode.CLOSED
                await record_refusal(service.recorder, events, fail_closed=closed)
            err = ApiError(413, str(exc), code=CODE)
        except (ApiError, AuditlogError) as first:
            err = as_api_error(first)
        headers_out = {**id_headers, **err.headers}
        response = JSONResponse(err.body(), status_code=err.status, headers=headers_out)
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
