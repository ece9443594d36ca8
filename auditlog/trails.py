"""Rebuild one request's trail from the store: the auditor's view of a request.

A trail is the request's chain of records (``request.start``, one ``tokens`` record per physical
step it took part in, ``request.end``) read back from the database and decoded: the transcript with
each token's provenance and step, the identity and parameters from the start record, and the
outcome from the end record. Reading does not verify: ``auditlog.verifier`` does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

from auditlog.errors import FormatError, NotFoundError
from auditlog.events import FinishReason, Provenance
from auditlog.ledger import RecordKind
from auditlog.store.schema import logs, payloads, records

__all__ = ["Trail", "TrailRecord", "read_trail"]


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
    token_ids: list[int] = field(default_factory=list)
    provenance: list[Provenance] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    drafts: list[tuple[int, list[int]]] = field(default_factory=list)  # (step, proposals)
    end: dict[str, Any] | None = None

    @property
    def reason(self) -> FinishReason | None:
        return None if self.end is None else FinishReason(self.end["reason"])


def read_trail(conn: Connection, origin: str, request_id: str) -> Trail:
    """Read and decode the trail of ``request_id`` in log ``origin``.

    Raises :class:`NotFoundError` if the log or the request does not exist.
    """
    log_id = conn.execute(select(logs.c.id).where(logs.c.origin == origin)).scalar_one_or_none()
    if log_id is None:
        raise NotFoundError(f"no log {origin!r}")
    rows = conn.execute(
        select(records.c.seq, records.c.body, payloads.c.data)
        .select_from(
            records.outerjoin(
                payloads,
                (payloads.c.log_id == records.c.log_id) & (payloads.c.seq == records.c.seq),
            )
        )
        .where(records.c.log_id == log_id, records.c.request_id == request_id)
        .order_by(records.c.req_seq)
    ).all()
    if not rows:
        raise NotFoundError(f"no request {request_id!r} in log {origin!r}")
    trail = Trail(origin=origin, request_id=request_id, records=[])
    for seq, body, data in rows:
        try:
            header = orjson.loads(body)
            if type(header) is not dict:
                raise TypeError("not an object")
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise FormatError(
                f"record {seq} of log {origin!r} is not a JSON header: {exc}"
            ) from exc
        record = TrailRecord(seq=seq, body=bytes(body), header=header, payload=_bytes(data))
        trail.records.append(record)
        kind = header["kind"]
        if kind == RecordKind.REQUEST_START:
            trail.start = header
            trail.tenant = header.get("tenant")
            content = record.payload_json() or {}
            trail.prompt_text = content.get("prompt_text")
            trail.prompt_token_ids = list(content.get("prompt_token_ids", []))
        elif kind == RecordKind.TOKENS:
            content = record.payload_json() or {}
            ids = content.get("token_ids", [])
            trail.token_ids.extend(ids)
            trail.provenance.extend(Provenance(p) for p in header["prov"])
            trail.steps.extend([header["step"]] * len(ids))
            if content.get("drafts"):
                trail.drafts.append((header["step"], list(content["drafts"])))
        elif kind == RecordKind.REQUEST_END:
            trail.end = header
    return trail


def _bytes(data: bytes | memoryview | None) -> bytes | None:
    return None if data is None else bytes(data)
