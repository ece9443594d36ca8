"""The trail page's view of a :class:`~auditlog.api.schemas.TrailPublic` (pure; no I/O).

Every token gets its provenance (C6) as a CSS class *and* a letter, so that the legend does not
rely on colour alone, plus what an auditor asks about it: position, step, record, and the draft
tokens proposed in its step with how many of them were accepted and rejected.

Content the page cannot show (C16) is told apart from the API's trail model alone
(:func:`content_view`): erased by a named erasure record, sealed without the tenant's key here, or
missing with no erasure record to account for it, which is an integrity problem, never shown as an
erasure (the API's verdict fails it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from ..schemas import TrailErasurePublic, TrailPublic, WitnessStatePublic

__all__ = [
    "PROVENANCES",
    "ContentView",
    "ProvenanceStyle",
    "TokenView",
    "VerdictView",
    "content_view",
    "token_views",
    "verdict",
]


@dataclass(frozen=True, slots=True)
class ProvenanceStyle:
    code: str  # the provenance code of the record (``prov``)
    letter: str  # shown on every token
    label: str
    description: str


#: The four provenance codes in legend order.
PROVENANCES = (
    ProvenanceStyle("target", "T", "target", "plain decode step of the target model"),
    ProvenanceStyle(
        "draft_accepted", "D", "draft accepted", "proposed by the draft, accepted by the target"
    ),
    ProvenanceStyle(
        "target_recovered", "R", "target recovered", "resampled by the target after a rejection"
    ),
    ProvenanceStyle("bonus", "B", "bonus", "sampled from the target after all drafts passed"),
)
_BY_CODE = {p.code: p for p in PROVENANCES}
_UNKNOWN = ProvenanceStyle("unknown", "?", "unknown", "provenance code not known to the console")


@dataclass(frozen=True, slots=True)
class TokenView:
    index: int
    token_id: int | None  # None: the payload is erased or unreadable
    style: ProvenanceStyle
    step: int
    seq: int
    ts: int
    drafts_proposed: tuple[int, ...]
    num_drafts_accepted: int

    @property
    def num_drafts_rejected(self) -> int:
        return len(self.drafts_proposed) - self.num_drafts_accepted


def token_views(trail: TrailPublic) -> list[TokenView]:
    """The trail's tokens in output order with their step's draft proposals."""
    proposed = {d.step: tuple(d.token_ids) for d in trail.drafts}
    accepted = Counter(t.step for t in trail.tokens if t.provenance == "draft_accepted")
    return [
        TokenView(
            index=t.index,
            token_id=t.token_id,
            style=_BY_CODE.get(t.provenance, _UNKNOWN),
            step=t.step,
            seq=t.seq,
            ts=t.ts,
            drafts_proposed=proposed.get(t.step, ()),
            num_drafts_accepted=accepted[t.step],
        )
        for t in trail.tokens
    ]


@dataclass(frozen=True, slots=True)
class ContentView:
    """Why content is not shown, if it is not: ``shown`` (all of it readable), ``erased`` (by
    ``erasure``, a proven record), ``unproven`` (an erasure record names the request but is not
    proven against a checkpoint of a trusted key), ``sealed`` (no KEK of the tenant here) or
    ``integrity`` (a payload or data key is gone and no erasure record names the request)."""

    state: Literal["shown", "erased", "unproven", "sealed", "integrity"]
    erasure: TrailErasurePublic | None
    prompt_hidden: bool  # the request.start payload (the prompt) is among those not shown
    num_hidden: int  # payloads not shown
    note: str  # the API's ``content_note``


def content_view(trail: TrailPublic) -> ContentView:
    """The trail's content state, read from the API's trail model (never re-derived)."""
    start = next((r.seq for r in trail.records if r.kind == "request.start"), None)
    hidden = trail.unreadable_payloads
    state: Literal["shown", "erased", "unproven", "sealed", "integrity"] = "shown"
    if trail.erasure is not None:
        state = "erased"
    elif trail.content == "erasure-unproven":
        state = "unproven"
    elif trail.content == "unavailable":
        state = "sealed"
    elif trail.content in ("missing", "key-mismatch", "erasure-incomplete") or hidden:
        state = "integrity"
    return ContentView(
        state=state,
        erasure=trail.erasure,
        prompt_hidden=start in hidden,
        num_hidden=len(hidden),
        note=trail.content_note,
    )


#: CSS class of each verdict status (the status word is always printed as well).
_TONE = {"anchored": "ok", "pending": "pending", "failed": "failed"}
_KNOWN_FIELDS = ("status", "message", "trust", "checkpoint_size", "witnesses")


@dataclass(frozen=True, slots=True)
class VerdictView:
    status: str
    tone: str
    message: str
    trust: str | None
    checkpoint_size: int | None
    log: str
    witnesses: WitnessStatePublic | None  # the checkpoint's cosignatures, policy, trusted time
    extra: list[tuple[str, Any]]  # further fields of the API's verdict


def verdict(trail: TrailPublic) -> VerdictView:
    """The verdict exactly as the API gives it, every field of it shown (read by name from the
    API's model, so that fields the API adds later appear under ``extra``)."""
    fields: dict[str, Any] = trail.verification.model_dump()
    status = str(fields.get("status", "unknown"))
    trust, size = fields.get("trust"), fields.get("checkpoint_size")
    return VerdictView(
        status=status,
        tone=_TONE.get(status, "pending"),
        message=str(fields.get("message", "")),
        trust=trust if isinstance(trust, str) else None,
        checkpoint_size=size if type(size) is int else None,
        log=trail.log,
        witnesses=trail.verification.witnesses,
        extra=[(k, v) for k, v in fields.items() if k not in _KNOWN_FIELDS and v is not None],
    )
