"""Rebuild one request's trail from the store: the auditor's view of a request.

A trail is the request's chain of records (``request.start``, one ``tokens`` record per physical
step it took part in, ``request.end``) read back from the database and decoded: the transcript with
each token's provenance and step (decoded by ``auditlog.bundle.transcript``), the identity and
parameters from the start record, and the outcome from the end record. Reading checks the header
format only; ``auditlog.verifier`` verifies.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from auditlog.bundle.transcript import build_transcript
from auditlog.errors import KeyUnavailableError, NotFoundError
from auditlog.events import FinishReason, Provenance
from auditlog.ledger import RecordKind, parse_header
from auditlog.store import erasure_bodies, get_log_id, read_data_key, read_request

if TYPE_CHECKING:
    from auditlog.crypto import KeyProvider

__all__ = ["Content", "Trail", "TrailRecord", "content_note", "read_trail", "reader_payloads"]


class Content(enum.StrEnum):
    """Whether a trail's payloads could be read (C16)."""

    PLAIN = "plain"  # recorded unsealed
    DECRYPTED = "decrypted"  # sealed, opened with the tenant's KEK
    UNAVAILABLE = "unavailable"  # sealed, and the reader holds no KEK of the tenant
    ERASED = "erased"  # sealed, and its data key was destroyed by an erasure record
    MISSING = "missing"  # sealed, and its data key is gone with no erasure record (tampering)


@dataclass(frozen=True, slots=True)
class TrailRecord:
    """One stored record of a trail: its index, header bytes, decoded header and payload."""

    seq: int
    body: bytes
    header: dict[str, Any]
    payload: bytes | None

    def payload_json(self) -> Any:
        return None if self.payload is None else orjson.loads(self.payload)


@dataclass(slots=True)
class Trail:
    """A request's decoded trail (see module docstring)."""

    origin: str
    request_id: str
    records: list[TrailRecord]
    tenant: str | None = None
    start: dict[str, Any] = field(default_factory=dict)
    prompt_text: str | None = None
    prompt_token_ids: list[int] = field(default_factory=list)
    token_ids: list[int | None] = field(default_factory=list)  # None: payload unreadable
    provenance: list[Provenance] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    drafts: list[tuple[int, list[int]]] = field(default_factory=list)  # (step, proposals)
    end: dict[str, Any] | None = None
    content: Content = Content.PLAIN
    erasure: tuple[str, int, str] | None = None  # (log, seq, reason) of the erasure record

    @property
    def content_note(self) -> str:
        """What a reader shows in place of unreadable content."""
        return content_note(self.content, self.erasure)

    @property
    def reason(self) -> FinishReason | None:
        return None if self.end is None else FinishReason(self.end["reason"])


def content_note(content: Content, erasure: tuple[str, int, str] | None) -> str:
    """What a reader shows in place of content it cannot show ("" when it shows it)."""
    if erasure is not None:
        return f"erased (record {erasure[1]} of {erasure[0]}, {erasure[2]})"
    if content is Content.MISSING:
        return "data key missing with no erasure record: run auditlog verify"
    if content is Content.UNAVAILABLE:
        return "encrypted: unavailable without the tenant's key"
    return ""


def read_trail(
    conn: Connection, origin: str, request_id: str, *, keys: KeyProvider | None = None
) -> Trail:
    """Read and decode the trail of ``request_id`` in log ``origin``; sealed payloads are opened
    with ``keys`` when it holds the tenant's KEK, else shown as unavailable (or erased).

    Raises :class:`NotFoundError` if the log or the request does not exist.
    """
    log_id = get_log_id(conn, origin)  # NotFoundError for an unknown log
    stored = read_request(conn, log_id, request_id)
    if not stored:
        raise NotFoundError(f"no request {request_id!r} in log {origin!r}")
    trail_records = [
        # parse_header raises FormatError naming what is wrong with the bytes
        TrailRecord(seq=r.seq, body=r.body, header=parse_header(r.body), payload=r.payload)
        for r in stored
    ]
    content, erasure, payloads = reader_payloads(
        conn, origin, [(r.header, r.seq, r.payload) for r in trail_records], keys
    )
    # One decoder of transcripts for the whole project: the bundle's (pure) one.
    transcript = build_transcript(
        request_id, [(r.header, p) for r, p in zip(trail_records, payloads, strict=True)]
    )
    by_kind = {r.header["kind"]: r.header for r in trail_records}
    return Trail(
        origin=origin,
        request_id=request_id,
        records=trail_records,
        tenant=transcript.tenant,
        start=by_kind.get(RecordKind.REQUEST_START.value, {}),
        prompt_text=transcript.prompt_text,
        prompt_token_ids=transcript.prompt_token_ids or [],
        token_ids=[t.token_id for t in transcript.tokens],
        provenance=[Provenance(t.provenance) for t in transcript.tokens],
        steps=[t.step for t in transcript.tokens],
        drafts=[(d.step, list(d.token_ids)) for d in transcript.drafts],
        end=by_kind.get(RecordKind.REQUEST_END.value),
        content=content,
        erasure=erasure,
    )


def reader_payloads(
    conn: Connection,
    origin: str,
    chain: list[tuple[dict[str, Any] | None, int, bytes | None]],
    keys: KeyProvider | None,
) -> tuple[Content, tuple[str, int, str] | None, list[bytes | None]]:
    """What a reader may see of a trail's payloads: ``chain`` is (header or None, seq, stored
    payload) in chain order. Unsealed payloads come back as stored; sealed ones opened with
    ``keys`` when it holds the tenant's KEK, else None (unavailable, erased or missing)."""
    from auditlog.crypto import open_payload

    stored = [p for _, _, p in chain]
    first = chain[0][0] if chain else None
    if first is None or "enc" not in first:
        return Content.PLAIN, None, stored
    request_id = first["request_id"]
    key = read_data_key(conn, get_log_id(conn, origin), request_id)
    hidden: list[bytes | None] = [None] * len(chain)
    if key is None:
        for log, seq, body in erasure_bodies(conn):
            h = parse_header(body)
            if {"log": origin, "request_id": request_id} in h["erased"]:
                return Content.ERASED, (log, seq, h["reason"]), hidden
        return Content.MISSING, None, hidden
    if keys is None:
        return Content.UNAVAILABLE, None, hidden
    try:
        opened = [
            None if p is None else open_payload(keys, key, log=origin, seq=seq, data=p)
            for _, seq, p in chain
        ]
    except KeyUnavailableError:
        return Content.UNAVAILABLE, None, hidden
    return Content.DECRYPTED, None, opened
