"""Fixtures of the auditor API tests (helpers live in ``api_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import World, build_world


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    built = build_world(db_url, tmp_path)
    yield built
    built.client.close()
    built.engine.dispose()
