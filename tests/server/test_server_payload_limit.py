"""The payload limit of ``auditlog serve`` (payload-protection issue; C1, C3, C5, C23).

A request whose body is larger than ``max_payload_bytes`` (default 1 MiB) is refused with an
OpenAI-shaped 413 before FastAPI reads it and before anything of it is recorded; only a small
refusal trail stays in the log (tenant, principal, key id, time, trail id, size, limit; no
content), and the database verifies intact. A body of exactly the limit is served. Against a
real uvicorn server, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_fixtures import ACME_KEY, MODEL, LiveServer
from sqlalchemy import func, select

from auditlog.recorder import DEFAULT_MAX_PAYLOAD_BYTES
from auditlog.server import ServerSettings
from auditlog.store import create_db_engine
from auditlog.store.schema import payloads, records
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

pytestmark = pytest.mark.engine

ACME = {"authorization": f"Bearer {ACME_KEY}", "content-type": "application/json"}
LIMIT = DEFAULT_MAX_PAYLOAD_BYTES
FIVE_MB = 5 * 10**6


@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=120) as c:
        yield c


def _ledger_bytes(db_url: str) -> int:
    """Bytes of every stored record header and payload (what the permanent log holds)."""
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            body = conn.scalar(select(func.coalesce(func.sum(func.length(records.c.body)), 0)))
            data = conn.scalar(select(func.coalesce(func.sum(func.length(payloads.c.data)), 0)))
    finally:
        engine.dispose()
    return int(body) + int(data)


def _body(size: int, *, chat: bool = False, stream: bool = False) -> bytes:
    """A valid request body of exactly ``size`` bytes (JSON padded with trailing spaces)."""
    obj: dict[str, Any] = {"model": MODEL, "max_tokens": 2, "stream": stream}
    if chat:
        obj["messages"] = [{"role": "user", "content": "hi"}]
    else:
        obj["prompt"] = "Customer: hi\nAgent:"
    raw = json.dumps(obj).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def _prompt_body(num_bytes: int, *, stream: bool = False) -> bytes:
    """A body whose prompt alone is ``num_bytes`` bytes."""
    return json.dumps({"model": MODEL, "prompt": "x" * num_bytes, "stream": stream}).encode()


def _refusal(live: LiveServer, r: httpx.Response, size: int | None = None) -> None:
    """413, OpenAI-shaped, and a refusal trail holding no content."""
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "request_too_large" and err["type"] == "invalid_request_error"
    assert f"over the limit of {LIMIT} bytes" in err["message"]
    trail_id = r.headers["x-auditlog-request-id"]
    assert r.headers["x-request-id"] == trail_id.rsplit("/", 1)[1]
    live.wait_closed(trail_id)
    engine = create_db_engine(live.db_url, read_only=True)
    try:
        with engine.connect() as conn:
            t = read_trail(conn, live.origin, trail_id, trusted=[live.signer.verifier])
    finally:
        engine.dispose()
    assert t.reason == "error" and t.prompt_text == "" and t.token_ids == []
    assert t.tenant == "acme-bank" and t.start["principal"] == "svc-chat@acme-bank"
    params = t.start["params"]
    assert params["refused"] == "request_too_large" and params["status"] == 413
    assert params["limit"] == LIMIT and params["size"] > LIMIT
    if size is not None:
        assert params["size"] == size
    assert len(t.records) == 2 and sum(len(r.body) for r in t.records) < 2048


def _intact(live: LiveServer) -> None:
    live.recorder.checkpoint_now(30)
    report = verify_database(
        live.db_url, keys=[live.signer.verifier_key], witness_dir=live.witness_dir
    )
    assert report.ok, report.findings[:3]


@pytest.mark.parametrize("stream", [False, True])
def test_five_mb_prompt_is_413_and_leaves_only_a_small_refusal(
    live_server: LiveServer, http: httpx.Client, stream: bool
) -> None:
    """Declared (Content-Length) and streamed (chunked, no length): refused while reading."""
    body = _prompt_body(FIVE_MB, stream=stream)
    before = _ledger_bytes(live_server.db_url)
    _refusal(live_server, http.post("/v1/completions", content=body, headers=ACME), len(body))

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    _refusal(live_server, http.post("/v1/chat/completions", content=chunks(), headers=ACME))
    _intact(live_server)
    grown = _ledger_bytes(live_server.db_url) - before
    # two refusal trails and their checkpoint's records: a few KB, never the 5 MB
    assert grown < 4096, grown


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("chat", [False, True])
def test_exactly_the_limit_is_served_one_byte_more_is_not(
    live_server: LiveServer, http: httpx.Client, chat: bool, stream: bool
) -> None:
    path = "/v1/chat/completions" if chat else "/v1/completions"
    r = http.post(path, content=_body(LIMIT, chat=chat, stream=stream), headers=ACME)
    assert r.status_code == 200, r.text[:300]
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]")
    live_server.wait_closed(r.headers["x-auditlog-request-id"])
    over = _body(LIMIT + 1, chat=chat, stream=stream)
    _refusal(live_server, http.post(path, content=over, headers=ACME), LIMIT + 1)
    _intact(live_server)


def test_refused_caller_is_authenticated_first(http: httpx.Client) -> None:
    """An unknown key over the limit gets 401 (no trail: nobody to attribute it to)."""
    headers = {**ACME, "authorization": "Bearer sk-unknown"}
    r = http.post("/v1/completions", content=_prompt_body(LIMIT + 10), headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "x-auditlog-request-id" not in r.headers


def test_limit_is_a_setting_and_matches_the_cli_default() -> None:
    """One default (1 MiB) for the server, the CLI and the recorder; a bad value is refused."""
    import inspect

    from auditlog.cli.serve_cmd import serve
    from auditlog.errors import ConfigurationError
    from auditlog.gateway.auth import ApiKeyTable
    from auditlog.ledger import Signer

    assert inspect.signature(serve).parameters["max_payload_bytes"].default == LIMIT == 2**20
    signer = Signer.generate("server.test.invalid/limit")
    keys = ApiKeyTable.from_plain_keys({ACME_KEY: ("acme-bank", "svc")})
    settings = ServerSettings(
        db_url="sqlite://", origin=signer.name, signers=[signer], api_keys=keys
    )
    assert settings.max_payload_bytes == LIMIT
    for bad in (0, -1):
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            ServerSettings(
                db_url="sqlite://", origin=signer.name, signers=[signer], api_keys=keys,
                max_payload_bytes=bad,
            ).validate()  # fmt: skip
