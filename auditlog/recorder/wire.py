"""What the process recorder's two processes say to each other over their pipe.

Parent -> child: one message per admitted event (a tag byte, then the event as MessagePack,
decoded into the same frozen dataclass), and the control messages flush, checkpoint, close and
"flush soon" (a caller waits: the child's writer commits once its queue is empty).
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
import os
import select
import socket
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from auditlog import errors
from auditlog.errors import AuditlogError, RecorderError
from auditlog.events import BatchStep, Event, ModelRef, RequestFinished, RequestStarted

from . import limits
from .checks import safe_text
from .stats import RecorderStats

__all__ = [
    "Control",
    "Reply",
    "ask_to_close",
    "control",
    "decode_event",
    "decode_reply",
    "encode_event",
    "encode_reply",
    "error_fields",
    "has_room",
    "rebuild_error",
    "stats_from",
    "stats_to",
]

_EVENT_TYPES: tuple[type[Any], ...] = (RequestStarted, BatchStep, RequestFinished)
_TAG = {t: bytes([i]) for i, t in enumerate(_EVENT_TYPES)}
_DECODERS = [msgspec.msgpack.Decoder(t) for t in _EVENT_TYPES]
_MODEL_REF_FIELDS = tuple(f.name for f in dataclasses.fields(ModelRef))


def _plain(obj: Any) -> Any:
    """What the gate admits and msgspec does not write itself, as the plain values the writer
    reads: any mapping (``params``, ``replay``, ``drafts``), str and int subclasses (canonical
    JSON writes their plain values) and a model reference given as another object."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, int):
        return int.__int__(obj)
    if all(hasattr(obj, name) for name in _MODEL_REF_FIELDS):
        return {name: getattr(obj, name) for name in _MODEL_REF_FIELDS}
    raise TypeError(f"{type(obj).__name__} cannot travel to the recording process")


_encoder = msgspec.msgpack.Encoder(enc_hook=_plain)
_reply_decoder = msgspec.msgpack.Decoder()


class Control(enum.IntEnum):
    """Parent -> child messages other than events (tag bytes after the event tags)."""

    FLUSH = 3
    CHECKPOINT = 4
    CLOSE = 5
    SOON = 6  # a caller waits for durability: commit once the queue is empty


class Reply(enum.IntEnum):
    """Child -> parent messages (first item of each)."""

    READY = 0  # [READY, stats, note]
    START_FAILED = 1  # [START_FAILED, error name, text]
    ACK = 2  # [ACK, started ids, {id: tokens}, ended ids, stats, note]
    REFUSED = 3  # [REFUSED, request id, error name, text]
    FAILED = 4  # [FAILED, error name, text]
    FLUSHED = 5  # [FLUSHED, token, error name | None, text]
    CLOSED = 6  # [CLOSED, stats, note, error name | None, text]


#: Set in an event's tag byte: a caller in the parent waits; the child's writer commits once its
#: queue is empty after this event (recorder/gather.py).
_SOON_BIT = 0x80


def encode_event(event: Event, *, soon: bool = False) -> bytes:
    """The message of an admitted event (of one of the event types, or a subclass of one)."""
    tag = _TAG.get(type(event)) or next(_TAG[t] for t in _EVENT_TYPES if isinstance(event, t))
    if soon:
        tag = bytes([tag[0] | _SOON_BIT])
    return tag + _encoder.encode(event)


def decode_event(data: bytes) -> tuple[Event, bool]:
    """The event of a message, and whether it asks for a commit soon."""
    event: Event = _DECODERS[data[0] & 0x7F].decode(memoryview(data)[1:])
    return event, bool(data[0] & _SOON_BIT)


def control(kind: Control, token: int = 0) -> bytes:
    return bytes([kind]) + token.to_bytes(8, "little")


def ask_to_close(conn: Connection, *, torn: bool) -> None:
    """Ask the child to drain, sign and exit: CLOSE, or after a write cut short (part of a
    message may be on the pipe, and nothing may follow it) the end of the pipe, on which the
    child drops the partial message and closes the same way."""
    if not torn:
        conn.send_bytes(control(Control.CLOSE))
        return
    with socket.socket(fileno=os.dup(conn.fileno())) as ours:
        ours.shutdown(socket.SHUT_WR)


def has_room(conn: Connection) -> bool:
    """Whether a short message can be written now without blocking (the pipe is a socket pair:
    writable means a quarter or more of its buffer is free)."""
    _, writable, _ = select.select([], [conn.fileno()], [], 0)
    return bool(writable)


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
    """An error as kind and text (any lone surrogate escaped: the text must encode)."""
    return (None, "") if exc is None else (type(exc).__name__, safe_text(str(exc)))


def rebuild_error(name: str | None, text: str) -> AuditlogError:
    """The error the child raised, as the same auditlog kind (a foreign one: RecorderError)."""
    cls = getattr(errors, name or "", None) or getattr(limits, name or "", None)
    if isinstance(cls, type) and issubclass(cls, AuditlogError):
        try:
            return cls(text)
        except TypeError:  # a kind built from other arguments
            pass
    return RecorderError(f"{name}: {text}" if name else text)
