"""What of a trail's content a reader may see (C16), and why not: the :class:`Content` of a
request's payloads, opened with the reader's keys when the request's data key is stored and no
proven erasure names it, and the note a reader shows in place of what it cannot show.

Shared by :func:`auditlog.trails.read_trail` and the API's trail (``auditlog.api.trail``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from auditlog.errors import FormatError, KeyUnavailableError
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

if TYPE_CHECKING:
    from auditlog.crypto import KeyProvider

__all__ = ["Content", "content_note", "proven_erasure", "reader_payloads"]


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
