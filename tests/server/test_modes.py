"""Fail-open serving and the benchmark-only switch that turns recording off (C21, C23)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from server_fixtures import MODEL, start_live_server
from sqlalchemy import inspect

from auditlog.engine import LLMEngine
from auditlog.recorder import FailMode
from auditlog.store import create_db_engine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

pytestmark = pytest.mark.engine


def test_fail_open_streams_and_still_records_everything(
    tmp_path: Path, engine_factory: Callable[..., LLMEngine]
) -> None:
    for live in start_live_server(tmp_path, engine_factory, fail_mode=FailMode.OPEN):
        c = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="sk-acme-0123456789")
        text = "".join(
            ch.choices[0].text
            for ch in c.completions.create(
                model=MODEL, prompt="Customer: hello\nAgent:", max_tokens=12, stream=True,
                extra_headers={"x-request-id": "open-1"},
            )
        )  # fmt: skip
        live.wait_closed("acme-bank/open-1")
        engine = create_db_engine(live.db_url, read_only=True)
        with engine.connect() as conn:
            trail = read_trail(conn, live.origin, "acme-bank/open-1")
        engine.dispose()
        assert trail.end is not None
        decoded = live.engine.tokenizer.decode(trail.token_ids[: trail.end["n_delivered"]])
        assert decoded == text
    report = verify_database(live.db_url, keys=[live.signer.verifier_key])
    assert report.ok, report.findings[:3]


def test_recording_off_writes_nothing(
    tmp_path: Path, engine_factory: Callable[..., LLMEngine]
) -> None:
    """The benchmark baseline: settings only, never reachable from a request (C23)."""
    for live in start_live_server(tmp_path, engine_factory, recording=False):
        c = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="sk-acme-0123456789")
        r = c.completions.create(model=MODEL, prompt="Customer: hi\nAgent:", max_tokens=5)
        assert r.usage.completion_tokens > 0
        assert all(rel.durable == -1 for rel in live.releases)
    assert (
        not (tmp_path / "audit.db").exists()
        or not inspect(create_db_engine(live.db_url)).get_table_names()
    )
