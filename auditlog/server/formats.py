"""OpenAI wire shapes of completions and chat completions (JSON bodies and SSE chunks)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditlog.events import FinishReason

from .generation import Chunk

__all__ = ["Usage", "WireFormat", "sse"]

SSE_DONE = b"data: [DONE]\n\n"


def sse(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as JSON."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _finish(reason: FinishReason | None) -> str | None:
    # OpenAI knows "stop" and "length"; an abort never reaches a client.
    return None if reason is None else ("length" if reason is FinishReason.LENGTH else "stop")


@dataclass(slots=True)
class WireFormat:
    """Formats one response, either ``text_completion`` or ``chat.completion``."""

    chat: bool
    response_id: str
    model: str
    include_usage: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    _role_sent: bool = False

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": self.response_id, "object": obj, "created": self.created, "model": self.model}

    def chunk(self, chunk: Chunk) -> bytes:
        """The SSE events for one released chunk (may be empty)."""
        out = b""
        usage: dict[str, Any] = {"usage": None} if self.include_usage else {}
        if not self.chat:
            if chunk.text or chunk.finish_reason is not None:
                choice = {
                    "index": 0,
                    "text": chunk.text,
                    "logprobs": None,
                    "finish_reason": _finish(chunk.finish_reason),
                }
                out += sse({**self._base("text_completion"), "choices": [choice], **usage})
            return out
        base = self._base("chat.completion.chunk")
        if chunk.text or not self._role_sent:
            delta: dict[str, Any] = {"content": chunk.text}
            if not self._role_sent:
                delta = {"role": "assistant", **delta}
                self._role_sent = True
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            out += sse({**base, "choices": [choice], **usage})
        if chunk.finish_reason is not None:
            choice = {
                "index": 0,
                "delta": {},
                "logprobs": None,
                "finish_reason": _finish(chunk.finish_reason),
            }
            out += sse({**base, "choices": [choice], **usage})
        return out

    def trailer(self, usage: Usage) -> bytes:
        """After the last chunk: the usage event (if asked for) and ``[DONE]``."""
        out = b""
        if self.include_usage:
            obj = "chat.completion.chunk" if self.chat else "text_completion"
            out += sse({**self._base(obj), "choices": [], "usage": usage.as_dict()})
        return out + SSE_DONE

    def body(self, text: str, reason: FinishReason | None, usage: Usage) -> dict[str, Any]:
        """A whole non-streamed response."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": _finish(reason),
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": _finish(reason)}
            obj = "text_completion"
        return {**self._base(obj), "choices": [choice], "usage": usage.as_dict()}
