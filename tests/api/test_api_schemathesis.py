"""Property-based fuzzing of the auditor API against its own OpenAPI schema (schemathesis).

For any generated input: no 5xx, and every answer matches its documented status, content type
and schema. Kept bounded (few examples per operation) and run on SQLite only, for time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_helpers import World, build_world
from hypothesis import HealthCheck, given, settings

from auditlog.store.db import upgrade

MAX_EXAMPLES = 15


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    upgrade(url)
    built = build_world(url, tmp_path, n_requests=4)
    yield built
    built.client.close()
    built.engine.dispose()


def _as_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return 0


def _check(case: schemathesis.Case, world: World) -> None:
    # Unknown query parameters are ignored, as HTTP APIs commonly do (FastAPI's default), not
    # refused: schemathesis's negative-data check would call that an acceptance of bad input.
    excluded = [schemathesis.checks.negative_data_rejection]
    query = case.query or {}
    if "cursor" in query or _as_int(query.get("first")) > _as_int(query.get("second")):
        # An opaque cursor the server did not issue, or first > second, is schema-valid yet
        # meaningless: the API answers a documented 400, which this check would call a rejection.
        excluded.append(schemathesis.checks.positive_data_acceptance)
    if case.method == "POST" and case.path in ("/v1/holds", "/v1/erasures"):
        # Orders whose rules span members (a scope naming something, one selection, from before
        # to) are schema-valid when they break them: the documented answer is a 422 naming why.
        excluded.append(schemathesis.checks.positive_data_acceptance)
    case.call_and_validate(headers=world.headers("admin"), excluded_checks=excluded)


def test_no_server_error_and_responses_match_the_schema(sqlite_world: World) -> None:
    """Every operation of the schema, each through its own Hypothesis strategy (schemathesis's
    Python API: ``operation.as_strategy()``, no pytest plugin), with derandomized examples."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", sqlite_world.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,  # the same examples on every run: CI must not depend on luck
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        def fuzz(case: schemathesis.Case) -> None:
            _check(case, sqlite_world)

        try:
            fuzz()
        except Exception as exc:
            exc.add_note(f"operation: {operation.label}")
            raise


#: Routes anyone may read: the tlog-tiles checkpoint and hash tiles reveal no content (C10).
PUBLIC = {"/v1/tlog/{log}/checkpoint", "/v1/tlog/{log}/tile/{level}/{path}"}


def test_openapi_documents_every_route_with_security_and_errors(sqlite_world: World) -> None:
    spec = sqlite_world.client.get("/openapi.json").json()
    assert set(spec["paths"]) >= PUBLIC
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation.get("tags"), (method, path)
            assert {"401", "403", "404", "503"} <= set(operation["responses"]), (method, path)
            if path not in PUBLIC:
                assert operation.get("security") == [{"HTTPBearer": []}], (method, path)
