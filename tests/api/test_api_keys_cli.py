"""``auditlog keys`` and ``auditlog api`` commands; keys are stored only as hashes (C17)."""

from __future__ import annotations

import orjson
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from auditlog.api.keys import AuthenticationError, api_keys, authenticate, key_secret_hash
from auditlog.cli import app
from auditlog.store.db import create_db_engine


def _cli() -> typer.Typer:
    """The real command: errors become exit codes in its root group, in one place."""
    return app


def test_create_list_revoke(db_url: str) -> None:
    runner = CliRunner()
    created = runner.invoke(
        _cli(), ["keys", "create", "--db", db_url, "--role", "auditor", "--tenant", "acme"]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            key = authenticate(conn, token)
            stored = conn.execute(select(api_keys)).one()._mapping
        assert key.tenants == ("acme",) and key.role == "auditor"
        secret = token.split(".", 1)[1]
        assert stored["key_hash"] == key_secret_hash(secret)
        assert secret not in "".join(str(v) for v in stored.values())

        listed = runner.invoke(_cli(), ["keys", "list", "--db", db_url, "--json"])
        assert orjson.loads(listed.stdout)[0]["id"] == key.id
        assert runner.invoke(_cli(), ["keys", "revoke", "--db", db_url, key.id]).exit_code == 0
        with engine.connect() as conn, pytest.raises(AuthenticationError, match="revoked"):
            authenticate(conn, token)
    finally:
        engine.dispose()
    # Scoping rules are enforced at creation: usage errors exit 2.
    for args in (["--role", "auditor"], ["--role", "operator", "--tenant", "acme"]):
        result = runner.invoke(_cli(), ["keys", "create", "--db", db_url, *args])
        assert result.exit_code == 2, args
    assert runner.invoke(_cli(), ["keys", "revoke", "--db", db_url, "nope"]).exit_code == 2


def test_api_command_is_registered() -> None:
    result = CliRunner().invoke(_cli(), ["api", "--help"])
    assert result.exit_code == 0 and "--signing-key" in result.stdout
