"""Issue 16, findings 6-9: the response side is fail-closed (C21, C23, C6).

Against a real Starlette app under uvicorn (``echo_app``, its ``model`` field picking a hostile
answer shape), with the official ``openai`` client and raw HTTP (httpx raw bytes, a raw socket).
Every byte a client receives MUST be recorded before it leaves; what the middleware cannot
record is cut with an error and the trail says so.
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from echo_app import LOGPROBS, SECRET, SLOW_S, echo_app
from integration_fixtures import Audited, audited_app, marked_values, step_texts, trail_text
from starlette.middleware.gzip import GZipMiddleware

from auditlog.gateway.auth import ApiKeyTable
from auditlog.gateway.openai_wire import marked_field

ORIGIN = "asgi.test.invalid/findings-resp-0"
KEY = "sk-acme-response"
TABLE = {KEY: ("acme-bank", "svc@acme")}


@pytest.fixture
def echo(tmp_path: Path, db_url: str) -> Iterator[Audited]:
    table = ApiKeyTable.from_plain_keys(TABLE)
    with audited_app(echo_app(), tmp_path, ORIGIN, db_url, identities=table) as audited:
        yield audited


def _client(a: Audited) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{a.url}/v1", api_key=KEY, max_retries=0)


def _raw_stream(a: Audited, model: str, rid: str, stream: bool = True) -> tuple[bytes, Any]:
    """The exact bytes a raw client receives, and the response headers."""
    body = {"model": model, "prompt": "hi", "stream": stream}
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": rid}
    with httpx.stream("POST", f"{a.url}/v1/completions", json=body, headers=headers,
                      timeout=30) as r:  # fmt: skip
        return b"".join(r.iter_raw()), r.headers


@pytest.mark.parametrize("model", ["plain", "cr", "split-crlf", "upper-ct"])
def test_finding6_valid_event_streams_are_recorded(echo: Audited, model: str) -> None:
    """CR, CRLF split across writes, a media type in capitals: all valid SSE, all recorded
    (the openai client reads every one of them)."""
    raw = _client(echo).completions.with_streaming_response.create(
        model=model, prompt="hi", stream=True)  # fmt: skip
    with raw as response:
        trail_id = response.headers["x-auditlog-request-id"]
        text = "".join(chunk.choices[0].text for chunk in response.parse() if chunk.choices)
    t = echo.closed_trail(trail_id)
    assert text == "ECHO[0]:hi" == trail_text(t), (model, t.end)
    assert t.reason == "stop" and t.end["n_delivered"] == t.end["n_generated"] == len(t.token_ids)
    data, _ = _raw_stream(echo, model, f"raw-{model}")
    assert data.count(b'"text"') == 2 and data.rstrip().endswith(b"[DONE]")
    assert trail_text(echo.closed_trail(f"acme-bank/raw-{model}")) == "ECHO[0]:hi"


@pytest.mark.parametrize("model", ["index-null", "index-str", "ndjson", "sse-id"])
def test_finding6_unattributable_output_is_cut(echo: Audited, model: str) -> None:
    """A choice index of null or "0", an NDJSON stream, an SSE ``id`` field (text that is not
    output): nothing of it leaves; the client gets an error, the trail ends ``error``."""
    with pytest.raises(openai.APIError):
        for _ in _client(echo).completions.create(model=model, prompt="hi", stream=True):
            pass
    data, _ = _raw_stream(echo, model, f"cut-{model}")
    assert b"ECHO" not in data and SECRET.encode() not in data, data
    assert b"audit_unrecordable_response" in data, data
    t = echo.closed_trail(f"acme-bank/cut-{model}")
    assert t.reason == "error" and t.token_ids == [] and t.end["n_delivered"] == 0
    assert "cannot be" in t.end["error"], t.end
    if model.startswith("index"):  # the same shapes in a JSON answer: 502
        data, _ = _raw_stream(echo, model, f"cut-json-{model}", stream=False)
        assert b"ECHO" not in data
        assert json.loads(data)["error"]["code"] == "audit_unrecordable_response"
        assert echo.closed_trail(f"acme-bank/cut-json-{model}").reason == "error"


@pytest.mark.parametrize("model", ["text-plain", "two-ct"])
def test_finding6_unknown_or_ambiguous_media_type_is_cut(echo: Audited, model: str) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        _client(echo).completions.create(model=model, prompt="hi")
    assert err.value.status_code == 502 and "ECHO" not in err.value.response.text
    t = echo.closed_trail(err.value.response.headers["x-auditlog-request-id"])
    assert t.reason == "error" and t.token_ids == []


@pytest.fixture
def gzip_inside(tmp_path: Path, db_url: str) -> Iterator[Audited]:
    table = ApiKeyTable.from_plain_keys(TABLE)
    with audited_app(echo_app(gzip_inside=True), tmp_path, ORIGIN, db_url,
                     identities=table) as audited:  # fmt: skip
        yield audited


@pytest.mark.parametrize("stream", [False, True])
def test_finding7_compression_inside_is_neutralised(gzip_inside: Audited, stream: bool) -> None:
    """GZipMiddleware added to the app (inside the audit middleware) never sees the client's
    Accept-Encoding, so the answer is plain and recorded; httpx asks for gzip by default."""
    rid = f"gz-{stream}"
    data, headers = _raw_stream(gzip_inside, "plain", rid, stream=stream)
    assert "content-encoding" not in headers and b"ECHO" in data
    t = gzip_inside.closed_trail(f"acme-bank/{rid}")
    assert trail_text(t) == "ECHO[0]:hi" and t.reason == "stop"
    out = _client(gzip_inside).completions.create(model="plain", prompt="hi")
    assert out.choices[0].text == "ECHO[0]:hi"


def test_finding7_compressed_answer_is_cut(echo: Audited) -> None:
    """An app that compresses whatever the client asked: refused (502), nothing released."""
    data, headers = _raw_stream(echo, "always-gzip", "gz-always", stream=False)
    assert headers.get("content-encoding") is None and b"compression middleware" in data
    t = echo.closed_trail("acme-bank/gz-always")
    assert t.reason == "error" and "Content-Encoding gzip" in t.end["error"]


def test_finding7_compression_outside_is_the_documented_order(tmp_path: Path, db_url: str) -> None:
    """GZipMiddleware(AuditMiddleware(app)): the client gets gzip, the trail the plain text."""
    table = ApiKeyTable.from_plain_keys(TABLE)
    with audited_app(echo_app(), tmp_path, ORIGIN, db_url, identities=table,
                     wrap=lambda mw: GZipMiddleware(mw, minimum_size=1)) as a:  # fmt: skip
        data, headers = _raw_stream(a, "plain", "gz-outside", stream=False)
        assert headers["content-encoding"] == "gzip"
        assert json.loads(gzip.decompress(data))["choices"][0]["text"] == "ECHO[0]:hi"
        t = a.closed_trail("acme-bank/gz-outside")
        assert trail_text(t) == "ECHO[0]:hi" and t.reason == "stop"


def test_finding8_client_gone_before_a_json_answer_is_an_abort(echo: Audited) -> None:
    """The connection is watched while the app works without reading it: a client that left
    before the answer (the app takes ``SLOW_S``) is ``abort`` with 0 delivered, never ``stop``."""
    host, port = urlsplit(echo.url).hostname, urlsplit(echo.url).port
    body = json.dumps({"model": "slow", "prompt": "hi"}).encode()
    request = (
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {KEY}\r\nx-request-id: gone-1\r\n".encode()
        + f"content-length: {len(body)}\r\n\r\n".encode() + body
    )  # fmt: skip
    with socket.create_connection((host, port)) as sock:
        sock.sendall(request)
        echo.recorder.wait_durable("acme-bank/gone-1", 0, timeout=30)  # the app is running
    t = echo.closed_trail("acme-bank/gone-1")
    assert t.reason == "abort" and t.end["n_delivered"] == 0, t.end
    impatient = _client(echo).with_options(timeout=SLOW_S / 3,
                                           default_headers={"x-request-id": "gone-2"})  # fmt: skip
    with pytest.raises(openai.APITimeoutError):  # the official client gives up and hangs up
        impatient.completions.create(model="slow", prompt="hi")
    t = echo.closed_trail("acme-bank/gone-2")
    assert t.reason == "abort" and t.end["n_delivered"] == 0, t.end


def test_finding9_logprobs_are_recorded(echo: Audited) -> None:
    raw = _client(echo).completions.with_raw_response.create(model="logprobs", prompt="hi",
                                                             logprobs=1)  # fmt: skip
    out = raw.parse()
    assert out.choices[0].logprobs is not None
    t = echo.closed_trail(raw.headers["x-auditlog-request-id"])
    assert step_texts(t)[1:] == ["ECHO[0]:hi", marked_field("logprobs", LOGPROBS)]  # [0]: envelope
    assert json.loads(marked_values(t, "logprobs")[0])["token_logprobs"] == ["-0.25"]  # exact


def test_finding9_nothing_after_done_or_unterminated_is_released(echo: Audited) -> None:
    data, _ = _raw_stream(echo, "after-done", "after-done-1")
    assert SECRET.encode() not in data and data.endswith(b"data: [DONE]\n\n")
    assert echo.closed_trail("acme-bank/after-done-1").reason == "stop"
    data, _ = _raw_stream(echo, "no-final-blank", "unterminated-1")
    assert SECRET.encode() not in data
    t = echo.closed_trail("acme-bank/unterminated-1")
    assert t.reason == "error" and "unterminated" in t.end["error"]
    assert trail_text(t) == "ECHO[0]:hi"


def test_finding6_comment_text_never_reaches_a_raw_client(echo: Audited) -> None:
    """A comment carries text a raw client reads: it is released as a bare ``:``."""
    data, _ = _raw_stream(echo, "comment", "comment-1")
    assert SECRET.encode() not in data and b"\n:\r\nevent: message\r\n:\n" in data
    assert trail_text(echo.closed_trail("acme-bank/comment-1")) == "ECHO[0]:hi"
    chunks = _client(echo).completions.create(model="comment", prompt="hi", stream=True)
    text = "".join(c.choices[0].text for c in chunks)
    assert text == "ECHO[0]:hi"


@pytest.mark.parametrize("stream", [False, True])
def test_finding9_the_app_cannot_set_the_trail_header(echo: Audited, stream: bool) -> None:
    rid = f"hdr-{stream}"
    _, headers = _raw_stream(echo, "trail-header", rid, stream=stream)
    assert headers.get_list("x-auditlog-request-id") == [f"acme-bank/{rid}"]


@pytest.mark.parametrize("stream", [False, True])
def test_finding6_an_error_never_hides_the_choices_beside_it(echo: Audited, stream: bool) -> None:
    """``"error": null`` beside the choices is no error: the official client shows the text, so
    the trail holds it; an error object beside them is recorded whole (its ``type`` too) with the
    choices' text, and the trail ends ``error``."""
    out = _client(echo).completions.create(model="error-null", prompt="hi", stream=stream)
    chunks = out if stream else [out]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "ECHO[0]:hi"
    data, _ = _raw_stream(echo, "error-null", f"err-null-{stream}", stream=stream)
    t = echo.closed_trail(f"acme-bank/err-null-{stream}")
    assert trail_text(t) == "ECHO[0]:hi" and t.reason == "stop", t.end
    data, _ = _raw_stream(echo, "error-beside", f"err-beside-{stream}", stream=stream)
    t = echo.closed_trail(f"acme-bank/err-beside-{stream}")
    assert t.reason == "error" and t.end["error"] == "m", t.end
    recorded = trail_text(t, delivered=False, marked=True)
    assert "ECHO[" in recorded and SECRET in recorded
    assert SECRET.encode() not in data or t.end["n_delivered"] == t.end["n_generated"]
