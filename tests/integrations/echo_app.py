"""A small OpenAI-compatible Starlette app that echoes what it ran, for the middleware tests.

It parses bodies as Starlette apps do (``await request.json()``: stdlib ``json``) and answers with
what it actually ran, so a test can compare the trail with the app. ``RAN`` lists every input it
ran (a refused request never appears there). The ``model`` field picks a hostile answer shape:

``plain`` (default), ``cr`` (events end in ``\\r\\r``), ``split-crlf`` (``\\r\\n\\r\\n`` split
across writes), ``upper-ct`` (``Text/Event-Stream; charset=UTF-8``), ``index-null`` and
``index-str`` (a choice index of ``null`` / ``"0"``), ``ndjson`` (NDJSON stream), ``after-done``
(an event after ``[DONE]``), ``no-final-blank`` (a last event without its blank line),
``trail-header`` (the app sets its own ``x-auditlog-request-id``), ``logprobs`` (choices carry
logprobs), ``comment`` (SSE comments carrying text), ``sse-id`` (an ``id`` field),
``always-gzip`` (a gzip answer whatever the client accepts), ``slow`` (answers after
:data:`SLOW_S`), ``text-plain`` (a 200 answer as ``text/plain``), ``two-ct`` (two Content-Type
headers), ``dup-key`` (each choice also carries :data:`SECRET` under a first, shadowed ``text``
key), ``deep`` (each choice carries a field nested :data:`DEEP` levels), ``huge`` (the answer
padded past the recorder's step limit), ``echo-error`` (a 422 that echoes the prompt, as
FastAPI's validation errors do), ``long-error`` (an in-stream error event with a long message),
``error-null`` and ``error-beside`` (every answer and chunk also carries ``"error": null`` / an
error object whose ``type`` is :data:`SECRET`).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

RAN: list[Any] = []  # every input the app ran, in order
SLOW_S = 3.0
SECRET = "UNRECORDED-SECRET"
DEEP = 990  # levels of nesting: recursive code over it exhausts the stack
PADDING = 2**20  # bytes past the recorder's step limit (MAX_STEP_TOKENS)
ERRORS = {"error-null": {"error": None},
          "error-beside": {"error": {"message": "m", "type": SECRET}}}  # fmt: skip
LOGPROBS = {"tokens": ["E"], "token_logprobs": [-0.25], "top_logprobs": None, "text_offset": [0]}


def _inputs(body: dict[str, Any], chat: bool) -> list[str]:
    """What the app runs: one input per choice (a list prompt is several prompts)."""
    if chat:
        return [str(body["messages"][-1]["content"])]
    prompt = body.get("prompt", "")
    prompts = prompt if isinstance(prompt, list) and prompt and isinstance(prompt[0], str) else [
        prompt]  # fmt: skip
    return [p if isinstance(p, str) else json.dumps(p) for p in prompts]


def _choice(index: Any, text: str, chat: bool, finish: str | None, model: str) -> dict[str, Any]:
    c: dict[str, Any] = {"index": index, "finish_reason": finish}
    c |= {"delta": {"content": text}} if chat else {"text": text}
    if model == "logprobs":
        c["logprobs"] = LOGPROBS
    return c


def _event(obj: dict[str, Any], end: bytes = b"\n\n") -> bytes:
    return b"data: " + _dumps(obj) + end


def _dumps(obj: dict[str, Any]) -> bytes:
    """JSON; under ``dup-key`` every ``"text": `` is preceded by a shadowed ``"text": SECRET``,
    under ``deep`` every choice carries a field nested :data:`DEEP` levels."""
    raw = json.dumps(obj).encode()
    if obj.get("model") == "deep":
        return raw.replace(
            b'"finish_reason"', b'"x": ' + b"[" * DEEP + b"]" * DEEP + b', "finish_reason"'
        )
    if obj.get("model") != "dup-key":
        return raw
    return raw.replace(b'"text": ', b'"text": "' + SECRET.encode() + b'", "text": ')


async def _generate(request: Request) -> Response:
    body = await request.json()
    chat = request.url.path.endswith("chat/completions")
    model = str(body.get("model", "plain"))
    inputs = _inputs(body, chat)
    RAN.extend(inputs)
    n = int(body.get("n") or 1)
    answers = [f"ECHO[{i}]:{text}" for text in inputs for i in range(n)]
    if model == "huge":
        answers = [a + "H" * PADDING for a in answers]
    if model == "echo-error":
        return JSONResponse({"detail": [{"msg": "bad", "input": body.get("prompt")}]}, 422)
    index: Any = {"index-null": None, "index-str": "0"}.get(model, 0)
    if model == "slow":
        await asyncio.sleep(SLOW_S)
    if body.get("stream"):
        return _stream(answers, chat, model, index)
    choices = [_choice(index if i == 0 else i, a, chat, "stop", model) for i, a in
               enumerate(answers)]  # fmt: skip
    if chat:
        for c in choices:
            c["message"] = {"role": "assistant", "content": c.pop("delta")["content"]}
    obj = {"id": "x", "object": "text_completion", "created": 0, "model": model,
           "choices": choices, **ERRORS.get(model, {})}  # fmt: skip
    if model == "always-gzip":
        raw = gzip.compress(json.dumps(obj).encode())
        return Response(raw, media_type="application/json", headers={"content-encoding": "gzip"})
    if model in ("dup-key", "deep"):
        return Response(_dumps(obj), media_type="application/json")
    if model == "text-plain":
        return Response(" ".join(answers), media_type="text/plain")
    headers = {"x-auditlog-request-id": "victim/forged"} if model == "trail-header" else None
    response = JSONResponse(obj, headers=headers)
    if model == "two-ct":
        response.raw_headers.append((b"content-type", b"text/plain"))
    return response


def _stream(answers: list[str], chat: bool, model: str, index: Any) -> Response:
    end = {"cr": b"\r\r", "no-final-blank": b"\n\n"}.get(model, b"\n\n")

    async def events() -> AsyncIterator[bytes]:
        if model == "sse-id":
            yield f"id: {SECRET}\n".encode()
        if model == "long-error":
            yield _event({"error": {"message": SECRET * 400, "type": "server_error"}})
        for i, answer in enumerate(answers):
            for j, part in enumerate((answer[:5], answer[5:])):
                last = j == 1
                chunk = {"id": "x", "object": "chunk", "created": 0, "model": model,
                         "choices": [_choice(index if i == 0 else i, part, chat,
                                             "stop" if last else None, model)],
                         **ERRORS.get(model, {})}  # fmt: skip
                if model == "ndjson":
                    yield json.dumps(chunk).encode() + b"\n"
                elif model == "split-crlf":
                    yield _event(chunk, b"\r\n")
                    yield b"\r\n"
                else:
                    yield _event(chunk, end)
                if model == "comment":
                    yield f": {SECRET}\r\nevent: message\r\n: {SECRET}\n".encode()
        if model == "no-final-blank":
            yield (
                b"data: "
                + json.dumps({"choices": [_choice(0, SECRET, chat, None, model)]}).encode()
            )
            return
        yield b"data: [DONE]" + end
        if model == "after-done":
            yield _event({"choices": [_choice(0, SECRET, chat, "stop", model)]})

    media = {"ndjson": "application/x-ndjson", "upper-ct": "Text/Event-Stream; charset=UTF-8"}
    headers = {"x-auditlog-request-id": "victim/forged"} if model == "trail-header" else None
    return StreamingResponse(events(), media_type=media.get(model, "text/event-stream"),
                             headers=headers)  # fmt: skip


def echo_app(*, gzip_inside: bool = False) -> Starlette:
    """The app; ``gzip_inside`` adds Starlette's ``GZipMiddleware`` to it, as
    ``app.add_middleware`` would (inside the audit middleware)."""
    routes = [
        Route("/v1/completions", _generate, methods=["POST", "PUT"]),  # PUT: it generates too
        Route("/v1/chat/completions", _generate, methods=["POST"]),
    ]
    middleware = [Middleware(GZipMiddleware, minimum_size=1)] if gzip_inside else []
    return Starlette(routes=routes, middleware=middleware)
