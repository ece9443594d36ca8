"""A request's trail as the API shows it: transcript, raw records and a verification verdict."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from auditlog.bundle.export import build_bundle
from auditlog.bundle.transcript import Transcript, build_transcript
from auditlog.bundle.verify import verify_decoded
from auditlog.errors import FormatError, VerificationError
from auditlog.ledger import Verifier, parse_header
from auditlog.ledger.erasure_ref import ErasureRef
from auditlog.store.trail_reads import StoredTrail, signing_keys_of
from auditlog.trail_content import Content, content_note, reader_payloads
from auditlog.witnesses.state import OutsideAnchors

if TYPE_CHECKING:
    from auditlog.crypto import KeyProvider

from .anchors import witness_state
from .schemas import (
    DraftPublic,
    RecordPublic,
    TokenPublic,
    TrailErasurePublic,
    TrailPublic,
    VerdictPublic,
)

__all__ = ["trail_public", "verdict"]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _header(body: bytes) -> dict[str, Any] | None:
    try:
        return parse_header(body)
    except FormatError:
        return None


def verdict(
    conn: Connection,
    trail: StoredTrail,
    trusted: Sequence[Verifier],
    extra_keys: Sequence[str],
    outside: OutsideAnchors | None = None,
) -> tuple[VerdictPublic, Transcript | None]:
    """Verify ``trail`` against its bound: the newest signed checkpoint of its log (every record
    of a stored trail lies below it), and that checkpoint's outside anchors against ``outside``
    (witness policy, TSA certificates). Returns the verdict (``VerdictPublic``) and, when the
    trail verifies, its transcript."""
    result, transcript = _ledger_verdict(conn, trail, trusted, extra_keys)
    checkpoint = trail.bound.checkpoint
    state, anchors = witness_state(
        conn, trail.origin, trail.log_id, checkpoint.size, checkpoint.note,
        outside or OutsideAnchors(),
    )  # fmt: skip
    result.witnesses = state
    if result.status == "failed":
        return result, transcript
    if anchors.failed:
        result.status = "failed"
        result.message = (
            f"a witness cosignature or the timestamp of checkpoint {checkpoint.size} does not "
            "verify: edited or moved after it was made"
        )
        return result, None
    shortfall = anchors.shortfall()
    if result.status == "anchored" and shortfall is not None:
        result.status = "pending"
        result.message += f"; not anchored yet: {shortfall}"
    return result, transcript


def _ledger_verdict(
    conn: Connection, trail: StoredTrail, trusted: Sequence[Verifier], extra_keys: Sequence[str]
) -> tuple[VerdictPublic, Transcript | None]:
    checkpoint = trail.bound.checkpoint
    keys = signing_keys_of(conn, trail.log_id, checkpoint.note, extra_keys)
    bundle = build_bundle(conn, trail, checkpoint, keys)
    try:
        report = verify_decoded(
            bundle, trusted if trail.bound.trusted else (), require_complete=False
        )
    except VerificationError as exc:
        return VerdictPublic(
            status="failed", message=str(exc), trust=None, checkpoint_size=checkpoint.size
        ), None
    if not trail.bound.trusted:
        status, message = (
            "pending",
            (
                f"{report.num_records} records verify against checkpoint {checkpoint.size}, but "
                "only under keys stored in the database: not anchored (configure the served logs' "
                "keys in AUDITLOG_API_TRUSTED_KEYS)"
            ),
        )
    elif report.transcript.finish_reason is None:
        status, message = (
            "pending",
            (
                f"{report.num_records} records verify against checkpoint {checkpoint.size}; the "
                "end of the request is not yet covered by a signed checkpoint (still open, or "
                "ended after it): later records are not shown"
            ),
        )
    else:
        status = "anchored"
        message = f"{report.num_records} records verify against checkpoint {checkpoint.size}"
    return VerdictPublic(
        status=status,  # type: ignore[arg-type]
        message=message,
        trust=report.trust.value,
        checkpoint_size=checkpoint.size,
    ), report.transcript


def trail_public(
    conn: Connection,
    trail: StoredTrail,
    trusted: Sequence[Verifier],
    extra_keys: Sequence[str],
    keys: KeyProvider | None = None,
    outside: OutsideAnchors | None = None,
    admin: Sequence[Verifier] = (),
) -> TrailPublic:
    """The ``TrailPublic`` of a stored trail (verified transcript when it verifies); sealed
    payloads are shown decrypted when ``keys`` holds the tenant's KEK (C16), else as
    unavailable, or erased when an erasure record proven under ``admin`` or ``trusted`` names
    the request (C16)."""
    result, transcript = verdict(conn, trail, trusted, extra_keys, outside)
    headers = [_header(r.body) for r in trail.records]
    stored = [
        (h, r.seq, None if r.payload is None else bytes(r.payload))
        for h, r in zip(headers, trail.records, strict=True)
    ]
    content, erasure, opened = reader_payloads(
        conn, trail.origin, stored, keys, [*admin, *trusted], names=[v.name for v in admin]
    )
    _content_verdict(result, content, trail.request_id)
    if content is Content.DECRYPTED:  # verified over the ciphertext; shown decrypted
        transcript = _readable_transcript(trail.request_id, zip(headers, opened, strict=True))
    if transcript is None:
        # Not verified (pending or failed): rebuild from the headers that parse, for display.
        payloads = (r.payload for r in trail.records)
        transcript = _readable_transcript(trail.request_id, zip(headers, payloads, strict=True))
    return _public(trail, headers, transcript, result, content, erasure)


def _content_verdict(result: VerdictPublic, content: Content, request_id: str) -> None:
    """Fail (or leave unproven) ``result`` for what reading the sealed content found."""
    if content is Content.MISSING:
        _fail_missing_key(result, request_id)
    elif content is Content.MISMATCH:
        _fail(
            result,
            f"the stored data key of request {request_id!r} is not the one its "
            "request.start committed to (digest, tenant or KEK id): `auditlog verify` fails "
            "this log (key.mismatch)",
        )
    elif content is Content.INCOMPLETE:
        _fail(
            result,
            f"a data key is stored for request {request_id!r}, yet an erasure record "
            "proven under a trusted key names it (put back after the erasure: `auditlog verify` "
            "fails this log, erasure.incomplete), or an administrative log does not match its "
            "signed checkpoint (it may hide one): its content is not shown",
        )
    elif content is Content.UNPROVEN:
        _unproven_erasure(result, request_id)


def _readable_transcript(
    request_id: str, records: Iterable[tuple[dict[str, Any] | None, Any]]
) -> Transcript:
    """The transcript of the (header, payload) pairs whose header parsed; an empty one when
    they do not make one."""
    chain = [(h, p) for h, p in records if h]
    try:
        return build_transcript(request_id, chain)
    except FormatError:
        return Transcript(request_id=request_id)


def _public(
    trail: StoredTrail,
    headers: list[dict[str, Any] | None],
    transcript: Transcript,
    result: VerdictPublic,
    content: Content,
    erasure: ErasureRef | None,
) -> TrailPublic:
    return TrailPublic(
        request_id=trail.request_id,
        log=trail.origin,
        tenant=transcript.tenant,
        principal=transcript.principal,
        model=transcript.model,
        started_ts=transcript.started_ts,
        finished_ts=transcript.finished_ts,
        finish_reason=transcript.finish_reason,
        n_generated=transcript.n_generated,
        n_delivered=transcript.n_delivered,
        prompt_text=transcript.prompt_text,
        prompt_token_ids=transcript.prompt_token_ids,
        tokens=[
            TokenPublic(
                index=t.index,
                token_id=t.token_id,
                provenance=t.provenance,
                step=t.step,
                seq=t.seq,
                ts=t.ts,
            )
            for t in transcript.tokens
        ],
        drafts=[
            DraftPublic(step=d.step, seq=d.seq, token_ids=list(d.token_ids))
            for d in transcript.drafts
        ],
        unreadable_payloads=transcript.unreadable_payloads,
        records=[
            RecordPublic(
                seq=r.seq,
                kind=r.kind,
                req_seq=r.req_seq,
                ts=r.ts,
                leaf=bytes(r.leaf).hex(),
                body_b64=_b64(bytes(r.body)) or "",
                header=h,
                payload_b64=_b64(None if r.payload is None else bytes(r.payload)),
            )
            for r, h in zip(trail.records, headers, strict=True)
        ],
        verification=result,
        content=content.value,
        content_note=content_note(content, erasure),
        erasure=None
        if erasure is None
        else TrailErasurePublic.model_validate(erasure, from_attributes=True),
    )


def _unproven_erasure(result: VerdictPublic, request_id: str) -> None:
    """A sealed request whose data key is gone and whose erasure record is not proven against a
    checkpoint signed by a trusted key: nothing proves why the content is gone, so the trail is
    not anchored (pending; ``auditlog verify`` decides, and fails a forged erasure record)."""
    if result.status == "anchored":
        result.status = "pending"
    result.message = (
        f"the data key of request {request_id!r} is gone and the erasure record that names it "
        "is not covered by a checkpoint signed by a trusted key (AUDITLOG_API_ADMIN_SIGNING_KEY "
        f"or AUDITLOG_API_TRUSTED_KEYS): not proven erased; run auditlog verify; {result.message}"
    )


def _fail(result: VerdictPublic, why: str) -> None:
    result.status = "failed"
    result.message = f"{why}; {result.message}"


def _fail_missing_key(result: VerdictPublic, request_id: str) -> None:
    """A sealed request whose data key is gone with no erasure record naming it was tampered
    with: ``auditlog verify`` fails it (``key.absent``), and so does the trail's verdict, which
    checks its records and anchors only (its records still verify over the ciphertext)."""
    result.status = "failed"
    result.message = (
        f"the data key of request {request_id!r} is gone and no erasure record names it "
        "(deleted outside an audited erasure): its content is lost, and `auditlog verify` "
        f"fails this log; {result.message}"
    )
