"""An independent verifier of an auditlog SQLite database, written from docs/FORMAT.md alone
(sections 3, 4, 5 and 7). It answers "intact", "failed" or "unproven" with its reasons. What it
does not check can only lower the verdict to "unproven" (fail safe), never raise it."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from format_primitives import FormatError, open_note, parse_checkpoint, parse_verifier_key
from format_records import LogChecker

TABLES = (
    "logs",
    "records",
    "payloads",
    "nodes",
    "checkpoints",
    "signing_keys",
    "data_keys",
    "cosignatures",
    "timestamps",
)
# tables that are not part of the ledger (FORMAT.md names none of them)
IGNORED = {"alembic_version", "api_keys"}


@dataclass
class Verdict:
    verdict: str  # "intact" | "failed" | "unproven"
    failures: list[str] = field(default_factory=list)  # each starts with its finding code
    unproven: list[str] = field(default_factory=list)

    @property
    def codes(self) -> set[str]:
        """The finding codes of section 7 among the failures."""
        return {m.group(0) for f in self.failures if (m := _CODE.match(f))}


_CODE = re.compile(r"[a-z_]+\.[a-z_]+")


def _rows(db: sqlite3.Connection, table: str) -> list[sqlite3.Row]:
    return list(db.execute(f'SELECT * FROM "{table}"'))


def _trusted(keys: list[str]) -> dict[str, dict[tuple[str, bytes], Any]]:
    """origin -> {(name, key id): public key}: a key vouches only for the log of its name."""
    out: dict[str, dict[tuple[str, bytes], Any]] = {}
    for text in keys:
        name, kid, public = parse_verifier_key(text)
        out.setdefault(name, {})[(name, kid)] = public
    return out


def verify_sqlite(
    path: str,
    trusted_keys: list[str],
    witnessed: list[str] | tuple[str, ...] = (),
    *,
    witness_every_log: bool = False,
) -> Verdict:
    """Verify the database file at ``path`` under ``trusted_keys`` (verifier key strings);
    ``witnessed``: checkpoint notes kept outside the database (section 6);
    ``witness_every_log``: the notes are a witness directory's, which should hold every log."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        found = _verify(db, _trusted(trusted_keys), list(witnessed))
        if witness_every_log:
            origins = {r[0] for r in db.execute("SELECT origin FROM logs")}
            seen = {note.split("\n", 1)[0] for note in witnessed}
            found.unproven += [f"no witnessed checkpoint of {o}" for o in sorted(origins - seen)]
            if found.unproven and found.verdict == "intact":
                found.verdict = "unproven"
        return found
    finally:
        db.close()


def _verify(db: sqlite3.Connection, trusted: dict[str, Any], witnessed: list[str]) -> Verdict:
    fail: list[str] = []
    unproven: list[str] = []
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for name in sorted(names - set(TABLES) - IGNORED):
        if db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]:
            unproven.append(f"table {name} has rows this verifier does not check")
    rows = {t: _rows(db, t) if t in names else [] for t in TABLES}
    logs = {r["id"]: r["origin"] for r in rows["logs"]}
    for table in TABLES[1:]:
        if any(r["log_id"] not in logs for r in rows[table]):
            fail.append(f"row.orphan in {table}")
    if not logs and not witnessed:
        unproven.append("empty database")
    checkers: dict[int, LogChecker] = {}
    # rows of a log id that logs does not list are row.orphan and nothing else (section 3.5)
    listed = {t: [r for r in rows[t] if r["log_id"] in logs] for t in TABLES[1:]}
    for log_id, origin in sorted(logs.items()):
        own_keys = _stored_keys(r for r in listed["signing_keys"] if r["log_id"] == log_id)
        checker = LogChecker(origin, trusted.get(origin, {}), own_keys)
        checker.run(
            sorted((r for r in rows["records"] if r["log_id"] == log_id), key=lambda r: r["seq"]),
            {r["seq"]: r["data"] for r in rows["payloads"] if r["log_id"] == log_id},
            [r for r in rows["nodes"] if r["log_id"] == log_id],
            [r for r in rows["checkpoints"] if r["log_id"] == log_id],
        )
        checkers[log_id] = checker
    _witnessed(witnessed, trusted, checkers, fail)
    _anchors(listed, fail)
    _signing_keys(listed["signing_keys"], checkers, fail)
    for r in listed["signing_keys"]:
        checker = next((c for i, c in checkers.items() if i == r["log_id"]), None)
        if checker is not None and (r["key_name"], r["key_id"]) not in checker.trusted_ids():
            unproven.append(f"signing_keys lists {r['key_name']}+{r['key_id']}, not trusted")
    _data_keys(listed["data_keys"], checkers, logs, fail, unproven)
    _holds(checkers, fail)
    for checker in checkers.values():
        checker.finish()
        fail.extend(checker.failures)
        unproven.extend(checker.unproven)
    if fail:
        return Verdict("failed", fail, unproven)
    return Verdict("unproven" if unproven else "intact", fail, unproven)


def _stored_keys(rows: Any) -> dict[tuple[str, bytes], Any]:
    """The public keys of a log's signing_keys rows that parse (section 7: they open its stored
    checkpoints when no trusted key is bound to its origin)."""
    out: dict[tuple[str, bytes], Any] = {}
    for r in rows:
        try:
            name, kid, public = parse_verifier_key(r["verifier_key"])
        except (FormatError, ValueError, TypeError, AttributeError):
            continue  # key.row
        out[(name, kid)] = public
    return out


def _witnessed(
    notes: list[str], trusted: dict[str, Any], checkers: dict[int, LogChecker], fail: list[str]
) -> None:
    by_origin = {c.origin: c for c in checkers.values()}
    for note in notes:
        try:
            lines = note.split("\n", 1)
            keys = trusted.get(lines[0], {})
            origin, size, root = parse_checkpoint(open_note(note, keys))
        except FormatError as exc:
            fail.append(f"witness.invalid: {exc}")
            continue
        checker = by_origin.get(origin)
        if checker is None:  # a log the database lacks entirely: an empty log
            fail.append(f"witness.rollback: {origin} absent, witnessed at {size}")
            continue
        checker.witness(size, root)


def _anchors(rows: dict[str, list[sqlite3.Row]], fail: list[str]) -> None:
    sizes = {(r["log_id"], r["size"]) for r in rows["checkpoints"]}
    for table in ("cosignatures", "timestamps"):
        if any((r["log_id"], r["size"]) not in sizes for r in rows[table]):
            fail.append(f"anchor.orphan in {table}")


def _signing_keys(
    rows: list[sqlite3.Row], checkers: dict[int, LogChecker], fail: list[str]
) -> None:
    """``key.row``: each row copies its key string; every key that signed a stored checkpoint
    of a log is listed for that log."""
    listed = {(r["log_id"], r["key_name"], r["key_id"]) for r in rows}
    for log_id, checker in checkers.items():
        for name, kid in checker.signers:
            if (log_id, name, kid.hex()) not in listed:
                fail.append(f"key.row: {name}+{kid.hex()} signed checkpoints, not listed")
    for r in rows:
        try:
            name, kid, _ = parse_verifier_key(r["verifier_key"])
        except (FormatError, ValueError, TypeError, AttributeError) as exc:
            fail.append(f"key.row: {exc}")
            continue
        if name != r["key_name"] or kid.hex() != r["key_id"]:
            fail.append(f"key.row: {r['key_name']}/{r['key_id']} differ from the key string")


def _data_keys(
    rows: list[sqlite3.Row],
    checkers: dict[int, LogChecker],
    logs: dict[int, str],
    fail: list[str],
    unproven: list[str],
) -> None:
    """Step 8 of section 7: every sealed request has its wrapped key, or a signed erasure."""
    erased: dict[tuple[str, str], bool] = {}  # (origin, request) -> named by a covered erasure
    for checker in checkers.values():
        for (origin, request), covered in checker.erasures.items():
            erased[(origin, request)] = erased.get((origin, request), False) or covered
    keys = {(r["log_id"], r["request_id"]): r for r in rows}
    for log_id, checker in checkers.items():
        for request, (tenant, enc) in checker.sealed.items():
            row = keys.pop((log_id, request), None)
            name = (logs[log_id], request)
            if row is None:
                if name not in erased:
                    fail.append(f"key.absent: {name}")
                elif not erased[name]:
                    unproven.append(f"{name} erased by an erasure no trusted checkpoint covers")
                continue
            if name in erased:
                fail.append(f"erasure.incomplete: {name}")
            wrapped = row["wrapped"]
            digest = checker.digest_hex(wrapped) if isinstance(wrapped, bytes) else None
            if (digest, row["tenant"], row["kek_id"]) != (enc["dek"], tenant, enc["kek"]):
                fail.append(f"key.mismatch: {name}")
    if keys:
        fail.append(f"key.orphan: {sorted(keys)}")


def _holds(checkers: dict[int, LogChecker], fail: list[str]) -> None:
    """Step 9 of section 7: no erasure of a sealed request that a hold in force covers. A hold
    or a release counts whether or not a checkpoint covers it; a hold's id names its position."""
    by_origin = {c.origin: c for c in checkers.values()}
    for checker in checkers.values():
        holds: dict[str, Any] = {}
        for position, h in checker.admin_events:
            action = h.get("action") if h["kind"] == "admin" else "erasure"
            if action == "hold.place":
                holds[f"{checker.origin}#{position}"] = h.get("scope")
            elif action == "hold.release":
                holds.pop(h.get("hold"), None)
            elif action == "erasure":
                for entry in h["erased"]:
                    log = by_origin.get(entry["log"])
                    start = log.starts.get(entry["request_id"]) if log else None
                    if start is None or "enc" not in start:
                        continue
                    if any(_covers(scope, start) for scope in holds.values()):
                        fail.append(f"erasure.held at {position} in {checker.origin}")


def _covers(scope: Any, start: dict[str, Any]) -> bool:
    if not isinstance(scope, dict):
        return False
    for name in ("tenant", "principal", "request_id"):
        if name in scope and scope[name] != start.get(name):
            return False
    ts = int(start["ts"])
    if "from" in scope and not int(scope["from"]) <= ts:
        return False
    return not ("to" in scope and not ts < int(scope["to"]))
