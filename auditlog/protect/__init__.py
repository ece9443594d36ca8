"""Protection of what trails contain (C14-C16): erasure by crypto-shredding, retention classes
and legal holds. Every decision is a signed record of an administrative log."""

from __future__ import annotations

from auditlog.protect.erasure import ErasureOrder, ErasureRefusedError, ErasureResult, erase
from auditlog.protect.holds import Hold, HoldScope, list_holds, place_hold, release_hold
from auditlog.protect.listing import (
    ErasureEntry,
    ErasureTarget,
    list_erasures,
    visible_erasures,
    visible_holds,
)
from auditlog.protect.retention import RetentionPolicy, apply_retention

__all__ = [
    "ErasureEntry",
    "ErasureOrder",
    "ErasureRefusedError",
    "ErasureResult",
    "ErasureTarget",
    "Hold",
    "HoldScope",
    "RetentionPolicy",
    "apply_retention",
    "erase",
    "list_erasures",
    "list_holds",
    "place_hold",
    "release_hold",
    "visible_erasures",
    "visible_holds",
]
