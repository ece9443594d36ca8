"""The payload limit of the ASGI middleware: the same limit and default as ``auditlog serve``
(``max_payload_bytes`` / ``AUDITLOG_MAX_PAYLOAD_BYTES``, 1 MiB; payload-protection issue, C23).

A 5 MB prompt is refused with 413 before the app or the recorder sees it and leaves a refusal
trail of a few hundred bytes (no content); a body of exactly the limit reaches the app, streamed
or not; a recorder whose own limit is lower refuses the prompt the same way (413, refusal trail).
Against a real Starlette app under uvicorn, on SQLite and on PostgreSQL; every log verifies
intact afterwards (``audited_app``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from echo_app import RAN, echo_app
from integration_fixtures import Audited, audited_app
from sqlalchemy import func, select

from auditlog.gateway.auth import ApiKeyTable
from auditlog.recorder import DEFAULT_MAX_PAYLOAD_BYTES
from auditlog.store import create_db_engine
from auditlog.store.schema import payloads, records

ORIGIN = "asgi.test.invalid/payload-limit-0"
KEY = "sk-acme-limit"
HEADERS = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
LIMIT = DEFAULT_MAX_PAYLOAD_BYTES


@pytest.fixture
def table() -> ApiKeyTable:
    return ApiKeyTable.from_plain_keys({KEY: ("acme-bank", "svc@acme")})


def _ledger_bytes(db_url: str) -> int:
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            body = conn.scalar(select(func.coalesce(func.sum(func.length(records.c.body)), 0)))
            data = conn.scalar(select(func.coalesce(func.sum(func.length(payloads.c.data)), 0)))
    finally:
        engine.dispose()
    return int(body) + int(data)


def _padded(size: int, *, stream: bool) -> bytes:
    raw = json.dumps({"model": "plain", "prompt": "at-limit", "stream": stream}).encode()
    return raw + b" " * (size - len(raw))


def _refused(a: Audited, r: httpx.Response, limit: int = LIMIT) -> dict[str, Any]:
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "request_too_large"
    t = a.closed_trail(r.headers["x-auditlog-request-id"])
    assert t.reason == "error" and t.prompt_text == "" and t.token_ids == []
    assert t.tenant == "acme-bank" and t.start["principal"] == "svc@acme"
    params: dict[str, Any] = t.start["params"]
    assert params["refused"] == "request_too_large" and params["limit"] == limit
    assert params["size"] > limit
    assert sum(len(r.body) for r in t.records) < 2048
    return params


@pytest.mark.parametrize("stream", [False, True])
def test_five_mb_prompt_is_413_with_a_small_refusal(
    tmp_path: Path, db_url: str, table: ApiKeyTable, stream: bool
) -> None:
    body = json.dumps({"model": "plain", "prompt": "x" * 5_000_000, "stream": stream}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    ran = len(RAN)
    with audited_app(echo_app(), tmp_path, ORIGIN, db_url, identities=table) as a:
        before = _ledger_bytes(db_url)
        declared = httpx.post(f"{a.url}/v1/completions", content=body, headers=HEADERS)
        assert _refused(a, declared)["size"] == len(body)
        _refused(a, httpx.post(f"{a.url}/v1/completions", content=chunks(), headers=HEADERS))
        a.recorder.checkpoint_now()
        assert _ledger_bytes(db_url) - before < 4096
    assert len(RAN) == ran  # the app never saw either


@pytest.mark.parametrize("stream", [False, True])
def test_exactly_the_limit_reaches_the_app(
    tmp_path: Path, db_url: str, table: ApiKeyTable, stream: bool
) -> None:
    with audited_app(echo_app(), tmp_path, ORIGIN, db_url, identities=table) as a:
        url = f"{a.url}/v1/completions"
        ok = httpx.post(url, content=_padded(LIMIT, stream=stream), headers=HEADERS, timeout=30)
        assert ok.status_code == 200, ok.text
        t = a.closed_trail(ok.headers["x-auditlog-request-id"])
        assert t.prompt_text == "at-limit" and t.reason == "stop"
        over = httpx.post(url, content=_padded(LIMIT + 1, stream=stream), headers=HEADERS)
        assert _refused(a, over)["size"] == LIMIT + 1


def test_recorder_limit_below_the_middleware_limit_is_413_too(
    tmp_path: Path, db_url: str, table: ApiKeyTable
) -> None:
    """The body passes the middleware's (raised) limit, the recorder's own 1 MiB refuses the
    prompt: 413 and a refusal trail, never a 500 or a stored prompt."""
    body = json.dumps({"model": "plain", "prompt": "y" * (LIMIT + 1)}).encode()
    ran = len(RAN)
    with audited_app(
        echo_app(), tmp_path, ORIGIN, db_url, identities=table, max_payload_bytes=4 * LIMIT
    ) as a:
        r = httpx.post(f"{a.url}/v1/completions", content=body, headers=HEADERS, timeout=30)
        assert _refused(a, r)["size"] == LIMIT + 1
    assert len(RAN) == ran
