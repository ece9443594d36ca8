"""Assisted generation steps of transformers -> auditlog events (used by
:class:`~auditlog.integrations.hf_transformers.HFAuditAdapter`).

Provenance per step (batch size 1, C6): the longest prefix equal to the proposals is
``draft_accepted``; the token after it is ``target_recovered`` when a proposal was rejected,
``bonus`` when all were accepted, ``target`` when there were no proposals.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from auditlog.events import BatchStep, Event, Provenance

__all__ = ["step_provenance"]


class _Adapter(Protocol):
    """What a :class:`_StepStreamer` uses of its ``HFAuditAdapter``."""

    sink: Callable[[Event], None]
    _steps: itertools.count[int]

    def _finish(
        self, request_id: str, generated: Sequence[int], eos: Any, *, error: str
    ) -> None: ...


def step_provenance(proposals: Sequence[int], accepted: Sequence[int]) -> list[Provenance]:
    """Provenance of one assisted step's tokens (module docstring)."""
    out: list[Provenance] = []
    for i, token in enumerate(accepted):
        if (
            i < len(proposals)
            and token == proposals[i]
            and all(p is Provenance.DRAFT_ACCEPTED for p in out)
        ):
            out.append(Provenance.DRAFT_ACCEPTED)
        elif not proposals:
            out.append(Provenance.TARGET)
        elif i < len(proposals):
            out.append(Provenance.TARGET_RECOVERED)
        else:
            out.append(Provenance.BONUS)
    return out


class _StepStreamer:
    """A transformers streamer (``put``/``end``) turning each assisted step into a BatchStep."""

    def __init__(self, adapter: _Adapter, request_id: str, proposals: list[list[int]]) -> None:
        self.adapter, self.request_id, self.proposals = adapter, request_id, proposals
        self.generated: list[int] = []
        self._prompt_seen = False
        self._done = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first puts the prompt
            self._prompt_seen = True
            return
        accepted = [int(t) for t in value.reshape(-1).tolist()]
        drafted = self.proposals[-1] if self.proposals else []
        self.proposals.clear()
        provs = step_provenance(drafted, accepted)
        self.generated.extend(accepted)
        self.adapter.sink(
            BatchStep(
                step_id=next(self.adapter._steps), ts=time.time_ns(), token_ids=tuple(accepted),
                request_ids=(self.request_id,) * len(accepted), provenance=tuple(provs),
                drafts={self.request_id: tuple(drafted)} if drafted else {},
            )
        )  # fmt: skip

    def end(self) -> None:
        """Called by generate(); the end record is written by ``finish`` (it knows the EOS)."""

    def finish(self, eos: Sequence[int]) -> None:
        if not self._done:
            self._done = True
            self.adapter._finish(self.request_id, self.generated, eos, error="")

    def fail(self, error: str) -> None:
        if not self._done:
            self._done = True
            self.adapter._finish(self.request_id, self.generated, (), error=error)
