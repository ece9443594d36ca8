"""What a replay needs, read from a verified trail alone (pure: no I/O, no torch).

:func:`plan_replay` takes an evidence bundle that ``auditlog.bundle.verify`` has verified and its
report, and returns the :class:`ReplayPlan`: prompt token ids, sampling parameters with the seed,
target and draft model references, the replay envelope (docs/REPLAY.md), and the recorded tokens
with their provenance and the draft proposals of each speculative step. It raises
:class:`~auditlog.errors.ReplayRefusedError`, with the reason, when the trail cannot be replayed:
no envelope, numerics that are not batch-invariant, no seed, erased or unreadable content, or an
outcome with nothing to replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditlog.bundle.format import Bundle
from auditlog.bundle.verify import BundleReport
from auditlog.errors import FormatError, ReplayRefusedError
from auditlog.ledger import parse_header

__all__ = ["ENVELOPE_FIELDS", "ModelIdentity", "ReplayPlan", "check_envelope", "plan_replay"]

#: Members a replay envelope (``request.start`` field ``replay``) MUST have, with their types.
ENVELOPE_FIELDS: Mapping[str, type] = {
    "v": int,
    "engine": str,
    "dtype": str,
    "batch_invariant": bool,
    "kernels": str,
    "device": str,
    "speculative_tokens": int,
    "max_model_len": int,
}
#: Envelope layout versions this replayer understands.
_ENVELOPE_VERSIONS = frozenset({1})
#: Outcomes where the engine stopped by itself: the replay must end at the same token.
_SELF_ENDED = frozenset({"stop", "length"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelIdentity:
    """A model as the trail names it (C4): name and SHA-256 digests of weights and tokenizer."""

    name: str
    weights_sha256: str
    tokenizer_sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayPlan:
    """Everything needed to re-run one request and judge the result (module docstring)."""

    log: str
    request_id: str
    tenant: str
    principal: str
    prompt_token_ids: tuple[int, ...]
    params: Mapping[str, Any]  # the recorded ``params`` (SamplingParams.to_record form)
    target: ModelIdentity
    draft: ModelIdentity | None
    envelope: Mapping[str, Any]
    token_ids: tuple[int, ...]
    provenance: tuple[str, ...]
    drafts: tuple[tuple[int, ...], ...]  # draft proposals of each speculative step, in order
    finish_reason: str | None

    @property
    def is_self_ended(self) -> bool:
        """The engine ended the request (stop or length): the token count must match too."""
        return self.finish_reason in _SELF_ENDED


def _identity(ref: object, what: str) -> ModelIdentity:
    if not isinstance(ref, dict):
        raise ReplayRefusedError(f"request.start names no {what} model")
    name, weights, tokenizer = (ref.get(k) for k in ("name", "weights_sha256", "tokenizer_sha256"))
    if not (isinstance(name, str) and isinstance(weights, str) and isinstance(tokenizer, str)):
        raise ReplayRefusedError(f"{what} model reference lacks a name or a digest: {ref!r}")
    return ModelIdentity(name=name, weights_sha256=weights, tokenizer_sha256=tokenizer)


def check_envelope(envelope: object) -> Mapping[str, Any]:
    """The recorded envelope if a replay can be meaningful; else ReplayRefusedError (why)."""
    if envelope is None:
        raise ReplayRefusedError(
            "request.start records no replay envelope: the numerics it ran with are unknown"
        )
    if not isinstance(envelope, dict):
        raise ReplayRefusedError(f"replay envelope is not an object: {envelope!r}")
    for name, kind in ENVELOPE_FIELDS.items():
        value = envelope.get(name)
        if type(value) is not kind:
            raise ReplayRefusedError(
                f"replay envelope field {name!r}: expected {kind.__name__}, got {value!r}"
            )
    if envelope["v"] not in _ENVELOPE_VERSIONS:
        raise ReplayRefusedError(f"replay envelope version {envelope['v']} is not supported")
    if not envelope["batch_invariant"]:
        raise ReplayRefusedError(
            f"recorded numerics are not batch-invariant (dtype {envelope['dtype']}, kernels "
            f"{envelope['kernels']!r}): the other requests of its batch may have changed its "
            "tokens, so a replay alone proves nothing"
        )
    return envelope


def plan_replay(bundle: Bundle, report: BundleReport) -> ReplayPlan:
    """The plan of a bundle that ``verify_decoded`` returned ``report`` for (same bundle)."""
    if (report.log, report.request_id) != (bundle.log, bundle.request_id):
        raise ReplayRefusedError("the verification report is not this bundle's")
    try:
        start = parse_header(bundle.records[0].body)
    except FormatError as exc:  # unreachable after verification
        raise ReplayRefusedError(f"request.start header: {exc}") from None
    transcript = report.transcript
    if transcript.finish_reason == "error":
        raise ReplayRefusedError("the request ended with an error: no tokens to replay")
    envelope = check_envelope(start.get("replay"))
    params = start.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("seed"), str):
        raise ReplayRefusedError("request.start records no seed: sampling cannot be replayed")
    if transcript.prompt_token_ids is None:
        raise ReplayRefusedError(
            f"prompt content of seq {bundle.records[0].seq} is erased or unreadable"
        )
    token_ids: list[int] = []
    for token in transcript.tokens:
        if token.token_id is None:
            raise ReplayRefusedError(
                f"token {token.index} (tokens record seq {token.seq}) is erased or unreadable"
            )
        token_ids.append(token.token_id)
    draft = start.get("draft")
    return ReplayPlan(
        log=bundle.log,
        request_id=bundle.request_id,
        tenant=report.tenant,
        principal=str(start.get("principal", "")),
        prompt_token_ids=tuple(transcript.prompt_token_ids),
        params=params,
        target=_identity(start.get("target"), "target"),
        draft=None if draft is None else _identity(draft, "draft"),
        envelope=envelope,
        token_ids=tuple(token_ids),
        provenance=tuple(t.provenance for t in transcript.tokens),
        drafts=tuple(d.token_ids for d in transcript.drafts),
        finish_reason=transcript.finish_reason,
    )
