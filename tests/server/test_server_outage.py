"""A PostgreSQL outage while the server runs, and bad JSON bodies (C21, C22).

The outage is real: the database refuses new connections and its open ones are killed (as in
tests/recorder/test_outage.py). A request whose caller-chosen id cannot be checked against the log
is refused with an OpenAI-shaped 503 and ``Retry-After``, not a 500, and its id stays free: after
the outage the same ``x-request-id`` is accepted (no 409). A request with a generated id needs no
lookup and is served through the recorder's spool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from server_fixtures import ACME_KEY, MODEL, LiveServer, start_live_server

from auditlog.engine import LLMEngine
from auditlog.verifier import verify_database

AUTH = {"authorization": f"Bearer {ACME_KEY}"}
BODY = {"model": MODEL, "prompt": "Hello", "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def pg_server(
    make_pg_database: Callable[[], object],
    tmp_path_factory: pytest.TempPathFactory,
    engine_factory: Callable[..., LLMEngine],
) -> Iterator[LiveServer]:
    with make_pg_database() as db_url:  # type: ignore[attr-defined]
        tmp = tmp_path_factory.mktemp("outage")
        yield from start_live_server(
            tmp, engine_factory, db_url=db_url, recorder_options={"retry_interval_ms": 50}
        )


@pytest.mark.postgres
def test_outage_answers_503_with_retry_after_and_the_id_stays_free(
    pg_server: LiveServer, set_pg_outage: Callable[..., None]
) -> None:
    with httpx.Client(base_url=pg_server.base_url, timeout=60) as http:
        set_pg_outage(pg_server.db_url, down=True)
        try:
            refused = http.post(
                "/v1/completions", json=BODY, headers={**AUTH, "x-request-id": "during-outage"}
            )
            generated = http.post("/v1/completions", json=BODY, headers=AUTH)
        finally:
            set_pg_outage(pg_server.db_url, down=False)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        error = refused.json()["error"]
        assert error["type"] == "service_unavailable"
        assert error["code"] == "database_unavailable"
        assert refused.headers["x-request-id"] == "during-outage"
        # No lookup is needed for a generated id: the spool carries the request (C22).
        assert generated.status_code == 200, generated.text
        # After the outage the refused id is free: it was never recorded.
        again = http.post(
            "/v1/completions", json=BODY, headers={**AUTH, "x-request-id": "during-outage"}
        )
        assert again.status_code == 200, again.text
        trail_id = again.headers["x-auditlog-request-id"]
        pg_server.wait_closed(trail_id)
        pg_server.wait_closed(generated.headers["x-auditlog-request-id"])
    pg_server.recorder.flush()
    report = verify_database(pg_server.db_url, keys=[pg_server.signer.verifier_key])
    assert report.ok, report.findings


def test_malformed_json_says_what_is_wrong(live_server: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=60) as http:
        answer = http.post(
            "/v1/completions",
            content=b'{"model": "auditlog-demo", "prompt": }',
            headers={**AUTH, "content-type": "application/json"},
        )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("request body is not valid JSON: ")
    assert "character" in error["message"] and error["param"] is None, error
