"""C2SP tlog-checkpoint bodies (https://c2sp.org/tlog-checkpoint), signed as C2SP notes.

Body::

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <base64 of the 32-byte root hash>\\n
    [<extension line>\\n ...]      (optional, non-empty lines, preserved as they are)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from auditlog.errors import FormatError, VerificationError
from auditlog.ledger.hashes import HASH_SIZE
from auditlog.ledger.note import Signer, Verifier, open_note, sign_note

__all__ = ["Checkpoint", "open_checkpoint", "parse_checkpoint", "sign_checkpoint"]

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's claimed state: origin, tree size, root hash (and optional extension lines)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The checkpoint text, the signed part of the note."""
        if not self.origin or "\n" in self.origin:
            raise FormatError(f"checkpoint origin must be one non-empty line: {self.origin!r}")
        if self.size < 0:
            raise FormatError(f"checkpoint size must be non-negative, got {self.size}")
        if len(self.root) != HASH_SIZE:
            raise FormatError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(self.root)}")
        for line in self.extensions:
            if not line or "\n" in line:
                raise FormatError(f"checkpoint extension must be one non-empty line: {line!r}")
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly; raises :class:`FormatError`."""
    if not text.endswith("\n"):
        raise FormatError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError(f"checkpoint needs origin, size and root lines, got {len(lines)} lines")
    origin, size, root_b64, *extensions = lines
    if not origin:
        raise FormatError("checkpoint origin line is empty")
    if _SIZE.fullmatch(size) is None:
        raise FormatError(f"checkpoint size is not a decimal number: {size!r}")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"checkpoint root is not base64: {root_b64!r}") from None
    if len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_b64:
        raise FormatError(f"checkpoint root must be canonical base64 of 32 bytes: {root_b64!r}")
    if any(not line for line in extensions):
        raise FormatError("checkpoint extension lines must not be empty")
    return Checkpoint(origin=origin, size=int(size), root=root, extensions=tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signers: Sequence[Signer]) -> str:
    """The signed note of ``cp``."""
    return sign_note(cp.body(), signers)


def open_checkpoint(
    note: str, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> Checkpoint:
    """Check the note's signatures, then parse its checkpoint.

    Raises :class:`VerificationError` if no trusted key signed it, a trusted signature is bad,
    or (when ``origin`` is given) the checkpoint is for another log.
    """
    cp = parse_checkpoint(open_note(note, verifiers).text)
    if origin is not None and cp.origin != origin:
        raise VerificationError(f"checkpoint origin: expected {origin!r}, got {cp.origin!r}")
    return cp
