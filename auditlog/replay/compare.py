"""The verdict of a replay: recorded and replayed tokens compared one by one (pure)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .plan import ReplayPlan

__all__ = ["Divergence", "ReplayResult", "ReplayStatus", "compare", "refused", "unverified"]


class ReplayStatus(enum.StrEnum):
    """Outcome of a replay; ``exit_code`` is the CLI's."""

    IDENTICAL = "identical"  # every token and provenance code reproduced
    DIVERGENT = "divergent"  # the first difference is named
    REFUSED = "refused"  # cannot replay; the reason is given
    UNVERIFIED = "unverified"  # the trail fails verification: nothing was replayed

    @property
    def exit_code(self) -> int:
        """0 identical; 1 divergent or unverified (an integrity failure); 2 cannot replay."""
        return {"identical": 0, "divergent": 1, "refused": 2, "unverified": 1}[self.value]


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """The first generated position where record and replay differ (None: that side ended)."""

    index: int
    recorded_token: int | None
    replayed_token: int | None
    recorded_provenance: str | None
    replayed_provenance: str | None

    def describe(self) -> str:
        def side(token: int | None, prov: str | None) -> str:
            return "end of output" if token is None else f"token {token} ({prov})"

        return (
            f"first divergence at generated token {self.index}: recorded "
            f"{side(self.recorded_token, self.recorded_provenance)}, replayed "
            f"{side(self.replayed_token, self.replayed_provenance)}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """What a replay found for one request."""

    request_id: str
    status: ReplayStatus
    reason: str
    num_recorded: int = 0
    num_replayed: int = 0
    divergence: Divergence | None = None  # the first divergent generated token
    draft_step: int | None = None  # or: the first speculative step whose drafts differ


def refused(request_id: str, reason: str) -> ReplayResult:
    return ReplayResult(request_id=request_id, status=ReplayStatus.REFUSED, reason=reason)


def unverified(request_id: str, reason: str) -> ReplayResult:
    return ReplayResult(
        request_id=request_id,
        status=ReplayStatus.UNVERIFIED,
        reason=f"the trail does not verify, nothing was replayed: {reason}",
    )


def _at(values: Sequence[int] | Sequence[str], i: int) -> int | str | None:
    return values[i] if i < len(values) else None


def _first_draft_difference(
    plan: ReplayPlan, drafts: Sequence[Sequence[int]]
) -> tuple[int, tuple[int, ...] | None, tuple[int, ...] | None] | None:
    """(speculative step j of the request, recorded, replayed) of the first differing draft
    proposals; a request cut short need only be a prefix."""
    replayed = [tuple(d) for d in drafts]
    for j, recorded in enumerate(plan.drafts):
        if j >= len(replayed) or replayed[j] != recorded:
            return j, recorded, replayed[j] if j < len(replayed) else None
    if plan.is_self_ended and len(replayed) > len(plan.drafts):
        return len(plan.drafts), None, replayed[len(plan.drafts)]
    return None


def compare(
    plan: ReplayPlan,
    token_ids: Sequence[int],
    provenance: Sequence[str],
    drafts: Sequence[Sequence[int]] = (),
) -> ReplayResult:
    """Compare the replayed output with the record: tokens and provenance, then the draft
    proposals of each speculative step (rejected ones included, C6).

    A request the engine ended itself (stop, length) must be reproduced exactly, its length
    included. One cut short (abort, interrupted) must be a prefix of the replay.
    """
    num_rec, num_rep = len(plan.token_ids), len(token_ids)
    common = min(num_rec, num_rep)
    first = next(
        (
            i
            for i in range(common)
            if (plan.token_ids[i], plan.provenance[i]) != (token_ids[i], provenance[i])
        ),
        None,
    )
    if first is None and (num_rep < num_rec or (plan.is_self_ended and num_rep != num_rec)):
        first = common
    if first is None:
        draft_diff = _first_draft_difference(plan, drafts)
        if draft_diff is not None:
            step, recorded, replayed = draft_diff
            return ReplayResult(
                request_id=plan.request_id,
                status=ReplayStatus.DIVERGENT,
                reason=(
                    f"draft proposals of the request's speculative step {step} differ: recorded "
                    f"{'none' if recorded is None else list(recorded)}, replayed "
                    f"{'none' if replayed is None else list(replayed)}"
                ),
                draft_step=step,
                num_recorded=num_rec,
                num_replayed=num_rep,
            )
        cut = "" if plan.is_self_ended else f" (the record stops early: {plan.finish_reason})"
        return ReplayResult(
            request_id=plan.request_id,
            status=ReplayStatus.IDENTICAL,
            reason=(
                f"all {num_rec} generated tokens, their provenance and "
                f"{len(plan.drafts)} draft proposals reproduced{cut}"
            ),
            num_recorded=num_rec,
            num_replayed=num_rep,
        )
    rec_tok, rep_tok = _at(plan.token_ids, first), _at(token_ids, first)
    rec_prov, rep_prov = _at(plan.provenance, first), _at(provenance, first)
    divergence = Divergence(
        index=first,
        recorded_token=rec_tok if isinstance(rec_tok, int) else None,
        replayed_token=rep_tok if isinstance(rep_tok, int) else None,
        recorded_provenance=rec_prov if isinstance(rec_prov, str) else None,
        replayed_provenance=rep_prov if isinstance(rep_prov, str) else None,
    )
    return ReplayResult(
        request_id=plan.request_id,
        status=ReplayStatus.DIVERGENT,
        reason=divergence.describe(),
        divergence=divergence,
        num_recorded=num_rec,
        num_replayed=num_rep,
    )
