"""Parsing stored record headers strictly (docs/FORMAT.md section 3): canonical bytes, every
required field with its type; a fast path for the recorder's plain ``tokens`` headers.

The fast path decodes a ``tokens`` header into a typed :class:`msgspec.Struct` (the types, ranges
and provenance codes are checked by the decoder, in C), checks the hex digests and ``ts``, and
takes the header only if re-encoding the Struct gives back the stored bytes. msgspec writes
integers, strings (escapes included), lists and null exactly as orjson and RFC 8785 do, and the
Struct's fields are declared in the canonical key order, so equal bytes mean the body is the
canonical form of a header the full checks accept (duplicate keys, whitespace, escapes that are
not needed, non-canonical numbers all change the bytes). Anything else goes through the full
checks; tests/ledger/test_records_fast_path.py checks that both paths agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import orjson

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER, canonical_json
from auditlog.ledger.header_checks import _DECIMAL, _HEX64, _bad, _check_header
from auditlog.ledger.record_format import _DUMPS, _KINDS, FORMAT_VERSION, ZERO_HASH

__all__ = ["parse_header"]

_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
_Text = Annotated[str, msgspec.Meta(min_length=1)]
_Digest = Annotated[str, msgspec.Meta(min_length=64, max_length=64)]  # hex: checked after
#: PROVENANCE_CODES as a type (a test checks they are the same).
_Provenance = Literal["target", "draft_accepted", "target_recovered", "bonus"]


class _PlainTokens(msgspec.Struct, forbid_unknown_fields=True):
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


def _plain_tokens(body: bytes) -> dict[str, Any] | None:
    """The parsed header if ``body`` is a plain ``tokens`` header in canonical form (what the
    full checks accept, with the same result); None means "not sure": the full checks decide."""
    if not body.startswith(b'{"kind":"tokens",'):  # the canonical form starts so
        return None
    try:
        h = _decode_tokens(body)
    except msgspec.DecodeError:  # ValidationError included
        return None
    prev, payload, ts = h.prev, h.payload, h.ts
    if (
        len(h.prov) != h.n
        or prev == ZERO_HASH
        or _HEX64.fullmatch(prev) is None
        or (payload is not None and _HEX64.fullmatch(payload) is None)
        or _DECIMAL.fullmatch(ts) is None
        or _encode(h) != body
    ):
        return None
    header = _asdict(h)
    header["ts"] = int(ts)
    return header


def parse_header(body: bytes) -> dict[str, Any]:
    """Parse and validate stored header bytes.

    Raises :class:`FormatError` unless ``body`` is canonical JSON (re-encoding gives the same
    bytes) holding every required field with its type. The returned dict is the JSON object with
    one conversion: ``ts`` is an ``int``.
    """
    fast = _plain_tokens(body)
    return _parse_full(body) if fast is None else fast


def _parse_full(body: bytes) -> dict[str, Any]:
    """:func:`parse_header` without its fast path."""
    try:
        header = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"record header is not JSON: {exc}") from None
    if type(header) is not dict:
        raise FormatError(f"record header is not a JSON object: {type(header).__name__}")
    try:
        v, log, seq, kind_name, ts, payload = (
            header["v"],
            header["log"],
            header["seq"],
            header["kind"],
            header["ts"],
            header["payload"],
        )
        _ = header["request_id"], header["req_seq"], header["prev"]  # present, even if null
    except KeyError as exc:
        raise FormatError(f"header field {exc.args[0]!r} is missing") from None
    if v != FORMAT_VERSION or type(v) is not int:
        raise _bad("v", f"format version {FORMAT_VERSION}", v)
    if type(log) is not str or not log:
        raise _bad("log", "a non-empty string", log)
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise _bad("seq", "a non-negative integer", seq)
    kind = _KINDS.get(kind_name) if type(kind_name) is str else None
    if kind is None:
        raise _bad("kind", "one of " + ", ".join(sorted(_KINDS)), kind_name)
    if type(ts) is not str or _DECIMAL.fullmatch(ts) is None:
        raise _bad("ts", "nanoseconds as a decimal string", ts)
    if payload is not None and (type(payload) is not str or _HEX64.fullmatch(payload) is None):
        raise _bad("payload", "null or 64 lowercase hex digits", payload)
    non_ascii_keys = _check_header(header, kind)
    try:
        again = canonical_json(header) if non_ascii_keys else orjson.dumps(header, option=_DUMPS)
    except TypeError as exc:
        raise FormatError(f"record header is not canonical JSON: {exc}") from None
    if again != body:
        raise FormatError("record header bytes are not in canonical form (RFC 8785)")
    header["ts"] = int(ts)
    return header
