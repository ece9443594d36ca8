"""What the inference server and the integrations share lives in ``auditlog.gateway``: neither
imports the other (also not lazily, inside a function), there is one authentication error type,
and one place builds the OpenAI error body."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import auditlog
import auditlog.api
import auditlog.server
from auditlog.gateway.auth import AuthenticationError

PACKAGE = Path(auditlog.__file__).parent


def _modules(package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((PACKAGE / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _imported(path: Path, tree: ast.Module) -> set[str]:
    """Absolute names of every module ``tree`` imports, anywhere in it."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_server_and_integrations_do_not_import_each_other() -> None:
    for package, other in (
        ("server", "auditlog.integrations"),
        ("integrations", "auditlog.server"),
    ):
        for path, tree in _modules(package):
            bad = {n for n in _imported(path, tree) if n == other or n.startswith(f"{other}.")}
            assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
    for path, tree in _modules("gateway"):
        bad = {
            n for n in _imported(path, tree) if n.startswith(("auditlog.server", "auditlog.int"))
        }
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_one_authentication_error_type() -> None:
    defined = [
        path.relative_to(PACKAGE)
        for path, tree in _modules(".")
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "AuthenticationError"
    ]
    assert defined == [Path("gateway/auth.py")]
    assert auditlog.server.AuthenticationError is AuthenticationError
    assert auditlog.api.AuthenticationError is AuthenticationError


def test_one_place_builds_the_openai_error_body() -> None:
    """A dict literal ``{"error": {...}}`` is built in ``gateway/openai_errors.py`` only."""
    builders = [
        path.relative_to(PACKAGE)
        for package in ("server", "integrations", "gateway")
        for path, tree in _modules(package)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        and any(isinstance(k, ast.Constant) and k.value == "error" for k in node.keys)
        and any(isinstance(v, ast.Dict) for v in node.values)
    ]
    assert builders == [Path("gateway/openai_errors.py")]
