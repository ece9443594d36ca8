"""Fixtures of the server tests (helpers in ``server_fixtures``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from server_fixtures import LiveServer, make_engine_factory, start_live_server

from auditlog.engine import LLMEngine


@pytest.fixture(scope="session")
def engine_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LLMEngine]:
    return make_engine_factory(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    engine_factory: Callable[..., LLMEngine],
) -> Iterator[LiveServer]:
    """One fail-closed server per test module, on SQLite and on PostgreSQL."""
    tmp = tmp_path_factory.mktemp("server")
    if request.param == "sqlite":
        yield from start_live_server(tmp, engine_factory)
        return
    with request.getfixturevalue("make_pg_database")() as db_url:
        yield from start_live_server(tmp, engine_factory, db_url=db_url)
