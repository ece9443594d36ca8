"""What the engine hands back to its caller, and the rules that end a request and settle its text.

Finish rules, checked after each appended token in this order:

- A stop token (EOS unless ``ignore_eos``, or one of ``stop_token_ids``) or a stop string ends
  the request with reason ``stop``.
- Otherwise ``max_tokens`` generated tokens, or a full context (``max_model_len`` tokens), end it
  with reason ``length``.

Tokens after the one that ends a request are dropped: they are never generated.

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

from auditlog.engine.sequence import Sequence as Seq
from auditlog.events import FinishReason, Provenance

__all__ = [
    "RequestOutput",
    "StepOutput",
    "append_tokens",
    "collect_outputs",
    "final_output",
    "find_stop",
    "num_tokens_within",
    "running_output",
    "settled_text",
]

Decode = Callable[[list[int]], str]

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


def num_tokens_within(token_ids: Sequence[int], delivered: str, decode: Decode) -> int:
    """The largest n such that the text of the first n tokens is a prefix of ``delivered``."""
    for n in range(len(token_ids), -1, -1):
        if delivered.startswith(decode(list(token_ids[:n]))):
            return n
    return 0


def append_tokens(
    seq: Seq, tokens: list[int], *, eos_id: int, max_model_len: int, decode: Decode
) -> int:
    """Append ``tokens`` to ``seq`` until one ends it (setting ``seq.finish_reason`` and, for a
    stop string, ``seq.stop_text``); return how many were appended (finish rules, module doc)."""
    p = seq.params
    for i, token in enumerate(tokens):
        seq.token_ids.append(token)
        if token in p.stop_token_ids or (token == eos_id and not p.ignore_eos):
            seq.finish_reason = FinishReason.STOP
        elif p.stop:
            text = decode(seq.generated_ids)
            cut = find_stop(text, p.stop)
            if cut >= 0:
                seq.stop_text = text[:cut]
                seq.finish_reason = FinishReason.STOP
        if seq.finish_reason is None and (
            seq.num_generated >= p.max_tokens or seq.num_tokens >= max_model_len
        ):
            seq.finish_reason = FinishReason.LENGTH
        if seq.finish_reason is not None:
            return i + 1
    return len(tokens)


def running_output(
    seq: Seq, tokens: Sequence[int], provs: Sequence[Provenance], decode: Decode
) -> StepOutput:
    """The output of a request still running: its new tokens and the newly settled text."""
    text = settled_text(decode(seq.generated_ids), seq.params.stop)
    delta = text[len(seq.sent_text) :] if len(text) > len(seq.sent_text) else ""
    seq.sent_text += delta
    return StepOutput(
        request_id=seq.request_id,
        new_token_ids=tuple(tokens),
        provenance=tuple(provs),
        text_delta=delta,
    )


def final_output(
    seq: Seq, tokens: Sequence[int], provs: Sequence[Provenance], decode: Decode
) -> tuple[StepOutput, int]:
    """The last output of a request ended with ``seq.finish_reason`` and ``seq.error``, and its
    number of delivered tokens (text rules, module doc); ``seq.sent_text`` becomes the final text.
    """
    reason = seq.finish_reason
    generated = seq.generated_ids
    if reason is FinishReason.STOP and seq.stop_text is None:  # a stop token
        final, n_delivered = decode(generated[:-1]), len(generated) - 1
    elif reason is FinishReason.STOP and seq.stop_text is not None:  # a stop string
        final = seq.stop_text
        n_delivered = num_tokens_within(generated, final, decode)
    elif reason is FinishReason.LENGTH:
        final, n_delivered = decode(generated), len(generated)
    else:  # abort or error: only what was already handed out
        final = seq.sent_text
        n_delivered = num_tokens_within(generated, final, decode)
    delta = final[len(seq.sent_text) :]
    seq.sent_text = final
    output = StepOutput(
        request_id=seq.request_id,
        new_token_ids=tuple(tokens),
        provenance=tuple(provs),
        text_delta=delta,
        finished=True,
        finish_reason=reason,
        error=seq.error,
    )
    return output, n_delivered


def collect_outputs(
    step: Callable[[], list[StepOutput]], prompt_ids: dict[str, tuple[int, ...]]
) -> list[RequestOutput]:
    """Call ``step`` until every request of ``prompt_ids`` (id -> prompt token ids) has finished;
    their outputs, in the order of ``prompt_ids``."""
    ids = list(prompt_ids)
    tokens: dict[str, list[int]] = {rid: [] for rid in ids}
    texts: dict[str, list[str]] = {rid: [] for rid in ids}
    ends: dict[str, StepOutput] = {}
    while len(ends) < len(ids):
        for out in step():
            if out.request_id in tokens:
                tokens[out.request_id].extend(out.new_token_ids)
                texts[out.request_id].append(out.text_delta)
                if out.finished:
                    ends[out.request_id] = out
    return [
        RequestOutput(
            request_id=rid,
            prompt_token_ids=prompt_ids[rid],
            token_ids=tuple(tokens[rid]),
            text="".join(texts[rid]),
            finish_reason=ends[rid].finish_reason,
            error=ends[rid].error,
        )
        for rid in ids
    ]
