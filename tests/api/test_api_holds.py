"""Legal holds and erasures through the API (C15, C16), scoped by role and tenant (C17, C19),
every answer an access record (C18). SQLite and PostgreSQL, over sealed payloads written by the
real recorder; every write goes through ``auditlog.protect``, and ``verify_database`` checks the
whole store (engine log, administrative log, access log) after each step."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_helpers import ADMIN_ORIGIN, API_ORIGIN, ENGINE_ORIGIN, World, fixed_signer
from fastapi.testclient import TestClient

from auditlog.api import ApiSettings, create_app
from auditlog.errors import ConfigurationError
from auditlog.ledger import DirectoryWitness, parse_header
from auditlog.store import bodies_of_kind, read_data_key
from auditlog.store.ledger_store import get_log_id, iter_records
from auditlog.verifier import verify_database


def _url(kind: str, record_id: str, suffix: str = "") -> str:
    return f"/v1/{kind}/{quote(record_id, safe='/')}{suffix}"


def _place(world: World, scope: dict[str, Any], who: str = "admin") -> Any:
    body = {"scope": scope, "reason": "SEC inquiry 42"}
    return world.client.post("/v1/holds", json=body, headers=world.headers(who))


def _erase(world: World, request_ids: list[str]) -> Any:
    body = {"request_ids": request_ids, "reason": "data subject request", "legal_basis": "GDPR"}
    return world.client.post("/v1/erasures", json=body, headers=world.headers("admin"))


def _admin_records(world: World) -> list[dict[str, Any]]:
    with world.engine.connect() as conn:
        found = bodies_of_kind(conn, "admin") + bodies_of_kind(conn, "erasure")
    return [parse_header(body) for _, _, body in found]


def _access(world: World) -> list[tuple[str, str, int]]:
    """(principal, endpoint, status) of every access record, in order."""
    with world.engine.connect() as conn:
        log_id = get_log_id(conn, API_ORIGIN)
        headers = [parse_header(bytes(r.body)) for r in iter_records(conn, log_id)]
    return [(h["principal"], h["endpoint"], h["status"]) for h in headers]


def _verify_intact(world: World) -> None:
    keys = [
        world.engine_signer.verifier_key,
        world.api_signer.verifier_key,
        fixed_signer(ADMIN_ORIGIN).verifier_key,
    ]
    report = verify_database(world.db_url, keys=keys)
    assert report.ok, report.findings


def _has_key(world: World, request_id: str) -> bool:
    with world.engine.connect() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        return read_data_key(conn, log_id, request_id) is not None


def test_auditors_see_only_their_tenants_holds_by_list_and_by_id(sealed_world: World) -> None:
    """C15, C17, C19: admins see every hold; an auditor only those that name their tenants
    (by tenant or by a request of theirs), never one of another tenant, by list or by id (the
    same 404 as a missing hold); a hold on a principal or a time range alone is the admins'."""
    world = sealed_world
    own1 = world.request_of("tenant-1")
    placed = {
        "tenant0": _place(world, {"tenant": "tenant-0"}),
        "request1": _place(world, {"request_id": own1}),
        "principal": _place(world, {"principal": "user-1@tenant-1"}),
        "range": _place(world, {"from_ts": 0, "to_ts": 2**62}),
        "mixed": _place(world, {"tenant": "tenant-0", "request_id": own1}),
    }
    assert {r.status_code for r in placed.values()} == {201}
    ids = {name: r.json()["id"] for name, r in placed.items()}
    assert all(i.startswith(f"{ADMIN_ORIGIN}#") for i in ids.values())
    assert placed["tenant0"].json()["placed_by"] == world.key_ids["admin"]

    def listed(who: str) -> set[str]:
        answer = world.client.get("/v1/holds", headers=world.headers(who))
        assert answer.status_code == 200
        return {h["id"] for h in answer.json()["items"]}

    assert listed("admin") == set(ids.values())
    assert listed("auditor0") == {ids["tenant0"]}
    assert listed("auditor12") == {ids["request1"]}
    missing = world.client.get(_url("holds", f"{ADMIN_ORIGIN}#999"), headers=world.headers("admin"))
    assert missing.status_code == 404
    for who, visible in (("auditor0", {"tenant0"}), ("auditor12", {"request1"})):
        for name, hold_id in ids.items():
            answer = world.client.get(_url("holds", hold_id), headers=world.headers(who))
            if name in visible:
                assert answer.status_code == 200 and answer.json()["id"] == hold_id
            else:  # C19: indistinguishable from a hold that does not exist
                assert answer.status_code == 404, (who, name)
                assert answer.json()["detail"] == f"no hold {hold_id!r} in force"
    assert world.client.get("/v1/holds", headers=world.headers("operator")).status_code == 403
    assert world.client.get("/v1/erasures", headers=world.headers("operator")).status_code == 403
    assert world.client.get("/v1/holds", headers=world.headers("revoked")).status_code == 401
    # C18: every read wrote its record, refusals included.
    records = _access(world)
    assert (world.key_ids["operator"], "GET /v1/holds", 403) in records
    assert (world.key_ids["auditor0"], "GET /v1/holds/{hold_id:path}", 404) in records
    assert (world.key_ids["admin"], "POST /v1/holds", 201) in records
    _verify_intact(world)


def test_only_admins_write_and_a_refused_write_records_nothing_but_its_access(
    sealed_world: World,
) -> None:
    """C17: auditors and operators may not place, release or erase (403, recorded as access);
    no hold or erasure record is written."""
    world = sealed_world
    hold_id = _place(world, {"tenant": "tenant-0"}).json()["id"]
    before = _admin_records(world)
    own = world.request_of("tenant-0")
    for who in ("auditor0", "operator"):
        headers = world.headers(who)
        assert _place(world, {"tenant": "tenant-0"}, who).status_code == 403
        release = world.client.post(
            _url("holds", hold_id, "/release"), json={"reason": "x"}, headers=headers
        )
        assert release.status_code == 403
        body = {"request_ids": [own], "reason": "r", "legal_basis": "b"}
        assert world.client.post("/v1/erasures", json=body, headers=headers).status_code == 403
    assert _admin_records(world) == before
    assert (world.key_ids["auditor0"], "POST /v1/erasures", 403) in _access(world)
    assert _has_key(world, own)


def test_held_erasure_is_refused_and_recorded_release_then_erasure_succeeds(
    sealed_world: World,
) -> None:
    """C15, C16: an erasure of held data answers 409 with a clear error, destroys nothing, and
    its refusal is a signed record auditors of that tenant see; after the release the erasure
    goes through; the trail shows "erased"; the store verifies after every step."""
    world = sealed_world
    own, other = world.request_of("tenant-0"), world.request_of("tenant-1")
    hold = _place(world, {"tenant": "tenant-0"}).json()
    refused = _erase(world, [own])
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"erasure refused ({own}: hold {hold['id']})")
    assert f"the refusal is record 1 of {ADMIN_ORIGIN}" in refused.json()["detail"]
    assert _has_key(world, own)
    trail = world.client.get(f"/v1/requests/{own}", headers=world.headers("auditor0")).json()
    assert trail["content"] == "decrypted"
    _verify_intact(world)

    erasures = world.client.get("/v1/erasures", headers=world.headers("auditor0")).json()["items"]
    assert [(e["outcome"], e["principal"]) for e in erasures] == [
        ("refused", world.key_ids["admin"])
    ]
    because = f"hold {hold['id']}"
    assert erasures[0]["requests"] == [
        {"log": ENGINE_ORIGIN, "request_id": own, "tenant": "tenant-0", "because": because}
    ]
    assert world.client.get("/v1/erasures", headers=world.headers("auditor12")).json() == {
        "items": []
    }

    released = world.client.post(
        _url("holds", hold["id"], "/release"),
        json={"reason": "inquiry closed"},
        headers=world.headers("admin"),
    )
    assert released.status_code == 200
    assert released.json() == {
        "id": hold["id"],
        "released_by": world.key_ids["admin"],
        "reason": "inquiry closed",
    }
    again = world.client.post(
        _url("holds", hold["id"], "/release"), json={"reason": "x"}, headers=world.headers("admin")
    )
    assert again.status_code == 404  # released holds are not in force
    assert world.client.get("/v1/holds", headers=world.headers("admin")).json() == {"items": []}

    # One order over two tenants: each auditor sees only its own tenant's request in it.
    erased = _erase(world, [own, other])
    assert erased.status_code == 201, erased.text
    entry = erased.json()
    assert entry["outcome"] == "erased" and entry["legal_basis"] == "GDPR"
    assert {r["request_id"] for r in entry["requests"]} == {own, other}
    assert not _has_key(world, own) and not _has_key(world, other)
    trail = world.client.get(f"/v1/requests/{own}", headers=world.headers("auditor0")).json()
    assert trail["content"] == "erased" and trail["prompt_text"] is None
    for who, request_id in (("auditor0", own), ("auditor12", other)):
        answer = world.client.get(_url("erasures", entry["id"]), headers=world.headers(who))
        assert [r["request_id"] for r in answer.json()["requests"]] == [request_id]
    refusal_id = erasures[0]["id"]
    foreign = world.client.get(_url("erasures", refusal_id), headers=world.headers("auditor12"))
    assert foreign.status_code == 404  # the refusal named tenant-0's request only
    _verify_intact(world)


def test_hold_on_a_request_blocks_only_that_request(sealed_world: World) -> None:
    """C15: a hold scoped to one request refuses an order naming it (nothing of the order is
    erased, the other request included) and leaves other orders alone."""
    world = sealed_world
    held, free = sorted(r for r, t in world.truth.items() if t.tenant == "tenant-2")[:2]
    assert _place(world, {"request_id": held}).status_code == 201
    assert _erase(world, [held, free]).status_code == 409
    assert _has_key(world, held) and _has_key(world, free)
    assert _erase(world, [free]).status_code == 201
    assert _has_key(world, held) and not _has_key(world, free)
    _verify_intact(world)


BAD_HOLDS: list[Any] = [
    {"scope": {}, "reason": "r"},  # names nothing
    {"scope": {"tenant": "t"}},  # no reason
    {"scope": {"tenant": "t"}, "reason": "   "},  # blank reason
    {"scope": {"tenant": " "}, "reason": "r"},  # blank name
    {"scope": {"tenant": "t\u0000"}, "reason": "r"},  # NUL
    {"scope": {"from_ts": 10, "to_ts": 10}, "reason": "r"},  # empty range
    {"scope": {"from_ts": -1}, "reason": "r"},
    {"scope": {"to_ts": 2**63}, "reason": "r"},
    {"scope": {"tenant": "t", "color": "red"}, "reason": "r"},  # unknown member
    {"scope": {"tenant": "t"}, "reason": "r", "by": "someone else"},  # attribution is the key
    {"scope": {"tenant": "t"}, "reason": "x" * 1001},
    ["not", "an", "object"],
]
BAD_ERASURES: list[Any] = [
    {"reason": "r", "legal_basis": "b"},  # selects nothing
    {"request_ids": ["a"], "subject": "s", "reason": "r", "legal_basis": "b"},  # two selections
    {"tenant": "t", "reason": "r", "legal_basis": "b"},  # tenant without principal
    {"request_ids": ["a"], "reason": "r"},  # no legal basis
    {"request_ids": ["a"] * 101, "reason": "r", "legal_basis": "b"},
    {"request_ids": [""], "reason": "r", "legal_basis": "b"},
]


def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(sealed_world: World) -> None:
    """Bad input: 422 naming the field (or 404 for what is not there), never a 5xx, and no
    hold, release or erasure record is written."""
    world = sealed_world
    headers = world.headers("admin")
    hold_id = _place(world, {"tenant": "tenant-0"}).json()["id"]
    before = _admin_records(world)
    for body in BAD_HOLDS:
        answer = world.client.post("/v1/holds", json=body, headers=headers)
        assert answer.status_code == 422, body
        assert answer.json()["detail"][0]["msg"], body
    lone = b'{"scope": {"tenant": "a\\ud800"}, "reason": "r"}'
    answer = world.client.post(
        "/v1/holds", content=lone, headers={**headers, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422  # a lone surrogate is refused, and echoed escaped
    for body in BAD_ERASURES:
        answer = world.client.post("/v1/erasures", json=body, headers=headers)
        assert answer.status_code == 422, body
    empty = world.client.post(
        _url("holds", hold_id, "/release"), json={"reason": ""}, headers=headers
    )
    assert empty.status_code == 422
    unknown = world.client.post(
        _url("holds", f"{ADMIN_ORIGIN}#999", "/release"), json={"reason": "r"}, headers=headers
    )
    assert unknown.status_code == 404 and "no hold" in unknown.json()["detail"]
    nothing = _erase(world, ["no-such-request"])
    assert nothing.status_code == 404 and "no data key" in nothing.json()["detail"]
    assert _admin_records(world) == before
    scope = world.client.get("/v1/holds", headers=headers).json()["items"][0]["scope"]
    assert scope == {
        "tenant": "tenant-0",
        "principal": None,
        "request_id": None,
        "from_ts": None,
        "to_ts": None,
    }
    _verify_intact(world)


def test_without_an_admin_key_writes_answer_503_and_reads_still_work(
    sealed_world: World,
) -> None:
    """An API started without AUDITLOG_API_ADMIN_SIGNING_KEY cannot record holds or erasures:
    it says so (503) and writes none; listing still works. An admin key named like the access
    log is refused at start."""
    world = sealed_world
    settings = world.settings.model_copy(update={"api_admin_signing_key": None})
    with TestClient(create_app(settings, engine=world.engine)) as client:
        answer = client.post(
            "/v1/holds",
            json={"scope": {"tenant": "tenant-0"}, "reason": "r"},
            headers=world.headers("admin"),
        )
        assert answer.status_code == 503
        assert "AUDITLOG_API_ADMIN_SIGNING_KEY" in answer.json()["detail"]
        assert client.get("/v1/holds", headers=world.headers("admin")).json() == {"items": []}
    assert _admin_records(world) == []
    clash = world.settings.api_signing_key  # the access log's own key
    with pytest.raises(ConfigurationError, match="administrative log needs a key of its own name"):
        create_app(
            ApiSettings(**{**world.settings.model_dump(), "api_admin_signing_key": clash}),
            engine=world.engine,
        )


def test_each_decision_checkpoint_goes_to_the_apis_witness(
    sealed_world: World, tmp_path: Path
) -> None:
    """C10, C15, C16: the checkpoint over each hold, refusal and erasure goes to the API's
    witness directory after its commit, so a rewrite of the administrative log is caught."""
    world = sealed_world
    witness = tmp_path / "witness"
    settings = world.settings.model_copy(update={"api_witness_dir": witness})
    own = world.request_of("tenant-0")
    with TestClient(create_app(settings, engine=world.engine)) as client:
        headers = world.headers("admin")
        body = {"scope": {"request_id": own}, "reason": "case 7"}
        hold_id = client.post("/v1/holds", json=body, headers=headers).json()["id"]
        order = {"request_ids": [own], "reason": "r", "legal_basis": "b"}
        assert client.post("/v1/erasures", json=order, headers=headers).status_code == 409
        release = _url("holds", hold_id, "/release")
        assert client.post(release, json={"reason": "r"}, headers=headers).status_code == 200
        assert client.post("/v1/erasures", json=order, headers=headers).status_code == 201
    assert DirectoryWitness(witness).sizes(ADMIN_ORIGIN) == [1, 2, 3, 4]
    keys = [world.engine_signer.verifier_key, world.api_signer.verifier_key]
    report = verify_database(
        world.db_url, keys=[*keys, fixed_signer(ADMIN_ORIGIN).verifier_key], witness_dir=witness
    )
    assert report.ok, report.findings


def test_openapi_types_the_hold_and_erasure_routes(sealed_world: World) -> None:
    """The orders and answers are typed schemas in the OpenAPI document."""
    spec = sealed_world.client.get("/openapi.json").json()
    paths = spec["paths"]
    place = paths["/v1/holds"]["post"]
    assert place["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/HoldIn")
    assert "201" in place["responses"] and "409" in paths["/v1/erasures"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    assert schemas["HoldIn"]["additionalProperties"] is False
    assert set(schemas["ErasurePublic"]["properties"]) >= {"id", "outcome", "requests"}
    assert "/v1/holds/{hold_id}/release" in paths and "/v1/erasures/{erasure_id}" in paths
