"""tests/vllm runs only where vLLM imports (its own environment: scripts/vllm_env.sh).

Elsewhere every test here is skipped with that reason, so the main suite runs without vLLM.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_SPEC = importlib.util.find_spec("vllm")
# this directory itself is a namespace package named vllm when tests/ is on sys.path
MISSING = (
    None
    if _SPEC is not None and _SPEC.origin is not None
    else "vLLM is not installed: build its environment with scripts/vllm_env.sh"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    if MISSING is None:
        return
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.skip(reason=MISSING))
