"""Parsing stored record headers strictly (docs/FORMAT.md section 3): canonical bytes, every
required field with its type; the recorder's plain ``tokens`` and ``step`` headers take a fast
path first (:mod:`auditlog.ledger.header_fast`), whatever it is unsure of the full checks here.
"""

from __future__ import annotations

from typing import Any

import orjson

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER, canonical_json
from auditlog.ledger.header_checks import _DECIMAL, _HEX64, _bad, _check_header
from auditlog.ledger.header_fast import plain_header
from auditlog.ledger.record_format import _DUMPS, _KINDS, FORMAT_VERSION

__all__ = ["parse_header"]


def parse_header(body: bytes) -> dict[str, Any]:
    """Parse and validate stored header bytes.

    Raises :class:`FormatError` unless ``body`` is canonical JSON (re-encoding gives the same
    bytes) holding every required field with its type. The returned dict is the JSON object with
    one conversion: ``ts`` is an ``int``.
    """
    fast = plain_header(body)
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
