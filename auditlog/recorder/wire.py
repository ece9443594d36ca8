"""What the process recorder's two processes say to each other over their pipe.

Parent -> child: one message per admitted event (a tag byte, then the event as MessagePack,
decoded into the same frozen dataclass), and the control messages flush, checkpoint and close.
MessagePack through ``msgspec`` was measured faster than pickle for these events
(docs/PERFORMANCE.md, Recorder) and its typed decoders rebuild tuples and enums exactly.

Child -> parent: MessagePack arrays, the first item a :class:`Reply` code: durability
acknowledgements sent after each durable flush, refusals and failures, and the answers to start,
flush and close. An error travels as its class name and text and is raised again in the parent as
the same :mod:`auditlog.errors` kind where there is one (:func:`rebuild_error`).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import msgspec

from auditlog import errors
from auditlog.errors import AuditlogError, RecorderError
from auditlog.events import BatchStep, Event, RequestFinished, RequestStarted

from . import limits
from .stats import RecorderStats

__all__ = [
    "Control",
    "Reply",
    "control",
    "decode_event",
    "decode_reply",
    "encode_event",
    "encode_reply",
    "error_fields",
    "rebuild_error",
    "stats_from",
    "stats_to",
]

_EVENT_TYPES: tuple[type[Any], ...] = (RequestStarted, BatchStep, RequestFinished)
_TAG = {t: bytes([i]) for i, t in enumerate(_EVENT_TYPES)}
_DECODERS = [msgspec.msgpack.Decoder(t) for t in _EVENT_TYPES]
_encoder = msgspec.msgpack.Encoder()
_reply_decoder = msgspec.msgpack.Decoder()


class Control(enum.IntEnum):
    """Parent -> child messages other than events (tag bytes after the event tags)."""

    FLUSH = 3
    CHECKPOINT = 4
    CLOSE = 5


class Reply(enum.IntEnum):
    """Child -> parent messages (first item of each)."""

    READY = 0  # [READY, stats, note]
    START_FAILED = 1  # [START_FAILED, error name, text]
    ACK = 2  # [ACK, started ids, {id: tokens}, ended ids, stats, note]
    REFUSED = 3  # [REFUSED, request id, error name, text]
    FAILED = 4  # [FAILED, error name, text]
    FLUSHED = 5  # [FLUSHED, token, error name | None, text]
    CLOSED = 6  # [CLOSED, stats, note, error name | None, text]


def encode_event(event: Event) -> bytes:
    return _TAG[type(event)] + _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    event: Event = _DECODERS[data[0]].decode(memoryview(data)[1:])
    return event


def control(kind: Control, token: int = 0) -> bytes:
    return bytes([kind]) + token.to_bytes(8, "little")


def encode_reply(*items: Any) -> bytes:
    return _encoder.encode(items)


def decode_reply(data: bytes) -> list[Any]:
    reply: list[Any] = _reply_decoder.decode(data)
    return reply


def stats_to(stats: RecorderStats) -> list[Any]:
    return list(dataclasses.astuple(stats))


def stats_from(values: list[Any]) -> RecorderStats:
    return RecorderStats(*values)


def error_fields(exc: BaseException | None) -> tuple[str | None, str]:
    return (None, "") if exc is None else (type(exc).__name__, str(exc))


def rebuild_error(name: str | None, text: str) -> AuditlogError:
    """The error the child raised, as the same auditlog kind (a foreign one: RecorderError)."""
    cls = getattr(errors, name or "", None) or getattr(limits, name or "", None)
    if isinstance(cls, type) and issubclass(cls, AuditlogError):
        try:
            return cls(text)
        except TypeError:  # a kind built from other arguments
            pass
    return RecorderError(f"{name}: {text}" if name else text)
