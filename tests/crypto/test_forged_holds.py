"""Forged hold and release records (C15, C16), SQLite and PostgreSQL.

The attacker is the database writer of docs/TRUST.md: INSERT on the ledger tables, no
administrative signing key. A hold counts, and a release releases, only when a checkpoint signed
by the erasing key covers the record; ``auditlog verify`` fails an erasure recorded under a hold
in force at its position in the administrative log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, text
from test_sealed_payloads import ADMIN, _codes, _erase, _verify, record_sealed
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.errors import FormatError
from auditlog.ledger import RecordKind, Signer, build_record
from auditlog.protect import ErasureOrder, Hold, HoldScope, list_holds, place_hold, release_hold
from auditlog.protect.admin_log import append_admin_record
from auditlog.protect.erasure import ErasureRefusedError, _shred, _targets
from auditlog.store import (
    UnprovenAdminLogError,
    create_db_engine,
    get_log_id,
    load_log_state,
    read_data_keys,
)

EVIL = "test.example/evil"


@pytest.fixture
def held(db_url: str, tmp_path: Path) -> tuple[dict[str, Any], Hold]:
    """The sealed world with a hold on tenant beta (r-b1), placed by the admin key."""
    rec = record_sealed(db_url, tmp_path)
    engine = create_db_engine(db_url)
    hold = place_hold(
        engine, HoldScope(tenant="beta"), by="legal@example", reason="SEC", signer=rec["admin"]
    )
    engine.dispose()
    return rec, hold


def _insert_raw(conn: Connection, origin: str, fields: dict[str, Any], *, seq: int) -> None:
    """The attacker's INSERT of one valid-looking ``admin`` record at ``seq`` of ``origin``."""
    record = build_record(
        log=origin,
        seq=seq,
        kind=RecordKind.ADMIN,
        request_id=None,
        req_seq=None,
        ts=time.time_ns(),
        prev=None,
        payload=None,
        fields=fields,
    )
    conn.execute(
        text(
            "INSERT INTO records (log_id, seq, kind, request_id, req_seq, tenant, ts, leaf, body)"
            " VALUES (:log_id, :seq, 'admin', NULL, NULL, NULL, :ts, :leaf, :body)"
        ),
        {
            "log_id": get_log_id(conn, origin),
            "seq": seq,
            "ts": record.ts,
            "leaf": record.leaf,
            "body": record.body,
        },
    )


def _release_fields(hold: Hold) -> dict[str, Any]:
    return {"action": "hold.release", "principal": "mallory", "reason": "x", "hold": hold.hold_id}


def _keys_of(rec: dict[str, Any]) -> set[str]:
    engine = create_db_engine(rec["db"])
    with engine.connect() as conn:
        keys = set(read_data_keys(conn, get_log_id(conn, "test.example/sealed")))
    engine.dispose()
    return keys


def test_forged_release_after_the_checkpoint_refuses_the_erasure(
    held: tuple[dict[str, Any], Hold],
) -> None:
    """C15, C16: a release row the writer appends to the administrative log past its signed
    checkpoint does not release: the erasure (function and CLI) is refused, the key stays."""
    rec, hold = held
    engine = create_db_engine(rec["db"])
    with engine.begin() as conn:
        size = load_log_state(conn, get_log_id(conn, ADMIN)).size
        _insert_raw(conn, ADMIN, _release_fields(hold), seq=size)
    engine.dispose()
    with pytest.raises(UnprovenAdminLogError, match="beyond its signed checkpoint"):
        _erase(rec, request_ids=["r-b1"])
    cli = CliRunner().invoke(
        app,
        [
            "erase", "--db", rec["db"], "--key-file", str(rec["admin_key"]),
            "--by", "dpo@example", "--reason", "subject request",
            "--legal-basis", "GDPR Art. 17(1)(a)", "--request", "r-b1",
        ],
    )  # fmt: skip
    assert cli.exit_code == 2 and "beyond its signed checkpoint" in cli.output
    assert "r-b1" in _keys_of(rec)
    listed = CliRunner().invoke(
        app, ["hold", "list", "--db", rec["db"], "--key", rec["admin"].verifier_key]
    )
    assert listed.exit_code == 2 and "beyond its signed checkpoint" in listed.output


def test_forged_release_and_hold_in_another_log_are_ignored(
    held: tuple[dict[str, Any], Hold],
) -> None:
    """C15, C16: a release of the real hold in a log the writer made (unsigned, or signed by a
    key of its own) releases nothing; a forged hold there holds nothing."""
    rec, hold = held
    engine = create_db_engine(rec["db"])
    attacker = Signer.generate(EVIL)
    forged_hold = {
        "action": "hold.place",
        "principal": "m",
        "reason": "x",
        "scope": {"tenant": "acme"},
    }
    with engine.begin() as conn:
        now = time.time_ns()
        for fields in (_release_fields(hold), forged_hold):
            append_admin_record(
                conn, signer=attacker, origin=EVIL, kind=RecordKind.ADMIN, fields=fields, now_ns=now
            )
        size = load_log_state(conn, get_log_id(conn, EVIL)).size
        _insert_raw(conn, EVIL, _release_fields(hold), seq=size)  # and one no checkpoint covers
        assert [h.hold_id for h in list_holds(conn, [rec["admin"].verifier])] == [hold.hold_id]
    engine.dispose()
    with pytest.raises(ErasureRefusedError, match=f"r-b1: hold {hold.hold_id}"):
        _erase(rec, request_ids=["r-b1"])
    assert "r-b1" in _keys_of(rec)
    assert _erase(rec, request_ids=["r-a1"]).erased == [("test.example/sealed", "r-a1")]
    assert _keys_of(rec) == {"r-a2", "r-b1"}


def _erase_unchecked(rec: dict[str, Any], request_id: str) -> None:
    """An erasure recorded and carried out with no look at the holds (code that skips the
    check, or a key holder's script): the record is signed and checkpointed like any other."""
    engine = create_db_engine(rec["db"])
    order = ErasureOrder(by="dpo@example", reason="r", legal_basis="b", request_ids=[request_id])
    why = {"principal": order.by, "reason": order.reason, "legal_basis": order.legal_basis}
    with engine.begin() as conn:
        targets = _targets(conn, order)
        _shred(conn, targets, signer=rec["admin"], origin=ADMIN, fields=why, now_ns=time.time_ns())
    engine.dispose()


def test_verify_fails_an_erasure_under_a_hold_in_force(held: tuple[dict[str, Any], Hold]) -> None:
    """C15, C16: an erasure record that shreds a held request, signed and checkpointed: verify
    exits 1 with erasure.held naming the hold."""
    rec, hold = held
    _erase_unchecked(rec, "r-b1")
    code, report = _verify(rec)
    assert code == 1, report
    assert "erasure.held" in _codes(report)
    held_finding = [f for log in report["logs"] for f in log["findings"]]
    assert any(hold.hold_id in f["message"] for f in held_finding if f["code"] == "erasure.held")


def test_verify_passes_an_erasure_between_release_and_a_new_hold(
    held: tuple[dict[str, Any], Hold],
) -> None:
    """C15, C16: hold, release, erase, hold again: the erasure was made with no hold in force
    at its position, so verify exits 0; an erasure after the new hold fails."""
    rec, hold = held
    engine = create_db_engine(rec["db"])
    release_hold(engine, hold.hold_id, by="legal@example", reason="closed", signer=rec["admin"])
    engine.dispose()
    _erase(rec, request_ids=["r-b1"])
    engine = create_db_engine(rec["db"])
    place_hold(
        engine, HoldScope(tenant="beta"), by="legal@example", reason="again", signer=rec["admin"]
    )
    place_hold(
        engine, HoldScope(tenant="acme"), by="legal@example", reason="new", signer=rec["admin"]
    )
    engine.dispose()
    code, report = _verify(rec)
    assert code == 0, report
    _erase_unchecked(rec, "r-a1")
    code, report = _verify(rec)
    assert code == 1 and "erasure.held" in _codes(report), report


def test_hold_hidden_by_its_kind_column_still_holds(
    held: tuple[dict[str, Any], Hold], admin_connection: Any
) -> None:
    """C15, C16: the database administrator edits the unsigned ``kind`` index column of the
    signed ``hold.place`` record (its body, leaf and checkpoint untouched): the hold is read
    from the proven header, so it stays in force and the erasure is refused, the key kept."""
    rec, hold = held
    seq = int(hold.hold_id.rsplit("#", 1)[1])
    with admin_connection() as conn:
        log_id = get_log_id(conn, ADMIN)
        conn.exec_driver_sql(
            f"UPDATE records SET kind = 'erasure' WHERE log_id = {log_id} AND seq = {seq}"
        )
    engine = create_db_engine(rec["db"])
    with engine.connect() as conn:
        assert [h.hold_id for h in list_holds(conn, [rec["admin"].verifier])] == [hold.hold_id]
    engine.dispose()
    with pytest.raises(ErasureRefusedError):
        _erase(rec, request_ids=["r-b1"])
    assert "r-b1" in _keys_of(rec)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_resumed_verify_fails_an_erasure_under_a_hold_placed_before_the_state(
    held: tuple[dict[str, Any], Hold], tmp_path: Path, jobs: str
) -> None:
    """C15, C16, C8: the hold and the held request lie below the saved state of incremental
    verification, the erasure after it: the resumed run still knows the hold (erasure.held)."""
    rec, _ = held
    state_key = tmp_path / "state.key"
    state_key.write_text(Signer.generate("verify-state").key_string + "\n")
    args = ["verify", "--db", rec["db"], "--json", "--jobs", jobs, "--state",
            str(tmp_path / "verify.state"), "--state-key", str(state_key)]  # fmt: skip
    for key in rec["keys"]:
        args += ["--key", key]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    _erase_unchecked(rec, "r-b1")
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1, again.output
    report = orjson.loads(again.stdout)
    assert all(log["resumed_from"] for log in report["logs"] if log["size"]), report
    assert "erasure.held" in _codes(report)


def test_hold_listing_survives_every_kind_column_edited(
    held: tuple[dict[str, Any], Hold], admin_connection: Any
) -> None:
    """C15: the administrator edits the ``kind`` column of every record of the administrative
    log; the hold (signed, checkpointed) must still be listed."""
    rec, hold = held
    with admin_connection() as conn:
        log_id = get_log_id(conn, ADMIN)
        conn.exec_driver_sql(f"UPDATE records SET kind = 'access' WHERE log_id = {log_id}")
    engine = create_db_engine(rec["db"])
    with engine.connect() as conn:
        found = [h.hold_id for h in list_holds(conn, [rec["admin"].verifier])]
    engine.dispose()
    assert found == [hold.hold_id]


@pytest.mark.parametrize(
    "scope", [{"from": "abc"}, {"to": [1]}, {"tenant": 7}, {"from": "01"}], ids=str
)
def test_hold_with_a_malformed_scope_is_a_finding_not_a_crash(
    db_url: str, tmp_path: Path, scope: dict[str, Any]
) -> None:
    """C15: a ``hold.place`` whose scope is not of the shape ``place_hold`` writes (a time that
    is not decimal nanoseconds, a name that is not a string), signed and checkpointed by the
    administrative key: ``verify`` reports it (header.invalid, exit 1) instead of crashing, and
    a decision resting on holds refuses with a clear error (FormatError) instead of guessing."""
    rec = record_sealed(db_url, tmp_path)
    engine = create_db_engine(db_url)
    fields = {"action": "hold.place", "principal": "legal", "reason": "x", "scope": scope}
    with engine.begin() as conn:
        append_admin_record(
            conn, signer=rec["admin"], origin=ADMIN, kind=RecordKind.ADMIN, fields=fields,
            now_ns=time.time_ns(),
        )  # fmt: skip
    with engine.connect() as conn, pytest.raises(FormatError, match="hold scope"):
        list_holds(conn, [rec["admin"].verifier])
    engine.dispose()
    _erase_unchecked(rec, "r-a1")  # an erasure after it: verify applies the holds
    code, report = _verify(rec)
    assert code == 1 and "header.invalid" in _codes(report), report
