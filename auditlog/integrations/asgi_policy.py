"""What the audit middleware lets through, and its OpenAI-shaped refusals (C6, C23).

- A ``POST`` to an audited path is recorded; a ``POST`` to any other path under ``/v1/`` (for
  example ``/v1/responses``, served by ``transformers serve`` and vLLM) or to vLLM's
  ``/invocations`` (which dispatches to the completion handlers) MUST be refused with 400
  ``"endpoint not audited"``: an endpoint the middleware does not understand would pass output to
  the client unrecorded. ``GET``, ``HEAD`` and ``OPTIONS`` pass (``GET /v1/models``); any other
  method (``PUT``, ``PATCH``, an unknown one) is treated as a ``POST``, since an app may route it
  to a handler that generates. A WebSocket under those paths
  (a realtime endpoint) is closed before it is accepted, for the same reason.
- A request body the trail could not hold exactly is refused with 400 (:func:`refusal`): ``n`` or
  ``best_of`` other than the integer 1, several prompts in one completion request (a list of
  strings or of token lists, each of which would be its own choice), tool calling (``tools``,
  ``functions``, ``tool_choice``), the other route's input field (``messages`` on
  ``/v1/completions``, ``prompt`` on ``/v1/chat/completions``: the app would run one and the
  trail could name the other), and fields named like the middleware's own parameters
  (:data:`RESERVED_PARAMS`), so a body can never stand in for what the middleware records about
  the request. Output fields other than content that a server sends anyway are still recorded
  (``openai_wire`` module docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from starlette.types import Receive, Scope, Send

from auditlog.gateway.openai_errors import INVALID_REQUEST, ApiError
from auditlog.gateway.openai_errors import error_body as openai_error_body
from auditlog.gateway.openai_wire import prompt_text

__all__ = [
    "GUARDED_PATHS",
    "GUARDED_PREFIX",
    "INPUT_FIELDS",
    "NOT_AUDITED",
    "RESERVED_PARAMS",
    "Refusal",
    "deny_endpoint",
    "deny_websocket",
    "error_body",
    "input_field",
    "is_guarded",
    "recorded_input",
    "refusal",
    "route_path",
    "send_api_error",
    "send_error",
    "without_accept_encoding",
]

log = structlog.get_logger("auditlog.integrations")

GUARDED_PREFIX = "/v1/"
GUARDED_PATHS = frozenset({"/invocations"})
NOT_AUDITED = "endpoint not audited"
_TOOL_FIELDS = ("tools", "functions", "tool_choice")
_EMPTY: tuple[Any, ...] = (None, [], {})
CHAT_PATH = "/v1/chat/completions"
INPUT_FIELDS = ("prompt", "messages")
RESERVED_PARAMS = frozenset(
    {"tokenization", "path", "query_string", "x_request_id", "refused", "input_form"}
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A 400 answer: message, the offending parameter, an error code."""

    message: str
    param: str | None
    code: str


async def deny_endpoint(path: str, send: Send) -> None:
    """Refuse a request to a guarded path the middleware does not audit (400)."""
    log.warning("asgi.unaudited_endpoint_refused", path=path)
    await send_api_error(send, ApiError.bad_request(NOT_AUDITED, code="endpoint_not_audited"))


async def deny_websocket(path: str, receive: Receive, send: Send) -> None:
    """Close a WebSocket under a guarded path before it is accepted (HTTP 403 to the client)."""
    log.warning("asgi.unaudited_websocket_refused", path=path)
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": NOT_AUDITED})


def route_path(scope: Scope) -> str:
    """The path the app routes on: ``scope["path"]`` without the ``root_path`` prefix (ASGI spec:
    ``path`` includes ``root_path``), so a mount prefix cannot hide an endpoint."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def is_guarded(path: str) -> bool:
    """True if a ``POST`` to ``path`` MUST be refused unless the middleware audits it."""
    return path.startswith(GUARDED_PREFIX) or path in GUARDED_PATHS


def input_field(path: str) -> str:
    """The body field that holds the input the app runs for an audited ``path``."""
    return "messages" if path == CHAT_PATH else "prompt"


def recorded_input(body: Mapping[str, Any], path: str) -> tuple[str, str, str]:
    """The input field of ``path``, its text as recorded (``openai_wire.prompt_text``) and how
    that text reads (``input_form``): ``text`` (the string the app ran), ``json`` (the canonical
    JSON of the value the app ran: token ids, messages) or ``absent``. Without the form, a
    prompt ``"[1,2]"`` and the token ids ``[1, 2]`` would be recorded alike."""
    used = input_field(path)
    form = "absent" if used not in body else "text" if isinstance(body[used], str) else "json"
    return used, prompt_text(body, used), form


def refusal(body: Mapping[str, Any], path: str) -> Refusal | None:
    """Why the trail could not hold this request exactly, or None."""
    unsupported = "unsupported_parameter"
    used = input_field(path)
    for name in INPUT_FIELDS:
        if name != used and name in body:
            return Refusal(f"{name} is not an input of {path}: send {used} only", name,
                           "conflicting_parameter")  # fmt: skip
    for name in sorted(RESERVED_PARAMS & set(body)):
        return Refusal(f"{name} is reserved by the audit layer", name, "reserved_parameter")
    for name in ("n", "best_of"):
        value = body.get(name)
        if value is not None and (type(value) is not int or value != 1):
            return Refusal("n and best_of other than 1 cannot be audited exactly", name,
                           unsupported)  # fmt: skip
    prompt = body.get("prompt")
    prompts = prompt if isinstance(prompt, list) else []
    if len(prompts) > 1 and any(isinstance(p, str | list) for p in prompts):
        return Refusal("one prompt per request: each prompt of a list is its own choice",
                       "prompt", unsupported)  # fmt: skip
    for name in _TOOL_FIELDS:
        if body.get(name) not in _EMPTY:
            return Refusal(f"{name}: tool calling is not supported by the audit layer", name,
                           unsupported)  # fmt: skip
    return None


async def send_api_error(
    send: Send, err: ApiError, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """``err`` answered as ``auditlog serve`` answers it: status, body, type and headers."""
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
    await send_error(send, err.status, err.message, param=err.param, code=err.code,
                     headers=[*headers, *extra], error_type=err.type)  # fmt: skip


async def send_error(
    send: Send,
    status: int,
    message: str,
    *,
    param: str | None,
    code: str | None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    error_type: str = INVALID_REQUEST,
) -> None:
    """An OpenAI-shaped error answer (``auditlog.gateway.openai_errors.error_body``)."""
    body = error_body(message, param=param, code=code, error_type=error_type)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def error_body(message: str, *, param: str | None, code: str | None, error_type: str) -> bytes:
    """The server's OpenAI error body (``openai_errors.error_body``) as JSON bytes."""
    return orjson.dumps(openai_error_body(message, type=error_type, param=param, code=code))


def without_accept_encoding(scope: Scope) -> Scope:
    """The scope the app sees: no ``Accept-Encoding``, so nothing inside compresses."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
    return {**scope, "headers": headers}
