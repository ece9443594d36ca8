"""Parsing stored record headers strictly (docs/FORMAT.md section 3): canonical bytes, every
required field with its type; a one-function fast path for the recorder's plain ``tokens`` headers.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER, canonical_json
from auditlog.ledger.header_checks import _DECIMAL, _HEX64, _TYPED_BASE, _bad, _check_header
from auditlog.ledger.record_format import (
    _DUMPS,
    _KINDS,
    FORMAT_VERSION,
    PROVENANCE_CODES,
    ZERO_HASH,
)

__all__ = ["parse_header"]


_TOKENS_KEYS: Final = frozenset(_TYPED_BASE | {"step", "n", "prov"})
_PROVENANCE_LIST: Final = frozenset(PROVENANCE_CODES)


def _plain_tokens(h: dict[str, Any]) -> bool:
    """True when ``h`` is a ``tokens`` header that :func:`_check_header` and the base checks of
    :func:`parse_header` accept, with exactly the fields the recorder writes (the verifier's hot
    path: one function, no calls per field). False means "not sure": the full checks decide."""
    seq, req_seq, step, n, prov = h["seq"], h["req_seq"], h["step"], h["n"], h["prov"]
    payload, prev, log, rid = h["payload"], h["prev"], h["log"], h["request_id"]
    return (
        type(seq) is int
        and type(req_seq) is int
        and type(step) is int
        and type(n) is int
        and 0 <= seq <= MAX_SAFE_INTEGER
        and 0 < req_seq <= MAX_SAFE_INTEGER
        and 0 <= step <= MAX_SAFE_INTEGER
        and 0 <= n <= MAX_SAFE_INTEGER
        and h["v"] == FORMAT_VERSION
        and type(h["v"]) is int
        and type(log) is str
        and log != ""
        and type(rid) is str
        and rid != ""
        and type(h["tenant"]) is str
        and type(prov) is list
        and len(prov) == n
        and set(map(type, prov)) <= {str}
        and _PROVENANCE_LIST.issuperset(prov)
        and type(prev) is str
        and _HEX64.fullmatch(prev) is not None
        and prev != ZERO_HASH
        and (payload is None or (type(payload) is str and _HEX64.fullmatch(payload) is not None))
        and type(h["ts"]) is str
        and _DECIMAL.fullmatch(h["ts"]) is not None
    )


def parse_header(body: bytes) -> dict[str, Any]:
    """Parse and validate stored header bytes.

    Raises :class:`FormatError` unless ``body`` is canonical JSON (re-encoding gives the same
    bytes) holding every required field with its type. The returned dict is the JSON object with
    one conversion: ``ts`` is an ``int``.
    """
    try:
        header = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"record header is not JSON: {exc}") from None
    if type(header) is not dict:
        raise FormatError(f"record header is not a JSON object: {type(header).__name__}")
    if (
        header.get("kind") == "tokens"
        and header.keys() == _TOKENS_KEYS
        and _plain_tokens(header)
        and orjson.dumps(header, option=_DUMPS) == body
    ):
        header["ts"] = int(header["ts"])
        return header
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
