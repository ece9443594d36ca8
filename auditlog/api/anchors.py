"""The outside anchors of a checkpoint (witness cosignatures, RFC 3161 time) as the API shows
them, and what they do to a trail's verdict."""

from __future__ import annotations

from sqlalchemy import Connection

from auditlog.witnesses.state import CheckpointAnchors, OutsideAnchors, checkpoint_anchors

from .schemas import CosignaturePublic, WitnessStatePublic

__all__ = ["witness_state"]


def witness_state(
    conn: Connection, origin: str, log_id: int, size: int, note: str, outside: OutsideAnchors
) -> tuple[WitnessStatePublic, CheckpointAnchors]:
    """The public witness state of the log's checkpoint ``note`` at ``size``, and the checked
    anchors it was made from."""
    anchors = checkpoint_anchors(conn, log_id, size, note, outside)
    public = WitnessStatePublic(
        log=origin,
        checkpoint_size=size,
        cosignatures=[
            CosignaturePublic(
                witness=c.witness,
                key_id=c.key_id,
                time=c.time,
                status=c.status.value,  # type: ignore[arg-type]
            )
            for c in anchors.cosignatures
        ],
        policy_quorum=anchors.quorum,
        policy_satisfied=anchors.policy_satisfied,
        timestamp=anchors.timestamp.value,  # type: ignore[arg-type]
        trusted_time=None if anchors.trusted_time is None else anchors.trusted_time.isoformat(),
    )
    return public, anchors
