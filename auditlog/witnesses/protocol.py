"""The C2SP tlog-witness ``add-checkpoint`` exchange: request bodies and responses (no I/O).

Request (``POST <witness URL>/add-checkpoint``)::

    old <size the witness last cosigned, 0 if none>\\n
    <base64 consistency-proof hash>\\n          (one line per hash, none when old is 0)
    \\n
    <the signed checkpoint note>

Responses: 200 with one or more cosignature lines; 409 Conflict with the witness's latest size
(``text/x.tlog.size``), after which the client retries with a proof from that size; 404 (the
witness does not know the log), 403 (no log signature it trusts), 422 (the consistency proof
does not verify: the log forked from what the witness saw), 400 (a malformed request).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from auditlog.errors import AuditlogError, FormatError
from auditlog.ledger.cosignature import Cosignature, parse_cosignature_line

__all__ = [
    "WitnessAhead",
    "WitnessError",
    "WitnessRefused",
    "WitnessUnavailable",
    "add_checkpoint_body",
    "parse_cosignature_response",
    "parse_size_body",
]

#: Most bytes of a witness response that are read.
MAX_RESPONSE_BYTES = 64 * 1024


class WitnessError(AuditlogError):
    """A witness did not cosign a checkpoint."""


class WitnessUnavailable(WitnessError):
    """The witness could not be reached, or answered with a server error (try again later)."""


class WitnessRefused(WitnessError):
    """The witness refused the checkpoint (404, 403, 422, 400, or a response that is not a
    valid cosignature by its key): ``status`` is the HTTP status, 0 for a bad response."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class WitnessAhead(WitnessError):
    """The witness has cosigned a larger tree than the log now has: the log was rolled back (or
    another log signs with the same key and origin)."""

    def __init__(self, message: str, witness_size: int) -> None:
        super().__init__(message)
        self.witness_size = witness_size


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint request body."""
    if old_size < 0:
        raise FormatError(f"old size must be non-negative, got {old_size}")
    if old_size == 0 and proof:
        raise FormatError("a proof from size 0 must be empty")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_size_body(body: bytes) -> int:
    """The witness's latest size from a 409 body (``<decimal>\\n``)."""
    text = body.decode("ascii", errors="replace").strip()
    if not text.isdigit() or (len(text) > 1 and text.startswith("0")) or len(text) > 20:
        raise FormatError(f"409 response is not a tree size: {text[:40]!r}")
    return int(text)


def parse_cosignature_response(body: bytes) -> list[Cosignature]:
    """The cosignature lines of a 200 response (lines that are not cosignature/v1 are skipped:
    a witness may add signatures of other types)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise FormatError("witness response is not UTF-8") from None
    found = []
    for line in text.splitlines():
        if not line:
            continue
        try:
            found.append(parse_cosignature_line(line))
        except FormatError:
            continue
    return found
