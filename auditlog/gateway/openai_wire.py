"""Reading the OpenAI wire format from the outside: request bodies, JSON answers, stream chunks.

Text-to-token mapping (how an adapter that sees text, not token ids, keeps a trail exact): the
"tokens" of a text are its UTF-8 bytes, one token id 0..255 per byte (``utf8_token_ids``), with
provenance ``target``. Each step's token ids therefore decode (``bytes(ids).decode("utf-8")``)
to exactly the text recorded, and the content steps (those not marked, below) concatenated to
exactly the text the server produced, chunk boundaries included in the ``tokens`` records' step
ids. Such a trail says so in its parameters: ``"tokenization":
"utf-8-bytes"``.

Output other than content (C6, C23): every non-empty field of a choice's ``delta`` / ``message``
other than ``role`` and ``content`` also reaches the client (``tool_calls`` with their
``function.arguments``, ``function_call``, ``reasoning_content``, ``reasoning``, ``refusal``, ...),
and so does every non-empty field of the choice itself other than ``index``, ``finish_reason``,
``text``, ``delta`` and ``message`` (``logprobs``, ``stop_reason``, ...) and every non-empty
top-level field other than ``choices`` and the envelope (below), such as ``usage``,
``prompt_logprobs`` and ``error`` (an error does not hide the choices beside it: ``"error": null``
is no error, and an error object is recorded whole as well as naming the end's error).
Each is recorded too, as its own step, marked: ``U+001E <field name> U+001F <value>``, the value
as is when it is a string, else as canonical JSON (sorted keys; floats as decimal strings,
integers beyond 2^53 as decimal strings). A step's text is therefore either plain content or,
when it begins with U+001E, a marked field; content that itself begins with U+001E is recorded
marked as ``U+001E content U+001F <content>``, so every step reads one way.

The envelope: the non-empty fields among ``id``, ``object``, ``created``, ``model``,
``system_fingerprint`` and ``service_tier`` (what the official client shows beside the choices:
the answering model may differ from the requested one), as one canonical-JSON object, the marked
field ``envelope``. A response is read in order by one :class:`ResponseReader`: the envelope is
recorded with the first chunk (or the whole answer) and again only with a chunk whose envelope
differs from the previous chunk's, so each chunk's envelope is the last one recorded (``{}``
before any: a first chunk without one records none, a chunk that drops it records ``{}``).
``usage`` is not part of it: it is recorded as its own marked field with every chunk that
carries it non-empty (a ``stream_options`` usage chunk with empty ``choices`` included). A
chunk's steps, in order: its envelope (when recorded), its content, the marked fields of its
choice, then its other top-level fields by name.

Attribution: a trail holds one choice. A choice whose ``index`` is not exactly the integer 0
(``1``, ``null``, ``"0"``), a ``choices`` that is not a list, a choice that is not an object or a
``text`` / ``delta`` / ``message`` of the wrong type raises :class:`WireFormatError`: the
adapter cannot say what it carries, so it MUST NOT release it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from auditlog.errors import AuditlogError

__all__ = [
    "FIELD_MARK",
    "FIELD_NAME_END",
    "TOKENIZATION",
    "ChoiceDelta",
    "ResponseReader",
    "WireFormatError",
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


def prompt_text(body: Mapping[str, Any], input_field: str) -> str:
    """The input as recorded: the value of ``input_field`` (``prompt`` of a completion,
    ``messages`` of a chat), a string as is, anything else as canonical JSON (sorted keys), so it
    can be replayed; ``""`` when the body has no such field."""
    value = body.get(input_field, "")
    if isinstance(value, str):
        return value
    return canonical_json(value)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text: sorted keys, numbers through :func:`json_safe`."""
    return orjson.dumps(json_safe(value), option=orjson.OPT_SORT_KEYS).decode()


def marked_field(name: str, value: Any) -> str:
    """A non-content output field as one recorded step (module docstring)."""
    text = value if isinstance(value, str) else canonical_json(value)
    return f"{FIELD_MARK}{name}{FIELD_NAME_END}{text}"


class WireFormatError(AuditlogError):
    """An answer the adapter cannot attribute or read exactly (module docstring)."""


_EMPTY: tuple[Any, ...] = (None, "", [], {})
_ENVELOPE = ("id", "object", "created", "model", "system_fingerprint", "service_tier")
_NOT_MARKED = frozenset({*_ENVELOPE, "choices"})
_ENVELOPE_FIELD = "envelope"
_CHOICE_KNOWN = frozenset({"index", "finish_reason", "text", "delta", "message"})


@dataclass(slots=True)
class ChoiceDelta:
    """The choice of one response chunk (or a whole JSON answer): its content text, its other
    output fields as marked steps, its envelope step when it is recorded, its finish reason; or
    the error it carries."""

    text: str = ""
    envelope: str | None = None  # the marked envelope step, when this chunk records one
    finish_reason: str | None = None
    error: str | None = None
    marked: list[str] = field(default_factory=list)

    def recorded_steps(self) -> list[str]:
        """The texts to record, one step each, in order: the envelope, the content, then the
        marked fields."""
        steps = [self.envelope] if self.envelope is not None else []
        if self.text.startswith(FIELD_MARK):
            steps.append(marked_field(_CONTENT_FIELD, self.text))
        elif self.text:
            steps.append(self.text)
        return steps + self.marked


@dataclass(slots=True)
class ResponseReader:
    """Reads one response's chunks in order, recording its envelope when it changes (module
    docstring)."""

    envelope: str = "{}"  # canonical JSON of the previous chunk's envelope

    def read(self, obj: Any) -> ChoiceDelta:
        """The choice of the next chunk (or of the whole answer), its envelope step set when the
        envelope differs from the previous chunk's; :class:`WireFormatError` as
        :func:`response_delta`."""
        out = _choice_delta(obj)
        envelope = canonical_json({k: obj[k] for k in _ENVELOPE if obj.get(k) not in _EMPTY})
        if envelope != self.envelope:
            out.envelope = marked_field(_ENVELOPE_FIELD, envelope)
            self.envelope = envelope
        return out


def response_delta(obj: Any) -> ChoiceDelta:
    """The one choice of a whole completion / chat completion answer, its envelope included (a
    stream's chunks are read by one :class:`ResponseReader`); :class:`WireFormatError` for
    anything it cannot attribute (module docstring)."""
    return ResponseReader().read(obj)


def _choice_delta(obj: Any) -> ChoiceDelta:
    if not isinstance(obj, dict):
        raise WireFormatError("answer is not a JSON object")
    out = ChoiceDelta()
    err = obj.get("error")
    if err not in _EMPTY:  # recorded whole below too (a marked field): type, code, param
        message = err.get("message") if isinstance(err, dict) else err
        out.error = message if isinstance(message, str) else canonical_json(err)
    choices = obj.get("choices")
    if choices is None:
        choices = []
    if not isinstance(choices, list):
        raise WireFormatError("choices is not a list")
    for choice in choices:
        _absorb_choice(out, choice)
    for name in sorted(set(obj) - _NOT_MARKED):
        if obj[name] not in _EMPTY:
            out.marked.append(marked_field(name, obj[name]))
    return out


def _absorb_choice(out: ChoiceDelta, choice: Any) -> None:
    if not isinstance(choice, dict):
        raise WireFormatError("a choice is not a JSON object")
    index = choice.get("index")
    if type(index) is not int or index != 0:
        raise WireFormatError(f"choice index {index!r} cannot be attributed: only 0 is recorded")
    text = choice.get("text")
    if text is not None and not isinstance(text, str):
        raise WireFormatError("choice text is not a string")
    out.text += text or ""
    for key in ("delta", "message"):
        part = choice.get(key)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise WireFormatError(f"choice {key} is not a JSON object")
        _absorb_message(out, part)
    for name in sorted(set(choice) - _CHOICE_KNOWN):
        if choice[name] not in _EMPTY:
            out.marked.append(marked_field(name, choice[name]))
    reason = choice.get("finish_reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise WireFormatError("finish_reason is not a string")
        out.finish_reason = reason


def _absorb_message(out: ChoiceDelta, part: dict[str, Any]) -> None:
    content = part.get(_CONTENT_FIELD)
    if isinstance(content, str):
        out.text += content
    elif content not in _EMPTY:  # e.g. a list of content parts
        out.marked.append(marked_field(_CONTENT_FIELD, content))
    for name in sorted(set(part) - _UNMARKED_FIELDS):
        if part[name] not in _EMPTY:
            out.marked.append(marked_field(name, part[name]))
