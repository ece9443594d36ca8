"""Records: building them fast (docs/FORMAT.md section 3).

A record is its canonical header bytes (the hashed object) plus an optional stored payload. The
header commits to the payload bytes by their SHA-256 (``payload``), and to the previous record of
the same request by its leaf hash (``prev``): one value is both the chain link and the Merkle leaf.

The format's vocabulary lives in :mod:`auditlog.ledger.record_format`, the header checks in
:mod:`auditlog.ledger.header_checks`, and parsing stored headers strictly in
:mod:`auditlog.ledger.header_parse`; this module re-exports their public names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from auditlog.errors import FormatError
from auditlog.ledger.canonical import canonical_json
from auditlog.ledger.hashes import LEAF_HASH_PREFIX
from auditlog.ledger.header_checks import _bad, _check_header, _is_count
from auditlog.ledger.header_parse import parse_header
from auditlog.ledger.record_format import (
    _DUMPS,
    _KINDS,
    BASE_FIELDS,
    FORMAT_VERSION,
    PROVENANCE_CODES,
    REQUEST_KINDS,
    ZERO_HASH,
    RecordKind,
)

__all__ = [
    "BASE_FIELDS",
    "FORMAT_VERSION",
    "PROVENANCE_CODES",
    "REQUEST_KINDS",
    "ZERO_HASH",
    "Record",
    "RecordKind",
    "build_record",
    "parse_header",
    "payload_bytes",
]

_sha256 = hashlib.sha256
_TS_LIMIT = 10**20  # ts is at most 20 decimal digits


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us per instance on the hot path
class Record:
    """One built record: the indexed copies of header fields, the hashed bytes and the payload."""

    seq: int
    kind: RecordKind
    request_id: str | None
    req_seq: int | None
    ts: int
    tenant: str | None
    body: bytes  # canonical header bytes, the hashed object
    leaf: bytes  # SHA-256(0x00 || body), RFC 9162 2.1.1
    payload: bytes | None  # stored payload bytes, committed to by the header's "payload"


def payload_bytes(obj: Mapping[str, Any], *, trusted: bool = False) -> bytes:
    """Canonical JSON bytes of a payload object (the seam where encryption goes).

    ``trusted=True`` skips the subset walk: the caller MUST pass only ASCII keys, strings and
    integers (the recorder's token payloads, whose ids it type-checked on arrival).
    """
    if trusted:
        try:
            return orjson.dumps(obj, option=_DUMPS)
        except TypeError as exc:
            raise FormatError(f"payload is not canonical JSON: {exc}") from None
    return canonical_json(obj)


def build_record(
    *,
    log: str,
    seq: int,
    kind: RecordKind,
    request_id: str | None,
    req_seq: int | None,
    ts: int,
    prev: str | None,
    payload: bytes | None,
    fields: Mapping[str, Any],
    trusted: bool = False,
) -> Record:
    """Build one record: header bytes, payload digest and leaf hash.

    ``ts`` is integer nanoseconds since the Unix epoch, written into the header as a decimal
    string (it exceeds 2^53). ``fields`` are the kind-specific header fields. Raises
    :class:`FormatError` for a field name that collides with a base field, and for any header
    that :func:`parse_header` would refuse: a built record always verifies.

    ``trusted=True`` is the recorder's hot path for the records it composes itself (``tokens``
    and ``step``): the type checks are skipped, so the caller MUST pass fields of the documented
    types with ASCII keys. The bytes are the same canonical bytes (a property test checks it), and
    the verifier still checks every stored header.
    """
    if trusted:
        record_kind = kind
    else:
        if type(log) is not str or not log:
            raise _bad("log", "a non-empty string", log)
        if not _is_count(seq):
            raise _bad("seq", "a non-negative integer", seq)
        if type(ts) is not int or not 0 <= ts < _TS_LIMIT:
            raise _bad("ts", "integer nanoseconds in [0, 10^20)", ts)
        found = _KINDS.get(kind) if isinstance(kind, str) else None
        if found is None:
            raise _bad("kind", "one of " + ", ".join(sorted(_KINDS)), kind)
        record_kind = found
        if fields and not BASE_FIELDS.isdisjoint(fields):
            clash = sorted(BASE_FIELDS.intersection(fields))
            raise FormatError(f"kind-specific fields collide with base header fields: {clash}")
    header: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "log": log,
        "seq": seq,
        "kind": record_kind.value,
        "request_id": request_id,
        "req_seq": req_seq,
        "ts": str(ts),
        "prev": prev,
        # payload = lowercase hex SHA-256 of the stored payload bytes, or null
        "payload": None if payload is None else _sha256(payload).hexdigest(),
        **fields,
    }
    non_ascii_keys = False if trusted else _check_header(header, record_kind)
    try:
        body = canonical_json(header) if non_ascii_keys else orjson.dumps(header, option=_DUMPS)
    except TypeError as exc:
        raise FormatError(f"record header is not canonical JSON: {exc}") from None
    # leaf = SHA-256(0x00 || record bytes), RFC 9162 2.1.1
    leaf = _sha256(LEAF_HASH_PREFIX + body).digest()
    tenant = header.get("tenant")
    return Record(seq, record_kind, request_id, req_seq, ts, tenant, body, leaf, payload)
