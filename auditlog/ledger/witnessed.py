"""Check a log's stored cosignatures against a witness policy (pure: no I/O).

Two outcomes matter (docs/TRUST.md):

* a cosignature by a witness the policy names that does not verify over the stored checkpoint
  (or a cosignature of a checkpoint the log does not hold) is an integrity failure: somebody
  edited a checkpoint or a cosignature after the witness signed;
* a log whose records are not all covered by a checkpoint the policy accepts is unproven: the
  witnesses have not (yet) vouched for its latest state.

Cosignatures by keys the policy does not name are ignored (they neither help nor hurt). The
checkpoints themselves (log signature, root against the records) are the ledger verifier's work;
this check only adds what the witnesses say about them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auditlog.ledger.cosignature import Cosignature
from auditlog.ledger.witness_policy import WitnessPolicy

__all__ = ["WitnessFinding", "WitnessFindingCode", "check_witnessed"]


class WitnessFindingCode(enum.StrEnum):
    COSIGNATURE_INVALID = "cosignature.invalid"  # integrity failure
    COSIGNATURE_ORPHAN = "cosignature.orphan"  # integrity failure
    WITNESS_UNCOVERED = "witness.uncovered"  # unproven
    WITNESS_UNASKED = "witness.unasked"  # unproven: too few witnesses told their latest view
    TIMESTAMP_INVALID = "timestamp.invalid"  # integrity failure (RFC 3161 token)
    TIMESTAMP_MISSING = "timestamp.missing"  # unproven


_FAILURES = frozenset(
    {
        WitnessFindingCode.COSIGNATURE_INVALID,
        WitnessFindingCode.COSIGNATURE_ORPHAN,
        WitnessFindingCode.TIMESTAMP_INVALID,
    }
)


@dataclass(frozen=True, slots=True)
class WitnessFinding:
    """One result of the witness check: ``failed`` for an integrity failure, else unproven."""

    log: str
    size: int | None  # the checkpoint's tree size, where one is concerned
    code: WitnessFindingCode
    message: str

    @property
    def failed(self) -> bool:
        return self.code in _FAILURES


def check_witnessed(
    origin: str,
    log_size: int,
    checkpoints: Mapping[int, str],
    cosignatures: Mapping[int, Sequence[Cosignature]],
    policy: WitnessPolicy,
) -> tuple[list[WitnessFinding], int | None]:
    """Check every stored cosignature of the log ``origin`` and whether the policy covers it.

    ``checkpoints`` maps tree size to the checkpoint body as signed (the note's text);
    ``cosignatures`` maps tree size to the cosignatures stored with that checkpoint. Returns the
    findings and the largest tree size whose checkpoint the policy accepts (None: none).
    """
    findings: list[WitnessFinding] = []
    witnessed: int | None = None
    for size in sorted(set(cosignatures) - set(checkpoints)):
        findings.append(
            WitnessFinding(
                origin,
                size,
                WitnessFindingCode.COSIGNATURE_ORPHAN,
                f"{len(cosignatures[size])} cosignature(s) of a checkpoint at size {size} that "
                "the log does not hold",
            )
        )
    for size in sorted(checkpoints):
        cosigned: set[str] = set()
        for cosig in cosignatures.get(size, ()):
            witness = policy.witness_for(cosig.name, cosig.key_id)
            if witness is None:
                continue
            if witness.key.verify(cosig, checkpoints[size]):
                cosigned.add(witness.name)
            else:
                findings.append(
                    WitnessFinding(
                        origin,
                        size,
                        WitnessFindingCode.COSIGNATURE_INVALID,
                        f"the cosignature of witness {witness.name!r} (time {cosig.timestamp}) "
                        f"does not verify over the stored checkpoint at size {size}",
                    )
                )
        if policy.satisfied(cosigned):
            witnessed = size
    if log_size > 0 and witnessed != log_size:
        covered = "no checkpoint" if witnessed is None else f"the checkpoint at size {witnessed}"
        findings.append(
            WitnessFinding(
                origin,
                witnessed,
                WitnessFindingCode.WITNESS_UNCOVERED,
                f"the log has {log_size} records; {covered} satisfies the witness policy "
                f"(quorum {policy.quorum!r})",
            )
        )
    return findings, witnessed
