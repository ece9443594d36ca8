"""Replay of a bundle, verified first: the one path the CLI and the auditor API share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from auditlog.bundle.format import Bundle
from auditlog.bundle.verify import KeyTrust, verify_decoded
from auditlog.errors import ReplayRefusedError, VerificationError
from auditlog.ledger import Verifier

from .compare import ReplayResult, refused, unverified
from .plan import plan_replay
from .run import DEFAULT_MODEL_DIR, replay

__all__ = ["replay_bundle"]


def replay_bundle(
    bundle: Bundle,
    trusted: Sequence[Verifier],
    *,
    model_dir: Path = DEFAULT_MODEL_DIR,
    device: str = "cpu",
) -> tuple[ReplayResult, KeyTrust | None]:
    """Verify ``bundle`` (docs/FORMAT.md 9.3), plan and replay it; return the result and the
    trust of the key that verified it (None when it did not verify).

    Only what the verifier proved is replayed: a trail that does not verify gives an UNVERIFIED
    result and runs nothing.
    """
    try:
        report = verify_decoded(bundle, trusted)
    except VerificationError as exc:
        return unverified(bundle.request_id, str(exc)), None
    try:
        plan = plan_replay(bundle, report)
    except ReplayRefusedError as exc:
        return refused(bundle.request_id, str(exc)), report.trust
    return replay(plan, model_dir=model_dir, device=device), report.trust
