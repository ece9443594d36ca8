"""What a caller hands the engine: a prompt and sampling parameters, checked on arrival (C1).

A text prompt is encoded as ``[bos] + encode(text)``; a list of token ids is used as given and
decoded for the record. A prompt MUST be non-empty, MUST be shorter than the context
(``max_model_len`` tokens) and MUST hold only known token ids, and the sampling parameters MUST
validate. An invalid request is not raised: ``RequestInput.error`` says why, and the other fields
hold what could be read of it, so that it is recorded before it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from auditlog.engine.sampler import SamplingParams
from auditlog.errors import InvalidRequestError

__all__ = ["RequestInput", "Tokenizer", "read_input"]


class Tokenizer(Protocol):
    bos_id: int
    eos_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestInput:
    """A request's prompt and parameters as read; ``error`` is empty when the request is valid."""

    prompt_token_ids: tuple[int, ...]  # may hold non-int items when ``error`` is set
    prompt_text: str
    params_record: dict[str, Any]  # ``SamplingParams.to_record()``, or ``{"unrecordable": repr}``
    error: str = ""


def read_input(
    prompt: str | list[int], params: SamplingParams, tokenizer: Tokenizer, *, max_model_len: int
) -> RequestInput:
    """Encode and check ``prompt`` and ``params``; never raises ``InvalidRequestError``."""
    error = ""
    prompt_ids: tuple[int, ...] = ()
    prompt_text = prompt if isinstance(prompt, str) else ""
    try:
        if isinstance(prompt, str):
            prompt_ids = (tokenizer.bos_id, *tokenizer.encode(prompt))
        elif isinstance(prompt, list | tuple):
            prompt_ids = tuple(prompt)
            prompt_text = tokenizer.decode(list(prompt))  # raises on unknown ids
        else:
            raise InvalidRequestError(
                f"prompt must be a str or a list of token ids, got {type(prompt).__name__}"
            )
        _check_prompt(prompt_ids, max_model_len=max_model_len)
        params.validate()
    except InvalidRequestError as exc:
        error = str(exc)
    try:
        params_record = params.to_record()
    except (InvalidRequestError, TypeError, ValueError, ArithmeticError):
        params_record = {"unrecordable": repr(params)}
    return RequestInput(
        prompt_token_ids=prompt_ids,
        prompt_text=prompt_text,
        params_record=params_record,
        error=error,
    )


def _check_prompt(ids: Sequence[int], *, max_model_len: int) -> None:
    """Raise ``InvalidRequestError`` if the prompt is empty or leaves no room to generate."""
    if not ids:
        raise InvalidRequestError("prompt is empty")
    if len(ids) >= max_model_len:
        raise InvalidRequestError(
            f"prompt too long: expected at most {max_model_len - 1} tokens "
            f"(context {max_model_len}), got {len(ids)}"
        )
