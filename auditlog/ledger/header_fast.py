"""The fast path of :func:`~auditlog.ledger.header_parse.parse_header` for the headers the
recorder writes most: plain ``tokens`` records and ``step`` manifests (docs/FORMAT.md 3.3, 3.4).

A header is decoded into a typed :class:`msgspec.Struct` (types, ranges and provenance codes are
checked by the decoder, in C), the rest of its rules are checked, and it is taken only if
re-encoding the Struct gives back the stored bytes. msgspec writes integers, strings (escapes
included), lists and null exactly as orjson and RFC 8785 do, and each Struct declares its fields
in the canonical key order, so equal bytes mean the body is the canonical form of a header the
full checks accept, parsed the same way (duplicate keys, whitespace, escapes that are not needed,
non-canonical numbers all change the bytes). None means "not sure": the full checks decide.
Whatever decoding hostile bytes raises is "not sure" too (:data:`DECODE_ERRORS`: msgspec raises
``UnicodeDecodeError`` on invalid UTF-8 and ``RecursionError`` on deep nesting, not only
``DecodeError``): the full checks turn such bytes into a ``FormatError``, never a crash.
tests/ledger/test_fast_path_forms.py and test_records_fast_path.py check that both paths agree.

The Structs hold no references that could form a cycle: they are not tracked by the garbage
collector (``gc=False``), which the verifier would otherwise run every few hundred records.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER
from auditlog.ledger.header_checks import _DECIMAL, _check_step
from auditlog.ledger.record_format import ZERO_HASH

__all__ = ["DECODE_ERRORS", "plain_header"]

_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
_Text = Annotated[str, msgspec.Meta(min_length=1)]
_Digest = Annotated[str, msgspec.Meta(min_length=64, max_length=64)]  # hex: checked after
#: PROVENANCE_CODES as a type (a test checks they are the same).
_Provenance = Literal["target", "draft_accepted", "target_recovered", "bonus"]


class _PlainTokens(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``tokens`` header as the recorder writes it; fields in the canonical key order."""

    kind: Literal["tokens"]
    log: _Text
    n: _Count
    payload: _Digest | None
    prev: _Digest
    prov: list[_Provenance]
    req_seq: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)]
    request_id: _Text
    seq: _Count
    step: _Count
    tenant: str
    ts: Annotated[str, msgspec.Meta(max_length=20)]
    v: Literal[1]


_decode_tokens = msgspec.json.Decoder(_PlainTokens).decode
_encode = msgspec.json.Encoder().encode
_asdict = msgspec.structs.asdict
_fromhex = bytes.fromhex
#: What decoding hostile bytes raises: DecodeError (ValidationError included), ValueError
#: (UnicodeDecodeError on invalid UTF-8; int and bytes.fromhex below), RecursionError.
DECODE_ERRORS = (msgspec.DecodeError, ValueError, RecursionError)


def _plain_tokens(body: bytes) -> dict[str, Any] | None:
    """The parsed header if ``body`` is a plain ``tokens`` header in canonical form."""
    try:
        h = _decode_tokens(body)
        prev, payload, ts = h.prev, h.payload, int(h.ts)
        # 64 lowercase hex digits: fromhex also takes uppercase and spaces, hex() writes neither
        hex_digests = _fromhex(prev).hex() == prev and (
            payload is None or _fromhex(payload).hex() == payload
        )
    except DECODE_ERRORS:
        return None
    if (
        not hex_digests
        or prev == ZERO_HASH
        or len(h.prov) != h.n
        or ts < 0
        or str(ts) != h.ts  # a decimal string of at most 20 digits, as _DECIMAL
        or _encode(h) != body
    ):
        return None
    header = _asdict(h)
    header["ts"] = ts
    return header


class _PlainStep(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``step`` manifest as the recorder writes it; fields in the canonical key order."""

    batch: list[list[str | int]]  # [request_id, n] pairs: checked after
    kind: Literal["step"]
    log: _Text
    n: _Count
    passes: _Count
    payload: None
    prev: None
    req_seq: None
    request_id: None
    seq: _Count
    step: _Count
    ts: Annotated[str, msgspec.Meta(max_length=20)]
    v: Literal[1]


_decode_step = msgspec.json.Decoder(_PlainStep).decode


def _plain_step(body: bytes) -> dict[str, Any] | None:
    """Like :func:`_plain_tokens`, for a ``step`` manifest."""
    try:
        h = _decode_step(body)
    except DECODE_ERRORS:
        return None
    if _DECIMAL.fullmatch(h.ts) is None or _encode(h) != body:
        return None
    header = _asdict(h)
    try:
        _check_step(header)
    except FormatError:
        return None
    header["ts"] = int(h.ts)
    return header


def plain_header(body: bytes) -> dict[str, Any] | None:
    """The parsed header if ``body`` is a plain ``tokens`` or ``step`` header in canonical form;
    None means "not sure". The canonical forms start with their first key."""
    if body.startswith(b'{"kind":"tokens",'):
        return _plain_tokens(body)
    if body.startswith(b'{"batch":'):
        return _plain_step(body)
    return None
