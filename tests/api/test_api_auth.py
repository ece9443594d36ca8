"""Authentication, roles (C17) and tenant isolation (C19) of the auditor API, on both backends."""

from __future__ import annotations

import pytest
from api_helpers import ENGINE_ORIGIN, HOSTILE_PROMPT, World

from auditlog.api.keys import KEY_PREFIX

CONTENT_ROUTES = ("", "/proofs", "/bundle", "/transcript.html")


def test_missing_malformed_unknown_wrong_and_revoked_keys_are_401(world: World) -> None:
    """C17: only a live key authenticates; every other credential is 401 with a Bearer challenge."""
    live = world.tokens["admin"]
    key_id, secret = live.removeprefix(KEY_PREFIX).split(".")
    other_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    attempts = {
        "no header": {},
        "basic scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "garbage": {"Authorization": "Bearer not-a-key"},
        "truncated": {"Authorization": f"Bearer {live[:-1]}"},
        "unknown id": {"Authorization": f"Bearer {KEY_PREFIX}{'0' * 16}.{secret}"},
        "wrong secret": {"Authorization": f"Bearer {KEY_PREFIX}{key_id}.{other_secret}"},
        "revoked": world.headers("revoked"),
    }
    for name, headers in attempts.items():
        response = world.client.get("/v1/requests", headers=headers)
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == "Bearer", name
    assert world.client.get("/v1/requests", headers=world.headers("admin")).status_code == 200


def test_unknown_and_revoked_keys_are_indistinguishable(world: World) -> None:
    """C17: a caller cannot probe which key ids exist."""
    _, secret = world.tokens["admin"].removeprefix(KEY_PREFIX).split(".")
    unknown = world.client.get(
        "/v1/logs", headers={"Authorization": f"Bearer {KEY_PREFIX}{'f' * 16}.{secret}"}
    )
    revoked = world.client.get("/v1/logs", headers=world.headers("revoked"))
    assert unknown.json() == revoked.json() == {"detail": "unknown or revoked API key"}


def test_other_tenants_request_is_404_exactly_like_a_missing_one(world: World) -> None:
    """C19: 404, not 403, with byte-identical bodies, on every content route."""
    own, foreign = world.request_of("tenant-0"), world.request_of("tenant-1")
    for suffix in CONTENT_ROUTES:
        ok = world.client.get(f"/v1/requests/{own}{suffix}", headers=world.headers("auditor0"))
        assert ok.status_code == 200, suffix
        hidden = world.client.get(
            f"/v1/requests/{foreign}{suffix}", headers=world.headers("auditor0")
        )
        missing = world.client.get(
            f"/v1/requests/req-does-not-exist{suffix}", headers=world.headers("auditor0")
        )
        assert hidden.status_code == missing.status_code == 404, suffix
        assert hidden.content == missing.content, suffix
        assert hidden.headers["content-length"] == missing.headers["content-length"]
    # The same foreign request is visible to the auditor of its tenant and to admins.
    for who in ("auditor12", "admin"):
        assert (
            world.client.get(f"/v1/requests/{foreign}", headers=world.headers(who)).status_code
            == 200
        )


def test_search_is_scoped_to_the_callers_tenants(world: World) -> None:
    """C19: searches never list another tenant's requests; naming one yields nothing, not 403."""

    def ids(who: str, **params: str) -> set[str]:
        response = world.client.get("/v1/requests", headers=world.headers(who), params=params)
        assert response.status_code == 200
        return {item["request_id"] for item in response.json()["items"]}

    by_tenant = {
        t: {r for r, v in world.truth.items() if v.tenant == t}
        for t in ("tenant-0", "tenant-1", "tenant-2")
    }
    assert all(by_tenant.values()), "the fixture must give every tenant requests"
    assert ids("auditor0", limit="200") == by_tenant["tenant-0"]
    assert ids("auditor12", limit="200") == by_tenant["tenant-1"] | by_tenant["tenant-2"]
    assert ids("auditor12", tenant="tenant-2", limit="200") == by_tenant["tenant-2"]
    assert ids("auditor0", tenant="tenant-1") == set()
    assert ids("admin", limit="200") == set(world.truth)


def test_operator_gets_manifests_and_checkpoints_but_no_content(world: World) -> None:
    """C17: operators see physical step manifests, checkpoints, proofs and keys, never content."""
    request_id = world.request_of("tenant-0")
    headers = world.headers("operator")
    assert world.client.get("/v1/requests", headers=headers).status_code == 403
    for suffix in CONTENT_ROUTES:
        response = world.client.get(f"/v1/requests/{request_id}{suffix}", headers=headers)
        assert response.status_code == 403, suffix
        assert "prompt" not in response.text
    steps = world.client.get("/v1/steps", headers=headers, params={"limit": 500})
    assert steps.status_code == 200
    items = steps.json()["items"]
    assert items and all(
        set(item) == {"log", "seq", "ts", "step", "n", "passes", "batch"} for item in items
    )
    assert HOSTILE_PROMPT not in steps.text and "token_ids" not in steps.text
    for path, params in (
        ("/v1/logs", {}),
        ("/v1/logs/checkpoint", {"log": ENGINE_ORIGIN}),
        ("/v1/logs/keys", {"log": ENGINE_ORIGIN}),
    ):
        assert world.client.get(path, headers=headers, params=params).status_code == 200, path


@pytest.mark.parametrize("who", ["auditor0", "auditor12"])
def test_auditors_cannot_read_physical_manifests(world: World, who: str) -> None:
    """C17: step manifests cross tenants, so they are operator/admin only."""
    assert world.client.get("/v1/steps", headers=world.headers(who)).status_code == 403
