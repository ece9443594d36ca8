"""The response envelope and ``usage`` are recorded exactly, once per change (C6, C21, C23).

The official ``openai`` client shows ``id``, ``model``, ``system_fingerprint``, ``created``,
``usage`` beside the choices: an app may answer with another model than the one requested, or
claim a usage count. Against a real Starlette app under uvicorn, on SQLite and PostgreSQL: the
trail holds each value once per change (``openai_wire``: the marked fields ``envelope`` and
``usage``), the client sees the same values, and every event leaves only once what it carries is
durable (a ``stream_options`` usage chunk with empty ``choices`` included).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from integration_fixtures import Audited, audited_app, marked_values, step_texts, trail_text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from auditlog.gateway.auth import ApiKeyTable
from auditlog.gateway.openai_wire import ResponseReader, marked_field

ORIGIN = "asgi.test.invalid/envelope-0"
KEY = "sk-acme-envelope"
REQUESTED, SERVED = "gpt-requested", "served-model-v2"
CREATED = 2**53 + 1  # beyond a double's exact integers: recorded as a decimal string
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
         "prompt_tokens_details": {"cached_tokens": 1}}  # fmt: skip
PARTS = (("", "fp_1"), ("Hel", "fp_1"), ("lo", "fp_2"))  # content, system_fingerprint


def _envelope(obj: str, fingerprint: str) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": obj, "created": CREATED, "model": SERVED,
            "system_fingerprint": fingerprint}  # fmt: skip


async def _chat(request: Request) -> Response:
    """Answers as another model than requested, with a fingerprint that changes mid-stream, and
    usage: in the answer, or in a last chunk with empty choices when ``include_usage``."""
    body = await request.json()
    if not body.get("stream"):
        choice = {"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": "Hello"}}  # fmt: skip
        return JSONResponse({**_envelope("chat.completion", "fp_1"), "choices": [choice],
                             "usage": USAGE})  # fmt: skip
    with_usage = (body.get("stream_options") or {}).get("include_usage")

    async def events() -> AsyncIterator[bytes]:
        for i, (content, fingerprint) in enumerate(PARTS):
            delta = {"role": "assistant", "content": content} if i == 0 else {"content": content}
            choice = {"index": 0, "delta": delta,
                      "finish_reason": "stop" if i == len(PARTS) - 1 else None}  # fmt: skip
            chunk = {**_envelope("chat.completion.chunk", fingerprint), "choices": [choice]}
            yield _data(chunk | ({"usage": None} if with_usage else {}))
        if with_usage:
            yield _data({**_envelope("chat.completion.chunk", "fp_2"), "choices": [],
                         "usage": USAGE})  # fmt: skip
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _data(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[Audited]:
    app = Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])
    table = ApiKeyTable.from_plain_keys({KEY: ("acme-bank", "svc@acme")})
    with audited_app(app, tmp_path, ORIGIN, db_url, identities=table) as audited:
        yield audited


def _client(a: Audited) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{a.url}/v1", api_key=KEY, max_retries=0)


def _recorded(obj: str, fingerprint: str) -> str:
    """The envelope step as recorded: canonical JSON, ``created`` as an exact decimal string."""
    return json.dumps({**_envelope(obj, fingerprint), "created": str(CREATED)},
                      sort_keys=True, separators=(",", ":"))  # fmt: skip


def test_streamed_envelope_and_usage_chunk_are_recorded_once_per_change(
    served: Audited,
) -> None:
    """C6, C23: the envelope once for the first chunk and once when the fingerprint changes,
    ``usage`` once (the usage chunk has empty choices); the client saw exactly these values."""
    raw = _client(served).chat.completions.with_streaming_response.create(
        model=REQUESTED, messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})  # fmt: skip
    with raw as response:
        trail_id = response.headers["x-auditlog-request-id"]
        chunks = list(response.parse())
    t = served.closed_trail(trail_id)
    assert t.reason == "stop" and t.end["n_delivered"] == t.end["n_generated"] == len(t.token_ids)
    assert t.start["params"]["model"] == REQUESTED
    assert step_texts(t) == [
        marked_field("envelope", _recorded("chat.completion.chunk", "fp_1")), "Hel",
        marked_field("envelope", _recorded("chat.completion.chunk", "fp_2")), "lo",
        marked_field("usage", USAGE),
    ]  # fmt: skip
    assert trail_text(t) == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    seen = [json.loads(v) for v in marked_values(t, "envelope")]
    assert [e["system_fingerprint"] for e in seen] == ["fp_1", "fp_2"]
    assert {(c.id, c.model, c.created, c.system_fingerprint) for c in chunks} == {
        (e["id"], e["model"], int(e["created"]), e["system_fingerprint"]) for e in seen
    }
    assert all(c.model == SERVED != REQUESTED for c in chunks)
    assert not chunks[-1].choices and chunks[-1].usage is not None
    assert json.loads(marked_values(t, "usage")[0]) == chunks[-1].usage.to_dict() == USAGE


def test_json_answer_envelope_and_usage_are_recorded(served: Audited) -> None:
    """C6: a whole answer records its envelope and usage once each, as the client sees them."""
    raw = _client(served).chat.completions.with_raw_response.create(
        model=REQUESTED, messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    out = raw.parse()
    t = served.closed_trail(raw.headers["x-auditlog-request-id"])
    assert step_texts(t) == [marked_field("envelope", _recorded("chat.completion", "fp_1")),
                             "Hello", marked_field("usage", USAGE)]  # fmt: skip
    assert t.end["n_delivered"] == t.end["n_generated"] == len(t.token_ids)
    envelope = json.loads(marked_values(t, "envelope")[0])
    assert (out.id, out.model, out.created, out.system_fingerprint) == (
        envelope["id"], SERVED, CREATED, envelope["system_fingerprint"])  # fmt: skip
    assert int(envelope["created"]) == CREATED  # exact, not rounded through a double
    assert out.usage is not None and json.loads(marked_values(t, "usage")[0]) == out.usage.to_dict()


@pytest.mark.parametrize("stream", [True, False])
def test_envelope_and_usage_are_durable_before_release(served: Audited, stream: bool) -> None:
    """C21: each event (the usage chunk too) and the JSON answer leave only once the steps they
    carry are durable."""
    rid = f"durable-{stream}"
    trail_id = f"acme-bank/{rid}"
    body: dict[str, Any] = {"model": REQUESTED, "stream": stream,
                            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    body |= {"stream_options": {"include_usage": True}} if stream else {}
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": rid}
    seen: list[tuple[int, int]] = []
    n, reader = 0, ResponseReader()
    with httpx.stream("POST", f"{served.url}/v1/chat/completions", json=body, headers=headers,
                      timeout=30) as r:  # fmt: skip
        lines = r.iter_lines() if stream else iter(["data: " + r.read().decode()])
        for line in lines:
            if line.startswith("data: {"):
                delta = reader.read(json.loads(line[6:]))
                n += sum(len(s.encode()) for s in delta.recorded_steps())
                seen.append((n, served.recorder.durable_tokens(trail_id)))
    assert len(seen) == (4 if stream else 1)
    assert all(durable >= num for num, durable in seen), seen
    t = served.closed_trail(trail_id)
    assert t.end["n_delivered"] == t.end["n_generated"] == n == len(t.token_ids)
    assert marked_values(t, "usage") == [marked_field("usage", USAGE).split("\x1f", 1)[1]]


def test_reader_records_each_envelope_change_and_usage_only_chunks() -> None:
    """C6: the envelope step appears for the first chunk and on every change (also to none),
    a chunk with empty choices and usage is recorded, an unchanged envelope is not repeated."""
    reader = ResponseReader()
    first = reader.read({"id": "a", "model": "m", "choices": [], "usage": None})
    assert first.recorded_steps() == [marked_field("envelope", {"id": "a", "model": "m"})]
    assert reader.read({"id": "a", "model": "m", "choices": []}).recorded_steps() == []
    usage = reader.read({"id": "a", "model": "m", "choices": [], "usage": {"total_tokens": 1}})
    assert usage.recorded_steps() == [marked_field("usage", {"total_tokens": 1})]
    gone = reader.read({"error": {"message": "x"}})
    assert gone.recorded_steps() == [marked_field("envelope", {}),
                                     marked_field("error", {"message": "x"})]  # fmt: skip
    assert ResponseReader().read({"choices": []}).recorded_steps() == []
