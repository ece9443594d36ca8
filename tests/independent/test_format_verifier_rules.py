"""The rules docs/FORMAT.md states precisely (sections 3.4, 3.5 and 7) give the same finding codes
in the independent verifier (format_verifier.py) and in ``auditlog verify`` (C8, C10, C16): the
content rules read payload bytes that are JSON text, whatever their digest; a stored checkpoint
that does not open is ``checkpoint.invalid`` with or without a trusted key; rows of an unlisted
log id are ``row.orphan`` only; the payload of a record with an invalid header is
``payload.orphan``."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from format_verifier import verify_sqlite

from auditlog.verifier import verify_database

CLI_TESTS = Path(__file__).resolve().parent.parent / "cli"
sys.path.insert(0, str(CLI_TESTS))  # the shared recording helper

from trust_helpers import record_db  # noqa: E402

TOKENS = "(SELECT min(seq) FROM records WHERE kind = 'tokens')"
# name -> (SQL the database administrator runs, trusted key given, auditlog's finding codes)
CASES: dict[str, tuple[list[str], bool, set[str]]] = {
    "tokens_payload_array": (
        [f"UPDATE payloads SET data = CAST('[1, 2]' AS BLOB) WHERE seq = {TOKENS}"],
        True,
        {"payload.mismatch", "tokens.payload"},
    ),
    "tokens_payload_not_json": (
        [f"UPDATE payloads SET data = CAST('NaN' AS BLOB) WHERE seq = {TOKENS}"],
        True,
        {"payload.mismatch"},
    ),
    "no_key_and_no_signing_keys": (["DELETE FROM signing_keys"], False, {"checkpoint.invalid"}),
    "origin_edited": (
        ["UPDATE logs SET origin = 'other.example/log'"],
        True,
        {"checkpoint.invalid", "header.log", "witness.rollback"},
    ),
    "data_key_of_unlisted_log": (
        ["INSERT INTO data_keys VALUES (99, 'r', 't', 'k', x'00')"],
        True,
        {"row.orphan"},
    ),
    "signing_key_of_unlisted_log": (
        ["INSERT INTO signing_keys VALUES (99, 'n', '00000000', 'junk', 0, NULL)"],
        True,
        {"row.orphan"},
    ),
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A database recorded by the real recorder (SQLite, plaintext payloads), its witness."""
    base = tmp_path_factory.mktemp("rules")
    rec = record_db(f"sqlite:///{base / 'audit.db'}", base, n_requests=2)
    with sqlite3.connect(base / "audit.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rec["path"] = base / "audit.db"
    rec["notes"] = [p.read_text() for p in sorted(Path(rec["witness"]).iterdir())]
    yield rec


def _mutated(rec: dict[str, Any], tmp_path: Path, sql: list[str]) -> Path:
    path = tmp_path / "case.db"
    shutil.copyfile(rec["path"], path)
    with sqlite3.connect(path) as db:
        triggers = list(db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        for (name,) in triggers:  # the administrator's power: append-only triggers off
            db.execute(f'DROP TRIGGER "{name}"')
        for statement in sql:
            db.execute(statement)
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_precise_rules_give_the_same_codes(
    recorded: dict[str, Any], tmp_path: Path, name: str
) -> None:
    """C8, C10, C16: both verifiers fail the case with the codes FORMAT.md now names."""
    sql, trusted, expected = CASES[name]
    path = _mutated(recorded, tmp_path, sql)
    keys = [recorded["key"]] if trusted else []
    notes = recorded["notes"] if trusted else []
    theirs = verify_database(f"sqlite:///{path}", keys=keys, trusted_checkpoints=notes)
    mine = verify_sqlite(str(path), keys, notes)
    codes = {f.code.value for log in theirs.logs for f in log.findings} - {"chain.open"}
    assert (theirs.verdict.value, codes) == ("failed", expected), theirs.logs
    assert (mine.verdict, mine.codes) == ("failed", expected), mine


def test_payload_of_an_invalid_header_is_an_orphan(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    """C8 (section 3.5): a record with an invalid header commits to no payload, so its stored
    payload is ``payload.orphan`` for both verifiers."""
    path = _mutated(
        recorded, tmp_path, [f"UPDATE records SET body = CAST('x' AS BLOB) WHERE seq = {TOKENS}"]
    )
    theirs = verify_database(
        f"sqlite:///{path}", keys=[recorded["key"]], trusted_checkpoints=recorded["notes"]
    )
    mine = verify_sqlite(str(path), [recorded["key"]], recorded["notes"])
    codes = {f.code.value for log in theirs.logs for f in log.findings} - {"chain.open"}
    assert {"header.invalid", "payload.orphan"} <= codes
    assert mine.codes == codes, (mine, theirs.logs)
