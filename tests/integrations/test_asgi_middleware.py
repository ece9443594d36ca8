"""The ASGI middleware around OpenAI-compatible apps we do not own (C3, C5, C6, C21, C22).

Around an independent Starlette app written here (streaming and not, multi-byte text, an error,
a slow stream the client abandons) and around our own server. The recorded text (UTF-8 byte
tokens) MUST equal what the client received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from integration_fixtures import open_recorder, serve, trail, trail_text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from auditlog.integrations.asgi import TRAIL_HEADER, AuditMiddleware
from auditlog.server import ApiKeyTable, hash_api_key
from auditlog.verifier import verify_database

ORIGIN = "asgi.test.invalid/mw-0"
KEY = "sk-third-party-1"
PIECES = ["Bonjour", ", ", "héllo ", "✓ ", "日本語", "\n", "🙂 done"]


async def _completions(request: Request) -> Any:
    body = await request.json()
    chat = request.url.path.endswith("chat/completions")
    if body.get("temperature", 1) > 2:
        return JSONResponse(
            {"error": {"message": "temperature too high", "type": "invalid_request_error",
                       "param": "temperature", "code": None}}, status_code=400,
        )  # fmt: skip
    pieces = PIECES[: body.get("max_tokens", len(PIECES))]
    finish = "length" if len(pieces) < len(PIECES) else "stop"
    delay = float(body.get("delay", 0))
    if not body.get("stream"):
        text = "".join(pieces)
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            if chat
            else {"index": 0, "text": text, "finish_reason": finish}
        )
        obj = "chat.completion" if chat else "text_completion"
        return JSONResponse(
            {"id": "x", "object": obj, "created": 0, "model": body["model"], "choices": [choice]}
        )

    async def events() -> AsyncIterator[bytes]:
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            c: dict[str, Any] = (
                {"index": 0, "delta": {"content": piece}, "finish_reason": finish if last else None}
                if chat
                else {"index": 0, "text": piece, "finish_reason": finish if last else None}
            )
            obj = "chat.completion.chunk" if chat else "text_completion"
            data = {"id": "x", "object": obj, "created": 0, "model": body["model"], "choices": [c]}
            yield b"data: " + json.dumps(data).encode() + b"\n\n"
            await asyncio.sleep(delay)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def third_party_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/completions", _completions, methods=["POST"]),
            Route("/v1/chat/completions", _completions, methods=["POST"]),
        ]
    )


@pytest.fixture
def audited(tmp_path: Path, db_url: str) -> Iterator[tuple[str, Any]]:
    """The middleware around a third-party app, recording on SQLite and on PostgreSQL."""
    recorder, signer, db_url, witness = open_recorder(tmp_path, ORIGIN, db_url)
    identities = ApiKeyTable({hash_api_key(KEY): ("acme-bank", "svc@acme-bank")})
    app = AuditMiddleware(third_party_app(), recorder=recorder, identities=identities)
    try:
        with serve(app) as url:
            yield url, (recorder, signer, db_url, witness)
    finally:
        recorder.close()
    report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness)
    assert report.ok, report.findings[:3]


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def _wait_closed(recorder: Any, request_id: str) -> None:
    recorder.wait_durable(request_id, 2**62, timeout=30)


def test_streamed_chat_is_recorded_byte_exact(audited: tuple[str, Any]) -> None:
    url, (recorder, _, db_url, _) = audited
    stream = _client(url).chat.completions.create(
        model="third-party", messages=[{"role": "user", "content": "Grüß dich"}],
        temperature=0.5, seed=3, stream=True, extra_headers={"x-request-id": "mw-chat-1"},
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "".join(PIECES)
    _wait_closed(recorder, "acme-bank/mw-chat-1")
    t = trail(db_url, ORIGIN, "acme-bank/mw-chat-1")
    assert trail_text(t) == text
    assert t.reason == "stop" and t.end["n_generated"] == t.end["n_delivered"]
    assert len({step for step in t.steps}) == len(PIECES) + 1  # one per chunk, the envelope once
    assert t.tenant == "acme-bank" and t.start["principal"] == "svc@acme-bank"
    assert t.start["client"] == f"key:{hash_api_key(KEY)[:16]}"
    params = t.start["params"]
    assert (params["temperature"], params["seed"], params["stream"]) == ("0.5", 3, True)
    assert params["tokenization"] == "utf-8-bytes"
    assert json.loads(t.prompt_text or "") == [{"role": "user", "content": "Grüß dich"}]


def test_non_streamed_completion_and_length(audited: tuple[str, Any]) -> None:
    url, (recorder, _, db_url, _) = audited
    raw = _client(url).completions.with_raw_response.create(
        model="third-party", prompt="Customer: hi\nAgent:", max_tokens=3
    )
    request_id = raw.headers[TRAIL_HEADER.decode()]
    text = raw.parse().choices[0].text
    assert text == "".join(PIECES[:3])
    _wait_closed(recorder, request_id)
    t = trail(db_url, ORIGIN, request_id)
    assert trail_text(t) == text and t.reason == "length"
    assert t.prompt_text == "Customer: hi\nAgent:"


def test_error_answer_is_recorded_as_error(audited: tuple[str, Any]) -> None:
    url, (recorder, _, db_url, _) = audited
    with pytest.raises(openai.BadRequestError):
        _client(url).completions.create(
            model="third-party", prompt="x", temperature=3,
            extra_headers={"x-request-id": "mw-err-1"},
        )  # fmt: skip
    _wait_closed(recorder, "acme-bank/mw-err-1")
    t = trail(db_url, ORIGIN, "acme-bank/mw-err-1")
    assert t.reason == "error" and "temperature too high" in t.end["error"]
    assert t.token_ids == []


def test_n_above_one_is_refused_and_recorded(audited: tuple[str, Any]) -> None:
    url, (recorder, _, db_url, _) = audited
    r = httpx.post(f"{url}/v1/completions", json={"model": "m", "prompt": "x", "n": 2},
                   headers={"x-request-id": "mw-n2", "authorization": f"Bearer {KEY}"})  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"
    _wait_closed(recorder, "acme-bank/mw-n2")
    t = trail(db_url, ORIGIN, "acme-bank/mw-n2")
    assert t.reason == "error" and t.token_ids == [] and t.prompt_text == ""  # no content kept
    assert t.start["params"]["refused"] == "unsupported_parameter"


def test_client_abandoning_a_stream_is_an_abort(audited: tuple[str, Any]) -> None:
    url, (recorder, _, db_url, _) = audited
    got: list[str] = []
    with httpx.Client(timeout=30) as c, c.stream(
        "POST", f"{url}/v1/completions",
        json={"model": "m", "prompt": "x", "stream": True, "delay": 0.3},
        headers={"x-request-id": "mw-abort-1", "authorization": f"Bearer {KEY}"},
    ) as r:  # fmt: skip
        for line in r.iter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line[6:])["choices"][0]["text"])
                break
    trail_id = "acme-bank/mw-abort-1"
    _wait_closed(recorder, trail_id)
    t = trail(db_url, ORIGIN, trail_id)
    assert t.reason == "abort"
    assert trail_text(t).startswith("".join(got))
    assert t.end["n_delivered"] <= t.end["n_generated"]
    assert len(trail_text(t, delivered=False).encode()) < len("".join(PIECES).encode())
    assert t.tenant == "acme-bank"
    assert t.start["client"] == f"key:{hash_api_key(KEY)[:16]}"


def test_fail_closed_releases_each_event_after_its_record_is_durable(
    audited: tuple[str, Any],
) -> None:
    """C21: observe the recorder at the moment each event reaches the client."""
    url, (recorder, *_) = audited
    seen: list[tuple[int, int]] = []
    with httpx.Client(timeout=30) as c, c.stream(
        "POST", f"{url}/v1/completions",
        json={"model": "m", "prompt": "x", "stream": True, "delay": 0.01},
        headers={"x-request-id": "mw-durable-1", "authorization": f"Bearer {KEY}"},
    ) as r:  # fmt: skip
        n = 0
        for line in r.iter_lines():
            if line.startswith("data: {"):
                n += len(json.loads(line[6:])["choices"][0]["text"].encode())
                seen.append((n, recorder.durable_tokens("acme-bank/mw-durable-1")))
    assert seen and all(durable >= n for n, durable in seen), seen
