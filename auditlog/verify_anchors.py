"""What the caller of ``auditlog verify`` trusts from outside the database (keys, a witness
directory, checkpoint notes it holds) and what follows from it for each log (docs/TRUST.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from auditlog.errors import AuditlogError, ConfigurationError, FormatError
from auditlog.ledger import DirectoryWitness, Report, Verifier, parse_checkpoint, verify_log
from auditlog.ledger.note import split_note
from auditlog.ledger.tables import signers_of
from auditlog.standby import vanished_reason
from auditlog.store.ledger_store import LogInfo
from auditlog.verify_outcome import DatabaseReport

__all__ = ["Anchors", "add_vanished", "checkpoint_sizes", "load_anchors", "trust_reasons"]


@dataclass(slots=True)
class Anchors:
    """What the caller trusts, from outside the database."""

    keys: dict[str, list[Verifier]]  # origin -> keys bound to it
    witness: DirectoryWitness | None
    trusted: dict[str, list[str]]  # origin -> checkpoint notes the caller holds

    def kept_notes(self, origin: str) -> list[str]:
        """Every checkpoint note of ``origin`` kept outside the database. A file that is not
        text is passed on as it is, so that the verifier reports it (``witness.invalid``)."""
        notes = list(self.trusted.get(origin, []))
        if self.witness is not None:
            for size in self.witness.sizes(origin):
                data = self.witness.path_of(origin, size).read_bytes()
                notes.append(data.decode("utf-8", errors="replace"))
        return notes

    def vouched(self) -> set[str]:
        found = set(self.trusted)
        return found | (self.witness.origins() if self.witness is not None else set())


def load_anchors(
    keys: Sequence[str], witness_dir: str | Path | None, trusted_checkpoints: Sequence[str]
) -> Anchors:
    bound: dict[str, list[Verifier]] = {}
    for key in keys:
        try:
            verifier = Verifier.from_key_string(key.strip())
        except FormatError as exc:
            raise ConfigurationError(f"bad verifier key: {exc}") from exc
        bound.setdefault(verifier.name, []).append(verifier)
    witness = None
    if witness_dir is not None:
        if not Path(witness_dir).is_dir():
            raise ConfigurationError(f"witness directory {witness_dir} does not exist")
        witness = DirectoryWitness(witness_dir)
    trusted: dict[str, list[str]] = {}
    for note in trusted_checkpoints:
        try:
            cp = parse_checkpoint(split_note(note)[0])
        except FormatError as exc:
            raise ConfigurationError(f"trusted checkpoint is not a checkpoint note: {exc}") from exc
        trusted.setdefault(cp.origin, []).append(note)
    return Anchors(bound, witness, trusted)


def checkpoint_sizes(notes: list[str]) -> set[int]:
    """The sizes of the checkpoint notes that parse (the others are reported by the verifier)."""
    found = set()
    for note in notes:
        try:
            found.add(parse_checkpoint(split_note(note)[0]).size)
        except AuditlogError:
            continue
    return found


def trust_reasons(report: Report, anchors: Anchors, notes: list[str]) -> None:
    """Why a log is not proven by an outside anchor, in front of the other reasons."""
    reasons = []
    if not anchors.keys.get(report.log):
        signers = sorted({f"{n}+{kid.hex()}" for note in notes for n, kid in signers_of(note)})
        given = sorted(f"{v.name}+{v.key_id.hex()}" for vs in anchors.keys.values() for v in vs)
        reasons.append(
            f"no trusted key for origin {report.log!r}: its checkpoints are signed by "
            f"{', '.join(signers) or 'nobody'}; trusted {', '.join(given) or 'none (no --key)'}"
        )
    if anchors.witness is not None and not anchors.witness.sizes(report.log):
        reasons.append(f"the witness directory holds no checkpoint of {report.log!r}")
    report.unproven[:0] = reasons


def add_vanished(
    report: DatabaseReport,
    present: list[LogInfo],
    anchors: Anchors,
    origin: str | None,
    standby: bool = False,
) -> None:
    """A log the witness (or the caller) vouches for but the database no longer has was deleted
    whole: verify it as the empty log it now is (C10: caught as a rollback)."""
    vouched = anchors.vouched() - {log.origin for log in present}
    for missing in sorted(vouched if origin is None else vouched & {origin}):
        keys = anchors.keys.get(missing, [])
        if standby:  # created on the primary, not yet replayed here
            lagging = Report(log=missing)
            lagging.unproven.append(vanished_reason(missing))
            report.logs.append(lagging)
            continue
        if not keys:  # nothing to check the kept notes with: not proven either way
            gone = Report(log=missing)
            gone.unproven.append(
                f"checkpoints of {missing!r} are kept outside the database, which has no such "
                f"log, and no --key for it checks them"
            )
            report.logs.append(gone)
            continue
        report.logs.append(
            verify_log(
                origin=missing, records=(), verifiers=keys, witnessed=anchors.kept_notes(missing)
            )
        )
