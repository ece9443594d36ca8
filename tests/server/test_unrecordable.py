"""A request that cannot be recorded is refused alone, with 400 (issue 9, finding 1; C21, C23).

A lone UTF-16 surrogate in a prompt, a stop string or a chat message used to kill the recorder's
writer: every later request of every tenant got 503. Now the server refuses that request with an
OpenAI-shaped 400 before anything is reserved, the writer lives on, and other tenants are served.
Runs against a real uvicorn server on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_fixtures import ACME_KEY, GLOBEX_KEY, MODEL, LiveServer

from auditlog.errors import UnrecordableEventError
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.server.engine_loop import AuditSink
from auditlog.synthetic import SyntheticEngine
from auditlog.verifier import verify_database

pytestmark = pytest.mark.engine

LONE = "\ud800"
ACME = {"authorization": f"Bearer {ACME_KEY}"}
GLOBEX = {"authorization": f"Bearer {GLOBEX_KEY}"}


@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=120) as c:
        yield c


def _post(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    """POST ``body`` as JSON with every non-ASCII character escaped (as the openai client and
    browsers send a lone surrogate: ``"\\ud800"``)."""
    content = json.dumps(body)
    return http.post(path, content=content, headers={**headers, "content-type": "application/json"})


def _served(http: httpx.Client, headers: dict[str, str]) -> None:
    """A plain request of ``headers``'s tenant is answered 200 (the writer is alive)."""
    r = http.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": "Customer: hi\nAgent:", "max_tokens": 2},
        headers=headers,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"prompt": f"Customer: {LONE}\nAgent:"}),
        ("/v1/completions", {"prompt": [f"x{LONE}"]}),
        ("/v1/completions", {"prompt": "Customer: hi\nAgent:", "stop": [LONE]}),
        ("/v1/completions", {"prompt": "Customer: hi\nAgent:", "user": LONE}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": f"a{LONE}b"}]}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stop": LONE}),
    ],
)
def test_lone_surrogate_is_400_and_others_are_served(
    live_server: LiveServer, http: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    for stream in (False, True):
        r = _post(http, path, {"model": MODEL, "max_tokens": 3, "stream": stream, **body}, ACME)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error"
        assert "surrogate" in err["message"]
        assert "x-auditlog-request-id" not in r.headers  # refused before any id was reserved
    _served(http, GLOBEX)
    _served(http, ACME)
    assert live_server.app.state.service.recorder._writer.is_alive()


_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=24)


def test_fuzzed_bodies_never_stop_the_writer(live_server: LiveServer, http: httpx.Client) -> None:
    """Arbitrary strings, numbers and sizes: each answer is 200 or a 4xx, never 5xx; afterwards
    the other tenant is served and the database verifies."""
    statuses: list[int] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        prompt=st.one_of(_text, st.lists(st.integers(-(2**64), 2**64), max_size=4)),
        stop=st.one_of(st.none(), _text, st.lists(_text, max_size=3)),
        user=st.one_of(st.none(), _text),
        temperature=st.one_of(st.none(), st.floats(allow_nan=False), st.integers(-5, 5)),
        max_tokens=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
        seed=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
        chat=st.booleans(),
    )
    def one(
        prompt: Any,
        stop: Any,
        user: Any,
        temperature: Any,
        max_tokens: Any,
        seed: Any,
        chat: bool,
    ) -> None:
        body: dict[str, Any] = {"model": MODEL, "stop": stop, "user": user, "seed": seed}
        body.update(temperature=temperature, max_tokens=max_tokens)
        if max_tokens is not None and max_tokens >= 1:
            body["max_tokens"] = min(max_tokens, 3)  # valid sizes stay short to run
        if chat:
            content = prompt if isinstance(prompt, str) else "hi"
            body["messages"] = [{"role": "user", "content": content}]
        else:
            body["prompt"] = prompt
        path = "/v1/chat/completions" if chat else "/v1/completions"
        r = _post(http, path, body, ACME)
        statuses.append(r.status_code)
        assert r.status_code in (200, 400, 404), r.text
        if r.status_code != 200:
            assert r.json()["error"]["message"]

    one()
    assert 400 in statuses
    _served(http, GLOBEX)
    report = verify_database(
        live_server.db_url,
        keys=[live_server.signer.verifier_key],
        witness_dir=live_server.witness_dir,
    )
    assert report.ok, report.findings[:3]


def test_sink_refuses_one_request_and_keeps_recording(db_url: str, tmp_path: Path) -> None:
    """Behind the server's own check: a start the recorder refuses ends that request alone
    (a real recorder, no HTTP); its waiters and its release point get the refusal."""
    signer = Signer.generate("server.test.invalid/sink")
    engine = SyntheticEngine(seed=2)
    with AuditRecorder.open(
        db_url, origin=signer.name, signers=[signer], spool_path=tmp_path / "spool"
    ) as recorder:
        sink = AuditSink(recorder.record)
        good, bad = engine.start(2), engine.start(2)
        sink(good)
        sink(dataclasses.replace(bad, prompt_text=LONE))
        assert sink.failure is None
        assert isinstance(sink.refused[bad.request_id], UnrecordableEventError)
        with pytest.raises(UnrecordableEventError):
            recorder.wait_durable(bad.request_id, 1, timeout=5)
        while (step := engine.step()) is not None:
            sink(step)
        for end in engine.finish_done():
            sink(end)
        # The server closes each request; the good one's end carries an error text that is not
        # valid text, which is recorded escaped rather than refused.
        sink.close(bad.request_id, 0)
        held = sink._held[good.request_id]
        sink._held[good.request_id] = dataclasses.replace(held, error=f"x{LONE}")
        assert sink.close(good.request_id, None) is True
        assert sink.failure is None
        recorder.wait_closed(good.request_id, timeout=30)
    assert verify_database(db_url, keys=[signer.verifier_key]).ok


def test_body_refusal_names_the_path_of_the_bad_string() -> None:
    from auditlog.recorder.checks import check_texts

    with pytest.raises(UnrecordableEventError, match=r"body\.messages\[1\]\.content"):
        check_texts({"messages": [{"content": "ok"}, {"content": LONE}]}, "body")
    check_texts({"messages": [{"content": "ok é \u0000 \U0001f600"}], "n": 1.5}, "body")
