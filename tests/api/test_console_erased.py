"""The console's trail page of sealed content that is gone (C16), as an auditor of its tenant
(C17, C19) sees it through a TestClient, on SQLite and PostgreSQL.

An erasure through ``auditlog.protect`` shows as "Erased by record N of LOG on DATE: reason
(legal basis)", from the API's own trail model, with no plaintext left on the page and the
verdict unchanged. A data key deleted behind the log's back (no erasure record) is an integrity
problem: the page says so under a failed verdict, as ``auditlog verify`` and the API do, and never
as an erasure.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from api_helpers import ADMIN_ORIGIN, ENGINE_ORIGIN, World, fixed_signer, insert_record_row
from console_helpers import sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete

from auditlog.ledger import RecordKind, Signer, build_record
from auditlog.ledger.report import Verdict
from auditlog.protect import ErasureOrder, erase
from auditlog.protect.admin_log import append_admin_record
from auditlog.store.ledger_store import get_log_id, load_log_state
from auditlog.store.schema import data_keys
from auditlog.verifier import verify_database

AdminConn = Callable[[], AbstractContextManager[Connection]]
TENANT, AUDITOR = "tenant-0", "auditor0"
EVIL = "test.example/evil-admin"


def _page(world: World, request_id: str) -> str:
    client = TestClient(world.app)
    assert sign_in(client, world.tokens[AUDITOR]).status_code == 303
    response = client.get(f"/console/requests/{request_id}")
    assert response.status_code == 200, response.text
    return response.text


def _api(world: World, request_id: str) -> dict[str, Any]:
    response = world.client.get(f"/v1/requests/{request_id}", headers=world.headers(AUDITOR))
    assert response.status_code == 200, response.text
    trail: dict[str, Any] = response.json()
    return trail


def _verify(world: World) -> Any:
    keys = [
        world.engine_signer.verifier_key,
        world.api_signer.verifier_key,
        fixed_signer(ADMIN_ORIGIN).verifier_key,
    ]
    return verify_database(world.db_url, keys=keys)


def _delete_key(admin_connection: AdminConn, request_id: str) -> None:
    with admin_connection() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        gone = conn.execute(
            delete(data_keys).where(
                data_keys.c.log_id == log_id, data_keys.c.request_id == request_id
            )
        )
        assert gone.rowcount == 1


def _erasure_fields(request_id: str) -> dict[str, Any]:
    return {
        "principal": "mallory",
        "reason": "routine clean-up",
        "legal_basis": "GDPR Art. 17(1)(a)",
        "erased": [{"log": ENGINE_ORIGIN, "request_id": request_id}],
    }


def _insert_erasure_row(conn: Connection, origin: str, request_id: str, *, seq: int) -> None:
    """The database writer's INSERT of one well-formed ``erasure`` record at ``seq``."""
    record = build_record(
        log=origin,
        seq=seq,
        kind=RecordKind.ERASURE,
        request_id=None,
        req_seq=None,
        ts=1_700_000_000_000_000_000,
        prev=None,
        payload=None,
        fields=_erasure_fields(request_id),
    )
    insert_record_row(
        conn,
        get_log_id(conn, origin),
        seq=seq,
        kind="erasure",
        ts=record.ts,
        leaf=record.leaf,
        body=record.body,
    )


def _forge_in_own_log(world: World, admin_connection: AdminConn, victim: str) -> None:
    """A log of the attacker's own, with a checkpoint signed by the attacker's key (stored in
    the database like any key) over a well-formed erasure record naming the victim."""
    with admin_connection() as conn:
        append_admin_record(
            conn,
            signer=Signer.generate(EVIL),
            origin=EVIL,
            kind=RecordKind.ERASURE,
            fields=_erasure_fields(victim),
            now_ns=1_700_000_000_000_000_000,
        )


def _forge_past_admin_checkpoint(world: World, admin_connection: AdminConn, victim: str) -> None:
    """A real erasure (of another request) makes the administrative log; the writer then appends
    an erasure row naming the victim past its signed checkpoint."""
    other = next(r for r, t in world.truth.items() if t.tenant == TENANT and r != victim)
    order = ErasureOrder(by="dpo", reason="r", legal_basis="b", request_ids=[other])
    erase(world.engine, order, signer=fixed_signer(ADMIN_ORIGIN))
    with admin_connection() as conn:
        size = load_log_state(conn, get_log_id(conn, ADMIN_ORIGIN)).size
        _insert_erasure_row(conn, ADMIN_ORIGIN, victim, seq=size)


@pytest.mark.parametrize(
    "forge", [_forge_in_own_log, _forge_past_admin_checkpoint], ids=["own-log", "past-checkpoint"]
)
def test_forged_erasure_record_is_not_shown_as_an_erasure(
    sealed_world: World,
    admin_connection: AdminConn,
    forge: Callable[[World, AdminConn, str], None],
) -> None:
    """C16, attacker (database administrator, no administrative signing key): the victim's data
    key deleted and an erasure record naming it forged, in a log signed by a key of the
    attacker's own or past the administrative log's signed checkpoint. The API and the console
    do not say "erased": the content is "erasure-unproven", the verdict is not anchored, the page
    names no erasure record, the forged record is not listed as an erasure, and ``auditlog
    verify`` does not say intact."""
    world = sealed_world
    victim = world.request_of(TENANT)
    assert _api(world, victim)["verification"]["status"] == "anchored"
    forge(world, admin_connection, victim)
    _delete_key(admin_connection, victim)
    trail = _api(world, victim)
    assert trail["content"] == "erasure-unproven" and trail["erasure"] is None
    assert trail["verification"]["status"] != "anchored"
    assert "not proven erased" in trail["verification"]["message"]
    page = _page(world, victim)
    for part in ("prompt", "output"):
        assert f'id="{part}-content" data-content="unproven"' in page
    assert "Not proven erased" in page
    assert "erased by record" not in page.lower() and 'data-content="erased"' not in page
    assert 'data-status="anchored"' not in _verdict_section(page)
    listed = world.client.get("/v1/erasures", headers=world.headers("admin"))
    assert listed.status_code in (200, 409), listed.text
    if listed.status_code == 200:
        named = [r["request_id"] for e in listed.json()["items"] for r in e["requests"]]
        assert victim not in named
    report = _verify(world)
    assert report.verdict is not Verdict.INTACT, report.findings


def _verdict_section(page: str) -> str:
    start = page.index('id="verdict"')
    return page[start : page.index("</section>", start)]


def test_erased_trail_names_the_erasure_record_and_shows_no_plaintext(
    sealed_world: World,
) -> None:
    """C16: after an erasure the page names its record, date, reason and legal basis for the
    prompt and the output, shows none of the prompt or token ids, and nothing else changes
    (same verdict as before, as the API's; ``auditlog verify`` intact)."""
    world = sealed_world
    victim = world.request_of(TENANT)
    before = _api(world, victim)
    prompt = before["prompt_text"]
    assert before["content"] == "decrypted" and prompt
    assert html.escape(prompt) in _page(world, victim)
    result = erase(
        world.engine,
        ErasureOrder(
            by="dpo@example.com",
            reason="data subject request 17",
            legal_basis="GDPR Art. 17(1)(a)",
            request_ids=[victim],
        ),
        signer=fixed_signer(ADMIN_ORIGIN),
    )
    assert result.erased == [(ENGINE_ORIGIN, victim)]
    after = _api(world, victim)
    assert after["content"] == "erased" and after["prompt_text"] is None
    assert after["erasure"]["seq"] == result.seq and after["erasure"]["log"] == ADMIN_ORIGIN
    assert after["erasure"]["legal_basis"] == "GDPR Art. 17(1)(a)"
    assert after["verification"]["status"] == before["verification"]["status"] == "anchored"
    page = _page(world, victim)
    named = f"was erased by record <strong>{result.seq}</strong> of <code>{ADMIN_ORIGIN}</code> on "
    for part in ("prompt", "output"):
        assert f'id="{part}-content" data-content="erased"' in page
    assert page.count(named) == 2  # the prompt, and the output
    assert "data subject request 17 (GDPR Art. 17(1)(a))" in page
    assert "dpo@example.com" in page
    assert 'data-status="anchored"' in page and "Integrity problem" not in page
    # No plaintext: neither the prompt (raw or escaped) nor its token ids nor any output id.
    assert prompt not in page and html.escape(prompt) not in page
    assert "Prompt token ids" not in page
    assert page.count('<span class="erased">erased</span>') == len(after["tokens"]) > 0
    assert all(t["token_id"] is None for t in after["tokens"])
    assert _verify(world).ok


def test_key_deleted_without_erasure_is_an_integrity_problem_not_an_erasure(
    sealed_world: World, admin_connection: AdminConn
) -> None:
    """C16, attacker: a wrapped data key row deleted directly (no erasure record). ``auditlog
    verify`` fails it (key.absent); the API's verdict fails too, although the records still
    verify over the ciphertext; the page shows the problem, not "erased by", nor "anchored"."""
    world = sealed_world
    victim = world.request_of(TENANT)
    with admin_connection() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        gone = conn.execute(
            delete(data_keys).where(data_keys.c.log_id == log_id, data_keys.c.request_id == victim)
        )
        assert gone.rowcount == 1
    report = _verify(world)
    assert not report.ok and {f.code.value for f in report.findings} == {"key.absent"}
    trail = _api(world, victim)
    assert trail["content"] == "missing" and trail["erasure"] is None
    assert trail["verification"]["status"] == "failed"
    assert "no erasure record names it" in trail["verification"]["message"]
    page = _page(world, victim)
    verdict = _verdict_section(page)
    assert 'data-status="failed"' in verdict and "✘ failed" in verdict
    assert "anchored" not in verdict.split("</h2>")[0].lower()
    assert "no erasure record names it" in verdict
    for part in ("prompt", "output"):
        assert f'id="{part}-content" data-content="integrity"' in page
    assert "Integrity problem, not an erasure" in page
    assert "erased by record" not in page.lower() and 'data-content="erased"' not in page
    assert page.count('<span class="integrity">missing</span>') == len(trail["tokens"]) > 0
    assert '<span class="erased">' not in page


@pytest.mark.parametrize("column", ["tenant", "kek_id", "wrapped"])
def test_edited_data_key_row_fails_the_trail(
    sealed_world: World, admin_connection: AdminConn, column: str
) -> None:
    """C16, attacker (database administrator): the victim's ``data_keys`` row edited (its tenant,
    so an erasure by tenant would miss it; its KEK id, so no reader can open it; or its wrapped
    bytes). ``auditlog verify`` fails it (key.mismatch), and so do the API's verdict and the
    console page, which show an integrity problem, not content and not "anchored"."""
    world = sealed_world
    victim = world.request_of(TENANT)
    assert _api(world, victim)["verification"]["status"] == "anchored"
    value: Any = {"tenant": "tenant-9", "kek_id": "kek-forged", "wrapped": b"\x00" * 60}[column]
    with admin_connection() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        conn.execute(
            data_keys.update()
            .where(data_keys.c.log_id == log_id, data_keys.c.request_id == victim)
            .values({column: value})
        )
    report = _verify(world)
    assert report.verdict is Verdict.FAILED
    assert "key.mismatch" in {f.code.value for f in report.findings}
    trail = _api(world, victim)
    assert trail["content"] == "key-mismatch" and trail["prompt_text"] is None
    assert trail["verification"]["status"] == "failed"
    assert "key.mismatch" in trail["verification"]["message"]
    page = _page(world, victim)
    assert 'data-status="failed"' in _verdict_section(page)
    for part in ("prompt", "output"):
        assert f'id="{part}-content" data-content="integrity"' in page
