"""Offline verification of an evidence bundle (pure: values in, a report or an exception out).

:func:`verify_bundle` needs nothing but the bundle bytes and, ideally, the log's verifier keys
obtained out of band. It raises :class:`~auditlog.errors.VerificationError` at the first failure,
with a message that names the record (``req_seq`` and ``seq``), what was expected and what was
found. Steps, in order (docs/FORMAT.md section 9.3):

1. The bytes decode as a bundle of this format version, in canonical form.
2. The checkpoint note carries a valid Ed25519 signature by a trusted key (``trusted_keys``,
   each vouching only for the log whose origin is its name); with no trusted keys given, by a
   key embedded in the bundle, and the report says "untrusted" (proven nothing: exit 3).
3. The checkpoint's origin is the bundle's log.
4. Per record, in chain order: the header parses (docs/FORMAT.md), names this log, request and
   ``seq``; ``req_seq`` counts 0, 1, 2, ...; ``seq`` increases; the payload's SHA-256 equals the
   header's ``payload`` (an absent payload is a failure); the chain, count and provenance rules
   of :mod:`auditlog.ledger.chain` (the same checker ``auditlog verify`` runs); ``seq`` lies in
   the checkpoint's tree and the RFC 9162 inclusion proof of the leaf SHA-256(0x00 || header
   bytes) at ``seq`` leads to the checkpoint's root.
5. The chain ends with ``request.end`` (a bundle MUST hold a complete trail).
6. The transcript rebuilt from the payloads agrees with the headers' token counts.

Erasure (C16, docs/FORMAT.md 9.3 step 4a): a bundle exported after its request was erased
carries the ``erasure`` record, the signed checkpoint of that record's own log covering it and
its inclusion proof (:func:`auditlog.bundle.erasure.check_erasure`). Only then may the
request's payloads be absent under their digests, and only for a sealed request (``enc``); the
report names the record. Without such a record an absent payload is a failure, as always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from auditlog.errors import FormatError, VerificationError
from auditlog.ledger import (
    Checkpoint,
    FindingCode,
    Verifier,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    parse_header,
    sha256_hex,
    verify_inclusion,
)
from auditlog.ledger.chain import ChainChecker
from auditlog.ledger.note import split_note

from .erasure import ErasureInfo, KeyTrust, check_erasure
from .format import Bundle, decode_bundle
from .transcript import Transcript, build_transcript

__all__ = [
    "BundleReport",
    "ErasureInfo",
    "KeyTrust",
    "parse_verifier_keys",
    "verify_bundle",
    "verify_decoded",
]


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What an intact bundle proves."""

    log: str
    request_id: str
    tenant: str
    checkpoint_size: int
    checkpoint_root: bytes
    num_records: int
    trust: KeyTrust
    erased_payloads: tuple[int, ...]  # seqs whose content an erasure destroyed (else empty)
    transcript: Transcript
    notes: tuple[str, ...] = field(default=())
    erasure: ErasureInfo | None = None  # the erasure record naming the request, verified


def parse_verifier_keys(keys: Sequence[str]) -> list[Verifier]:
    """Verifier keys in note form; raises FormatError naming the first malformed one."""
    verifiers = []
    for i, key in enumerate(keys):
        try:
            verifiers.append(Verifier.from_key_string(key.strip()))
        except FormatError as exc:
            raise FormatError(f"verifier key {i} is malformed: {exc}") from None
    return verifiers


def _open(bundle: Bundle, trusted: Sequence[Verifier]) -> tuple[Checkpoint, KeyTrust]:
    if trusted:
        bound = [v for v in trusted if v.name == bundle.log]  # a key vouches for its origin only
        try:
            return open_checkpoint(bundle.checkpoint, bound), KeyTrust.TRUSTED
        except (FormatError, VerificationError) as exc:
            raise VerificationError(f"checkpoint is not signed by a trusted key: {exc}") from None
    try:
        embedded = parse_verifier_keys(bundle.keys)
    except FormatError as exc:
        raise VerificationError(f"embedded {exc}") from None
    if not embedded:
        raise VerificationError("bundle embeds no verifier key and no trusted key was given")
    try:
        return open_checkpoint(bundle.checkpoint, embedded), KeyTrust.UNTRUSTED
    except (FormatError, VerificationError) as exc:
        raise VerificationError(f"checkpoint signature does not verify: {exc}") from None


def verify_bundle(data: bytes, *, trusted_keys: Sequence[str] = ()) -> BundleReport:
    """Verify bundle bytes (steps 1-6 of the module docstring).

    ``trusted_keys`` are verifier keys in note form; a malformed one raises FormatError (a usage
    error, not a verdict on the bundle). Raises VerificationError when the bundle is not intact.
    """
    trusted = parse_verifier_keys(trusted_keys)
    try:
        bundle = decode_bundle(data)
    except FormatError as exc:
        raise VerificationError(f"bundle is malformed: {exc}") from None
    return verify_decoded(bundle, trusted)


def verify_decoded(
    bundle: Bundle, trusted: Sequence[Verifier] = (), *, require_complete: bool = True
) -> BundleReport:
    """Steps 2-6 on an already decoded bundle (the auditor API's trail verdict uses this).

    ``require_complete=False`` skips step 5, for a request still in flight.
    """
    if not bundle.records:
        raise VerificationError("bundle holds no record")
    try:
        claimed = parse_checkpoint(split_note(bundle.checkpoint)[0]).origin
    except FormatError as exc:
        raise VerificationError(f"checkpoint is malformed: {exc}") from None
    if claimed != bundle.log:  # step 3 first: a key vouches only for the log named like it
        raise VerificationError(
            f"checkpoint origin mismatch: expected {bundle.log!r}, got {claimed!r}"
        )
    checkpoint, trust = _open(bundle, trusted)
    erasure: ErasureInfo | None = None
    notes: tuple[str, ...] = ()
    if bundle.erasure is not None:  # step 4a
        erasure, erasure_trust = check_erasure(bundle, bundle.erasure, trusted)
        if erasure_trust is KeyTrust.UNTRUSTED and trust is KeyTrust.TRUSTED:
            trust = KeyTrust.UNTRUSTED
            notes = (
                f"the erasure record's checkpoint was checked only against keys embedded in the "
                f"bundle: pass --key with the verifier key of log {bundle.erasure.log}",
            )
    chain: list[tuple[dict[str, Any], bytes | None]] = []
    where = ""

    def fail(index: int | None, code: FindingCode, expected: object, got: object, msg: str) -> None:
        if code is not FindingCode.CHAIN_OPEN:
            raise VerificationError(f"{where}: {msg}")

    rules = ChainChecker(fail, check_steps=False)  # the log verifier's own chain rules
    last_seq = -1
    for i, record in enumerate(bundle.records):
        where = f"record req_seq {i} (seq {record.seq})"
        header = _check_layout(bundle, i, record, last_seq, where)
        if i == 0 and erasure is not None and "enc" not in header:
            raise VerificationError(
                f"{where}: erasure record {erasure.seq} of {erasure.log!r} names a request "
                "recorded unsealed (no enc): crypto-shredding cannot have destroyed its content"
            )
        _check_payload(header, record.payload, where, erasure)
        # leaf = SHA-256(0x00 || header bytes), RFC 9162 2.1.1; also the next record's prev.
        leaf = leaf_hash(record.body)
        rules.check(record.seq, header, leaf, record.payload)
        if record.seq >= checkpoint.size:
            raise VerificationError(
                f"{where}: not covered by the checkpoint of size {checkpoint.size}"
            )
        try:
            verify_inclusion(leaf, record.seq, checkpoint.size, list(record.proof), checkpoint.root)
        except VerificationError as exc:
            raise VerificationError(f"{where}: inclusion proof failed: {exc}") from None
        chain.append((header, record.payload))
        last_seq = record.seq
    if require_complete and chain[-1][0]["kind"] != "request.end":
        raise VerificationError(
            f"trail is incomplete: last record (req_seq {len(chain) - 1}) is "
            f"{chain[-1][0]['kind']}, not request.end"
        )
    try:
        transcript = build_transcript(bundle.request_id, chain)
    except FormatError as exc:
        raise VerificationError(f"transcript: {exc}") from None
    return BundleReport(
        log=bundle.log,
        request_id=bundle.request_id,
        tenant=chain[0][0]["tenant"],
        checkpoint_size=checkpoint.size,
        checkpoint_root=checkpoint.root,
        num_records=len(chain),
        trust=trust,
        erased_payloads=()
        if erasure is None
        else tuple(h["seq"] for h, _ in chain if h["payload"] is not None),
        transcript=transcript,
        notes=notes,
        erasure=erasure,
    )


def _check_layout(bundle: Bundle, i: int, record: Any, last_seq: int, where: str) -> dict[str, Any]:
    """Step 4, bundle layout: the header parses, names this log, request and ``seq``; record i
    has ``req_seq`` i; ``seq`` increases."""
    try:
        header = parse_header(record.body)
    except FormatError as exc:
        raise VerificationError(f"{where}: header is malformed: {exc}") from None
    expected: tuple[tuple[str, Any, Any], ...] = (
        ("seq", record.seq, header["seq"]),
        ("log", bundle.log, header["log"]),
        ("request_id", bundle.request_id, header["request_id"]),
        ("req_seq", i, header["req_seq"]),
    )
    for name, want, got in expected:
        if want != got:
            raise VerificationError(f"{where}: {name} mismatch: expected {want!r}, got {got!r}")
    if record.seq <= last_seq:
        raise VerificationError(f"{where}: seq must exceed the previous record's {last_seq}")
    return header


def _check_payload(
    header: dict[str, Any], payload: bytes | None, where: str, erasure: ErasureInfo | None
) -> None:
    """Step 4, payload: its SHA-256 is the header's digest; absent under a digest is a failure
    unless a verified erasure record names the request (step 4a)."""
    digest = header["payload"]
    if payload is not None and digest is None:
        raise VerificationError(f"{where}: payload present but the header commits to none")
    if payload is None and digest is not None:
        if erasure is not None:
            return  # the content was destroyed by the erasure; the digest stays committed
        raise VerificationError(
            f"{where}: payload absent: the header commits to {digest} and no erasure record "
            "in the bundle names this request"
        )
    if payload is not None and sha256_hex(payload) != digest:
        raise VerificationError(
            f"{where}: payload digest mismatch: expected {digest}, got {sha256_hex(payload)}"
        )
