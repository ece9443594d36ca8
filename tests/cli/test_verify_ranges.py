"""`auditlog verify --jobs`: a log checked in ranges by several processes and joined through the
Merkle frontier finds what one pass finds (C8-C11, docs/TRUST.md section 3).

Ranges of 16 records here (``min_range_level=4``), so that requests, steps and subtrees cross
many range boundaries; the administrator tampers with the records on either side of one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection
from trust_helpers import codes, record_db, verify

from auditlog.ledger.report import Verdict
from auditlog.verifier import DatabaseReport, verify_database

Admin = Callable[[], AbstractContextManager[Connection]]
WIDTH = 16  # records per range


@pytest.fixture
def rec(db_url: str, tmp_path: Path) -> dict[str, Any]:
    return record_db(db_url, tmp_path, n_requests=12)


def run(rec: dict[str, Any], jobs: int, progress: list[int] | None = None) -> DatabaseReport:
    return verify_database(
        rec["db"],
        keys=[rec["key"]],
        witness_dir=rec["witness"],
        jobs=jobs,
        min_range_level=4,
        progress=None if progress is None else progress.append,
    )


def errors(report: DatabaseReport) -> set[str]:
    return {str(f.code) for f in report.findings if str(f.severity) == "error"}


def headers(admin: Admin) -> list[dict[str, Any]]:
    with admin() as conn:
        rows = conn.exec_driver_sql("SELECT body FROM records ORDER BY seq").fetchall()
    return [orjson.loads(bytes(body)) for (body,) in rows]


def rewrite(admin: Admin, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    """The administrator rewrites record ``seq`` as a canonical header with a matching leaf."""
    with admin() as conn:
        (body,) = conn.exec_driver_sql(f"SELECT body FROM records WHERE seq = {seq}").one()
        h = orjson.loads(bytes(body))
        change(h)
        new = orjson.dumps(h, option=orjson.OPT_SORT_KEYS)
        leaf = hashlib.sha256(b"\x00" + new).digest()
        conn.exec_driver_sql(
            "UPDATE records SET body = ?, leaf = ?, request_id = ? WHERE seq = ?"
            if conn.dialect.name == "sqlite"
            else "UPDATE records SET body = %s, leaf = %s, request_id = %s WHERE seq = %s",
            (new, leaf, h["request_id"], seq),
        )


def crossing(hs: list[dict[str, Any]], kind: str) -> int:
    """A record of ``kind`` at the start of a range whose request started in an earlier one."""
    starts = {h["request_id"]: h["seq"] for h in hs if h["kind"] == "request.start"}
    for h in hs:
        first = h["seq"] - h["seq"] % WIDTH
        earlier = starts.get(h["request_id"], first) < first
        if h["kind"] == kind and earlier and h["seq"] - first < 4:
            return int(h["seq"])
    raise AssertionError(f"no {kind} record crosses a range boundary")


def test_ranges_verify_intact_like_one_pass(rec: dict[str, Any]) -> None:
    """C8: split into ranges of 16 records, the log verifies intact, with the same counts and
    root as one pass, and the work was indeed split (one progress call per range)."""
    seen: list[int] = []
    one, many = run(rec, 1), run(rec, 2, seen)
    assert one.verdict is Verdict.INTACT and many.verdict is Verdict.INTACT, many.findings
    assert [(r.size, r.root, r.counts) for r in many.logs] == [
        (r.size, r.root, r.counts) for r in one.logs
    ]
    assert len(seen) > 4 and seen == sorted(seen)


def test_steps_crossing_a_boundary_are_joined(rec: dict[str, Any], admin_connection: Admin) -> None:
    """C11: a manifest whose tokens records begin in an earlier range is matched against all of
    them: intact as recorded; a manifest that drops the earlier ones fails in both modes."""
    hs = headers(admin_connection)
    step_of = {}
    for h in hs:
        if h["kind"] == "tokens":
            step_of.setdefault(h["step"], h["seq"])
    manifest = next(
        h
        for h in hs
        if h["kind"] == "step"
        and h["batch"]
        and step_of.get(h["step"], h["seq"]) < h["seq"] - h["seq"] % WIDTH
    )
    assert run(rec, 2).verdict is Verdict.INTACT

    def drop_first(h: dict[str, Any]) -> None:
        h["n"] -= h["batch"][0][1]
        h["batch"] = h["batch"][1:]

    rewrite(admin_connection, manifest["seq"], drop_first)
    assert "step.mismatch" in errors(run(rec, 1))
    assert "step.mismatch" in errors(run(rec, 2))


@pytest.mark.parametrize(
    ("kind", "field", "code"),
    [
        ("tokens", "prev", "chain.prev"),
        ("tokens", "req_seq", "chain.req_seq"),
        ("request.end", "n_generated", "end.counts"),
    ],
)
def test_chain_tamper_at_a_boundary_fails(
    rec: dict[str, Any], admin_connection: Admin, kind: str, field: str, code: str
) -> None:
    """C9: a chain record at the start of a range, whose request began in an earlier range,
    rewritten (canonical, with a matching leaf): caught by the joined chains as in one pass."""
    seq = crossing(headers(admin_connection), kind)

    def change(h: dict[str, Any]) -> None:
        h[field] = "1" * 64 if field == "prev" else h[field] + 1

    rewrite(admin_connection, seq, change)
    one, many = run(rec, 1), run(rec, 2)
    assert many.verdict is Verdict.FAILED
    assert code in errors(one) and code in errors(many)
    assert errors(many) == errors(one)


def test_request_id_reused_in_a_later_range_fails(
    rec: dict[str, Any], admin_connection: Admin
) -> None:
    """C9: a request id started again ranges after its first start: chain.restarted."""
    hs = headers(admin_connection)
    starts = [h for h in hs if h["kind"] == "request.start"]
    first = starts[0]
    later = next(h for h in starts if h["seq"] // WIDTH > first["seq"] // WIDTH + 1)
    rewrite(admin_connection, later["seq"], lambda h: h.update(request_id=first["request_id"]))
    one, many = run(rec, 1), run(rec, 2)
    assert "chain.restarted" in errors(one) and "chain.restarted" in errors(many)


@pytest.mark.parametrize("where", [0, -1])
def test_record_deleted_at_a_boundary_fails(
    rec: dict[str, Any], admin_connection: Admin, where: int
) -> None:
    """C8: the first or last record of a range deleted: the ranges no longer tile the log, it is
    checked again as one range and every finding of one pass is there."""
    seq = 2 * WIDTH + (where % WIDTH)
    with admin_connection() as conn:
        conn.exec_driver_sql(f"DELETE FROM payloads WHERE seq = {seq}")
        conn.exec_driver_sql(f"DELETE FROM records WHERE seq = {seq}")
    one, many = run(rec, 1), run(rec, 2)
    assert "seq.mismatch" in errors(many)
    assert errors(many) == errors(one)
    assert [f.message for f in many.findings] == [f.message for f in one.findings]


def test_cli_jobs(rec: dict[str, Any]) -> None:
    """`--jobs 2` and `-j 1` give the same intact verdict; `--jobs 0` is a usage error."""
    for jobs in ("2", "1"):
        code, report = verify("--db", rec["db"], "--key", rec["key"], "--jobs", jobs)
        assert code == 0, report
        assert codes(report) == set()
    code, report = verify("--db", rec["db"], "--key", rec["key"], "--jobs", "0")
    assert code == 2 and "--jobs" in report["error"]
