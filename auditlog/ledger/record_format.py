"""The record format's vocabulary (docs/FORMAT.md section 3): version, kinds, base fields.

Shared by building records (:mod:`auditlog.ledger.records`), checking headers
(:mod:`auditlog.ledger.header_checks`) and parsing stored ones
(:mod:`auditlog.ledger.header_parse`).
"""

from __future__ import annotations

import enum
from typing import Any, Final

import orjson

__all__ = [
    "BASE_FIELDS",
    "FORMAT_VERSION",
    "PROVENANCE_CODES",
    "REQUEST_KINDS",
    "ZERO_HASH",
    "RecordKind",
]

#: Value of the header's ``v`` field.
FORMAT_VERSION: Final = 1
#: ``prev`` of the first record (``req_seq`` 0) of every request chain.
ZERO_HASH: Final = "0" * 64


class RecordKind(enum.StrEnum):
    """The ``kind`` of a record (docs/DESIGN.md section 3)."""

    REQUEST_START = "request.start"
    TOKENS = "tokens"
    REQUEST_END = "request.end"
    STEP = "step"
    ACCESS = "access"
    ADMIN = "admin"
    ERASURE = "erasure"


#: Kinds that form per-request chains; the others have request_id, req_seq and prev = null.
REQUEST_KINDS: Final = frozenset(
    {RecordKind.REQUEST_START, RecordKind.TOKENS, RecordKind.REQUEST_END}
)
#: Provenance codes of a ``tokens`` record's ``prov`` list (C6).
PROVENANCE_CODES: Final = frozenset({"target", "draft_accepted", "target_recovered", "bonus"})
#: Header fields present in every record; kind-specific ``fields`` MUST NOT reuse these names.
BASE_FIELDS: Final = frozenset(
    {"v", "log", "seq", "kind", "request_id", "req_seq", "ts", "prev", "payload"}
)

_KINDS: Final[dict[Any, RecordKind]] = {kind.value: kind for kind in RecordKind}
_DUMPS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
