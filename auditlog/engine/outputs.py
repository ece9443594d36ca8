"""What the engine hands back to its caller, and the text rules behind it.

Text rules (C6, generated vs delivered):

- A stop token (EOS unless ``ignore_eos``, or one of ``stop_token_ids``) ends the request; it is
  generated but not delivered.
- A stop string ends the request at the token that completes it; the delivered text ends just
  before the stop string, and tokens whose text is not wholly inside the delivered text are
  generated but not delivered.
- While a request runs, text that may still turn out to be the start of a stop string, or an
  incomplete UTF-8 character, is held back from ``text_delta`` until it is settled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from auditlog.events import FinishReason, Provenance

__all__ = ["RequestOutput", "StepOutput", "find_stop", "num_tokens_within", "settled_text"]

REPLACEMENT_CHAR = "\ufffd"  # what an incomplete UTF-8 sequence decodes to


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutput:
    """One request's share of one engine step."""

    request_id: str
    new_token_ids: tuple[int, ...]
    provenance: tuple[Provenance, ...]
    text_delta: str
    finished: bool = False
    finish_reason: FinishReason | None = None
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestOutput:
    """A whole request's result, as returned by ``LLMEngine.generate``."""

    request_id: str
    prompt_token_ids: tuple[int, ...]
    token_ids: tuple[int, ...]  # every generated token, including undelivered ones
    text: str  # the delivered text
    finish_reason: FinishReason | None
    error: str = ""


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest stop string in ``text``, or -1."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def settled_text(text: str, stops: Sequence[str]) -> str:
    """The prefix of a running request's text that can be delivered now."""
    end = len(text)
    while end > 0 and text[end - 1] == REPLACEMENT_CHAR:
        end -= 1
    if stops:
        end = max(0, end - (max(len(s) for s in stops) - 1))
    return text[:end]


def num_tokens_within(
    token_ids: Sequence[int], delivered: str, decode: Callable[[list[int]], str]
) -> int:
    """The largest n such that the text of the first n tokens is a prefix of ``delivered``."""
    for n in range(len(token_ids), -1, -1):
        if delivered.startswith(decode(list(token_ids[:n]))):
            return n
    return 0
