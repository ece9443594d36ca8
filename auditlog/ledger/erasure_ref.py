"""Where an ``erasure`` record is and what it says (C16): one value for every reader of it.

The trail readers (``auditlog.trails``) name the record that destroyed a request's content, and
``verify-bundle`` names the one it verified (``auditlog.bundle.erasure``); both use this type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ErasureRef"]


@dataclass(frozen=True, slots=True)
class ErasureRef:
    """The ``erasure`` record that names a request whose data key is gone (C16): where it is in
    its (administrative) log and what it says: when, who ordered it, why, on what legal basis."""

    log: str
    seq: int
    ts: int
    principal: str
    reason: str
    legal_basis: str

    @classmethod
    def of(cls, log: str, seq: int, header: dict[str, Any]) -> ErasureRef:
        """From the parsed header of erasure record ``seq`` of ``log``."""
        return cls(
            log=log,
            seq=seq,
            ts=int(header.get("ts", 0)),
            principal=str(header.get("principal", "")),
            reason=str(header.get("reason", "")),
            legal_basis=str(header.get("legal_basis", "")),
        )

    def describe(self) -> str:
        """``erased by record N of LOG (reason, legal basis; ordered by PRINCIPAL)``."""
        return (
            f"erased by record {self.seq} of {self.log} ({self.reason}, {self.legal_basis}; "
            f"ordered by {self.principal})"
        )
