"""The console's replay form on a trail recorded by the real demo engine.

C17 (an operator is refused, like the API), C18 (the replay page view is an access record naming
the console route), C19 (another tenant's request is a 404); a form without the session's CSRF
token replays nothing.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from console_helpers import csrf_of, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from auditlog.api import ApiSettings, Role, create_app
from auditlog.api.keys import create_key
from auditlog.events import Event
from auditlog.ledger import Signer, parse_header
from auditlog.store.db import create_db_engine
from auditlog.store.schema import records

# The demo run and its recorder live with the replay tests.
sys.path.insert(0, str(Path(__file__).parents[1] / "replay"))
from replay_helpers import SIGNER, DemoRun, alter_token, record, run_demo

pytestmark = pytest.mark.engine
API_ORIGIN = "test.example/console-replay"
ROUTE = "POST /console/requests/{request_id:path}/replay"


@dataclass
class Setup:
    app: Any
    engine: Engine
    rid: str
    foreign_rid: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def demo() -> DemoRun:
    return run_demo(num_requests=4)


@pytest.fixture
def setup(demo: DemoRun, db_url: str, tmp_path: Path) -> Iterator[Setup]:
    with _setup(demo, demo.events, db_url, tmp_path) as s:
        yield s


@contextmanager
def _setup(demo: DemoRun, events: list[Event], db_url: str, tmp_path: Path) -> Iterator[Setup]:
    record(db_url, events, tmp_path / "spool")
    key_file = tmp_path / "api.key"
    key_file.write_text(Signer(name=API_ORIGIN, seed=bytes(32)).key_string + "\n")
    settings = ApiSettings(
        db_url=db_url,
        api_origin=API_ORIGIN,
        api_signing_key=key_file,
        api_trusted_keys=[SIGNER.verifier_key],
    )
    engine = create_db_engine(db_url)
    rid = demo.request_ids[0]
    tenant = demo.tenants[rid]
    foreign_rid = next(r for r in demo.request_ids if demo.tenants[r] != tenant)
    with engine.begin() as conn:
        tokens = {
            "auditor": create_key(conn, role=Role.AUDITOR, tenants=[tenant], label="a").token,
            "operator": create_key(conn, role=Role.OPERATOR, tenants=[], label="op").token,
        }
    try:
        yield Setup(create_app(settings, engine=engine), engine, rid, foreign_rid, tokens)
    finally:
        engine.dispose()


def _client(s: Setup, who: str) -> TestClient:
    client = TestClient(s.app)
    assert sign_in(client, s.tokens[who]).status_code == 303
    return client


def _access(s: Setup) -> list[tuple[str, int, list[str] | None]]:
    with s.engine.connect() as conn:
        bodies = conn.execute(
            select(records.c.body).where(records.c.kind == "access").order_by(records.c.seq)
        ).scalars()
        access = [parse_header(bytes(b)) for b in bodies]
    return [(a["endpoint"], a["status"], a.get("request_ids")) for a in access]


def test_auditor_replays_from_the_trail_page_and_the_view_is_recorded(setup: Setup) -> None:
    client = _client(setup, "auditor")
    trail = client.get(f"/console/requests/{setup.rid}")
    assert trail.status_code == 200
    action = f'action="/console/requests/{setup.rid}/replay"'
    assert action in trail.text and "Replay this request" in trail.text
    before = len(_access(setup))
    page = client.post(
        f"/console/requests/{setup.rid}/replay", data={"csrf_token": csrf_of(trail.text)}
    )
    assert page.status_code == 200, page.text
    assert 'data-status="identical"' in page.text
    assert "✔ identical" in page.text  # the verdict is in words, not only in colour
    assert "trusted (configured on this API)" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # C18: the replay page writes one access record naming the console route and the request.
    assert _access(setup)[before:] == [(ROUTE, 200, [setup.rid])]


def test_another_tenants_request_is_not_found(setup: Setup) -> None:
    """C19: the replay form of another tenant's request answers 404, like an unknown id."""
    client = _client(setup, "auditor")
    csrf = csrf_of(client.get("/console/requests").text)
    for rid in (setup.foreign_rid, "no-such-request"):
        page = client.post(f"/console/requests/{rid}/replay", data={"csrf_token": csrf})
        assert page.status_code == 404 and "Not found, or not visible to you." in page.text
    assert _access(setup)[-2:] == [
        (ROUTE, 404, [setup.foreign_rid]),
        (ROUTE, 404, ["no-such-request"]),
    ]


def test_missing_or_forged_csrf_replays_nothing(setup: Setup) -> None:
    client = _client(setup, "auditor")
    before = _access(setup)
    path = f"/console/requests/{setup.rid}/replay"
    for data in ({"other": "field"}, {"csrf_token": "0" * 64}, {"csrf_token": ""}):
        page = client.post(path, data=data)
        assert page.status_code == 403 and "The form expired" in page.text
    assert client.post(path).status_code == 415  # no form at all is not a console form
    assert _access(setup) == before  # refused before any read: nothing replayed, nothing read
    # Another session's token is not this session's.
    other = _client(setup, "auditor")
    stolen = csrf_of(other.get("/console/requests").text)
    assert client.post(path, data={"csrf_token": stolen}).status_code == 403


def test_operator_is_refused_like_the_api(setup: Setup) -> None:
    """C17: an operator's replay form is a 403, recorded with its status."""
    client = _client(setup, "operator")
    csrf = csrf_of(client.get("/console/steps").text)
    page = client.post(f"/console/requests/{setup.rid}/replay", data={"csrf_token": csrf})
    assert page.status_code == 403
    assert _access(setup)[-1] == (ROUTE, 403, [])


def test_divergent_replay_names_the_first_difference(
    demo: DemoRun, db_url: str, tmp_path: Path
) -> None:
    """A recorded token changed before it was logged: the chain is intact, the replay is not."""
    events, original, substitute = alter_token(demo.events, demo.request_ids[0], 5)
    with _setup(demo, events, db_url, tmp_path) as s:
        client = _client(s, "auditor")
        trail = client.get(f"/console/requests/{s.rid}")
        page = client.post(
            f"/console/requests/{s.rid}/replay", data={"csrf_token": csrf_of(trail.text)}
        )
        assert page.status_code == 200, page.text
        assert 'data-status="divergent"' in page.text and "✘ divergent" in page.text
        assert "First divergence, at generated position 5" in page.text
        recorded = re.search(r"<th scope=\"row\">Recorded</th><td>(\d+)</td>", page.text)
        replayed = re.search(r"<th scope=\"row\">Replayed</th><td>(\d+)</td>", page.text)
        assert recorded is not None and replayed is not None
        assert (int(recorded[1]), int(replayed[1])) == (substitute, original)
