"""The independent verifier of docs/FORMAT.md agrees with ``auditlog verify`` on sealed requests,
their erasure and legal holds (section 7 steps 8 and 9; C15, C16), SQLite: same verdict and the
same finding codes."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from format_verifier import verify_sqlite

from auditlog.ledger import RecordKind
from auditlog.protect import ErasureRefusedError, HoldScope, place_hold
from auditlog.protect.admin_log import append_admin_record
from auditlog.store import create_db_engine
from auditlog.verifier import verify_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "crypto"))
from test_sealed_payloads import ADMIN, ORIGIN, _erase, record_sealed


def _compare(rec: dict[str, Any]) -> str:
    path = rec["db"].removeprefix("sqlite:///")
    mine = verify_sqlite(path, rec["keys"])  # the administrative log has no witness
    theirs = verify_database(rec["db"], keys=rec["keys"])
    codes = {f.code.value for log in theirs.logs for f in log.findings} - {"chain.open"}
    why = [theirs.unproven, *(log.unproven for log in theirs.logs)]
    said = f"independent: {mine}; auditlog: {theirs.verdict} {codes} {why}"
    assert (mine.verdict, mine.codes) == (theirs.verdict.value, codes), said
    return mine.verdict


def _hold(rec: dict[str, Any], tenant: str) -> None:
    engine = create_db_engine(rec["db"])
    try:
        place_hold(
            engine, HoldScope(tenant=tenant), by="legal@x", reason="SEC", signer=rec["admin"]
        )
    finally:
        engine.dispose()


def _delete_key(rec: dict[str, Any], request_id: str) -> None:
    with sqlite3.connect(rec["db"].removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM data_keys WHERE request_id = ?", (request_id,))


def _erased_under_hold(rec: dict[str, Any]) -> None:
    """The administrative key holder bypasses the refusal: an ``erasure`` of r-b1, held."""
    _hold(rec, "beta")
    _delete_key(rec, "r-b1")
    fields = {
        "principal": "dpo@x",
        "reason": "r",
        "legal_basis": "b",
        "erased": [{"log": ORIGIN, "request_id": "r-b1"}],
    }
    engine = create_db_engine(rec["db"])
    try:
        with engine.begin() as conn:
            append_admin_record(
                conn,
                signer=rec["admin"],
                origin=ADMIN,
                kind=RecordKind.ERASURE,
                fields=fields,
                now_ns=time.time_ns(),
            )
    finally:
        engine.dispose()


def _refused(rec: dict[str, Any], **order: Any) -> None:
    with pytest.raises(ErasureRefusedError):
        _erase(rec, **order)


SCENARIOS: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "sealed": ("intact", lambda rec: None),
    "erased": ("intact", lambda rec: _erase(rec, request_ids=["r-b1"])),
    "held_other_tenant_erased": (
        "intact",
        lambda rec: (_hold(rec, "beta"), _erase(rec, request_ids=["r-a1"])),
    ),
    "held_erasure_refused": (
        "intact",
        lambda rec: (_hold(rec, "beta"), _refused(rec, request_ids=["r-b1"])),
    ),
    "erased_under_hold": ("failed", _erased_under_hold),
    "key_deleted_without_erasure": ("failed", lambda rec: _delete_key(rec, "r-a1")),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sealed_erased_and_held_databases_get_the_same_verdict(name: str, tmp_path: Path) -> None:
    """C15, C16: sealed requests, an erasure, a hold that blocks one and a data key deleted
    without an erasure give the same verdict and findings from both verifiers."""
    rec = record_sealed(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path)
    expected, act = SCENARIOS[name]
    act(rec)
    assert _compare(rec) == expected
