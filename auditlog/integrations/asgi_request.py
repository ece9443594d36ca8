"""What the audit middleware accepts as a request: read with a size limit, parsed strictly.

The middleware records the prompt it parsed, so it MUST parse the body exactly as the app will
(Starlette's ``Request.json()`` and FastAPI both call stdlib ``json.loads`` on the bytes) or
refuse it. :func:`loads_strict` accepts a subset of what ``json.loads`` accepts and returns the
same value for it (a differential test holds it to that); everything else is refused (400), so
the app never sees it:

- a byte order mark, or any encoding but UTF-8 (``json.loads`` on bytes also reads UTF-16 and
  UTF-32, and UTF-8-encoded surrogates);
- ``NaN``, ``Infinity``, ``-Infinity``, and numbers that overflow a float (``1e400``);
- lone surrogates (``"\\ud800"``), anywhere, keys included;
- duplicate keys in any object (``json.loads`` keeps the last one silently);
- nesting deeper than :data:`MAX_DEPTH`, integers of more than 4300 digits;
- a top level that is not an object.

The app's answers are read by :func:`loads_answer`, as strict but faster (orjson), and exact
for integers (a long digit run goes through :func:`loads_strict`). An answer with a duplicate
key is refused too (a client keeps the last value, but the bytes that leave carry both), and
so is one nested deeper than :data:`MAX_DEPTH` (recording it would exhaust the stack).

A compressed request body (any ``Content-Encoding`` but ``identity``) is refused (415): the app
would read what the middleware cannot. So is a ``Content-Type`` other than ``application/json``
(UTF-8) when one is sent: FastAPI hands such a body to pydantic's own JSON parser instead of
``json.loads``. The body size is limited while it is read, before anything is parsed or
written (``auditlog.gateway.body_limit``, shared with ``auditlog serve``: 413).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from auditlog.errors import AuditlogError, UnrecordableEventError
from auditlog.gateway.openai_errors import INVALID_REQUEST, ApiError
from auditlog.recorder.limits import PayloadTooLargeError

from .asgi_sse import UTF8_NAMES, media_type

__all__ = [
    "MAX_DEPTH",
    "Refused",
    "check_headers",
    "loads_answer",
    "loads_strict",
    "too_large",
    "unrecordable",
]

MAX_DEPTH = 64
_BOM = b"\xef\xbb\xbf"


class Refused(AuditlogError):
    """A request the middleware will not pass to the app: status, message, parameter, code.
    Never leaves the middleware (it becomes an OpenAI-shaped error answer)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid_request",
        details: dict[str, int] | None = None,
        error_type: str = INVALID_REQUEST,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.details = details or {}  # recorded in the refusal trail (sizes, never content)
        self.error_type, self.headers = error_type, dict(headers or {})

    def api_error(self) -> ApiError:
        """The answer: the server's OpenAI error for the same status, type and code."""
        return ApiError(self.status, self.message, type=self.error_type, param=self.param,
                        code=self.code, headers=self.headers)  # fmt: skip


def _invalid_json(message: str) -> Refused:
    return Refused(400, f"JSON body refused: {message}", code="invalid_json")


def _no_constant(name: str) -> Any:
    raise _invalid_json(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _invalid_json(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _invalid_json(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def loads_strict(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw``, exactly as ``json.loads(raw)`` reads it, or :class:`Refused`
    (module docstring)."""
    if raw.startswith(_BOM):
        raise _invalid_json("byte order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_json(f"not UTF-8 at byte {exc.start}") from None
    try:
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise _invalid_json(f"nested deeper than {MAX_DEPTH}") from None
    except ValueError as exc:  # JSONDecodeError, an integer too long to convert
        raise _invalid_json(str(exc)[:200]) from None
    if not isinstance(value, dict):
        raise _invalid_json("not a JSON object")
    _check_tree(value)
    return value


_LONG_INTEGER = re.compile(rb"\d{19,}")  # may pass 2^63: orjson would read it as a float


def loads_answer(raw: bytes) -> dict[str, Any]:
    """A JSON object the app answered (a whole answer or one event), read as a client reads it,
    or :class:`Refused`. Faster than :func:`loads_strict` (orjson) and as strict about
    encodings, ``NaN``, surrogates, nesting and duplicate keys (a client keeps the last value,
    but the bytes carry both: the shadowed one would leave unrecorded); a body with a long digit
    run goes through :func:`loads_strict`, so integers stay exact."""
    if _LONG_INTEGER.search(raw):
        return loads_strict(raw)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid_json(str(exc)[:200]) from None
    if not isinstance(value, dict):
        raise _invalid_json("not a JSON object")
    if sum(1 for m in _JSON_STRING.finditer(raw) if m.group(1)) != _num_keys(value):
        raise _invalid_json("duplicate key")
    return value


# a JSON string token and, if it is a key, its colon; scanned from the start of valid JSON,
# every quote outside a string opens one, so the matches are exactly the string tokens
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?', re.DOTALL)


def _num_keys(root: Any) -> int:
    """Keys of every object in ``root`` (equal to the key tokens unless one repeats);
    :class:`Refused` past :data:`MAX_DEPTH` (what records it recurses)."""
    num, stack = 0, [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise _invalid_json(f"nested deeper than {MAX_DEPTH}")
        if isinstance(value, dict):
            num += len(value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return num


def _check_tree(root: Any) -> None:
    """Depth and lone surrogates, without recursion."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise _invalid_json(f"nested deeper than {MAX_DEPTH}")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((item, depth + 1))


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid_json("lone surrogate in a string") from None


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse a body the app would not read with ``json.loads`` (module docstring)."""
    kind, params = media_type(headers.get("content-type", "application/json"))
    if kind != "application/json" or params.get("charset", "utf-8") not in UTF8_NAMES:
        raise Refused(
            415, "send the body as Content-Type application/json (UTF-8)",
            param="content-type", code="unsupported_media_type",
        )  # fmt: skip
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Refused(
            415, f"request Content-Encoding {encoding[:40]!r} is not accepted: send plain JSON",
            param="content-encoding", code="unsupported_encoding",
        )  # fmt: skip


def too_large(exc: PayloadTooLargeError) -> Refused:
    """413 for a request over the payload limit; its refusal trail keeps size and limit only."""
    return Refused(413, str(exc), code="request_too_large",
                   details={"size": exc.size, "limit": exc.limit})  # fmt: skip


def unrecordable(exc: UnrecordableEventError) -> Refused:
    """413 for a prompt over the recorder's payload limit, else 400 (its parameters too large)."""
    if isinstance(exc, PayloadTooLargeError):
        return too_large(exc)
    return Refused(400, f"request cannot be recorded: {exc}"[:1024], code="unrecordable_request")
