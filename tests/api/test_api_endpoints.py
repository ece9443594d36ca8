"""Search, trail reconstruction, proofs, checkpoints and manifests (both backends)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import AbstractContextManager

from api_helpers import API_ORIGIN, ENGINE_ORIGIN, HOSTILE_PROMPT, World
from sqlalchemy import Connection

from auditlog.ledger import (
    Verifier,
    open_checkpoint,
    parse_header,
    verify_consistency,
    verify_inclusion,
)


def test_trail_rebuilds_the_engines_truth(world: World) -> None:
    """C1/C5/C6: prompt, every token with provenance and step, outcome; raw records decode."""
    for request_id, truth in world.truth.items():
        response = world.client.get(f"/v1/requests/{request_id}", headers=world.headers("admin"))
        assert response.status_code == 200
        trail = response.json()
        assert trail["verification"]["status"] == "anchored", trail["verification"]
        assert trail["verification"]["trust"] == "trusted"
        assert trail["tenant"] == truth.tenant
        assert [t["token_id"] for t in trail["tokens"]] == truth.token_ids
        assert [t["provenance"] for t in trail["tokens"]] == [str(p) for p in truth.provenance]
        assert [t["step"] for t in trail["tokens"]] == truth.steps
        assert trail["finish_reason"] == str(truth.reason)
        assert trail["n_generated"] == len(truth.token_ids)
        kinds = [r["kind"] for r in trail["records"]]
        assert kinds[0] == "request.start" and kinds[-1] == "request.end"
        assert set(kinds[1:-1]) <= {"tokens"}
        for record in trail["records"]:
            body = base64.b64decode(record["body_b64"])
            assert parse_header(body) == record["header"]
    first = world.client.get("/v1/requests/req-00000", headers=world.headers("admin")).json()
    assert first["prompt_text"] == HOSTILE_PROMPT


def test_search_filters_and_cursor_pagination(world: World) -> None:
    """Search by principal, model, finish reason and time range; pages are disjoint and complete."""
    headers = world.headers("admin")
    seen: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
        page = world.client.get("/v1/requests", headers=headers, params=params).json()
        assert len(page["items"]) <= 5
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(i["request_id"] for i in seen) == sorted(world.truth)
    started = [i["started_ts"] for i in seen]
    assert started == sorted(started)

    target = seen[3]
    by_principal = world.client.get(
        "/v1/requests", headers=headers, params={"principal": target["principal"], "limit": 200}
    ).json()["items"]
    assert target["request_id"] in {i["request_id"] for i in by_principal}
    assert {i["principal"] for i in by_principal} == {target["principal"]}
    for params, expected in (
        ({"model": "synth-target"}, len(world.truth)),
        ({"model": "no-such-model"}, 0),
        ({"finish_reason": "length"}, len(world.truth)),
        ({"finish_reason": "stop"}, 0),
        ({"since": str(target["started_ts"]), "until": str(target["started_ts"] + 1)}, 1),
    ):
        items = world.client.get(
            "/v1/requests", headers=headers, params=params | {"limit": "200"}
        ).json()["items"]
        assert len(items) == expected, params
    bad = world.client.get("/v1/requests", headers=headers, params={"cursor": "%%%"})
    assert bad.status_code == 400 and bad.json() == {"detail": "invalid cursor"}


def test_inclusion_proofs_verify_against_the_signed_checkpoint(world: World) -> None:
    """RFC 9162 2.1.3.2 inclusion of every record of a trail in the latest signed tree head."""
    request_id = world.request_of("tenant-2")
    body = world.client.get(
        f"/v1/requests/{request_id}/proofs", headers=world.headers("auditor12")
    ).json()
    checkpoint = open_checkpoint(
        body["checkpoint"]["note"], [Verifier.from_key_string(world.engine_signer.verifier_key)]
    )
    assert checkpoint.size == body["checkpoint"]["size"] and checkpoint.origin == ENGINE_ORIGIN
    assert body["proofs"] and all(p["seq"] < checkpoint.size for p in body["proofs"])
    trail = world.client.get(
        f"/v1/requests/{request_id}", headers=world.headers("auditor12")
    ).json()
    assert [p["seq"] for p in body["proofs"]] == [r["seq"] for r in trail["records"]]
    for proof in body["proofs"]:
        verify_inclusion(
            bytes.fromhex(proof["leaf"]),
            proof["seq"],
            checkpoint.size,
            [bytes.fromhex(h) for h in proof["proof"]],
            checkpoint.root,
        )


def test_checkpoint_note_and_consistency_proof(world: World) -> None:
    """The access log grows by one signed checkpoint per read; consecutive heads are consistent."""
    headers = world.headers("operator")
    for _ in range(3):
        world.client.get("/v1/logs", headers=headers)
    note = world.client.get("/v1/logs/checkpoint", headers=headers, params={"log": API_ORIGIN})
    assert note.status_code == 200 and note.headers["content-type"].startswith("text/plain")
    api_key = Verifier.from_key_string(world.api_signer.verifier_key)
    latest = open_checkpoint(note.text, [api_key])
    assert latest.size == 3  # three /v1/logs reads committed before this answer was computed
    proof = world.client.get(
        "/v1/logs/consistency", headers=headers, params={"log": API_ORIGIN, "first": 1, "second": 3}
    ).json()
    verify_consistency(
        1,
        3,
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(proof["first_root"]),
        bytes.fromhex(proof["second_root"]),
    )
    assert bytes.fromhex(proof["second_root"]) == latest.root
    for params, status in (
        ({"log": API_ORIGIN, "first": 3, "second": 1}, 400),
        ({"log": API_ORIGIN, "first": 1, "second": 999}, 404),
        ({"log": "no.such/log", "first": 1, "second": 2}, 404),
    ):
        response = world.client.get("/v1/logs/consistency", headers=headers, params=params)
        assert response.status_code == status, params
    keys = world.client.get("/v1/logs/keys", headers=headers, params={"log": API_ORIGIN}).json()
    assert keys["keys"] == [world.api_signer.verifier_key]


def test_step_manifests_account_for_every_token(world: World) -> None:
    """C11 through the operator view: the manifests' counts add up to every generated token."""
    items, cursor = [], None
    while True:
        params = {"limit": "7", "log": ENGINE_ORIGIN} | ({"cursor": cursor} if cursor else {})
        page = world.client.get(
            "/v1/steps", headers=world.headers("operator"), params=params
        ).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    per_request: dict[str, int] = {}
    for item in items:
        assert item["n"] == sum(n for _, n in item["batch"])
        for request_id, n in item["batch"]:
            per_request[request_id] = per_request.get(request_id, 0) + n
    assert per_request == {r: len(t.token_ids) for r, t in world.truth.items() if t.token_ids}


def test_html_transcript_escapes_everything(world: World) -> None:
    """C20: the human-readable transcript never lets recorded text become markup."""
    page = world.client.get(
        "/v1/requests/req-00000/transcript.html", headers=world.headers("admin")
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; \u00e9" in page.text


def test_verdict_reports_a_tampered_record(
    world: World, admin_connection: Callable[[], AbstractContextManager[Connection]]
) -> None:
    """C8 through the API: an edited payload makes the trail's verdict fail, naming the record."""
    request_id = world.request_of("tenant-0")
    trail = world.client.get(f"/v1/requests/{request_id}", headers=world.headers("admin")).json()
    seq = trail["records"][1]["seq"]
    with admin_connection() as conn:
        conn.exec_driver_sql(
            "UPDATE payloads SET data = %s WHERE seq = %s"
            if conn.dialect.name == "postgresql"
            else "UPDATE payloads SET data = ? WHERE seq = ?",
            (b'{"drafts":[],"token_ids":[1]}', seq),
        )
    verdict = world.client.get(f"/v1/requests/{request_id}", headers=world.headers("admin")).json()
    assert verdict["verification"]["status"] == "failed"
    assert f"(seq {seq}): payload digest mismatch" in verdict["verification"]["message"]
