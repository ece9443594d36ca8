"""What the ASGI middleware refuses and what it records beyond content.

Cites: C19 (request ids namespaced per tenant, no cross-tenant existence oracle, checked in the
log), C23 (no unaudited endpoint, no unrecorded output), C6 (tool calls and reasoning text are
output: recorded), C21 (fail-closed: an event leaves only once its bytes are durable).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from integration_fixtures import open_recorder, serve, step_texts, trail
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from auditlog.gateway.openai_errors import as_api_error, database_unavailable
from auditlog.gateway.openai_wire import ChoiceDelta, ResponseReader, marked_field
from auditlog.integrations.asgi import AuditMiddleware
from auditlog.integrations.asgi_policy import is_guarded, refusal, route_path
from auditlog.server import ApiKeyTable, hash_api_key
from auditlog.trails import Trail
from auditlog.verifier import verify_database

ORIGIN = "asgi.test.invalid/policy-0"
ACME, GLOBEX = "sk-acme-policy", "sk-globex-policy"
RS, US = "\x1e", "\x1f"  # the marks of a non-content step (openai_wire module docstring)
TOOL_ARGS = ['{"acc', 'ount": "', '12345"}']
REASONING = "the customer wants a balance"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    data = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [choice]}  # fmt: skip
    return b"data: " + json.dumps(data).encode() + b"\n\n"


async def _chat(request: Request) -> Any:
    """A server that answers with tool calls and reasoning though no tools were requested."""
    body = await request.json()
    if not body.get("stream"):
        message = {
            "role": "assistant", "content": "checking",
            "reasoning_content": REASONING,
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "balance", "arguments": "".join(TOOL_ARGS)}}],
        }  # fmt: skip
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return JSONResponse({"id": "x", "object": "chat.completion", "choices": [choice]})

    async def events() -> AsyncIterator[bytes]:
        yield _chunk({"role": "assistant", "content": "", "reasoning_content": REASONING})
        yield _chunk({"content": f"{RS}not a mark"})
        for i, part in enumerate(TOOL_ARGS):
            call: dict[str, Any] = {"index": 0, "function": {"arguments": part}}
            if i == 0:
                call |= {"id": "call_1", "type": "function"}
                call["function"]["name"] = "balance"
            yield _chunk({"tool_calls": [call]})
        yield _chunk({}, "tool_calls")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def _completions(request: Request) -> Any:
    choice = {"index": 0, "text": "ok", "finish_reason": "stop"}
    return JSONResponse({"id": "x", "object": "text_completion", "choices": [choice]})


async def _responses(request: Request) -> Any:
    return JSONResponse({"object": "response", "output_text": "unaudited secret"})


async def _models(request: Request) -> Any:
    return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})


def _app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", _chat, methods=["POST"]),
            Route("/v1/completions", _completions, methods=["POST"]),
            Route("/v1/responses", _responses, methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
        ]
    )


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[str, Any, str]]:
    recorder, signer, db_url, witness = open_recorder(tmp_path, ORIGIN)
    identities = ApiKeyTable.from_plain_keys(
        {ACME: ("acme-bank", "svc@acme-bank"), GLOBEX: ("globex-health", "svc@globex")}
    )
    app = AuditMiddleware(_app(), recorder=recorder, identities=identities)
    try:
        with serve(app) as url:
            yield url, recorder, db_url
    finally:
        recorder.close()
    report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness)
    assert report.ok, report.findings[:3]


def _post(url: str, key: str, rid: str | None, path: str = "/v1/completions",
          **body: Any) -> httpx.Response:  # fmt: skip
    headers = {"authorization": f"Bearer {key}"} | ({"x-request-id": rid} if rid else {})
    base = {"model": "m"} if "messages" in body else {"model": "m", "prompt": "x"}
    return httpx.post(f"{url}{path}", json={**base, **body}, headers=headers,
                      timeout=30)  # fmt: skip


def _closed_trail(recorder: Any, db_url: str, trail_id: str) -> Trail:
    recorder.wait_durable(trail_id, 2**62, timeout=30)
    return trail(db_url, ORIGIN, trail_id)


def test_request_ids_are_per_tenant_and_checked_in_the_log(
    audited: tuple[str, Any, str], tmp_path: Path
) -> None:
    """C19: the same caller id in two tenants is two trails; reuse inside a tenant is 409,
    also for a fresh middleware (as after a restart: no in-memory state)."""
    url, recorder, db_url = audited
    a, b = _post(url, ACME, "same-1"), _post(url, GLOBEX, "same-1")
    assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
    assert a.headers["x-auditlog-request-id"] == "acme-bank/same-1"
    assert b.headers["x-auditlog-request-id"] == "globex-health/same-1"
    assert _closed_trail(recorder, db_url, "acme-bank/same-1").tenant == "acme-bank"
    assert _closed_trail(recorder, db_url, "globex-health/same-1").tenant == "globex-health"
    again = _post(url, ACME, "same-1")
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_request_id"
    assert "x-auditlog-request-id" not in again.headers
    fresh = AuditMiddleware(_app(), recorder=recorder, identities=ApiKeyTable.from_plain_keys(
        {ACME: ("acme-bank", "svc@acme-bank")}))  # fmt: skip
    with serve(fresh) as fresh_url:
        assert _post(fresh_url, ACME, "same-1").status_code == 409
        generated = _post(fresh_url, ACME, None)
        assert generated.status_code == 200
        assert generated.headers["x-auditlog-request-id"].startswith("acme-bank/asgi-")
    for forged in ("globex-health/same-1", "../same-1", "a/b"):
        r = _post(url, ACME, forged)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request_id"


@pytest.mark.postgres
def test_a_database_outage_is_answered_as_the_server_answers_it(
    tmp_path: Path,
    make_pg_database: Callable[[], AbstractContextManager[str]],
    set_pg_outage: Callable[..., None],
) -> None:
    """C19, C22: a caller-chosen id that cannot be checked in the log during a real outage is
    refused with ``auditlog serve``'s answer (the one OpenAI error body: 503
    ``service_unavailable`` with ``Retry-After``), and its id stays free afterwards."""
    with make_pg_database() as pg_url:
        recorder, signer, db_url, witness = open_recorder(tmp_path, ORIGIN, pg_url)
        identities = ApiKeyTable.from_plain_keys({ACME: ("acme-bank", "svc@acme-bank")})
        try:
            with serve(AuditMiddleware(_app(), recorder=recorder, identities=identities)) as url:
                set_pg_outage(db_url, down=True)
                try:
                    refused = _post(url, ACME, "during-outage")
                finally:
                    set_pg_outage(db_url, down=False)
                again = _post(url, ACME, "during-outage")
                assert again.status_code == 200, again.text
                _closed_trail(recorder, db_url, "acme-bank/during-outage")
        finally:
            recorder.close()
        report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness)
        assert report.ok, report.findings[:3]
    expected = database_unavailable()
    assert refused.status_code == 503 and refused.json() == expected.body(), refused.text
    assert refused.headers["retry-after"] == expected.headers["retry-after"]


def test_unaudited_post_endpoints_are_refused_gets_pass(audited: tuple[str, Any, str]) -> None:
    """C23: POST /v1/responses would reach the client unrecorded: refused, OpenAI-shaped."""
    url, *_ = audited
    r = _post(url, ACME, "resp-1", path="/v1/responses", input="hi")
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["message"] == "endpoint not audited" and err["type"] == "invalid_request_error"
    assert "unaudited secret" not in r.text
    for path in ("/v1/embeddings", "/v1/completions/", "/invocations"):
        assert _post(url, ACME, None, path=path).status_code == 400, path
    models = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {ACME}"})
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "m"


def test_root_path_cannot_hide_an_endpoint() -> None:
    scope = {"type": "http", "path": "/api/v1/responses", "root_path": "/api"}
    assert route_path(scope) == "/v1/responses" and is_guarded(route_path(scope))
    assert not is_guarded("/health") and is_guarded("/v1/anything")


@pytest.mark.parametrize(
    "field",
    [
        {"tools": [{"type": "function"}]},
        {"functions": [{"name": "f"}]},
        {"tool_choice": "auto"},
    ],
)
def test_tool_calling_requests_are_refused_and_recorded(
    audited: tuple[str, Any, str], field: dict[str, Any]
) -> None:
    """C6: tool calling is refused (400) and the refusal is a closed trail (reason error)."""
    url, recorder, db_url = audited
    name = next(iter(field))
    r = _post(url, ACME, f"tools-{name}", path="/v1/chat/completions",
              messages=[{"role": "user", "content": "hi"}], **field)  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["param"] == name, r.text
    t = _closed_trail(recorder, db_url, f"acme-bank/tools-{name}")
    assert t.reason == "error" and "tool calling" in t.end["error"]
    assert t.end["n_delivered"] == 0
    empty = {"tools": [], "tool_choice": None}  # empty fields are not tool calling
    assert refusal(empty, "/v1/completions") is None


def test_streamed_tool_calls_and_reasoning_are_recorded_before_release(
    audited: tuple[str, Any, str],
) -> None:
    """C6, C23, C21: output other than content is recorded as marked steps, each event leaving
    only once its bytes are durable."""
    url, recorder, db_url = audited
    seen: list[tuple[int, int]] = []
    headers = {"authorization": f"Bearer {ACME}", "x-request-id": "tc-stream-1"}
    body = {"model": "m", "messages": [{"role": "user", "content": "balance?"}], "stream": True}
    n, reader = 0, ResponseReader()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                delta = reader.read(json.loads(line[6:]))
                n += sum(len(s.encode()) for s in delta.recorded_steps())
                seen.append((n, recorder.durable_tokens("acme-bank/tc-stream-1")))
    assert seen and all(durable >= n for n, durable in seen), seen
    t = _closed_trail(recorder, db_url, "acme-bank/tc-stream-1")
    envelope, *steps = step_texts(t)  # the envelope once: every chunk repeats the same one
    assert envelope == marked_field("envelope", {"created": 0, "id": "x", "model": "m",
                                                 "object": "chat.completion.chunk"})  # fmt: skip
    assert steps[0] == f"{RS}reasoning_content{US}{REASONING}"
    assert steps[1] == f"{RS}content{US}{RS}not a mark"  # content cannot pose as a mark
    calls = [json.loads(s.split(US, 1)[1]) for s in steps[2:]]
    assert all(s.startswith(f"{RS}tool_calls{US}") for s in steps[2:])
    assert "".join(c[0]["function"]["arguments"] for c in calls) == "".join(TOOL_ARGS)
    assert t.end["n_delivered"] == t.end["n_generated"] == n == len(t.token_ids)


def test_json_tool_calls_and_reasoning_are_recorded(audited: tuple[str, Any, str]) -> None:
    url, recorder, db_url = audited
    r = _post(url, ACME, "tc-json-1", path="/v1/chat/completions",
              messages=[{"role": "user", "content": "balance?"}])  # fmt: skip
    assert r.status_code == 200
    message = r.json()["choices"][0]["message"]
    envelope, *steps = step_texts(_closed_trail(recorder, db_url, "acme-bank/tc-json-1"))
    assert envelope == f'{RS}envelope{US}{{"id":"x","object":"chat.completion"}}'
    assert steps[0] == "checking"
    assert steps[1] == f"{RS}reasoning_content{US}{REASONING}"
    recorded_calls = json.loads(steps[2].removeprefix(f"{RS}tool_calls{US}"))
    assert recorded_calls == message["tool_calls"]
    assert json.loads(recorded_calls[0]["function"]["arguments"]) == {"account": "12345"}


def test_unknown_keys_are_refused_before_anything_is_written(
    audited: tuple[str, Any, str],
) -> None:
    """C3, C19: with a key table, an unknown or missing key is refused (401) by the middleware;
    the refusal is a small trail in the key's own namespace, under an id the middleware chose,
    with no content (the body is never read). The answer is ``auditlog serve``'s: the one
    authentication error, as the one OpenAI error body, with ``WWW-Authenticate``."""
    url, recorder, db_url = audited
    table = ApiKeyTable.from_plain_keys({})
    for key in ("sk-unknown-1", "sk-unknown-2"):
        r = _post(url, key, "mine-1", prompt="SECRET " * 1000)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", r.text
        served = as_api_error(table.rejection(f"Bearer {key}") or AssertionError())
        assert r.json() == served.body() and served.type == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
        trail_id = r.headers["x-auditlog-request-id"]
        assert trail_id.startswith(f"unmapped/key:{hash_api_key(key)[:16]}/asgi-")
        t = _closed_trail(recorder, db_url, trail_id)
        assert t.tenant == "unmapped" and key not in trail_id
        assert t.prompt_text == "" and t.token_ids == [] and t.reason == "error"
        assert t.start["params"]["refused"] == "invalid_api_key"
    anonymous = httpx.post(f"{url}/v1/completions", json={"model": "m", "prompt": "x"})
    assert anonymous.status_code == 401
    assert anonymous.json() == as_api_error(table.rejection(None) or AssertionError()).body()
    assert anonymous.headers["x-auditlog-request-id"].startswith("unmapped/anonymous/asgi-")
    assert ChoiceDelta(text="plain").recorded_steps() == ["plain"]


def test_websockets_under_guarded_paths_are_closed_before_accept(tmp_path: Path) -> None:
    """C23: a realtime WebSocket would stream output unrecorded. The uvicorn here has no
    WebSocket library, so the middleware is driven through its ASGI interface directly."""
    reached: list[str] = []

    async def realtime(ws: WebSocket) -> None:
        reached.append(ws.url.path)
        await ws.accept()
        await ws.send_text("unaudited secret")
        await ws.close()

    app = Starlette(routes=[WebSocketRoute("/v1/realtime", realtime),
                            WebSocketRoute("/ws", realtime)])  # fmt: skip
    recorder, *_ = open_recorder(tmp_path, ORIGIN)
    try:
        middleware = AuditMiddleware(app, recorder=recorder)

        async def connect(path: str) -> list[dict[str, Any]]:
            sent: list[dict[str, Any]] = []
            inbox = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

            async def receive() -> dict[str, Any]:
                return inbox.pop(0)

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {"type": "websocket", "path": path, "root_path": "", "headers": [],
                     "query_string": b"", "scheme": "ws", "server": ("127.0.0.1", 80)}  # fmt: skip
            await middleware(scope, receive, send)
            return sent

        denied = asyncio.run(connect("/v1/realtime"))
        assert denied == [{"type": "websocket.close", "code": 1008,
                           "reason": "endpoint not audited"}]  # fmt: skip
        assert reached == []
        allowed = asyncio.run(connect("/ws"))
        assert allowed[0]["type"] == "websocket.accept" and reached == ["/ws"]
    finally:
        recorder.close()
