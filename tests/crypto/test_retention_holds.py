"""C14 retention classes, C15 legal holds, C16 erasure refused under them (SQLite, PostgreSQL).

The requests are recorded by the real recorder with a retention policy; holds, erasures and
retention runs go through the real CLI; ``auditlog verify`` checks the database after each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from test_sealed_payloads import ADMIN, _erase, _trail, _verify, record_sealed
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.crypto import LocalKeyring
from auditlog.errors import ConfigurationError
from auditlog.ledger import parse_header
from auditlog.protect import HoldScope, RetentionPolicy, list_holds, place_hold
from auditlog.protect.erasure import ErasureRefusedError
from auditlog.store import bodies_of_kind, create_db_engine
from auditlog.trails import Content

DAY = 86_400 * 10**9


@pytest.fixture
def retained(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """acme's requests under eu-ai-act (183 days, legal); beta's under default (365, not)."""
    return record_sealed(db_url, tmp_path, RetentionPolicy(tenants={"acme": "eu-ai-act"}))


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _admin_actions(db: str) -> list[dict[str, Any]]:
    engine = create_db_engine(db, read_only=True)
    with engine.connect() as conn:
        found = [parse_header(body) for _, _, body in bodies_of_kind(conn, "admin")]
    engine.dispose()
    return found


def _start_ts(rec: dict[str, Any], request_id: str) -> int:
    return int(_trail(rec, request_id).start["ts"])


def test_retention_class_is_recorded_at_start(retained: dict[str, Any]) -> None:
    """C14: each request.start carries its tenant's class and the end of its period."""
    for rid, klass, days, legal in (
        ("r-a1", "eu-ai-act", 183, True),
        ("r-b1", "default", 365, False),
    ):
        start = _trail(retained, rid).start
        assert start["retention"] == {
            "class": klass,
            "legal": legal,
            "until": str(start["ts"] + days * DAY),
        }
    with pytest.raises(ConfigurationError, match="unknown retention class"):
        RetentionPolicy(tenants={"acme": "forever"})


def test_held_erasure_is_refused_and_recorded_then_allowed_after_release(
    retained: dict[str, Any],
) -> None:
    """C15, C16: a hold blocks erasure with a clear error; the refusal is a signed record; after
    the release the erasure goes through and verify exits 0."""
    key = str(retained["admin_key"])
    placed = _cli(
        "hold",
        "place",
        "--db",
        retained["db"],
        "--key-file",
        key,
        "--by",
        "legal@example",
        "--reason",
        "SEC inquiry 42",
        "--tenant",
        "beta",
    )
    assert placed.exit_code == 0, placed.output
    hold_id = placed.stdout.strip()
    assert hold_id.startswith(f"{ADMIN}#")
    listed = _cli("hold", "list", "--db", retained["db"], "--key", retained["admin"].verifier_key)
    assert [orjson.loads(line)["id"] for line in listed.stdout.splitlines()] == [hold_id]
    with pytest.raises(ErasureRefusedError, match=f"r-b1: hold {hold_id}"):
        _erase(retained, request_ids=["r-b1"])
    refusal = [a for a in _admin_actions(retained["db"]) if a["action"] == "erase.refused"]
    assert len(refusal) == 1 and refusal[0]["refused"] == [
        {"log": "test.example/sealed", "request_id": "r-b1", "because": f"hold {hold_id}"}
    ]
    assert refusal[0]["principal"] == "dpo@example"
    keyring = LocalKeyring.load(retained["keyring"])
    assert _trail(retained, "r-b1", keyring).content is Content.DECRYPTED  # nothing shredded
    code, report = _verify(retained)
    assert code == 0, report
    released = _cli(
        "hold",
        "release",
        hold_id,
        "--db",
        retained["db"],
        "--key-file",
        key,
        "--by",
        "legal@example",
        "--reason",
        "inquiry closed",
    )
    assert released.exit_code == 0, released.output
    assert (
        _cli("hold", "list", "--db", retained["db"], "--key", retained["admin"].verifier_key).stdout
        == ""
    )
    _erase(retained, request_ids=["r-b1"])
    assert _trail(retained, "r-b1", keyring).content is Content.ERASED
    code, report = _verify(retained)
    assert code == 0, report
    again = _cli(
        "hold",
        "release",
        hold_id,
        "--db",
        retained["db"],
        "--key-file",
        key,
        "--by",
        "x",
        "--reason",
        "y",
    )
    assert again.exit_code == 2 and "no hold" in again.output


def test_legal_retention_blocks_erasure(retained: dict[str, Any]) -> None:
    """C14, C16 (GDPR 17(3)(b)): inside a legal retention period an erasure is refused."""
    with pytest.raises(ErasureRefusedError, match="r-a1: retention eu-ai-act until"):
        _erase(retained, request_ids=["r-a1"])
    assert [a["action"] for a in _admin_actions(retained["db"])] == ["erase.refused"]


def test_retention_apply_with_a_moved_clock_shreds_exactly_what_is_due(
    retained: dict[str, Any],
) -> None:
    """C14, C15: at +200 days acme's requests are due, bob's is held: only r-a1 goes; at +400
    days beta's is due too; the held one stays; verify exits 0 naming each erasure."""
    engine = create_db_engine(retained["db"])
    place_hold(
        engine,
        HoldScope(tenant="acme", principal="bob"),
        by="legal@example",
        reason="litigation",
        signer=retained["admin"],
    )
    with engine.connect() as conn:
        assert len(list_holds(conn, [retained["admin"].verifier])) == 1
    engine.dispose()
    t0 = max(_start_ts(retained, r) for r in ("r-a1", "r-a2", "r-b1"))
    key = str(retained["admin_key"])

    def apply(days: int) -> str:
        result = _cli(
            "retention",
            "apply",
            "--db",
            retained["db"],
            "--key-file",
            key,
            "--now",
            str(t0 + days * DAY),
        )
        assert result.exit_code == 0, result.output
        return str(result.stdout)

    assert apply(100) == "nothing is due\n"
    assert apply(200).rstrip().endswith("shredded 1 request(s): r-a1")
    assert apply(300) == "nothing is due\n"
    assert apply(400).rstrip().endswith("shredded 1 request(s): r-b1")
    keyring = LocalKeyring.load(retained["keyring"])
    contents = {r: _trail(retained, r, keyring).content for r in ("r-a1", "r-a2", "r-b1")}
    assert contents == {"r-a1": Content.ERASED, "r-a2": Content.DECRYPTED, "r-b1": Content.ERASED}
    code, report = _verify(retained)
    assert code == 0, report
    erased = next(r for r in report["logs"] if r["log"] == "test.example/sealed")["erased"]
    assert set(erased) == {"r-a1", "r-b1"}
    assert {e["reason"] for e in erased.values()} == {"retention period expired"}
