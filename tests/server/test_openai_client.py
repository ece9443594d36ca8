"""The server through the official ``openai`` client: every answer equals its durable trail.

Cites: C1 (one chain per inference), C3 (identity from the API key), C5 (parameters and seed),
C6 (generated vs delivered), C21 (fail-closed release), C22 (client disconnect).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from server_fixtures import ACME_KEY, GLOBEX_KEY, MODEL, LiveServer, read_engine

from auditlog.server import hash_api_key
from auditlog.trails import Trail, read_trail
from auditlog.verifier import verify_database

pytestmark = pytest.mark.engine


def client(live: LiveServer, key: str = ACME_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.base_url}/v1", api_key=key, max_retries=0, timeout=60)


def trail_of(live: LiveServer, request_id: str) -> Trail:
    live.wait_closed(request_id)
    engine = read_engine(live.db_url)
    try:
        with engine.connect() as conn:
            return read_trail(conn, live.origin, request_id)
    finally:
        engine.dispose()


def delivered_text(live: LiveServer, trail: Trail) -> str:
    """The text of the tokens the trail says were delivered."""
    assert trail.end is not None
    return live.engine.tokenizer.decode(trail.token_ids[: trail.end["n_delivered"]])


def assert_verifies(live: LiveServer) -> None:
    report = verify_database(
        live.db_url, keys=[live.signer.verifier_key], witness_dir=live.witness_dir
    )
    assert report.ok, report.findings[:5]


def assert_released_durably(live: LiveServer, request_id: str) -> None:
    """C21: at every release point the recorder held the released tokens durably."""
    releases = [r for r in live.releases if r.request_id == request_id]
    assert releases, "no release point seen"
    for r in releases:
        assert r.durable >= r.n_tokens, f"released {r.n_tokens} tokens, {r.durable} durable"


def test_completion_non_streaming_equals_trail(live_server: LiveServer) -> None:
    raw = client(live_server).completions.with_raw_response.create(
        model=MODEL,
        prompt="Customer: I was charged twice for my order\nAgent:",
        max_tokens=12,
        temperature=0.7,
        seed=1234,
        extra_headers={"x-request-id": "cmpl-nonstream-1"},
    )
    assert raw.headers["x-request-id"] == "cmpl-nonstream-1"
    assert raw.headers["x-auditlog-request-id"] == "acme-bank/cmpl-nonstream-1"
    response = raw.parse()
    text = response.choices[0].text
    trail = trail_of(live_server, "acme-bank/cmpl-nonstream-1")
    assert trail.end is not None
    assert delivered_text(live_server, trail) == text
    assert trail.end["n_generated"] == len(trail.token_ids) == response.usage.completion_tokens
    assert response.usage.prompt_tokens == len(trail.prompt_token_ids)
    assert response.choices[0].finish_reason == ("length" if trail.reason == "length" else "stop")
    # C3: identity from the key, and the key only as a hash prefix
    assert trail.tenant == "acme-bank"
    assert trail.start["principal"] == "svc-chat@acme-bank"
    assert trail.start["client"] == f"key:{hash_api_key(ACME_KEY)[:16]}"
    # C5: every sampling parameter, the seed included
    params = trail.start["params"]
    assert (params["temperature"], params["seed"], params["max_tokens"]) == ("0.7", "1234", 12)
    assert trail.prompt_text == "Customer: I was charged twice for my order\nAgent:"
    assert_released_durably(live_server, "acme-bank/cmpl-nonstream-1")
    assert_verifies(live_server)


def test_chat_streaming_equals_trail_and_releases_only_durable_tokens(
    live_server: LiveServer,
) -> None:
    stream = client(live_server, GLOBEX_KEY).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "My package has not arrived yet"}],
        max_tokens=24,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "chat-stream-1"},
    )
    pieces: list[str] = []
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    text = "".join(pieces)
    trail = trail_of(live_server, "globex-health/chat-stream-1")
    assert delivered_text(live_server, trail) == text
    assert trail.prompt_text == "Customer: My package has not arrived yet\nAgent: "
    assert trail.tenant == "globex-health"
    assert "\n" in trail.start["params"]["stop"]  # the chat template's end of turn, recorded
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens == trail.end["n_generated"]
    assert_released_durably(live_server, "globex-health/chat-stream-1")
    assert_verifies(live_server)


def _run_one(
    live: LiveServer, i: int, results: dict[str, str], errors: list[BaseException]
) -> None:
    caller_id = f"concurrent-{i}"
    tenant = "acme-bank" if i % 2 else "globex-health"
    request_id = f"{tenant}/{caller_id}"  # the trail id (tenant namespace, C19)
    try:
        c = client(live, ACME_KEY if i % 2 else GLOBEX_KEY)
        headers = {"x-request-id": caller_id}
        if i % 3 == 0:
            r = c.completions.create(
                model=MODEL, prompt=f"Customer: order {i} is late\nAgent:", max_tokens=10 + i,
                temperature=0.9, seed=i, extra_headers=headers,
            )  # fmt: skip
            results[request_id] = r.choices[0].text
        else:
            text = []
            for chunk in c.completions.create(
                model=MODEL, prompt=f"Customer: refund for {i}\nAgent:", max_tokens=10 + i,
                temperature=0.9, seed=i, stream=True, extra_headers=headers,
            ):  # fmt: skip
                text.extend(ch.text for ch in chunk.choices)
            results[request_id] = "".join(text)
    except BaseException as exc:
        errors.append(exc)


def test_concurrent_clients_share_batches_and_each_trail_is_exact(
    live_server: LiveServer,
) -> None:
    results: dict[str, str] = {}
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_run_one, args=(live_server, i, results, errors)) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    trails = {rid: trail_of(live_server, rid) for rid in results}
    for rid, text in results.items():
        assert delivered_text(live_server, trails[rid]) == text, rid
        assert_released_durably(live_server, rid)
    step_sets = [set(t.steps) for t in trails.values()]
    shared = any(a & b for i, a in enumerate(step_sets) for b in step_sets[i + 1 :])
    assert shared, "no physical step carried tokens of two requests"
    assert_verifies(live_server)


def test_disconnect_mid_stream_aborts_and_records_delivered(live_server: LiveServer) -> None:
    """C22, C6: the engine request is aborted; the end says how much reached the client."""
    received: list[str] = []
    max_tokens = 400
    with client(live_server).completions.with_streaming_response.create(
        model=MODEL,
        prompt="Customer: I cannot log in to my account\nAgent:",
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        extra_body={"ignore_eos": True},
        extra_headers={"x-request-id": "disconnect-1"},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) >= 3:
                break  # leaving the block closes the connection mid-stream
    trail = trail_of(live_server, "acme-bank/disconnect-1")
    assert trail.end is not None
    assert trail.reason == "abort"
    n_generated, n_delivered = trail.end["n_generated"], trail.end["n_delivered"]
    assert n_generated == len(trail.token_ids) < max_tokens
    assert 0 < n_delivered <= n_generated
    # what the client read is a prefix of what the trail says was delivered
    import json

    client_text = "".join(json.loads(line[6:])["choices"][0]["text"] for line in received)
    assert delivered_text(live_server, trail).startswith(client_text)
    assert_verifies(live_server)


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=60) as c:
        yield c


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_bad_api_key_is_401_openai_shaped(live_server: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client(live_server, "sk-wrong").models.list()
    assert info.value.status_code == 401
    with httpx.Client(base_url=live_server.base_url) as c:
        r = c.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
        assert r.status_code == 401
        assert _error(r)["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": -1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": -5}, "seed"),
        ({"n": 2}, "n"),
        ({"logprobs": 2}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_bad_sampling_params_are_400(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    r = http.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": "Customer: hi\nAgent:", **body},
        headers={"authorization": f"Bearer {ACME_KEY}"},
    )
    assert r.status_code == 400, r.text
    err = _error(r)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_request_id_is_validated_and_unique(live_server: LiveServer, http: httpx.Client) -> None:
    auth = {"authorization": f"Bearer {ACME_KEY}"}
    body = {"model": MODEL, "prompt": "Customer: hi\nAgent:", "max_tokens": 2}
    r = http.post("/v1/completions", json=body, headers={**auth, "x-request-id": "bad id!"})
    assert r.status_code == 400 and _error(r)["code"] == "invalid_request_id"
    r = http.post("/v1/completions", json=body, headers={**auth, "x-request-id": "unique-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "unique-1"
    r = http.post("/v1/completions", json=body, headers={**auth, "x-request-id": "unique-1"})
    assert r.status_code == 409 and _error(r)["code"] == "duplicate_request_id"
    r = http.post("/v1/completions", json=body, headers=auth)
    generated = r.headers["x-request-id"]
    assert r.status_code == 200 and generated.startswith("req-")
    assert r.headers["x-auditlog-request-id"] == f"acme-bank/{generated}"
    assert trail_of(live_server, f"acme-bank/{generated}").reason is not None


def test_unknown_model_is_404(http: httpx.Client) -> None:
    r = http.post(
        "/v1/completions",
        json={"model": "gpt-unknown", "prompt": "x"},
        headers={"authorization": f"Bearer {ACME_KEY}"},
    )
    assert r.status_code == 404 and _error(r)["code"] == "model_not_found"


def test_prompt_too_long_is_400_and_recorded_as_error(
    live_server: LiveServer, http: httpx.Client
) -> None:
    """C1: a request the engine rejects still has a closed chain, with reason error."""
    r = http.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": "x" * 5000, "max_tokens": 4},
        headers={"authorization": f"Bearer {ACME_KEY}", "x-request-id": "too-long-1"},
    )
    assert r.status_code == 400, r.text
    assert "prompt too long" in _error(r)["message"]
    trail = trail_of(live_server, "acme-bank/too-long-1")
    assert trail.reason == "error" and trail.end["n_delivered"] == 0


def test_caller_cannot_switch_auditing_off(live_server: LiveServer, http: httpx.Client) -> None:
    """C23: no body field or header disables recording."""
    r = http.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": "Customer: hi\nAgent:", "max_tokens": 3,
              "audit": False, "recording": False, "store": False},
        headers={"authorization": f"Bearer {ACME_KEY}", "x-request-id": "no-opt-out-1",
                 "x-audit": "off", "x-auditlog-recording": "false"},
    )  # fmt: skip
    assert r.status_code == 200
    trail = trail_of(live_server, "acme-bank/no-opt-out-1")
    assert delivered_text(live_server, trail) == r.json()["choices"][0]["text"]


def test_models_lists_the_served_model(live_server: LiveServer) -> None:
    models = client(live_server).models.list()
    assert [m.id for m in models.data] == [MODEL]
