"""Attacks on the verifier's fast paths through whole logs (C1, C6, C8, C11).

A request whose records alternate between the fast and the full paths (a tokens record with an
extra field, a manifest without ``passes``, a payload with an extra key take the full path) must
get exactly the findings it gets with the fast paths switched off, intact or tampered. Then a
database recorded by the real recorder, edited through raw SQL as its administrator could: hostile
bytes the fast paths once let escape as exceptions are findings, and never "intact".
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import load_make_golden

from auditlog.ledger import RecordKind, header_fast, header_parse, tokens_rules, verify_log
from auditlog.verifier import verify_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cli"))  # the recording helper
from trust_helpers import record_db

G = load_make_golden()
SIGNER = G.golden_signer()
Records = list[Any]


def _alternating_log() -> tuple[Records, list[str]]:
    """Three requests over six steps; the fast and the full paths take turns within each."""
    log = G.LogBuilder()
    for rid in "abc":
        log.start(rid, "acme", G.T0, [1], "x")
    for step in range(6):
        odd = step % 2 == 1
        for rid, extra in (("a", {}), ("b", {"note": "full"} if odd else {}), ("c", {})):
            drafts = [7, 8] if rid == "c" else []
            payload: dict[str, Any] = {"token_ids": [7, 9] if drafts else [5, 6], "drafts": drafts}
            if rid == "c" and odd:
                payload["extra"] = 1  # the payload fast path refuses unknown keys
            prov = ["draft_accepted", "target_recovered"] if drafts else ["target", "target"]
            log.add(
                RecordKind.TOKENS,
                G.T0 + step,
                rid=rid,
                payload=payload,
                step=step,
                n=2,
                prov=prov,
                **extra,
            )
        passes = {} if odd else {"passes": 1}
        batch = [["a", 2], ["b", 2], ["c", 2]]
        log.add(RecordKind.STEP, G.T0 + step, step=step, batch=batch, n=6, **passes)
    for rid in "abc":
        log.end(rid, G.T0 + 9, "stop", 12, 12)
    checkpoint = log.checkpoint(SIGNER)
    return [G.stored(r) for r in log.records], [checkpoint]


def _findings(records: Records, checkpoints: list[str]) -> list[tuple[str, Any, str]]:
    report = verify_log(
        origin=G.ORIGIN, records=records, checkpoints=checkpoints, verifiers=[SIGNER.verifier]
    )
    return [(f.code.value, f.index, f.message) for f in report.findings]


def _both(records: Records, checkpoints: list[str]) -> list[tuple[str, Any, str]]:
    """The findings with the fast paths, after checking they equal those without them."""
    fast = _findings(records, checkpoints)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(header_parse, "plain_header", lambda body: None)
        m.setattr(tokens_rules, "_canonical_payload", lambda payload, n: None)
        full = _findings(records, checkpoints)
    assert fast == full
    return fast


def test_the_paths_alternate_within_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    records, checkpoints = _alternating_log()
    taken: list[bool] = []
    plain = header_fast.plain_header

    def counted(body: bytes) -> Any:
        parsed = plain(body)
        taken.append(parsed is not None)
        return parsed

    monkeypatch.setattr(header_parse, "plain_header", counted)
    assert _findings(records, checkpoints) == []
    assert taken.count(True) >= 12 and taken.count(False) >= 12  # starts and ends: full path


def _edit(i: int, old: bytes, new: bytes) -> Callable[[Records], Records]:
    def edit(records: Records) -> Records:
        out = list(records)
        assert old in out[i].body, (i, old)
        out[i] = dataclasses.replace(out[i], body=out[i].body.replace(old, new, 1))
        return out

    return edit


def _payload(i: int, old: bytes, new: bytes) -> Callable[[Records], Records]:
    def edit(records: Records) -> Records:
        out = list(records)
        out[i] = dataclasses.replace(out[i], payload=out[i].payload.replace(old, new, 1))
        return out

    return edit


def _drop(i: int) -> Callable[[Records], Records]:
    return lambda records: records[:i] + records[i + 1 :]


def _swap(i: int) -> Callable[[Records], Records]:
    return lambda records: [*records[:i], records[i + 1], records[i], *records[i + 2 :]]


def _upper_prev(body: bytes) -> bytes:
    """The ``prev`` digest in uppercase: bytes.fromhex reads it, FORMAT.md 3.1 does not."""
    at = body.index(b'"prev":"') + len(b'"prev":"')
    out = body[:at] + body[at : at + 64].upper() + body[at + 64 :]
    assert out != body
    return out


def _prev_upper(i: int) -> Callable[[Records], Records]:
    def edit(records: Records) -> Records:
        out = list(records)
        out[i] = dataclasses.replace(out[i], body=_upper_prev(out[i].body))
        return out

    return edit


# step 0: records 3, 4, 5 (a, b, c: fast) and manifest 6 (fast); step 1: 7 (a: fast), 8 (b: full,
# "note"), 9 (c: payload full, "extra") and manifest 10 (full, no passes)
TAMPERS = {
    "fast_n": _edit(3, b'"n":2', b'"n":3'),
    "full_n": _edit(8, b'"n":2', b'"n":3'),
    "fast_prev_upper": _prev_upper(3),
    "full_prev_upper": _prev_upper(8),
    "full_ts_plus": _edit(8, b'"ts":"', b'"ts":"+'),
    "fast_escape": _edit(3, b'"log":"a', b'"log":"\\u0061'),
    "fast_prov": _edit(4, b'"target","target"', b'"target","bonus"'),
    "full_prov": _edit(9, b'"draft_accepted"', b'"bonus"'),
    "fast_manifest": _edit(6, b'["b",2]', b'["b",1]'),
    "full_manifest": _edit(10, b'["a",2],["b",2]', b'["b",2],["a",2]'),
    "manifest_passes": _edit(6, b'"passes":1', b'"passes":-1'),
    "payload_fast": _payload(5, b"[7,8]", b"[7,7]"),
    "payload_full": _payload(9, b'"extra":1', b'"extra":2'),
    "payload_deep": _payload(5, b"{", b'{"x":' + b"[" * 5000 + b"]" * 5000 + b","),
    "step_not_utf8": _edit(6, b'["a",2]', b'["\xff",2]'),
    "drop_fast": _drop(3),
    "drop_full": _drop(7),
    "swap_paths": _swap(6),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampers_get_the_same_findings_on_both_paths(name: str) -> None:
    records, checkpoints = _alternating_log()
    assert _both(records, checkpoints) == []
    assert _both(TAMPERS[name](records), checkpoints) != []


TOKENS = "(SELECT min(seq) FROM records WHERE kind = 'tokens')"
STEP = "(SELECT min(seq) FROM records WHERE kind = 'step')"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("attacks")
    rec = record_db(f"sqlite:///{base / 'audit.db'}", base, n_requests=2)
    with sqlite3.connect(base / "audit.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rec["path"] = base / "audit.db"
    yield rec


def _verify_edited(rec: dict[str, Any], tmp_path: Path, column: str, seq: str, edit: Any) -> Any:
    """Copy the database, replace one stored value with ``edit(value)`` and verify the copy."""
    path = tmp_path / "case.db"
    shutil.copyfile(rec["path"], path)
    table = "payloads" if column == "data" else "records"
    with sqlite3.connect(path) as db:
        for (name,) in list(db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")):
            db.execute(f'DROP TRIGGER "{name}"')  # the administrator's power
        (value,) = db.execute(f"SELECT {column} FROM {table} WHERE seq = {seq}").fetchone()
        db.execute(f"UPDATE {table} SET {column} = ? WHERE seq = {seq}", (edit(bytes(value)),))
    return verify_database(f"sqlite:///{path}", keys=[rec["key"]], witness_dir=rec["witness"])


def _not_utf8_manifest(body: bytes) -> bytes:
    start = body.index(b'"batch":[["') + len(b'"batch":[["')
    return body[:start] + b"\xff" + body[start:]


EDITS = {
    "step_not_utf8": ("body", STEP, _not_utf8_manifest, "header.invalid"),
    "tokens_not_utf8": (
        "body",
        TOKENS,
        lambda b: b.replace(b'"log":"', b'"log":"\xc3', 1),
        "header.invalid",
    ),
    "tokens_prev_upper": ("body", TOKENS, _upper_prev, "header.invalid"),
    "tokens_ts_arabic": (
        "body",
        TOKENS,
        lambda b: b.replace(b'"ts":"', '"ts":"٣'.encode(), 1),
        "header.invalid",
    ),
    "payload_deep": (
        "data",
        TOKENS,
        lambda d: b'{"x":' + b"[" * 9000 + b"]" * 9000 + b"," + d[1:],
        "payload.mismatch",
    ),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_raw_sql_edits_are_findings(recorded: dict[str, Any], tmp_path: Path, name: str) -> None:
    column, seq, edit, code = EDITS[name]
    report = _verify_edited(recorded, tmp_path, column, seq, edit)
    codes = {f.code.value for log in report.logs for f in log.findings}
    assert report.verdict.value == "failed" and code in codes, report.logs
