"""Fixtures of the auditor API tests (helpers live in ``api_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import World, build_world
from console_server import chromium_or_skip


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    built = build_world(db_url, tmp_path)
    yield built
    built.client.close()
    built.engine.dispose()


@pytest.fixture
def sealed_world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """The world with every payload sealed (envelope encryption, C16)."""
    built = build_world(db_url, tmp_path, sealed=True)
    yield built
    built.client.close()
    built.engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (skipped without them, failed under CI=true)."""
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()
