"""Verify a whole database: read each log from the store, check it with the pure ledger verifier.

This is the I/O edge of ``auditlog verify``: it opens the database read-only (a missing SQLite file
is a configuration error, never a new empty database reported as intact), streams every log's
records in ``seq`` order into :func:`auditlog.ledger.verify_log`, and anchors each log to the
newest checkpoint a witness holds (``--witness-dir``) or one the caller trusts
(``--trusted-checkpoint``), so that a database rolled back or rewritten by its own administrator
fails (C10).

Trust: signatures are checked against the verifier keys the caller passes. With no key given, the
keys the database itself lists are used, and the report says so (``keys_from_database``): that
catches accidents, not an administrator who can also rewrite the key table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, func, select

from auditlog.errors import ConfigurationError, FormatError, NotFoundError
from auditlog.ledger import (
    DirectoryWitness,
    FindingCode,
    Report,
    Verifier,
    parse_checkpoint,
    verify_log,
)
from auditlog.store import create_db_engine
from auditlog.store.ledger_store import iter_records, list_checkpoints, list_keys, list_logs
from auditlog.store.schema import records

__all__ = ["DatabaseReport", "verify_database"]


@dataclass(slots=True)
class DatabaseReport:
    """Outcome of verifying every selected log of a database."""

    logs: list[Report] = field(default_factory=list)
    keys_from_database: bool = False
    anchored: dict[str, int] = field(default_factory=dict)  # origin -> witnessed tree size

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.logs)

    @property
    def findings(self) -> list[object]:
        return [f for r in self.logs for f in r.findings]

    @property
    def records(self) -> int:
        return sum(r.size for r in self.logs)

    @property
    def tokens(self) -> int:
        return sum(r.counts.get("tokens", 0) for r in self.logs)

    @property
    def open_chains(self) -> list[object]:
        return [f for r in self.logs for f in r.findings if f.code is FindingCode.CHAIN_OPEN]


def verify_database(
    db_url: str,
    *,
    keys: Sequence[str] = (),
    witness_dir: str | Path | None = None,
    trusted_checkpoints: Sequence[str] = (),
    origin: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_log: Callable[[str, int], None] | None = None,
) -> DatabaseReport:
    """Verify the logs of ``db_url`` (all, or the one named ``origin``).

    ``keys`` are verifier-key strings (``name+hexid+base64``); ``trusted_checkpoints`` are signed
    checkpoint notes the caller holds; ``witness_dir`` is a directory witness. ``progress`` gets the
    number of records verified since its last call; ``on_log`` gets (origin, size) before each log.
    """
    try:
        verifiers = [Verifier.from_key_string(k) for k in keys]
    except FormatError as exc:
        raise ConfigurationError(f"bad verifier key: {exc}") from exc
    witness = None
    if witness_dir is not None:
        if not Path(witness_dir).is_dir():
            raise ConfigurationError(f"witness directory {witness_dir} does not exist")
        witness = DirectoryWitness(witness_dir)
    trusted: dict[str, str] = {}
    for note in trusted_checkpoints:
        body = note.split("\n\n", 1)[0] + "\n"
        try:
            cp = parse_checkpoint(body)
        except FormatError as exc:
            raise ConfigurationError(f"trusted checkpoint is not a checkpoint note: {exc}") from exc
        trusted[cp.origin] = note
    engine = create_db_engine(db_url, read_only=True)
    report = DatabaseReport()
    try:
        with engine.connect() as conn:
            all_logs = list_logs(conn)
            logs = all_logs
            if origin is not None:
                logs = [log for log in logs if log.origin == origin]
                if (
                    not logs
                    and origin not in trusted
                    and (witness is None or origin not in witness.origins())
                ):
                    raise NotFoundError(f"no log {origin!r} in the database")
            for log in logs:
                log_verifiers = verifiers
                if not log_verifiers:
                    report.keys_from_database = True
                    log_verifiers = [
                        Verifier.from_key_string(k.verifier_key) for k in list_keys(conn, log.id)
                    ]
                witnessed = _kept_notes(log.origin, trusted, witness)
                anchored = _largest_size(witnessed)
                if anchored is not None:
                    report.anchored[log.origin] = anchored
                if on_log is not None:
                    on_log(log.origin, _size(conn, log.id))
                report.logs.append(
                    verify_log(
                        origin=log.origin,
                        records=iter_records(conn, log.id),
                        checkpoints=[c.note for c in list_checkpoints(conn, log.id)],
                        verifiers=log_verifiers,
                        witnessed=witnessed,
                        progress=progress,
                    )
                )
            # A log the witness (or the caller) vouches for but the database no longer has was
            # deleted whole: verify it as the empty log it now is (C10: caught as a rollback).
            present = {log.origin for log in all_logs}
            vouched = set(trusted)
            if witness is not None:
                vouched |= witness.origins()
            if origin is not None:
                vouched &= {origin}
            for missing in sorted(vouched - present):
                report.logs.append(
                    verify_log(
                        origin=missing,
                        records=(),
                        verifiers=verifiers,
                        witnessed=_kept_notes(missing, trusted, witness),
                    )
                )
    finally:
        engine.dispose()
    return report


def _kept_notes(
    origin: str, trusted: dict[str, str], witness: DirectoryWitness | None
) -> list[str]:
    """Every checkpoint note of ``origin`` kept outside the database: the caller's trusted one
    and all the witness holds. A file that cannot be read as text is passed on as it is, so that
    the verifier reports it (``witness.invalid``) instead of crashing."""
    notes = [trusted[origin]] if origin in trusted else []
    if witness is not None:
        for size in witness.sizes(origin):
            path = witness.path_of(origin, size)
            notes.append(path.read_bytes().decode("utf-8", errors="replace"))
    return notes


def _largest_size(notes: list[str]) -> int | None:
    sizes = []
    for note in notes:
        try:
            sizes.append(parse_checkpoint(note.split("\n\n", 1)[0] + "\n").size)
        except FormatError:
            continue  # reported by the verifier as witness.invalid
    return max(sizes, default=None)


def _size(conn: Connection, log_id: int) -> int:
    return int(conn.execute(select(func.count()).where(records.c.log_id == log_id)).scalar_one())
