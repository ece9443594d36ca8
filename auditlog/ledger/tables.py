"""Checks of the tables beside ``records`` (docs/FORMAT.md section 3.5): key rows, payload rows,
stored checkpoints a witness holds, rows of no listed log. Pure: values in, findings out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from auditlog.errors import AuditlogError
from auditlog.ledger.note import Verifier, split_note
from auditlog.ledger.report import FindingCode, FindingCollector, Report

__all__ = [
    "KeyRow",
    "check_anchor_rows",
    "check_key_rows",
    "check_payload_rows",
    "check_witnessed_stored",
    "orphan_rows",
    "signers_of",
]


class KeyRow(Protocol):
    """A ``signing_keys`` row."""

    @property
    def key_name(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def verifier_key(self) -> str: ...


def signers_of(note: str) -> list[tuple[str, bytes]]:
    """(key name, key id) of every signature line of a note; [] for a malformed note."""
    try:
        return [(name, kid) for name, kid, _ in split_note(note)[1]]
    except AuditlogError:
        return []


def check_key_rows(
    report: Report, stored: Sequence[KeyRow], trusted: Sequence[Verifier], notes: Iterable[str]
) -> None:
    """``signing_keys`` rows: columns agree with the key string, trusted ids carry trusted keys,
    every trusted key that signed a stored checkpoint is listed (exports embed these keys), and
    a listed key that no trusted key matches keeps the log from "intact"."""
    out = FindingCollector(report)
    by_id = {(v.name, v.key_id.hex()): v.key_string for v in trusted}
    for row in stored:
        problem = _key_row_problem(row, by_id)
        if problem:
            out.add(
                None,
                FindingCode.KEY_ROW,
                "a consistent signing_keys row",
                row.verifier_key[:80],
                f"signing key {row.key_name}+{row.key_id}: {problem}",
            )
        elif trusted and (row.key_name, row.key_id) not in by_id:
            report.unproven.append(
                f"signing_keys lists {row.key_name}+{row.key_id}, which no --key vouches for"
            )
    listed = {(row.key_name, row.key_id) for row in stored}
    signed = {(n, kid.hex()) for note in notes for n, kid in signers_of(note)}
    for name, kid in sorted((signed & set(by_id)) - listed):
        out.add(
            None,
            FindingCode.KEY_ROW,
            f"{name}+{kid} listed",
            "absent",
            f"signing key {name}+{kid} signed stored checkpoints but signing_keys does not list it",
        )


def _key_row_problem(row: KeyRow, by_id: Mapping[tuple[str, str], str]) -> str:
    try:
        key = Verifier.from_key_string(row.verifier_key)  # checks the id against the key
    except AuditlogError as exc:
        return f"its key string is malformed: {exc}"
    name, kid = key.name, key.key_id.hex()
    if (name, kid) != (row.key_name, row.key_id) or key.key_string != row.verifier_key:
        return f"its columns name {row.key_name}+{row.key_id}, its key {name}+{kid}"
    if by_id.get((name, kid), row.verifier_key) != row.verifier_key:
        return "it lists another public key under the id of a trusted key"
    return ""


def check_payload_rows(report: Report, num_stored: int) -> None:
    """Payload rows the verifier did not read with a record are rows no record accounts for."""
    read = report.counts.get("payloads", 0)
    if num_stored != read:
        FindingCollector(report).add(
            None,
            FindingCode.PAYLOAD_ORPHAN,
            read,
            num_stored,
            f"the log stores {num_stored} payload rows, {num_stored - read} of them without a "
            f"record",
        )


def check_anchor_rows(
    report: Report, anchored: Mapping[str, Iterable[int]], stored_sizes: set[int]
) -> None:
    """Cosignature and timestamp rows (``anchored``: table -> checkpoint sizes they name) of a
    checkpoint the log does not store: rows no checkpoint accounts for (one deleted under them,
    or rows added for a size never signed)."""
    out = FindingCollector(report)
    for table, sizes in anchored.items():
        for size in sorted(set(sizes) - stored_sizes):
            out.add(
                None,
                FindingCode.ANCHOR_ORPHAN,
                f"a stored checkpoint of size {size}",
                "absent",
                f"table {table} holds rows of a checkpoint of size {size}, which the log does "
                f"not store",
            )


def check_witnessed_stored(
    report: Report, witnessed_sizes: Iterable[int], stored_sizes: set[int]
) -> None:
    """The writer stores every checkpoint before a witness gets it: one the witness holds and
    the database lacks was deleted (and readers can no longer prove against it)."""
    out = FindingCollector(report)
    for size in witnessed_sizes:
        if size not in stored_sizes:
            out.add(
                None,
                FindingCode.CHECKPOINT_MISSING,
                size,
                None,
                f"the witness holds a checkpoint of size {size} that the database does not",
            )


def orphan_rows(
    name: str, counts: Mapping[str, Mapping[int, int]], known_ids: set[int]
) -> Report | None:
    """Rows of a log id that ``logs`` does not list (``counts``: table -> log id -> rows)."""
    orphans = Report(log=name)
    out = FindingCollector(orphans)
    for table, per_log in counts.items():
        for log_id, n in sorted(per_log.items()):
            if log_id not in known_ids:
                out.add(
                    None,
                    FindingCode.ROW_ORPHAN,
                    0,
                    n,
                    f"table {table} holds {n} rows of log id {log_id}, which no log lists",
                )
    return orphans if orphans.findings else None
