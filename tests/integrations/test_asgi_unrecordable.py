"""Issue 16, fail-closed at the recorder's own limits: what the trail cannot hold is cut or refused.

Against the echoing Starlette app under uvicorn, with the official ``openai`` client and raw
HTTP. An answer whose bytes carry text the trail would not hold (a duplicate key: clients keep
the last value, the bytes carry both), an answer nested past ``MAX_DEPTH``, an answer or error
over the recorder's limits (a step over ``MAX_STEP_TOKENS``, an error text over
``MAX_ERROR_LENGTH``) MUST be cut with an error and a closed trail, never released, never a
crash that leaves the trail open (C21, C6). A request whose parameters the recorder cannot hold
MUST be refused before the app with a small refusal record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from echo_app import RAN, SECRET, echo_app
from integration_fixtures import Audited, audited_app, trail_text

from auditlog.gateway.auth import ApiKeyTable

ORIGIN = "asgi.test.invalid/unrecordable-0"
KEY = "sk-acme-unrecordable"
CUT = "audit_unrecordable_response"


@pytest.fixture
def echo(tmp_path: Path, db_url: str) -> Iterator[Audited]:
    table = ApiKeyTable.from_plain_keys({KEY: ("acme-bank", "svc@acme")})
    with audited_app(echo_app(), tmp_path, ORIGIN, db_url, identities=table) as audited:
        yield audited


def _client(a: Audited) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{a.url}/v1", api_key=KEY, max_retries=0, timeout=60)


def _raw(a: Audited, body: dict[str, Any], rid: str) -> tuple[int, bytes]:
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": rid}
    with httpx.stream("POST", f"{a.url}/v1/completions", json=body, headers=headers,
                      timeout=60) as r:  # fmt: skip
        return r.status_code, b"".join(r.iter_raw())


@pytest.mark.parametrize(
    ("model", "stream"),
    [(m, s) for m in ("dup-key", "deep", "huge", "echo-error") for s in (False, True)]
    + [("long-error", True)],  # an in-stream error
)
def test_answers_the_trail_cannot_hold_are_cut(echo: Audited, model: str, stream: bool) -> None:
    """A duplicate ``text`` key (the shadowed value is in the bytes), a field nested 990 deep
    (recording it recursed into a 500), content over the step limit, a 422 echoing a long
    prompt, an in-stream error message over the end record's limit: nothing of it leaves; 502
    (JSON) or an error event (stream); the trail is closed ``error``."""
    body = {"model": model, "prompt": "P" * 5000 if model == "echo-error" else "hi",
            "stream": stream}  # fmt: skip
    rid = f"{model}-{stream}"
    status, data = _raw(echo, body, rid)
    assert SECRET.encode() not in data and b"HHHH" not in data and b"PPPP" not in data, data[:300]
    if stream and model != "echo-error":
        assert status == 200 and data.endswith(b"\n\n") and CUT.encode() in data, data[-300:]
    else:
        assert status == 502 and json.loads(data)["error"]["code"] == CUT, data[:300]
    t = echo.closed_trail(f"acme-bank/{rid}")
    assert t.reason == "error" and t.end is not None, t.end
    assert trail_text(t) in ("", "ECHO[")  # at most the first event (with its envelope) left
    assert SECRET not in trail_text(t, delivered=False, marked=True)
    with pytest.raises(openai.APIError):  # the official client sees the error, not the answer
        out = _client(echo).completions.create(**body)
        for _ in out if stream else ():
            pass


def test_short_error_bodies_still_pass_whole(echo: Audited) -> None:
    """Under the limit, the app's own 422 reaches the client and the trail holds its text."""
    with pytest.raises(openai.UnprocessableEntityError) as err:
        _client(echo).completions.create(model="echo-error", prompt="short")
    t = echo.closed_trail(err.value.response.headers["x-auditlog-request-id"])
    assert t.reason == "error" and '"input":"short"' in t.end["error"], t.end


def test_parameters_the_recorder_cannot_hold_are_refused(echo: Audited) -> None:
    """A body within the payload limit whose parameters exceed the start record's limit: refused
    before the app (400), with a small refusal record instead of a crash."""
    ran = len(RAN)
    with pytest.raises(openai.BadRequestError) as err:
        _client(echo).completions.create(model="plain", prompt="x", suffix="S" * 300_000)
    assert err.value.code == "unrecordable_request" and len(RAN) == ran
    t = echo.closed_trail(err.value.response.headers["x-auditlog-request-id"])
    assert t.reason == "error" and t.prompt_text == "" and t.token_ids == []
    assert t.start["params"]["refused"] == "unrecordable_request"
