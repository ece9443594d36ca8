"""The one limit on what a request brings into the permanent log: ``max_payload_bytes``.

A request's content (its prompt) is recorded in its ``request.start`` payload and kept for the
whole retention period, so its size is bounded before anything is recorded. One setting, one
default (:data:`DEFAULT_MAX_PAYLOAD_BYTES`, 1 MiB), checked in two places that agree:

- at an HTTP edge (``auditlog serve``, the ASGI middleware), on the request body, declared or
  streamed, before it is parsed or recorded (:func:`auditlog.gateway.body_limit.read_body`): a
  larger request is answered 413 and leaves only a small refusal trail without content;
- at the recorder (``AuditRecorder(max_payload_bytes=...)``, so every adapter), on the prompt of
  each ``RequestStarted``: its size (:func:`prompt_size`) is the larger of its text in UTF-8 bytes
  and its number of token ids, and a larger prompt is refused with
  :class:`PayloadTooLargeError`, never stored.

The two agree: a body carries its prompt text (JSON escapes only lengthen it) and spends at least
one byte per token id, so no body within the limit holds a prompt over it.
"""

from __future__ import annotations

from auditlog.errors import ConfigurationError, UnrecordableEventError
from auditlog.events import RequestStarted

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "PayloadTooLargeError",
    "check_prompt_size",
    "prompt_size",
    "validate_limit",
]

#: 1 MiB: about 250,000 tokens of English text, more than the context window of the models
#: commonly served; raise it for longer-context models.
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20


class PayloadTooLargeError(UnrecordableEventError):
    """A request larger than ``max_payload_bytes``: refused before its content is recorded."""

    def __init__(self, what: str, size: int, limit: int, *, at_least: bool = False) -> None:
        more = "at least " if at_least else ""
        super().__init__(f"{what} is {more}{size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def validate_limit(value: object, name: str = "max_payload_bytes") -> int:
    """``value`` as a limit (a positive integer), or :class:`ConfigurationError`."""
    if type(value) is not int or value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer (bytes), got {value!r}")
    return value


def prompt_size(event: RequestStarted) -> int:
    """The prompt's size: the larger of its text in UTF-8 bytes and its number of token ids
    (a token id takes at least one byte of any request body that carries it)."""
    text, ids = event.prompt_text, event.prompt_token_ids
    # surrogatepass: a lone surrogate is refused later by check_event with its own message
    num_text = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else 0
    num_ids = len(ids) if isinstance(ids, tuple | list) else 0
    return max(num_text, num_ids)


def check_prompt_size(event: RequestStarted, limit: int) -> None:
    """Raise :class:`PayloadTooLargeError` when the event's prompt is over ``limit``."""
    size = prompt_size(event)
    if size > limit:
        raise PayloadTooLargeError(f"request {event.request_id!r}: prompt", size, limit)
