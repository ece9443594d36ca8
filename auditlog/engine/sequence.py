"""A request inside the engine: its tokens, cache position, state and finish outcome."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

from auditlog.engine.sampler import SamplingParams
from auditlog.events import FinishReason

__all__ = ["Sequence", "SequenceStatus"]


class SequenceStatus(enum.Enum):
    WAITING = enum.auto()  # queued, or preempted and waiting to be recomputed
    RUNNING = enum.auto()  # holds KV blocks and is scheduled each step
    FINISHED = enum.auto()


@dataclass(eq=False, slots=True, kw_only=True)
class Sequence:
    """One request's token stream: ``token_ids`` = prompt ids followed by generated ids.

    ``num_cached_tokens`` leading tokens have their keys/values in the target cache (and
    ``num_draft_cached_tokens`` in the draft cache); the rest are fed in the next forward passes.
    Rolling back rejected speculative positions is just lowering these counts: slots past them
    are overwritten later.
    """

    request_id: str
    arrival: int  # admission order, for first-come-first-served scheduling
    prompt_token_ids: tuple[int, ...]
    params: SamplingParams
    generator: torch.Generator
    token_ids: list[int] = field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    block_table: list[int] = field(default_factory=list)
    num_cached_tokens: int = 0
    num_draft_cached_tokens: int = 0
    num_preemptions: int = 0
    finish_reason: FinishReason | None = None
    error: str = ""
    sent_text: str = ""  # text already handed to the caller in StepOutputs
    stop_text: str | None = None  # delivered text when a stop string ended the request

    def __post_init__(self) -> None:
        if not self.token_ids:
            self.token_ids = list(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_generated(self) -> int:
        return len(self.token_ids) - len(self.prompt_token_ids)

    @property
    def generated_ids(self) -> list[int]:
        return self.token_ids[len(self.prompt_token_ids) :]

    @property
    def num_uncached_tokens(self) -> int:
        return len(self.token_ids) - self.num_cached_tokens

    @property
    def num_prefill_tokens(self) -> int:
        """Uncached tokens a prefill chunk may take now.

        A fresh prompt prefills all its tokens (the last one's logits give the first output
        token). A sequence recomputed after preemption prefills all but its newest token, which the
        next decode step feeds: it then consumes exactly the random draws it would have consumed
        without preemption, so its output does not change.
        """
        end = self.num_tokens if self.num_generated == 0 else self.num_tokens - 1
        return max(0, end - self.num_cached_tokens)

    @property
    def is_decoding(self) -> bool:
        """Every token but the newest is cached: the next pass yields the next token."""
        return len(self.token_ids) - self.num_cached_tokens == 1

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED
