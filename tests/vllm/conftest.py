"""tests/vllm runs only where vLLM imports (its own environment, scripts/vllm_env.sh).

Elsewhere the whole directory is skipped with the reason, so the main suite runs without vLLM.
"""

from __future__ import annotations

import importlib.util

import pytest


def _vllm_missing() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (build its environment with scripts/vllm_env.sh)"
    return None


_MISSING = _vllm_missing()
collect_ignore_glob = ["test_*.py"] if _MISSING else []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config, items


def pytest_report_header(config: pytest.Config) -> str | None:
    del config
    return f"tests/vllm skipped: {_MISSING}" if _MISSING else None
