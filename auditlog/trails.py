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

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from auditlog.bundle.transcript import build_transcript
from auditlog.errors import FormatError, KeyUnavailableError, NoCheckpointError, NotFoundError
from auditlog.events import FinishReason, Provenance
from auditlog.ledger import RecordKind, Verifier, parse_header
from auditlog.ledger.erasure_ref import ErasureRef
from auditlog.ledger.shred import key_matches_start
from auditlog.store import (
    UnprovenAdminLogError,
    erasure_bodies,
    get_log_id,
    read_data_key,
    reader_admin_logs,
)
from auditlog.store.trail_reads import find_trail

if TYPE_CHECKING:
    from auditlog.crypto import KeyProvider

__all__ = [
    "Content",
    "ErasureRef",
    "Trail",
    "TrailRecord",
    "content_note",
    "proven_erasure",
    "read_trail",
    "reader_payloads",
]


class Content(enum.StrEnum):
    """Whether a trail's payloads could be read (C16)."""

    PLAIN = "plain"  # recorded unsealed
    DECRYPTED = "decrypted"  # sealed, opened with the tenant's KEK
    UNAVAILABLE = "unavailable"  # sealed, and the reader holds no KEK of the tenant
    ERASED = "erased"  # sealed, and its data key was destroyed by an erasure record
    MISSING = "missing"  # sealed, and its data key is gone with no erasure record (tampering)
    UNPROVEN = "erasure-unproven"  # key gone; an erasure record names it, but is not proven
    MISMATCH = "key-mismatch"  # a data key is stored, but not the one the start committed to
    INCOMPLETE = "erasure-incomplete"  # a key is stored, yet a proven erasure (may) name it


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


def content_note(content: Content, erasure: ErasureRef | None) -> str:
    """What a reader shows in place of content it cannot show ("" when it shows it)."""
    if erasure is not None:
        return f"erased (record {erasure.seq} of {erasure.log}, {erasure.reason})"
    if content is Content.MISSING:
        return "data key missing with no erasure record: run auditlog verify"
    if content is Content.MISMATCH:
        return "the stored data key is not the one the request committed to: run auditlog verify"
    if content is Content.INCOMPLETE:
        return (
            "a data key is stored for the request, yet a proven erasure record names it (put "
            "back after the erasure), or an administrative log does not match its signed "
            "checkpoint: not shown; run auditlog verify"
        )
    if content is Content.UNPROVEN:
        return (
            "data key missing; an erasure record names the request, but no checkpoint signed by "
            "a trusted key covers it: not shown as erased; run auditlog verify"
        )
    if content is Content.UNAVAILABLE:
        return "encrypted: unavailable without the tenant's key"
    return ""


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


def reader_payloads(
    conn: Connection,
    origin: str,
    chain: list[tuple[dict[str, Any] | None, int, bytes | None]],
    keys: KeyProvider | None,
    trusted: Sequence[Verifier] = (),
    *,
    names: Sequence[str] = (),
) -> tuple[Content, ErasureRef | None, list[bytes | None]]:
    """What a reader may see of a trail's payloads: ``chain`` is (header or None, seq, stored
    payload) in chain order. Unsealed payloads come back as stored; sealed ones opened with
    ``keys`` when it holds the tenant's KEK, else None (unavailable, erased or missing).

    A missing data key counts as erased only by an ``erasure`` record proven against its log's
    newest checkpoint signed by a key of ``trusted`` (:func:`proven_erasure`); a stored key that
    such a record names (a copy put back after the erasure) opens nothing. ``names``: the
    administrative logs the reader knows by name (its administrative keys'), read even when
    their unsigned ``kind`` cells were edited."""
    from auditlog.crypto import open_payload

    stored = [p for _, _, p in chain]
    first = chain[0][0] if chain else None
    if first is None or "enc" not in first:
        return Content.PLAIN, None, stored
    request_id = first["request_id"]
    key = read_data_key(conn, get_log_id(conn, origin), request_id)
    hidden: list[bytes | None] = [None] * len(chain)
    if key is None:
        content, erasure = proven_erasure(conn, origin, request_id, trusted, names=names)
        return content, erasure, hidden
    if not key_matches_start(first, key):  # verify fails it (key.mismatch)
        return Content.MISMATCH, None, hidden
    if _erasure_may_name(conn, origin, request_id, trusted, names):
        return Content.INCOMPLETE, None, hidden  # verify fails it
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


def _erasure_may_name(
    conn: Connection,
    origin: str,
    request_id: str,
    trusted: Sequence[Verifier],
    names: Sequence[str],
) -> bool:
    """Whether a stored data key of ``request_id`` must stay closed: a proven erasure record
    names it (the key was put back after it), or an administrative log does not match its
    signed checkpoint (it may hide one): fail-safe, as erased content is never to be shown."""
    try:
        return _proven_erasure_record(conn, origin, request_id, trusted, names) is not None
    except UnprovenAdminLogError:
        return True


def _proven_erasure_record(
    conn: Connection,
    origin: str,
    request_id: str,
    trusted: Sequence[Verifier],
    names: Sequence[str],
) -> ErasureRef | None:
    """The ``erasure`` record naming the request in a proven administrative log, if any; raises
    :class:`UnprovenAdminLogError` when a log cannot be proven."""
    target = {"log": origin, "request_id": request_id}
    for log in reader_admin_logs(conn, trusted, names=names):
        for record in log.records:
            h = parse_header(record.body)  # the signed kind, not the ``kind`` column
            if h["kind"] == RecordKind.ERASURE.value and target in h.get("erased", []):
                return ErasureRef.of(log.bound.origin, record.seq, h)
    return None


def proven_erasure(
    conn: Connection,
    origin: str,
    request_id: str,
    trusted: Sequence[Verifier],
    *,
    names: Sequence[str] = (),
) -> tuple[Content, ErasureRef | None]:
    """Why the data key of ``request_id`` (log ``origin``) is gone, as a reader may say it (C16):
    ``ERASED`` with the ``erasure`` record that names it when that record lies in an
    administrative log proven against its newest checkpoint signed by a key of ``trusted`` (with
    no key given, by a key stored for the log, as for the trail's own bound); ``UNPROVEN`` when
    only an unproven record names it (a row a database writer could have inserted, or one no
    checkpoint covers yet); ``MISSING`` when nothing does."""
    try:
        erasure = _proven_erasure_record(conn, origin, request_id, trusted, names)
    except UnprovenAdminLogError:
        erasure = None  # an administrative log that does not match its checkpoint proves nothing
    if erasure is not None:
        return Content.ERASED, erasure
    target = {"log": origin, "request_id": request_id}
    for _, _, body in erasure_bodies(conn):
        try:
            named = parse_header(body).get("erased", [])
        except FormatError:
            continue  # an unreadable row names nothing (verify reports it)
        if target in named:
            return Content.UNPROVEN, None
    return Content.MISSING, None
