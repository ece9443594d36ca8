"""Issue 16, findings 1-5: what reaches the app, and who the trail says called (C3, C5, C19).

Against a real Starlette app under uvicorn (``echo_app``: it parses as Starlette apps do and
echoes what it ran), with the official ``openai`` client and with raw HTTP (httpx bodies as
bytes, repeated headers). The middleware MUST record as the prompt exactly what the app ran, or
refuse the request before the app sees it with a small refusal record (no content).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from echo_app import RAN, echo_app
from integration_fixtures import Audited, audited_app, trail_text

from auditlog.gateway.auth import ApiKeyTable
from auditlog.trails import Trail

ORIGIN = "asgi.test.invalid/findings-req-0"
ACME, GLOBEX = "sk-acme-findings", "sk-globex-findings"
LIMIT = 64 * 1024


@pytest.fixture
def echo(tmp_path: Path, db_url: str) -> Iterator[Audited]:
    table = ApiKeyTable.from_plain_keys(
        {ACME: ("acme-bank", "svc@acme"), GLOBEX: ("globex-health", "svc@globex")}
    )
    with audited_app(echo_app(), tmp_path, ORIGIN, db_url, identities=table,
                     max_payload_bytes=LIMIT) as audited:  # fmt: skip
        yield audited


def _client(a: Audited, key: str = ACME) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{a.url}/v1", api_key=key, max_retries=0)


def _raw(a: Audited, content: bytes | Iterator[bytes], headers: Any = None,
         path: str = "/v1/completions") -> httpx.Response:  # fmt: skip
    base = [("authorization", f"Bearer {ACME}"), ("content-type", "application/json")]
    return httpx.post(f"{a.url}{path}", content=content, headers=headers or base, timeout=30)


def _refusal(a: Audited, r: httpx.Response, status: int, code: str) -> Trail:
    """The answer is the refusal; its trail is small: no content, reason error."""
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    t = a.closed_trail(r.headers["x-auditlog-request-id"])
    assert t.reason == "error" and t.prompt_text == "" and t.token_ids == []
    assert t.start["params"]["refused"] == code
    assert len(json.dumps(t.start)) < 1024, t.start
    return t


def test_finding1_decoy_input_field_is_refused(echo: Audited) -> None:
    """The app runs ``prompt`` on /v1/completions: a ``messages`` beside it is refused, and a
    plain request records exactly what the app ran."""
    ran = len(RAN)
    with pytest.raises(openai.BadRequestError) as err:
        decoy = [{"role": "user", "content": "decoy"}]
        _client(echo).completions.create(
            model="plain", prompt="REAL PROMPT", extra_body={"messages": decoy}
        )
    assert err.value.code == "conflicting_parameter"
    r = _raw(echo, json.dumps({"model": "plain", "prompt": "decoy",
                               "messages": [{"role": "user", "content": "REAL"}]}).encode(),
             path="/v1/chat/completions")  # fmt: skip
    _refusal(echo, r, 400, "conflicting_parameter")
    assert len(RAN) == ran  # the app never saw either
    raw = _client(echo).completions.with_raw_response.create(model="plain", prompt="REAL PROMPT")
    t = echo.closed_trail(raw.headers["x-auditlog-request-id"])
    assert RAN[-1] == "REAL PROMPT" == t.prompt_text
    assert trail_text(t) == raw.parse().choices[0].text == "ECHO[0]:REAL PROMPT"


def test_finding2_several_prompts_are_refused(echo: Audited) -> None:
    """Each prompt of a list is its own choice: refused before the app; one prompt passes."""
    ran = len(RAN)
    with pytest.raises(openai.BadRequestError) as err:
        _client(echo).completions.create(model="plain", prompt=["first", "SECOND PROMPT"])
    assert err.value.code == "unsupported_parameter" and err.value.param == "prompt"
    for extra in ({"prompt": [[1, 2], [3]]}, {"n": 2}, {"best_of": 3}, {"n": "1"}, {"n": True}):
        r = _raw(echo, json.dumps({"model": "plain", "prompt": "x", **extra}).encode())
        _refusal(echo, r, 400, "unsupported_parameter")
    assert len(RAN) == ran
    one = _client(echo).completions.with_raw_response.create(model="plain", prompt=["only"])
    t = echo.closed_trail(one.headers["x-auditlog-request-id"])
    assert json.loads(t.prompt_text or "") == ["only"] and RAN[-1] == "only"
    assert trail_text(t) == "ECHO[0]:only" and t.reason == "stop"


def test_finding1_prompt_text_and_token_ids_are_told_apart(echo: Audited) -> None:
    """The string ``"[1,2]"`` and the token ids ``[1, 2]`` run differently but share a canonical
    text: ``input_form`` says which the app ran; a body cannot set it."""
    forms: dict[str, str] = {}
    for prompt in ("[1,2]", [1, 2]):
        raw = _client(echo).completions.with_raw_response.create(model="plain", prompt=prompt)
        t = echo.closed_trail(raw.headers["x-auditlog-request-id"])
        assert t.prompt_text == "[1,2]"
        forms[type(prompt).__name__] = t.start["params"]["input_form"]
    assert forms == {"str": "text", "list": "json"}
    chat = _client(echo).chat.completions.with_raw_response.create(
        model="plain", messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    t = echo.closed_trail(chat.headers["x-auditlog-request-id"])
    assert t.start["params"]["input_form"] == "json" and RAN[-1] == "hi"
    forged = json.dumps({"model": "plain", "prompt": "[1,2]", "input_form": "json"}).encode()
    _refusal(echo, _raw(echo, forged), 400, "reserved_parameter")


DIFFERENTIALS = {
    "bom": b"\xef\xbb\xbf" + b'{"model": "plain", "prompt": "bom", "n": 3}',
    "nan": b'{"model": "plain", "prompt": "x", "temperature": NaN}',
    "infinity": b'{"model": "plain", "prompt": "x", "temperature": Infinity}',
    "minus-infinity": b'{"model": "plain", "prompt": "x", "top_p": -Infinity}',
    "overflow": b'{"model": "plain", "prompt": "x", "temperature": 1e400}',
    "lone-surrogate": b'{"model": "plain", "prompt": "\\ud800 x"}',
    "surrogate-key": b'{"model": "plain", "prompt": "x", "\\udfff": 1}',
    "utf8-surrogate-bytes": b'{"model": "plain", "prompt": "\xed\xa0\x80"}',
    "utf-16": '{"model": "plain", "prompt": "utf16", "n": 3}'.encode("utf-16"),
    "utf-16-le": '{"model": "plain", "prompt": "utf16"}'.encode("utf-16-le"),
    "utf-32": '{"model": "plain", "prompt": "utf32", "tools": [{}]}'.encode("utf-32"),
    "latin-1": '{"model": "plain", "prompt": "caf\xe9"}'.encode("latin-1"),
    "duplicate-key": b'{"model": "plain", "prompt": "decoy", "prompt": "REAL"}',
    "deep": b'{"model": "plain", "prompt": "x", "logit_bias": ' + b"[" * 990 + b"]" * 990 + b"}",
    "huge-int": b'{"model": "plain", "prompt": "x", "seed": ' + b"9" * 5000 + b"}",
    "not-an-object": b'["plain"]',
    "not-json": b"model=plain&prompt=x",
}


@pytest.mark.parametrize("case", sorted(DIFFERENTIALS))
def test_finding3_parser_differentials_are_refused(echo: Audited, case: str) -> None:
    """What stdlib ``json`` (the app) would read differently or not at all never reaches it."""
    ran = len(RAN)
    _refusal(echo, _raw(echo, DIFFERENTIALS[case]), 400, "invalid_json")
    assert len(RAN) == ran


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_finding3_compressed_request_bodies_are_refused(echo: Audited, encoding: str) -> None:
    body = json.dumps({"model": "plain", "prompt": "zipped", "n": 3}).encode()
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = [("authorization", f"Bearer {ACME}"), ("content-encoding", encoding)]
    ran = len(RAN)
    _refusal(echo, _raw(echo, packed, headers), 415, "unsupported_encoding")
    assert len(RAN) == ran


def test_finding3_and_9_numbers_are_exact(echo: Audited) -> None:
    """An integer beyond 2^64 is recorded as its exact decimal string, a float as its shortest
    decimal string (the raw cases above refuse NaN, Infinity and 1e400)."""
    big = 123456789012345678901234567890
    raw = _client(echo).completions.with_raw_response.create(
        model="plain", prompt="exact", temperature=0.1, extra_body={"seed": big, "top_k": 7}
    )
    params = echo.closed_trail(raw.headers["x-auditlog-request-id"]).start["params"]
    assert params["seed"] == str(big) and params["top_k"] == 7 and params["temperature"] == "0.1"


def test_finding4_identity_headers_must_be_single(echo: Audited) -> None:
    """Two Authorization or two x-request-id headers: the app reads the first, other code the
    last; refused. A body field cannot stand in for the request id."""
    ran = len(RAN)
    body = json.dumps({"model": "plain", "prompt": "who am i"}).encode()
    twice = [("authorization", f"Bearer {ACME}"), ("authorization", f"Bearer {GLOBEX}")]
    t = _refusal(echo, _raw(echo, body, twice), 400, "duplicate_header")
    assert t.tenant == "unmapped" and t.start["principal"] == "anonymous"
    ids = [("authorization", f"Bearer {ACME}"), ("x-request-id", "a-1"), ("x-request-id", "b-2")]
    _refusal(echo, _raw(echo, body, ids), 400, "duplicate_header")
    with pytest.raises(openai.BadRequestError) as err:
        _client(echo).completions.create(model="plain", prompt="x",
                                         extra_body={"x_request_id": "forged"})  # fmt: skip
    assert err.value.code == "reserved_parameter"
    assert len(RAN) == ran
    ok = _client(echo).with_options(default_headers={"x-request-id": "joined-1"})
    raw = ok.completions.with_raw_response.create(model="plain", prompt="x")
    assert raw.headers["x-auditlog-request-id"] == "acme-bank/joined-1"
    t = echo.closed_trail("acme-bank/joined-1")
    assert (t.tenant, t.start["principal"], t.start["params"]["x_request_id"]) == (
        "acme-bank", "svc@acme", "joined-1")  # fmt: skip


def test_finding5_unauthenticated_requests_leave_only_a_refusal(echo: Audited) -> None:
    """The key is checked before the body is read: a large prompt without a valid key is
    refused by the middleware and its text is written nowhere."""
    ran = len(RAN)
    with pytest.raises(openai.AuthenticationError):
        _client(echo, key="sk-not-a-key").completions.create(model="plain", prompt="S" * 50_000)
    big = json.dumps({"model": "plain", "prompt": "SECRET" * 10_000}).encode()
    for headers in ([("authorization", "Bearer sk-wrong")], [("content-type", "application/json")]):
        _refusal(echo, _raw(echo, big, headers), 401, "invalid_api_key")
    assert len(RAN) == ran


def test_finding5_body_limit_is_enforced_while_reading(echo: Audited) -> None:
    """Over ``max_payload_bytes``: 413, declared (Content-Length) or streamed (chunked)."""
    ran = len(RAN)
    big = json.dumps({"model": "plain", "prompt": "x" * LIMIT}).encode()
    _refusal(echo, _raw(echo, big), 413, "request_too_large")

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "plain", "prompt": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"y" * 1024
        yield b'"}'

    _refusal(echo, _raw(echo, chunks()), 413, "request_too_large")
    with pytest.raises(openai.APIStatusError) as err:
        _client(echo).completions.create(model="plain", prompt="z" * LIMIT)
    assert err.value.status_code == 413
    assert len(RAN) == ran


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16"],
)
def test_finding3_bodies_the_app_would_not_read_with_json_loads_are_refused(
    echo: Audited, content_type: str
) -> None:
    """FastAPI hands a non-JSON Content-Type body to pydantic's own parser, not ``json.loads``:
    refused (415) so the two parsers cannot disagree."""
    body = json.dumps({"model": "plain", "prompt": "typed"}).encode()
    headers = [("authorization", f"Bearer {ACME}"), ("content-type", content_type)]
    ran = len(RAN)
    _refusal(echo, _raw(echo, body, headers), 415, "unsupported_media_type")
    assert len(RAN) == ran
    ok = [("authorization", f"Bearer {ACME}"), ("content-type", "Application/JSON; Charset=UTF-8")]
    assert _raw(echo, body, ok).status_code == 200 and RAN[-1] == "typed"


def test_finding4_query_string_is_recorded_and_body_cannot_pose_as_it(echo: Audited) -> None:
    r = httpx.post(f"{echo.url}/v1/completions?x=1", json={"model": "plain", "prompt": "q"},
                   headers={"authorization": f"Bearer {ACME}"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    params = echo.closed_trail(r.headers["x-auditlog-request-id"]).start["params"]
    assert params["query_string"] == "x=1" and params["path"] == "/v1/completions"
    forged = json.dumps({"model": "plain", "prompt": "q", "query_string": "x=2"}).encode()
    _refusal(echo, _raw(echo, forged), 400, "reserved_parameter")


def test_finding5_an_empty_key_table_refuses_everyone(tmp_path: Path, db_url: str) -> None:
    """An empty table is a table, not "no authentication"."""
    empty = ApiKeyTable({})
    with (
        audited_app(echo_app(), tmp_path, ORIGIN, db_url, identities=empty) as a,
        pytest.raises(openai.AuthenticationError),
    ):
        _client(a).completions.create(model="plain", prompt="x")


def test_a_generating_put_is_audited_like_a_post(echo: Audited) -> None:
    """The echo app also generates on PUT: the middleware treats every method but GET, HEAD and
    OPTIONS as a POST, so the same checks apply and the answer is recorded."""
    body = json.dumps({"model": "plain", "prompt": "put-real", "messages": []}).encode()
    headers = [("authorization", f"Bearer {ACME}"), ("content-type", "application/json")]
    r = httpx.put(f"{echo.url}/v1/completions", content=body, headers=headers, timeout=30)
    _refusal(echo, r, 400, "conflicting_parameter")
    body = json.dumps({"model": "plain", "prompt": "put-real"}).encode()
    r = httpx.put(f"{echo.url}/v1/completions", content=body, headers=headers, timeout=30)
    t = echo.closed_trail(r.headers["x-auditlog-request-id"])
    assert trail_text(t) == r.json()["choices"][0]["text"] == "ECHO[0]:put-real"
