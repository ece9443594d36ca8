"""What the audit middleware lets through, and its OpenAI-shaped refusals (C6, C23).

- A ``POST`` to an audited path is recorded; a ``POST`` to any other path under ``/v1/`` (for
  example ``/v1/responses``, served by ``transformers serve`` and vLLM) or to vLLM's
  ``/invocations`` (which dispatches to the completion handlers) MUST be refused with 400
  ``"endpoint not audited"``: an endpoint the middleware does not understand would pass output to
  the client unrecorded. Other methods (``GET /v1/models``) pass.
- A request body the trail could not hold exactly is refused with 400 (:func:`refusal`): ``n`` or
  ``best_of`` other than 1, and tool calling (``tools``, ``functions``, ``tool_choice``), whose
  output is not message content. Output fields other than content that a server sends anyway
  are still recorded (``openai_wire`` module docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Scope, Send

__all__ = [
    "GUARDED_PATHS",
    "GUARDED_PREFIX",
    "NOT_AUDITED",
    "Refusal",
    "is_guarded",
    "refusal",
    "route_path",
    "send_error",
]

GUARDED_PREFIX = "/v1/"
GUARDED_PATHS = frozenset({"/invocations"})
NOT_AUDITED = "endpoint not audited"
_TOOL_FIELDS = ("tools", "functions", "tool_choice")
_EMPTY: tuple[Any, ...] = (None, [], {})


@dataclass(frozen=True, slots=True)
class Refusal:
    """A 400 answer: message, the offending parameter, an error code."""

    message: str
    param: str | None
    code: str


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


def refusal(body: Any) -> Refusal | None:
    """Why the trail could not hold this request exactly, or None."""
    if not isinstance(body, Mapping):
        return None
    for name in ("n", "best_of"):
        if body.get(name, 1) not in (1, None):
            return Refusal(
                "n and best_of other than 1 cannot be audited exactly", name,
                "unsupported_parameter",
            )  # fmt: skip
    for name in _TOOL_FIELDS:
        if body.get(name) not in _EMPTY:
            return Refusal(
                f"{name}: tool calling is not supported by the audit layer", name,
                "unsupported_parameter",
            )  # fmt: skip
    return None


async def send_error(
    send: Send,
    status: int,
    message: str,
    *,
    param: str | None,
    code: str | None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """An OpenAI-shaped error answer: ``{"error": {"message", "type", "param", "code"}}``."""
    body = orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": param,
                   "code": code}}
    )  # fmt: skip
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
