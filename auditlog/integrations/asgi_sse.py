"""Server-sent events as a client reads them (WHATWG HTML, "Interpreting an event stream").

Lines end with CR LF, LF or CR, also when a CR LF pair is split across two writes; a blank line
dispatches the event; a line starting with ``:`` is a comment; ``data`` values (one leading
space removed) are joined with LF; ``event`` names the event type; other fields (``id``,
``retry``, unknown names) carry no output; a leading byte order mark is skipped. Each event keeps
its raw bytes, so the middleware releases exactly the bytes whose data it has recorded; a
comment line is released as a bare ``:`` (a client ignores comments, so no event changes, the
line structure stays, and no unrecorded text reaches a raw client). Bytes of an event whose blank
line has not arrived stay buffered: a client discards an unterminated last event, so the
middleware never releases one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["DONE", "UTF8_NAMES", "SseEvent", "SseReader", "media_type"]

DONE = "[DONE]"
UTF8_NAMES = frozenset({"utf-8", "utf8"})  # charset values that mean UTF-8
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its raw bytes (line ends included, comments emptied), its data
    (``None`` when it has no ``data`` field: a client does not dispatch it) and its ``event``
    type (``None`` when absent)."""

    raw: bytes
    data: str | None
    event_type: str | None = None
    num_other_fields: int = 0  # ``id``, ``retry``, unknown names: text that is not output


@dataclass(slots=True)
class SseReader:
    """Splits a byte stream into events (module docstring). ``data`` that is not UTF-8 raises
    :class:`UnicodeDecodeError`: a client would read something else than what was recorded."""

    _pending: bytes = b""  # an unterminated line
    _raw: bytearray = field(default_factory=bytearray)  # the current event's complete lines
    _data: list[bytes] | None = None
    _type: bytes | None = None
    _num_other: int = 0
    _after_cr: bool = False
    _started: bool = False

    def feed(self, data: bytes) -> list[SseEvent]:
        """Add bytes; return the events they complete, in order."""
        if self._after_cr and data:
            self._after_cr = False
            if data.startswith(b"\n"):
                self._raw += b"\n"  # the second half of a CR LF split across writes
                data = data[1:]
        buf = self._pending + data
        if not self._started and buf:
            self._started = True
            if buf.startswith(_BOM):
                self._raw += _BOM
                buf = buf[len(_BOM) :]
        events: list[SseEvent] = []
        start = 0
        for match in _LINE_END.finditer(buf):
            line = buf[start : match.start()]
            kept = buf[start : match.start()] if not line.startswith(b":") else b":"
            self._raw += kept + match.group()
            start = match.end()
            if match.group() == b"\r" and start == len(buf):
                self._after_cr = True
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._pending = buf[start:]
        return events

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            raw, data, kind, num_other = bytes(self._raw), self._data, self._type, self._num_other
            self._raw.clear()
            self._data = self._type = None
            self._num_other = 0
            text = None if data is None else b"\n".join(data).decode("utf-8")
            return SseEvent(raw, text, None if kind is None else kind.decode("utf-8"), num_other)
        if line.startswith(b":"):
            return None
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data = [*(self._data or []), value]
        elif name == b"event":
            self._type = value
        else:
            self._num_other += 1
        return None

    def num_buffered_bytes(self) -> int:
        """Bytes held for the event not yet complete."""
        return len(self._raw) + len(self._pending)

    def unterminated(self) -> bytes:
        """Bytes of an event whose blank line never came (never released)."""
        return bytes(self._raw) + self._pending


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """``("text/event-stream", {"charset": "utf-8"})`` for ``Text/Event-Stream; charset=UTF-8``:
    type and parameter names and values lowercased (media types are case-insensitive)."""
    kind, *params = content_type.split(";")
    out: dict[str, str] = {}
    for param in params:
        name, _, value = param.partition("=")
        out[name.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), out
