"""Fixtures of the replay tests: the demo run, made once per session (it is the slow part)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from replay_helpers import DemoRun, run_demo


@pytest.fixture(scope="session")
def demo_run() -> DemoRun:
    return run_demo()
