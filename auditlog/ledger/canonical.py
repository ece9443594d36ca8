"""Canonical JSON bytes of records and payloads.

docs/DESIGN.md section 3, docs/FORMAT.md section 2.

The accepted subset is: objects with string keys, arrays, strings, integers within
±(2^53 − 1), ``true``, ``false`` and ``null``. Floats (and so NaN and infinities) are refused;
integers beyond the range (nanosecond times, 64-bit seeds) MUST be written as decimal strings. On
this subset the output equals RFC 8785 (JCS) byte for byte: keys sorted by UTF-16 code units, no
insignificant whitespace, strings escaped only where JSON requires it (``"``, ``\\``, control
characters; ``\\b \\f \\n \\r \\t`` short forms, other controls ``\\u00xx`` lowercase), non-ASCII
written as UTF-8.

``orjson`` with ``OPT_SORT_KEYS`` produces exactly these bytes, except that it sorts keys by code
point; code point order and UTF-16 order differ only when one key holds a character above U+FFFF
and another a character in U+E000..U+FFFF. Objects with non-ASCII keys are therefore re-ordered by
UTF-16 code units before encoding (rare: record headers use ASCII keys only).
"""

from __future__ import annotations

from typing import Any

import orjson

from auditlog.errors import FormatError

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "canonical_json", "check_canonical_subset"]

#: Largest integer magnitude allowed (RFC 8785 section 3.2.2.3: integers exact in IEEE 754).
MAX_SAFE_INTEGER = 2**53 - 1
#: Deepest nesting accepted (orjson itself refuses more than 255 levels).
MAX_DEPTH = 64

# OPT_STRICT_INTEGER makes orjson refuse integers outside ±(2^53 − 1); the passthrough options
# make it refuse datetimes and dataclasses instead of serialising them its own way.
_DUMPS_OPTIONS = (
    orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
_SCALARS = frozenset({str, int, bool, type(None)})


class _OutOfSubset(Exception):
    """Internal signal of :func:`_fast_walk`; never escapes this module."""


def _fast_walk(obj: Any, depth: int) -> bool:
    """Type check of the hot path, without error paths. Returns True if some key is non-ASCII.

    Integer ranges are left to orjson (``OPT_STRICT_INTEGER``). Raises ``_OutOfSubset`` at the
    first value that is not a plain dict, list, tuple, str, int, bool or None.
    """
    t = type(obj)
    if t is dict:
        try:
            non_ascii = not "".join(obj).isascii()
        except TypeError:  # a key that is not a str
            raise _OutOfSubset from None
        values: Any = obj.values()
    elif t is list or t is tuple:
        non_ascii = False
        values = obj
    elif t in _SCALARS:
        return False
    else:
        raise _OutOfSubset
    if set(map(type, values)) <= _SCALARS:
        return non_ascii
    if depth >= MAX_DEPTH:
        raise _OutOfSubset
    for value in values:
        if type(value) not in _SCALARS and _fast_walk(value, depth + 1):
            non_ascii = True
    return non_ascii


def _explain(obj: Any, path: str, depth: int) -> bool:
    """Careful subset check; raises :class:`FormatError` naming the first bad location.

    Subclasses of str, int, dict and list (``StrEnum``, ``IntEnum``) are accepted: orjson writes
    them as their plain value, which is what RFC 8785 writes too.
    """
    if depth > MAX_DEPTH:
        raise FormatError(f"nesting deeper than {MAX_DEPTH} levels at {path}")
    if obj is None or isinstance(obj, (str, bool)):
        return False
    if isinstance(obj, int):
        if -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER:
            return False
        raise FormatError(f"integer out of range ±(2^53-1) at {path}: {obj}")
    non_ascii = False
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise FormatError(f"object key at {path} is {type(key).__name__}, expected str")
            non_ascii |= not key.isascii()
            non_ascii |= _explain(value, f"{path}.{key}", depth + 1)
        return non_ascii
    if isinstance(obj, list) or type(obj) is tuple:
        for i, item in enumerate(obj):
            non_ascii |= _explain(item, f"{path}[{i}]", depth + 1)
        return non_ascii
    if isinstance(obj, float):
        raise FormatError(f"float at {path}: {obj!r} (floats are not allowed; use integers)")
    raise FormatError(f"value of type {type(obj).__name__} at {path} is not JSON")


def check_canonical_subset(obj: Any) -> bool:
    """Raise :class:`FormatError` unless ``obj`` lies in the canonical subset.

    Returns True when some object key is non-ASCII (keys are then sorted by UTF-16 code units).
    """
    try:
        return _fast_walk(obj, 0)
    except _OutOfSubset:
        return _explain(obj, "$", 0)


def _utf16_key(key: str) -> bytes:
    # RFC 8785 section 3.2.3: members sorted by their names as arrays of UTF-16 code units.
    return key.encode("utf-16-be", "surrogatepass")


def _utf16_ordered(obj: Any) -> Any:
    """Copy of ``obj`` whose dicts are in RFC 8785 key order (to encode without sorting)."""
    if isinstance(obj, dict):
        return {k: _utf16_ordered(obj[k]) for k in sorted(obj, key=_utf16_key)}
    if isinstance(obj, (list, tuple)):
        return [_utf16_ordered(item) for item in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of ``obj``; raises :class:`FormatError` outside the canonical subset.

    Accepts ``dict``, ``list``, ``tuple``, ``str``, ``int``, ``bool`` and ``None`` (and
    subclasses of str, int, dict and list, written as their plain values).
    """
    non_ascii_keys = check_canonical_subset(obj)
    try:
        if non_ascii_keys:
            return orjson.dumps(_utf16_ordered(obj), option=_DUMPS_OPTIONS)
        return orjson.dumps(obj, option=_DUMPS_OPTIONS | orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError: range, lone surrogates
        _explain(obj, "$", 0)
        raise FormatError(f"not canonical JSON: {exc}") from None
