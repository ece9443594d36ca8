"""Reading the OpenAI wire format from the outside: request bodies, JSON answers, SSE streams.

Text-to-token mapping (how an adapter that sees text, not token ids, keeps a trail exact): the
"tokens" of a text are its UTF-8 bytes, one token id 0..255 per byte (``utf8_token_ids``), with
provenance ``target``. The concatenated token ids of a trail therefore decode (``bytes(ids)
.decode("utf-8")``) to exactly the text the server produced, chunk boundaries included in the
``tokens`` records' step ids. Such a trail says so in its parameters: ``"tokenization":
"utf-8-bytes"``.

Output other than content (C6, C23): every non-empty field of a choice's ``delta`` / ``message``
other than ``role`` and ``content`` also reaches the client (``tool_calls`` with their
``function.arguments``, ``function_call``, ``reasoning_content``, ``reasoning``, ``refusal``, ...),
so it is recorded too, as its own step, marked: ``U+001E <field name> U+001F <value>``, the value
as is when it is a string, else as canonical JSON (sorted keys). A step's text is therefore either
plain content or, when it begins with U+001E, a marked field; content that itself begins with
U+001E is recorded marked as ``U+001E content U+001F <content>``, so every step reads one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

__all__ = [
    "FIELD_MARK",
    "FIELD_NAME_END",
    "TOKENIZATION",
    "ChoiceDelta",
    "SseParser",
    "json_safe",
    "marked_field",
    "prompt_text",
    "response_delta",
    "utf8_token_ids",
]

TOKENIZATION = "utf-8-bytes"
_MAX_SAFE_INTEGER = 2**53 - 1
_DONE = b"[DONE]"
FIELD_MARK = "\x1e"  # U+001E RECORD SEPARATOR: starts a marked (non-content) step
FIELD_NAME_END = "\x1f"  # U+001F UNIT SEPARATOR: ends the field name of a marked step
_CONTENT_FIELD = "content"
_UNMARKED_FIELDS = frozenset({"role", _CONTENT_FIELD})


def utf8_token_ids(text: str) -> tuple[int, ...]:
    """The "tokens" of ``text`` under the byte mapping (module docstring)."""
    return tuple(text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` within the canonical-JSON subset: floats as shortest decimal strings (DESIGN 3),
    integers beyond +-(2^53 - 1) as decimal strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return repr(value)


def prompt_text(body: Mapping[str, Any]) -> str:
    """The input as recorded: a completion's prompt string, else canonical JSON of the input
    (``messages`` of a chat request, a list prompt), sorted keys, so it can be replayed."""
    if "messages" in body:
        return orjson.dumps(json_safe(body["messages"]), option=orjson.OPT_SORT_KEYS).decode()
    prompt = body.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    return orjson.dumps(json_safe(prompt), option=orjson.OPT_SORT_KEYS).decode()


def marked_field(name: str, value: Any) -> str:
    """A non-content output field as one recorded step (module docstring)."""
    text = (
        value
        if isinstance(value, str)
        else orjson.dumps(json_safe(value), option=orjson.OPT_SORT_KEYS).decode()
    )
    return f"{FIELD_MARK}{name}{FIELD_NAME_END}{text}"


@dataclass(slots=True)
class ChoiceDelta:
    """Choice 0 of one response chunk (or a whole JSON answer): its content text, its other
    output fields as marked steps, its finish reason."""

    text: str = ""
    finish_reason: str | None = None
    error: str | None = None
    usage: dict[str, Any] | None = None
    marked: list[str] = field(default_factory=list)

    def recorded_steps(self) -> list[str]:
        """The texts to record, one step each, in order: the content, then the marked fields."""
        steps = [self.text] if self.text else []
        if self.text.startswith(FIELD_MARK):
            steps = [marked_field(_CONTENT_FIELD, self.text)]
        return steps + self.marked


def response_delta(obj: Any) -> ChoiceDelta:
    """Choice 0 of a completion / chat completion object, streamed chunk or whole."""
    out = ChoiceDelta()
    if not isinstance(obj, dict):
        return out
    if isinstance(obj.get("error"), dict):
        out.error = str(obj["error"].get("message", "error"))
        return out
    if isinstance(obj.get("usage"), dict):
        out.usage = obj["usage"]
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        if isinstance(choice.get("text"), str):
            out.text += choice["text"]
        for key in ("delta", "message"):
            part = choice.get(key)
            if not isinstance(part, dict):
                continue
            if isinstance(part.get(_CONTENT_FIELD), str):
                out.text += part[_CONTENT_FIELD]
            elif part.get(_CONTENT_FIELD) not in (None, ""):  # e.g. a list of content parts
                out.marked.append(marked_field(_CONTENT_FIELD, part[_CONTENT_FIELD]))
            for name in sorted(set(part) - _UNMARKED_FIELDS):
                if part[name] not in (None, "", [], {}):
                    out.marked.append(marked_field(name, part[name]))
        if choice.get("finish_reason"):
            out.finish_reason = str(choice["finish_reason"])
    return out


@dataclass(slots=True)
class SseParser:
    """Splits a byte stream into complete server-sent events (WHATWG HTML 9.2.6)."""

    _buffer: bytes = b""
    done: bool = False
    events: list[bytes] = field(default_factory=list)

    def feed(self, data: bytes) -> tuple[bytes, list[ChoiceDelta]]:
        """Add bytes; return (the complete events' bytes, their parsed deltas). A partial event
        stays buffered until its blank line arrives."""
        self._buffer += data.replace(b"\r\n", b"\n")
        end = self._buffer.rfind(b"\n\n")
        if end < 0:
            return b"", []
        complete, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
        deltas = []
        for event in complete.split(b"\n\n"):
            payload = b"\n".join(
                line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
            )
            if not payload:
                continue
            if payload.strip() == _DONE:
                self.done = True
                continue
            try:
                deltas.append(response_delta(orjson.loads(payload)))
            except orjson.JSONDecodeError:
                deltas.append(ChoiceDelta(error=f"unparseable event: {payload[:80]!r}"))
        return complete, deltas

    def rest(self) -> bytes:
        """Bytes of an unterminated last event (sent as is when the stream ends)."""
        rest, self._buffer = self._buffer, b""
        return rest
