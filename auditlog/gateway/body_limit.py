"""Reading a request body under the payload limit (``max_payload_bytes``, recorder/limits.py).

Shared by ``auditlog serve`` and the ASGI middleware: a body is refused as soon as it is known
to be over the limit, from its declared ``Content-Length`` before any byte is read, else while it
streams in, so an oversized request is never held whole, parsed or recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.types import Message, Receive

from auditlog.recorder.limits import PayloadTooLargeError

__all__ = ["BodyRead", "check_declared", "declared_length", "read_body"]


@dataclass(slots=True)
class BodyRead:
    """The request body and the messages it came in (replayed to the app), or ``gone`` if the
    client left before the body was complete."""

    raw: bytes
    messages: list[Message]
    gone: bool = False


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The ``Content-Length`` as an integer, or None (absent or not a decimal number)."""
    declared = headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


def _too_large(size: int, limit: int, *, at_least: bool) -> PayloadTooLargeError:
    return PayloadTooLargeError("request body", size, limit, at_least=at_least)


def check_declared(headers: Mapping[str, str], limit: int) -> None:
    """Raise :class:`PayloadTooLargeError` when the declared ``Content-Length`` is over
    ``limit``."""
    declared = declared_length(headers)
    if declared is not None and declared > limit:
        raise _too_large(declared, limit, at_least=False)


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> BodyRead:
    """Read the whole body, raising :class:`PayloadTooLargeError` as soon as it exceeds ``limit``
    bytes (a declared ``Content-Length`` over the limit before any byte is read); its ``size`` is
    then the declared length, or the bytes received so far (``at least``)."""
    check_declared(headers, limit)
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return BodyRead(b"".join(chunks), messages, gone=True)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        messages.append(message)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return BodyRead(b"".join(chunks), messages)
