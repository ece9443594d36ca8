"""Rebuild one request's trail from the store: the auditor's view of a request.

A trail is the request's chain of records (``request.start``, one ``tokens`` record per physical
step it took part in, ``request.end``) read back from the database and decoded: the transcript with
each token's provenance and step (decoded by ``auditlog.bundle.transcript``), the identity and
parameters from the start record, and the outcome from the end record. Reading checks the header
format only; ``auditlog.verifier`` verifies. Records are read only through the store's one
bounded read path (``auditlog.store.trail_reads``): what the log's newest signed checkpoint
covers, nothing beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from auditlog.bundle.transcript import build_transcript
from auditlog.errors import NoCheckpointError, NotFoundError
from auditlog.events import FinishReason, Provenance
from auditlog.ledger import RecordKind, Verifier, parse_header
from auditlog.ledger.erasure_ref import ErasureRef
from auditlog.store import get_log_id
from auditlog.store.trail_reads import find_trail
from auditlog.trail_content import Content, content_note, reader_payloads

if TYPE_CHECKING:
    from auditlog.crypto import KeyProvider

#: ``Content`` and ``ErasureRef`` are the types of ``Trail.content`` and ``Trail.erasure``.
__all__ = ["Content", "ErasureRef", "Trail", "TrailRecord", "read_trail"]


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
    erasure: ErasureRef | None = None  # the erasure record that destroyed the content
    checkpoint_size: int = 0  # the signed checkpoint that bounds what was read
    is_trusted: bool = False  # that checkpoint is signed by a key the reader passed

    @property
    def content_note(self) -> str:
        """What a reader shows in place of unreadable content."""
        return content_note(self.content, self.erasure)

    @property
    def reason(self) -> FinishReason | None:
        return None if self.end is None else FinishReason(self.end["reason"])


def read_trail(
    conn: Connection,
    origin: str,
    request_id: str,
    *,
    trusted: Sequence[Verifier] = (),
    keys: KeyProvider | None = None,
    admin: Sequence[Verifier] = (),
) -> Trail:
    """Read and decode the trail of ``request_id`` in log ``origin``, through the store's one
    bounded read path: only records covered by the log's newest checkpoint signed by a key of
    ``trusted`` (when given; else by a key stored for the log, and ``Trail.is_trusted`` is False)
    are read. Records after that checkpoint are not shown. Sealed payloads are opened with
    ``keys`` when it holds the tenant's KEK, else shown as unavailable (or erased: only by an
    erasure record proven under a key of ``admin`` or ``trusted``; the administrative logs of
    ``admin`` are found by their keys' names, even when their unsigned ``kind`` cells were
    edited, as the auditor API finds them).

    Raises :class:`NotFoundError` if the log or the request does not exist, its subclass
    :class:`NoCheckpointError` if no such checkpoint covers the request's start yet.
    """
    get_log_id(conn, origin)  # NotFoundError naming an unknown log
    try:
        found = find_trail(conn, request_id, tenants=None, trusted=trusted, origin=origin)
    except NoCheckpointError:
        raise
    except NotFoundError:
        raise NotFoundError(f"no request {request_id!r} in log {origin!r}") from None
    stored = found.records
    trail_records = [
        # parse_header raises FormatError naming what is wrong with the bytes
        TrailRecord(seq=r.seq, body=r.body, header=parse_header(r.body), payload=r.payload)
        for r in stored
    ]
    content, erasure, payloads = reader_payloads(
        conn,
        origin,
        [(r.header, r.seq, r.payload) for r in trail_records],
        keys,
        [*admin, *trusted],
        names=[v.name for v in admin],
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
        checkpoint_size=found.bound.checkpoint.size,
        is_trusted=found.bound.trusted,
    )
