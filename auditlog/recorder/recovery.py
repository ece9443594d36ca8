"""Resuming a log after a restart: the checks that come before the first new record.

Crash recovery itself (closing chains left open as ``interrupted``) is in ``translate``; the
outage spool's checked replay is in ``spool``. This module refuses to resume a database that a
witness has seen larger, or with another history (C10): an administrator who deleted the log's
tail with its newer checkpoints and cosignatures leaves a database that verifies on its own, and
appending to it would fork the log.

The witnesses are asked first (:func:`witness_notes`, network, outside any transaction): a
directory witness for the newest note it keeps (``latest``), a
:class:`~auditlog.witnesses.pool.WitnessPool` for each policy witness's latest cosigned
checkpoint (``latest_cosigned``, the tlog-witness monitoring endpoint). A witness that does not
answer never blocks recording: it is logged and counted, and the resume goes on. Then
:func:`check_against_witnesses` compares every answer with the stored tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from auditlog.errors import LogRolledBackError, NotFoundError
from auditlog.ledger import parse_checkpoint, root_hash
from auditlog.ledger.note import split_note
from auditlog.store import StoredNodeSource, get_log_id, load_log_state

__all__ = ["WitnessView", "check_against_witnesses", "check_database", "witness_notes"]

log = structlog.get_logger("auditlog.recorder")


@dataclass(slots=True)
class WitnessView:
    """The witnesses' latest checkpoints of a log, and the witnesses that gave no answer."""

    notes: list[str] = field(default_factory=list)
    unanswered: dict[str, str] = field(default_factory=dict)  # witness name -> why


def witness_notes(origin: str, witnesses: Sequence[Any]) -> WitnessView:
    """Ask each witness that can say for its latest checkpoint of ``origin``; an unanswering
    policy witness is logged as a warning and named in ``unanswered``."""
    view = WitnessView()
    for witness in witnesses:
        ask = getattr(witness, "latest_cosigned", None)
        if ask is not None:
            answers = ask(origin)
            view.notes += answers.notes.values()
            view.unanswered.update(answers.failed)
            continue
        latest = getattr(witness, "latest", None)
        note = latest(origin) if latest is not None else None
        if note is not None:
            view.notes.append(note)
    if view.unanswered:
        log.warning(
            "recorder.witnesses_unanswered",
            origin=origin,
            witnesses=view.unanswered,
            note="resuming without their view: a rollback of the database is not excluded",
        )
    return view


def check_against_witnesses(origin: str, size: int, source: Any, notes: Sequence[str]) -> None:
    """Refuse (:class:`LogRolledBackError`) to resume a log of ``size`` records (stored tree
    ``source``) that a witness has seen larger, or with another root at a size it holds."""
    for note in notes:
        cp = parse_checkpoint(split_note(note)[0])
        if cp.size > size:
            raise LogRolledBackError(
                f"log {origin}: a witness holds a checkpoint of size {cp.size}, the "
                f"database has {size} records: it was rolled back; refusing to resume"
            )
        if cp.size and root_hash(cp.size, source) != cp.root:
            raise LogRolledBackError(
                f"log {origin}: the database's tree at size {cp.size} differs from the "
                "witnessed checkpoint: it was rewritten; refusing to resume"
            )


def check_database(engine: Engine, origin: str, witnesses: Sequence[Any]) -> WitnessView:
    """Ask the witnesses, then check the stored log against them (read only): what a server
    runs before it starts, so that a rolled-back database stops it with one line."""
    view = witness_notes(origin, witnesses)
    with engine.connect() as conn:
        size, source = _stored(conn, origin)
        check_against_witnesses(origin, size, source, view.notes)
    return view


def _stored(conn: Connection, origin: str) -> tuple[int, StoredNodeSource | None]:
    try:
        log_id = get_log_id(conn, origin)
    except NotFoundError:  # the whole log deleted: every witnessed checkpoint is larger
        return 0, None
    return load_log_state(conn, log_id).size, StoredNodeSource(conn, log_id)
