"""Keyset cursors of the search reads (:mod:`auditlog.store.search`), and the bounds and error of
the query values the API takes: a cursor is opaque to callers and names the ``(ts, log_id, seq)``
of the last row of the page before."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

from auditlog.errors import AuditlogError

__all__ = ["MAX_SQL_INT", "InvalidQueryError", "decode_cursor", "encode_cursor", "next_cursor"]

#: Largest value of a BIGINT column (query bounds beyond it are refused before SQL).
MAX_SQL_INT = 2**63 - 1

_CURSOR = re.compile(rb"(0|[1-9][0-9]{0,18}):(0|[1-9][0-9]{0,18}):(0|[1-9][0-9]{0,18})")
Cursor = tuple[int, int, int]  # (ts, log_id, seq) of the last row of the previous page


class InvalidQueryError(AuditlogError):
    """A query parameter the API cannot use (a cursor it did not issue, for instance): 400."""


def encode_cursor(position: Cursor) -> str:
    """Opaque cursor: unpadded base64url of ``"<ts>:<log_id>:<seq>"`` in decimal."""
    text = ":".join(str(v) for v in position)
    return base64.urlsafe_b64encode(text.encode("ascii")).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> Cursor:
    """Inverse of :func:`encode_cursor`; raises InvalidQueryError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidQueryError("invalid cursor") from None
    match = _CURSOR.fullmatch(raw)
    values = () if match is None else tuple(int(v) for v in match.groups())
    if len(values) != 3 or not all(v <= MAX_SQL_INT for v in values):
        raise InvalidQueryError("invalid cursor")
    return values[0], values[1], values[2]


def next_cursor(rows: Sequence[Any], limit: int) -> str | None:
    """The cursor after a page of ``limit`` rows: None unless ``rows`` (``limit + 1`` asked
    for) holds one more."""
    if len(rows) <= limit:
        return None
    ts, log_id, seq = rows[limit - 1][:3]
    return encode_cursor((ts, log_id, seq))
