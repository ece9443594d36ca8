"""Requests served by ``auditlog serve`` to concurrent clients replay alone from their trails
(docs/REPLAY.md; C5, C6): continuous batching with other tenants' requests, streamed or not,
sampled with a seed or greedy, and one cut short by a client disconnect (a prefix of the replay).
"""

from __future__ import annotations

import threading
import time

import openai
import pytest
from server_fixtures import ACME_KEY, GLOBEX_KEY, MODEL, LiveServer, read_engine

from auditlog.bundle.export import NoCheckpointError, export_bundle
from auditlog.bundle.format import Bundle, decode_bundle
from auditlog.ledger import Verifier
from auditlog.replay import ReplayStatus, replay_bundle

pytestmark = pytest.mark.engine


def _client(live: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.base_url}/v1", api_key=key, max_retries=0, timeout=60)


def _call(live: LiveServer, i: int, errors: list[BaseException]) -> None:
    try:
        c = _client(live, ACME_KEY if i % 2 else GLOBEX_KEY)
        body = dict(
            model=MODEL, prompt=f"Customer: parcel {i} is lost\nAgent:", max_tokens=12 + i,
            temperature=0.0 if i % 3 == 0 else 0.8, seed=100 + i,
            extra_headers={"x-request-id": f"served-{i}"},
        )  # fmt: skip
        if i % 2:
            c.completions.create(**body)  # type: ignore[call-overload]
        else:
            for _ in c.completions.create(stream=True, **body):  # type: ignore[call-overload]
                pass
    except BaseException as exc:
        errors.append(exc)


def _bundle(live: LiveServer, request_id: str) -> Bundle:
    """The request's bundle once a signed checkpoint covers it (the recorder signs each second)."""
    live.wait_closed(request_id)
    engine = read_engine(live.db_url)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with engine.connect() as conn:
                    return decode_bundle(export_bundle(conn, request_id))
            except NoCheckpointError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()


def test_served_requests_replay_identically_alone(live_server: LiveServer) -> None:
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_call, args=(live_server, i, errors)) for i in range(6)]
    for t in threads:
        t.start()
    # a client that hangs up after three chunks: its request ends with reason abort
    with _client(live_server, ACME_KEY).completions.with_streaming_response.create(
        model=MODEL,
        prompt="Customer: I cannot log in\nAgent:",
        max_tokens=200,
        temperature=0.0,
        stream=True,
        extra_body={"ignore_eos": True},
        extra_headers={"x-request-id": "served-cut"},
    ) as response:
        for n, _line in enumerate(response.iter_lines()):
            if n >= 6:
                break
    for t in threads:
        t.join(120)
    assert not errors, errors
    trusted = [Verifier.from_key_string(live_server.signer.verifier_key)]
    ids = [f"{'acme-bank' if i % 2 else 'globex-health'}/served-{i}" for i in range(6)]
    for request_id in [*ids, "acme-bank/served-cut"]:
        result, _ = replay_bundle(_bundle(live_server, request_id), trusted)
        assert result.status is ReplayStatus.IDENTICAL, (request_id, result.reason)
        assert result.num_recorded > 0
    cut, _ = replay_bundle(_bundle(live_server, "acme-bank/served-cut"), trusted)
    assert cut.num_recorded < cut.num_replayed  # the record stops early; the replay goes on
    assert "the record stops early: abort" in cut.reason
