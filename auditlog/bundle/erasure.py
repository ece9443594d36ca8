"""Step 4a of bundle verification: the ``erasure`` record a bundle carries (C16, pure).

A bundle exported after its request was erased carries the ``erasure`` record that destroyed the
request's data key, the signed checkpoint of that record's own log (an administrative log)
covering it, and its RFC 9162 inclusion proof. :func:`check_erasure` proves, offline, that the
record is in that log and names the bundle's request; the verifier then accepts the request's
payloads as absent and reports them erased by that record (docs/FORMAT.md 9.3).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from auditlog.errors import FormatError, VerificationError
from auditlog.ledger import (
    Verifier,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_header,
    verify_inclusion,
)
from auditlog.ledger.erasure_ref import ErasureRef
from auditlog.ledger.note import split_note

from .format import Bundle, BundleErasure

__all__ = ["ErasureInfo", "KeyTrust", "check_erasure"]


class KeyTrust(enum.StrEnum):
    """Where the key that verified the checkpoint came from."""

    TRUSTED = "trusted"  # a key the caller supplied out of band
    UNTRUSTED = "untrusted"  # only a key embedded in the bundle itself


#: The verified erasure record a bundle carries: the one erasure-record value of the readers.
ErasureInfo = ErasureRef


def check_erasure(
    bundle: Bundle, e: BundleErasure, trusted: Sequence[Verifier]
) -> tuple[ErasureInfo, KeyTrust]:
    """Step 4a: the erasure record is signed into its own log and names this request.

    Its checkpoint's origin is the member's ``log``; the note verifies under a trusted key bound
    to that log (else only under the keys embedded with it: untrusted); the header is an
    ``erasure`` record of that log at ``seq`` with no payload, whose ``erased`` list holds
    {"log": bundle log, "request_id": bundle request}; ``seq`` lies in the checkpoint's tree and
    the inclusion proof of its leaf leads to the checkpoint's root.
    """
    where = f"erasure record {e.seq} of {e.log!r}"
    try:
        claimed = parse_checkpoint(split_note(e.checkpoint)[0]).origin
    except FormatError as exc:
        raise VerificationError(f"{where}: checkpoint is malformed: {exc}") from None
    if claimed != e.log:
        raise VerificationError(
            f"{where}: checkpoint origin mismatch: expected {e.log!r}, got {claimed!r}"
        )
    bound = [v for v in trusted if v.name == e.log]
    try:
        keys = bound or [Verifier.from_key_string(k.strip()) for k in e.keys]
        checkpoint = open_checkpoint(e.checkpoint, keys)
    except (FormatError, VerificationError) as exc:
        signer = "a trusted key" if bound else "a key embedded with it"
        raise VerificationError(f"{where}: checkpoint is not signed by {signer}: {exc}") from None
    try:
        header = parse_header(e.body)
    except FormatError as exc:
        raise VerificationError(f"{where}: header is malformed: {exc}") from None
    expected = (("kind", "erasure"), ("log", e.log), ("seq", e.seq), ("payload", None))
    for name, want in expected:
        if header.get(name) != want:
            raise VerificationError(
                f"{where}: {name} mismatch: expected {want!r}, got {header.get(name)!r}"
            )
    named = {"log": bundle.log, "request_id": bundle.request_id}
    erased = header.get("erased")
    if not isinstance(erased, list) or named not in erased:
        raise VerificationError(
            f"{where} does not name request {bundle.request_id!r} of log {bundle.log!r}"
        )
    if e.seq >= checkpoint.size:
        raise VerificationError(f"{where}: not covered by its checkpoint of size {checkpoint.size}")
    try:
        # leaf = SHA-256(0x00 || header bytes), RFC 9162 2.1.1
        verify_inclusion(leaf_hash(e.body), e.seq, checkpoint.size, list(e.proof), checkpoint.root)
    except VerificationError as exc:
        raise VerificationError(f"{where}: inclusion proof failed: {exc}") from None
    info = ErasureRef.of(e.log, e.seq, header)
    return info, KeyTrust.TRUSTED if bound else KeyTrust.UNTRUSTED
