"""What the outside anchors say about one stored checkpoint: its witnesses' cosignatures,
whether the configured policy holds, and its RFC 3161 trusted time (for the auditor API and
console; ``auditlog verify`` checks every checkpoint with :mod:`auditlog.witnesses.audit`).

Nothing stored is believed without a key given out of band: a cosignature counts only when it
verifies under the policy's key for its witness, a timestamp only when it verifies under the
configured TSA certificates; without them they are shown as ``unchecked``.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy import Connection

from auditlog.errors import ConfigurationError
from auditlog.ledger.note import split_note
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.store.cosignatures import list_cosignatures
from auditlog.store.timestamps import get_timestamp

__all__ = [
    "AnchorStatus",
    "CheckpointAnchors",
    "CosignatureState",
    "OutsideAnchors",
    "checkpoint_anchors",
]


class AnchorStatus(enum.StrEnum):
    VERIFIED = "verified"  # verifies under the key / certificate given out of band
    INVALID = "invalid"  # does not verify: edited or moved after it was made
    UNCHECKED = "unchecked"  # stored, but no key or certificate configured to check it
    UNKNOWN = "unknown"  # a cosigner the policy does not name (neither helps nor hurts)
    ABSENT = "absent"  # nothing stored


@dataclass(frozen=True, slots=True)
class OutsideAnchors:
    """The witness policy and TSA certificates a reader checks stored anchors with.

    Verified RFC 3161 tokens are remembered by SHA-256 of (token, note) (a token check costs
    milliseconds, a trail view repeats it): the same bytes give the same answer, and changed
    bytes are checked afresh."""

    policy: WitnessPolicy | None = None
    tsa_certs: tuple[x509.Certificate, ...] = ()
    _checked: dict[bytes, datetime | None] = field(default_factory=dict, compare=False)

    @classmethod
    def load(cls, policy_file: Path | None, tsa_cert: Path | None) -> OutsideAnchors:
        """Read a policy file and a TSA certificate file (either may be None);
        ConfigurationError names what is wrong."""
        from .audit import load_policy
        from .tsa import load_tsa_certificates

        certs: list[x509.Certificate] = []
        if tsa_cert is not None:
            try:
                certs = load_tsa_certificates(tsa_cert.read_bytes())
            except OSError as exc:
                raise ConfigurationError(f"cannot read TSA certificate {tsa_cert}: {exc}") from exc
        return cls(policy=load_policy([], policy_file), tsa_certs=tuple(certs))


@dataclass(frozen=True, slots=True)
class CosignatureState:
    """One stored cosignature: its witness (policy name, else the cosigner's name), time
    (POSIX seconds, as the witness signed it) and status."""

    witness: str
    key_id: str
    time: int
    status: AnchorStatus


@dataclass(frozen=True, slots=True)
class CheckpointAnchors:
    """The outside anchors of the checkpoint at ``size``."""

    size: int
    cosignatures: list[CosignatureState] = field(default_factory=list)
    quorum: str | None = None  # the policy's quorum; None: no policy configured
    policy_satisfied: bool | None = None  # None: no policy configured
    timestamp: AnchorStatus = AnchorStatus.ABSENT
    trusted_time: datetime | None = None  # the verified genTime (RFC 3161)
    tsa_checked: bool = False  # TSA certificates were configured

    @property
    def failed(self) -> bool:
        """A stored cosignature or timestamp that does not verify."""
        invalid = any(c.status is AnchorStatus.INVALID for c in self.cosignatures)
        return invalid or self.timestamp is AnchorStatus.INVALID

    def shortfall(self) -> str | None:
        """Why the anchors the reader asked for are not all there (None: they are)."""
        if self.policy_satisfied is False:
            return f"the witness policy (quorum {self.quorum!r}) is not met at size {self.size}"
        if self.tsa_checked and self.trusted_time is None:
            return f"checkpoint {self.size} has no valid RFC 3161 timestamp"
        return None


def checkpoint_anchors(
    conn: Connection, log_id: int, size: int, note: str, anchors: OutsideAnchors
) -> CheckpointAnchors:
    """The cosignatures and timestamp stored for the log's checkpoint ``note`` at ``size``,
    each checked against ``anchors``."""
    body = split_note(note)[0]
    policy = anchors.policy
    cosigs: list[CosignatureState] = []
    counted: set[str] = set()
    for cosig in list_cosignatures(conn, log_id, min_size=size, max_size=size).get(size, []):
        witness = None if policy is None else policy.witness_for(cosig.name, cosig.key_id)
        if policy is None:
            status = AnchorStatus.UNCHECKED
        elif witness is None:
            status = AnchorStatus.UNKNOWN
        elif witness.key.verify(cosig, body):
            status = AnchorStatus.VERIFIED
            counted.add(witness.name)
        else:
            status = AnchorStatus.INVALID
        name = cosig.name if witness is None else witness.name
        cosigs.append(CosignatureState(name, cosig.key_id.hex(), cosig.timestamp, status))
    stamp_status, when = _timestamp(conn, log_id, size, note, anchors)
    return CheckpointAnchors(
        size=size,
        cosignatures=cosigs,
        quorum=None if policy is None else policy.quorum,
        policy_satisfied=None if policy is None else policy.satisfied(counted),
        timestamp=stamp_status,
        trusted_time=when,
        tsa_checked=bool(anchors.tsa_certs),
    )


#: Most verified tokens an :class:`OutsideAnchors` remembers (then it starts afresh).
MAX_CHECKED = 4096


def _timestamp(
    conn: Connection, log_id: int, size: int, note: str, anchors: OutsideAnchors
) -> tuple[AnchorStatus, datetime | None]:
    stamp = get_timestamp(conn, log_id, size)
    if stamp is None:
        return AnchorStatus.ABSENT, None
    if not anchors.tsa_certs:
        return AnchorStatus.UNCHECKED, None
    # key = SHA-256(len(token) (8 bytes) || token || note): one answer per exact pair of bytes
    key = hashlib.sha256(
        len(stamp.response).to_bytes(8, "big") + stamp.response + note.encode()
    ).digest()
    if key not in anchors._checked:
        if len(anchors._checked) >= MAX_CHECKED:
            anchors._checked.clear()
        anchors._checked[key] = _verified_time(stamp.response, note, anchors.tsa_certs)
    when = anchors._checked[key]
    return (AnchorStatus.INVALID, None) if when is None else (AnchorStatus.VERIFIED, when)


def _verified_time(
    response: bytes, note: str, certs: Sequence[x509.Certificate]
) -> datetime | None:
    from .tsa import TimestampError, verify_timestamp

    try:
        return verify_timestamp(response, note, certs)
    except TimestampError:
        return None
