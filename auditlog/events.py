"""The engine -> recorder contract (docs/DESIGN.md section 4).

Frozen dataclasses with no dependencies, so that any engine (ours, vLLM, HF transformers) can
produce them. Times are integer nanoseconds since the Unix epoch (UTC), from ``time.time_ns``.

``BatchStep`` is one physical forward step, exactly as the engine produced it: ``token_ids[i]`` is
tagged by ``request_ids[i]`` and ``provenance[i]``. Tokens of one request appear in the order the
request received them; tokens of different requests may interleave in any order.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditlog.errors import FormatError

__all__ = [
    "BatchStep",
    "Event",
    "FinishReason",
    "ModelRef",
    "Provenance",
    "RequestFinished",
    "RequestStarted",
]


class Provenance(enum.StrEnum):
    """How a generated token came to be (C6)."""

    TARGET = "target"  # plain decode step of the target model
    DRAFT_ACCEPTED = "draft_accepted"  # proposed by the draft, accepted by rejection sampling
    TARGET_RECOVERED = "target_recovered"  # resampled from norm(max(0, p - q)) after a rejection
    BONUS = "bonus"  # sampled from the target after all k drafts were accepted


class FinishReason(enum.StrEnum):
    """Outcome of a request (C1)."""

    STOP = "stop"  # stop token or stop string
    LENGTH = "length"  # max_tokens or context length reached
    ABORT = "abort"  # cancelled by the caller (for instance a client disconnect)
    ERROR = "error"  # the engine failed this request
    INTERRUPTED = "interrupted"  # written by crash recovery for a chain left open


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRef:
    """Identity of a model (C4): name plus SHA-256 digests of its weights and tokenizer."""

    name: str
    weights_sha256: str
    tokenizer_sha256: str
    architecture: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestStarted:
    """A request was admitted. ``params`` holds every sampling parameter including the seed (C5).

    ``params`` values must be JSON integers, strings, booleans, null, lists or dicts of those
    (no floats: write probabilities and temperatures as decimal strings).
    """

    request_id: str
    tenant: str
    principal: str
    prompt_token_ids: tuple[int, ...]
    prompt_text: str
    params: Mapping[str, Any]
    target: ModelRef
    draft: ModelRef | None
    ts: int
    engine: str = ""
    client: str = ""  # the API key id or service that called (C3)
    # numerics a replay needs (docs/REPLAY.md); None: the engine records none (not replayable)
    replay: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStep:
    """One physical forward step of the engine (the interleaved batch output).

    ``drafts`` maps request id -> every token the draft proposed for it in this step (accepted and
    rejected). ``num_target_passes`` counts target forward passes of this step (1 normally).
    """

    step_id: int
    ts: int
    token_ids: tuple[int, ...]
    request_ids: tuple[str, ...]
    provenance: tuple[Provenance, ...]
    drafts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    num_target_passes: int = 1

    def __post_init__(self) -> None:
        n = len(self.token_ids)
        if len(self.request_ids) != n or len(self.provenance) != n:
            raise FormatError(
                "BatchStep tags do not line up: "
                f"{n} token_ids, {len(self.request_ids)} request_ids, "
                f"{len(self.provenance)} provenance codes"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFinished:
    """A request ended. ``n_generated`` tokens were produced, ``n_delivered`` reached the caller."""

    request_id: str
    reason: FinishReason
    n_generated: int
    n_delivered: int
    ts: int
    error: str = ""


Event = RequestStarted | BatchStep | RequestFinished
